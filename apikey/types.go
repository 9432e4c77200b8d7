package apikey

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Type is the kind of a key, fixed by its prefix. Types are ordered by what
// they may do (see [Type.Includes]): an admin key can do everything a test
// key can, a test key everything a live key can, and a live key everything
// a client key can.
type Type uint8

// The key types. Their numbers are not their order: Client came last.
const (
	// Live keys evaluate flags; they are what production servers hold.
	Live Type = iota + 1
	// Test keys evaluate flags and drive testing sessions from CI.
	Test
	// Admin keys may call every endpoint within their scope.
	Admin
	// Client keys are publishable: code that runs in browsers and apps
	// carries them. They evaluate flags marked client-visible over OFREP,
	// from the origins the key allows, and do nothing else.
	Client

	// NumTypes bounds the types' numbers, for arrays indexed by type.
	NumTypes = Client + 1
)

// Types lists every key type, least capable first.
var Types = []Type{Client, Live, Test, Admin}

// rank orders the types by what they may do.
var rank = [NumTypes]uint8{Client: 1, Live: 2, Test: 3, Admin: 4}

// Prefix returns the prefix that keys of type t start with.
func (t Type) Prefix() string {
	switch t {
	case Live:
		return prefixLive
	case Test:
		return prefixTest
	case Admin:
		return prefixAdmin
	case Client:
		return prefixClient
	}
	return ""
}

// String returns the lower-case name used in the API: client, live, test or
// admin.
func (t Type) String() string {
	switch t {
	case Client:
		return "client"
	case Live:
		return "live"
	case Test:
		return "test"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Includes reports whether a key of type t may do what a key of type other
// may do; every type includes the zero Type, which asks for none.
func (t Type) Includes(other Type) bool {
	if other == 0 {
		return true
	}
	return t < NumTypes && other < NumTypes && rank[t] > 0 && rank[t] >= rank[other]
}

// ParseType turns "client", "live", "test" or "admin" (any case) into a
// Type.
func ParseType(s string) (Type, error) {
	switch strings.ToLower(s) {
	case "client":
		return Client, nil
	case "live":
		return Live, nil
	case "test":
		return Test, nil
	case "admin":
		return Admin, nil
	}
	return 0, fmt.Errorf("unknown key type %q (want client, live, test or admin)", s)
}

// MarshalText encodes t by name.
func (t Type) MarshalText() ([]byte, error) {
	if t.Prefix() == "" {
		return nil, fmt.Errorf("apikey: invalid type %d", uint8(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText decodes a type name.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Permission is what a key may do within its scope: READ allows safe
// requests (and flag evaluation), WRITE allows changes.
type Permission string

// The permissions.
const (
	Read  Permission = "READ"
	Write Permission = "WRITE"
)

// Permissions is a set of permissions, kept in a fixed order so that it
// encodes the same way everywhere.
type Permissions uint8

const (
	permRead Permissions = 1 << iota
	permWrite

	// AllPermissions is READ and WRITE, what a key gets when none are named.
	AllPermissions = permRead | permWrite
)

// Has reports whether the set holds p.
func (ps Permissions) Has(p Permission) bool {
	switch p {
	case Read:
		return ps&permRead != 0
	case Write:
		return ps&permWrite != 0
	}
	return false
}

// Contains reports whether every permission in other is also in ps.
func (ps Permissions) Contains(other Permissions) bool { return other&^ps == 0 }

// List returns the permissions in their canonical order.
func (ps Permissions) List() []Permission {
	out := make([]Permission, 0, 2)
	if ps&permRead != 0 {
		out = append(out, Read)
	}
	if ps&permWrite != 0 {
		out = append(out, Write)
	}
	return out
}

// ParsePermissions builds a set from names such as "READ" and "WRITE". An
// empty list, an unknown name or a repeated name is an error.
func ParsePermissions(names []string) (Permissions, error) {
	if len(names) == 0 {
		return 0, fmt.Errorf("at least one permission is required (READ, WRITE)")
	}
	var ps Permissions
	for _, n := range names {
		var bit Permissions
		switch Permission(strings.ToUpper(n)) {
		case Read:
			bit = permRead
		case Write:
			bit = permWrite
		default:
			return 0, fmt.Errorf("unknown permission %q (want READ or WRITE)", n)
		}
		if ps&bit != 0 {
			return 0, fmt.Errorf("permission %q is listed twice", n)
		}
		ps |= bit
	}
	return ps, nil
}

// MarshalJSON encodes the set as a list of names.
func (ps Permissions) MarshalJSON() ([]byte, error) { return json.Marshal(ps.List()) }

// UnmarshalJSON decodes a list of names.
func (ps *Permissions) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	v, err := ParsePermissions(names)
	if err != nil {
		return err
	}
	*ps = v
	return nil
}

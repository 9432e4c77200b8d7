package authz

import (
	"fmt"
	"strings"
)

// Role is what a member may do in their organization.
type Role string

// The roles, most capable first.
const (
	// RoleOwner may do everything, including managing other owners.
	RoleOwner Role = "OWNER"
	// RoleAdmin may do everything but manage owners.
	RoleAdmin Role = "ADMIN"
	// RoleMember may look, and use what is shared with them.
	RoleMember Role = "MEMBER"
)

// rank orders roles; an unknown role ranks below every real one.
func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

// AtLeast reports whether r may do what other may.
func (r Role) AtLeast(other Role) bool { return r.rank() >= other.rank() && r.rank() > 0 }

// ParseRole reads OWNER, ADMIN or MEMBER in any case; "" is MEMBER.
func ParseRole(s string) (Role, error) {
	switch Role(strings.ToUpper(strings.TrimSpace(s))) {
	case "", RoleMember:
		return RoleMember, nil
	case RoleAdmin:
		return RoleAdmin, nil
	case RoleOwner:
		return RoleOwner, nil
	}
	return "", fmt.Errorf("role %q is not OWNER, ADMIN or MEMBER", s)
}

// label is the role as people read it: "Owner", "Admin", "Member".
func (r Role) label() string {
	if r == "" {
		return "none"
	}
	return string(r[0]) + strings.ToLower(string(r[1:]))
}

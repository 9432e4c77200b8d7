package authz

import (
	"time"

	"github.com/flagbridge/flagbridge/apikey"
)

// Kind is what authenticated a principal.
type Kind uint8

// The kinds of principal.
const (
	// KeyPrincipal is an API key.
	KeyPrincipal Kind = iota + 1
	// MemberPrincipal is a member logged in to the dashboard.
	MemberPrincipal
)

// Principal is who makes a request: what it may do (Type, Permissions),
// where (Scope) and until when. It is immutable once built; the edge builds
// one per cached key, not per request.
type Principal struct {
	Kind Kind
	// ID is the key's id, or the member's.
	ID string
	// Type is the key's type; a member acts as an admin key would.
	Type        apikey.Type
	Permissions apikey.Permissions
	Scope       Scope
	// ExpiresAt is when a key stops working; nil for keys without expiry
	// and for members.
	ExpiresAt *time.Time
	// Member is the member the principal acts for: a key's owner, or the
	// logged-in member.
	Member string
	// Role is the member's role. It is known for a logged-in member; for a
	// key, the service that needs it reads the owner and uses [WithRole].
	Role Role
	// Revoked marks a key revoked: Permits refuses it whatever it asks.
	// The edge never admits one; this keeps a stale record from acting.
	Revoked bool
	// Limited marks a key with rate limits or a quota of its own: it may
	// not hand out keys or change limits (see Need.SetsLimits), which
	// would let it escape them.
	Limited bool
	// Key is the key's record, for a key.
	Key *apikey.Record
}

// ForKey returns the principal of an API key. The record must not change
// afterwards: the principal shares it.
func ForKey(rec *apikey.Record) *Principal {
	return &Principal{
		Kind:        KeyPrincipal,
		ID:          rec.ID,
		Type:        rec.Type,
		Permissions: rec.Permissions,
		Scope: Scope{
			Org: rec.OrgID, Project: rec.Project, Environment: rec.Environment, Resources: rec.Resources,
		},
		ExpiresAt: rec.ExpiresAt,
		Member:    rec.OwnerID,
		Revoked:   rec.RevokedAt != nil,
		Limited:   rec.Limits != nil || rec.Quota != nil,
		Key:       rec,
	}
}

// ForMember returns the principal of a member logged in to the dashboard:
// organization-wide and admin-typed, with WRITE for owners and admins and
// READ only for members, so that the dashboard goes through exactly the
// checks an API key does.
func ForMember(org, member string, role Role) *Principal {
	perms := apikey.AllPermissions
	if !role.AtLeast(RoleAdmin) {
		perms, _ = apikey.ParsePermissions([]string{string(apikey.Read)})
	}
	return &Principal{
		Kind:        MemberPrincipal,
		ID:          member,
		Type:        apikey.Admin,
		Permissions: perms,
		Scope:       Organization(org),
		Member:      member,
		Role:        role,
	}
}

// Org is the principal's organization; "" for none, so that a service may
// build its Need before Permits refuses a missing principal.
func (p *Principal) Org() string {
	if p == nil {
		return ""
	}
	return p.Scope.Org
}

// Place is where a request that may name a project and an environment
// acts: those it names, or else the principal's own. What it returns still
// needs Permits; either part may be empty when neither names it.
func (p *Principal) Place(project, env string) Scope {
	s := Scope{Org: p.Org(), Project: project, Environment: env}
	if p == nil {
		return s
	}
	if s.Project == "" {
		s.Project = p.Scope.Project
	}
	if s.Environment == "" {
		s.Environment = p.Scope.Environment
	}
	return s
}

// WithRole returns a copy of p acting with role, for a key whose owner's
// role a service has just read.
func (p *Principal) WithRole(role Role) *Principal {
	c := *p
	c.Role = role
	return &c
}

// subject names the principal in messages.
func (p *Principal) subject() string {
	if p.Kind == MemberPrincipal {
		return "Your session"
	}
	return "This key"
}

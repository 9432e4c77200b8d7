package authz

import (
	"fmt"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
)

// Need is what a request needs from its principal.
type Need struct {
	// Type is the least capable key type that may make the request.
	Type apikey.Type
	// Permission is what the principal must hold: READ or WRITE.
	Permission apikey.Permission
	// Target is the part of the organization the request acts on. The zero
	// Scope means no part in particular: the request lists what the
	// principal covers (and the service asks again for each item).
	Target Scope
	// Partial also admits a principal whose scope lies inside Target
	// rather than covering it: an environment key reading its project,
	// listing the project's keys or creating keys in its environment. The
	// service then narrows the work to that part.
	Partial bool
	// Role, if set, is the least role of the member the principal acts for.
	Role Role
	// Grant, if set, is a credential the request hands out; it must not
	// exceed the principal (see [Grant]).
	Grant *Grant
	// Action names what is refused in messages about the scope, as a verb
	// phrase whose object the message supplies ("evaluate flags of"
	// project "p"); the default is "access".
	Action string
	// SetsLimits marks a change of a key's limits, quota or identity.
	SetsLimits bool
	// TypeDenial and RoleDenial, if set, are the messages of a refusal for
	// the principal's key type ("Live keys cannot use testing sessions")
	// or role ("Only owners remove owners"), instead of the generic ones.
	TypeDenial, RoleDenial string
}

// Grant is a credential a request hands out: a new key, or a key's new
// secret. Handing out more than the principal has would be privilege
// escalation, so a grant needs permissions the principal holds, an expiry
// no later than the principal's, and a scope within the principal's.
type Grant struct {
	Permissions apikey.Permissions
	ExpiresAt   *time.Time
	Scope       Scope
	// Action names the grant in messages ("create a key", "rotate a key"),
	// and Hint, if set, what the caller can do about a refusal of its
	// expiry ("set expires_in accordingly").
	Action, Hint string
}

// Permits decides whether p may do what n needs. It returns nil, or the
// *apierror.Error to answer with: 401 without a principal, 403 otherwise.
func Permits(p *Principal, n Need) error {
	if p == nil || p.Revoked {
		return apierror.InvalidKey
	}
	if !p.Type.Includes(n.Type) {
		if n.TypeDenial != "" {
			return apierror.Forbidden("%s", n.TypeDenial)
		}
		return apierror.WrongKeyType
	}
	if !p.Permissions.Has(n.Permission) {
		return lacks(p, n.Permission)
	}
	if !n.Target.IsZero() {
		covered := p.Scope.Covers(n.Target) || n.Partial && n.Target.Covers(p.Scope)
		if !covered {
			return outOfScope(p, n.Target, action(n.Action, "access"))
		}
	}
	if n.Role != "" && !p.Role.AtLeast(n.Role) {
		if n.RoleDenial != "" {
			return apierror.Forbidden("%s", n.RoleDenial)
		}
		return apierror.Forbidden("Only %s may do this", roleHolders(n.Role))
	}
	if p.Limited && (n.Grant != nil || n.SetsLimits) {
		// A key held to limits of its own could otherwise lift them, or
		// hand out a key, or another key's new secret, without them.
		what := "change rate limits"
		if n.Grant != nil {
			what = action(n.Grant.Action, "hand out a key")
		}
		return apierror.Forbidden("%s has rate limits of its own and cannot %s; use a key without limits, or the dashboard", p.subject(), what)
	}
	if g := n.Grant; g != nil {
		return grants(p, g)
	}
	return nil
}

// Allows is Permits as a predicate, for filtering lists.
func Allows(p *Principal, n Need) bool { return Permits(p, n) == nil }

func action(a, def string) string {
	if a == "" {
		return def
	}
	return a
}

func lacks(p *Principal, perm apikey.Permission) error {
	switch {
	case perm != apikey.Write:
		return apierror.Forbidden("%s lacks the READ permission", p.subject())
	case p.Kind == MemberPrincipal:
		return apierror.Forbidden("Your role (%s) is read-only; ask an owner or admin of your organization", p.Role.label())
	}
	return apierror.ReadOnlyKey
}

// outOfScope explains why p's scope does not reach t.
func outOfScope(p *Principal, t Scope, verb string) error {
	s, who := p.Scope, p.subject()
	switch {
	case s.Org != t.Org:
		return apierror.Forbidden("%s belongs to another organization", who)
	case t.Project == "" && !s.OrgWide():
		return apierror.Forbidden("%s belongs to project %q and cannot %s the whole organization; use an organization-wide admin key", who, s.Project, verb)
	case t.Project == "":
		return apierror.Forbidden("%s is limited to projects %v and cannot %s the whole organization", who, s.Resources, verb)
	case !s.OrgWide() && s.Project != t.Project:
		return apierror.Forbidden("%s belongs to project %q and cannot %s project %q", who, s.Project, verb, t.Project)
	case s.OrgWide():
		return apierror.Forbidden("%s is limited to projects %v and cannot %s project %q", who, s.Resources, verb, t.Project)
	case t.Environment == "":
		return apierror.Forbidden("%s belongs to environment %q and cannot %s the whole project %q", who, s.Environment, verb, t.Project)
	}
	return apierror.Forbidden("%s belongs to environment %q and cannot %s environment %q", who, s.Environment, verb, t.Environment)
}

func roleHolders(r Role) string {
	if r == RoleOwner {
		return "owners"
	}
	return "owners and admins"
}

// grants checks that handing out g does not exceed p.
func grants(p *Principal, g *Grant) error {
	what := action(g.Action, "hand out a key")
	if !p.Permissions.Contains(g.Permissions) {
		return apierror.Forbidden("%s cannot grant permissions it does not have (it has %v)", p.subject(), p.Permissions.List())
	}
	if p.ExpiresAt != nil && (g.ExpiresAt == nil || g.ExpiresAt.After(*p.ExpiresAt)) {
		msg := fmt.Sprintf("%s expires at %s and cannot %s that outlives it",
			p.subject(), p.ExpiresAt.UTC().Format(time.RFC3339), what)
		if g.Hint != "" {
			msg += "; " + g.Hint
		}
		return apierror.Forbidden("%s", msg)
	}
	if !p.Scope.Covers(g.Scope) {
		if g.Scope.OrgWide() && len(g.Scope.Resources) == 0 && len(p.Scope.Resources) > 0 {
			return apierror.Forbidden("%s is limited to projects %v and cannot %s without that limit; list resources", p.subject(), p.Scope.Resources, what)
		}
		if g.Scope.OrgWide() && p.Scope.OrgWide() {
			for _, r := range g.Scope.Resources {
				if !p.Scope.Covers(Project(g.Scope.Org, r)) {
					return apierror.Forbidden("%s cannot grant access to project %q, which is outside its own scope", p.subject(), r)
				}
			}
		}
		return outOfScope(p, g.Scope, what+" for")
	}
	return nil
}

package authz_test

import (
	"errors"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
)

func TestCovers(t *testing.T) {
	org := authz.Organization("o")
	scoped := authz.Scope{Org: "o", Resources: []string{"a", "b"}}
	proj := authz.Project("o", "a")
	env := authz.Environment("o", "a", "prod")
	for _, tc := range []struct {
		name string
		s, t authz.Scope
		want bool
	}{
		{"organization covers a project", org, proj, true},
		{"organization covers an environment", org, env, true},
		{"organization covers itself", org, org, true},
		{"organization covers a Scoped part of it", org, scoped, true},
		{"another organization covers nothing", authz.Organization("x"), proj, false},
		{"Scoped covers a listed project", scoped, proj, true},
		{"Scoped covers a listed project's environment", scoped, env, true},
		{"Scoped does not cover another project", scoped, authz.Project("o", "c"), false},
		{"Scoped does not cover the organization", scoped, org, false},
		{"Scoped covers a narrower Scoped scope", scoped, authz.Scope{Org: "o", Resources: []string{"b"}}, true},
		{"Scoped does not cover a wider Scoped scope", scoped, authz.Scope{Org: "o", Resources: []string{"b", "c"}}, false},
		{"project covers itself", proj, proj, true},
		{"project covers its environment", proj, env, true},
		{"project does not cover another project", proj, authz.Project("o", "b"), false},
		{"project does not cover the organization", proj, org, false},
		{"environment covers itself", env, env, true},
		{"environment does not cover its project", env, proj, false},
		{"environment does not cover a sibling", env, authz.Environment("o", "a", "staging"), false},
	} {
		if got := tc.s.Covers(tc.t); got != tc.want {
			t.Errorf("%s: %v.Covers(%v) = %v", tc.name, tc.s, tc.t, got)
		}
	}
}

func principal(typ apikey.Type, perms []string, s authz.Scope) *authz.Principal {
	ps, err := apikey.ParsePermissions(perms)
	if err != nil {
		panic(err)
	}
	return &authz.Principal{Kind: authz.KeyPrincipal, ID: "key_x", Type: typ, Permissions: ps, Scope: s}
}

func forbidden(t *testing.T, err error, message string) {
	t.Helper()
	var ae *apierror.Error
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Message != message {
		t.Fatalf("got %v, want 403 %q", err, message)
	}
}

func TestPermits(t *testing.T) {
	rw := []string{"READ", "WRITE"}
	live := principal(apikey.Live, rw, authz.Environment("o", "a", "prod"))
	need := authz.Need{Type: apikey.Admin, Permission: apikey.Read}
	if err := authz.Permits(nil, need); err != apierror.InvalidKey {
		t.Fatalf("nil principal: %v", err)
	}
	if err := authz.Permits(live, need); err != apierror.WrongKeyType {
		t.Fatalf("live on an admin route: %v", err)
	}
	forbidden(t, authz.Permits(live, authz.Need{Type: apikey.Test, Permission: apikey.Read, TypeDenial: "Live keys cannot use testing sessions"}),
		"Live keys cannot use testing sessions")

	ro := principal(apikey.Admin, []string{"READ"}, authz.Organization("o"))
	if err := authz.Permits(ro, authz.Need{Type: apikey.Admin, Permission: apikey.Write}); err != apierror.ReadOnlyKey {
		t.Fatalf("read-only key writing: %v", err)
	}
	wo := principal(apikey.Admin, []string{"WRITE"}, authz.Organization("o"))
	forbidden(t, authz.Permits(wo, need), "This key lacks the READ permission")
	member := authz.ForMember("o", "mem_1", authz.RoleMember)
	forbidden(t, authz.Permits(member, authz.Need{Type: apikey.Admin, Permission: apikey.Write}),
		"Your role (Member) is read-only; ask an owner or admin of your organization")

	// Scope, with the words of each refusal.
	proj := principal(apikey.Admin, rw, authz.Project("o", "a"))
	forbidden(t, authz.Permits(proj, authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Project("o", "b")}),
		`This key belongs to project "a" and cannot access project "b"`)
	forbidden(t, authz.Permits(proj, authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Organization("o"), Action: "create projects in"}),
		`This key belongs to project "a" and cannot create projects in the whole organization; use an organization-wide admin key`)
	scoped := principal(apikey.Admin, rw, authz.Scope{Org: "o", Resources: []string{"a"}})
	forbidden(t, authz.Permits(scoped, authz.Need{Type: apikey.Live, Permission: apikey.Read, Target: authz.Environment("o", "b", "prod"), Action: "evaluate flags of"}),
		`This key is limited to projects [a] and cannot evaluate flags of project "b"`)
	envAdmin := principal(apikey.Admin, rw, authz.Environment("o", "a", "prod"))
	forbidden(t, authz.Permits(envAdmin, authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Project("o", "a")}),
		`This key belongs to environment "prod" and cannot access the whole project "a"`)
	forbidden(t, authz.Permits(envAdmin, authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Environment("o", "a", "staging")}),
		`This key belongs to environment "prod" and cannot access environment "staging"`)
	// Partial: an environment key may act inside its project.
	if err := authz.Permits(envAdmin, authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Project("o", "a"), Partial: true}); err != nil {
		t.Fatalf("partial: %v", err)
	}
	if err := authz.Permits(envAdmin, authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Project("o", "b"), Partial: true}); err == nil {
		t.Fatal("partial admitted another project")
	}

	// Roles.
	admin := authz.ForMember("o", "mem_2", authz.RoleAdmin)
	manage := authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Organization("o"), Role: authz.RoleOwner, RoleDenial: "Only owners remove owners"}
	forbidden(t, authz.Permits(admin, manage), "Only owners remove owners")
	if err := authz.Permits(authz.ForMember("o", "mem_3", authz.RoleOwner), manage); err != nil {
		t.Fatal(err)
	}
	key := principal(apikey.Admin, rw, authz.Organization("o")) // no role known
	forbidden(t, authz.Permits(key, authz.Need{Type: apikey.Admin, Permission: apikey.Write, Role: authz.RoleAdmin}),
		"Only owners and admins may do this")
	// A revoked key's principal is refused whatever it asks.
	revoked := principal(apikey.Admin, rw, authz.Organization("o"))
	revoked.Revoked = true
	if err := authz.Permits(revoked, authz.Need{Type: apikey.Live, Permission: apikey.Read}); err != apierror.InvalidKey {
		t.Fatalf("revoked: %v", err)
	}
}

func TestGrants(t *testing.T) {
	soon := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	later := soon.Add(time.Hour)
	ro, _ := apikey.ParsePermissions([]string{"READ"})
	caller := principal(apikey.Admin, []string{"READ"}, authz.Scope{Org: "o", Resources: []string{"a"}})
	caller.ExpiresAt = &soon
	grant := func(g authz.Grant) error {
		g.Action, g.Hint = "create a key", "set expires_in accordingly"
		return authz.Permits(caller, authz.Need{Type: apikey.Admin, Permission: apikey.Read, Grant: &g})
	}
	forbidden(t, grant(authz.Grant{Permissions: apikey.AllPermissions, ExpiresAt: &soon, Scope: authz.Project("o", "a")}),
		"This key cannot grant permissions it does not have (it has [READ])")
	forbidden(t, grant(authz.Grant{Permissions: ro, ExpiresAt: &later, Scope: authz.Project("o", "a")}),
		"This key expires at 2030-01-01T00:00:00Z and cannot create a key that outlives it; set expires_in accordingly")
	forbidden(t, grant(authz.Grant{Permissions: ro, Scope: authz.Project("o", "a")}),
		"This key expires at 2030-01-01T00:00:00Z and cannot create a key that outlives it; set expires_in accordingly")
	forbidden(t, grant(authz.Grant{Permissions: ro, ExpiresAt: &soon, Scope: authz.Organization("o")}),
		"This key is limited to projects [a] and cannot create a key without that limit; list resources")
	forbidden(t, grant(authz.Grant{Permissions: ro, ExpiresAt: &soon, Scope: authz.Scope{Org: "o", Resources: []string{"a", "b"}}}),
		`This key cannot grant access to project "b", which is outside its own scope`)
	if err := grant(authz.Grant{Permissions: ro, ExpiresAt: &soon, Scope: authz.Environment("o", "a", "prod")}); err != nil {
		t.Fatal(err)
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		r, other authz.Role
		want     bool
	}{
		{authz.RoleOwner, authz.RoleAdmin, true}, {authz.RoleAdmin, authz.RoleOwner, false},
		{authz.RoleMember, authz.RoleMember, true}, {"", authz.RoleMember, false}, {"GOD", authz.RoleMember, false},
	} {
		if got := tc.r.AtLeast(tc.other); got != tc.want {
			t.Errorf("%q.AtLeast(%q) = %v", tc.r, tc.other, got)
		}
	}
	if r, err := authz.ParseRole(" admin "); err != nil || r != authz.RoleAdmin {
		t.Fatal(r, err)
	}
	if _, err := authz.ParseRole("root"); err == nil {
		t.Fatal("root is a role")
	}
	if m := authz.ForMember("o", "m", authz.RoleMember); m.Permissions.Has(apikey.Write) || !m.Permissions.Has(apikey.Read) {
		t.Fatal("a member writes")
	}
}

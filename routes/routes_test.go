package routes_test

import (
	"slices"
	"testing"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/routes"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		route        routes.Name // "" for none
		mounted      bool
		credential   routes.Credential
		style        apierror.Style
	}{
		{"POST", "/v1/evaluate", routes.Evaluate, false, routes.APIKey, apierror.REST},
		{"GET", "/v1/projects/app/environments/production/flags/x", routes.GetFlag, false, routes.APIKey, apierror.REST},
		{"GET", "/dashboard/api/v1/projects", routes.ListProjects, true, routes.Session, apierror.Dashboard},
		{"DELETE", "/dashboard/api/v1/api-keys/key_1", routes.RevokeKey, true, routes.Session, apierror.Dashboard},
		{"POST", "/dashboard/api/login", routes.DashboardLogin, false, routes.Public, apierror.Dashboard},
		{"GET", "/dashboard/api/session", routes.DashboardSession, false, routes.OptionalSession, apierror.Dashboard},
		{"GET", "/dashboard/assets/pages/keys.js", routes.DashboardAsset, false, routes.Public, apierror.Dashboard},
		{"POST", "/graphql", routes.GraphQLPost, false, routes.APIKey, apierror.GraphQL},
		{"POST", "/ofrep/v1/evaluate/flags/x", routes.OFREPEvaluate, false, routes.APIKey, apierror.OFREP},
		// Paths no route has get their family's defaults.
		{"GET", "/v1/nope", "", false, routes.APIKey, apierror.REST},
		{"GET", "/v1/projects/", "", false, routes.APIKey, apierror.REST},
		{"GET", "/V1/projects", "", false, routes.APIKey, apierror.REST},
		{"GET", "/dashboard/api/v1/nope", "", false, routes.Session, apierror.Dashboard},
		{"GET", "/dashboard/nope.js", "", false, routes.Public, apierror.Dashboard},
		{"GET", "/dashboard/api/invites/some-token", "", false, routes.Public, apierror.Dashboard},
		{"GET", "/graphql/x", "", false, routes.APIKey, apierror.GraphQL},
		// The dashboard's mount serves REST routes only, never GraphQL,
		// OFREP or the dashboard's own.
		{"POST", "/dashboard/api/graphql", "", false, routes.Public, apierror.Dashboard},
		{"POST", "/dashboard/api/v1/dashboard/api/login", "", false, routes.Session, apierror.Dashboard},
	} {
		m := routes.Lookup(tc.method, tc.path)
		var got routes.Name
		if m.Route != nil {
			got = m.Route.Name
		}
		if got != tc.route || m.Mounted != tc.mounted || m.Credential() != tc.credential || m.Style() != tc.style {
			t.Errorf("%s %s: route %q mounted %v credential %v style %v", tc.method, tc.path, got, m.Mounted, m.Credential(), m.Style())
		}
	}
}

func TestNeed(t *testing.T) {
	m := routes.Lookup("PUT", "/v1/projects/app/environments/qa/flags/f")
	if got, want := m.Need("org_1", "PUT"), (authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Environment("org_1", "app", "qa")}); !equalNeed(got, want) {
		t.Fatalf("need %+v, want %+v", got, want)
	}
	if m.Param("flag") != "f" || m.Param("nope") != "" {
		t.Fatalf("params: %q", m.Param("flag"))
	}
	m = routes.Lookup("POST", "/v1/projects")
	if got := m.Need("org_1", "POST"); !equalNeed(got, authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Organization("org_1")}) {
		t.Fatalf("create project needs %+v", got)
	}
	m = routes.Lookup("GET", "/v1/projects/app/api-keys")
	if got := m.Need("org_1", "GET"); !equalNeed(got, authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Project("org_1", "app"), Partial: true}) {
		t.Fatalf("list keys needs %+v", got)
	}
	// A path no route has needs an admin key, READ or WRITE by method.
	m = routes.Lookup("DELETE", "/v1/nope")
	if got := m.Need("org_1", "DELETE"); got.Type != apikey.Admin || got.Permission != apikey.Write || !got.Target.IsZero() {
		t.Fatalf("unknown path needs %+v", got)
	}
}

func equalNeed(a, b authz.Need) bool {
	return a.Type == b.Type && a.Permission == b.Permission && a.Partial == b.Partial &&
		a.Target.Org == b.Target.Org && a.Target.Project == b.Target.Project && a.Target.Environment == b.Target.Environment
}

func TestAllowedAndPath(t *testing.T) {
	if got := routes.Allowed("/v1/projects"); !slices.Equal(got, []string{"GET", "POST"}) {
		t.Fatalf("Allowed = %v", got)
	}
	if got := routes.Allowed("/dashboard/api/v1/api-keys/k"); !slices.Equal(got, []string{"GET", "PATCH", "DELETE"}) {
		t.Fatalf("Allowed under the mount = %v", got)
	}
	if got := routes.Allowed("/v1/nope"); len(got) != 0 {
		t.Fatalf("Allowed = %v", got)
	}
	if got := routes.ByName(routes.GetKey).Path("key_1"); got != "/v1/api-keys/key_1" {
		t.Fatalf("Path = %q", got)
	}
	if got := routes.ByName(routes.DashboardPage).Path(); got != "/dashboard/" {
		t.Fatalf("Path = %q", got)
	}
}

// TestTable checks what every route must declare.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range routes.All() {
		if seen[r.Method+" "+r.Pattern] {
			t.Errorf("%s %s is declared twice", r.Method, r.Pattern)
		}
		seen[r.Method+" "+r.Pattern] = true
		switch r.Credential {
		case routes.APIKey, routes.Session, routes.OptionalSession:
			if r.Needs.Type == 0 || r.Needs.Permission == "" {
				t.Errorf("%s needs no key type or permission", r.Name)
			}
		case routes.Public:
			if r.Needs != (routes.Capability{}) {
				t.Errorf("%s takes no credential but declares needs", r.Name)
			}
		}
		// Safe methods never ask for WRITE, changes always do, but for
		// the routes that only read whatever their method (evaluation,
		// GraphQL, logging out).
		if (r.Method == "GET" || r.Method == "HEAD") && r.Needs.Permission == apikey.Write {
			t.Errorf("%s is a %s that needs WRITE", r.Name, r.Method)
		}
		if r.Needs.Project == "" && r.Needs.Environment != "" {
			t.Errorf("%s names an environment without its project", r.Name)
		}
	}
	// Every route lookup finds itself.
	for _, r := range routes.All() {
		if r.Credential == routes.Public && r.Pattern == "/dashboard/assets/{path...}" {
			continue
		}
		if m := routes.Lookup(r.Method, r.Path("x", "y", "z")); m.Route == nil || m.Route.Name != r.Name {
			t.Errorf("%s %s does not find itself", r.Method, r.Pattern)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { routes.Lookup("POST", "/v1/evaluate") }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { routes.Lookup("GET", "/v1/projects/app/environments/production/flags/f") }); n != 0 {
		t.Fatalf("Lookup with parameters allocates %v times", n)
	}
}

func BenchmarkLookupEvaluate(b *testing.B) {
	for b.Loop() {
		routes.Lookup("POST", "/v1/evaluate")
	}
}

package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// readmeIdentity is the README's example body.
const readmeIdentity = `{"limits":[{"name":"sustained","requests":10000,"window":"1m"}],"quota":{"requests":1000000,"period":"month"}}`

var identityFields = []string{"created_at", "limits", "project", "quota", "slug", "updated_at"}

func TestIdentityEndpoints(t *testing.T) {
	s := newServer(t)
	col := "identities/" + s.orgID + "/alpha"

	// Created: 201 with the identity and where it lives.
	res := s.do(t, s.root, "PUT", "/v1/projects/alpha/identities/acme-corp", readmeIdentity)
	if res.code != http.StatusCreated {
		t.Fatalf("PUT = %d %s", res.code, res.body)
	}
	if got := res.header.Get("Location"); got != "/v1/projects/alpha/identities/acme-corp" {
		t.Fatalf("Location %q", got)
	}
	m := res.json(t)
	if got := keysOf(m); !slices.Equal(got, identityFields) {
		t.Fatalf("identity fields %q, want %q", got, identityFields)
	}
	if m["slug"] != "acme-corp" || m["project"] != "alpha" || m["created_at"] != m["updated_at"] ||
		!jsonEqual(m["limits"], []any{map[string]any{"name": "sustained", "requests": 10000.0, "window": "1m"}}) ||
		!jsonEqual(m["quota"], map[string]any{"requests": 1000000.0, "period": "month"}) {
		t.Fatalf("PUT answered %s", res.body)
	}
	if got := s.do(t, s.root, "GET", "/v1/projects/alpha/identities/acme-corp", "").json(t); !jsonEqual(got, m) {
		t.Fatalf("GET = %v, PUT answered %v", got, m)
	}
	got, err := s.svc.Identities.LookupIdentity(context.Background(), s.orgID, "alpha", "acme-corp")
	if err != nil || got == nil || got.Quota == nil || *got.Quota != (ratelimit.Quota{Requests: 1000000, Period: ratelimit.Month}) || len(got.Limits) != 1 {
		t.Fatalf("stored %+v, %v", got, err)
	}

	// Replaced whole: 200, and what the body leaves out is gone.
	res = s.do(t, s.root, "PUT", "/v1/projects/alpha/identities/acme-corp", `{"quota":{"requests":5,"period":"day"}}`)
	if res.code != http.StatusOK || res.header.Get("Location") != "" {
		t.Fatalf("replacing PUT = %d (Location %q) %s", res.code, res.header.Get("Location"), res.body)
	}
	r := res.json(t)
	if _, ok := r["limits"]; ok || r["created_at"] != m["created_at"] || !jsonEqual(r["quota"], map[string]any{"requests": 5.0, "period": "day"}) {
		t.Fatalf("replacing PUT answered %s", res.body)
	}

	// Listed by slug; a project without any lists none.
	if res := s.do(t, s.root, "PUT", "/v1/projects/alpha/identities/a-first", `{"limits":[{"name":"x","requests":1,"window":"1s"}]}`); res.code != http.StatusCreated {
		t.Fatalf("PUT = %d %s", res.code, res.body)
	}
	list := s.do(t, s.root, "GET", "/v1/projects/alpha/identities", "")
	var body struct{ Data []map[string]any }
	if err := json.Unmarshal([]byte(list.body), &body); err != nil || list.code != http.StatusOK || len(body.Data) != 2 ||
		body.Data[0]["slug"] != "a-first" || !jsonEqual(body.Data[1], r) {
		t.Fatalf("list = %d %s", list.code, list.body)
	}
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/beta/identities", ""), http.StatusOK, `{"data":[]}`+"\n")

	// Bad input: 400 naming the field, nothing written.
	before := s.snapshot(t, col)
	for _, tc := range []struct{ path, body, message string }{
		{"acme-corp", ``, "request body is required (a JSON object)"},
		{"acme-corp", `{}`, "give at least one of limits and quota"},
		{"acme-corp", `{"limits":null,"quota":null}`, "give at least one of limits and quota"},
		{"acme-corp", `{"limits":[]}`, "limits must hold 1 to 4 limits, not 0"},
		{"acme-corp", `{"identity":"acme"}`, `unknown field "identity"`},
		{"acme-corp", `{"limits":[{"name":"a","requests":1,"window":"1s"},{"name":"b","requests":1,"window":"25h"}]}`, "limits[1].window must be between 1s and 24h, not 25h"},
		{"acme-corp", `{"limits":[{"name":"a","requests":1,"window":"fortnight"}]}`, `limits[0].window must be a duration such as "1s" or "10m", not "fortnight"`},
		{"acme-corp", `{"limits":[{"name":"Per Second","requests":1,"window":"1s"}]}`, `limits[0].name "Per Second" must be lower-case letters, digits and hyphens, not starting or ending with a hyphen`},
		{"acme-corp", `{"limits":[{"name":"a","requests":"ten","window":"1s"}]}`, "limits.requests must be a number, not string"},
		{"acme-corp", `{"quota":{"requests":10,"period":"week"}}`, `quota.period must be "day" or "month", not "week"`},
		{"acme-corp", `{"quota":{"requests":0,"period":"day"}}`, "quota.requests must be at least 1, not 0"},
		{"Acme", readmeIdentity, `identity "Acme" must be lower-case letters, digits and hyphens, not starting or ending with a hyphen`},
		{"-acme", readmeIdentity, `identity "-acme" must be lower-case letters, digits and hyphens, not starting or ending with a hyphen`},
	} {
		res := s.do(t, s.root, "PUT", "/v1/projects/alpha/identities/"+tc.path, tc.body)
		wantBody(t, res, http.StatusBadRequest, errorBody("INVALID_REQUEST", tc.message))
		if s.snapshot(t, col) != before {
			t.Fatalf("PUT %s %s was refused but changed the store", tc.path, tc.body)
		}
	}

	// 404s: an unknown project, an unknown identity.
	wantBody(t, s.do(t, s.root, "PUT", "/v1/projects/nope/identities/acme", readmeIdentity), http.StatusNotFound,
		errorBody("NOT_FOUND", `project "nope" not found`))
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/nope/identities", ""), http.StatusNotFound,
		errorBody("NOT_FOUND", `project "nope" not found`))
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/alpha/identities/nobody", ""), http.StatusNotFound,
		errorBody("NOT_FOUND", `project "alpha" has no identity "nobody"`))

	// Deleted: 204, then gone.
	if res := s.do(t, s.root, "DELETE", "/v1/projects/alpha/identities/acme-corp", ""); res.code != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", res.code, res.body)
	}
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/alpha/identities/acme-corp", ""), http.StatusNotFound,
		errorBody("NOT_FOUND", `project "alpha" has no identity "acme-corp"`))
	wantBody(t, s.do(t, s.root, "DELETE", "/v1/projects/alpha/identities/acme-corp", ""), http.StatusNotFound,
		errorBody("NOT_FOUND", `project "alpha" has no identity "acme-corp"`))

	// The methods the paths have.
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/v1/projects/alpha/identities", "GET"},
		{"PATCH", "/v1/projects/alpha/identities/a-first", "GET, PUT, DELETE"},
	} {
		if res := s.do(t, s.root, tc.method, tc.path, ""); res.code != http.StatusMethodNotAllowed || res.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d Allow %q", tc.method, tc.path, res.code, res.header.Get("Allow"))
		}
	}
}

// Who may read and change identities over HTTP: the edge's route check and
// the service's agree.
func TestIdentityAuthorizationHTTP(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	if res := s.do(t, s.root, "PUT", "/v1/projects/alpha/identities/acme", readmeIdentity); res.code != http.StatusCreated {
		t.Fatalf("PUT = %d %s", res.code, res.body)
	}
	ro := s.mint(t, s.root, "", keys.CreateInput{Name: "read-only", Type: "admin", Permissions: []string{"READ"}})
	prodAdmin := s.mint(t, s.root, "alpha", keys.CreateInput{Name: "production admin", Type: "admin", Environment: "production"})
	betaAdmin := s.mint(t, s.root, "beta", keys.CreateInput{Name: "beta admin", Type: "admin"})
	limited := s.mint(t, s.root, "alpha", keys.CreateInput{Name: "limited", Type: "admin", Limits: []keys.LimitInput{{Name: "slow", Requests: 1000, Window: "1m"}}})
	live := s.mint(t, s.root, "alpha", keys.CreateInput{Name: "live", Type: "live", Environment: "production"})
	other, err := s.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	s.secrets = append(s.secrets, other.Key)
	otherRoot := &key{Record: other.Record, P: other.Principal, Secret: other.Key}
	if _, _, err := s.svc.Tenancy.CreateProject(ctx, otherRoot.P, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
		t.Fatal(err)
	}

	col := "identities/" + s.orgID + "/alpha"
	before := s.snapshot(t, col)
	for _, tc := range []struct {
		caller             *key
		method, path, body string
		code               int
		errorCode, message string
	}{
		{ro, "PUT", "acme", readmeIdentity, 403, "FORBIDDEN", "This key is read-only and cannot make changes"},
		{ro, "DELETE", "acme", "", 403, "FORBIDDEN", "This key is read-only and cannot make changes"},
		{prodAdmin, "PUT", "acme", readmeIdentity, 403, "FORBIDDEN", `This key belongs to environment "production" and cannot manage identities of the whole project "alpha"`},
		{prodAdmin, "DELETE", "acme", "", 403, "FORBIDDEN", `This key belongs to environment "production" and cannot manage identities of the whole project "alpha"`},
		{betaAdmin, "GET", "acme", "", 403, "FORBIDDEN", `This key belongs to project "beta" and cannot read identities of project "alpha"`},
		{betaAdmin, "GET", "", "", 403, "FORBIDDEN", `This key belongs to project "beta" and cannot read identities of project "alpha"`},
		{betaAdmin, "PUT", "acme", readmeIdentity, 403, "FORBIDDEN", `This key belongs to project "beta" and cannot manage identities of project "alpha"`},
		{limited, "PUT", "acme", readmeIdentity, 403, "FORBIDDEN", "This key has rate limits of its own and cannot change rate limits; use a key without limits, or the dashboard"},
		{limited, "DELETE", "acme", "", 403, "FORBIDDEN", "This key has rate limits of its own and cannot change rate limits; use a key without limits, or the dashboard"},
		{live, "GET", "", "", 403, "FORBIDDEN", "This key type does not have access to this endpoint"},
		// Another organization's alpha is another project, without acme.
		{otherRoot, "GET", "acme", "", 404, "NOT_FOUND", `project "alpha" has no identity "acme"`},
		{otherRoot, "DELETE", "acme", "", 404, "NOT_FOUND", `project "alpha" has no identity "acme"`},
	} {
		path := "/v1/projects/alpha/identities"
		if tc.path != "" {
			path += "/" + tc.path
		}
		res := s.do(t, tc.caller, tc.method, path, tc.body)
		wantBody(t, res, tc.code, errorBody(tc.errorCode, tc.message))
	}
	if s.snapshot(t, col) != before {
		t.Fatal("a refused request changed the store")
	}
	if res := s.do(t, otherRoot, "GET", "/v1/projects/alpha/identities", ""); res.body != `{"data":[]}`+"\n" {
		t.Fatalf("another organization lists %s", res.body)
	}
	// Reading is open to every admin key reaching the project, an
	// environment key and a limited key too.
	for _, c := range []*key{ro, prodAdmin, limited} {
		if res := s.do(t, c, "GET", "/v1/projects/alpha/identities/acme", ""); res.code != http.StatusOK || !strings.Contains(res.body, `"slug":"acme"`) {
			t.Errorf("GET as %s = %d %s", c.Name, res.code, res.body)
		}
		if res := s.do(t, c, "GET", "/v1/projects/alpha/identities", ""); res.code != http.StatusOK || !strings.Contains(res.body, `"slug":"acme"`) {
			t.Errorf("list as %s = %d %s", c.Name, res.code, res.body)
		}
	}
}

// Deleting the project over HTTP takes its identities with it.
func TestDeleteProjectDeletesIdentitiesHTTP(t *testing.T) {
	s := newServer(t)
	if res := s.do(t, s.root, "PUT", "/v1/projects/alpha/identities/acme", readmeIdentity); res.code != http.StatusCreated {
		t.Fatalf("PUT = %d %s", res.code, res.body)
	}
	if res := s.do(t, s.root, "DELETE", "/v1/projects/alpha", ""); res.code != http.StatusNoContent {
		t.Fatalf("DELETE project = %d %s", res.code, res.body)
	}
	if res := s.do(t, s.root, "POST", "/v1/projects", `{"slug":"alpha"}`); res.code != http.StatusCreated {
		t.Fatalf("recreate = %d %s", res.code, res.body)
	}
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/alpha/identities", ""), http.StatusOK, `{"data":[]}`+"\n")
}

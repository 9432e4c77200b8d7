package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/api"
)

// A Scoped organization-wide admin key (resources [alpha]) used to escape
// its projects: with FlagBridge-Project: beta it evaluated every flag of
// beta on the native and OFREP endpoints, opened testing sessions in beta,
// and changed and deleted the testing sessions of beta's own CI (which then
// evaluated the attacker's values). Each of those is refused now, with the
// same key still working in alpha.
func TestScopedKeyStaysInItsProjects(t *testing.T) {
	s := newEvalServer(t)
	scoped := s.mint(t, s.root, "", keys.CreateInput{Type: "admin", Resources: []string{"alpha"}})
	if scoped.Project != "" || !slices.Equal(scoped.Resources, []string{"alpha"}) {
		t.Fatalf("scoped key %+v", scoped.Record)
	}
	const limited = `This key is limited to projects [alpha] and cannot evaluate flags of project "beta"`
	refused := errorBody("FORBIDDEN", limited)
	evaluations := []struct{ path, body string }{
		{"/v1/evaluate", evalBody("new-checkout", "")},
		{"/v1/evaluate/batch", `{}`},
		{"/ofrep/v1/evaluate/flags/new-checkout", `{}`},
		{"/ofrep/v1/evaluate/flags", `{}`},
	}

	// Evaluations in beta, in every environment: refused with the exact
	// body, whichever the endpoint (OFREP keeps FlagBridge's shape for
	// refusals of the caller).
	for _, env := range []string{"production", "staging"} {
		for _, rt := range evaluations {
			res := s.serve(t, scoped, "POST", rt.path, rt.body, api.HeaderProject, "beta", api.HeaderEnvironment, env)
			if res.code != http.StatusForbidden || res.body != refused {
				t.Errorf("POST %s in beta/%s = %d %s\nwant 403 %s", rt.path, env, res.code, res.body, refused)
			}
			if strings.Contains(res.body, "beta-") || res.header.Get(api.HeaderFlagSetVersion) != "" {
				t.Errorf("POST %s in beta/%s told something of beta's flags: %v %s", rt.path, env, res.header, res.body)
			}
		}
	}
	// The same key in its own project works, on every endpoint.
	alpha := []string{api.HeaderProject, "alpha", api.HeaderEnvironment, "production"}
	wantBody(t, s.evaluate(t, scoped, evalBody("new-checkout", proCtx), alpha...), 200,
		`{"flag":"new-checkout","value":true,"variant":"on","reason":"TARGETING_MATCH","metadata":{"owner":"ana","team":"payments"}}`+"\n")
	if res := s.native(t, scoped, "POST", "/v1/evaluate/batch", `{}`, alpha...); res.code != 200 ||
		!strings.HasPrefix(res.body, `{"project":"alpha","environment":"production","version":1,"results":[`) {
		t.Errorf("batch in alpha = %d %s", res.code, res.body)
	}
	wantBody(t, s.ofrepFlag(t, scoped, "theme", `{}`, alpha...), 200,
		`{"key":"theme","value":"light","reason":"STATIC","variant":"light","metadata":{"team":"payments"}}`+"\n")
	if res := s.ofrepBulk(t, scoped, `{}`, alpha...); res.code != 200 || !strings.Contains(res.body, `{"key":"alpha-only","value":"alpha"`) {
		t.Errorf("OFREP bulk in alpha = %d %s", res.code, res.body)
	}

	// Opening a testing session in beta: refused; in alpha: fine.
	wantBody(t, s.native(t, scoped, "POST", "/v1/testing/sessions", `{"project":"beta","environment":"production"}`), 403,
		errorBody("FORBIDDEN", `This key is limited to projects [alpha] and cannot open testing sessions in project "beta"`))
	if res := s.native(t, scoped, "POST", "/v1/testing/sessions", `{"project":"alpha","environment":"production"}`); res.code != 201 ||
		res.json(t)["project"] != "alpha" {
		t.Fatalf("scoped key opening a session in alpha = %d %s", res.code, res.body)
	}

	// beta's own CI opens a session and pins a value.
	id := s.session(t, s.betaTest, "")
	if res := s.override(t, s.betaTest, id, `{"new-checkout":"beta-a"}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	ciValue := `{"flag":"new-checkout","value":"beta-a","reason":"OVERRIDE"}` + "\n"
	wantBody(t, s.evaluate(t, s.betaTest, evalBody("new-checkout", ""), api.HeaderSession, id), 200, ciValue)
	// The Scoped key can neither change nor end it: to it, the session
	// does not exist.
	notFound := errorBody("SESSION_NOT_FOUND", fmt.Sprintf("testing session %q not found or expired", id))
	wantBody(t, s.override(t, scoped, id, `{"new-checkout":"beta-b"}`), 404, notFound)
	wantBody(t, s.native(t, scoped, "DELETE", "/v1/testing/sessions/"+id, ""), 404, notFound)
	// Nor evaluate in it.
	for _, rt := range evaluations {
		res := s.serve(t, scoped, "POST", rt.path, rt.body,
			api.HeaderProject, "beta", api.HeaderEnvironment, "staging", api.HeaderSession, id)
		if res.code != http.StatusForbidden || res.body != refused {
			t.Errorf("POST %s in beta's session = %d %s\nwant 403 %s", rt.path, res.code, res.body, refused)
		}
	}
	// beta's CI still evaluates its own value.
	wantBody(t, s.evaluate(t, s.betaTest, evalBody("new-checkout", ""), api.HeaderSession, id), 200, ciValue)
	wantBody(t, s.ofrepFlag(t, s.betaTest, "new-checkout", `{}`, api.HeaderSession, id), 200,
		`{"key":"new-checkout","value":"beta-a","reason":"STATIC","metadata":{"flagbridgeOverride":true}}`+"\n")
}

// An admin key may be limited to one environment of its project
// ("environment" on an admin key): it manages and evaluates that
// environment, and sees nothing of the project's others.
func TestEnvironmentAdminKey(t *testing.T) {
	s := newEvalServer(t)
	res := s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys", `{"name":"staging admin","type":"admin","environment":"staging"}`)
	if res.code != http.StatusCreated {
		t.Fatalf("create = %d %s", res.code, res.body)
	}
	m := res.json(t)
	if m["type"] != "admin" || m["project"] != "alpha" || m["environment"] != "staging" || !jsonEqual(m["permissions"], []any{"READ", "WRITE"}) {
		t.Fatalf("created key %s", res.body)
	}
	staging := &key{Secret: m["key"].(string)}

	// It evaluates in its environment without naming it, and nowhere else.
	wantBody(t, s.evaluate(t, staging, evalBody("new-checkout", freeCtx)), 200,
		`{"flag":"new-checkout","value":true,"variant":"on","reason":"STATIC"}`+"\n")
	wantBody(t, s.evaluate(t, staging, evalBody("new-checkout", freeCtx), api.HeaderProject, "alpha", api.HeaderEnvironment, "staging"), 200,
		`{"flag":"new-checkout","value":true,"variant":"on","reason":"STATIC"}`+"\n")
	otherEnv := errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot evaluate flags of environment "production"`)
	wantBody(t, s.evaluate(t, staging, evalBody("new-checkout", freeCtx), api.HeaderEnvironment, "production"), 403, otherEnv)
	wantBody(t, s.ofrepFlag(t, staging, "new-checkout", `{}`, api.HeaderEnvironment, "production"), 403, otherEnv)
	wantBody(t, s.evaluate(t, staging, evalBody("new-checkout", freeCtx), api.HeaderProject, "beta"), 403,
		errorBody("FORBIDDEN", `This key belongs to project "alpha" and cannot evaluate flags of project "beta"`))

	// Reads of its project show only its environment.
	p := s.do(t, staging, "GET", "/v1/projects/alpha", "")
	var project struct {
		Slug         string
		Environments []struct{ Slug string }
	}
	if err := json.Unmarshal([]byte(p.body), &project); err != nil || p.code != 200 || project.Slug != "alpha" ||
		len(project.Environments) != 1 || project.Environments[0].Slug != "staging" {
		t.Fatalf("GET /v1/projects/alpha = %d %s", p.code, p.body)
	}
	envs := s.do(t, staging, "GET", "/v1/projects/alpha/environments", "")
	if envs.code != 200 || !strings.Contains(envs.body, `"slug":"staging"`) || strings.Contains(envs.body, "production") ||
		strings.Contains(envs.body, "development") {
		t.Fatalf("GET environments = %d %s", envs.code, envs.body)
	}
	if list := s.do(t, staging, "GET", "/v1/projects", ""); list.code != 200 || !strings.Contains(list.body, `"slug":"alpha"`) ||
		strings.Contains(list.body, "beta") {
		t.Fatalf("GET /v1/projects = %d %s", list.code, list.body)
	}

	// Its environment's flags, not the others'.
	if res := s.do(t, staging, "GET", "/v1/projects/alpha/environments/staging/flags", ""); res.code != 200 {
		t.Fatalf("GET staging flags = %d %s", res.code, res.body)
	}
	if res := s.do(t, staging, "PUT", "/v1/projects/alpha/environments/staging/flags/banner",
		`{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a"}`); res.code != 201 {
		t.Fatalf("PUT staging flag = %d %s", res.code, res.body)
	}
	prodRefused := errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot access environment "production"`)
	before := s.snapshot(t)
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/v1/projects/alpha/environments/production/flags", ""},
		{"GET", "/v1/projects/alpha/environments/production/flags/theme", ""},
		{"PUT", "/v1/projects/alpha/environments/production/flags", `{"flags":{}}`},
		{"PUT", "/v1/projects/alpha/environments/production/flags/banner", `{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a"}`},
		{"DELETE", "/v1/projects/alpha/environments/production/flags/theme", ""},
	} {
		wantBody(t, s.do(t, staging, rt.method, rt.path, rt.body), 403, prodRefused)
	}
	// Whole-project writes are refused.
	wantBody(t, s.do(t, staging, "POST", "/v1/projects/alpha/environments", `{"slug":"qa"}`), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot add environments to the whole project "alpha"`))
	wantBody(t, s.do(t, staging, "DELETE", "/v1/projects/alpha", ""), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot delete the whole project "alpha"`))
	wantBody(t, s.do(t, staging, "POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"admin"}`), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot create a key for the whole project "alpha"`))
	wantBody(t, s.do(t, staging, "POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production"}`), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot create a key for environment "production"`))
	if s.snapshot(t) != before {
		t.Fatal("a refused request changed the store")
	}

	// Keys of its environment: it creates them and lists only them.
	live := s.do(t, staging, "POST", "/v1/projects/alpha/api-keys", `{"name":"staging server","type":"live","environment":"staging"}`)
	if live.code != 201 || live.json(t)["environment"] != "staging" {
		t.Fatalf("create a staging live key = %d %s", live.code, live.body)
	}
	list := s.do(t, staging, "GET", "/v1/projects/alpha/api-keys", "")
	var l struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(list.body), &l); err != nil || list.code != 200 {
		t.Fatalf("list = %d %s", list.code, list.body)
	}
	ids := map[string]bool{}
	for _, k := range l.Data {
		if k["environment"] != "staging" {
			t.Errorf("the staging admin key lists a key of environment %v: %v", k["environment"], k)
		}
		ids[k["id"].(string)] = true
	}
	// Its own, the live key it made, and the staging keys the fixture
	// made (test and live): nothing of production or project-wide.
	for _, id := range []string{m["id"].(string), live.json(t)["id"].(string), s.test.ID, s.liveStaging.ID} {
		if !ids[id] {
			t.Errorf("the staging admin key does not list %s: %s", id, list.body)
		}
	}
	for _, id := range []string{s.live.ID, s.projAdmin.ID, s.readOnly.ID} {
		if ids[id] {
			t.Errorf("the staging admin key lists %s: %s", id, list.body)
		}
	}
	wantBody(t, s.do(t, staging, "GET", "/v1/api-keys/"+s.live.ID, ""), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot manage keys of environment "production"`))

	// Testing sessions of its environment, not of production.
	if res := s.native(t, staging, "POST", "/v1/testing/sessions", ""); res.code != 201 || res.json(t)["environment"] != "staging" {
		t.Fatalf("session in staging = %d %s", res.code, res.body)
	}
	wantBody(t, s.native(t, staging, "POST", "/v1/testing/sessions", `{"environment":"production"}`), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot open testing sessions in environment "production"`))
}

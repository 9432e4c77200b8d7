package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/api"
	"github.com/flagbridge/flagbridge/store"
)

// evalDoc is alpha/production's flag set: one flag per kind of result.
const evalDoc = `{
  "$evaluators": {"isPro": {"==": [{"var": "plan"}, "pro"]}},
  "metadata": {"team": "payments"},
  "flags": {
    "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
      "targeting": {"if": [{"$ref": "isPro"}, "on", null]}, "metadata": {"owner": "ana"}},
    "theme": {"state": "ENABLED", "variants": {"light": "light", "dark": "dark"}, "defaultVariant": "light"},
    "rollout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
      "targeting": {"fractional": [["on", 100]]}},
    "legacy": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
    "zero": {"state": "ENABLED", "variants": {"none": 0, "some": 5}, "defaultVariant": "none"},
    "blank": {"state": "ENABLED", "variants": {"empty": "", "x": "x"}, "defaultVariant": "empty"},
    "no-default": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": null},
    "by-plan": {"state": "ENABLED", "variants": {"free": "free", "pro": "pro"}, "defaultVariant": "free",
      "targeting": {"var": "plan"}},
    "layout": {"state": "ENABLED", "variants": {"grid": {"cols": 3}, "list": []}, "defaultVariant": "grid"},
    "alpha-only": {"state": "ENABLED", "variants": {"yes": "alpha"}, "defaultVariant": "yes"}
  }
}`

// evalKeys are evalDoc's flags in key order.
var evalKeys = []string{"alpha-only", "blank", "by-plan", "layout", "legacy", "new-checkout", "no-default", "rollout", "theme", "zero"}

// stagingDoc and betaDoc give new-checkout other answers elsewhere.
const stagingDoc = `{"flags": {
  "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
  "theme": {"state": "ENABLED", "variants": {"light": "light", "dark": "dark"}, "defaultVariant": "light"},
  "rollout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"fractional": [["on", 100]]}}
}}`

const betaDoc = `{"flags": {
  "new-checkout": {"state": "ENABLED", "variants": {"a": "beta-a", "b": "beta-b"}, "defaultVariant": "b"},
  "beta-only": {"state": "ENABLED", "variants": {"yes": true}, "defaultVariant": "yes"}
}}`

// fakeClock is a settable clock for Service.SetClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// evalServer is the request path with flags set: an organization with
// projects alpha and beta whose flags are set, and a key of each kind. The
// chain's registry follows the change feed, as on a server.
type evalServer struct {
	*server
	clock *fakeClock

	live, test, liveStaging *key
	betaLive, betaTest      *key
	projAdmin, readOnly     *key
	otherRoot, otherLive    *key
	otherTest               *key
}

func newEvalServer(t *testing.T) *evalServer {
	t.Helper()
	base := newServer(t) // an organization with projects alpha and beta
	c := &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
	base.svc.SetClock(c.Now)
	s := &evalServer{server: base, clock: c}
	s.putFlags(t, "alpha", "production", evalDoc)
	s.putFlags(t, "alpha", "staging", stagingDoc)
	s.putFlags(t, "beta", "production", betaDoc)
	s.putFlags(t, "beta", "staging", betaDoc)

	s.live = s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	s.test = s.mint(t, s.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
	s.liveStaging = s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "staging"})
	s.betaLive = s.mint(t, s.root, "beta", keys.CreateInput{Type: "live", Environment: "production"})
	s.betaTest = s.mint(t, s.root, "beta", keys.CreateInput{Type: "test", Environment: "staging"})
	s.projAdmin = s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin"})
	s.readOnly = s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin", Permissions: []string{"READ"}})

	ctx := context.Background()
	other := s.newOrg(t)
	s.otherRoot = other
	if _, _, err := s.svc.Tenancy.CreateProject(ctx, other.P, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
		t.Fatal(err)
	}
	s.otherLive = s.mint(t, other, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	s.otherTest = s.mint(t, other, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
	return s
}

// newOrg creates another organization and returns its org-wide admin key.
func (s *server) newOrg(t *testing.T) *key {
	t.Helper()
	other, err := s.svc.Bootstrap(context.Background(), admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	s.secrets = append(s.secrets, other.Key)
	return &key{Record: other.Record, P: other.Principal, Secret: other.Key}
}

// putFlags replaces a flag set through the service and waits until the
// chain's registry serves it.
func (s *server) putFlags(t *testing.T, project, env, doc string) int64 {
	t.Helper()
	fs, err := s.svc.Flags.PutFlagSet(context.Background(), s.root.P, project, env, []byte(doc), flags.Precondition{})
	if err != nil {
		t.Fatalf("PutFlagSet(%s/%s): %v", project, env, err)
	}
	s.await(t, project, env, fs.Version)
	return fs.Version
}

// await waits until the chain's registry, which the change feed
// invalidates, serves version (or a later one) of project/env: the
// evaluations that follow see the write.
func (s *server) await(t *testing.T, project, env string, version int64) {
	t.Helper()
	ref := flags.Ref{OrgID: s.orgID, Project: project, Environment: env}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.chain.Registry.Get(context.Background(), ref)
		if err == nil && c.Version >= version {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry did not serve version %d of %s within 10s (%v)", version, ref, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitWrite waits until the write that res answered (its flag-set version
// header) is served.
func (s *server) awaitWrite(t *testing.T, res response, project, env string) {
	t.Helper()
	v, err := strconv.ParseInt(res.header.Get(api.HeaderFlagSetVersion), 10, 64)
	if err != nil {
		t.Fatalf("write answered without a version: %v %s", res.header, res.body)
	}
	s.await(t, project, env, v)
}

// serve sends one request as caller with the given header pairs and
// returns the response unchecked.
func (s *server) serve(t *testing.T, caller *key, method, path, body string, header ...string) response {
	t.Helper()
	res := s.send(caller, method, path, body, header...)
	if fullKey.MatchString(res.body) {
		t.Errorf("%s %s: response holds a full key: %s", method, path, res.body)
	}
	return res
}

// native sends a request to a native endpoint and checks what holds of all
// of them: uncacheable JSON, errors shaped {"error","message"}.
func (s *server) native(t *testing.T, caller *key, method, path, body string, header ...string) response {
	t.Helper()
	res := s.serve(t, caller, method, path, body, header...)
	if got := res.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, got)
	}
	if res.code == http.StatusNoContent {
		if res.body != "" {
			t.Errorf("%s %s: 204 with body %q", method, path, res.body)
		}
		return res
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" || !json.Valid([]byte(res.body)) {
		t.Errorf("%s %s: %q body %q", method, path, ct, res.body)
	}
	if res.code >= 400 {
		m := res.json(t)
		code, _ := m["error"].(string)
		msg, _ := m["message"].(string)
		if len(m) != 2 || code == "" || msg == "" {
			t.Errorf("%s %s: error body %s, want exactly error and message", method, path, res.body)
		}
	}
	return res
}

func (s *server) evaluate(t *testing.T, caller *key, body string, header ...string) response {
	t.Helper()
	return s.native(t, caller, "POST", "/v1/evaluate", body, header...)
}

func wantVersion(t *testing.T, res response, version int64) {
	t.Helper()
	if got := res.header.Get(api.HeaderFlagSetVersion); got != strconv.FormatInt(version, 10) {
		t.Fatalf("%s = %q, want %d", api.HeaderFlagSetVersion, got, version)
	}
}

const (
	proCtx  = `{"targetingKey":"user-42","plan":"pro"}`
	freeCtx = `{"targetingKey":"user-7","plan":"free"}`
)

func evalBody(flag, ctx string) string {
	if ctx == "" {
		return fmt.Sprintf(`{"flag":%q}`, flag)
	}
	return fmt.Sprintf(`{"flag":%q,"context":%s}`, flag, ctx)
}

func TestEvaluate(t *testing.T) {
	s := newEvalServer(t)
	md := `"metadata":{"team":"payments"}`
	for _, tc := range []struct {
		flag, ctx, want string
	}{
		{"new-checkout", proCtx, `{"flag":"new-checkout","value":true,"variant":"on","reason":"TARGETING_MATCH","metadata":{"owner":"ana","team":"payments"}}`},
		{"new-checkout", freeCtx, `{"flag":"new-checkout","value":false,"variant":"off","reason":"DEFAULT","metadata":{"owner":"ana","team":"payments"}}`},
		{"new-checkout", ``, `{"flag":"new-checkout","value":false,"variant":"off","reason":"DEFAULT","metadata":{"owner":"ana","team":"payments"}}`},
		{"new-checkout", `null`, `{"flag":"new-checkout","value":false,"variant":"off","reason":"DEFAULT","metadata":{"owner":"ana","team":"payments"}}`},
		{"theme", proCtx, `{"flag":"theme","value":"light","variant":"light","reason":"STATIC",` + md + `}`},
		{"rollout", proCtx, `{"flag":"rollout","value":true,"variant":"on","reason":"SPLIT",` + md + `}`},
		{"rollout", `{}`, `{"flag":"rollout","value":false,"variant":"off","reason":"DEFAULT",` + md + `}`},
		{"legacy", proCtx, `{"flag":"legacy","value":null,"reason":"DISABLED",` + md + `}`},
		{"zero", ``, `{"flag":"zero","value":0,"variant":"none","reason":"STATIC",` + md + `}`},
		{"blank", ``, `{"flag":"blank","value":"","variant":"empty","reason":"STATIC",` + md + `}`},
		{"no-default", ``, `{"flag":"no-default","value":null,"reason":"DEFAULT",` + md + `}`},
		{"layout", ``, `{"flag":"layout","value":{"cols":3},"variant":"grid","reason":"STATIC",` + md + `}`},
		{"by-plan", proCtx, `{"flag":"by-plan","value":"pro","variant":"pro","reason":"TARGETING_MATCH",` + md + `}`},
		{"by-plan", `{"plan":"enterprise"}`, `{"flag":"by-plan","value":null,"reason":"ERROR","error_code":"GENERAL",` +
			`"error_message":"targeting of flag \"by-plan\" returned variant \"enterprise\", which the flag does not define",` + md + `}`},
	} {
		res := s.evaluate(t, s.live, evalBody(tc.flag, tc.ctx))
		if res.code != 200 || res.body != tc.want+"\n" {
			t.Errorf("evaluate %s %s = %d %s\nwant 200 %s", tc.flag, tc.ctx, res.code, res.body, tc.want)
		}
		wantVersion(t, res, 1)
	}

	notFound := errorBody("FLAG_NOT_FOUND", `flag "nope" not found in environment "production"`)
	wantBody(t, s.evaluate(t, s.live, evalBody("nope", proCtx)), 404, notFound)
	invalidCtx := errorBody("INVALID_CONTEXT", "context must be a JSON object")
	for _, ctx := range []string{`"user-42"`, `[1,2]`, `5`, `true`} {
		wantBody(t, s.evaluate(t, s.live, evalBody("theme", ctx)), 400, invalidCtx)
	}
	for _, ctx := range []string{`{"targetingKey":42}`, `{"targetingKey":{"id":"x"}}`, `{"targetingKey":true}`, `{"targetingKey":null}`} {
		wantBody(t, s.evaluate(t, s.live, evalBody("theme", ctx)), 400, errorBody("INVALID_CONTEXT", "context.targetingKey must be a string"))
	}
	for _, tc := range []struct{ body, message string }{
		{`{"context":{}}`, "flag is required"},
		{`{"flag":"","context":{}}`, "flag is required"},
		{`{"flag":"theme","ctx":{}}`, `unknown field "ctx"`},
		{`{"flag":"theme","context":{},"session":"x"}`, `unknown field "session"`},
		{`{"flag":7}`, "flag must be a string, not number"},
		{`{"flag":"theme"`, "malformed JSON: unexpected end of body"},
		{`{"flag":"theme"}{}`, "request body has data after the JSON object"},
		{``, "request body is required (a JSON object)"},
		{`["theme"]`, "request body must be a JSON object, not array"},
	} {
		wantBody(t, s.evaluate(t, s.live, tc.body), 400, errorBody("INVALID_REQUEST", tc.message))
	}
	// A bad context is reported even for an unknown flag (checked first).
	wantBody(t, s.evaluate(t, s.live, evalBody("nope", `[]`)), 400, invalidCtx)

	// Where a key evaluates: its own environment; an admin key names one.
	want := `{"flag":"new-checkout","value":true,"variant":"on","reason":"TARGETING_MATCH","metadata":{"owner":"ana","team":"payments"}}` + "\n"
	for _, c := range []struct {
		name   string
		caller *key
		header []string
	}{
		{"live naming its own", s.live, []string{api.HeaderProject, "alpha", api.HeaderEnvironment, "production"}},
		{"org admin", s.root, []string{api.HeaderProject, "alpha", api.HeaderEnvironment, "production"}},
		{"project admin", s.projAdmin, []string{api.HeaderEnvironment, "production"}},
		{"read-only admin", s.readOnly, []string{api.HeaderProject, "alpha", api.HeaderEnvironment, "production"}},
	} {
		if res := s.evaluate(t, c.caller, evalBody("new-checkout", proCtx), c.header...); res.code != 200 || res.body != want {
			t.Errorf("%s: %d %s", c.name, res.code, res.body)
		}
	}
	for _, c := range []struct {
		name   string
		caller *key
		header []string
		code   int
		body   string
	}{
		{"live naming another project", s.live, []string{api.HeaderProject, "beta"}, 403,
			errorBody("FORBIDDEN", `This key belongs to project "alpha" and cannot evaluate flags of project "beta"`)},
		{"live naming another environment", s.live, []string{api.HeaderEnvironment, "staging"}, 403,
			errorBody("FORBIDDEN", `This key belongs to environment "production" and cannot evaluate flags of environment "staging"`)},
		{"test naming another environment", s.test, []string{api.HeaderEnvironment, "production"}, 403,
			errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot evaluate flags of environment "production"`)},
		{"project admin naming another project", s.projAdmin, []string{api.HeaderProject, "beta", api.HeaderEnvironment, "production"}, 403,
			errorBody("FORBIDDEN", `This key belongs to project "alpha" and cannot evaluate flags of project "beta"`)},
		{"org admin without headers", s.root, nil, 400,
			errorBody("INVALID_REQUEST", "an organization-wide key must name the project (FlagBridge-Project header)")},
		{"org admin without environment", s.root, []string{api.HeaderProject, "alpha"}, 400,
			errorBody("INVALID_REQUEST", "a key that spans environments must name the environment (FlagBridge-Environment header)")},
		{"project admin without environment", s.projAdmin, nil, 400,
			errorBody("INVALID_REQUEST", "a key that spans environments must name the environment (FlagBridge-Environment header)")},
		{"missing environment", s.root, []string{api.HeaderProject, "alpha", api.HeaderEnvironment, "qa"}, 404,
			errorBody("NOT_FOUND", `project "alpha" has no environment "qa"`)},
		{"missing project", s.root, []string{api.HeaderProject, "gamma", api.HeaderEnvironment, "production"}, 404,
			errorBody("NOT_FOUND", `project "gamma" not found`)},
	} {
		if res := s.evaluate(t, c.caller, evalBody("new-checkout", proCtx), c.header...); res.code != c.code || res.body != c.body {
			t.Errorf("%s: %d %s\nwant %d %s", c.name, res.code, res.body, c.code, c.body)
		}
	}
}

// A key sees only its own project's and environment's flags.
func TestEvaluateIsolation(t *testing.T) {
	s := newEvalServer(t)
	value := func(t *testing.T, caller *key, flag string, header ...string) string {
		t.Helper()
		res := s.evaluate(t, caller, evalBody(flag, proCtx), header...)
		if res.code != 200 {
			return strconv.Itoa(res.code) + " " + res.json(t)["error"].(string)
		}
		b, _ := json.Marshal(res.json(t)["value"])
		return string(b)
	}
	for _, c := range []struct {
		name   string
		caller *key
		header []string
		flag   string
		want   string
	}{
		{"alpha production", s.live, nil, "new-checkout", "true"},
		{"alpha staging", s.liveStaging, nil, "new-checkout", "true"},
		{"alpha staging has no alpha-only", s.liveStaging, nil, "alpha-only", "404 FLAG_NOT_FOUND"},
		{"beta", s.betaLive, nil, "new-checkout", `"beta-b"`},
		{"beta has no alpha-only", s.betaLive, nil, "alpha-only", "404 FLAG_NOT_FOUND"},
		{"alpha has no beta-only", s.live, nil, "beta-only", "404 FLAG_NOT_FOUND"},
		{"org admin in beta", s.root, []string{api.HeaderProject, "beta", api.HeaderEnvironment, "production"}, "beta-only", "true"},
		{"other organization's alpha", s.otherLive, nil, "new-checkout", "404 FLAG_NOT_FOUND"},
		{"other organization's admin", s.otherRoot, []string{api.HeaderProject, "alpha", api.HeaderEnvironment, "production"}, "alpha-only", "404 FLAG_NOT_FOUND"},
		{"other organization's admin in beta", s.otherRoot, []string{api.HeaderProject, "beta", api.HeaderEnvironment, "production"}, "beta-only", "404 NOT_FOUND"},
	} {
		if got := value(t, c.caller, c.flag, c.header...); got != c.want {
			t.Errorf("%s: %s = %s, want %s", c.name, c.flag, got, c.want)
		}
	}
	// Staging differs from production (default "on" without targeting).
	if res := s.evaluate(t, s.liveStaging, evalBody("new-checkout", freeCtx)); !strings.Contains(res.body, `"value":true,"variant":"on","reason":"STATIC"`) {
		t.Fatalf("staging new-checkout = %s", res.body)
	}
	// A batch sees only its own set too.
	res := s.native(t, s.betaLive, "POST", "/v1/evaluate/batch", `{}`)
	if res.code != 200 || strings.Contains(res.body, "alpha") || !strings.Contains(res.body, `"project":"beta"`) {
		t.Fatalf("beta batch = %s", res.body)
	}
}

// Writes reach evaluations at once through the change feed.
func TestEvaluateFollowsWrites(t *testing.T) {
	s := newEvalServer(t)
	res := s.evaluate(t, s.live, evalBody("theme", ""))
	wantVersion(t, res, 1)
	put := s.native(t, s.root, "PUT", "/v1/projects/alpha/environments/production/flags/theme",
		`{"state":"ENABLED","variants":{"light":"light","dark":"dark"},"defaultVariant":"dark"}`)
	if put.code != 200 {
		t.Fatalf("PUT flag = %d %s", put.code, put.body)
	}
	s.awaitWrite(t, put, "alpha", "production")
	res = s.evaluate(t, s.live, evalBody("theme", ""))
	wantVersion(t, res, 2)
	if !strings.Contains(res.body, `"value":"dark"`) {
		t.Fatalf("after the write: %s", res.body)
	}
	del := s.native(t, s.root, "DELETE", "/v1/projects/alpha/environments/production/flags/theme", "")
	if del.code != 204 {
		t.Fatalf("DELETE flag = %d %s", del.code, del.body)
	}
	s.awaitWrite(t, del, "alpha", "production")
	wantBody(t, s.evaluate(t, s.live, evalBody("theme", "")), 404,
		errorBody("FLAG_NOT_FOUND", `flag "theme" not found in environment "production"`))
}

func TestEvaluateBatch(t *testing.T) {
	s := newEvalServer(t)
	batch := func(t *testing.T, caller *key, body string, header ...string) response {
		t.Helper()
		return s.native(t, caller, "POST", "/v1/evaluate/batch", body, header...)
	}
	md := `"metadata":{"team":"payments"}`
	res := batch(t, s.live, `{"flags":["new-checkout","nope","theme","legacy"],"context":`+proCtx+`}`)
	want := `{"project":"alpha","environment":"production","version":1,"results":[` +
		`{"flag":"new-checkout","value":true,"variant":"on","reason":"TARGETING_MATCH","metadata":{"owner":"ana","team":"payments"}},` +
		`{"flag":"nope","value":null,"reason":"ERROR","error_code":"FLAG_NOT_FOUND","error_message":"flag \"nope\" not found"},` +
		`{"flag":"theme","value":"light","variant":"light","reason":"STATIC",` + md + `},` +
		`{"flag":"legacy","value":null,"reason":"DISABLED",` + md + `}]}` + "\n"
	wantBody(t, res, 200, want)
	wantVersion(t, res, 1)

	// Without "flags", every flag, in key order.
	type result struct {
		Flag      string `json:"flag"`
		Reason    string `json:"reason"`
		ErrorCode string `json:"error_code"`
	}
	type answer struct {
		Project, Environment, Session string
		Version                       int64
		Results                       []result
	}
	decode := func(t *testing.T, res response) answer {
		t.Helper()
		var a answer
		if res.code != 200 {
			t.Fatalf("batch = %d %s", res.code, res.body)
		}
		if err := json.Unmarshal([]byte(res.body), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, body := range []string{`{"context":` + proCtx + `}`, `{}`, ``, `{"flags":null}`} {
		a := decode(t, batch(t, s.live, body))
		var keys []string
		for _, r := range a.Results {
			keys = append(keys, r.Flag)
		}
		if !slices.Equal(keys, evalKeys) || a.Version != 1 || a.Session != "" {
			t.Fatalf("batch %q = %+v", body, a)
		}
	}
	if got := batch(t, s.live, `{"flags":[]}`); got.code != 200 || !strings.Contains(got.body, `"results":[]`) {
		t.Fatalf("empty batch = %s", got.body)
	}
	// Per-flag errors inline: the GENERAL of a bad variant does not fail
	// the batch.
	a := decode(t, batch(t, s.live, `{"flags":["by-plan","theme"],"context":{"plan":"enterprise"}}`))
	if a.Results[0].Reason != "ERROR" || a.Results[0].ErrorCode != "GENERAL" || a.Results[1].Reason != "STATIC" {
		t.Fatalf("batch with a bad variant = %+v", a)
	}

	// Limits and refusals.
	names := make([]string, api.MaxBatchFlags+1)
	for i := range names {
		names[i] = "theme"
	}
	list, _ := json.Marshal(names)
	wantBody(t, batch(t, s.live, `{"flags":`+string(list)+`}`), 400,
		errorBody("INVALID_REQUEST", fmt.Sprintf("flags: at most %d flags per batch (got %d)", api.MaxBatchFlags, api.MaxBatchFlags+1)))
	list, _ = json.Marshal(names[:api.MaxBatchFlags])
	if a := decode(t, batch(t, s.live, `{"flags":`+string(list)+`}`)); len(a.Results) != api.MaxBatchFlags {
		t.Fatalf("%d results for %d flags", len(a.Results), api.MaxBatchFlags)
	}
	wantBody(t, batch(t, s.live, `{"context":[]}`), 400, errorBody("INVALID_CONTEXT", "context must be a JSON object"))
	wantBody(t, batch(t, s.live, `{"context":{"targetingKey":1}}`), 400, errorBody("INVALID_CONTEXT", "context.targetingKey must be a string"))
	wantBody(t, batch(t, s.live, `{"flag":"theme"}`), 400, errorBody("INVALID_REQUEST", `unknown field "flag"`))
	wantBody(t, batch(t, s.live, `{"flags":"theme"}`), 400, errorBody("INVALID_REQUEST", "flags must be an array, not string"))
	wantBody(t, batch(t, s.live, `{}`, api.HeaderEnvironment, "staging"), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "production" and cannot evaluate flags of environment "staging"`))
	if a := decode(t, batch(t, s.root, `{}`, api.HeaderProject, "beta", api.HeaderEnvironment, "production")); a.Project != "beta" || len(a.Results) != 2 {
		t.Fatalf("org admin batch in beta = %+v", a)
	}
}

// Every result of a batch comes from the version it reports, even while
// the set is being rewritten.
func TestEvaluateBatchOneVersion(t *testing.T) {
	s := newEvalServer(t)
	const flags = 6
	doc := func(v int64) string {
		var b strings.Builder
		b.WriteString(`{"flags":{`)
		for i := range flags {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"f%d":{"state":"ENABLED","variants":{"v":%d},"defaultVariant":"v"}`, i, v)
		}
		b.WriteString(`}}`)
		return b.String()
	}
	// Each write sets every flag to the version it creates.
	if v := s.putFlags(t, "alpha", "development", doc(1)); v != 1 {
		t.Fatalf("version %d", v)
	}
	dev := []string{api.HeaderProject, "alpha", api.HeaderEnvironment, "development"}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				res := s.serve(t, s.root, "POST", "/v1/evaluate/batch", `{}`, dev...)
				var a struct {
					Version int64
					Results []struct{ Value float64 }
				}
				if err := json.Unmarshal([]byte(res.body), &a); err != nil || res.code != 200 || len(a.Results) != flags {
					t.Errorf("batch = %d %s", res.code, res.body)
					return
				}
				if res.header.Get(api.HeaderFlagSetVersion) != strconv.FormatInt(a.Version, 10) {
					t.Errorf("header version %s, body version %d", res.header.Get(api.HeaderFlagSetVersion), a.Version)
				}
				for _, r := range a.Results {
					if int64(r.Value) != a.Version {
						t.Errorf("version %d holds a value of version %v: %s", a.Version, r.Value, res.body)
						return
					}
				}
				mu.Lock()
				seen[a.Version] = true
				mu.Unlock()
			}
		}()
	}
	for v := int64(2); v <= 15; v++ {
		if got := s.putFlags(t, "alpha", "development", doc(v)); got != v {
			t.Errorf("version %d, want %d", got, v)
		}
	}
	close(done)
	wg.Wait()
	if len(seen) < 2 {
		t.Logf("batches saw versions %v only", seen)
	}
}

func TestFlagSetEndpoints(t *testing.T) {
	s := newEvalServer(t)
	const base = "/v1/projects/alpha/environments/development/flags"
	etag := func(t *testing.T, res response, v int64) {
		t.Helper()
		wantVersion(t, res, v)
		if got := res.header.Get("ETag"); got != `"`+strconv.FormatInt(v, 10)+`"` {
			t.Fatalf("ETag %q, want \"%d\"", got, v)
		}
	}
	// Never written.
	res := s.native(t, s.root, "GET", base, "")
	wantBody(t, res, 200, "{\n  \"flags\": {}\n}\n")
	etag(t, res, 0)

	put := s.native(t, s.root, "PUT", base, evalDoc)
	if put.code != 200 {
		t.Fatalf("PUT = %d %s", put.code, put.body)
	}
	etag(t, put, 1)
	pm := put.json(t)
	if !slices.Equal(keysOf(pm), []string{"flags", "updated_at", "version"}) || pm["version"] != 1.0 || pm["flags"] != float64(len(evalKeys)) {
		t.Fatalf("PUT answer %s", put.body)
	}
	if ts, err := time.Parse(time.RFC3339, pm["updated_at"].(string)); err != nil || !ts.Equal(s.clock.Now()) {
		t.Fatalf("updated_at %v", pm["updated_at"])
	}
	got := s.native(t, s.root, "GET", base, "")
	etag(t, got, 1)
	var a, b any
	if err := json.Unmarshal([]byte(got.body), &a); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(evalDoc), &b)
	if !jsonEqual(a, b) {
		t.Fatalf("GET = %s\nwant the document written", got.body)
	}
	// The export round-trips.
	if put := s.native(t, s.root, "PUT", base, got.body); put.code != 200 {
		t.Fatalf("PUT of the GET = %d %s", put.code, put.body)
	} else {
		etag(t, put, 2)
	}
	again := s.native(t, s.root, "GET", base, "")
	etag(t, again, 2)
	if again.body != got.body {
		t.Fatalf("round trip changed the set:\n%s\n%s", got.body, again.body)
	}

	// Refusals leave version 2.
	for _, tc := range []struct {
		header []string
		body   string
		code   int
		want   string
	}{
		{nil, `{"flags":{"x":{"state":"ENABLED","variants":{"a":1,"b":"2"},"defaultVariant":"a"}}}`, 400,
			errorBody("INVALID_REQUEST", `invalid flag definitions: flag "x": variants mix types: "a" is a number but "b" is a string (all variants of a flag must have one type)`)},
		{nil, `{"flags":{"x":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"b"}}}`, 400,
			errorBody("INVALID_REQUEST", `invalid flag definitions: flag "x": defaultVariant "b" is not one of its variants ("a")`)},
		{nil, `{"flags":{"x":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a","targeting":{"nope":[]}}}}`, 400,
			errorBody("INVALID_REQUEST", `invalid flag definitions: flag "x": targeting: unknown operator "nope"`)},
		{nil, `{"flags":{"x":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a","targeting":{"$ref":"gone"}}}}`, 400,
			errorBody("INVALID_REQUEST", `invalid flag definitions: flag "x": targeting: $ref "gone" is not defined`)},
		{nil, `{"flags":`, 400, errorBody("INVALID_REQUEST", "invalid flag definitions: invalid JSON: unexpected end of input")},
		{nil, ``, 400, errorBody("INVALID_REQUEST", "request body is required (a flagd flag-definition document)")},
		{[]string{"If-Match", `"1"`}, `{"flags":{}}`, 412,
			errorBody("PRECONDITION_FAILED", "the flag set is at version 2, not 1; fetch it again and retry")},
		{[]string{"If-Match", `"3"`}, `{"flags":{}}`, 412,
			errorBody("PRECONDITION_FAILED", "the flag set is at version 2, not 3; fetch it again and retry")},
		{[]string{"If-Match", `garbage`}, `{"flags":{}}`, 400,
			errorBody("INVALID_REQUEST", `If-Match must be a flag-set version such as "3", not garbage`)},
		{[]string{"If-Match", `"-1"`}, `{"flags":{}}`, 400,
			errorBody("INVALID_REQUEST", `If-Match must be a flag-set version such as "3", not "-1"`)},
	} {
		wantBody(t, s.native(t, s.root, "PUT", base, tc.body, tc.header...), tc.code, tc.want)
	}
	if res := s.native(t, s.root, "GET", base, ""); res.body != got.body {
		t.Fatal("a refused PUT changed the set")
	} else {
		etag(t, res, 2)
	}
	// Current If-Match in its three spellings.
	for i, im := range []string{`"2"`, `W/"3"`, `4`} {
		res := s.native(t, s.root, "PUT", base, got.body, "If-Match", im)
		if res.code != 200 {
			t.Fatalf("If-Match %s = %d %s", im, res.code, res.body)
		}
		etag(t, res, int64(3+i))
	}

	// One flag.
	flag := base + "/banner"
	res = s.native(t, s.root, "PUT", flag, `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off","targeting":{"if":[{"$ref":"isPro"},"on","off"]}}`)
	if res.code != 201 || res.json(t)["flags"] != float64(len(evalKeys)+1) {
		t.Fatalf("PUT new flag = %d %s", res.code, res.body)
	}
	etag(t, res, 6)
	res = s.native(t, s.root, "PUT", flag, `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`, "If-Match", `"6"`)
	if res.code != 200 {
		t.Fatalf("PUT existing flag = %d %s", res.code, res.body)
	}
	etag(t, res, 7)
	res = s.native(t, s.root, "GET", flag, "")
	wantBody(t, res, 200, "{\n  \"defaultVariant\": \"on\",\n  \"state\": \"ENABLED\",\n  \"variants\": {\n    \"off\": false,\n    \"on\": true\n  }\n}\n")
	etag(t, res, 7)
	wantBody(t, s.native(t, s.root, "PUT", base+"/bad", `{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on","targeting":{"$ref":"missing"}}`), 400,
		errorBody("INVALID_REQUEST", `invalid flag definitions: flag "bad": targeting: $ref "missing" is not defined`))
	wantBody(t, s.native(t, s.root, "PUT", base+"/bad", `[true]`), 400,
		errorBody("INVALID_REQUEST", `flag "bad": the definition must be a JSON object`))
	wantBody(t, s.native(t, s.root, "PUT", flag, `{"state":"DISABLED","variants":{"on":true},"defaultVariant":"on"}`, "If-Match", `"6"`), 412,
		errorBody("PRECONDITION_FAILED", "the flag set is at version 7, not 6; fetch it again and retry"))
	wantBody(t, s.native(t, s.root, "DELETE", flag, "", "If-Match", `"6"`), 412,
		errorBody("PRECONDITION_FAILED", "the flag set is at version 7, not 6; fetch it again and retry"))
	wantBody(t, s.native(t, s.root, "DELETE", flag, "", "If-Match", `v7`), 400,
		errorBody("INVALID_REQUEST", `If-Match must be a flag-set version such as "3", not v7`))
	res = s.native(t, s.root, "DELETE", flag, "", "If-Match", `"7"`)
	if res.code != 204 {
		t.Fatalf("DELETE = %d %s", res.code, res.body)
	}
	etag(t, res, 8)
	notFound := errorBody("FLAG_NOT_FOUND", `flag "banner" not found in environment "development"`)
	wantBody(t, s.native(t, s.root, "DELETE", flag, ""), 404, notFound)
	wantBody(t, s.native(t, s.root, "GET", flag, ""), 404, notFound)
	// The rest of the set is intact.
	if res := s.native(t, s.root, "GET", base, ""); res.body != got.body {
		t.Fatalf("after PUT and DELETE of one flag:\n%s\nwant\n%s", res.body, got.body)
	} else {
		etag(t, res, 8)
	}

	// Missing projects and environments.
	for _, rt := range []struct{ method, path, body, want string }{
		{"GET", "/v1/projects/nope/environments/production/flags", "", `project "nope" not found`},
		{"PUT", "/v1/projects/nope/environments/production/flags", `{"flags":{}}`, `project "nope" not found`},
		{"GET", "/v1/projects/alpha/environments/qa/flags", "", `project "alpha" has no environment "qa"`},
		{"PUT", "/v1/projects/alpha/environments/qa/flags", `{"flags":{}}`, `project "alpha" has no environment "qa"`},
		{"GET", "/v1/projects/alpha/environments/qa/flags/theme", "", `project "alpha" has no environment "qa"`},
		{"PUT", "/v1/projects/alpha/environments/qa/flags/theme", `{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a"}`, `project "alpha" has no environment "qa"`},
		{"DELETE", "/v1/projects/alpha/environments/qa/flags/theme", "", `project "alpha" has no environment "qa"`},
	} {
		wantBody(t, s.native(t, s.root, rt.method, rt.path, rt.body), 404, errorBody("NOT_FOUND", rt.want))
	}
	for _, rt := range []struct{ method, path, allow string }{
		{"POST", base, "GET, PUT"},
		{"DELETE", base, "GET, PUT"},
		{"POST", flag, "GET, PUT, DELETE"},
		{"GET", "/v1/evaluate", "POST"},
		{"DELETE", "/v1/testing/sessions", "POST"},
	} {
		res := s.native(t, s.root, rt.method, rt.path, "")
		if res.code != 405 || res.header.Get("Allow") != rt.allow {
			t.Errorf("%s %s = %d Allow %q", rt.method, rt.path, res.code, res.header.Get("Allow"))
		}
	}
}

// Flag sets follow the admin rules over HTTP too.
func TestFlagSetAuthorizationHTTP(t *testing.T) {
	s := newEvalServer(t)
	snapshot := func() string {
		fs, err := s.svc.Flags.ReadFlagSet(context.Background(), flags.Ref{OrgID: s.orgID, Project: "alpha", Environment: "production"})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d %s", fs.Version, fs.Document)
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/projects/alpha/environments/production/flags", ""},
		{"GET", "/v1/projects/alpha/environments/production/flags/theme", ""},
		{"PUT", "/v1/projects/alpha/environments/production/flags/banner", `{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a"}`},
		{"DELETE", "/v1/projects/alpha/environments/production/flags/theme", ""},
		{"PUT", "/v1/projects/alpha/environments/production/flags", `{"flags":{}}`},
	}
	wrongType := errorBody("FORBIDDEN", "This key type does not have access to this endpoint")
	readOnly := errorBody("FORBIDDEN", "This key is read-only and cannot make changes")
	betaAdmin := s.mint(t, s.root, "beta", keys.CreateInput{Type: "admin"})
	before := snapshot()
	for _, rt := range routes {
		for _, c := range []*key{s.live, s.test} {
			wantBody(t, s.native(t, c, rt.method, rt.path, rt.body), 403, wrongType)
		}
		res := s.native(t, s.readOnly, rt.method, rt.path, rt.body)
		if rt.method == "GET" {
			if res.code != 200 {
				t.Errorf("read-only %s %s = %d %s", rt.method, rt.path, res.code, res.body)
			}
		} else {
			wantBody(t, res, 403, readOnly)
		}
		wantBody(t, s.native(t, betaAdmin, rt.method, rt.path, rt.body), 403,
			errorBody("FORBIDDEN", `This key belongs to project "beta" and cannot access project "alpha"`))
		// Another organization: the same answer as a project that does not
		// exist.
		theirs := s.native(t, s.otherRoot, rt.method, strings.Replace(rt.path, "/alpha/", "/beta/", 1), rt.body)
		missing := s.native(t, s.otherRoot, rt.method, strings.Replace(rt.path, "/alpha/", "/nope/", 1), rt.body)
		if theirs.code != 404 || strings.ReplaceAll(theirs.body, "beta", "X") != strings.ReplaceAll(missing.body, "nope", "X") {
			t.Errorf("other org %s %s = %d %s; missing %s", rt.method, rt.path, theirs.code, theirs.body, missing.body)
		}
	}
	if snapshot() != before {
		t.Fatal("a refused request changed the set")
	}
	for _, rt := range routes {
		if res := s.native(t, s.projAdmin, rt.method, rt.path, rt.body); res.code >= 300 {
			t.Errorf("project admin %s %s = %d %s", rt.method, rt.path, res.code, res.body)
		}
	}
}

// session opens a testing session over HTTP and returns its id.
func (s *evalServer) session(t *testing.T, caller *key, body string) string {
	t.Helper()
	res := s.native(t, caller, "POST", "/v1/testing/sessions", body)
	if res.code != http.StatusCreated {
		t.Fatalf("create session = %d %s", res.code, res.body)
	}
	id, _ := res.json(t)["id"].(string)
	return id
}

func (s *evalServer) override(t *testing.T, caller *key, id, overrides string) response {
	t.Helper()
	return s.native(t, caller, "POST", "/v1/testing/sessions/"+id+"/overrides", `{"overrides":`+overrides+`}`)
}

func TestSessionEndpoints(t *testing.T) {
	s := newEvalServer(t)
	now := s.clock.Now()

	res := s.native(t, s.test, "POST", "/v1/testing/sessions", "")
	if res.code != http.StatusCreated {
		t.Fatalf("create = %d %s", res.code, res.body)
	}
	m := res.json(t)
	id, _ := m["id"].(string)
	if !slices.Equal(keysOf(m), []string{"created_at", "environment", "expires_at", "id", "overrides", "project"}) ||
		!strings.HasPrefix(id, "ts_") || m["project"] != "alpha" || m["environment"] != "staging" ||
		m["created_at"] != now.Format(time.RFC3339) || m["expires_at"] != now.Add(time.Hour).Format(time.RFC3339) ||
		!jsonEqual(m["overrides"], map[string]any{}) {
		t.Fatalf("created session %s", res.body)
	}
	for ttl, d := range map[string]time.Duration{"1m": time.Minute, "2h": 2 * time.Hour, "24h": 24 * time.Hour} {
		res := s.native(t, s.test, "POST", "/v1/testing/sessions", `{"ttl":"`+ttl+`"}`)
		if res.code != 201 || res.json(t)["expires_at"] != now.Add(d).Format(time.RFC3339) {
			t.Errorf("ttl %s: %d %s", ttl, res.code, res.body)
		}
	}
	for _, tc := range []struct {
		caller *key
		body   string
		code   int
		want   string
	}{
		{s.test, `{"ttl":"30s"}`, 400, errorBody("INVALID_REQUEST", "ttl must be between 1m and 24h")},
		{s.test, `{"ttl":"25h"}`, 400, errorBody("INVALID_REQUEST", "ttl must be between 1m and 24h")},
		{s.test, `{"tll":"1h"}`, 400, errorBody("INVALID_REQUEST", `unknown field "tll"`)},
		{s.test, `{"ttl":60}`, 400, errorBody("INVALID_REQUEST", "ttl must be a string, not number")},
		{s.test, `{"environment":"production"}`, 403,
			errorBody("FORBIDDEN", `This key belongs to environment "staging" and cannot open testing sessions in environment "production"`)},
		{s.live, ``, 403, errorBody("FORBIDDEN", "This key type does not have access to this endpoint")},
		{s.root, `{"environment":"staging"}`, 400, errorBody("INVALID_REQUEST", "project is required with an organization-wide key")},
		{s.projAdmin, `{}`, 400, errorBody("INVALID_REQUEST", "environment is required with a key that spans environments")},
		{s.readOnly, `{"environment":"staging"}`, 403, errorBody("FORBIDDEN", "This key is read-only and cannot make changes")},
	} {
		wantBody(t, s.native(t, tc.caller, "POST", "/v1/testing/sessions", tc.body), tc.code, tc.want)
	}
	if res := s.native(t, s.root, "POST", "/v1/testing/sessions", `{"project":"alpha","environment":"staging"}`); res.code != 201 ||
		res.json(t)["project"] != "alpha" || res.json(t)["environment"] != "staging" {
		t.Fatalf("org admin session = %d %s", res.code, res.body)
	}

	// Overrides are checked and merged.
	res = s.override(t, s.test, id, `{"new-checkout":false,"theme":"dark"}`)
	if res.code != 200 || !jsonEqual(res.json(t)["overrides"], map[string]any{"new-checkout": false, "theme": "dark"}) || res.json(t)["id"] != id {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	res = s.override(t, s.test, id, `{"theme":"light"}`)
	if res.code != 200 || !jsonEqual(res.json(t)["overrides"], map[string]any{"new-checkout": false, "theme": "light"}) {
		t.Fatalf("merged overrides = %d %s", res.code, res.body)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"overrides":{"new-checkout":"yes"}}`, `overrides: flag "new-checkout" takes boolean values, not a string`},
		{`{"overrides":{"theme":3}}`, `overrides: flag "theme" takes string values, not a number`},
		{`{"overrides":{"nope":true}}`, `overrides: flag "nope" does not exist in environment "staging"`},
		{`{"overrides":{"theme":null}}`, `overrides: flag "theme" needs a string value`},
		{`{}`, "overrides is required (an object of flag keys and values)"},
		{`{"overrides":[]}`, "overrides must be an object, not array"},
		{``, "request body is required (a JSON object)"},
		{`{"overrides":{},"x":1}`, `unknown field "x"`},
	} {
		wantBody(t, s.native(t, s.test, "POST", "/v1/testing/sessions/"+id+"/overrides", tc.body), 400, errorBody("INVALID_REQUEST", tc.want))
	}
	res = s.override(t, s.test, id, `{"theme":"dark"}`)
	if !jsonEqual(res.json(t)["overrides"], map[string]any{"new-checkout": false, "theme": "dark"}) {
		t.Fatalf("a refused call changed the overrides: %s", res.body)
	}

	notFound := errorBody("SESSION_NOT_FOUND", fmt.Sprintf("testing session %q not found or expired", id))
	wrongType := errorBody("FORBIDDEN", "This key type does not have access to this endpoint")
	for _, c := range []*key{s.live, s.liveStaging} {
		wantBody(t, s.override(t, c, id, `{"theme":"dark"}`), 403, wrongType)
		wantBody(t, s.native(t, c, "DELETE", "/v1/testing/sessions/"+id, ""), 403, wrongType)
	}
	for _, c := range []*key{s.betaTest, s.otherTest} {
		wantBody(t, s.override(t, c, id, `{"theme":"dark"}`), 404, notFound)
		wantBody(t, s.native(t, c, "DELETE", "/v1/testing/sessions/"+id, ""), 404, notFound)
	}

	// Evaluations naming the session get its values.
	withSession := []string{api.HeaderSession, id}
	wantBody(t, s.evaluate(t, s.test, evalBody("new-checkout", freeCtx), withSession...), 200,
		`{"flag":"new-checkout","value":false,"reason":"OVERRIDE"}`+"\n")
	wantBody(t, s.evaluate(t, s.test, evalBody("new-checkout", freeCtx)), 200,
		`{"flag":"new-checkout","value":true,"variant":"on","reason":"STATIC"}`+"\n")
	// Flags it does not pin evaluate as usual.
	wantBody(t, s.evaluate(t, s.test, evalBody("rollout", freeCtx), withSession...), 200,
		`{"flag":"rollout","value":true,"variant":"on","reason":"SPLIT"}`+"\n")
	wantBody(t, s.evaluate(t, s.test, evalBody("nope", freeCtx), withSession...), 404,
		errorBody("FLAG_NOT_FOUND", `flag "nope" not found in environment "staging"`))
	// An admin key naming the environment may use it.
	wantBody(t, s.evaluate(t, s.projAdmin, evalBody("theme", ""), append(withSession, api.HeaderEnvironment, "staging")...), 200,
		`{"flag":"theme","value":"dark","reason":"OVERRIDE"}`+"\n")
	batch := s.native(t, s.test, "POST", "/v1/evaluate/batch", `{"context":`+freeCtx+`}`, withSession...)
	wantBody(t, batch, 200, `{"project":"alpha","environment":"staging","version":1,"session":"`+id+`","results":[`+
		`{"flag":"new-checkout","value":false,"reason":"OVERRIDE"},`+
		`{"flag":"rollout","value":true,"variant":"on","reason":"SPLIT"},`+
		`{"flag":"theme","value":"dark","reason":"OVERRIDE"}]}`+"\n")

	// Live keys never use sessions; other scopes cannot see this one.
	liveRefused := errorBody("FORBIDDEN", "Live keys cannot use testing sessions")
	wantBody(t, s.evaluate(t, s.liveStaging, evalBody("theme", ""), withSession...), 403, liveRefused)
	wantBody(t, s.native(t, s.liveStaging, "POST", "/v1/evaluate/batch", "", withSession...), 403, liveRefused)
	wantBody(t, s.evaluate(t, s.liveStaging, evalBody("theme", "")), 200,
		`{"flag":"theme","value":"light","variant":"light","reason":"STATIC"}`+"\n")
	prodTest := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "test", Environment: "production"})
	for _, c := range []struct {
		name   string
		caller *key
		header []string
	}{
		{"other environment", prodTest, nil},
		{"other project", s.betaTest, nil},
		{"other organization", s.otherTest, nil},
		{"admin in another environment", s.projAdmin, []string{api.HeaderEnvironment, "production"}},
	} {
		wantBody(t, s.evaluate(t, c.caller, evalBody("theme", ""), append(c.header, withSession...)...), 404, notFound)
	}
	wantBody(t, s.evaluate(t, s.test, evalBody("theme", ""), api.HeaderSession, "ts_nope"), 404,
		errorBody("SESSION_NOT_FOUND", `testing session "ts_nope" not found or expired`))

	// Two sessions in parallel never see each other's overrides.
	other := s.session(t, s.test, "")
	if res := s.override(t, s.test, other, `{"rollout":false}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				a := s.serve(t, s.test, "POST", "/v1/evaluate/batch", `{"context":`+freeCtx+`}`, api.HeaderSession, id)
				b := s.serve(t, s.test, "POST", "/v1/evaluate/batch", `{"context":`+freeCtx+`}`, api.HeaderSession, other)
				if !strings.Contains(a.body, `{"flag":"rollout","value":true,"variant":"on","reason":"SPLIT"}`) ||
					!strings.Contains(a.body, `{"flag":"theme","value":"dark","reason":"OVERRIDE"}`) {
					t.Errorf("session one: %s", a.body)
					return
				}
				if !strings.Contains(b.body, `{"flag":"rollout","value":false,"reason":"OVERRIDE"}`) ||
					!strings.Contains(b.body, `{"flag":"theme","value":"light","variant":"light","reason":"STATIC"}`) ||
					!strings.Contains(b.body, `{"flag":"new-checkout","value":true,"variant":"on","reason":"STATIC"}`) {
					t.Errorf("session two: %s", b.body)
					return
				}
			}
		}()
	}
	wg.Wait()

	// Deleting ends it at once.
	if res := s.native(t, s.test, "DELETE", "/v1/testing/sessions/"+id, ""); res.code != 204 {
		t.Fatalf("delete = %d %s", res.code, res.body)
	}
	wantBody(t, s.evaluate(t, s.test, evalBody("theme", ""), withSession...), 404, notFound)
	wantBody(t, s.native(t, s.test, "DELETE", "/v1/testing/sessions/"+id, ""), 404, notFound)
	wantBody(t, s.override(t, s.test, id, `{"theme":"dark"}`), 404, notFound)

	// Expiry: a session stops applying at its end, and the sweep deletes it.
	short := s.session(t, s.test, `{"ttl":"1m"}`)
	if res := s.override(t, s.test, short, `{"theme":"dark"}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	s.clock.Advance(time.Minute - time.Second)
	wantBody(t, s.evaluate(t, s.test, evalBody("theme", ""), api.HeaderSession, short), 200,
		`{"flag":"theme","value":"dark","reason":"OVERRIDE"}`+"\n")
	s.clock.Advance(time.Second)
	wantBody(t, s.evaluate(t, s.test, evalBody("theme", ""), api.HeaderSession, short), 404,
		errorBody("SESSION_NOT_FOUND", fmt.Sprintf("testing session %q not found or expired", short)))
	// Sessions are stored per organization.
	stored := func() error {
		return s.st.View(context.Background(), func(r store.Reader) error {
			_, err := r.Get("testing-sessions/"+s.orgID, short)
			return err
		})
	}
	if err := stored(); err != nil {
		t.Fatalf("the expired session is not stored before the sweep: %v", err)
	}
	if n, err := s.svc.Flags.SweepSessions(context.Background()); err != nil || n < 1 {
		t.Fatalf("SweepSessions = %d, %v", n, err)
	}
	if err := stored(); err != store.ErrNotFound {
		t.Fatalf("the expired session is still stored: %v", err)
	}
	// The other session (an hour long) still applies.
	if res := s.evaluate(t, s.test, evalBody("rollout", freeCtx), api.HeaderSession, other); !strings.Contains(res.body, `"reason":"OVERRIDE"`) {
		t.Fatalf("other session after the sweep: %s", res.body)
	}
}

// If-Match: * asks only that the set exists, which every environment's does.
func TestIfMatchStar(t *testing.T) {
	s := newServer(t)
	base := "/v1/projects/alpha/environments/production/flags"
	for _, path := range []string{base, base + "/x"} {
		body := `{"flags":{}}`
		if path != base {
			body = `{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a"}`
		}
		if res := s.native(t, s.root, "PUT", path, body, "If-Match", "*"); res.code != 200 && res.code != 201 {
			t.Fatalf("PUT %s with If-Match *: %d %s", path, res.code, res.body)
		}
	}
}

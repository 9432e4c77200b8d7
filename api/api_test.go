package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/api"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/router"
	"github.com/flagbridge/flagbridge/store"
)

// The tests of this package send every request through the request path
// that ships (internal/testchain: the edge guard in front of the router,
// over a real store), with real keys in the Authorization header, so that
// they exercise the route table, the guard's authorization and the
// handlers together.

// origin is where the tests send requests: HTTPS, as the edge requires.
const origin = "https://flagbridge.test"

// key is an API key a test calls with: its record, its principal (for
// calls to the services) and its secret (for requests).
type key struct {
	*apikey.Record
	P      *authz.Principal
	Secret string
}

// server is the request path over a file store, with an organization, its
// org-wide admin key and projects alpha and beta.
type server struct {
	chain *testchain.Chain
	svc   *admin.Service
	st    store.Store
	orgID string
	root  *key
	// secrets are every key issued so far; after the response that issued
	// it, none may appear in any response, nor may its digest.
	secrets []string
}

// testLimits are the guard's limits in these tests: high enough that no
// test is rate limited, since the tests here are about the API, not the
// limits (which the edge's tests cover).
func testLimits() *edge.Config {
	cfg := edge.DefaultConfig()
	for _, t := range apikey.Types {
		cfg.Limits[t] = ratelimit.PerMinute(1_000_000)
	}
	cfg.Unauthenticated = ratelimit.PerMinute(1_000_000)
	return &cfg
}

func newServer(t *testing.T) *server {
	t.Helper()
	return newServerWith(t, nil)
}

// newServerWith is newServer with the chain over wrap(st), if wrap is set.
func newServerWith(t *testing.T, wrap func(store.Store) store.Store) *server {
	t.Helper()
	file, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	var st store.Store = file
	if wrap != nil {
		st = wrap(file)
	}
	c := testchain.New(st, testchain.Options{Config: testLimits()})
	t.Cleanup(c.Close) // before the store closes: cleanups run last first
	boot, err := c.Admin.Bootstrap(context.Background(), admin.BootstrapInput{OwnerEmail: "owner@example.com", OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{chain: c, svc: c.Admin, st: st, orgID: boot.Organization.ID,
		root: &key{Record: boot.Record, P: boot.Principal, Secret: boot.Key}}
	s.secrets = append(s.secrets, boot.Key)
	for _, p := range []string{"alpha", "beta"} {
		if _, _, err := s.svc.Tenancy.CreateProject(context.Background(), s.root.P, tenancy.CreateProjectInput{Slug: p}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

type response struct {
	code   int
	header http.Header
	body   string
}

// json decodes the body into a generic object.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

var fullKey = regexp.MustCompile(apikey.SecretPattern)

// send serves one request through the chain, with caller's secret as the
// bearer token (none if caller is nil) and the given header pairs.
func (s *server) send(caller *key, method, path, body string, header ...string) response {
	return s.sendFrom(caller, "", "", method, path, body, header...)
}

// sendFrom is send from a page of pageOrigin (no Origin header if "") at
// client address addr (httptest's default if "").
func (s *server) sendFrom(caller *key, pageOrigin, addr, method, path, body string, header ...string) response {
	r := httptest.NewRequest(method, origin+path, strings.NewReader(body))
	if addr != "" {
		r.RemoteAddr = addr
	}
	if pageOrigin != "" {
		r.Header.Set("Origin", pageOrigin)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if caller != nil {
		r.Header.Set("Authorization", "Bearer "+caller.Secret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	s.chain.ServeHTTP(w, r)
	return response{code: w.Code, header: w.Header(), body: w.Body.String()}
}

// do serves one request as caller and checks what must hold of every
// response: uncacheable, JSON (unless 204), errors shaped
// {"error","message"}, and no secret or digest except the new secret in the
// response that creates or rotates a key.
func (s *server) do(t *testing.T, caller *key, method, path, body string) response {
	t.Helper()
	res := s.send(caller, method, path, body)

	if got := res.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, got)
	}
	if res.code == http.StatusNoContent {
		if res.body != "" {
			t.Errorf("%s %s: 204 with body %q", method, path, res.body)
		}
	} else {
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		if !json.Valid([]byte(res.body)) {
			t.Errorf("%s %s: invalid JSON body %q", method, path, res.body)
		}
	}
	if res.code >= 400 {
		m := res.json(t)
		code, _ := m["error"].(string)
		msg, _ := m["message"].(string)
		if len(m) != 2 || code == "" || msg == "" {
			t.Errorf("%s %s: error body %s, want exactly error and message", method, path, res.body)
		}
	}
	if strings.Contains(strings.ToLower(res.body), "digest") {
		t.Errorf("%s %s: response mentions a digest: %s", method, path, res.body)
	}
	for _, secret := range s.secrets {
		if strings.Contains(res.body, secret) {
			t.Errorf("%s %s: response holds the secret %s issued earlier", method, path, apikey.Hint(secret))
		}
		if strings.Contains(res.body, apikey.DigestOf(secret).String()) {
			t.Errorf("%s %s: response holds the digest of %s", method, path, apikey.Hint(secret))
		}
	}
	issuing := method == http.MethodPost && res.code < 300 &&
		(strings.HasSuffix(path, "/api-keys") || strings.HasSuffix(path, "/rotate"))
	found := fullKey.FindAllString(res.body, -1)
	switch {
	case issuing && len(found) != 1:
		t.Errorf("%s %s: response holds %d keys, want the new one: %s", method, path, len(found), res.body)
	case !issuing && len(found) != 0:
		t.Errorf("%s %s: response holds a full key: %s", method, path, res.body)
	}
	if issuing {
		s.secrets = append(s.secrets, found...)
	}
	return res
}

// errorBody is the exact body of an API error.
func errorBody(code, message string) string {
	b, _ := json.Marshal(map[string]string{"error": code, "message": message})
	// json.Marshal sorts map keys: error, message, as apierror writes them.
	return string(b)
}

func wantBody(t *testing.T, res response, code int, body string) {
	t.Helper()
	if res.code != code || res.body != body {
		t.Fatalf("got %d %s\nwant %d %s", res.code, res.body, code, body)
	}
}

func keysOf(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// mint creates a key through the service, as caller.
func (s *server) mint(t *testing.T, caller *key, project string, in keys.CreateInput) *key {
	t.Helper()
	if in.Name == "" {
		in.Name = "k"
	}
	k, err := s.svc.Keys.CreateKey(context.Background(), caller.P, project, in)
	if err != nil {
		t.Fatal(err)
	}
	s.secrets = append(s.secrets, k.Secret)
	return &key{Record: k.Record, P: authz.ForKey(k.Record), Secret: k.Secret}
}

// snapshot returns the raw documents of the key collections and projects,
// and of the extra collections named.
func (s *server) snapshot(t *testing.T, extra ...string) string {
	t.Helper()
	var b strings.Builder
	err := s.st.View(context.Background(), func(r store.Reader) error {
		for _, c := range slices.Concat([]string{"keys/" + s.orgID, "key-digests", "key-use", "projects/" + s.orgID,
			"environments/" + s.orgID + "/alpha", "environments/" + s.orgID + "/beta"}, extra) {
			items, err := r.List(c)
			if err != nil {
				return err
			}
			for _, it := range items {
				fmt.Fprintf(&b, "%s/%s=%s\n", c, it.ID, it.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var allRoutes = []struct{ method, path, body string }{
	{"GET", "/v1/projects", ""},
	{"POST", "/v1/projects", `{"slug":"gamma"}`},
	{"GET", "/v1/projects/alpha", ""},
	{"DELETE", "/v1/projects/alpha", ""},
	{"GET", "/v1/projects/alpha/environments", ""},
	{"POST", "/v1/projects/alpha/environments", `{"slug":"qa"}`},
	{"GET", "/v1/projects/alpha/api-keys", ""},
	{"POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production","expires_in":"1h"}`},
	{"GET", "/v1/api-keys/{id}", ""},
	{"PATCH", "/v1/api-keys/{id}", `{"name":"renamed"}`},
	{"DELETE", "/v1/api-keys/{id}", ""},
	{"POST", "/v1/api-keys/{id}/rotate", ""},
	{"GET", "/v1/projects/alpha/identities", ""},
	{"PUT", "/v1/projects/alpha/identities/acme", `{"quota":{"requests":10,"period":"day"}}`},
	{"DELETE", "/v1/projects/alpha/identities/acme", ""},
}

// A request without a key, or with one no record has, is refused before any
// route: 401 with the Bearer challenge, and nothing changes.
func TestNoCallerIsUnauthorized(t *testing.T) {
	s := newServer(t)
	k := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin"})
	unknown, err := apikey.Generate(apikey.Admin)
	if err != nil {
		t.Fatal(err)
	}
	before := s.snapshot(t)
	for _, c := range []struct {
		caller  *key
		message string
	}{
		{nil, "Missing API key"},
		{&key{Secret: unknown}, "Invalid or expired API key"},
		{&key{Secret: "fb_admin_" + strings.Repeat("x", 36)}, "Invalid or expired API key"},
	} {
		for _, rt := range slices.Concat(allRoutes, []struct{ method, path, body string }{{"GET", "/v1/nope", ""}}) {
			res := s.do(t, c.caller, rt.method, strings.ReplaceAll(rt.path, "{id}", k.ID), rt.body)
			wantBody(t, res, http.StatusUnauthorized, errorBody("UNAUTHORIZED", c.message))
			if got := res.header.Get("WWW-Authenticate"); got != `Bearer realm="flagbridge"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		}
	}
	if s.snapshot(t) != before {
		t.Fatal("an unauthenticated request changed the store")
	}
}
func TestRouting(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
		body         string
	}{
		{"GET", "/v1/nope", 404, "", errorBody("NOT_FOUND", "no endpoint GET /v1/nope")},
		{"GET", "/", 404, "", errorBody("NOT_FOUND", "no endpoint GET /")},
		{"GET", "/v1/projects/", 404, "", errorBody("NOT_FOUND", "no endpoint GET /v1/projects/")},
		{"GET", "/v1/projects/alpha/", 404, "", errorBody("NOT_FOUND", "no endpoint GET /v1/projects/alpha/")},
		{"GET", "/v1/projects/alpha/flags", 404, "", errorBody("NOT_FOUND", "no endpoint GET /v1/projects/alpha/flags")},
		{"GET", "/v1/api-keys", 404, "", errorBody("NOT_FOUND", "no endpoint GET /v1/api-keys")},
		{"POST", "/v1/api-keys/key_x/rotate/now", 404, "", errorBody("NOT_FOUND", "no endpoint POST /v1/api-keys/key_x/rotate/now")},
		{"PUT", "/v1/projects", 405, "GET, POST", errorBody("METHOD_NOT_ALLOWED", "PUT is not allowed on /v1/projects; use GET or POST")},
		{"HEAD", "/v1/projects", 405, "GET, POST", errorBody("METHOD_NOT_ALLOWED", "HEAD is not allowed on /v1/projects; use GET or POST")},
		{"POST", "/v1/projects/alpha", 405, "GET, DELETE", errorBody("METHOD_NOT_ALLOWED", "POST is not allowed on /v1/projects/alpha; use GET or DELETE")},
		{"PATCH", "/v1/projects/alpha/environments", 405, "GET, POST", errorBody("METHOD_NOT_ALLOWED", "PATCH is not allowed on /v1/projects/alpha/environments; use GET or POST")},
		{"DELETE", "/v1/projects/alpha/api-keys", 405, "GET, POST", errorBody("METHOD_NOT_ALLOWED", "DELETE is not allowed on /v1/projects/alpha/api-keys; use GET or POST")},
		{"PUT", "/v1/api-keys/key_x", 405, "GET, PATCH, DELETE", errorBody("METHOD_NOT_ALLOWED", "PUT is not allowed on /v1/api-keys/key_x; use GET or PATCH or DELETE")},
		{"GET", "/v1/api-keys/key_x/rotate", 405, "POST", errorBody("METHOD_NOT_ALLOWED", "GET is not allowed on /v1/api-keys/key_x/rotate; use POST")},
	} {
		res := s.do(t, s.root, tc.method, tc.path, "")
		if res.code != tc.code || res.body != tc.body || res.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d Allow %q %s\nwant %d Allow %q %s", tc.method, tc.path,
				res.code, res.header.Get("Allow"), res.body, tc.code, tc.allow, tc.body)
		}
	}
}

// deadlineStore records the deadline of every storage call made through it.
type deadlineStore struct {
	store.Store
	mu sync.Mutex
	// left holds, for each call, the time its context had left, or -1 for
	// a context without a deadline.
	left []time.Duration
}

func (d *deadlineStore) note(ctx context.Context) {
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	d.mu.Lock()
	d.left = append(d.left, left)
	d.mu.Unlock()
}

func (d *deadlineStore) View(ctx context.Context, fn func(store.Reader) error) error {
	d.note(ctx)
	return d.Store.View(ctx, fn)
}

func (d *deadlineStore) Update(ctx context.Context, fn func(store.Writer) error) error {
	d.note(ctx)
	return d.Store.Update(ctx, fn)
}

// take returns the calls recorded since the last take.
func (d *deadlineStore) take() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.left
	d.left = nil
	return out
}

// The evaluation routes run without the router's request timeout (their
// storage reads, of a testing session here, bound themselves), sparing the
// hot path a timer; the other routes run under it.
func TestEvaluationRoutesAreUntimed(t *testing.T) {
	ds := &deadlineStore{}
	s := newServerWith(t, func(st store.Store) store.Store { ds.Store = st; return ds })
	s.putFlags(t, "alpha", "staging", stagingDoc)
	test := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
	// Warm the key and flag-set caches, whose loads have deadlines of
	// their own.
	if res := s.send(test, "POST", "/v1/evaluate", evalBody("theme", "")); res.code != 200 {
		t.Fatalf("evaluate = %d %s", res.code, res.body)
	}
	ds.take()

	res := s.send(test, "POST", "/v1/testing/sessions", "")
	if res.code != 201 {
		t.Fatalf("create session = %d %s", res.code, res.body)
	}
	calls := ds.take()
	if len(calls) == 0 {
		t.Fatal("creating a session made no storage call")
	}
	for _, left := range calls {
		if left < router.RequestTimeout-5*time.Second || left > router.RequestTimeout {
			t.Errorf("POST /v1/testing/sessions: a storage call had %v left, want the request timeout %v", left, router.RequestTimeout)
		}
	}
	id, _ := res.json(t)["id"].(string)

	for _, rt := range []struct{ path, body string }{
		{"/v1/evaluate", evalBody("theme", "")},
		{"/v1/evaluate/batch", ""},
		{"/ofrep/v1/evaluate/flags/theme", ""},
		{"/ofrep/v1/evaluate/flags", ""},
	} {
		if res := s.send(test, "POST", rt.path, rt.body, api.HeaderSession, id); res.code != 200 {
			t.Fatalf("POST %s = %d %s", rt.path, res.code, res.body)
		}
		calls := ds.take()
		if len(calls) == 0 {
			t.Fatalf("POST %s in a session made no storage call", rt.path)
		}
		for _, left := range calls {
			if left != -1 {
				t.Errorf("POST %s: a storage call ran under a deadline (%v left)", rt.path, left)
			}
		}
	}
}

func TestProjectEndpoints(t *testing.T) {
	s := newServer(t)
	res := s.do(t, s.root, "POST", "/v1/projects", `{"slug":"web-app","name":"Web app"}`)
	if res.code != http.StatusCreated || res.header.Get("Location") != "/v1/projects/web-app" {
		t.Fatalf("create = %d Location %q %s", res.code, res.header.Get("Location"), res.body)
	}
	var p struct {
		Slug         string    `json:"slug"`
		Name         string    `json:"name"`
		CreatedAt    time.Time `json:"created_at"`
		Environments []map[string]any
	}
	m := res.json(t)
	if got := keysOf(m); !slices.Equal(got, []string{"created_at", "environments", "name", "slug"}) {
		t.Fatalf("project fields %q", got)
	}
	if err := json.Unmarshal([]byte(res.body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Slug != "web-app" || p.Name != "Web app" || time.Since(p.CreatedAt) > time.Minute {
		t.Fatalf("project = %+v", p)
	}
	var envs []string
	for _, e := range p.Environments {
		if got := keysOf(e); !slices.Equal(got, []string{"created_at", "name", "slug"}) {
			t.Fatalf("environment fields %q", got)
		}
		envs = append(envs, e["slug"].(string))
	}
	slices.Sort(envs)
	if !slices.Equal(envs, []string{"development", "production", "staging"}) {
		t.Fatalf("environments %q", envs)
	}

	// GET of the Location answers the same document.
	got := s.do(t, s.root, "GET", res.header.Get("Location"), "")
	if got.code != http.StatusOK || got.body != res.body {
		t.Fatalf("GET Location = %d %s\nwant %s", got.code, got.body, res.body)
	}

	list := s.do(t, s.root, "GET", "/v1/projects", "")
	var l struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(list.body), &l); err != nil || list.code != 200 || len(list.json(t)) != 1 {
		t.Fatalf("list = %d %s", list.code, list.body)
	}
	var slugs []string
	for _, d := range l.Data {
		if got := keysOf(d); !slices.Equal(got, []string{"created_at", "name", "slug"}) {
			t.Fatalf("listed project fields %q", got)
		}
		slugs = append(slugs, d["slug"].(string))
	}
	if !slices.Equal(slugs, []string{"alpha", "beta", "web-app"}) {
		t.Fatalf("listed %q", slugs)
	}

	wantBody(t, s.do(t, s.root, "POST", "/v1/projects", `{"slug":"web-app"}`), 409,
		errorBody("CONFLICT", `project "web-app" already exists`))
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects", `{"slug":"Web App"}`), 400,
		errorBody("INVALID_REQUEST", `slug "Web App" must be lower-case letters, digits and hyphens, not starting or ending with a hyphen`))
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects", `{"name":"x"}`), 400, errorBody("INVALID_REQUEST", "slug is required"))
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/nope", ""), 404, errorBody("NOT_FOUND", `project "nope" not found`))
	wantBody(t, s.do(t, s.root, "DELETE", "/v1/projects/nope", ""), 404, errorBody("NOT_FOUND", `project "nope" not found`))

	del := s.do(t, s.root, "DELETE", "/v1/projects/web-app", "")
	if del.code != http.StatusNoContent {
		t.Fatalf("delete = %d %s", del.code, del.body)
	}
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/web-app", ""), 404, errorBody("NOT_FOUND", `project "web-app" not found`))
	wantBody(t, s.do(t, s.root, "DELETE", "/v1/projects/web-app", ""), 404, errorBody("NOT_FOUND", `project "web-app" not found`))

	// A project-scoped key sees only its project; an empty list is [].
	pk := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin"})
	if res := s.do(t, pk, "GET", "/v1/projects", ""); res.code != 200 || !strings.Contains(res.body, `"slug":"alpha"`) || strings.Contains(res.body, "beta") {
		t.Fatalf("project key lists %s", res.body)
	}
	s.do(t, s.root, "DELETE", "/v1/projects/alpha", "")
	s.do(t, s.root, "DELETE", "/v1/projects/beta", "")
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects", ""), 200, `{"data":[]}`+"\n")
}

func TestEnvironmentEndpoints(t *testing.T) {
	s := newServer(t)
	res := s.do(t, s.root, "GET", "/v1/projects/alpha/environments", "")
	var l struct {
		Data []struct {
			Slug      string    `json:"slug"`
			Name      string    `json:"name"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(res.body), &l); err != nil || res.code != 200 || len(l.Data) != 3 {
		t.Fatalf("list = %d %s", res.code, res.body)
	}

	res = s.do(t, s.root, "POST", "/v1/projects/alpha/environments", `{"slug":"qa","name":"QA"}`)
	if res.code != http.StatusCreated {
		t.Fatalf("create = %d %s", res.code, res.body)
	}
	m := res.json(t)
	if !slices.Equal(keysOf(m), []string{"created_at", "name", "slug"}) || m["slug"] != "qa" || m["name"] != "QA" {
		t.Fatalf("created environment %s", res.body)
	}
	res = s.do(t, s.root, "GET", "/v1/projects/alpha/environments", "")
	if err := json.Unmarshal([]byte(res.body), &l); err != nil || len(l.Data) != 4 {
		t.Fatalf("list after create = %s", res.body)
	}
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects/alpha/environments", `{"slug":"qa"}`), 409,
		errorBody("CONFLICT", `environment "qa" already exists in project "alpha"`))
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects/nope/environments", `{"slug":"qa"}`), 404,
		errorBody("NOT_FOUND", `project "nope" not found`))
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/nope/environments", ""), 404,
		errorBody("NOT_FOUND", `project "nope" not found`))
	// GET /v1/projects/{p} shows the new environment too.
	if res := s.do(t, s.root, "GET", "/v1/projects/alpha", ""); !strings.Contains(res.body, `"slug":"qa"`) {
		t.Fatalf("project without its new environment: %s", res.body)
	}
}

// keyFields are the fields of a key in every response; "key" is added in
// the responses that create or rotate one.
var keyFields = []string{"created_at", "environment", "expires_at", "hint", "id", "last_used_at", "name",
	"permissions", "project", "revoked_at", "rotated_at", "status", "type"}

func TestKeyEndpoints(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	res := s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys", `{"name":"Production server","type":"live","environment":"production"}`)
	if res.code != http.StatusCreated {
		t.Fatalf("create = %d %s", res.code, res.body)
	}
	m := res.json(t)
	if got := keysOf(m); !slices.Equal(got, slices.Sorted(slices.Values(append(slices.Clone(keyFields), "key")))) {
		t.Fatalf("created key fields %q", got)
	}
	id, _ := m["id"].(string)
	secret, _ := m["key"].(string)
	if res.header.Get("Location") != "/v1/api-keys/"+id || !strings.HasPrefix(id, "key_") {
		t.Fatalf("Location %q for id %q", res.header.Get("Location"), id)
	}
	if typ, err := apikey.Parse(secret); err != nil || typ != apikey.Live {
		t.Fatalf("key %q: %v %v", secret, typ, err)
	}
	want := map[string]any{
		"id": id, "name": "Production server", "type": "live", "project": "alpha", "environment": "production",
		"permissions": []any{"READ", "WRITE"}, "hint": "fb_live_..." + secret[len(secret)-4:], "status": "active",
		"created_at": m["created_at"], "expires_at": nil, "revoked_at": nil, "rotated_at": nil, "last_used_at": nil,
		"key": secret,
	}
	if !jsonEqual(m, want) {
		t.Fatalf("created key\n got %v\nwant %v", m, want)
	}
	if rec, err := s.svc.Keys.LookupKey(ctx, apikey.DigestOf(secret)); err != nil || rec == nil || rec.ID != id {
		t.Fatalf("the created key does not authenticate: %+v %v", rec, err)
	}
	createdAt, err := time.Parse(time.RFC3339, m["created_at"].(string))
	if err != nil || time.Since(createdAt) > time.Minute {
		t.Fatalf("created_at %v", m["created_at"])
	}

	// An admin key has no environment; expires_in sets expires_at.
	res = s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys", `{"name":"ci","type":"admin","permissions":["READ"],"expires_in":"30d"}`)
	am := res.json(t)
	if res.code != 201 || am["environment"] != nil || !jsonEqual(am["permissions"], []any{"READ"}) || am["type"] != "admin" {
		t.Fatalf("admin key = %d %s", res.code, res.body)
	}
	ca, _ := time.Parse(time.RFC3339, am["created_at"].(string))
	if am["expires_at"] != ca.Add(30*24*time.Hour).Format(time.RFC3339) {
		t.Fatalf("expires_at %v, created_at %v", am["expires_at"], am["created_at"])
	}

	// GET (the Location) and list: the same fields without the key.
	get := s.do(t, s.root, "GET", "/v1/api-keys/"+id, "")
	gm := get.json(t)
	delete(want, "key")
	if get.code != 200 || !jsonEqual(gm, want) {
		t.Fatalf("GET key = %d %v\nwant %v", get.code, gm, want)
	}
	if err := s.svc.Keys.RecordUsage(ctx, map[string]time.Time{id: createdAt.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	list := s.do(t, s.root, "GET", "/v1/projects/alpha/api-keys", "")
	if list.code != 200 {
		t.Fatalf("list = %d %s", list.code, list.body)
	}
	rec, _ := s.svc.Keys.LookupKey(ctx, apikey.DigestOf(secret))
	for _, leak := range []string{secret, rec.Digest, secret[len("fb_live_"):]} {
		if strings.Contains(list.body, leak) || strings.Contains(get.body, leak) {
			t.Fatalf("list or GET holds %q", leak)
		}
	}
	var l struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(list.body), &l); err != nil || len(l.Data) != 2 {
		t.Fatalf("list = %s", list.body)
	}
	for _, k := range l.Data {
		if got := keysOf(k); !slices.Equal(got, keyFields) {
			t.Fatalf("listed key fields %q", got)
		}
	}
	i := slices.IndexFunc(l.Data, func(k map[string]any) bool { return k["id"] == id })
	if i < 0 || l.Data[i]["last_used_at"] != createdAt.Add(time.Second).Format(time.RFC3339) {
		t.Fatalf("listed keys %v, want %s with its last use", l.Data, id)
	}

	// Rotation: new secret, same id and settings; the old one stops.
	rot := s.do(t, s.root, "POST", "/v1/api-keys/"+id+"/rotate", "")
	rm := rot.json(t)
	newSecret, _ := rm["key"].(string)
	if rot.code != 200 || rm["id"] != id || newSecret == "" || newSecret == secret || rm["rotated_at"] == nil ||
		rm["previous_key_valid_until"] != nil || rm["hint"] != "fb_live_..."+newSecret[len(newSecret)-4:] {
		t.Fatalf("rotate = %d %s", rot.code, rot.body)
	}
	for _, f := range []string{"name", "type", "project", "environment", "permissions", "created_at", "expires_at", "status"} {
		if !jsonEqual(rm[f], gm[f]) {
			t.Errorf("rotation changed %s: %v -> %v", f, gm[f], rm[f])
		}
	}
	if r, _ := s.svc.Keys.LookupKey(ctx, apikey.DigestOf(secret)); r != nil {
		t.Fatal("the old secret still authenticates")
	}

	// With a grace period the old secret keeps working until it ends.
	rot2 := s.do(t, s.root, "POST", "/v1/api-keys/"+id+"/rotate", `{"grace_period":"1h"}`)
	r2 := rot2.json(t)
	if rot2.code != 200 || r2["previous_key_valid_until"] == nil {
		t.Fatalf("rotate with grace = %d %s", rot2.code, rot2.body)
	}
	until, _ := time.Parse(time.RFC3339, r2["previous_key_valid_until"].(string))
	if d := time.Until(until); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("previous_key_valid_until %v is not an hour away", until)
	}
	if r, _ := s.svc.Keys.LookupKey(ctx, apikey.DigestOf(newSecret)); r == nil {
		t.Fatal("the previous secret stopped during its grace period")
	} else if _, ok := r.ValidUntil(apikey.DigestOf(newSecret).String(), time.Now()); !ok {
		t.Fatal("the previous secret is not valid during its grace period")
	}
	if got := s.do(t, s.root, "GET", "/v1/api-keys/"+id, "").json(t); got["previous_key_valid_until"] != r2["previous_key_valid_until"] {
		t.Fatalf("GET during grace: %v", got)
	}

	// Revocation, twice.
	rev := s.do(t, s.root, "DELETE", "/v1/api-keys/"+id, "")
	vm := rev.json(t)
	if rev.code != 200 || vm["revoked_at"] == nil || vm["status"] != "revoked" || vm["id"] != id {
		t.Fatalf("revoke = %d %s", rev.code, rev.body)
	}
	if _, ok := vm["key"]; ok {
		t.Fatal("revocation returned a key")
	}
	again := s.do(t, s.root, "DELETE", "/v1/api-keys/"+id, "")
	if again.code != 200 || again.json(t)["revoked_at"] != vm["revoked_at"] {
		t.Fatalf("second revoke = %d %s, first %s", again.code, again.body, rev.body)
	}
	wantBody(t, s.do(t, s.root, "POST", "/v1/api-keys/"+id+"/rotate", ""), 409,
		errorBody("CONFLICT", fmt.Sprintf("API key %q is revoked and cannot be rotated", id)))

	for _, rt := range []struct{ method, path string }{
		{"GET", "/v1/api-keys/key_nope"}, {"DELETE", "/v1/api-keys/key_nope"}, {"POST", "/v1/api-keys/key_nope/rotate"},
	} {
		wantBody(t, s.do(t, s.root, rt.method, rt.path, ""), 404, errorBody("NOT_FOUND", `API key "key_nope" not found`))
	}
	wantBody(t, s.do(t, s.root, "GET", "/v1/projects/nope/api-keys", ""), 404, errorBody("NOT_FOUND", `project "nope" not found`))
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects/nope/api-keys", `{"name":"n","type":"admin"}`), 404,
		errorBody("NOT_FOUND", `project "nope" not found`))
}

// withoutRate returns h without the rate-limit headers, which count the
// caller's own requests (one more on each), and the request's id, each
// request's own, so that two answers can be compared for what they say of
// the resource; it checks they are there.
func withoutRate(t *testing.T, h http.Header) http.Header {
	t.Helper()
	if h.Get("X-Ratelimit-Limit") == "" || h.Get(router.RequestIDHeader) == "" {
		t.Errorf("no rate-limit headers or request id in %v", h)
	}
	out := h.Clone()
	delete(out, router.RequestIDHeader)
	for name := range out {
		if strings.HasPrefix(name, "X-Ratelimit-") {
			delete(out, name)
		}
	}
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// Every decoding problem is a 400 naming it, and writes nothing.
func TestDecodeErrors(t *testing.T) {
	s := newServer(t)
	k := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	rotate := "/v1/api-keys/" + k.ID + "/rotate"
	for _, tc := range []struct {
		path, body, message string
	}{
		{"/v1/projects", `{"slug":"a","x":1}`, `unknown field "x"`},
		{"/v1/projects", `{"slug":"a","Extra":{"y":2}}`, `unknown field "Extra"`},
		{"/v1/projects", `{"slug":1}`, "slug must be a string, not number"},
		{"/v1/projects", `{"slug":"a","name":["x"]}`, "name must be a string, not array"},
		{"/v1/projects", `{"slug":`, "malformed JSON: unexpected end of body"},
		{"/v1/projects", `{"slug":"a"`, "malformed JSON: unexpected end of body"},
		{"/v1/projects", `{slug}`, "malformed JSON at byte 2: invalid character 's' looking for beginning of object key string"},
		{"/v1/projects", `{"slug":"a",}`, "malformed JSON at byte 13: invalid character '}' looking for beginning of object key string"},
		{"/v1/projects", `{"slug":"a"} {"slug":"b"}`, "request body has data after the JSON object"},
		{"/v1/projects", `{"slug":"a"}}`, "request body has data after the JSON object"},
		{"/v1/projects", `{"slug":"a"}]`, "request body has data after the JSON object"},
		{"/v1/projects", `{"slug":"a"} x`, "request body has data after the JSON object"},
		{"/v1/projects", `[{"slug":"a"}]`, "request body must be a JSON object, not array"},
		{"/v1/projects", `"a"`, "request body must be a JSON object, not string"},
		{"/v1/projects", ``, "request body is required (a JSON object)"},
		{"/v1/projects", " \n\t ", "request body is required (a JSON object)"},
		{"/v1/projects/alpha/environments", `{"slug":"qa","color":"red"}`, `unknown field "color"`},
		{"/v1/projects/alpha/environments", ``, "request body is required (a JSON object)"},
		{"/v1/projects/alpha/api-keys", `{"name":5,"type":"live","environment":"production"}`, "name must be a string, not number"},
		{"/v1/projects/alpha/api-keys", `{"name":true}`, "name must be a string, not bool"},
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production","permissions":"READ"}`, "permissions must be an array, not string"},
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"admin","expires_in":30}`, "expires_in must be a string, not number"},
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"admin","secret":"fb_admin_x"}`, `unknown field "secret"`},
		{"/v1/projects/alpha/api-keys", ``, "request body is required (a JSON object)"},
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"admin"}}`, "request body has data after the JSON object"},
		// Rotation's body is optional, but checked when present.
		{rotate, `{"grace_period":60}`, "grace_period must be a string, not number"},
		{rotate, `{"grace":"1h"}`, `unknown field "grace"`},
		{rotate, `{"grace_period":"1h"`, "malformed JSON: unexpected end of body"},
		{rotate, `{}{}`, "request body has data after the JSON object"},
		// Decoded fine, refused by the service, naming the field.
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production","expires_in":"400d"}`, "expires_in must be between 1m and 365d"},
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"mars"}`, `environment: project "alpha" has no environment "mars"`},
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"root","environment":"production"}`, `type: unknown key type "root" (want client, live, test or admin)`},
		{"/v1/projects/alpha/api-keys", `{"name":"n","type":"admin","permissions":["ROOT"]}`, `permissions: unknown permission "ROOT" (want READ or WRITE)`},
		{"/v1/projects/alpha/api-keys", `{"type":"admin"}`, "name is required"},
		{rotate, `{"grace_period":"30d"}`, "grace_period must be at most 7d"},
	} {
		before := s.snapshot(t)
		res := s.do(t, s.root, "POST", tc.path, tc.body)
		if res.code != 400 || res.body != errorBody("INVALID_REQUEST", tc.message) {
			t.Errorf("POST %s %q = %d %s\nwant 400 %s", tc.path, tc.body, res.code, res.body, errorBody("INVALID_REQUEST", tc.message))
		}
		if s.snapshot(t) != before {
			t.Errorf("POST %s %q failed but changed the store", tc.path, tc.body)
		}
	}
	// The key is unchanged by all of that.
	if r, _ := s.svc.Keys.LookupKey(context.Background(), apikey.DigestOf(k.Secret)); r == nil || r.RotatedAt != nil {
		t.Fatal("a refused rotation rotated the key")
	}
	// An empty body is fine where the body is optional.
	if res := s.do(t, s.root, "POST", rotate, ""); res.code != 200 {
		t.Fatalf("rotate without body = %d %s", res.code, res.body)
	}
	if res := s.do(t, s.root, "POST", rotate, "  {}\n"); res.code != 200 {
		t.Fatalf("rotate with {} = %d %s", res.code, res.body)
	}
}

func TestBodySizeLimit(t *testing.T) {
	s := newServer(t)
	pad := func(body string, size int) string { return body + strings.Repeat(" ", size-len(body)) }
	if api.MaxBodyBytes != 64<<10 {
		t.Fatalf("MaxBodyBytes = %d, want 64 KiB", api.MaxBodyBytes)
	}
	res := s.do(t, s.root, "POST", "/v1/projects", pad(`{"slug":"big"}`, api.MaxBodyBytes))
	if res.code != http.StatusCreated {
		t.Fatalf("a body of exactly 64 KiB = %d %s", res.code, res.body)
	}
	tooBig := errorBody("INVALID_REQUEST", "request body is larger than 65536 bytes")
	before := s.snapshot(t)
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects", pad(`{"slug":"bigger"}`, api.MaxBodyBytes+1)), 400, tooBig)
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects", `{"slug":"huge","name":"`+strings.Repeat("x", 1<<20)+`"}`), 400, tooBig)
	if s.snapshot(t) != before {
		t.Fatal("an oversized request changed the store")
	}
	k := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin"})
	before = s.snapshot(t)
	wantBody(t, s.do(t, s.root, "POST", "/v1/api-keys/"+k.ID+"/rotate", pad("", api.MaxBodyBytes+1)), 400, tooBig)
	wantBody(t, s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys", pad(`{"name":"n","type":"admin"}`, 100<<10)), 400, tooBig)
	if s.snapshot(t) != before {
		t.Fatal("an oversized request changed the store")
	}
}

func TestAuthorizationHTTP(t *testing.T) {
	s := newServer(t)
	live := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	test := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
	ro := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin", Permissions: []string{"READ"}})
	rw := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin"})
	short := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin", ExpiresIn: "1h"})
	alphaKey := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	betaKey := s.mint(t, s.root, "beta", keys.CreateInput{Type: "live", Environment: "production"})

	wrongType := errorBody("FORBIDDEN", "This key type does not have access to this endpoint")
	readOnly := errorBody("FORBIDDEN", "This key is read-only and cannot make changes")
	for _, c := range []*key{live, test} {
		before := s.snapshot(t)
		for _, rt := range allRoutes {
			wantBody(t, s.do(t, c, rt.method, strings.ReplaceAll(rt.path, "{id}", alphaKey.ID), rt.body), 403, wrongType)
		}
		if s.snapshot(t) != before {
			t.Fatalf("a %s key changed the store", c.Type)
		}
	}

	before := s.snapshot(t)
	for _, rt := range allRoutes {
		res := s.do(t, ro, rt.method, strings.ReplaceAll(rt.path, "{id}", alphaKey.ID), rt.body)
		if rt.method == "GET" {
			if res.code != 200 {
				t.Errorf("read-only %s %s = %d %s", rt.method, rt.path, res.code, res.body)
			}
			continue
		}
		if res.code != 403 || res.body != readOnly {
			t.Errorf("read-only %s %s = %d %s", rt.method, rt.path, res.code, res.body)
		}
	}
	if s.snapshot(t) != before {
		t.Fatal("a read-only key changed the store")
	}

	for _, tc := range []struct {
		caller       *key
		method, path string
		body         string
		code         int
		message      string
	}{
		// The edge refuses it, before the service: its route acts on the
		// whole organization.
		{rw, "POST", "/v1/projects", `{"slug":"gamma"}`, 403,
			`This key belongs to project "alpha" and cannot create projects in the whole organization; use an organization-wide admin key`},
		{rw, "GET", "/v1/projects/beta", "", 403, `This key belongs to project "alpha" and cannot access project "beta"`},
		{rw, "DELETE", "/v1/projects/beta", "", 403, `This key belongs to project "alpha" and cannot delete project "beta"`},
		{rw, "GET", "/v1/projects/beta/environments", "", 403, `This key belongs to project "alpha" and cannot access project "beta"`},
		{rw, "POST", "/v1/projects/beta/environments", `{"slug":"qa"}`, 403, `This key belongs to project "alpha" and cannot add environments to project "beta"`},
		{rw, "GET", "/v1/projects/beta/api-keys", "", 403, `This key belongs to project "alpha" and cannot access project "beta"`},
		{rw, "POST", "/v1/projects/beta/api-keys", `{"name":"n","type":"admin"}`, 403, `This key belongs to project "alpha" and cannot create keys in project "beta"`},
		{rw, "GET", "/v1/api-keys/" + betaKey.ID, "", 403, `This key belongs to project "alpha" and cannot manage keys of project "beta"`},
		{rw, "DELETE", "/v1/api-keys/" + betaKey.ID, "", 403, `This key belongs to project "alpha" and cannot manage keys of project "beta"`},
		{rw, "PATCH", "/v1/api-keys/" + betaKey.ID, `{"identity":"acme"}`, 403, `This key belongs to project "alpha" and cannot manage keys of project "beta"`},
		{rw, "POST", "/v1/api-keys/" + betaKey.ID + "/rotate", "", 403, `This key belongs to project "alpha" and cannot manage keys of project "beta"`},
		{rw, "GET", "/v1/api-keys/" + s.root.ID, "", 403, `This key belongs to project "alpha" and cannot manage keys of the whole organization; use an organization-wide admin key`},
		{rw, "DELETE", "/v1/api-keys/" + s.root.ID, "", 403, `This key belongs to project "alpha" and cannot manage keys of the whole organization; use an organization-wide admin key`},
		{rw, "PATCH", "/v1/api-keys/" + s.root.ID, `{"identity":"acme"}`, 403, `This key belongs to project "alpha" and cannot manage keys of the whole organization; use an organization-wide admin key`},
		{rw, "POST", "/v1/api-keys/" + s.root.ID + "/rotate", "", 403, `This key belongs to project "alpha" and cannot manage keys of the whole organization; use an organization-wide admin key`},
		{ro, "POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production","permissions":["READ"]}`, 403,
			"This key is read-only and cannot make changes"},
		{short, "POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production"}`, 403,
			fmt.Sprintf("This key expires at %s and cannot create a key that outlives it; set expires_in accordingly", short.ExpiresAt.Format(time.RFC3339))},
		{short, "POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production","expires_in":"2h"}`, 403,
			fmt.Sprintf("This key expires at %s and cannot create a key that outlives it; set expires_in accordingly", short.ExpiresAt.Format(time.RFC3339))},
		{short, "POST", "/v1/api-keys/" + alphaKey.ID + "/rotate", "", 403,
			fmt.Sprintf("This key expires at %s and cannot rotate a key that outlives it", short.ExpiresAt.Format(time.RFC3339))},
	} {
		before := s.snapshot(t)
		res := s.do(t, tc.caller, tc.method, tc.path, tc.body)
		if res.code != tc.code || res.body != errorBody("FORBIDDEN", tc.message) {
			t.Errorf("%s %s as %s = %d %s\nwant %d %s", tc.method, tc.path, tc.caller.Name, res.code, res.body, tc.code, errorBody("FORBIDDEN", tc.message))
		}
		if s.snapshot(t) != before {
			t.Errorf("%s %s was refused but changed the store", tc.method, tc.path)
		}
	}

	// What a project admin may do in its own project.
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/v1/projects/alpha", ""},
		{"POST", "/v1/projects/alpha/environments", `{"slug":"qa"}`},
		{"POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"admin"}`},
		{"GET", "/v1/api-keys/" + alphaKey.ID, ""},
		{"PATCH", "/v1/api-keys/" + alphaKey.ID, `{"limits":[{"name":"burst","requests":10,"window":"1s"}]}`},
		{"POST", "/v1/api-keys/" + alphaKey.ID + "/rotate", ""},
		{"DELETE", "/v1/api-keys/" + alphaKey.ID, ""},
	} {
		if res := s.do(t, rw, rt.method, rt.path, rt.body); res.code >= 300 {
			t.Errorf("project admin %s %s = %d %s", rt.method, rt.path, res.code, res.body)
		}
	}
	if res := s.do(t, short, "POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production","expires_in":"30m"}`); res.code != 201 {
		t.Errorf("expiring key creating a shorter-lived one = %d %s", res.code, res.body)
	}
}

// Another organization's keys and projects answer exactly like missing ones.
func TestOtherOrganizationHTTP(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	other, err := s.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	s.secrets = append(s.secrets, other.Key)
	otherRoot := &key{Record: other.Record, P: other.Principal, Secret: other.Key}
	if _, _, err := s.svc.Tenancy.CreateProject(ctx, otherRoot.P, tenancy.CreateProjectInput{Slug: "theirs"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.svc.Tenancy.CreateProject(ctx, otherRoot.P, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
		t.Fatal(err)
	}
	theirKey := s.mint(t, otherRoot, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	projectAdmin := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin"})

	const missing = "key_00000000000missing"
	same := func(t *testing.T, caller *key, method, path, id, missingID, body string) {
		t.Helper()
		a := s.do(t, caller, method, strings.ReplaceAll(path, "{}", id), body)
		b := s.do(t, caller, method, strings.ReplaceAll(path, "{}", missingID), body)
		if a.code != http.StatusNotFound || a.code != b.code || strings.ReplaceAll(a.body, id, "X") != strings.ReplaceAll(b.body, missingID, "X") ||
			!maps.EqualFunc(withoutRate(t, a.header), withoutRate(t, b.header), slices.Equal) {
			t.Errorf("%s %s: other org's %d %v %s\nmissing %d %v %s", method, path, a.code, a.header, a.body, b.code, b.header, b.body)
		}
	}
	for _, c := range []*key{s.root, projectAdmin} {
		for _, id := range []string{theirKey.ID, other.Record.ID} {
			same(t, c, "GET", "/v1/api-keys/{}", id, missing, "")
			same(t, c, "DELETE", "/v1/api-keys/{}", id, missing, "")
			same(t, c, "PATCH", "/v1/api-keys/{}", id, missing, `{"identity":"acme"}`)
			same(t, c, "POST", "/v1/api-keys/{}/rotate", id, missing, `{"grace_period":"1h"}`)
		}
	}
	same(t, s.root, "GET", "/v1/projects/{}", "theirs", "nothere", "")
	same(t, s.root, "DELETE", "/v1/projects/{}", "theirs", "nothere", "")
	same(t, s.root, "GET", "/v1/projects/{}/environments", "theirs", "nothere", "")
	same(t, s.root, "POST", "/v1/projects/{}/environments", "theirs", "nothere", `{"slug":"qa"}`)
	same(t, s.root, "GET", "/v1/projects/{}/api-keys", "theirs", "nothere", "")
	same(t, s.root, "POST", "/v1/projects/{}/api-keys", "theirs", "nothere", `{"name":"n","type":"admin"}`)

	// Their key is untouched, and does not show in our alpha.
	if r, _ := s.svc.Keys.LookupKey(ctx, apikey.DigestOf(theirKey.Secret)); r == nil || r.RevokedAt != nil || r.RotatedAt != nil || r.Identity != "" {
		t.Fatalf("the other org's key was changed: %+v", r)
	}
	if res := s.do(t, s.root, "GET", "/v1/projects/alpha/api-keys", ""); strings.Contains(res.body, theirKey.ID) {
		t.Fatal("the other org's key is listed")
	}
	if res := s.do(t, s.root, "GET", "/v1/projects", ""); strings.Contains(res.body, "theirs") {
		t.Fatal("the other org's project is listed")
	}
}

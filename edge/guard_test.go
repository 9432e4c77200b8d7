package edge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/store"
)

// countingSource counts the lookups that reach the real key source.
type countingSource struct {
	KeySource
	n atomic.Int64
}

func (c *countingSource) LookupKey(ctx context.Context, d apikey.Digest) (*apikey.Record, error) {
	c.n.Add(1)
	return c.KeySource.LookupKey(ctx, d)
}

// countingLimiter counts the checks that reach the real limiter, and
// remembers the buckets they spent from.
type countingLimiter struct {
	ratelimit.Limiter
	n       atomic.Int64
	mu      sync.Mutex
	buckets []string
}

func (c *countingLimiter) Allow(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Result, error) {
	c.note(key)
	return c.Limiter.Allow(ctx, key, l)
}

func (c *countingLimiter) AllowN(ctx context.Context, key string, l ratelimit.Limit, n int) (ratelimit.Result, error) {
	c.note(key)
	return c.Limiter.AllowN(ctx, key, l, n)
}

func (c *countingLimiter) AllowAll(ctx context.Context, group string, checks []ratelimit.Check, n int) (ratelimit.MultiResult, error) {
	c.note(group)
	return c.Limiter.AllowAll(ctx, group, checks, n)
}

func (c *countingLimiter) note(key string) {
	c.n.Add(1)
	c.mu.Lock()
	c.buckets = append(c.buckets, key)
	c.mu.Unlock()
}

// lastBucket is the bucket of the latest check.
func (c *countingLimiter) lastBucket() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buckets) == 0 {
		return ""
	}
	return c.buckets[len(c.buckets)-1]
}

// countingSessions counts the session lookups that reach the identity
// service.
type countingSessions struct {
	SessionSource
	n atomic.Int64
}

func (c *countingSessions) SessionPrincipal(ctx context.Context, token string) (*authz.Principal, string, error) {
	c.n.Add(1)
	return c.SessionSource.SessionPrincipal(ctx, token)
}

// fixture is a guard over a real admin service on the embedded store, with
// one organization, projects "app" and "other", and keys of every kind;
// dashboard sessions come from the same service's identity.
type fixture struct {
	t        *testing.T
	svc      *admin.Service
	guard    *Guard
	source   *countingSource
	sessions *countingSessions
	limiter  *countingLimiter
	keys     map[string]string // name -> secret
	records  map[string]*apikey.Record
	// org is the bootstrap key's principal: organization-wide admin.
	org *authz.Principal
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st, ratelimit.NewMemory(), cfg)
}

func newFixtureOn(t *testing.T, st store.Store, lim ratelimit.Limiter, cfg Config) *fixture {
	t.Helper()
	ctx := context.Background()
	svc := admin.New(st)
	f := &fixture{t: t, svc: svc, keys: map[string]string{}, records: map[string]*apikey.Record{}}
	f.source = &countingSource{KeySource: svc.Keys}
	f.sessions = &countingSessions{SessionSource: svc.Identity}
	f.limiter = &countingLimiter{Limiter: lim}
	f.guard = NewGuard(cfg, NewKeyCache(f.source, KeyCacheOptions{}), f.sessions, f.limiter, nil)

	boot, err := svc.Bootstrap(ctx, admin.BootstrapInput{OwnerEmail: ownerEmail, OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	f.org = boot.Principal
	f.keys["org"], f.records["org"] = boot.Key, boot.Record
	for _, p := range []string{"app", "other"} {
		if _, _, err := svc.Tenancy.CreateProject(ctx, boot.Principal, tenancy.CreateProjectInput{Slug: p}); err != nil {
			t.Fatal(err)
		}
	}
	f.mint("live", keys.CreateInput{Name: "live", Type: "live", Environment: "production"})
	f.mint("test", keys.CreateInput{Name: "test", Type: "test", Environment: "staging"})
	f.mint("admin", keys.CreateInput{Name: "admin", Type: "admin"})
	f.mint("admin-ro", keys.CreateInput{Name: "admin ro", Type: "admin", Permissions: []string{"READ"}})
	f.mint("test-ro", keys.CreateInput{Name: "test ro", Type: "test", Environment: "staging", Permissions: []string{"READ"}})
	return f
}

// ownerEmail is the organization's first owner, who can log in to the
// dashboard once given a password (see fixture.login).
const ownerEmail = "owner@example.com"

func (f *fixture) mint(name string, in keys.CreateInput) string {
	f.t.Helper()
	k, err := f.svc.Keys.CreateKey(context.Background(), f.org, "app", in)
	if err != nil {
		f.t.Fatal(err)
	}
	f.keys[name], f.records[name] = k.Secret, k.Record
	return k.Secret
}

// response is what a client saw.
type response struct {
	status  int
	header  http.Header
	body    string
	reached bool           // the next handler ran
	authz   string         // the Authorization header the next handler saw
	key     *apikey.Record // the key handed to the next handler
	adm     *Admission     // the admission handed to the next handler
}

// do sends a request through the guard to a next handler that answers 200.
func (f *fixture) do(method, path, auth string, in Request, p Policy) response {
	f.t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return f.serve(r, in, p, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ok")
	})
}

func (f *fixture) serve(r *http.Request, in Request, p Policy, next http.HandlerFunc) response {
	f.t.Helper()
	w := httptest.NewRecorder()
	var out response
	d := f.guard.Check(r, in, p)
	if adm, ok := d.Apply(w, r, p); ok {
		if d.Admission() != adm {
			f.t.Fatal("Apply admitted another admission than the decision's")
		}
		out.reached, out.adm = true, adm
		if adm.Principal != nil {
			out.key = adm.Principal.Key
			if adm.Entry != nil && adm.Entry.Key != out.key {
				f.t.Fatalf("admission's entry holds key %+v, its principal %+v", adm.Entry.Key, out.key)
			}
		}
		out.authz = r.Header.Get("Authorization")
		if next != nil {
			next(adm.Writer(), r)
		}
	} else if d.Admission() != nil {
		f.t.Fatal("a refused decision has an admission")
	}
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	out.status, out.header, out.body = res.StatusCode, res.Header, string(body)
	return out
}

var tlsReq = Request{HTTPS: true, ClientIP: "192.0.2.1"}

func bearer(k string) string { return "Bearer " + k }

const (
	bodyInvalid  = `{"error":"UNAUTHORIZED","message":"Invalid or expired API key"}`
	bodyMissing  = `{"error":"UNAUTHORIZED","message":"Missing API key"}`
	bodyHTTPS    = `{"error":"HTTPS_REQUIRED","message":"All requests must use HTTPS"}`
	bodyWrongKey = `{"error":"FORBIDDEN","message":"This key type does not have access to this endpoint"}`
)

func TestPlainHTTPRefusedWithoutLookup(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	for _, auth := range []string{"", bearer(f.keys["admin"]), "Bearer garbage"} {
		res := f.do("GET", "/v1/projects", auth, Request{HTTPS: false, ClientIP: "192.0.2.9"}, Policy{})
		if res.status != 403 || res.body != bodyHTTPS || res.reached {
			t.Fatalf("plain HTTP with %q: %d %s reached=%v", auth, res.status, res.body, res.reached)
		}
		if res.header.Get("X-RateLimit-Limit") != "" || res.header.Get("Location") != "" {
			t.Fatalf("plain HTTP answer carries %v", res.header)
		}
	}
	if n := f.source.n.Load(); n != 0 {
		t.Fatalf("%d key lookups for plain HTTP requests", n)
	}
	if n := f.limiter.n.Load(); n != 0 {
		t.Fatalf("%d limiter calls for plain HTTP requests", n)
	}
	// allow_http opts out, for local development.
	res := f.do("GET", "/v1/projects", bearer(f.keys["admin"]), Request{ClientIP: "192.0.2.9"}, Policy{AllowHTTP: true})
	if res.status != 200 || !res.reached {
		t.Fatalf("allow_http: %d %s", res.status, res.body)
	}
}

func TestMalformedAuthorization(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	k := f.keys["admin"]
	cases := map[string]string{
		"other scheme":      "Basic " + k,
		"no space":          "Bearer" + k,
		"two spaces":        "Bearer  " + k,
		"trailing space":    "Bearer " + k + " ",
		"two tokens":        "Bearer " + k + " " + k,
		"tab":               "Bearer\t" + k,
		"scheme only":       "Bearer",
		"scheme and space":  "Bearer ",
		"token only":        k,
		"forged checksum":   "Bearer " + k[:len(k)-1] + flip(k[len(k)-1]),
		"wrong prefix":      "Bearer fb_prod_" + k[len("fb_admin_"):],
		"quoted":            `Bearer "` + k + `"`,
		"comma list":        "Bearer " + k + ",x",
		"truncated":         "Bearer " + k[:len(k)-1],
		"garbage":           "Bearer hunter2",
		"leading space":     " Bearer " + k,
		"lower-case prefix": "Bearer " + strings.ToUpper(k),
	}
	for name, auth := range cases {
		res := f.do("GET", "/v1/projects", auth, tlsReq, Policy{})
		if res.status != 401 || res.body != bodyInvalid || res.reached {
			t.Errorf("%s: %d %s", name, res.status, res.body)
		}
		if res.header.Get("WWW-Authenticate") != `Bearer realm="flagbridge"` {
			t.Errorf("%s: WWW-Authenticate %q", name, res.header.Get("WWW-Authenticate"))
		}
	}
	if n := f.source.n.Load(); n != 0 {
		t.Fatalf("malformed keys caused %d storage lookups", n)
	}
	// Two Authorization headers are malformed too.
	r := httptest.NewRequest("GET", "/v1/projects", nil)
	r.Header.Add("Authorization", bearer(k))
	r.Header.Add("Authorization", bearer(k))
	if res := f.serve(r, tlsReq, Policy{}, nil); res.status != 401 || res.body != bodyInvalid {
		t.Fatalf("two headers: %d %s", res.status, res.body)
	}
	// Missing header says so.
	if res := f.do("GET", "/v1/projects", "", tlsReq, Policy{}); res.status != 401 || res.body != bodyMissing {
		t.Fatalf("missing: %d %s", res.status, res.body)
	}
	// The scheme is case-insensitive.
	for _, scheme := range []string{"bearer", "BEARER", "bEaReR"} {
		if res := f.do("GET", "/v1/projects", scheme+" "+k, tlsReq, Policy{}); res.status != 200 {
			t.Fatalf("scheme %q: %d %s", scheme, res.status, res.body)
		}
	}
}

func TestXAPIKeyHeader(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	send := func(h http.Header) response {
		r := httptest.NewRequest("POST", "/ofrep/v1/evaluate/flags/x", nil)
		for k, v := range h {
			r.Header[k] = v
		}
		return f.serve(r, tlsReq, Policy{}, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-API-Key") != "" || r.Header.Get("Authorization") != "" {
				t.Errorf("the next handler saw the key")
			}
			w.WriteHeader(200)
		})
	}
	live := f.keys["live"]
	if res := send(http.Header{"X-Api-Key": {live}}); res.status != 200 {
		t.Fatalf("X-API-Key: %d %s", res.status, res.body)
	}
	cases := map[string]http.Header{
		"both headers":    {"X-Api-Key": {live}, "Authorization": {bearer(live)}},
		"two X-API-Keys":  {"X-Api-Key": {live, live}},
		"with a space":    {"X-Api-Key": {live + " "}},
		"with the scheme": {"X-Api-Key": {bearer(live)}},
		"forged":          {"X-Api-Key": {live[:len(live)-1] + flip(live[len(live)-1])}},
	}
	for name, h := range cases {
		if res := send(h); res.status != 401 || res.body != bodyInvalid {
			t.Errorf("%s: %d %s", name, res.status, res.body)
		}
	}
	if res := send(http.Header{"X-Api-Key": {""}}); res.status != 401 || res.body != bodyMissing {
		t.Errorf("empty X-API-Key: %d %s", res.status, res.body)
	}
	// A refused request loses its credentials too, so that an access log
	// recording request headers never holds them.
	r := httptest.NewRequest("GET", "/v1/projects", nil)
	r.Header.Set("X-API-Key", live)
	f.serve(r, tlsReq, Policy{}, nil)
	if r.Header.Get("X-API-Key") != "" {
		t.Fatal("the refused request kept its X-API-Key")
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestUnknownKeyIsLookedUpOnceThenCachedNegative(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	forged, _ := apikey.Generate(apikey.Live) // well-formed, valid checksum, unknown
	for i := 0; i < 5; i++ {
		res := f.do("POST", "/v1/evaluate", bearer(forged), tlsReq, Policy{})
		if res.status != 401 || res.body != bodyInvalid {
			t.Fatalf("forged key: %d %s", res.status, res.body)
		}
	}
	if n := f.source.n.Load(); n != 1 {
		t.Fatalf("%d lookups for one unknown key, want 1", n)
	}
	// A known key is also looked up once and then served from the cache.
	for i := 0; i < 5; i++ {
		if res := f.do("POST", "/v1/evaluate", bearer(f.keys["live"]), tlsReq, Policy{}); res.status != 200 {
			t.Fatalf("live key: %d %s", res.status, res.body)
		}
	}
	if n := f.source.n.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2", n)
	}
}

// TestScopeMatrix checks every key type against every kind of endpoint of
// the route table: evaluation (live and up), testing sessions (test and
// up), the admin API on the key's own project, on another project and on
// the whole organization, and paths no route has (admin only). Every route
// that takes an API key is in the matrix.
func TestScopeMatrix(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	type ep struct{ method, path string }
	evaluate := []ep{{"POST", "/v1/evaluate"}, {"POST", "/v1/evaluate/batch"},
		{"POST", "/ofrep/v1/evaluate/flags/new-checkout"}, {"POST", "/ofrep/v1/evaluate/flags"},
		{"GET", "/ofrep/v1/configuration"}}
	testing_ := []ep{{"POST", "/v1/testing/sessions"}, {"POST", "/v1/testing/sessions/ts_1/overrides"}, {"DELETE", "/v1/testing/sessions/ts_1"}}
	adminOnly := []ep{
		{"GET", "/v1/projects"}, {"GET", "/v1/projects/app"},
		{"DELETE", "/v1/projects/app"}, {"GET", "/v1/projects/app/environments"},
		{"POST", "/v1/projects/app/environments"}, {"GET", "/v1/projects/app/api-keys"},
		{"POST", "/v1/projects/app/api-keys"}, {"GET", "/v1/api-keys/key_x"}, {"POST", "/v1/api-keys/key_x/rotate"},
		{"PATCH", "/v1/api-keys/key_x"}, {"DELETE", "/v1/api-keys/key_x"}, {"GET", "/v1/projects/app/environments/production/flags"},
		{"PUT", "/v1/projects/app/environments/production/flags"},
		{"GET", "/v1/projects/app/environments/production/flags/versions"},
		{"GET", "/v1/projects/app/environments/production/flags/versions/3"},
		{"GET", "/v1/projects/app/environments/production/flags/versions/3/diff"},
		{"POST", "/v1/projects/app/environments/production/flags/revert"},
		{"GET", "/v1/projects/app/environments/production/flags/new-checkout"},
		{"PUT", "/v1/projects/app/environments/production/flags/new-checkout"},
		{"DELETE", "/v1/projects/app/environments/production/flags/new-checkout"},
		{"GET", "/v1/projects/app/identities"}, {"GET", "/v1/projects/app/identities/acme"},
		{"PUT", "/v1/projects/app/identities/acme"}, {"DELETE", "/v1/projects/app/identities/acme"},
		{"GET", "/v1/members"}, {"GET", "/v1/audit-log"},
		{"POST", "/v1/projects/app/webhooks"}, {"GET", "/v1/projects/app/webhooks"}, {"DELETE", "/v1/projects/app/webhooks/wh_1"},
		{"GET", "/v1/projects/app/webhooks/wh_1/deliveries"}, {"POST", "/v1/projects/app/webhooks/wh_1/deliveries/msg_1/replay"},
		{"POST", "/graphql"}, {"GET", "/graphql"},
		{"GET", "/v1/anything/else"},
		// Near misses of the evaluate routes are admin-only, not evaluate.
		{"GET", "/v1/evaluate"}, {"POST", "/v1/evaluate/"}, {"POST", "/v1//evaluate"},
		{"POST", "/v1/evaluate/../projects"}, {"PUT", "/v1/testing/sessions"},
	}
	// The admin API on another project than the project key's own, and on
	// the whole organization. The project key's refusals name its project
	// and, where the route table names it, the route's work.
	otherProject := []ep{
		{"GET", "/v1/projects/other"}, {"DELETE", "/v1/projects/other"},
		{"GET", "/v1/projects/other/environments"}, {"POST", "/v1/projects/other/environments"},
		{"GET", "/v1/projects/other/api-keys"}, {"POST", "/v1/projects/other/api-keys"},
		{"GET", "/v1/projects/other/environments/production/flags"},
		{"PUT", "/v1/projects/other/environments/production/flags"},
		{"GET", "/v1/projects/other/environments/production/flags/f"},
		{"PUT", "/v1/projects/other/environments/production/flags/f"},
		{"DELETE", "/v1/projects/other/environments/production/flags/f"},
		{"GET", "/v1/projects/other/identities"}, {"GET", "/v1/projects/other/identities/acme"},
		{"PUT", "/v1/projects/other/identities/acme"}, {"DELETE", "/v1/projects/other/identities/acme"},
	}
	wholeOrg := []ep{{"POST", "/v1/projects"}, {"POST", "/v1/members/invitations"}, {"DELETE", "/v1/members/m_1"}}
	const projectKey = `{"error":"FORBIDDEN","message":"This key belongs to project \"app\" and cannot `
	refusals := map[ep]string{ // the project admin key's answers
		{"DELETE", "/v1/projects/other"}:                 projectKey + `delete project \"other\""}`,
		{"POST", "/v1/projects/other/environments"}:      projectKey + `add environments to project \"other\""}`,
		{"POST", "/v1/projects/other/api-keys"}:          projectKey + `create keys in project \"other\""}`,
		{"GET", "/v1/projects/other/identities"}:         projectKey + `read identities of project \"other\""}`,
		{"GET", "/v1/projects/other/identities/acme"}:    projectKey + `read identities of project \"other\""}`,
		{"PUT", "/v1/projects/other/identities/acme"}:    projectKey + `manage identities of project \"other\""}`,
		{"DELETE", "/v1/projects/other/identities/acme"}: projectKey + `manage identities of project \"other\""}`,
		{"POST", "/v1/projects"}:                         projectKey + `create projects in the whole organization; use an organization-wide admin key"}`,
		{"POST", "/v1/members/invitations"}:              projectKey + `manage the members of the whole organization; use an organization-wide admin key"}`,
		{"DELETE", "/v1/members/m_1"}:                    projectKey + `manage the members of the whole organization; use an organization-wide admin key"}`,
	}
	for _, e := range otherProject {
		if refusals[e] == "" {
			refusals[e] = projectKey + `access project \"other\""}`
		}
	}

	const (
		admitted     = "admitted"
		refused      = "refused by scope"
		gqlForbidden = `{"errors":[{"message":"You do not have permission to perform this action","extensions":{"code":"FORBIDDEN"}}]}`
	)
	want := map[string]map[string]string{ // key -> endpoint group -> answer
		"live":  {"evaluate": admitted, "testing": bodyWrongKey, "admin": bodyWrongKey, "other": bodyWrongKey, "org": bodyWrongKey},
		"test":  {"evaluate": admitted, "testing": admitted, "admin": bodyWrongKey, "other": bodyWrongKey, "org": bodyWrongKey},
		"admin": {"evaluate": admitted, "testing": admitted, "admin": admitted, "other": refused, "org": refused},
		"org":   {"evaluate": admitted, "testing": admitted, "admin": admitted, "other": admitted, "org": admitted},
	}
	groups := map[string][]ep{"evaluate": evaluate, "testing": testing_, "admin": adminOnly, "other": otherProject, "org": wholeOrg}
	covered := map[routes.Name]bool{}
	for key, byGroup := range want {
		for group, answer := range byGroup {
			for _, e := range groups[group] {
				m := routes.Lookup(e.method, e.path)
				if m.Route != nil {
					covered[m.Route.Name] = true
				}
				res := f.do(e.method, e.path, bearer(f.keys[key]), tlsReq, Policy{})
				body := answer
				switch {
				case answer == refused:
					body = refusals[e]
				case answer == bodyWrongKey && m.Style() == apierror.GraphQL:
					body = gqlForbidden
				}
				switch {
				case answer == admitted:
					if res.status != 200 || !res.reached {
						t.Errorf("%s key %s %s: %d %s, want admitted", key, e.method, e.path, res.status, res.body)
					} else if res.adm.Match.Route != m.Route || res.adm.Principal.ID != f.records[key].ID {
						t.Errorf("%s key %s %s: admitted as %+v on %v", key, e.method, e.path, res.adm.Principal, res.adm.Match.Route)
					}
				case res.status != 403 || res.body != body || res.reached:
					t.Errorf("%s key %s %s: %d %s, want 403 %s", key, e.method, e.path, res.status, res.body, body)
				}
				// Authenticated: the key's bucket is reported either way.
				if res.header.Get("X-RateLimit-Limit") != strconv.Itoa(DefaultConfig().Limits[f.records[key].Type].Rate) {
					t.Errorf("%s key %s %s: rate-limit headers %v", key, e.method, e.path, res.header)
				}
			}
		}
	}
	for _, r := range routes.All() {
		if r.Credential == routes.APIKey && !covered[r.Name] {
			t.Errorf("route %s (%s %s) takes an API key but is not in the matrix", r.Name, r.Method, r.Pattern)
		}
	}
}

func TestReadOnlyKeys(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	ro := bearer(f.keys["admin-ro"])
	for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
		if res := f.do(m, "/v1/projects", ro, tlsReq, Policy{}); res.status != 200 {
			t.Errorf("read-only admin %s: %d %s", m, res.status, res.body)
		}
	}
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		res := f.do(m, "/v1/projects", ro, tlsReq, Policy{})
		if res.status != 403 || !strings.Contains(res.body, "read-only") || res.reached {
			t.Errorf("read-only admin %s: %d %s", m, res.status, res.body)
		}
	}
	// Evaluation is a read even though it is a POST.
	if res := f.do("POST", "/v1/evaluate", ro, tlsReq, Policy{}); res.status != 200 {
		t.Errorf("read-only admin evaluate: %d %s", res.status, res.body)
	}
	// A read-only test key may evaluate but not open testing sessions.
	tro := bearer(f.keys["test-ro"])
	if res := f.do("POST", "/v1/evaluate", tro, tlsReq, Policy{}); res.status != 200 {
		t.Errorf("read-only test evaluate: %d", res.status)
	}
	if res := f.do("POST", "/v1/testing/sessions", tro, tlsReq, Policy{}); res.status != 403 || !strings.Contains(res.body, "read-only") {
		t.Errorf("read-only test session: %d %s", res.status, res.body)
	}
}

func TestRequirePolicyForOtherServices(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	cases := []struct {
		require apikey.Type
		allowed map[string]bool
	}{
		{apikey.Live, map[string]bool{"live": true, "test": true, "admin": true}},
		{apikey.Test, map[string]bool{"live": false, "test": true, "admin": true}},
		{apikey.Admin, map[string]bool{"live": false, "test": false, "admin": true}},
	}
	for _, c := range cases {
		for key, ok := range c.allowed {
			// Any path: the route's requirement replaces the route table.
			res := f.do("GET", "/orders/42", bearer(f.keys[key]), tlsReq, Policy{Require: c.require})
			if ok != (res.status == 200) {
				t.Errorf("require %s, %s key: %d %s", c.require, key, res.status, res.body)
			}
		}
	}
}

func TestCredentialsRemovedUnlessKept(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	auth := bearer(f.keys["live"])
	res := f.do("GET", "/orders", auth, tlsReq, Policy{Require: apikey.Live})
	if !res.reached || res.authz != "" {
		t.Fatalf("upstream saw Authorization %q", res.authz)
	}
	if res.key == nil || res.key.ID != f.records["live"].ID {
		t.Fatalf("next handler got key %+v", res.key)
	}
	res = f.do("GET", "/orders", auth, tlsReq, Policy{Require: apikey.Live, KeepCredentials: true})
	if res.authz != auth {
		t.Fatalf("keep_credentials: upstream saw %q", res.authz)
	}
	// X-API-Key likewise, in the header it came in.
	for _, keep := range []bool{false, true} {
		r := httptest.NewRequest("GET", "/orders", nil)
		r.Header.Set(HeaderAPIKey, f.keys["live"])
		var saw string
		p := Policy{Require: apikey.Live, KeepCredentials: keep}
		res := f.serve(r, tlsReq, p, func(w http.ResponseWriter, r *http.Request) { saw = r.Header.Get(HeaderAPIKey) })
		if !res.reached || (saw != "") != keep || keep && saw != f.keys["live"] {
			t.Fatalf("keep_credentials %v: upstream saw X-API-Key %q", keep, saw)
		}
	}
}

func TestRevokedExpiredAndRotatedKeys(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	ctx := context.Background()
	live := bearer(f.keys["live"])
	if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 200 {
		t.Fatalf("before revocation: %d", res.status)
	}
	if _, err := f.svc.Keys.RevokeKey(ctx, f.org, f.records["live"].ID); err != nil {
		t.Fatal(err)
	}
	// The cache still holds the key; the change event evicts it. Here the
	// app's wiring is done by hand.
	f.guard.Keys().Invalidate(f.records["live"].ID)
	if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 401 || res.body != bodyInvalid {
		t.Fatalf("revoked: %d %s", res.status, res.body)
	}

	// Expiry needs no event: the cached record knows when it ends.
	short := f.mint("short", keys.CreateInput{Name: "short", Type: "live", Environment: "production", ExpiresIn: "1m"})
	if res := f.do("POST", "/v1/evaluate", bearer(short), tlsReq, Policy{}); res.status != 200 {
		t.Fatalf("fresh short-lived key: %d", res.status)
	}
	f.guard.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	if res := f.do("POST", "/v1/evaluate", bearer(short), tlsReq, Policy{}); res.status != 401 || res.body != bodyInvalid {
		t.Fatalf("expired: %d %s", res.status, res.body)
	}
	f.guard.now = time.Now

	// Rotation with a grace period: both secrets work until it ends.
	old := f.keys["test"]
	rot, err := f.svc.Keys.RotateKey(ctx, f.org, f.records["test"].ID, keys.RotateInput{GracePeriod: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	f.guard.Keys().Invalidate(rot.ID)
	for _, k := range []string{old, rot.Secret} {
		if res := f.do("POST", "/v1/evaluate", bearer(k), tlsReq, Policy{}); res.status != 200 {
			t.Fatalf("during grace: %d %s", res.status, res.body)
		}
	}
	f.guard.now = func() time.Time { return time.Now().Add(time.Hour + time.Second) }
	if res := f.do("POST", "/v1/evaluate", bearer(old), tlsReq, Policy{}); res.status != 401 {
		t.Fatalf("old secret after grace: %d", res.status)
	}
	if res := f.do("POST", "/v1/evaluate", bearer(rot.Secret), tlsReq, Policy{}); res.status != 200 {
		t.Fatalf("new secret after grace: %d", res.status)
	}
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Live] = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	f := newFixture(t, cfg)
	live := bearer(f.keys["live"])
	start := time.Now()
	for i := 0; i < 3; i++ {
		res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
		if res.status != 200 {
			t.Fatalf("request %d: %d", i, res.status)
		}
		h := res.header
		if h.Get("X-RateLimit-Limit") != "3" || h.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d headers: %v", i, h)
		}
		reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
		// After i+1 requests the bucket is full again (i+1)*20 minutes later.
		wantReset := start.Add(time.Duration(i+1) * 20 * time.Minute).Unix()
		if reset < wantReset-2 || reset > wantReset+2 {
			t.Fatalf("request %d: reset %d, want about %d", i, reset, wantReset)
		}
		if h.Get("Retry-After") != "" {
			t.Fatalf("Retry-After on an admitted request")
		}
	}
	res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
	if res.status != 429 || res.reached || !strings.HasPrefix(res.body, `{"error":"RATE_LIMITED","message":"`) {
		t.Fatalf("over the limit: %d %s", res.status, res.body)
	}
	if res.header.Get("X-RateLimit-Remaining") != "0" || res.header.Get("X-RateLimit-Limit") != "3" {
		t.Fatalf("429 headers: %v", res.header)
	}
	retry, _ := strconv.Atoi(res.header.Get("Retry-After"))
	if retry < 1199 || retry > 1201 {
		t.Fatalf("Retry-After %d, want about 1200", retry)
	}
	// A 403 from the route table reports (and spends from) the bucket too.
	g := bearer(f.keys["test"])
	res = f.do("GET", "/v1/projects", g, tlsReq, Policy{})
	if res.status != 403 || res.header.Get("X-RateLimit-Limit") != strconv.Itoa(DefaultTestLimit) {
		t.Fatalf("403 headers: %d %v", res.status, res.header)
	}
}

func TestRotatedKeyKeepsItsBucket(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Test] = ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}
	f := newFixture(t, cfg)
	f.do("POST", "/v1/evaluate", bearer(f.keys["test"]), tlsReq, Policy{})
	f.do("POST", "/v1/evaluate", bearer(f.keys["test"]), tlsReq, Policy{})
	rot, err := f.svc.Keys.RotateKey(context.Background(), f.org, f.records["test"].ID, keys.RotateInput{})
	if err != nil {
		t.Fatal(err)
	}
	if res := f.do("POST", "/v1/evaluate", bearer(rot.Secret), tlsReq, Policy{}); res.status != 429 {
		t.Fatalf("rotated key got a fresh bucket: %d", res.status)
	}
}

func TestHeadersSurviveTheNextHandler(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	r := httptest.NewRequest("GET", "/orders", nil)
	r.Header.Set("Authorization", bearer(f.keys["live"]))
	res := f.serve(r, tlsReq, Policy{Require: apikey.Live}, func(w http.ResponseWriter, r *http.Request) {
		// An upstream that sends its own rate-limit headers, as a proxied
		// service might.
		w.Header().Add("X-RateLimit-Limit", "1")
		w.Header().Add("X-RateLimit-Remaining", "0")
		w.WriteHeader(http.StatusTeapot)
	})
	if res.status != http.StatusTeapot {
		t.Fatalf("status %d", res.status)
	}
	if got := res.header.Values("X-RateLimit-Limit"); len(got) != 1 || got[0] != strconv.Itoa(DefaultLiveLimit) {
		t.Fatalf("X-RateLimit-Limit = %v", got)
	}
	if got := res.header.Values("X-RateLimit-Remaining"); len(got) != 1 || got[0] != strconv.Itoa(DefaultLiveLimit-1) {
		t.Fatalf("X-RateLimit-Remaining = %v", got)
	}
}

func TestFailedAuthenticationIsLimitedPerIP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Unauthenticated = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	f := newFixture(t, cfg)
	attacker := Request{HTTPS: true, ClientIP: "203.0.113.7"}
	for i := 0; i < 3; i++ {
		res := f.do("GET", "/v1/projects", "Bearer nope", attacker, Policy{})
		if res.status != 401 || res.header.Get("X-RateLimit-Limit") != "3" ||
			res.header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("failure %d: %d %v", i, res.status, res.header)
		}
	}
	res := f.do("GET", "/v1/projects", "Bearer nope", attacker, Policy{})
	if res.status != 429 || res.header.Get("Retry-After") == "" {
		t.Fatalf("after the limit: %d %v", res.status, res.header)
	}
	// Once blocked, the IP's unknown keys are refused without any lookup
	// or limiter call.
	lookups, checks := f.source.n.Load(), f.limiter.n.Load()
	for i := 0; i < 20; i++ {
		forged, _ := apikey.Generate(apikey.Admin)
		if res := f.do("GET", "/v1/projects", bearer(forged), attacker, Policy{}); res.status != 429 {
			t.Fatalf("blocked IP, forged key: %d", res.status)
		}
	}
	if f.source.n.Load() != lookups || f.limiter.n.Load() != checks {
		t.Fatalf("a blocked IP still cost %d lookups and %d limiter calls",
			f.source.n.Load()-lookups, f.limiter.n.Load()-checks)
	}
	// Other clients are unaffected.
	if res := f.do("GET", "/v1/projects", "Bearer nope", tlsReq, Policy{}); res.status != 401 {
		t.Fatalf("other IP: %d", res.status)
	}
	// A valid key the instance already knows still works from that IP.
	admin := bearer(f.keys["admin"])
	f.do("GET", "/v1/projects", admin, tlsReq, Policy{}) // cache it
	if res := f.do("GET", "/v1/projects", admin, attacker, Policy{}); res.status != 200 {
		t.Fatalf("cached valid key from a blocked IP: %d", res.status)
	}
}

// stoppableRedis is a redis-server that a test stops and starts, with a
// store and the plain Redis limiter over it, both bounded by 200 ms.
func stoppableRedis(t *testing.T) (*testenv.Redis, store.Store, ratelimit.Limiter) {
	t.Helper()
	r := testenv.StartRedis(t)
	st, err := store.OpenRedis(r.URL(), store.Options{Timeout: 200 * time.Millisecond, KeyPrefix: testenv.UniquePrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return r, st, ratelimit.NewRedis(st.Client(), st.Prefix())
}

// failureConfig is the default configuration under a storage policy,
// with the 200 ms storage timeout of stoppableRedis.
func failureConfig(policy StoragePolicy) Config {
	cfg := DefaultConfig()
	cfg.OnStorageError = policy
	cfg.Timeout = 200 * time.Millisecond
	return cfg
}

func TestStorageFailurePolicy(t *testing.T) {
	r, st, lim := stoppableRedis(t)

	for _, policy := range []StoragePolicy{StorageDeny, StorageAllow, StorageLocal} {
		r.Start()
		cfg := failureConfig(policy)
		f := newFixtureOn(t, st, lim, cfg)
		live := bearer(f.keys["live"])
		if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 200 {
			t.Fatalf("Redis up: %d %s", res.status, res.body)
		}
		r.Stop()
		start := time.Now()
		res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("a request with Redis down took %v", took)
		}
		switch policy {
		case StorageAllow:
			if res.status != 200 || res.header.Get("X-RateLimit-Limit") != strconv.Itoa(DefaultLiveLimit) ||
				res.header.Get("X-RateLimit-Remaining") != "" {
				t.Fatalf("allow policy: %d %v", res.status, res.header)
			}
		case StorageLocal:
			// One instance (the default): the whole limit, in process,
			// from a full bucket.
			if res.status != 200 || res.header.Get("X-RateLimit-Limit") != strconv.Itoa(DefaultLiveLimit) ||
				res.header.Get("X-RateLimit-Remaining") != strconv.Itoa(DefaultLiveLimit-1) {
				t.Fatalf("local policy: %d %v", res.status, res.header)
			}
		default:
			if res.status != 503 || res.body != `{"error":"STORAGE_UNAVAILABLE","message":"Storage is unavailable; try again shortly"}` {
				t.Fatalf("deny policy: %d %s", res.status, res.body)
			}
		}
		// A key the instance has never seen cannot be verified: refused
		// under every policy.
		res = f.do("POST", "/v1/evaluate", bearer(f.keys["test"]), tlsReq, Policy{})
		if res.status != 503 {
			t.Fatalf("unverifiable key (%v): %d %s", policy, res.status, res.body)
		}
	}
}

func TestLocalLimitShare(t *testing.T) {
	l := ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 20}
	for _, c := range []struct {
		instances int
		want      ratelimit.Limit
	}{
		{0, l},
		{1, l},
		{2, ratelimit.Limit{Rate: 5, Period: time.Minute, Burst: 10}},
		{3, ratelimit.Limit{Rate: 3, Period: time.Minute, Burst: 6}},  // rounded down
		{15, ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 1}}, // never zero
		{50, ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 1}},
	} {
		cfg := Config{LocalInstances: c.instances}
		if got := cfg.LocalLimit(l); got != c.want {
			t.Errorf("%d instances: %v, want %v", c.instances, got, c.want)
		}
	}
	for in, want := range map[string]StoragePolicy{"": StorageDeny, "deny": StorageDeny, "allow": StorageAllow, "local": StorageLocal} {
		if got, err := ParseStoragePolicy(in); err != nil || got != want {
			t.Errorf("ParseStoragePolicy(%q) = %v, %v", in, got, err)
		}
		if in != "" && want.String() != in {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	if _, err := ParseStoragePolicy("open"); err == nil {
		t.Error("ParseStoragePolicy accepted open")
	}
}

// localFixture is a guard whose keys live on the embedded store and whose
// limiter is the batching Redis limiter (as in production on Redis) on a
// real redis-server the test stops and starts.
func localFixture(t *testing.T, cfg Config) (*fixture, *testenv.Redis) {
	t.Helper()
	r := testenv.StartRedis(t)
	rs, err := store.OpenRedis(r.URL(), store.Options{Timeout: cfg.Timeout, KeyPrefix: testenv.UniquePrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	lim := ratelimit.NewBatchingRedis(rs.Client(), rs.Prefix(), ratelimit.BatchingOptions{Timeout: cfg.Timeout})
	t.Cleanup(func() { lim.Close() })
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st, lim, cfg), r
}

func wantRate(t *testing.T, what string, res response, status int, limit, remaining string) {
	t.Helper()
	if res.status != status || res.header.Get("X-RateLimit-Limit") != limit || res.header.Get("X-RateLimit-Remaining") != remaining {
		t.Fatalf("%s: %d, limit %q remaining %q; want %d, %s, %s (%s)", what, res.status,
			res.header.Get("X-RateLimit-Limit"), res.header.Get("X-RateLimit-Remaining"), status, limit, remaining, res.body)
	}
}

// TestLocalPolicyShareThenShared follows one key through an outage under
// on_storage_error local with three instances: the shared limit, then this
// instance's third of it in process, then the shared limit again as soon
// as Redis answers; and a second outage resumes the local bucket where
// the first left it rather than handing out a fresh share.
func TestLocalPolicyShareThenShared(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Timeout = 200 * time.Millisecond
	cfg.OnStorageError = StorageLocal
	cfg.LocalInstances = 3
	cfg.Limits[apikey.Live] = ratelimit.Limit{Rate: 12, Period: time.Hour, Burst: 12}
	cfg.Unauthenticated = ratelimit.Limit{Rate: 6, Period: time.Hour, Burst: 6}
	f, r := localFixture(t, cfg)
	live := bearer(f.keys["live"])
	do := func() response { return f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}) }

	wantRate(t, "Redis up", do(), 200, "12", "11")
	wantRate(t, "Redis up", do(), 200, "12", "10")

	r.Stop()
	for i := 3; i >= 0; i-- {
		wantRate(t, "local share", do(), 200, "4", strconv.Itoa(i))
	}
	res := do()
	wantRate(t, "local share spent", res, 429, "4", "0")
	if res.header.Get("Retry-After") == "" || res.header.Get("X-RateLimit-Reset") == "" {
		t.Fatalf("local 429 headers: %v", res.header)
	}
	// Scope checks still follow the limit: a live key on an admin route.
	if res := f.do("GET", "/v1/projects", live, tlsReq, Policy{}); res.status != 429 {
		t.Fatalf("live key on an admin route, share spent: %d", res.status)
	}
	// Failed authentication spends from the client IP's local share (two
	// of six), and an IP over it is blocked locally.
	attacker := Request{HTTPS: true, ClientIP: "198.51.100.9"}
	for i := 1; i >= 0; i-- {
		res := f.do("GET", "/v1/projects", "Bearer nope", attacker, Policy{})
		wantRate(t, "unauthenticated, local share", res, 401, "2", strconv.Itoa(i))
	}
	if res := f.do("GET", "/v1/projects", "Bearer nope", attacker, Policy{}); res.status != 429 {
		t.Fatalf("unauthenticated over the local share: %d", res.status)
	}

	// Redis returns (empty: persistence is off, so the shared bucket
	// starts over). The first check that reaches it is shared again.
	r.Start()
	back := time.Now()
	for {
		res := do()
		if res.header.Get("X-RateLimit-Limit") == "12" {
			wantRate(t, "Redis back", res, 200, "12", "11")
			break
		}
		if res.status != 429 || time.Since(back) > 2*time.Second {
			t.Fatalf("Redis back for %v: %d %v", time.Since(back), res.status, res.header)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("shared limit again %v after Redis answered", time.Since(back).Round(time.Millisecond))

	// A second outage: the local bucket is where the first one left it.
	r.Stop()
	wantRate(t, "second outage", do(), 429, "4", "0")
}

// TestLocalPolicyConcurrent sends many concurrent requests during an
// outage: exactly the local share is admitted (the period is long enough
// for nothing to come back), and every other answer is a 429 reporting
// the local bucket.
func TestLocalPolicyConcurrent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Timeout = 200 * time.Millisecond
	cfg.OnStorageError = StorageLocal
	cfg.LocalInstances = 4
	cfg.Limits[apikey.Live] = ratelimit.Limit{Rate: 100, Period: time.Hour, Burst: 100}
	f, r := localFixture(t, cfg)
	live := bearer(f.keys["live"])
	r.Stop()

	const workers, each = 16, 40
	var admitted, refused, other atomic.Int64
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				req := httptest.NewRequest("POST", "/v1/evaluate", nil)
				req.Header.Set("Authorization", live)
				d := f.guard.Check(req, tlsReq, Policy{})
				h := http.Header{}
				d.Rate.Apply(h)
				switch {
				case d.Err == nil && h.Get("X-RateLimit-Limit") == "25":
					admitted.Add(1)
				case d.Err != nil && d.Err.Status == 429 && h.Get("X-RateLimit-Limit") == "25":
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	if admitted.Load() != 25 || refused.Load() != workers*each-25 || other.Load() != 0 {
		t.Fatalf("admitted %d, refused %d, other %d; want 25, %d, 0",
			admitted.Load(), refused.Load(), other.Load(), workers*each-25)
	}
}

func BenchmarkGuardHotPath(b *testing.B) {
	benchmarkGuard(b, benchFileStore(b), ratelimit.NewMemory(), nil)
}

// benchFileStore opens an embedded store for one benchmark.
func benchFileStore(b *testing.B) store.Store {
	st, err := store.OpenFile(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func BenchmarkGuardHotPathRedis(b *testing.B) {
	r := testenv.StartRedis(b)
	st, err := store.OpenRedis(r.URL(), store.Options{KeyPrefix: testenv.UniquePrefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.SetParallelism(16) // requests in flight at once, as from many connections
	benchmarkGuard(b, st, ratelimit.NewRedis(st.Client(), st.Prefix()), nil)
}

// benchmarkGuard measures the authenticated hot path: one cached live key
// under a limit it never reaches, from the bearer token's parsing through
// its checksum, digest, cache lookup, limiter, route lookup and Permits to
// the headers and the Admission the next handler writes through. setup, if
// not nil, changes the guard before the measurement (metrics, options).
func benchmarkGuard(b *testing.B, st store.Store, lim ratelimit.Limiter, setup func(*Guard, Config)) {
	benchmarkGuardKey(b, st, lim, keys.CreateInput{Name: "b", Type: "live", Environment: "production"}, setup)
}

// BenchmarkGuardLimitedKey is BenchmarkGuardHotPath for the key of the
// load benchmark's scenario (h): two limits and a quota of its own, and an
// identity with a limit of its own, five buckets spent per request.
func BenchmarkGuardLimitedKey(b *testing.B) {
	benchmarkGuardKey(b, benchFileStore(b), ratelimit.NewMemory(), limitedBenchKey, withBenchIdentities)
}

// limitedBenchKey is the key of scenario (h), with limits no benchmark
// reaches.
var limitedBenchKey = keys.CreateInput{Name: "b", Type: "live", Environment: "production",
	Identity: "acme",
	Limits:   []keys.LimitInput{{Name: "burst", Requests: 100_000_000, Window: "1s"}, {Name: "sustained", Requests: 1 << 30, Window: "1m"}},
	Quota:    &ratelimit.Quota{Requests: 1 << 50, Period: ratelimit.Month}}

func withBenchIdentities(g *Guard, _ Config) { g.SetIdentities(NewIdentityCache(benchIdentity{}, 0)) }

// BenchmarkGuardLimitedKeyRedis and BenchmarkGuardHotPathBatching are the
// two on Redis through the limiter Caddy runs there, side by side: what
// the five buckets cost over the one.
func BenchmarkGuardLimitedKeyRedis(b *testing.B) {
	benchmarkGuardOnBatching(b, func(b *testing.B, st store.Store, lim ratelimit.Limiter) {
		benchmarkGuardKey(b, st, lim, limitedBenchKey, withBenchIdentities)
	})
}

func BenchmarkGuardHotPathBatching(b *testing.B) {
	benchmarkGuardOnBatching(b, func(b *testing.B, st store.Store, lim ratelimit.Limiter) {
		benchmarkGuard(b, st, lim, nil)
	})
}

func benchmarkGuardOnBatching(b *testing.B, run func(*testing.B, store.Store, ratelimit.Limiter)) {
	r := testenv.StartRedis(b)
	st, err := store.OpenRedis(r.URL(), store.Options{KeyPrefix: testenv.UniquePrefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// With the Timeout the server gives it (storage_timeout's default).
	lim := ratelimit.NewBatchingRedis(st.Client(), st.Prefix(), ratelimit.BatchingOptions{Timeout: 500 * time.Millisecond})
	defer lim.Close()
	b.SetParallelism(16)
	run(b, st, lim)
}

// benchIdentity gives every identity one limit that is never reached.
type benchIdentity struct{}

func (benchIdentity) LookupIdentityLimits(context.Context, string, string, string) (*IdentityLimits, error) {
	return &IdentityLimits{Limits: []ratelimit.NamedLimit{named("shared", 1<<30, time.Minute)}}, nil
}

// benchmarkGuardKey is benchmarkGuard for a key created from in.
func benchmarkGuardKey(b *testing.B, st store.Store, lim ratelimit.Limiter, in keys.CreateInput, setup func(*Guard, Config)) {
	svc := admin.New(st)
	ctx := context.Background()
	boot, err := svc.Bootstrap(ctx, admin.BootstrapInput{OwnerEmail: ownerEmail, OwnerName: "Owner"})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := svc.Tenancy.CreateProject(ctx, boot.Principal, tenancy.CreateProjectInput{Slug: "app"}); err != nil {
		b.Fatal(err)
	}
	k, err := svc.Keys.CreateKey(ctx, boot.Principal, "app", in)
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Limits[apikey.Live] = ratelimit.PerMinute(1 << 30)
	g := NewGuard(cfg, NewKeyCache(svc.Keys, KeyCacheOptions{}), svc.Identity, lim, nil)
	if setup != nil {
		setup(g, cfg)
	}
	auth := bearer(k.Secret)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("POST", "/v1/evaluate", nil)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			r.Header["Authorization"] = []string{auth}
			d := g.Check(r, tlsReq, Policy{})
			adm, ok := d.Apply(w, r, Policy{})
			if !ok || adm.Principal == nil {
				b.Fatal("refused")
			}
			adm.Writer().WriteHeader(200)
		}
	})
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// On /graphql the edge answers in GraphQL's error shape, so that GraphQL
// clients surface its refusals; everywhere else the REST shape stays.
func TestGraphQLRouteErrorShape(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Admin] = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	f := newFixture(t, cfg)
	const (
		unauthenticated = `{"errors":[{"message":"You must be authenticated to perform this action","extensions":{"code":"UNAUTHENTICATED"}}]}`
		forbidden       = `{"errors":[{"message":"You do not have permission to perform this action","extensions":{"code":"FORBIDDEN"}}]}`
	)
	for name, auth := range map[string]string{
		"no key": "", "extra space": "Bearer  " + f.keys["admin"], "other characters": "Bearer " + f.keys["admin"] + "!",
		"revoked-looking": "Bearer " + f.keys["admin"][:len(f.keys["admin"])-1] + flip(f.keys["admin"][len(f.keys["admin"])-1]),
	} {
		res := f.do("POST", "/graphql", auth, tlsReq, Policy{})
		if res.status != 401 || res.body != unauthenticated || res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s", name, res.status, res.body)
		}
	}
	for _, key := range []string{"live", "test"} {
		if res := f.do("POST", "/graphql", bearer(f.keys[key]), tlsReq, Policy{}); res.status != 403 || res.body != forbidden {
			t.Errorf("%s key: %d %s", key, res.status, res.body)
		}
	}
	// Queries arrive as POST: a READ-only admin key passes the edge (the
	// resolvers refuse its mutations).
	if res := f.do("POST", "/graphql", bearer(f.keys["admin-ro"]), tlsReq, Policy{}); res.status != 200 {
		t.Errorf("read-only admin key: %d %s", res.status, res.body)
	}
	if res := f.do("POST", "/graphql", bearer(f.keys["admin"]), Request{ClientIP: "192.0.2.1"}, Policy{}); res.status != 403 ||
		res.body != `{"errors":[{"message":"All requests must use HTTPS","extensions":{"code":"HTTPS_REQUIRED"}}]}` {
		t.Errorf("plain HTTP: %d %s", res.status, res.body)
	}
	for i := 0; i < 3; i++ {
		if res := f.do("POST", "/graphql", bearer(f.keys["admin"]), tlsReq, Policy{}); res.status != 200 {
			t.Fatalf("request %d within the limit: %d", i, res.status)
		}
	}
	res := f.do("POST", "/graphql", bearer(f.keys["admin"]), tlsReq, Policy{})
	if res.status != 429 || !strings.HasPrefix(res.body, `{"errors":[{"message":"Rate limit exceeded`) ||
		!strings.Contains(res.body, `"extensions":{"code":"RATE_LIMITED"}`) || res.header.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d %s", res.status, res.body)
	}
	// Other routes keep the REST shape.
	if res := f.do("GET", "/v1/projects", "", tlsReq, Policy{}); res.body != bodyMissing {
		t.Errorf("REST route: %s", res.body)
	}
}

// Admission.Charge spends more from the caller's bucket for work a request
// does many times over (GraphQL's mutations), all or nothing, and the
// response reports the bucket after the charge, whatever the handler
// writes; a charge the bucket cannot pay is a 429 and spends nothing.
func TestAdmissionCharge(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Admin] = ratelimit.Limit{Rate: 5, Period: time.Hour, Burst: 5}
	cfg.IETFHeaders = true
	f := newFixture(t, cfg)
	ctx := context.Background()
	// serve sends one admin-key request whose handler charges n more.
	serve := func(n int) (*httptest.ResponseRecorder, error) {
		t.Helper()
		r := httptest.NewRequest("POST", "/graphql", nil)
		r.Header.Set("Authorization", bearer(f.keys["admin"]))
		w := httptest.NewRecorder()
		adm, ok := f.guard.Check(r, tlsReq, Policy{}).Apply(w, r, Policy{})
		if !ok {
			t.Fatalf("refused: %d %s", w.Code, w.Body)
		}
		err := adm.Charge(ctx, n)
		nw := adm.Writer()
		nw.Header().Set("X-RateLimit-Remaining", "999") // an upstream's own
		nw.WriteHeader(http.StatusOK)
		return w, err
	}
	want := func(what string, w *httptest.ResponseRecorder, remaining string) {
		t.Helper()
		h := w.Result().Header
		if got := h.Values("X-RateLimit-Remaining"); len(got) != 1 || got[0] != remaining || h.Get("X-RateLimit-Limit") != "5" {
			t.Fatalf("%s: X-RateLimit-Remaining %v, limit %q; want %s of 5", what, got, h.Get("X-RateLimit-Limit"), remaining)
		}
		if rl := h.Get("RateLimit"); !strings.HasPrefix(rl, `"admin";r=`+remaining+";t=") {
			t.Fatalf("%s: RateLimit %q, want remaining %s", what, rl, remaining)
		}
	}
	w, err := serve(0) // nothing to charge
	if err != nil {
		t.Fatal(err)
	}
	want("no charge", w, "4")
	w, err = serve(2) // 4 left: the request itself, then two more
	if err != nil {
		t.Fatal(err)
	}
	want("charged 2", w, "1")
	// The request itself spends the last one; one more cannot be paid.
	w, err = serve(1)
	var ae *apierror.Error
	if !errors.As(err, &ae) || ae.Status != 429 || ae.Code != apierror.CodeRateLimited {
		t.Fatalf("charge over the limit: %v", err)
	}
	want("refused charge", w, "0")
	if w.Result().Header.Get("Retry-After") == "" {
		t.Fatal("a refused charge without Retry-After")
	}
	// A request without a bucket (a route that takes no credential) has
	// nothing to charge.
	r := httptest.NewRequest("GET", "/dashboard/", nil)
	adm, ok := f.guard.Check(r, tlsReq, Policy{}).Apply(httptest.NewRecorder(), r, Policy{})
	checks := f.limiter.n.Load()
	if !ok || adm.Charge(ctx, 3) != nil || f.limiter.n.Load() != checks {
		t.Fatal("charging a request without a bucket")
	}
}

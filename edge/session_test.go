package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/routes"
)

const (
	bodyLoggedIn  = `{"error":"UNAUTHORIZED","message":"Please log in"}`
	bodyCSRF      = `{"error":"FORBIDDEN","message":"This request lacks the page's security token; reload the page and try again"}`
	bodyCrossSite = `{"error":"FORBIDDEN","message":"Cross-site requests are not allowed"}`
	bodyStorage   = `{"error":"STORAGE_UNAVAILABLE","message":"Storage is unavailable; try again shortly"}`

	// dashHost is the host the dashboard's requests are sent to.
	dashHost      = "flagbridge.example"
	ownerPassword = "correct horse battery"
)

// login is a dashboard login of the organization's owner.
type login struct {
	token, csrf string
	member      string
}

// login logs the owner in to the dashboard through the real identity
// service, giving the owner a password on first use.
func (f *fixture) login(t *testing.T) login {
	t.Helper()
	ctx := context.Background()
	if _, _, _, err := f.svc.Identity.Login(ctx, ownerEmail, ownerPassword, ""); err != nil {
		// No password yet. Setting one ends the account's logins, so it is
		// done once.
		if err := f.svc.Identity.SetPassword(ctx, ownerEmail, ownerPassword); err != nil {
			t.Fatal(err)
		}
	}
	token, sess, m, err := f.svc.Identity.Login(ctx, ownerEmail, ownerPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	return login{token: token, csrf: sess.CSRF, member: m.ID}
}

// pageOrigin are the headers a browser sends with a change made by the
// dashboard's own page.
func pageOrigin() http.Header {
	return http.Header{"Origin": {"https://" + dashHost}, "Sec-Fetch-Site": {"same-origin"}}
}

// withCSRF adds the session's CSRF token to h.
func withCSRF(h http.Header, s login) http.Header {
	h.Set(HeaderCSRF, s.csrf)
	return h
}

// dash sends a dashboard request, with the session's cookie if s is set,
// through the guard to a next handler that answers 200.
func (f *fixture) dash(method, path string, s *login, h http.Header, in Request) response {
	f.t.Helper()
	r := httptest.NewRequest(method, "https://"+dashHost+path, nil)
	if s != nil {
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: s.token})
	}
	for k, vs := range h {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return f.serve(r, in, Policy{}, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
}

func wantDashboardHeaders(t *testing.T, what string, res response) {
	t.Helper()
	if res.header.Get("Content-Security-Policy") == "" {
		t.Errorf("%s: no dashboard security headers: %v", what, res.header)
	}
}

// A dashboard API route with a valid session cookie is admitted for the
// logged-in member: an organization-wide principal acting with the
// member's role, spending from the member's own bucket ("member:<id>",
// shared by all their sessions) under the admin limit, and reporting it.
func TestSessionAdmitsMember(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Admin] = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	f := newFixture(t, cfg)
	s := f.login(t)

	res := f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq)
	wantRate(t, "session", res, 200, "3", "2")
	p := res.adm.Principal
	if p == nil || p.Kind != authz.MemberPrincipal || p.ID != s.member || p.Member != s.member ||
		p.Role != authz.RoleOwner || p.Scope.Org != f.org.Org() || !p.Scope.OrgWide() || p.Key != nil {
		t.Fatalf("principal %+v", p)
	}
	if m := res.adm.Match; m.Route == nil || m.Route.Name != routes.ListProjects || !m.Mounted {
		t.Fatalf("match %+v", m)
	}
	if res.adm.Entry != nil || res.key != nil || res.adm.ClientIP != tlsReq.ClientIP {
		t.Fatalf("admission %+v", res.adm)
	}
	if b := f.limiter.lastBucket(); b != "member:"+s.member {
		t.Fatalf("spent from %q, want member:%s", b, s.member)
	}
	wantDashboardHeaders(t, "session", res)

	// A change from the dashboard's own page, with the session's token.
	res = f.dash("POST", "/dashboard/api/v1/projects", &s, withCSRF(pageOrigin(), s), tlsReq)
	wantRate(t, "session change", res, 200, "3", "1")
	if res.adm.Match.Route.Name != routes.CreateProject {
		t.Fatalf("route %s", res.adm.Match.Route.Name)
	}
	// Another session of the same member spends from the same bucket.
	other := f.login(t)
	wantRate(t, "second session", f.dash("GET", "/dashboard/api/v1/members", &other, nil, tlsReq), 200, "3", "0")
	res = f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq)
	wantRate(t, "member over the limit", res, 429, "3", "0")
	if res.header.Get("Retry-After") == "" || res.reached {
		t.Fatalf("429: %v reached=%v", res.header, res.reached)
	}
	wantDashboardHeaders(t, "429", res)
	// The owner's admin key has its own bucket.
	wantRate(t, "admin key", f.do("GET", "/v1/projects", bearer(f.keys["org"]), tlsReq, Policy{}), 200, "3", "2")
}

// Without a valid session (none, an unknown token, an expired or ended
// one, or an API key instead) a dashboard API route answers 401 "Please
// log in", spending from the client address's bucket of failed
// authentications like a bad key, and reporting it.
func TestSessionMissingOrExpired(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Unauthenticated = ratelimit.Limit{Rate: 7, Period: time.Hour, Burst: 7}
	f := newFixture(t, cfg)
	s := f.login(t)
	ctx := context.Background()
	remaining := 7
	refused := func(what string, sess *login, h http.Header) {
		t.Helper()
		remaining--
		res := f.dash("GET", "/dashboard/api/v1/projects", sess, h, tlsReq)
		if res.body != bodyLoggedIn || res.reached {
			t.Fatalf("%s: %d %s", what, res.status, res.body)
		}
		wantRate(t, what, res, 401, "7", strconv.Itoa(remaining))
		wantDashboardHeaders(t, what, res)
	}
	refused("no cookie", nil, nil)
	refused("unknown token", &login{token: "not-a-session"}, nil)
	refused("API key instead", nil, http.Header{"Authorization": {bearer(f.keys["org"])}})

	// Idle for the idle timeout: expired.
	wantRate(t, "fresh session", f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq), 200,
		strconv.Itoa(DefaultAdminLimit), strconv.Itoa(DefaultAdminLimit-1))
	f.svc.SetClock(func() time.Time { return time.Now().Add(identity.SessionIdleTimeout) })
	refused("expired session", &s, nil)
	f.svc.SetClock(time.Now)
	// Expired is deleted: a clock back in range does not revive it.
	refused("expired session, clock back", &s, nil)

	// Logged out.
	s2 := f.login(t)
	if res := f.dash("GET", "/dashboard/api/v1/projects", &s2, nil, tlsReq); res.status != 200 {
		t.Fatalf("second login: %d %s", res.status, res.body)
	}
	if err := f.svc.Identity.Logout(ctx, s2.token); err != nil {
		t.Fatal(err)
	}
	refused("ended session", &s2, nil)
	// Logging out needs a session too.
	res := f.dash("POST", "/dashboard/api/logout", nil, pageOrigin(), tlsReq)
	if res.body != bodyLoggedIn {
		t.Fatalf("logout without a session: %d %s", res.status, res.body)
	}
	wantRate(t, "logout without a session", res, 401, "7", "0")
	// The address's bucket is spent: refused with 429 from now on, and,
	// once refused so (the address is then blocked), as for keys the
	// instance has not seen, without a lookup: a flood of made-up session
	// tokens costs storage nothing.
	res = f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq)
	if res.status != 429 {
		t.Fatalf("address over its limit: %d %v", res.status, res.header)
	}
	lookups := f.sessions.n.Load()
	for i := range 3 {
		res = f.dash("GET", "/dashboard/api/v1/projects", &login{token: fmt.Sprintf("made-up-%d", i)}, nil, tlsReq)
		if res.status != 429 || res.header.Get("Retry-After") == "" {
			t.Fatalf("address over its limit: %d %v", res.status, res.header)
		}
		wantDashboardHeaders(t, "address over its limit", res)
	}
	if n := f.sessions.n.Load() - lookups; n != 0 {
		t.Fatalf("a blocked address cost %d session lookups", n)
	}
}

// A change (any method but GET, HEAD and OPTIONS) made with a session
// needs the session's own CSRF token; a refusal still reports the member's
// bucket, which it spent from.
func TestSessionChangesNeedCSRFToken(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	s := f.login(t)
	other := f.login(t)
	for _, c := range []struct {
		what string
		h    http.Header
	}{
		{"no token", pageOrigin()},
		{"wrong token", func() http.Header { h := pageOrigin(); h.Set(HeaderCSRF, "x"+s.csrf); return h }()},
		{"another session's token", withCSRF(pageOrigin(), other)},
		{"the token twice over", func() http.Header { h := pageOrigin(); h.Set(HeaderCSRF, s.csrf+s.csrf); return h }()},
	} {
		for _, e := range []struct{ method, path string }{
			{"POST", "/dashboard/api/v1/projects"},
			{"DELETE", "/dashboard/api/v1/projects/app"},
			{"PUT", "/dashboard/api/v1/projects/app/environments/production/flags/f"},
			{"POST", "/dashboard/api/logout"},
		} {
			res := f.dash(e.method, e.path, &s, c.h, tlsReq)
			if res.status != 403 || res.body != bodyCSRF || res.reached {
				t.Errorf("%s, %s %s: %d %s", c.what, e.method, e.path, res.status, res.body)
			}
			wantDashboardHeaders(t, c.what, res)
			if e.path != "/dashboard/api/logout" && res.header.Get("X-RateLimit-Limit") != strconv.Itoa(DefaultAdminLimit) {
				t.Errorf("%s, %s %s: rate-limit headers %v", c.what, e.method, e.path, res.header)
			}
		}
	}
	// Reads need no token; a change with the right one is admitted.
	for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
		if res := f.dash(m, "/dashboard/api/v1/projects", &s, nil, tlsReq); res.status != 200 {
			t.Errorf("%s without a token: %d %s", m, res.status, res.body)
		}
	}
	if res := f.dash("DELETE", "/dashboard/api/v1/projects/app", &s, withCSRF(pageOrigin(), s), tlsReq); res.status != 200 {
		t.Fatalf("with the token: %d %s", res.status, res.body)
	}
}

// A change sent from another origin is refused before anything else (no
// session lookup, no rate limit): a browser's Sec-Fetch-Site saying so, an
// Origin naming another host, or an Origin that is not https, such as an
// http:// page of the same host. Routes without a credential (logging in)
// are protected the same way; reads are not refused.
func TestSessionCrossOrigin(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	s := f.login(t)
	cases := map[string]http.Header{
		"http origin of the same host": {"Origin": {"http://" + dashHost}},
		"http origin, same-origin":     {"Origin": {"http://" + dashHost}, "Sec-Fetch-Site": {"same-origin"}},
		"other host":                   {"Origin": {"https://evil.example"}},
		"cross-site":                   {"Sec-Fetch-Site": {"cross-site"}},
		"cross-site, same Origin":      {"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://" + dashHost}},
		"same-site":                    {"Sec-Fetch-Site": {"same-site"}},
		"null origin":                  {"Origin": {"null"}},
	}
	for name, h := range cases {
		withCSRF(h, s)
		lookups, checks := f.sessions.n.Load(), f.limiter.n.Load()
		for _, e := range []struct{ method, path string }{
			{"POST", "/dashboard/api/v1/projects"},
			{"POST", "/dashboard/api/logout"},
			{"POST", "/dashboard/api/login"},
			{"POST", "/dashboard/api/invites/accept"},
		} {
			res := f.dash(e.method, e.path, &s, h, tlsReq)
			if res.status != 403 || res.body != bodyCrossSite || res.reached {
				t.Errorf("%s, %s %s: %d %s", name, e.method, e.path, res.status, res.body)
			}
			wantDashboardHeaders(t, name, res)
		}
		if f.sessions.n.Load() != lookups || f.limiter.n.Load() != checks {
			t.Errorf("%s: a cross-site request cost %d session lookups and %d limiter calls",
				name, f.sessions.n.Load()-lookups, f.limiter.n.Load()-checks)
		}
	}
	// Reads are not changes: a cross-site GET is answered as usual.
	if res := f.dash("GET", "/dashboard/api/v1/projects", &s, http.Header{"Sec-Fetch-Site": {"cross-site"}}, tlsReq); res.status != 200 {
		t.Errorf("cross-site read: %d %s", res.status, res.body)
	}
	// The dashboard's own page, and clients that send neither header.
	for name, h := range map[string]http.Header{
		"same origin":  pageOrigin(),
		"origin only":  {"Origin": {"https://" + dashHost}},
		"fetch only":   {"Sec-Fetch-Site": {"same-origin"}},
		"user-typed":   {"Sec-Fetch-Site": {"none"}},
		"no browser":   {},
		"login itself": pageOrigin(),
	} {
		path := "/dashboard/api/v1/projects"
		if name == "login itself" {
			path = "/dashboard/api/login"
		}
		if res := f.dash("POST", path, &s, withCSRF(h, s), tlsReq); res.status != 200 {
			t.Errorf("%s: %d %s", name, res.status, res.body)
		}
	}
}

// The routes that take an optional session (the dashboard asking whether it
// is logged in) are admitted without one, or with one that is no longer
// valid, with no principal and nothing spent; with a valid one, for the
// member.
func TestOptionalSession(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	checks := f.limiter.n.Load()
	for name, s := range map[string]*login{"no cookie": nil, "unknown token": {token: "gone"}} {
		res := f.dash("GET", "/dashboard/api/session", s, nil, tlsReq)
		if res.status != 200 || !res.reached || res.adm.Principal != nil {
			t.Fatalf("%s: %d %s %+v", name, res.status, res.body, res.adm)
		}
		if res.adm.Match.Route == nil || res.adm.Match.Route.Name != routes.DashboardSession {
			t.Fatalf("%s: match %+v", name, res.adm.Match)
		}
		if res.header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("%s: rate-limit headers %v", name, res.header)
		}
		wantDashboardHeaders(t, name, res)
	}
	if n := f.limiter.n.Load() - checks; n != 0 {
		t.Fatalf("%d limiter calls without a session", n)
	}
	s := f.login(t)
	res := f.dash("GET", "/dashboard/api/session", &s, nil, tlsReq)
	if res.status != 200 || res.adm.Principal == nil || res.adm.Principal.ID != s.member {
		t.Fatalf("with a session: %d %+v", res.status, res.adm)
	}
	wantRate(t, "with a session", res, 200, strconv.Itoa(DefaultAdminLimit), strconv.Itoa(DefaultAdminLimit-1))
	if b := f.limiter.lastBucket(); b != "member:"+s.member {
		t.Fatalf("spent from %q", b)
	}
}

// Logging out is not metered: it works with the member's bucket spent, and
// spends nothing.
func TestLogoutIsNotMetered(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Admin] = ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	f := newFixture(t, cfg)
	s := f.login(t)
	wantRate(t, "first", f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq), 200, "1", "0")
	wantRate(t, "spent", f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq), 429, "1", "0")
	checks := f.limiter.n.Load()
	res := f.dash("POST", "/dashboard/api/logout", &s, withCSRF(pageOrigin(), s), tlsReq)
	if res.status != 200 || !res.reached || res.adm.Principal == nil || res.adm.Principal.ID != s.member {
		t.Fatalf("logout: %d %s", res.status, res.body)
	}
	if res.adm.Match.Route.Name != routes.DashboardLogout || !res.adm.Match.Route.Unmetered {
		t.Fatalf("route %+v", res.adm.Match.Route)
	}
	if res.header.Get("X-RateLimit-Limit") != "" || f.limiter.n.Load() != checks {
		t.Fatalf("logout was metered: %v, %d limiter calls", res.header, f.limiter.n.Load()-checks)
	}
}

// Plain HTTP is refused before the session is looked up, on every kind of
// dashboard route.
func TestSessionPlainHTTPNotLookedUp(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	s := f.login(t)
	plain := Request{ClientIP: "192.0.2.9"}
	for _, e := range []struct{ method, path string }{
		{"GET", "/dashboard/api/v1/projects"}, {"GET", "/dashboard/api/session"},
		{"POST", "/dashboard/api/logout"}, {"POST", "/dashboard/api/login"}, {"GET", "/dashboard/"},
	} {
		res := f.dash(e.method, e.path, &s, withCSRF(pageOrigin(), s), plain)
		if res.status != 403 || res.body != bodyHTTPS || res.reached {
			t.Errorf("%s %s over HTTP: %d %s", e.method, e.path, res.status, res.body)
		}
		wantDashboardHeaders(t, e.path, res)
	}
	if n := f.sessions.n.Load(); n != 0 {
		t.Fatalf("%d session lookups for plain HTTP requests", n)
	}
	if n := f.limiter.n.Load(); n != 0 {
		t.Fatalf("%d limiter calls for plain HTTP requests", n)
	}
}

// A session that cannot be looked up because storage fails is refused with
// 503 under every on_storage_error policy, optional sessions included:
// authentication never fails open, even where the rate limit would (a key
// already cached is admitted under allow at the same moment).
func TestSessionStorageFailure(t *testing.T) {
	r, st, lim := stoppableRedis(t)

	for _, policy := range []StoragePolicy{StorageDeny, StorageAllow, StorageLocal} {
		r.Start()
		cfg := failureConfig(policy)
		f := newFixtureOn(t, st, lim, cfg)
		s := f.login(t)
		live := bearer(f.keys["live"])
		if res := f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq); res.status != 200 {
			t.Fatalf("%v, Redis up: %d %s", policy, res.status, res.body)
		}
		if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 200 {
			t.Fatalf("%v, Redis up: %d %s", policy, res.status, res.body)
		}
		r.Stop()
		for _, e := range []struct{ method, path string }{
			{"GET", "/dashboard/api/v1/projects"}, {"GET", "/dashboard/api/session"}, {"POST", "/dashboard/api/logout"},
		} {
			start := time.Now()
			res := f.dash(e.method, e.path, &s, withCSRF(pageOrigin(), s), tlsReq)
			if res.status != 503 || res.body != bodyStorage || res.reached {
				t.Errorf("%v, %s %s with Redis down: %d %s", policy, e.method, e.path, res.status, res.body)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("%v: a session lookup with Redis down took %v", policy, took)
			}
			wantDashboardHeaders(t, e.path, res)
		}
		// Without a cookie there is nothing to look up.
		if res := f.dash("GET", "/dashboard/api/session", nil, nil, tlsReq); res.status != 200 {
			t.Errorf("%v: optional session, no cookie: %d %s", policy, res.status, res.body)
		}
		if policy == StorageAllow {
			if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 200 {
				t.Errorf("allow: cached key with Redis down: %d %s", res.status, res.body)
			}
		}
	}
}

// Guard.Spend is the limiter path of the dashboard's own limits (login
// attempts): the shared bucket while storage answers; when it fails, the
// local share under local and under allow alike (a login is never
// unlimited), and 503 under deny.
func TestSpendNeverUnlimited(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Timeout = 200 * time.Millisecond
	cfg.LocalInstances = 2
	f, r := localFixture(t, cfg)
	ctx := context.Background()
	limit := ratelimit.Limit{Rate: 4, Period: time.Hour, Burst: 4}
	spend := func(what, bucket string, wantErr int, wantLimit, wantRemaining string) {
		t.Helper()
		rate, err := f.guard.Spend(ctx, bucket, limit)
		h := http.Header{}
		rate.Apply(h)
		status := 0
		if err != nil {
			var ae *apierror.Error
			if !errors.As(err, &ae) {
				t.Fatalf("%s: %v is no API error", what, err)
			}
			status = ae.Status
		}
		if status != wantErr || h.Get("X-RateLimit-Limit") != wantLimit || h.Get("X-RateLimit-Remaining") != wantRemaining {
			t.Fatalf("%s: error %v (status %d), limit %q remaining %q; want %d, %q, %q",
				what, err, status, h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Remaining"), wantErr, wantLimit, wantRemaining)
		}
		if status == 429 && h.Get("Retry-After") == "" {
			t.Fatalf("%s: 429 without Retry-After: %v", what, h)
		}
	}
	// Storage answers: the shared bucket, whatever the policy.
	for _, p := range []StoragePolicy{StorageDeny, StorageAllow, StorageLocal} {
		c := cfg
		c.OnStorageError = p
		f.guard.SetConfig(c)
		for i := 3; i >= 0; i-- {
			spend("shared "+p.String(), "login:"+p.String(), 0, "4", strconv.Itoa(i))
		}
		spend("shared, spent "+p.String(), "login:"+p.String(), 429, "4", "0")
	}

	r.Stop()
	for _, p := range []StoragePolicy{StorageAllow, StorageLocal} {
		c := cfg
		c.OnStorageError = p
		f.guard.SetConfig(c)
		bucket := "login-down:" + p.String()
		// This instance's share: half of 4.
		spend(p.String()+", storage down", bucket, 0, "2", "1")
		spend(p.String()+", storage down", bucket, 0, "2", "0")
		spend(p.String()+", storage down, share spent", bucket, 429, "2", "0")
	}
	// A key's request under allow, meanwhile, is admitted unlimited: the
	// difference is Spend's.
	c := cfg
	c.OnStorageError = StorageAllow
	f.guard.SetConfig(c)
	res := f.do("POST", "/v1/evaluate", bearer(f.keys["live"]), tlsReq, Policy{})
	if res.status != 200 || res.header.Get("X-RateLimit-Limit") != strconv.Itoa(DefaultLiveLimit) ||
		res.header.Get("X-RateLimit-Remaining") != "" {
		t.Fatalf("key under allow, storage down: %d %v", res.status, res.header)
	}
	c.OnStorageError = StorageDeny
	f.guard.SetConfig(c)
	spend("deny, storage down", "login-down:deny", 503, "", "")
}

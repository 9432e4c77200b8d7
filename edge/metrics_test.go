package edge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

type testCounter struct{ n atomic.Int64 }

func (c *testCounter) Inc() { c.n.Add(1) }

type testObserver struct {
	n   atomic.Int64
	neg atomic.Int64
}

func (o *testObserver) Observe(v float64) {
	o.n.Add(1)
	if v < 0 {
		o.neg.Add(1)
	}
}

// testMetrics holds plain counters behind the guard's and the cache's
// instruments.
type testMetrics struct {
	requests                          [NumCallers][NumOutcomes]testCounter
	limiterSeconds                    testObserver
	limiterErrors, lookupErrors       testCounter
	hits, misses                      testCounter
	guardMetrics                      *Metrics
	cacheMetrics                      *KeyCacheMetrics
	lastRequests                      [NumCallers][NumOutcomes]int64
	lastHits, lastMisses, lastLimiter int64
}

func newTestMetrics() *testMetrics {
	m := &testMetrics{}
	gm := &Metrics{LimiterSeconds: &m.limiterSeconds, LimiterErrors: &m.limiterErrors}
	for t := range gm.Requests {
		for o := range gm.Requests[t] {
			gm.Requests[t][o] = &m.requests[t][o]
		}
	}
	m.guardMetrics = gm
	m.cacheMetrics = &KeyCacheMetrics{Hits: &m.hits, Misses: &m.misses, LookupErrors: &m.lookupErrors}
	return m
}

// counted fails unless exactly the request counter (c, o) moved, by one,
// since the last call.
func (m *testMetrics) counted(tb testing.TB, what string, c Caller, o Outcome) {
	tb.Helper()
	for kc := range m.requests {
		for oc := range m.requests[kc] {
			n := m.requests[kc][oc].n.Load()
			want := m.lastRequests[kc][oc]
			if Caller(kc) == c && Outcome(oc) == o {
				want++
			}
			if n != want {
				tb.Errorf("%s: requests{key_type=%s,outcome=%s} = %d, want %d", what, Caller(kc), Outcome(oc), n, want)
			}
			m.lastRequests[kc][oc] = n
		}
	}
}

// switchLimiter fails while fail is set, and counts its calls.
type switchLimiter struct {
	ratelimit.Limiter
	fail  atomic.Bool
	calls atomic.Int64
}

func (l *switchLimiter) Allow(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Result, error) {
	l.calls.Add(1)
	if l.fail.Load() {
		return ratelimit.Result{}, errors.New("limiter storage down")
	}
	return l.Limiter.Allow(ctx, key, limit)
}

// switchSource fails lookups while fail is set.
type switchSource struct {
	KeySource
	fail atomic.Bool
}

func (s *switchSource) LookupKey(ctx context.Context, d apikey.Digest) (*apikey.Record, error) {
	if s.fail.Load() {
		return nil, errors.New("key storage down")
	}
	return s.KeySource.LookupKey(ctx, d)
}

func TestGuardMetrics(t *testing.T) {
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := DefaultConfig()
	cfg.Limits[apikey.Live] = ratelimit.PerMinute(2)
	cfg.Unauthenticated = ratelimit.PerMinute(2)
	f := newFixtureOn(t, st, ratelimit.NewMemory(), cfg)
	// The same keys, behind a guard whose storage the test can fail.
	src := &switchSource{KeySource: f.svc.Keys}
	lim := &switchLimiter{Limiter: ratelimit.NewMemory()}
	f.guard = NewGuard(cfg, NewKeyCache(src, KeyCacheOptions{}), f.svc.Identity, lim, nil)
	m := newTestMetrics()
	f.guard.SetMetrics(m.guardMetrics)
	f.guard.Keys().SetMetrics(m.cacheMetrics)
	live := bearer(f.keys["live"])

	f.do("GET", "/v1/projects", live, Request{ClientIP: "192.0.2.1"}, Policy{})
	m.counted(t, "plain HTTP", CallerNone, OutcomeHTTPSRequired)

	f.do("GET", "/v1/projects", "", tlsReq, Policy{})
	m.counted(t, "no key", CallerNone, OutcomeUnauthorized)

	if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 200 {
		t.Fatalf("live key: %d %s", res.status, res.body)
	}
	m.counted(t, "live key", CallerLive, OutcomeAllowed)
	if m.misses.n.Load() != 1 || m.hits.n.Load() != 0 {
		t.Fatalf("first use of a key: %d hits, %d misses", m.hits.n.Load(), m.misses.n.Load())
	}

	if res := f.do("GET", "/v1/projects", live, tlsReq, Policy{}); res.status != 403 {
		t.Fatalf("live key on an admin endpoint: %d", res.status)
	}
	m.counted(t, "live key, wrong scope", CallerLive, OutcomeForbidden)
	if m.misses.n.Load() != 1 || m.hits.n.Load() != 1 {
		t.Fatalf("second use of a key: %d hits, %d misses", m.hits.n.Load(), m.misses.n.Load())
	}

	if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 429 {
		t.Fatalf("third request of a 2/min key: %d", res.status)
	}
	m.counted(t, "live key over its limit", CallerLive, OutcomeLimited)

	if res := f.do("POST", "/v1/evaluate", bearer(f.keys["test-ro"]), tlsReq, Policy{}); res.status != 200 {
		t.Fatalf("test key: %d", res.status)
	}
	m.counted(t, "test key", CallerTest, OutcomeAllowed)
	if res := f.do("POST", "/v1/testing/sessions", bearer(f.keys["test-ro"]), tlsReq, Policy{}); res.status != 403 {
		t.Fatalf("read-only test key writing: %d", res.status)
	}
	m.counted(t, "read-only test key writing", CallerTest, OutcomeForbidden)

	f.do("GET", "/dashboard/", "", tlsReq, Policy{})
	m.counted(t, "dashboard", CallerNone, OutcomeAllowed)

	// A logged-in member is a caller of its own; without a session the
	// dashboard's API is unauthorized for no caller.
	s := f.login(t)
	if res := f.dash("GET", "/dashboard/api/v1/projects", &s, nil, tlsReq); res.status != 200 {
		t.Fatalf("session: %d %s", res.status, res.body)
	}
	m.counted(t, "session", CallerMember, OutcomeAllowed)
	if res := f.dash("POST", "/dashboard/api/v1/projects", &s, pageOrigin(), tlsReq); res.status != 403 {
		t.Fatalf("session change without its token: %d %s", res.status, res.body)
	}
	m.counted(t, "session change without its token", CallerMember, OutcomeForbidden)
	if res := f.dash("GET", "/dashboard/api/session", nil, nil, tlsReq); res.status != 200 {
		t.Fatalf("optional session: %d", res.status)
	}
	m.counted(t, "optional session, none", CallerNone, OutcomeAllowed)
	if res := f.dash("POST", "/dashboard/api/v1/projects", &s, http.Header{"Sec-Fetch-Site": {"cross-site"}}, tlsReq); res.status != 403 {
		t.Fatalf("cross-site: %d", res.status)
	}
	m.counted(t, "cross-site", CallerNone, OutcomeForbidden)

	// The limiter's storage fails: the admin key (cached by now) is refused
	// with 503 under the deny policy, and the failure is counted.
	admin := bearer(f.keys["admin"])
	f.do("GET", "/v1/projects", admin, tlsReq, Policy{})
	m.counted(t, "admin key", CallerAdmin, OutcomeAllowed)
	lim.fail.Store(true)
	if res := f.do("GET", "/v1/projects", admin, tlsReq, Policy{}); res.status != 503 {
		t.Fatalf("limiter down: %d", res.status)
	}
	m.counted(t, "limiter down", CallerAdmin, OutcomeStorageUnavailable)
	if n := m.limiterErrors.n.Load(); n != 1 {
		t.Fatalf("limiter errors: %d", n)
	}
	// A client that went away while storage failed is not counted at all.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", "/v1/projects", nil)
	r.Header.Set("Authorization", admin)
	f.guard.Check(r, tlsReq, Policy{})
	m.counted(t, "client gone", CallerNone, NumOutcomes)
	if n := m.limiterErrors.n.Load(); n != 1 {
		t.Fatalf("limiter errors after a client went away: %d", n)
	}
	lim.fail.Store(false)

	// The key storage fails: a key never seen cannot be verified.
	src.fail.Store(true)
	if res := f.do("GET", "/v1/projects", bearer(f.keys["org"]), tlsReq, Policy{}); res.status != 503 {
		t.Fatalf("key storage down: %d", res.status)
	}
	m.counted(t, "key storage down", CallerNone, OutcomeStorageUnavailable)
	if n := m.lookupErrors.n.Load(); n != 1 {
		t.Fatalf("lookup errors: %d", n)
	}
	src.fail.Store(false)

	// Failed authentication spends the address's bucket (2/min; one spent
	// by the request without a key above).
	f.do("GET", "/v1/projects", "Bearer nope", tlsReq, Policy{})
	m.counted(t, "malformed key", CallerNone, OutcomeUnauthorized)
	if res := f.do("GET", "/v1/projects", "Bearer nope", tlsReq, Policy{}); res.status != 429 {
		t.Fatalf("address over its limit: %d", res.status)
	}
	m.counted(t, "address over its limit", CallerNone, OutcomeLimited)

	// Every check of the shared limiter was timed; none took negative time.
	if n, calls := m.limiterSeconds.n.Load(), lim.calls.Load(); n != calls || calls == 0 || m.limiterSeconds.neg.Load() != 0 {
		t.Fatalf("limiter observations: %d (want %d), %d negative", n, calls, m.limiterSeconds.neg.Load())
	}

	// Without metrics, nothing is recorded.
	f.guard.SetMetrics(nil)
	f.guard.Keys().SetMetrics(nil)
	hits := m.hits.n.Load()
	f.do("GET", "/v1/projects", admin, tlsReq, Policy{})
	m.counted(t, "metrics off", CallerNone, NumOutcomes)
	if m.hits.n.Load() != hits {
		t.Fatal("the cache counted with its metrics off")
	}
}

func TestOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		err  *apierror.Error
		want Outcome
	}{
		{nil, OutcomeAllowed},
		{apierror.HTTPSRequired, OutcomeHTTPSRequired},
		{apierror.MissingKey, OutcomeUnauthorized},
		{apierror.InvalidKey, OutcomeUnauthorized},
		{apierror.WrongKeyType, OutcomeForbidden},
		{apierror.ReadOnlyKey, OutcomeForbidden},
		{apierror.Forbidden("x"), OutcomeForbidden},
		{apierror.RateLimited(3), OutcomeLimited},
		{apierror.StorageDown, OutcomeStorageUnavailable},
		{errLoggedOut, OutcomeUnauthorized},
		{errCSRF, OutcomeForbidden},
		{errCrossSite, OutcomeForbidden},
		{apierror.Internal, OutcomeStorageUnavailable},
	} {
		if got := OutcomeOf(c.err); got != c.want {
			t.Errorf("OutcomeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	// The callers are the closed set of the key_type label, and each names
	// its IETF policy.
	var names, policies []string
	for c := range NumCallers {
		names = append(names, c.String())
		policies = append(policies, PolicyName(c))
	}
	if want := []string{"none", "live", "test", "admin", "member", "client"}; !slices.Equal(names, want) {
		t.Errorf("callers %v, want %v", names, want)
	}
	if want := []string{"unauthenticated", "live", "test", "admin", "member", "client"}; !slices.Equal(policies, want) {
		t.Errorf("policies %v, want %v", policies, want)
	}
	if NumCallers.String() != "unknown" || NumOutcomes.String() != "unknown" {
		t.Errorf("out of range: %q, %q", NumCallers, NumOutcomes)
	}
	seen := map[string]bool{}
	for o := range NumOutcomes {
		name := o.String()
		if name == "" || name == "unknown" || seen[name] || strings.ToLower(name) != name {
			t.Errorf("outcome %d is named %q", o, name)
		}
		seen[name] = true
	}
}

// The IETF fields are off by default, and when on they carry the numbers of
// the X-RateLimit-* headers of the same response, for admitted and refused
// requests alike.
func TestIETFHeaders(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Live] = ratelimit.PerMinute(2)
	cfg.Unauthenticated = ratelimit.PerMinute(1)
	f := newFixture(t, cfg)
	live := bearer(f.keys["live"])
	if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.header.Get("RateLimit") != "" || res.header.Get("RateLimit-Policy") != "" {
		t.Fatalf("IETF fields while off: %v", res.header)
	}

	cfg.IETFHeaders = true
	f.guard.SetConfig(cfg)
	check := func(what string, res response, status int, policy string, q, w int) {
		t.Helper()
		if res.status != status {
			t.Fatalf("%s: %d %s", what, res.status, res.body)
		}
		h := res.header
		wantPolicy := `"` + policy + `";q=` + strconv.Itoa(q) + ";w=" + strconv.Itoa(w)
		if got := h.Values("RateLimit-Policy"); len(got) != 1 || got[0] != wantPolicy {
			t.Fatalf("%s: RateLimit-Policy %q, want %q", what, got, wantPolicy)
		}
		if h.Get("X-RateLimit-Limit") != strconv.Itoa(q) {
			t.Fatalf("%s: q=%d but X-RateLimit-Limit %s", what, q, h.Get("X-RateLimit-Limit"))
		}
		current := h.Values("RateLimit")
		prefix := `"` + policy + `";r=` + h.Get("X-RateLimit-Remaining") + ";t="
		if len(current) != 1 || !strings.HasPrefix(current[0], prefix) {
			t.Fatalf("%s: RateLimit %q, want %s... (X-RateLimit-Remaining %s)", what, current, prefix, h.Get("X-RateLimit-Remaining"))
		}
		tt, err := strconv.Atoi(strings.TrimPrefix(current[0], prefix))
		if err != nil {
			t.Fatalf("%s: t in %q: %v", what, current[0], err)
		}
		if retry := h.Get("Retry-After"); retry != "" {
			if strconv.Itoa(tt) != retry {
				t.Fatalf("%s: t=%d, Retry-After %s", what, tt, retry)
			}
			return
		}
		// X-RateLimit-Reset is an absolute time rounded up, t a duration
		// rounded up: one second apart at most, never after it.
		reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
		now := time.Now().Unix()
		if d := reset - now; int64(tt) > d+1 || int64(tt) < d-1 {
			t.Fatalf("%s: t=%d, X-RateLimit-Reset %d s away", what, tt, d)
		}
	}
	check("admitted", f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}), 200, "live", 2, 60)
	check("refused", f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}), 429, "live", 2, 60)
	check("wrong scope", f.do("GET", "/v1/projects", bearer(f.keys["test"]), tlsReq, Policy{}), 403, "test", DefaultTestLimit, 60)
	check("admin", f.do("GET", "/v1/projects", bearer(f.keys["admin"]), tlsReq, Policy{}), 200, "admin", DefaultAdminLimit, 60)
	check("bad key", f.do("GET", "/v1/projects", "Bearer nope", tlsReq, Policy{}), 401, "unauthenticated", 1, 60)
	check("address limited", f.do("GET", "/v1/projects", "Bearer nope", tlsReq, Policy{}), 429, "unauthenticated", 1, 60)
	// A member's session is the member policy, at the admin limit (from
	// another address: tlsReq's is blocked by now, and a blocked address
	// gets no session lookup); an expired one the address's, whose bucket
	// is spent by now.
	s := f.login(t)
	check("member", f.dash("GET", "/dashboard/api/v1/projects", &s, nil, Request{HTTPS: true, ClientIP: "192.0.2.88"}),
		200, "member", DefaultAdminLimit, 60)
	check("logged out", f.dash("GET", "/dashboard/api/v1/projects", nil, nil, Request{HTTPS: true, ClientIP: "192.0.2.77"}),
		401, "unauthenticated", 1, 60)

	// They survive the next handler, like the X-RateLimit-* headers.
	r := httptest.NewRequest("POST", "/v1/evaluate", nil)
	r.Header.Set("Authorization", bearer(f.keys["admin"]))
	res := f.serve(r, tlsReq, Policy{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit", `"upstream";r=1`)
		w.WriteHeader(http.StatusOK)
	})
	check("through a handler", res, 200, "admin", DefaultAdminLimit, 60)
}

// BenchmarkGuardHotPathMetrics is BenchmarkGuardHotPath with metrics
// recorded (atomic counters, as Prometheus's are): what they add to a
// request.
func BenchmarkGuardHotPathMetrics(b *testing.B) {
	benchmarkGuard(b, benchFileStore(b), ratelimit.NewMemory(), func(g *Guard, cfg Config) {
		m := newTestMetrics()
		g.SetMetrics(m.guardMetrics)
		g.Keys().SetMetrics(m.cacheMetrics)
	})
}

// BenchmarkGuardHotPathIETF is BenchmarkGuardHotPath with the IETF fields
// rendered too.
func BenchmarkGuardHotPathIETF(b *testing.B) {
	benchmarkGuard(b, benchFileStore(b), ratelimit.NewMemory(), func(g *Guard, cfg Config) {
		cfg.IETFHeaders = true
		g.SetConfig(cfg)
	})
}

// TestNearLimitMetrics: admitted key requests are counted once the limit
// nearest to refusing has 80% and 95% of its window spent, by key type.
func TestNearLimitMetrics(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Live] = ratelimit.Limit{Rate: 20, Period: time.Hour}
	f := newFixtureOn(t, fileStore(t), ratelimit.NewMemory(), cfg)
	var near [NumCallers][len(NearThresholds)]testCounter
	gm := &Metrics{}
	for c := range gm.NearLimit {
		for i := range gm.NearLimit[c] {
			gm.NearLimit[c][i] = &near[c][i]
		}
	}
	f.guard.SetMetrics(gm)
	live := bearer(f.keys["live"])
	counts := func() [2]int64 { return [2]int64{near[CallerLive][0].n.Load(), near[CallerLive][1].n.Load()} }
	for range 15 {
		f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
	}
	if got := counts(); got != [2]int64{0, 0} {
		t.Fatalf("15 of 20 spent: near counts %v, want none", got)
	}
	for range 3 {
		f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}) // 16, 17, 18 of 20: 80%, 85%, 90%
	}
	if got := counts(); got != [2]int64{3, 0} {
		t.Fatalf("18 of 20 spent: near counts %v, want 3 at 80%% and none at 95%%", got)
	}
	f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}) // 19: 95%
	f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}) // 20: 100%
	f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}) // refused: not counted
	if got := counts(); got != [2]int64{5, 2} {
		t.Fatalf("all 20 spent, then a refusal: near counts %v, want 5 and 2", got)
	}
	if n := near[CallerTest][0].n.Load(); n != 0 {
		t.Fatalf("test keys counted %d", n)
	}
}

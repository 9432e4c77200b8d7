package edge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// limitsSource is the fixture's key source, giving some keys limits of
// their own as the key API stores them on the record.
type limitsSource struct {
	KeySource
	set map[string]func(*apikey.Record) // by key id
}

func (s *limitsSource) LookupKey(ctx context.Context, d apikey.Digest) (*apikey.Record, error) {
	rec, err := s.KeySource.LookupKey(ctx, d)
	if rec != nil {
		if f := s.set[rec.ID]; f != nil {
			c := *rec
			f(&c)
			rec = &c
		}
	}
	return rec, err
}

// newLimitsFixture is newFixtureOn with the "live" key given limits by set.
func newLimitsFixture(t *testing.T, st store.Store, lim ratelimit.Limiter, cfg Config, set func(*apikey.Record)) *fixture {
	t.Helper()
	f := newFixtureOn(t, st, lim, cfg)
	src := &limitsSource{KeySource: f.source, set: map[string]func(*apikey.Record){f.records["live"].ID: set}}
	f.guard = NewGuard(cfg, NewKeyCache(src, KeyCacheOptions{}), f.sessions, f.limiter, nil)
	return f
}

func fileStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func named(name string, n int, w time.Duration) ratelimit.NamedLimit {
	return ratelimit.NamedLimit{Name: name, Requests: n, Window: ratelimit.Window(w)}
}

// TestKeyNamedLimits: a key's own limits replace its type's, every one of
// them must admit a request, and a refusal by one spends from none.
func TestKeyNamedLimits(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			clock := &fakeClock{base: time.Now()}
			var st store.Store
			var lim ratelimit.Limiter
			if backend == "memory" {
				st, lim = fileStore(t), ratelimit.NewMemoryWithClock(clock.Now)
			} else {
				r, err := store.OpenRedis(testenv.StartRedis(t).URL(), store.Options{KeyPrefix: testenv.UniquePrefix(t)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				st, lim = r, ratelimit.NewRedis(r.Client(), r.Prefix())
			}
			f := newLimitsFixture(t, st, lim, DefaultConfig(), func(r *apikey.Record) {
				r.Limits = []ratelimit.NamedLimit{named("burst", 2, time.Hour), named("sustained", 3, 24*time.Hour)}
			})
			live := bearer(f.keys["live"])
			for i, want := range []struct{ limit, remaining string }{{"2", "1"}, {"2", "0"}} {
				res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
				if res.status != 200 {
					t.Fatalf("request %d: %d %s", i, res.status, res.body)
				}
				// The nearest limit, by the share left: burst (1 of 2
				// against 2 of 3), then burst again (0 of 2).
				if got := [2]string{res.header.Get("X-RateLimit-Limit"), res.header.Get("X-RateLimit-Remaining")}; got != [2]string{want.limit, want.remaining} {
					t.Fatalf("request %d: X-RateLimit-Limit/Remaining %v, want %s/%s", i, got, want.limit, want.remaining)
				}
				if res.header.Get("X-Quota-Limit") != "" {
					t.Fatalf("request %d: quota headers without a quota: %v", i, res.header)
				}
			}
			res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
			if res.status != 429 || res.header.Get("X-RateLimit-Limit") != "2" || res.header.Get("Retry-After") == "" ||
				res.body != `{"error":"RATE_LIMITED","message":"Rate limit exceeded; retry in `+res.header.Get("Retry-After")+` seconds"}` {
				t.Fatalf("past the burst: %d %v %s", res.status, res.header, res.body)
			}
			if ra, _ := strconv.Atoi(res.header.Get("Retry-After")); ra < 1790 || ra > 1800 {
				t.Fatalf("Retry-After %d, want the burst's emission interval, 1800 s", ra)
			}
			// The refusal left sustained at 1 of 3: a whole burst later
			// one request passes, and the next is refused by sustained.
			if backend == "redis" {
				return // Redis's clock cannot be moved; the conformance suite covers it.
			}
			clock.Advance(time.Hour)
			if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 200 || res.header.Get("X-RateLimit-Limit") != "3" || res.header.Get("X-RateLimit-Remaining") != "0" {
				t.Fatalf("an hour later: %d %v, want admitted with sustained spent (had the refusal spent it, this one would be refused)", res.status, res.header)
			}
			if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 429 || res.header.Get("X-RateLimit-Limit") != "3" {
				t.Fatalf("past sustained: %d %v", res.status, res.header)
			}
		})
	}
}

// TestKeyQuota: a quota next to the type's default limit, with its
// X-Quota-* headers, refused with QUOTA_EXCEEDED until the period ends.
func TestKeyQuota(t *testing.T) {
	f := newLimitsFixture(t, fileStore(t), ratelimit.NewMemory(), DefaultConfig(), func(r *apikey.Record) {
		r.Quota = &ratelimit.Quota{Requests: 2, Period: ratelimit.Day}
	})
	live := bearer(f.keys["live"])
	_, end := ratelimit.Day.Bounds(time.Now())
	for i := range 2 {
		res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
		if res.status != 200 || res.header.Get("X-Quota-Limit") != "2" || res.header.Get("X-Quota-Remaining") != strconv.Itoa(1-i) ||
			res.header.Get("X-Quota-Reset") != strconv.FormatInt(end.Unix(), 10) {
			t.Fatalf("request %d: %d %v", i, res.status, res.header)
		}
		// The type's default limit still applies, and is the one reported.
		if res.header.Get("X-RateLimit-Limit") != strconv.Itoa(DefaultLiveLimit) || res.header.Get("X-RateLimit-Remaining") != strconv.Itoa(DefaultLiveLimit-1-i) {
			t.Fatalf("request %d: X-RateLimit-* %v, want the live default", i, res.header)
		}
	}
	res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
	ra, _ := strconv.ParseInt(res.header.Get("Retry-After"), 10, 64)
	until := int64(time.Until(end).Seconds())
	if res.status != 429 || res.header.Get("X-Quota-Remaining") != "0" || ra < until-2 || ra > until+2 ||
		res.body != `{"error":"QUOTA_EXCEEDED","message":"Quota exceeded; it renews in `+res.header.Get("Retry-After")+` seconds"}` {
		t.Fatalf("past the quota: %d %v %s (want Retry-After about %d)", res.status, res.header, res.body, until)
	}
	// The refused request spent nothing from the default limit.
	if res.header.Get("X-RateLimit-Remaining") != strconv.Itoa(DefaultLiveLimit-2) {
		t.Fatalf("past the quota: X-RateLimit-Remaining %s, want %d: a refusal spends from no bucket", res.header.Get("X-RateLimit-Remaining"), DefaultLiveLimit-2)
	}
}

// TestShadowLimits: a shadow limit, or every limit under rate_limit_mode
// shadow, admits what it would refuse and says so.
func TestShadowLimits(t *testing.T) {
	check := func(t *testing.T, f *fixture, bodyLimit string) {
		t.Helper()
		live := bearer(f.keys["live"])
		if d := f.guard.Check(request("POST", "/v1/evaluate", live), tlsReq, Policy{}); d.Err != nil || d.wouldLimit {
			t.Fatalf("first request: %v, wouldLimit %v", d.Err, d.wouldLimit)
		}
		for i := range 2 {
			d := f.guard.Check(request("POST", "/v1/evaluate", live), tlsReq, Policy{})
			if d.Err != nil || !d.wouldLimit {
				t.Fatalf("request %d past a shadow limit: %v, wouldLimit %v; want admitted and marked", i+2, d.Err, d.wouldLimit)
			}
			res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{})
			if res.status != 200 || res.header.Get("X-RateLimit-Limit") != bodyLimit || res.header.Get("X-RateLimit-Remaining") != "0" || res.header.Get("Retry-After") != "" {
				t.Fatalf("request past a shadow limit: %d %v, want 200 with the headers enforcement would send", res.status, res.header)
			}
		}
	}
	t.Run("OneLimit", func(t *testing.T) {
		f := newLimitsFixture(t, fileStore(t), ratelimit.NewMemory(), DefaultConfig(), func(r *apikey.Record) {
			tight := named("tight", 1, time.Hour)
			tight.Shadow = true
			r.Limits = []ratelimit.NamedLimit{tight, named("wide", 100, time.Hour)}
		})
		check(t, f, "1")
	})
	t.Run("Mode", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.ShadowLimits = true
		cfg.Limits[apikey.Live] = ratelimit.Limit{Rate: 1, Period: time.Hour}
		check(t, newFixtureOn(t, fileStore(t), ratelimit.NewMemory(), cfg), "1")
	})
	t.Run("ModeWithKeyLimits", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.ShadowLimits = true
		f := newLimitsFixture(t, fileStore(t), ratelimit.NewMemory(), cfg, func(r *apikey.Record) {
			r.Limits = []ratelimit.NamedLimit{named("tight", 1, time.Hour)}
			r.Quota = &ratelimit.Quota{Requests: 1, Period: ratelimit.Month}
		})
		check(t, f, "1")
	})
}

// TestChargeWithKeyLimits: a charge of n (GraphQL mutations) spends from
// every limit of the key, all or nothing.
func TestChargeWithKeyLimits(t *testing.T) {
	f := newLimitsFixture(t, fileStore(t), ratelimit.NewMemory(), DefaultConfig(), func(r *apikey.Record) {
		r.Limits = []ratelimit.NamedLimit{named("burst", 4, time.Hour), named("sustained", 10, time.Hour)}
	})
	res := f.do("POST", "/v1/evaluate", bearer(f.keys["live"]), tlsReq, Policy{})
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	ctx := context.Background()
	if err := res.adm.Charge(ctx, 4); err == nil {
		t.Fatal("a charge of 4 with 3 left of the burst was admitted")
	}
	if err := res.adm.Charge(ctx, 3); err != nil {
		t.Fatalf("a charge of 3 with 3 left, after a refused charge: %v (the refusal spent something)", err)
	}
	if h := res.adm.rate; h.IsZero() {
		t.Fatal("no headers after a charge")
	}
}

// TestKeyLimitsStorageFailure: the storage-failure policy applies to keys
// with limits of their own as to the others.
func TestKeyLimitsStorageFailure(t *testing.T) {
	r, st, lim := stoppableRedis(t)
	for _, policy := range []StoragePolicy{StorageDeny, StorageAllow, StorageLocal} {
		r.Start()
		cfg := failureConfig(policy)
		f := newLimitsFixture(t, st, lim, cfg, func(r *apikey.Record) {
			r.Limits = []ratelimit.NamedLimit{named("burst", 2, time.Hour), named("sustained", 50, time.Hour)}
		})
		live := bearer(f.keys["live"])
		if res := f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}); res.status != 200 {
			t.Fatalf("Redis up: %d %s", res.status, res.body)
		}
		r.Stop()
		var got []int
		for range 3 {
			got = append(got, f.do("POST", "/v1/evaluate", live, tlsReq, Policy{}).status)
		}
		want := map[StoragePolicy][]int{
			StorageDeny:  {503, 503, 503},
			StorageAllow: {200, 200, 200},
			// In process, from full buckets: the burst of 2, then refused.
			StorageLocal: {200, 200, 429},
		}[policy]
		if !slices.Equal(got, want) {
			t.Errorf("%v with Redis down: %v, want %v", policy, got, want)
		}
	}
}

// fakeClock is a clock moved by hand, safe for concurrent reads.
type fakeClock struct {
	base time.Time
	off  atomic.Int64
}

func (c *fakeClock) Now() time.Time          { return c.base.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// request is a request carrying the Authorization header auth.
func request(method, path, auth string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	r.Header.Set("Authorization", auth)
	return r
}

// TestRouteLimits: a route's own limits (flagbridge_auth's limit and
// cost) apply per key on top of the key's limits, and its cost spends
// from each; the key's type bucket is the one its other routes spend.
func TestRouteLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits[apikey.Live] = ratelimit.Limit{Rate: 10, Period: time.Hour}
	cfg.IETFHeaders = true
	f := newFixtureOn(t, fileStore(t), ratelimit.NewMemory(), cfg)
	search := Policy{Require: apikey.Live, Limits: []ratelimit.NamedLimit{named("search", 2, time.Hour)}}
	plain := Policy{Require: apikey.Live}
	live, test := bearer(f.keys["live"]), bearer(f.keys["test"])
	for i := range 2 {
		res := f.do("GET", "/search", live, tlsReq, search)
		if res.status != 200 || res.header.Get("X-RateLimit-Limit") != "2" || res.header.Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) {
			t.Fatalf("search %d: %d %v, want the route's limit reported", i, res.status, res.header)
		}
		if got := res.header.Get("Ratelimit-Policy"); got != `"live";q=10;w=3600, "route-search";q=2;w=3600` {
			t.Fatalf("search %d: RateLimit-Policy %q, want the key type's and the route's policies", i, got)
		}
		if got := res.header.Get("Ratelimit"); got != `"route-search";r=`+strconv.Itoa(1-i)+`;t=`+strconv.Itoa(1800*(i+1)) {
			t.Fatalf("search %d: RateLimit %q, want the route limit's, the nearest", i, got)
		}
	}
	if res := f.do("GET", "/search", live, tlsReq, search); res.status != 429 {
		t.Fatalf("third search: %d %v", res.status, res.header)
	}
	// Per key: another key has its own route bucket.
	if res := f.do("GET", "/search", test, tlsReq, search); res.status != 200 {
		t.Fatalf("another key's search: %d %s", res.status, res.body)
	}
	// The two searches spent from the key's type bucket too, and the
	// refused one did not.
	if res := f.do("GET", "/orders", live, tlsReq, plain); res.status != 200 || res.header.Get("X-RateLimit-Remaining") != "7" {
		t.Fatalf("another route of the key: %d %v, want 7 of 10 left", res.status, res.header)
	}
	// cost 3 spends 3 from every bucket, all or nothing.
	export := Policy{Require: apikey.Live, Cost: 3}
	if res := f.do("GET", "/export", live, tlsReq, export); res.status != 200 || res.header.Get("X-RateLimit-Remaining") != "4" {
		t.Fatalf("cost 3: %d %v, want 4 of 10 left", res.status, res.header)
	}
	heavy := Policy{Require: apikey.Live, Cost: 5, Limits: []ratelimit.NamedLimit{named("heavy", 100, time.Hour)}}
	if res := f.do("GET", "/heavy", live, tlsReq, heavy); res.status != 429 {
		t.Fatalf("cost 5 with 4 left: %d %v", res.status, res.header)
	}
	if res := f.do("GET", "/orders", live, tlsReq, plain); res.header.Get("X-RateLimit-Remaining") != "3" {
		t.Fatalf("after a refused cost 5: %v, want 3 left (4, less this request)", res.header)
	}
}

// TestKeyLimitsIETFHeaders: with ietf_headers, RateLimit-Policy lists
// every limit of the key and RateLimit reports the one the X-RateLimit-*
// headers describe.
func TestKeyLimitsIETFHeaders(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IETFHeaders = true
	f := newLimitsFixture(t, fileStore(t), ratelimit.NewMemory(), cfg, func(r *apikey.Record) {
		r.Limits = []ratelimit.NamedLimit{named("burst", 5, time.Second), named("daily", 1000, 24*time.Hour)}
	})
	res := f.do("POST", "/v1/evaluate", bearer(f.keys["live"]), tlsReq, Policy{})
	if res.status != 200 || res.header.Get("Ratelimit-Policy") != `"burst";q=5;w=1, "daily";q=1000;w=86400` || res.header.Get("Ratelimit") != `"burst";r=4;t=1` {
		t.Fatalf("%d %v", res.status, res.header)
	}
}

// memIdentities is an IdentitySource over a map, for the guard's tests;
// the admin service's is tested with it.
type memIdentities struct {
	mu sync.Mutex
	m  map[string]*IdentityLimits
	n  atomic.Int64
}

func (s *memIdentities) LookupIdentityLimits(_ context.Context, org, project, identity string) (*IdentityLimits, error) {
	s.n.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[IdentityTag(org, project, identity)], nil
}

// TestIdentityLimits: the keys of one identity share its limits, on top of
// their own, all or nothing; a change of the identity applies once the
// feed invalidates it.
func TestIdentityLimits(t *testing.T) {
	cfg := DefaultConfig()
	f := newFixtureOn(t, fileStore(t), ratelimit.NewMemory(), cfg)
	a, b := f.mint("a", keys.CreateInput{Name: "a", Type: "live", Environment: "production"}), f.mint("b", keys.CreateInput{Name: "b", Type: "live", Environment: "production"})
	src := &limitsSource{KeySource: f.source, set: map[string]func(*apikey.Record){
		f.records["a"].ID: func(r *apikey.Record) {
			r.Identity = "acme"
			r.Limits = []ratelimit.NamedLimit{named("own", 2, time.Hour)}
		},
		f.records["b"].ID: func(r *apikey.Record) { r.Identity = "acme" },
	}}
	tag := IdentityTag(f.records["a"].OrgID, "app", "acme")
	ids := &memIdentities{m: map[string]*IdentityLimits{tag: {Limits: []ratelimit.NamedLimit{named("shared", 4, time.Hour)}}}}
	f.guard = NewGuard(cfg, NewKeyCache(src, KeyCacheOptions{}), f.sessions, f.limiter, nil)
	cache := NewIdentityCache(ids, 0)
	f.guard.SetIdentities(cache)
	status := func(key string) int { return f.do("POST", "/v1/evaluate", bearer(key), tlsReq, Policy{}).status }

	var got []int
	for _, k := range []string{a, a, a, b, b, b} {
		got = append(got, status(k))
	}
	// a: its own 2, then refused by its own limit without spending the
	// shared 4; b: the 2 shared left, then refused by the identity.
	if want := []int{200, 200, 429, 200, 200, 429}; !slices.Equal(got, want) {
		t.Fatalf("requests of a, a, a, b, b, b: %v, want %v", got, want)
	}
	if res := f.do("POST", "/v1/evaluate", bearer(b), tlsReq, Policy{}); res.header.Get("X-RateLimit-Limit") != "4" || res.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("b's refusal reports %v, want the identity's limit", res.header)
	}
	if status(f.keys["live"]) != 200 {
		t.Fatal("a key of no identity was limited by one")
	}
	if n := ids.n.Load(); n != 1 {
		t.Fatalf("the identity was read %d times, want once (then cached)", n)
	}
	// A new limit for the identity, and the feed's event for it.
	ids.mu.Lock()
	ids.m[tag] = &IdentityLimits{Limits: []ratelimit.NamedLimit{named("wider", 10, time.Hour)}}
	ids.mu.Unlock()
	if status(b) != 429 {
		t.Fatal("the identity's change applied before its event")
	}
	cache.Invalidate(tag)
	if res := f.do("POST", "/v1/evaluate", bearer(b), tlsReq, Policy{}); res.status != 200 || res.header.Get("X-RateLimit-Limit") != "10" {
		t.Fatalf("after the identity's event: %d %v, want its new limit", res.status, res.header)
	}
	// An identity without a record shares nothing.
	delete(ids.m, tag)
	cache.Invalidate(tag)
	for range 3 {
		if status(b) != 200 {
			t.Fatal("an identity without limits limited its key")
		}
	}
}

// TestRotationKeepsLimitBuckets: a rotated key's limits and quota count
// on, by key id.
func TestRotationKeepsLimitBuckets(t *testing.T) {
	f := newLimitsFixture(t, fileStore(t), ratelimit.NewMemory(), DefaultConfig(), func(r *apikey.Record) {
		r.Limits = []ratelimit.NamedLimit{named("burst", 3, time.Hour)}
		r.Quota = &ratelimit.Quota{Requests: 5, Period: ratelimit.Month}
	})
	f.do("POST", "/v1/evaluate", bearer(f.keys["live"]), tlsReq, Policy{})
	rotated, err := f.svc.Keys.RotateKey(context.Background(), f.org, f.records["live"].ID, keys.RotateInput{})
	if err != nil {
		t.Fatal(err)
	}
	res := f.do("POST", "/v1/evaluate", bearer(rotated.Secret), tlsReq, Policy{})
	if res.status != 200 || res.header.Get("X-RateLimit-Remaining") != "1" || res.header.Get("X-Quota-Remaining") != "3" {
		t.Fatalf("the rotated key: %d %v, want its second request counted (1 of 3 left, 3 of 5)", res.status, res.header)
	}
}

// TestShadowLogPerKind: what shadow limits would have refused is logged at
// most once a second per kind of bucket (the key's, the route's).
func TestShadowLogPerKind(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	cfg := DefaultConfig()
	f := newLimitsFixture(t, fileStore(t), ratelimit.NewMemory(), cfg, func(r *apikey.Record) {
		l := named("tight", 1, time.Hour)
		l.Shadow = true
		r.Limits = []ratelimit.NamedLimit{l}
	})
	f.guard = NewGuard(cfg, f.guard.Keys(), f.sessions, f.limiter, zap.New(core))
	route := named("search", 1, time.Hour)
	route.Shadow = true
	pol := Policy{Require: apikey.Live, Limits: []ratelimit.NamedLimit{route}}
	for range 5 {
		if res := f.do("GET", "/search", bearer(f.keys["live"]), tlsReq, pol); res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
	}
	var kinds []string
	for _, e := range logs.FilterMessageSnippet("shadow rate limit").All() {
		kinds = append(kinds, e.ContextMap()["bucket"].(string))
	}
	slices.Sort(kinds)
	// Four requests past both limits within (about) a second: one line
	// each for the key's bucket and the route's, two at most if the second
	// turned meanwhile.
	if len(kinds) < 2 || len(kinds) > 4 || !slices.Contains(kinds, "key") || !slices.Contains(kinds, "route") {
		t.Fatalf("shadow log lines by bucket kind: %v, want one each for key and route", kinds)
	}
}

// TestMergedChecksFollowTheirInputs: the buckets of a key of an identity
// are joined once and reused, and joined anew when the type's limit (a
// reload) or the identity's cached entry changes.
func TestMergedChecksFollowTheirInputs(t *testing.T) {
	e := newEntry(&apikey.Record{ID: "k1", OrgID: "o", Project: "p", Type: apikey.Live, Identity: "acme"}, apikey.Digest{}, time.Now())
	shared := []ratelimit.Check{{Key: "identity:pool", Name: "identity-pool", Limit: ratelimit.PerMinute(5)}}
	def := ratelimit.PerMinute(100)
	_, a := e.checks(def, shared, nil)
	_, b := e.checks(def, shared, nil)
	if len(a) != 2 || &a[0] != &b[0] || a[0].Limit != def || a[1] != shared[0] {
		t.Fatalf("two requests: %+v and %+v, want one joined slice of the type's limit and the identity's", a, b)
	}
	_, c := e.checks(ratelimit.PerMinute(200), shared, nil)
	if c[0].Limit != ratelimit.PerMinute(200) || a[0].Limit != def {
		t.Fatalf("after a reload: %+v (and the old slice %+v), want the new limit in a new slice", c, a)
	}
	newer := []ratelimit.Check{{Key: "identity:pool", Name: "identity-pool", Limit: ratelimit.PerMinute(7)}}
	if _, d := e.checks(ratelimit.PerMinute(200), newer, nil); d[1].Limit != ratelimit.PerMinute(7) {
		t.Fatalf("after the identity changed: %+v", d)
	}
	route := []ratelimit.NamedLimit{named("search", 3, time.Hour)}
	if _, r := e.checks(def, shared, route); len(r) != 3 || r[2].Key != "route:search" {
		t.Fatalf("with a route's limit: %+v", r)
	}
}

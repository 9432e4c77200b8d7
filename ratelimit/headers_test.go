package ratelimit

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
)

func TestSetHeaders(t *testing.T) {
	now := time.Unix(1_800_000_000, 250_000_000)
	h := http.Header{}
	Result{Limit: PerMinute(100), Allowed: true, Remaining: 42, ResetAfter: 1500 * time.Millisecond}.SetHeaders(h, now)
	// now + 1.5s = ...001.75, rounded up to ...002.
	if h.Get("X-RateLimit-Limit") != "100" || h.Get("X-RateLimit-Remaining") != "42" ||
		h.Get("X-RateLimit-Reset") != "1800000002" || h.Get("Retry-After") != "" {
		t.Fatalf("admitted: %v", h)
	}
	h = http.Header{}
	Result{Limit: PerMinute(100), Remaining: -1, RetryAfter: 10 * time.Millisecond, ResetAfter: time.Minute}.SetHeaders(h, now)
	if h.Get("X-RateLimit-Remaining") != "0" || h.Get("Retry-After") != "1" {
		t.Fatalf("refused: %v", h)
	}
	h = http.Header{}
	Result{Limit: PerMinute(100), RetryAfter: 2001 * time.Millisecond}.SetHeaders(h, now)
	if h.Get("Retry-After") != "3" {
		t.Fatalf("Retry-After rounds up: %v", h)
	}
	// Adding a value later (as a proxy copying upstream headers does) must
	// not write into the shared slices.
	hv := Result{Limit: PerMinute(7), Allowed: true}.Headers(now)
	a, b := http.Header{}, http.Header{}
	hv.Apply(a)
	hv.Apply(b)
	a.Add("X-RateLimit-Limit", "1")
	if got := b.Values("X-RateLimit-Limit"); len(got) != 1 || got[0] != "7" {
		t.Fatalf("shared header slice was modified: %v", got)
	}
	h = http.Header{}
	LimitOnly(PerMinute(9)).Apply(h)
	if h.Get("X-RateLimit-Limit") != "9" || len(h) != 1 {
		t.Fatalf("LimitOnly: %v", h)
	}
}

func TestReapplyRestoresOnlyWhatChanged(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hv := Result{Limit: PerMinute(7), Allowed: true, Remaining: 3}.Headers(now)
	h := http.Header{}
	hv.Apply(h)
	hv.Reapply(h) // unchanged: still exactly one value each
	if got := h.Values("X-RateLimit-Limit"); len(got) != 1 || got[0] != "7" {
		t.Fatalf("after a no-op Reapply: %v", got)
	}
	h.Add("X-RateLimit-Remaining", "999") // an upstream's own header
	h.Set("X-RateLimit-Limit", "1")
	hv.Reapply(h)
	if h.Get("X-RateLimit-Limit") != "7" || len(h.Values("X-RateLimit-Remaining")) != 1 || h.Get("X-RateLimit-Remaining") != "3" {
		t.Fatalf("after Reapply: %v", h)
	}
	delete(h, "X-Ratelimit-Reset")
	hv.Reapply(h)
	if h.Get("X-RateLimit-Reset") == "" {
		t.Fatal("a removed header was not restored")
	}
}

func TestWithPolicyAgreesWithXRateLimit(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name            string
		res             Result
		policy, current string
	}{
		{
			// An idle 10,000/min bucket after one request: full again 6 ms
			// later, which rounds up to one second.
			name:    "admitted",
			res:     Result{Limit: PerMinute(10_000), Allowed: true, Remaining: 9_999, ResetAfter: 6 * time.Millisecond},
			policy:  `"live";q=10000;w=60`,
			current: `"live";r=9999;t=1`,
		},
		{
			name:    "admitted, half empty",
			res:     Result{Limit: Limit{Rate: 100, Period: time.Hour, Burst: 100}, Allowed: true, Remaining: 50, ResetAfter: 30*time.Minute + time.Millisecond},
			policy:  `"live";q=100;w=3600`,
			current: `"live";r=50;t=1801`,
		},
		{
			// Refused: t is Retry-After, not the time until the bucket is
			// full (which X-RateLimit-Reset reports).
			name:    "refused",
			res:     Result{Limit: PerMinute(10_000), Remaining: 0, RetryAfter: 5 * time.Millisecond, ResetAfter: time.Minute},
			policy:  `"live";q=10000;w=60`,
			current: `"live";r=0;t=1`,
		},
		{
			name:    "refused for longer",
			res:     Result{Limit: PerMinute(60), Remaining: -1, RetryAfter: 2500 * time.Millisecond, ResetAfter: 59 * time.Second},
			policy:  `"live";q=60;w=60`,
			current: `"live";r=0;t=3`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			c.res.Headers(now).WithPolicy("live").Apply(h)
			if got := h.Values("RateLimit-Policy"); len(got) != 1 || got[0] != c.policy {
				t.Errorf("RateLimit-Policy = %q, want %q", got, c.policy)
			}
			if got := h.Values("RateLimit"); len(got) != 1 || got[0] != c.current {
				t.Errorf("RateLimit = %q, want %q", got, c.current)
			}
			// Valid Structured Fields, by a parser.
			sfPolicy(t, h.Values("RateLimit-Policy"), "live", "q", "w")
			sfPolicy(t, h.Values("RateLimit"), "live", "r", "t")
			// The same numbers as the X-RateLimit-* headers.
			q, r, tt := ietfParams(t, h)
			if strconv.Itoa(q) != h.Get("X-RateLimit-Limit") || strconv.Itoa(r) != h.Get("X-RateLimit-Remaining") {
				t.Errorf("q=%d r=%d, X-RateLimit-Limit %s, X-RateLimit-Remaining %s", q, r, h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Remaining"))
			}
			if c.res.Allowed {
				reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
				if int64(tt) != reset-now.Unix() {
					t.Errorf("t=%d, but X-RateLimit-Reset is %d s away", tt, reset-now.Unix())
				}
			} else if strconv.Itoa(tt) != h.Get("Retry-After") {
				t.Errorf("t=%d, Retry-After %s", tt, h.Get("Retry-After"))
			}
		})
	}
}

// ietfParams reads q from RateLimit-Policy and r and t from RateLimit.
func ietfParams(t *testing.T, h http.Header) (q, r, tt int) {
	t.Helper()
	params := func(v string) map[string]int {
		out := map[string]int{}
		parts := strings.Split(v, ";")
		for _, p := range parts[1:] {
			k, val, _ := strings.Cut(p, "=")
			n, err := strconv.Atoi(val)
			if err != nil {
				t.Fatalf("parameter %q of %q is not an integer", p, v)
			}
			out[k] = n
		}
		return out
	}
	pol, cur := params(h.Get("RateLimit-Policy")), params(h.Get("RateLimit"))
	return pol["q"], cur["r"], cur["t"]
}

func TestWithPolicyEdges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	// Only the limit is known (storage failed, on_storage_error allow): the
	// policy, but no current quota.
	h := http.Header{}
	LimitOnly(PerMinute(500)).WithPolicy("admin").Apply(h)
	if h.Get("RateLimit-Policy") != `"admin";q=500;w=60` || h.Get("RateLimit") != "" {
		t.Fatalf("LimitOnly: %v", h)
	}
	// Nothing rendered, nothing added.
	if hv := (Headers{}).WithPolicy("live"); !hv.IsZero() {
		t.Fatal("WithPolicy on empty headers rendered something")
	}
	// A window under a second is still a valid (non-zero) w.
	h = http.Header{}
	Result{Limit: Limit{Rate: 5, Period: 100 * time.Millisecond, Burst: 5}, Allowed: true, Remaining: 4}.Headers(now).WithPolicy("x").Apply(h)
	if h.Get("RateLimit-Policy") != `"x";q=5;w=1` || h.Get("RateLimit") != `"x";r=4;t=0` {
		t.Fatalf("short window: %v", h)
	}
	// Names are Structured Fields Strings.
	h = http.Header{}
	Result{Limit: PerMinute(1), Allowed: true}.Headers(now).WithPolicy("a\"b\\c\n").Apply(h)
	if got := h.Get("RateLimit-Policy"); got != `"a\"b\\c?";q=1;w=60` {
		t.Fatalf("escaped name: %s", got)
	}
	// Without WithPolicy, no IETF field.
	h = http.Header{}
	Result{Limit: PerMinute(1), Allowed: true}.Headers(now).Apply(h)
	if h.Get("RateLimit-Policy") != "" || h.Get("RateLimit") != "" {
		t.Fatalf("IETF fields without WithPolicy: %v", h)
	}
	// Reapply restores them too, after an upstream replaced them.
	hv := Result{Limit: PerMinute(7), Allowed: true, Remaining: 3}.Headers(now).WithPolicy("live")
	h = http.Header{}
	hv.Apply(h)
	h.Set("RateLimit", `"upstream";r=1000`)
	hv.Reapply(h)
	if got := h.Values("RateLimit"); len(got) != 1 || got[0] != `"live";r=3;t=0` {
		t.Fatalf("after Reapply: %q", got)
	}
}

// sfPolicy parses field as a Structured Fields List (RFC 9651) and checks
// that it is one Item, the String name, with Integer parameters keys in that
// order, whose values it returns.
func sfPolicy(t *testing.T, field []string, name string, keys ...string) []int64 {
	t.Helper()
	list, err := httpsfv.UnmarshalList(field)
	if err != nil || len(list) != 1 {
		t.Fatalf("%q is not a Structured Fields List of one member: %v", field, err)
	}
	item, ok := list[0].(httpsfv.Item)
	if !ok || item.Value != name {
		t.Fatalf("%q: member %#v, want the String %q", field, list[0], name)
	}
	if got := item.Params.Names(); strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Fatalf("%q: parameters %v, want %v", field, got, keys)
	}
	vals := make([]int64, len(keys))
	for i, k := range keys {
		v, _ := item.Params.Get(k)
		if vals[i], ok = v.(int64); !ok {
			t.Fatalf("%q: %s=%#v is not an Integer", field, k, v)
		}
	}
	return vals
}

// TestWithPolicyStructuredFields checks, with a parser, that every name and
// number gives valid fields: names a String cannot hold, and numbers an
// Integer cannot.
func TestWithPolicyStructuredFields(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct{ name, sent string }{
		{"live", "live"},
		{"", ""},
		{`a"b\c`, `a"b\c`},             // escaped, not replaced
		{"caf\u00e9", "caf??"},         // one '?' per byte of UTF-8
		{"tab\there\x7f", "tab?here?"}, // control characters and DEL
		{"\xff", "?"},                  // not UTF-8 at all
	} {
		h := http.Header{}
		Result{Limit: PerMinute(10), Allowed: true, Remaining: 9}.Headers(now).WithPolicy(c.name).Apply(h)
		if got := sfPolicy(t, h.Values("RateLimit-Policy"), c.sent, "q", "w"); got[0] != 10 || got[1] != 60 {
			t.Errorf("name %q: RateLimit-Policy %q", c.name, h.Get("RateLimit-Policy"))
		}
		if got := sfPolicy(t, h.Values("RateLimit"), c.sent, "r", "t"); got[0] != 9 {
			t.Errorf("name %q: RateLimit %q", c.name, h.Get("RateLimit"))
		}
	}
	// Beyond 15 digits an Integer is invalid: the largest one is sent, and
	// the X-RateLimit-* headers keep the exact numbers.
	const huge = 2_000_000_000_000_000
	h := http.Header{}
	Result{Limit: Limit{Rate: huge, Period: 100 * 24 * time.Hour}, Allowed: true, Remaining: huge - 1}.Headers(now).WithPolicy("big").Apply(h)
	if got := sfPolicy(t, h.Values("RateLimit-Policy"), "big", "q", "w"); got[0] != 999_999_999_999_999 || got[1] != 8_640_000 {
		t.Errorf("RateLimit-Policy %q, want q clamped to 15 digits", h.Get("RateLimit-Policy"))
	}
	if got := sfPolicy(t, h.Values("RateLimit"), "big", "r", "t"); got[0] != 999_999_999_999_999 {
		t.Errorf("RateLimit %q, want r clamped to 15 digits", h.Get("RateLimit"))
	}
	if h.Get("X-RateLimit-Limit") != strconv.Itoa(huge) {
		t.Errorf("X-RateLimit-Limit %q, want the exact rate", h.Get("X-RateLimit-Limit"))
	}
}

// TestWithPolicyCache checks the cache of RateLimit-Policy fields: one entry
// per limit and name, none confused with another, and bounded.
func TestWithPolicyCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	policy := func(lim Limit, name string) string {
		h := http.Header{}
		Result{Limit: lim, Allowed: true, Remaining: 1}.Headers(now).WithPolicy(name).Apply(h)
		return h.Get("RateLimit-Policy")
	}
	// A reload changes the limit under one name, or the name of a limit.
	for i := range 2 {
		for _, c := range []struct {
			lim        Limit
			name, want string
		}{
			{PerMinute(5), "a", `"a";q=5;w=60`},
			{PerMinute(6), "a", `"a";q=6;w=60`},
			{Limit{Rate: 5, Period: time.Hour}, "a", `"a";q=5;w=3600`},
			{PerMinute(5), "b", `"b";q=5;w=60`},
			{PerMinute(5), "b\n", `"b?";q=5;w=60`},
		} {
			if got := policy(c.lim, c.name); got != c.want {
				t.Errorf("pass %d: %v named %q: %s, want %s", i, c.lim, c.name, got, c.want)
			}
		}
	}
	// More pairs than the bound: still right, and the cache stays bounded.
	for i := range MaxPolicies + 10 {
		name := "p" + strconv.Itoa(i)
		if got, want := policy(PerMinute(i+1), name), fmt.Sprintf("%q;q=%d;w=60", name, i+1); got != want {
			t.Fatalf("pair %d: %s, want %s", i, got, want)
		}
		if n := PolicyCacheLen(); n > MaxPolicies {
			t.Fatalf("%d cached fields, want at most %d", n, MaxPolicies)
		}
	}
}

// TestWithPolicyConcurrent renders one policy's RateLimit field from many
// goroutines at once, with different numbers: each must get its own, as
// the field's httpsfv List is recycled between requests.
func TestWithPolicyConcurrent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				r := g*1000 + i
				hv := Result{Limit: PerMinute(10_000), Allowed: true, Remaining: r}.Headers(now).WithPolicy("live")
				h := http.Header{}
				hv.Apply(h)
				if got, want := h.Get("RateLimit"), `"live";r=`+strconv.Itoa(r)+";t=0"; got != want {
					t.Errorf("RateLimit %s, want %s", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

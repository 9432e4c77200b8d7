package ratelimit_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/ratelimit"
)

func TestWindowJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{`"1s"`, time.Second, `"1s"`},
		{`"90s"`, 90 * time.Second, `"90s"`},
		{`"1m0s"`, time.Minute, `"1m"`},
		{`"24h"`, 24 * time.Hour, `"24h"`},
		{`"1500ms"`, 1500 * time.Millisecond, `"1.5s"`},
	} {
		var w ratelimit.Window
		if err := json.Unmarshal([]byte(tc.in), &w); err != nil || time.Duration(w) != tc.want {
			t.Errorf("%s: got %v, %v; want %v", tc.in, time.Duration(w), err, tc.want)
			continue
		}
		if b, _ := json.Marshal(w); string(b) != tc.out {
			t.Errorf("%s: marshalled as %s, want %s", tc.in, b, tc.out)
		}
	}
	for _, bad := range []string{`"soon"`, `60`, `""`} {
		var w ratelimit.Window
		if err := json.Unmarshal([]byte(bad), &w); err == nil {
			t.Errorf("%s: accepted as %v", bad, time.Duration(w))
		}
	}
}

func TestCheckLimits(t *testing.T) {
	ok := ratelimit.NamedLimit{Name: "burst", Requests: 100, Window: ratelimit.Window(time.Second)}
	lim := func(name string, n int, w time.Duration) ratelimit.NamedLimit {
		return ratelimit.NamedLimit{Name: name, Requests: n, Window: ratelimit.Window(w)}
	}
	for _, tc := range []struct {
		name   string
		limits []ratelimit.NamedLimit
		quota  *ratelimit.Quota
		field  string // "" when valid
	}{
		{"NotGiven", nil, nil, ""},
		{"Two", []ratelimit.NamedLimit{ok, lim("sustained", 10000, time.Minute)}, &ratelimit.Quota{Requests: 1e5, Period: ratelimit.Month}, ""},
		{"Edges", []ratelimit.NamedLimit{lim("a", 1, time.Second), lim("b", 1, 24*time.Hour)}, nil, ""},
		{"Empty", []ratelimit.NamedLimit{}, nil, "limits"},
		{"Five", []ratelimit.NamedLimit{lim("a", 1, time.Second), lim("b", 1, time.Second), lim("c", 1, time.Second), lim("d", 1, time.Second), lim("e", 1, time.Second)}, nil, "limits"},
		{"ZeroRequests", []ratelimit.NamedLimit{ok, lim("b", 0, time.Second)}, nil, "limits[1].requests"},
		{"ShortWindow", []ratelimit.NamedLimit{lim("a", 1, 999*time.Millisecond)}, nil, "limits[0].window"},
		{"LongWindow", []ratelimit.NamedLimit{ok, lim("b", 1, 25*time.Hour)}, nil, "limits[1].window"},
		{"SubMillisecond", []ratelimit.NamedLimit{lim("a", 1, time.Second+time.Microsecond)}, nil, "limits[0].window"},
		{"TooFine", []ratelimit.NamedLimit{lim("a", 2_000_000_000, time.Second)}, nil, "limits[0].requests"},
		{"NotASlug", []ratelimit.NamedLimit{ok, lim("Per Second", 5, time.Minute)}, nil, "limits[1].name"},
		{"NoName", []ratelimit.NamedLimit{lim("", 5, time.Minute)}, nil, "limits[0].name"},
		{"SameName", []ratelimit.NamedLimit{ok, lim("burst", 5, time.Minute)}, nil, "limits[1].name"},
		{"ZeroQuota", nil, &ratelimit.Quota{Period: ratelimit.Day}, "quota.requests"},
		{"UnknownPeriod", nil, &ratelimit.Quota{Requests: 5, Period: "week"}, "quota.period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ratelimit.CheckLimits(tc.limits, tc.quota)
			var se *ratelimit.SpecError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && !errors.As(err, &se):
				t.Fatalf("got %v, want a SpecError on %s", err, tc.field)
			case tc.field != "" && se.Field != tc.field:
				t.Fatalf("error on %s (%v), want on %s", se.Field, err, tc.field)
			}
		})
	}
}

func TestPeriodBounds(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 0, time.FixedZone("east", 3600))
	// 22:59:59 UTC on the 31st.
	if s, e := ratelimit.Day.Bounds(at); !s.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) || !e.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day: %v to %v", s, e)
	}
	if s, e := ratelimit.Month.Bounds(time.Date(2027, 2, 28, 12, 0, 0, 0, time.UTC)); !s.Equal(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)) || !e.Equal(time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("month: %v to %v", s, e)
	}
}

// TestMultiResultHeaders: the headers of a multi-bucket check describe
// the limit nearest to refusing and the quota; a refusal's Retry-After is
// the longest wait among the refusing buckets.
func TestMultiResultHeaders(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	checks := []ratelimit.Check{
		{Key: "a", Limit: ratelimit.Limit{Rate: 10, Period: time.Minute}},
		{Key: "b", Limit: ratelimit.Limit{Rate: 100, Period: time.Hour}},
		{Key: "q", Quota: 1000, Period: ratelimit.Month},
	}
	header := func(m ratelimit.MultiResult, cs []ratelimit.Check) http.Header {
		h := http.Header{}
		m.Headers(cs, now).Apply(h)
		return h
	}
	admitted := ratelimit.MultiResult{Allowed: true, Results: []ratelimit.Result{
		{Limit: checks[0].Limit, Allowed: true, Remaining: 5, ResetAfter: 30 * time.Second}, // half left
		{Limit: checks[1].Limit, Allowed: true, Remaining: 20, ResetAfter: time.Hour},       // a fifth left
		{Allowed: true, Remaining: 400, ResetAfter: 10 * time.Second},
	}}
	h := header(admitted, checks)
	if h.Get("X-RateLimit-Limit") != "100" || h.Get("X-RateLimit-Remaining") != "20" || h.Get("Retry-After") != "" {
		t.Errorf("admitted: %v, want the limit with the least share left (b)", h)
	}
	// The reset is the period's end (2027-02-01), whatever the reset the
	// limiter reported.
	if h.Get("X-Quota-Limit") != "1000" || h.Get("X-Quota-Remaining") != "400" || h.Get("X-Quota-Reset") != "1801440000" {
		t.Errorf("admitted: quota headers %v", h)
	}
	refused := ratelimit.MultiResult{Results: []ratelimit.Result{
		{Limit: checks[0].Limit, RetryAfter: 6 * time.Second},
		{Limit: checks[1].Limit, Allowed: true, Remaining: 20},
		{RetryAfter: 90 * time.Second, ResetAfter: 90 * time.Second},
	}}
	h = header(refused, checks)
	if h.Get("X-RateLimit-Limit") != "10" || h.Get("X-RateLimit-Remaining") != "0" || h.Get("Retry-After") != "90" || !refused.QuotaRefused(checks) {
		t.Errorf("refused by a and the quota: %v, want a's headers with the quota's longer Retry-After", h)
	}
	only := ratelimit.MultiResult{Results: []ratelimit.Result{{RetryAfter: 5 * time.Second, ResetAfter: 5 * time.Second}}}
	if h := header(only, checks[2:]); h.Get("Retry-After") != "5" || h.Get("X-Quota-Remaining") != "0" || h.Get("X-RateLimit-Limit") != "" {
		t.Errorf("refused by a lone quota: %v", h)
	}
}

// TestSpentAtLeast: the share spent of the reported limit, exact around
// the shortcut that skips parsing.
func TestSpentAtLeast(t *testing.T) {
	for _, tc := range []struct {
		limit, remaining int
		ok               bool
	}{
		{10, 2, true}, {10, 3, false}, {9, 2, false}, {9, 1, true}, {100, 20, true}, {100, 21, false},
		{1000, 200, true}, {1000, 199, true}, {5, 1, true}, {5, 0, true}, {10000, 9999, false},
	} {
		h := ratelimit.Result{Limit: ratelimit.Limit{Rate: tc.limit, Period: time.Minute}, Allowed: true, Remaining: tc.remaining}.Headers(time.Now())
		share, ok := h.SpentAtLeast(0.8)
		want := 1 - float64(tc.remaining)/float64(tc.limit)
		if ok != tc.ok || ok && share != want {
			t.Errorf("%d of %d left: %v, %v; want %v, %v", tc.remaining, tc.limit, share, ok, want, tc.ok)
		}
	}
	if _, ok := ratelimit.LimitOnly(ratelimit.PerMinute(10)).SpentAtLeast(0.8); ok {
		t.Error("headers without Remaining reported a share")
	}
}

// TestWithPolicies: RateLimit-Policy lists every bucket, quotas with their
// period as the window; RateLimit is the nearest rate limit's.
func TestWithPolicies(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	checks := []ratelimit.Check{
		{Key: "a", Name: "burst", Limit: ratelimit.Limit{Rate: 10, Period: time.Second}},
		{Key: "b", Name: "daily", Limit: ratelimit.Limit{Rate: 1000, Period: 24 * time.Hour}},
		{Key: "q", Name: "quota", Quota: 5000, Period: ratelimit.Month},
	}
	m := ratelimit.MultiResult{Allowed: true, Results: []ratelimit.Result{
		{Limit: checks[0].Limit, Allowed: true, Remaining: 9, ResetAfter: 100 * time.Millisecond},
		{Limit: checks[1].Limit, Allowed: true, Remaining: 999, ResetAfter: 86 * time.Second},
		{Limit: ratelimit.Limit{Rate: 5000, Period: 31 * 24 * time.Hour}, Allowed: true, Remaining: 4000},
	}}
	h := http.Header{}
	m.WithPolicies(m.Headers(checks, now), checks).Apply(h)
	if got := h.Get("Ratelimit-Policy"); got != `"burst";q=10;w=1, "daily";q=1000;w=86400, "quota";q=5000;w=2678400` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if got := h.Get("Ratelimit"); got != `"burst";r=9;t=1` {
		t.Errorf("RateLimit %q", got)
	}
}

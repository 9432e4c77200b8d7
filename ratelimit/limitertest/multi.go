package limitertest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/ratelimit"
)

// RunMulti runs the conformance suite of [ratelimit.MultiLimiter]: several
// buckets (named limits, a quota) checked and spent all or nothing. As for
// Run, newLimiter is called once per subtest and must return a limiter
// whose buckets are empty; the suite runs on the real clock.
func RunMulti(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	ctx := context.Background()
	// Emission intervals of seconds: nothing refills during a subtest.
	burst := ratelimit.Check{Key: "burst", Limit: ratelimit.Limit{Rate: 2, Period: 10 * time.Second}}
	sustained := ratelimit.Check{Key: "sustained", Limit: ratelimit.Limit{Rate: 5, Period: 50 * time.Second}}

	t.Run("EveryBucketSpends", func(t *testing.T) {
		l := newLimiter(t)
		for i := range 2 {
			r := mustAllowAll(t, l, "g", []ratelimit.Check{burst, sustained}, 1)
			if !r.Allowed || r.Results[0].Remaining != 1-i || r.Results[1].Remaining != 4-i {
				t.Fatalf("request %d: %+v, want admitted with %d and %d remaining", i, r, 1-i, 4-i)
			}
			if !r.Results[0].Allowed || !r.Results[1].Allowed || r.Results[0].Limit != burst.Limit || r.Results[1].Limit != sustained.Limit {
				t.Fatalf("request %d: results %+v, want both buckets admitting under their own limits", i, r.Results)
			}
		}
	})

	t.Run("ARefusalSpendsNothing", func(t *testing.T) {
		l := newLimiter(t)
		checks := []ratelimit.Check{burst, sustained}
		mustAllowAll(t, l, "g", checks, 1)
		mustAllowAll(t, l, "g", checks, 1)
		r := mustAllowAll(t, l, "g", checks, 1)
		if r.Allowed {
			t.Fatalf("third request past a burst of 2: %+v, want refused", r)
		}
		b, s := r.Results[0], r.Results[1]
		if b.Allowed || b.Remaining != 0 || b.RetryAfter <= 4*time.Second || b.RetryAfter > 5*time.Second+floatSlack {
			t.Fatalf("refusing bucket: %+v, want refused with RetryAfter about one emission interval (5s)", b)
		}
		if !s.Allowed || s.Remaining != 3 || s.RetryAfter != 0 {
			t.Fatalf("other bucket of a refused request: %+v, want room for 3 and nothing spent", s)
		}
		// Had the refusal spent from sustained, it would hold 2 now.
		if r := mustAllowAll(t, l, "g", []ratelimit.Check{sustained}, 1); !r.Allowed || r.Results[0].Remaining != 2 {
			t.Fatalf("sustained after a refused request: %+v, want 2 remaining after this one", r)
		}
	})

	t.Run("PeekSpendsNothing", func(t *testing.T) {
		l := newLimiter(t)
		quota := ratelimit.Check{Key: "quota", Quota: 3, Period: ratelimit.Day}
		shadow := ratelimit.Check{Key: "tight", Limit: ratelimit.Limit{Rate: 1, Period: 10 * time.Second}, Shadow: true}
		checks := []ratelimit.Check{burst, sustained, quota, shadow}
		peek := func(what string) ratelimit.MultiResult {
			t.Helper()
			r, err := l.PeekAll(ctx, "g", checks)
			if err != nil {
				t.Fatalf("PeekAll %s: %v", what, err)
			}
			if len(r.Results) != len(checks) {
				t.Fatalf("PeekAll %s: %d results for %d buckets", what, len(r.Results), len(checks))
			}
			return r
		}
		if r := peek("of fresh buckets"); !r.Allowed || r.Results[0].Remaining != 2 || r.Results[1].Remaining != 5 || r.Results[2].Remaining != 3 || r.Results[3].Remaining != 1 {
			t.Fatalf("peek of fresh buckets: %+v, want every bucket full", r)
		}
		mustAllowAll(t, l, "g", checks, 1)
		for i := range 3 {
			r := peek("after one request")
			b, s, q, sh := r.Results[0], r.Results[1], r.Results[2], r.Results[3]
			if !r.Allowed || b.Remaining != 1 || s.Remaining != 4 || q.Remaining != 2 || sh.Remaining != 0 {
				t.Fatalf("peek %d after one request: %+v, want 1, 4, 2 and 0 left and a request admissible", i, r)
			}
			if sh.Allowed || !b.Allowed || b.Limit != burst.Limit || q.Limit.Rate != 3 || q.ResetAfter <= 0 || q.ResetAfter > 24*time.Hour {
				t.Fatalf("peek %d: %+v, want the shadow bucket empty, the others admitting, under their limits", i, r.Results)
			}
			if b.ResetAfter <= 4*time.Second || b.ResetAfter > 5*time.Second+floatSlack {
				t.Fatalf("peek %d: burst ResetAfter %v, want about one emission interval (5s)", i, b.ResetAfter)
			}
		}
		// Had the peeks spent, this would be refused by the burst of 2.
		if r := mustAllowAll(t, l, "g", checks, 1); !r.Allowed || r.Results[0].Remaining != 0 {
			t.Fatalf("second request after three peeks: %+v, want admitted with the burst spent", r)
		}
		if r := peek("of a spent burst"); r.Allowed || r.Results[0].Allowed || r.Results[1].Remaining != 3 {
			t.Fatalf("peek of a spent burst: %+v, want a request refused, sustained at 3", r)
		}
		// The group's own bucket is the one Allow spends.
		own := ratelimit.Limit{Rate: 4, Period: 40 * time.Second}
		mustAllow(t, l, "own", own)
		r, err := l.PeekAll(ctx, "own", []ratelimit.Check{{Limit: own}})
		if err != nil || r.Results[0].Remaining != 3 {
			t.Fatalf("peek of the bucket Allow spent once: %+v, %v, want 3 left", r, err)
		}
		if _, err := l.PeekAll(ctx, "g", nil); !errors.Is(err, ratelimit.ErrInvalidLimit) {
			t.Fatalf("peek of no buckets: %v, want ErrInvalidLimit", err)
		}
	})

	t.Run("CostN", func(t *testing.T) {
		l := newLimiter(t)
		checks := []ratelimit.Check{sustained}
		if r := mustAllowAll(t, l, "g", checks, 3); !r.Allowed || r.Results[0].Remaining != 2 {
			t.Fatalf("cost 3 of 5: %+v, want admitted with 2 remaining", r)
		}
		r := mustAllowAll(t, l, "g", checks, 3)
		if r.Allowed || r.Results[0].Remaining != 2 {
			t.Fatalf("cost 3 of the 2 left: %+v, want refused, the 2 untouched", r)
		}
		if r.Results[0].RetryAfter <= 9*time.Second || r.Results[0].RetryAfter > 10*time.Second+floatSlack {
			t.Fatalf("cost 3 of the 2 left: RetryAfter %v, want about one emission interval (10s)", r.Results[0].RetryAfter)
		}
		r = mustAllowAll(t, l, "g", checks, 6)
		if r.Allowed || r.Results[0].RetryAfter != r.Results[0].ResetAfter {
			t.Fatalf("cost above the burst: %+v, want refused with RetryAfter = ResetAfter", r)
		}
	})

	t.Run("Quota", func(t *testing.T) {
		l := newLimiter(t)
		quota := ratelimit.Check{Key: "quota", Quota: 3, Period: ratelimit.Day}
		wide := ratelimit.Check{Key: "wide", Limit: ratelimit.PerMinute(100)}
		checks := []ratelimit.Check{wide, quota}
		for i := range 3 {
			r := mustAllowAll(t, l, "g", checks, 1)
			if !r.Allowed || r.Results[1].Remaining != 2-i {
				t.Fatalf("request %d: %+v, want admitted with %d left of the quota", i, r, 2-i)
			}
		}
		before := time.Now()
		r := mustAllowAll(t, l, "g", checks, 1)
		_, end := ratelimit.Day.Bounds(before)
		q := r.Results[1]
		if r.Allowed || q.Allowed || q.Remaining != 0 {
			t.Fatalf("request past the quota: %+v, want refused", r)
		}
		if until := end.Sub(before); q.ResetAfter > until+time.Second || q.ResetAfter < until-2*time.Second || q.RetryAfter != q.ResetAfter {
			t.Fatalf("quota refusal: RetryAfter %v ResetAfter %v, want both the time until the day ends (%v)", q.RetryAfter, q.ResetAfter, until)
		}
		if q.Limit.Rate != 3 || q.Limit.Period != 24*time.Hour {
			t.Fatalf("quota reported as %v, want 3/24h", q.Limit)
		}
		if r.Results[0].Remaining != 97 {
			t.Fatalf("the limit beside a refusing quota: %+v, want 97 left, nothing spent", r.Results[0])
		}
	})

	t.Run("Shadow", func(t *testing.T) {
		l := newLimiter(t)
		tight := ratelimit.Check{Key: "tight", Limit: ratelimit.Limit{Rate: 1, Period: 10 * time.Second}, Shadow: true}
		checks := []ratelimit.Check{tight, sustained}
		if r := mustAllowAll(t, l, "g", checks, 1); !r.Allowed || !r.Results[0].Allowed {
			t.Fatalf("first request: %+v, want admitted by both", r)
		}
		for i := range 2 {
			r := mustAllowAll(t, l, "g", checks, 1)
			if !r.Allowed {
				t.Fatalf("request %d past a shadow limit: %+v, want admitted", i+2, r)
			}
			sh := r.Results[0]
			if sh.Allowed || sh.Remaining != 0 || sh.RetryAfter <= 9*time.Second || sh.RetryAfter > 10*time.Second+floatSlack {
				t.Fatalf("request %d: shadow result %+v, want what enforcement would report: refused, retry in about 10s", i+2, sh)
			}
			if r.Results[1].Remaining != 3-i {
				t.Fatalf("request %d: enforced bucket %+v, want %d left", i+2, r.Results[1], 3-i)
			}
		}
	})

	t.Run("GroupsOwnBucket", func(t *testing.T) {
		// The empty key is the bucket Allow spends under the group's name:
		// one bucket, whichever way it is spent.
		l := newLimiter(t)
		own := ratelimit.Limit{Rate: 3, Period: 30 * time.Second}
		if r := mustAllow(t, l, "key-1", own); !r.Allowed || r.Remaining != 2 {
			t.Fatalf("Allow: %+v", r)
		}
		checks := []ratelimit.Check{{Limit: own}, {Key: "route", Limit: ratelimit.PerMinute(10)}}
		if r := mustAllowAll(t, l, "key-1", checks, 1); !r.Allowed || r.Results[0].Remaining != 1 || r.Results[1].Remaining != 9 {
			t.Fatalf("AllowAll after one Allow: %+v, want the own bucket at 1", r)
		}
		if r := mustAllow(t, l, "key-1", own); !r.Allowed || r.Remaining != 0 {
			t.Fatalf("Allow after AllowAll: %+v, want the last request of the bucket", r)
		}
		if r := mustAllowAll(t, l, "key-1", checks, 1); r.Allowed || r.Results[1].Remaining != 9 {
			t.Fatalf("AllowAll on an empty own bucket: %+v, want refused, the route bucket untouched", r)
		}
		if _, err := l.AllowAll(ctx, "key-1", []ratelimit.Check{{Quota: 5, Period: ratelimit.Day}}, 1); !errors.Is(err, ratelimit.ErrInvalidLimit) {
			t.Fatalf("a quota as the own bucket: %v, want ErrInvalidLimit", err)
		}
	})

	t.Run("GroupsAreApart", func(t *testing.T) {
		l := newLimiter(t)
		one := []ratelimit.Check{{Key: "k", Limit: ratelimit.Limit{Rate: 1, Period: 10 * time.Second}}}
		if r := mustAllowAll(t, l, "a", one, 1); !r.Allowed {
			t.Fatalf("group a: %+v", r)
		}
		if r := mustAllowAll(t, l, "b", one, 1); !r.Allowed {
			t.Fatalf("group b after group a spent its bucket of the same name: %+v, want admitted", r)
		}
		if r := mustAllowAll(t, l, "a", one, 1); r.Allowed {
			t.Fatalf("group a again: %+v, want refused", r)
		}
	})

	t.Run("InvalidInputTouchesNothing", func(t *testing.T) {
		l := newLimiter(t)
		good := ratelimit.Check{Key: "good", Limit: ratelimit.Limit{Rate: 1, Period: 10 * time.Second}}
		for _, tc := range []struct {
			name   string
			checks []ratelimit.Check
			n      int
		}{
			{"ZeroCost", []ratelimit.Check{good}, 0},
			{"NoBuckets", nil, 1},
			{"BadLimit", []ratelimit.Check{good, {Key: "bad", Limit: ratelimit.Limit{Rate: 0, Period: time.Second}}}, 1},
			{"BadPeriod", []ratelimit.Check{good, {Key: "q", Quota: 5, Period: "week"}}, 1},
			{"SameKeyTwice", []ratelimit.Check{good, good}, 1},
			{"BraceInKey", []ratelimit.Check{good, {Key: "x}{y", Limit: ratelimit.PerMinute(1)}}, 1},
		} {
			if _, err := l.AllowAll(ctx, "g", tc.checks, tc.n); !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Errorf("%s: got %v, want ErrInvalidLimit", tc.name, err)
			}
		}
		for _, group := range []string{"", "a{b}"} {
			if _, err := l.AllowAll(ctx, group, []ratelimit.Check{good}, 1); !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Errorf("group %q: got %v, want ErrInvalidLimit", group, err)
			}
		}
		if r := mustAllowAll(t, l, "g", []ratelimit.Check{good}, 1); !r.Allowed {
			t.Fatalf("after refused calls: %+v, want the bucket untouched and admitting", r)
		}
	})

	t.Run("ConcurrentExact", func(t *testing.T) {
		l := newLimiter(t)
		checks := []ratelimit.Check{
			{Key: "minute", Limit: ratelimit.Limit{Rate: 40, Period: time.Hour}},
			{Key: "quota", Quota: 30, Period: ratelimit.Month},
		}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					r, err := l.AllowAll(ctx, "g", checks, 1)
					if err != nil {
						t.Error(err)
						return
					}
					if r.Allowed {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := admitted.Load(); got != 30 {
			t.Fatalf("80 concurrent requests under a quota of 30: %d admitted, want exactly 30", got)
		}
		// The minute bucket spent exactly as much as the quota admitted.
		if r := mustAllowAll(t, l, "g", checks[:1], 1); r.Results[0].Remaining != 9 {
			t.Fatalf("minute bucket after 30 admissions: %+v, want 9 left after this one", r)
		}
	})
}

func mustAllowAll(t *testing.T, l ratelimit.MultiLimiter, group string, checks []ratelimit.Check, n int) ratelimit.MultiResult {
	t.Helper()
	r, err := l.AllowAll(context.Background(), group, checks, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Results) != len(checks) {
		t.Fatalf("%d results for %d buckets", len(r.Results), len(checks))
	}
	return r
}

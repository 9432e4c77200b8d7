// Package limitertest is the conformance suite of [ratelimit.Limiter]: the
// Redis and in-process limiters must both pass it, which is what lets the
// embedded backend promise the same behaviour as the clustered one.
package limitertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/ratelimit"
)

// floatSlack absorbs redis_rate's float-seconds rounding; the in-process
// limiter is exact.
const floatSlack = time.Millisecond

// sleepMargin is added to every wait so that the bucket has certainly
// refilled, yet stays far below one emission interval so that it has not
// refilled twice.
const sleepMargin = 10 * time.Millisecond

// Run runs the conformance suite. newLimiter is called once per subtest and
// must return a limiter whose buckets are empty (a fresh instance, or a
// fresh key prefix). The suite runs on the real clock, since a Redis
// limiter uses the server's; it takes well under a second.
func Run(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	t.Run("Burst", func(t *testing.T) {
		// A 2 s emission interval: no refill can happen during the burst, so
		// every count below is exact.
		l, lim := newLimiter(t), ratelimit.Limit{Rate: 5, Period: 10 * time.Second, Burst: 5}
		const e = 2 * time.Second
		var prevReset time.Duration
		for i := range 5 {
			r := mustAllow(t, l, "k", lim)
			if !r.Allowed || r.Remaining != 4-i {
				t.Fatalf("request %d: got allowed=%v remaining=%d, want allowed with remaining %d", i, r.Allowed, r.Remaining, 4-i)
			}
			// Each admission pushes the bucket's reset one interval further.
			want := time.Duration(i+1) * e
			if r.ResetAfter <= prevReset || r.ResetAfter > want+floatSlack || r.ResetAfter < want-time.Second {
				t.Fatalf("request %d: ResetAfter %v, want about %v and more than the previous %v", i, r.ResetAfter, want, prevReset)
			}
			prevReset = r.ResetAfter
		}
		r := mustAllow(t, l, "k", lim)
		if r.Allowed || r.Remaining != 0 {
			t.Fatalf("request past the burst: got allowed=%v remaining=%d, want refused with 0", r.Allowed, r.Remaining)
		}
		if r.RetryAfter <= e-time.Second || r.RetryAfter > e+floatSlack {
			t.Fatalf("first refusal: RetryAfter %v, want about one emission interval %v", r.RetryAfter, e)
		}
		if r.ResetAfter > lim.Period+floatSlack || r.ResetAfter < lim.Period-time.Second {
			t.Fatalf("first refusal: ResetAfter %v, want about the period %v", r.ResetAfter, lim.Period)
		}
		// A refusal must not push the next admission further away.
		if r2 := mustAllow(t, l, "k", lim); r2.Allowed || r2.RetryAfter > r.RetryAfter+floatSlack {
			t.Fatalf("second refusal: got allowed=%v RetryAfter %v, want refused with RetryAfter <= %v", r2.Allowed, r2.RetryAfter, r.RetryAfter)
		}
	})

	t.Run("BurstSize", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			limit ratelimit.Limit
			burst int
		}{
			{"LargerThanRate", ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 3}, 3},
			{"SmallerThanRate", ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 2}, 2},
			{"DefaultsToRate", ratelimit.Limit{Rate: 4, Period: time.Hour}, 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l := newLimiter(t)
				for i := range tc.burst {
					if r := mustAllow(t, l, "k", tc.limit); !r.Allowed || r.Remaining != tc.burst-1-i {
						t.Fatalf("request %d: got allowed=%v remaining=%d, want allowed with remaining %d", i, r.Allowed, r.Remaining, tc.burst-1-i)
					}
				}
				e := tc.limit.Period / time.Duration(tc.limit.Rate)
				if r := mustAllow(t, l, "k", tc.limit); r.Allowed || r.RetryAfter > e+floatSlack || r.RetryAfter < e-time.Second {
					t.Fatalf("request past a burst of %d: got allowed=%v RetryAfter %v, want refused with RetryAfter about %v", tc.burst, r.Allowed, r.RetryAfter, e)
				}
			})
		}
	})

	t.Run("RefillAndRefusalIsFree", func(t *testing.T) {
		l, lim := newLimiter(t), ratelimit.Limit{Rate: 8, Period: time.Second, Burst: 8}
		const e = 125 * time.Millisecond
		if n := admitted(t, l, "k", lim, 8); n != 8 {
			t.Fatalf("fresh bucket admitted %d of 8", n)
		}
		// Refusals that consumed capacity would each push the next
		// admission one more interval away.
		for range 5 {
			if r := mustAllow(t, l, "k", lim); r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > e+floatSlack {
				t.Fatalf("exhausted bucket: got allowed=%v RetryAfter %v, want refused within (0, %v]", r.Allowed, r.RetryAfter, e)
			}
		}
		time.Sleep(e + sleepMargin)
		if r := mustAllow(t, l, "k", lim); !r.Allowed || r.Remaining != 0 {
			t.Fatalf("one interval after refusals: got allowed=%v remaining=%d, want exactly one admitted", r.Allowed, r.Remaining)
		}
		r := mustAllow(t, l, "k", lim)
		if r.Allowed {
			t.Fatal("one interval after refusals: a second request was admitted")
		}
		time.Sleep(r.RetryAfter + sleepMargin)
		if r := mustAllow(t, l, "k", lim); !r.Allowed {
			t.Fatalf("after waiting RetryAfter: refused, RetryAfter now %v", r.RetryAfter)
		}
	})

	t.Run("IndependentKeys", func(t *testing.T) {
		l, lim := newLimiter(t), ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}
		if n := admitted(t, l, "a", lim, 3); n != 2 {
			t.Fatalf("key a admitted %d of 3, want 2", n)
		}
		// "a:" and "a}" would collide with "a" under a careless key layout.
		for _, k := range []string{"b", "a:", "a}", ""} {
			if r := mustAllow(t, l, k, lim); !r.Allowed || r.Remaining != 1 {
				t.Fatalf("key %q after exhausting a: got allowed=%v remaining=%d, want a full bucket", k, r.Allowed, r.Remaining)
			}
		}
		if r := mustAllow(t, l, "a", lim); r.Allowed {
			t.Fatal("key a was refilled by traffic on other keys")
		}
	})

	t.Run("Period", func(t *testing.T) {
		l := newLimiter(t)
		perSecond := ratelimit.Limit{Rate: 5, Period: time.Second, Burst: 5}
		perMinute := ratelimit.Limit{Rate: 5, Period: time.Minute, Burst: 5}
		for _, lim := range []ratelimit.Limit{perSecond, perMinute} {
			if n := admitted(t, l, lim.String(), lim, 5); n != 5 {
				t.Fatalf("%v: fresh bucket admitted %d of 5", lim, n)
			}
		}
		rs := mustAllow(t, l, perSecond.String(), perSecond)
		if rs.Allowed || rs.RetryAfter <= 0 || rs.RetryAfter > 200*time.Millisecond+floatSlack || rs.ResetAfter > time.Second+floatSlack {
			t.Fatalf("%v exhausted: got allowed=%v RetryAfter %v ResetAfter %v, want refused, at most 200ms and 1s", perSecond, rs.Allowed, rs.RetryAfter, rs.ResetAfter)
		}
		rm := mustAllow(t, l, perMinute.String(), perMinute)
		if rm.Allowed || rm.RetryAfter <= 11*time.Second || rm.RetryAfter > 12*time.Second+floatSlack || rm.ResetAfter <= 59*time.Second {
			t.Fatalf("%v exhausted: got allowed=%v RetryAfter %v ResetAfter %v, want refused, about 12s and 1m", perMinute, rm.Allowed, rm.RetryAfter, rm.ResetAfter)
		}
		time.Sleep(rs.RetryAfter + sleepMargin)
		if r := mustAllow(t, l, perSecond.String(), perSecond); !r.Allowed {
			t.Fatalf("%v: refused after waiting RetryAfter", perSecond)
		}
		if r := mustAllow(t, l, perMinute.String(), perMinute); r.Allowed {
			t.Fatalf("%v: admitted %v after exhaustion", perMinute, rs.RetryAfter+sleepMargin)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// With a 36 s interval nothing refills during the test, so the
		// admissions must be exactly the burst and each Remaining value
		// must be handed out once: anything else is a lost update.
		l, lim := newLimiter(t), ratelimit.Limit{Rate: 100, Period: time.Hour, Burst: 100}
		const workers, calls = 16, 25
		var (
			mu   sync.Mutex
			seen = make(map[int]int)
			errs []error
			wg   sync.WaitGroup
		)
		for range workers {
			wg.Go(func() {
				for range calls {
					r, err := allow(t, l, "hot", lim)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else if r.Allowed {
						seen[r.Remaining]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d errors, first: %v", len(errs), errs[0])
		}
		total := 0
		for rem, n := range seen {
			total += n
			if n != 1 || rem < 0 || rem >= lim.Burst {
				t.Errorf("Remaining %d reported by %d admitted requests, want once", rem, n)
			}
		}
		if total != lim.Burst || len(seen) != lim.Burst {
			t.Fatalf("%d concurrent requests: %d admitted with %d distinct Remaining values, want exactly %d", workers*calls, total, len(seen), lim.Burst)
		}
	})

	t.Run("InvalidLimit", func(t *testing.T) {
		l := newLimiter(t)
		for _, lim := range []ratelimit.Limit{{}, {Rate: 1}, {Period: time.Second}, {Rate: -1, Period: time.Second}, {Rate: 1, Period: time.Second, Burst: -1}} {
			if r, err := allow(t, l, "k", lim); err == nil || r.Allowed {
				t.Errorf("limit %+v: got allowed=%v err=%v, want an error", lim, r.Allowed, err)
			}
		}
	})
}

func allow(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) (ratelimit.Result, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return l.Allow(ctx, key, lim)
}

// mustAllow checks the invariants every Result must satisfy.
func mustAllow(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) ratelimit.Result {
	t.Helper()
	r, err := allow(t, l, key, lim)
	if err != nil {
		t.Fatalf("Allow(%q, %v): %v", key, lim, err)
	}
	switch {
	case r.Limit != lim:
		t.Fatalf("Result.Limit = %+v, want the limit passed, %+v", r.Limit, lim)
	case r.Allowed && r.RetryAfter != 0:
		t.Fatalf("admitted with RetryAfter %v, want 0", r.RetryAfter)
	case !r.Allowed && r.Remaining != 0:
		t.Fatalf("refused with Remaining %d, want 0", r.Remaining)
	case r.Remaining < 0 || r.ResetAfter < 0:
		t.Fatalf("negative Remaining %d or ResetAfter %v", r.Remaining, r.ResetAfter)
	}
	return r
}

// admitted makes n requests in a row and counts the admitted ones.
func admitted(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit, n int) int {
	t.Helper()
	got := 0
	for range n {
		if mustAllow(t, l, key, lim).Allowed {
			got++
		}
	}
	return got
}

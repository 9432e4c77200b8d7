// Package limitertest is the conformance suite of [ratelimit.Limiter]: the
// Redis and in-process limiters must both pass it, which is what lets the
// embedded backend promise the same behaviour as the clustered one.
package limitertest

import (
	"context"
	"errors"
	"math"
	"sort"
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
			if r, err := allowN(t, l, "k", lim, 2); !errors.Is(err, ratelimit.ErrInvalidLimit) || r.Allowed {
				t.Errorf("AllowN under limit %+v: got allowed=%v err=%v, want ErrInvalidLimit", lim, r.Allowed, err)
			}
		}
	})

	runAllowN(t, newLimiter)
}

// runAllowN is the part of the suite about requests of cost n.
func runAllowN(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	// As in Burst: a 2 s interval, so that nothing refills during a subtest
	// and every count is exact.
	lim := ratelimit.Limit{Rate: 5, Period: 10 * time.Second, Burst: 5}
	const e = 2 * time.Second

	t.Run("AllowNFits", func(t *testing.T) {
		l := newLimiter(t)
		r := mustAllowN(t, l, "k", lim, 3)
		if !r.Allowed || r.Remaining != 2 || !about(r.ResetAfter, 3*e) {
			t.Fatalf("3 of a full bucket of 5: %+v, want admitted with 2 remaining, full again in about %v", r, 3*e)
		}
		// The rest, exactly: n equal to what is left fits.
		r = mustAllowN(t, l, "k", lim, 2)
		if !r.Allowed || r.Remaining != 0 || !about(r.ResetAfter, 5*e) {
			t.Fatalf("the last 2: %+v, want admitted with 0 remaining, full again in about %v", r, 5*e)
		}
		if r := mustAllow(t, l, "k", lim); r.Allowed {
			t.Fatalf("after 3 and 2 of 5: %+v admitted", r)
		}
		// n equal to the burst fits a full bucket.
		if r := mustAllowN(t, l, "full", lim, 5); !r.Allowed || r.Remaining != 0 {
			t.Fatalf("the whole burst at once: %+v, want admitted with 0 remaining", r)
		}
		// n = 1 is Allow.
		if r := mustAllowN(t, l, "one", lim, 1); !r.Allowed || r.Remaining != 4 || !about(r.ResetAfter, e) {
			t.Fatalf("AllowN with n = 1: %+v, want Allow's answer", r)
		}
	})

	t.Run("AllowNRefusalIsFree", func(t *testing.T) {
		l := newLimiter(t)
		if r := mustAllowN(t, l, "k", lim, 3); !r.Allowed {
			t.Fatalf("3 of 5: %+v", r)
		}
		// 2 left: 3 do not fit, and none of them is spent.
		for i := range 3 {
			r := mustAllowN(t, l, "k", lim, 3)
			// 3 fit once the bucket is one interval emptier.
			if r.Allowed || r.Remaining != 0 || !about(r.RetryAfter, e) || !about(r.ResetAfter, 3*e) {
				t.Fatalf("refusal %d of 3 with 2 left: %+v, want refused, RetryAfter about %v, ResetAfter about %v", i, r, e, 3*e)
			}
		}
		// As if the refused calls never happened: 2 more, one at a time.
		for i := range 2 {
			if r := mustAllow(t, l, "k", lim); !r.Allowed || r.Remaining != 1-i || !about(r.ResetAfter, time.Duration(4+i)*e) {
				t.Fatalf("Allow %d after refused AllowN: %+v, want admitted with %d remaining", i, r, 1-i)
			}
		}
		r := mustAllow(t, l, "k", lim)
		if r.Allowed || !about(r.RetryAfter, e) {
			t.Fatalf("past the burst: %+v, want refused for about %v", r, e)
		}
		// On an empty bucket, n fit n intervals from now.
		if r := mustAllowN(t, l, "k", lim, 4); r.Allowed || !about(r.RetryAfter, 4*e) || !about(r.ResetAfter, 5*e) {
			t.Fatalf("4 from an empty bucket: %+v, want refused, RetryAfter about %v", r, 4*e)
		}
	})

	t.Run("AllowNOverBurst", func(t *testing.T) {
		l := newLimiter(t)
		// Never admissible, even from a full bucket: RetryAfter is
		// ResetAfter, zero here.
		for _, n := range []int{6, 1000, math.MaxInt} {
			r := mustAllowN(t, l, "k", lim, n)
			if r.Allowed || r.Remaining != 0 || r.RetryAfter != r.ResetAfter || r.ResetAfter > floatSlack {
				t.Fatalf("%d from a full bucket of 5: %+v, want refused with RetryAfter = ResetAfter = 0", n, r)
			}
		}
		// It cost nothing.
		if r := mustAllow(t, l, "k", lim); !r.Allowed || r.Remaining != 4 {
			t.Fatalf("Allow after AllowN above the burst: %+v, want a full bucket", r)
		}
		r := mustAllowN(t, l, "k", lim, 6)
		if r.Allowed || r.RetryAfter != r.ResetAfter || !about(r.ResetAfter, e) {
			t.Fatalf("6 from a bucket of 5 with 4 left: %+v, want refused with RetryAfter = ResetAfter, about %v", r, e)
		}
		// The default burst (Burst 0 is Rate) bounds n too.
		def := ratelimit.Limit{Rate: 3, Period: time.Hour}
		if r := mustAllowN(t, l, "def", def, 4); r.Allowed {
			t.Fatalf("4 under %+v: admitted", def)
		}
		if r := mustAllowN(t, l, "def", def, 3); !r.Allowed || r.Remaining != 0 {
			t.Fatalf("3 under %+v: %+v, want admitted with 0 remaining", def, r)
		}
	})

	t.Run("AllowNInvalidN", func(t *testing.T) {
		l := newLimiter(t)
		// A cancelled ctx: an answer other than ErrInvalidLimit would mean
		// a round trip was attempted.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for _, n := range []int{0, -1, math.MinInt} {
			r, err := l.AllowN(ctx, "k", lim, n)
			if !errors.Is(err, ratelimit.ErrInvalidLimit) || r.Allowed || r.Limit != lim {
				t.Errorf("n = %d: %+v, %v, want ErrInvalidLimit", n, r, err)
			}
		}
		if r := mustAllow(t, l, "k", lim); !r.Allowed || r.Remaining != 4 {
			t.Fatalf("Allow after invalid AllowN: %+v, want a full bucket", r)
		}
	})

	t.Run("AllowNInterleaved", func(t *testing.T) {
		l := newLimiter(t)
		big := ratelimit.Limit{Rate: 10, Period: 100 * time.Second, Burst: 10} // 10 s interval
		const be = 10 * time.Second
		spent := 0
		for i, s := range []struct {
			n       int
			allowed bool
		}{{1, true}, {3, true}, {1, true}, {4, true}, {2, false}, {1, true}, {2, false}, {1, false}} {
			var r ratelimit.Result
			if s.n == 1 && i%2 == 0 {
				r = mustAllow(t, l, "k", big)
			} else {
				r = mustAllowN(t, l, "k", big, s.n)
			}
			if s.allowed {
				spent += s.n
			}
			if r.Allowed != s.allowed || (s.allowed && r.Remaining != 10-spent) || !about(r.ResetAfter, time.Duration(spent)*be) {
				t.Fatalf("step %d, cost %d, after %d spent: %+v, want allowed=%v, remaining %d", i, s.n, spent, r, s.allowed, 10-spent)
			}
		}
	})

	t.Run("AllowNMatchesSequentialAllows", func(t *testing.T) {
		l := newLimiter(t)
		big := ratelimit.Limit{Rate: 10, Period: 100 * time.Second, Burst: 10}
		// Two buckets in the same state; then n at once on one, n one at a
		// time on the other: the last answers must be the same.
		for _, k := range []string{"bulk", "seq"} {
			if r := mustAllowN(t, l, k, big, 2); !r.Allowed {
				t.Fatalf("%s: %+v", k, r)
			}
		}
		for _, n := range []int{3, 4} {
			bulk := mustAllowN(t, l, "bulk", big, n)
			var seq ratelimit.Result
			for range n {
				seq = mustAllow(t, l, "seq", big)
			}
			if !bulk.Allowed || !seq.Allowed || bulk.Remaining != seq.Remaining || !near(bulk.ResetAfter, seq.ResetAfter) {
				t.Fatalf("AllowN(%d) %+v, the last of %d Allows %+v: want the same Remaining and ResetAfter", n, bulk, n, seq)
			}
		}
	})

	t.Run("AllowNConcurrent", func(t *testing.T) {
		// Requests of cost 1 to 4 from many goroutines, nothing refilling:
		// each admitted one owns the slice [Remaining, Remaining+n) of the
		// burst, and these slices must tile [0, spent) with no overlap and
		// no gap: anything else is a lost or double-counted update, or an
		// answer out of the sequential order.
		l, big := newLimiter(t), ratelimit.Limit{Rate: 100, Period: time.Hour, Burst: 100}
		const workers, calls = 16, 12
		type slice struct{ lo, n int }
		var (
			mu     sync.Mutex
			slices []slice
			errs   []error
			wg     sync.WaitGroup
		)
		for w := range workers {
			wg.Go(func() {
				for c := range calls {
					n := 1 + (w+c)%4
					r, err := allowN(t, l, "hot", big, n)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else if r.Allowed {
						slices = append(slices, slice{r.Remaining, n})
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d errors, first: %v", len(errs), errs[0])
		}
		sort.Slice(slices, func(i, j int) bool { return slices[i].lo < slices[j].lo })
		spent := 0
		for i := len(slices) - 1; i >= 0; i-- { // from the first admitted
			s := slices[i]
			if s.lo+s.n != big.Burst-spent {
				t.Fatalf("admitted slices %v do not tile the burst: at %d spent, found [%d, %d)", slices, spent, s.lo, s.lo+s.n)
			}
			spent += s.n
		}
		// What is left is exactly what the slices did not take.
		if n := admitted(t, l, "hot", big, big.Burst); n != big.Burst-spent {
			t.Fatalf("%d spent by concurrent AllowN, then %d of the rest admitted one by one, want %d", spent, n, big.Burst-spent)
		}
	})
}

// about reports whether d is within the slack of the wall-clock duration
// want, counted from before the call: later by at most floatSlack, earlier
// by at most a second of test time.
func about(d, want time.Duration) bool {
	return d <= want+floatSlack && d > want-time.Second
}

// near reports whether two durations measured moments apart agree.
func near(a, b time.Duration) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 100*time.Millisecond
}

func allow(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) (ratelimit.Result, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return l.Allow(ctx, key, lim)
}

func allowN(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit, n int) (ratelimit.Result, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return l.AllowN(ctx, key, lim, n)
}

// mustAllow checks the invariants every Result must satisfy.
func mustAllow(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) ratelimit.Result {
	t.Helper()
	r, err := allow(t, l, key, lim)
	if err != nil {
		t.Fatalf("Allow(%q, %v): %v", key, lim, err)
	}
	checkResult(t, r, lim)
	return r
}

// mustAllowN is mustAllow for AllowN.
func mustAllowN(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit, n int) ratelimit.Result {
	t.Helper()
	r, err := allowN(t, l, key, lim, n)
	if err != nil {
		t.Fatalf("AllowN(%q, %v, %d): %v", key, lim, n, err)
	}
	checkResult(t, r, lim)
	return r
}

// checkResult checks the invariants every Result must satisfy.
func checkResult(t *testing.T, r ratelimit.Result, lim ratelimit.Limit) {
	t.Helper()
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

package ratelimit_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/ratelimit/limitertest"
)

func TestMemoryConformance(t *testing.T) {
	limitertest.Run(t, func(t *testing.T) ratelimit.Limiter { return ratelimit.NewMemory() })
}

func TestMemoryMultiConformance(t *testing.T) {
	limitertest.RunMulti(t, func(t *testing.T) ratelimit.Limiter { return ratelimit.NewMemory() })
}

// fakeClock is a hand-driven clock, safe for concurrent reads.
type fakeClock struct {
	base time.Time
	off  atomic.Int64
}

func newFakeClock() *fakeClock { return &fakeClock{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time          { return c.base.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Set(d time.Duration)     { c.off.Store(int64(d)) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// TestMemoryQuotaPeriods checks that a quota counts per calendar period in
// UTC: refused to the end of the day, admitting again from midnight.
func TestMemoryQuotaPeriods(t *testing.T) {
	clock := newFakeClock() // 2030-01-01T00:00:00Z
	m := ratelimit.NewMemoryWithClock(clock.Now)
	day := []ratelimit.Check{{Key: "q", Quota: 2, Period: ratelimit.Day}}
	month := []ratelimit.Check{{Key: "q", Quota: 3, Period: ratelimit.Month}}
	allow := func(checks []ratelimit.Check) ratelimit.Result {
		t.Helper()
		r, err := m.AllowAll(t.Context(), "g", checks, 1)
		if err != nil {
			t.Fatal(err)
		}
		return r.Results[0]
	}
	clock.Set(23 * time.Hour)
	allow(day)
	allow(day)
	if r := allow(day); r.Allowed || r.RetryAfter != time.Hour || r.ResetAfter != time.Hour {
		t.Fatalf("third of 2 at 23:00: %+v, want refused until midnight, an hour away", r)
	}
	clock.Set(24 * time.Hour)
	if r := allow(day); !r.Allowed || r.Remaining != 1 || r.ResetAfter != 24*time.Hour {
		t.Fatalf("first at midnight: %+v, want a new day with 1 left", r)
	}
	for range 3 {
		allow(month)
	}
	clock.Set(31*24*time.Hour - time.Second) // 2030-01-31T23:59:59Z
	if r := allow(month); r.Allowed || r.RetryAfter != time.Second {
		t.Fatalf("fourth of 3 in January: %+v, want refused for the last second of the month", r)
	}
	clock.Set(31 * 24 * time.Hour)
	if r := allow(month); !r.Allowed || r.Remaining != 2 || r.ResetAfter != 28*24*time.Hour {
		t.Fatalf("first in February: %+v, want 2 left and 28 days to go", r)
	}
	// Ended periods are swept like full buckets: January's and January
	// 2nd's counts go, February's stays.
	m.Sweep()
	if n := m.Len(); n != 1 {
		t.Fatalf("%d buckets held after a sweep, want only February's", n)
	}
}

func TestMemoryExactGCRA(t *testing.T) {
	clock := newFakeClock()
	m := ratelimit.NewMemoryWithClock(clock.Now)
	lim := ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 10} // one request every 100 ms
	ms := time.Millisecond
	type step struct {
		at                     time.Duration
		allowed                bool
		remaining              int
		retryAfter, resetAfter time.Duration
	}
	var steps []step
	for i := range 10 { // the burst: each request adds one interval to the reset
		steps = append(steps, step{0, true, 9 - i, 0, time.Duration(i+1) * 100 * ms})
	}
	steps = append(steps,
		step{0, false, 0, 100 * ms, 1000 * ms},
		step{30 * ms, false, 0, 70 * ms, 970 * ms},
		step{100 * ms, true, 0, 0, 1000 * ms}, // one request back after one interval
		step{100 * ms, false, 0, 100 * ms, 1000 * ms},
		step{350 * ms, true, 1, 0, 850 * ms}, // 2.5 intervals later: two back
		step{350 * ms, true, 0, 0, 950 * ms},
		step{350 * ms, false, 0, 50 * ms, 950 * ms},
		step{1299 * ms, true, 8, 0, 101 * ms},       // 8.99 requests back: floor
		step{5 * time.Second, true, 9, 0, 100 * ms}, // idle: full again
	)
	for i, s := range steps {
		clock.Set(s.at)
		r, err := m.Allow(context.Background(), "k", lim)
		if err != nil {
			t.Fatal(err)
		}
		got := step{s.at, r.Allowed, r.Remaining, r.RetryAfter, r.ResetAfter}
		if got != s {
			t.Errorf("step %d at %v: got %+v, want %+v", i, s.at, got, s)
		}
	}
}

func TestMemorySweep(t *testing.T) {
	clock := newFakeClock()
	m := ratelimit.NewMemoryWithClock(clock.Now)
	lim := ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 10}
	const keys = 10_000
	for i := range keys {
		if _, err := m.Allow(context.Background(), strconv.Itoa(i), lim); err != nil {
			t.Fatal(err)
		}
	}
	// One request each: every bucket is full again 100 ms later.
	clock.Advance(99 * time.Millisecond)
	m.Sweep()
	if n := m.Len(); n != keys {
		t.Fatalf("sweep before the buckets refilled left %d buckets, want %d", n, keys)
	}
	clock.Advance(time.Millisecond)
	m.Sweep()
	if n := m.Len(); n != 0 {
		t.Fatalf("sweep after the buckets refilled left %d buckets, want 0", n)
	}
}

func TestMemoryBoundedUnderChurn(t *testing.T) {
	// 10 new keys a millisecond, each live for 100 ms: about 1,000 live
	// buckets at any time out of 20,000 seen. Sweeps driven by Allow alone
	// must keep the map near the live set.
	clock := newFakeClock()
	m := ratelimit.NewMemoryWithClock(clock.Now)
	ratelimit.SetMinSweep(m, 16)
	lim := ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 10}
	peak := 0
	for tick := range 2000 {
		clock.Set(time.Duration(tick) * time.Millisecond)
		for j := range 10 {
			if _, err := m.Allow(context.Background(), fmt.Sprint(tick, "/", j), lim); err != nil {
				t.Fatal(err)
			}
		}
		peak = max(peak, m.Len())
	}
	// Bound: about twice the live set plus minSweep per shard.
	if peak > 2*1000+64*16+500 {
		t.Fatalf("map peaked at %d buckets for about 1,000 live ones", peak)
	}
}

func TestMemoryAllowDoesNotAllocate(t *testing.T) {
	m := ratelimit.NewMemory()
	ctx := context.Background()
	admit := ratelimit.Limit{Rate: 1_000_000, Period: time.Second} // admits every call below
	refuse := ratelimit.Limit{Rate: 1, Period: time.Hour}
	for _, lim := range []ratelimit.Limit{admit, refuse} {
		key := "apikey:" + lim.String()
		if _, err := m.Allow(ctx, key, lim); err != nil {
			t.Fatal(err)
		}
		var last ratelimit.Result
		if a := testing.AllocsPerRun(1000, func() { last, _ = m.Allow(ctx, key, lim) }); a != 0 {
			t.Errorf("%v: %v allocations per Allow on an existing key, want 0", lim, a)
		}
		if last.Allowed != (lim == admit) {
			t.Errorf("%v: measured the wrong path, allowed=%v", lim, last.Allowed)
		}
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	lim := ratelimit.PerMinute(1 << 30)
	b.Run("ManyKeys", func(b *testing.B) {
		m := ratelimit.NewMemory()
		keys := make([]string, 4096)
		for i := range keys {
			keys[i] = "apikey:" + strconv.Itoa(i)
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)) * 997
			for pb.Next() {
				if _, err := m.Allow(context.Background(), keys[i%len(keys)], lim); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
	b.Run("OneKey", func(b *testing.B) {
		m := ratelimit.NewMemory()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Allow(context.Background(), "hot", lim); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

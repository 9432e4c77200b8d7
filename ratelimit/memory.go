package ratelimit

import (
	"context"
	"hash/maphash"
	"maps"
	"strings"
	"sync"
	"time"
)

const (
	// shardCount spreads keys over independent locks so that concurrent
	// requests for different buckets rarely wait for each other.
	shardCount = 64
	// minSweep is the fewest calls a shard serves between two sweeps. Sweeps
	// otherwise happen after as many calls as the shard held live buckets,
	// which keeps their cost O(1) per call and the shard below about twice
	// its live buckets (plus minSweep).
	minSweep = 1024
	// shrinkMin is the peak size from which an emptied shard map is
	// reallocated: Go maps never give back memory on delete, so a burst of
	// keys would otherwise stay resident for good.
	shrinkMin = 1024
)

// MemoryLimiter is the in-process Limiter, for a single FlagBridge instance
// (the embedded backend). It runs redis_rate's GCRA arithmetic on a local
// monotonic clock, in integer nanoseconds, so it gives the same answers as
// [RedisLimiter] without a round trip.
//
// Each bucket is one int64 (its theoretical arrival time, TAT). A bucket
// whose TAT has passed is indistinguishable from a new one, so it is
// deleted: by a sweep of its shard after max(1024, live buckets at the last
// sweep) calls, or by [MemoryLimiter.Sweep]. Memory therefore follows the
// number of buckets used within the last Period (times Burst/Rate), not the
// number ever seen; after traffic stops it stays until the next calls or
// Sweep. A MemoryLimiter is safe for concurrent use; the zero value is
// not usable, build one with [NewMemory].
type MemoryLimiter struct {
	now      func() time.Time
	epoch    time.Time
	seed     maphash.Seed
	minSweep int
	shards   [shardCount]memShard
}

type memShard struct {
	mu   sync.Mutex
	tats map[string]int64 // key -> TAT, in ns since MemoryLimiter.epoch
	// quotas holds the counts of quota buckets (AllowAll), whose keys name
	// their period.
	quotas map[string]quotaCount
	calls  int // calls since the last sweep
	// sweepAt is the number of calls that triggers the next sweep, fixed
	// when the previous one ends: comparing calls with the current len
	// would never fire while every call brings a new key.
	sweepAt int
	peak    int // largest len(tats) since the map was allocated
	// Pad to a cache line so that locking one shard does not invalidate
	// its neighbour's line on other cores.
	_ [64 - 48]byte
}

// quotaCount is a quota bucket of the in-process limiter: requests spent
// in the period, which ends at end (ns since MemoryLimiter.epoch).
type quotaCount struct {
	used, end int64
}

// NewMemory returns a MemoryLimiter on the system clock.
func NewMemory() *MemoryLimiter { return NewMemoryWithClock(time.Now) }

// NewMemoryWithClock returns a MemoryLimiter reading the time from now,
// which tests use to drive the clock by hand. now must be safe for
// concurrent use and should not go backwards.
func NewMemoryWithClock(now func() time.Time) *MemoryLimiter {
	m := &MemoryLimiter{now: now, epoch: now(), seed: maphash.MakeSeed(), minSweep: minSweep}
	for i := range m.shards {
		m.shards[i].tats = make(map[string]int64)
		m.shards[i].quotas = make(map[string]quotaCount)
	}
	return m
}

// elapsed is the current time as ns since m.epoch. Measuring from an epoch
// taken with the same clock makes time.Now's monotonic reading apply, so
// wall-clock steps (NTP, manual changes) cannot refill or freeze buckets.
func (m *MemoryLimiter) elapsed() int64 { return int64(m.now().Sub(m.epoch)) }

// CallBound implements [SelfBounded]: the limiter does no I/O and never
// waits for anything but its own lock, so its calls need no timer.
func (m *MemoryLimiter) CallBound() (time.Duration, bool) { return 0, true }

// Allow implements [Limiter] with redis_rate's allowN script for n = 1.
// It never blocks on I/O, so ctx is not consulted. It returns an error
// wrapping [ErrInvalidLimit] when limit is unusable.
func (m *MemoryLimiter) Allow(_ context.Context, key string, limit Limit) (Result, error) {
	return m.allowN(key, limit, 1)
}

// AllowN implements [Limiter] with redis_rate's allowN script: n requests
// are admitted together or not at all. It never blocks on I/O, so ctx is
// not consulted. It returns an error wrapping [ErrInvalidLimit] when limit
// is unusable or n < 1.
func (m *MemoryLimiter) AllowN(_ context.Context, key string, limit Limit, n int) (Result, error) {
	if err := checkN(n); err != nil {
		return Result{Limit: limit}, err
	}
	return m.allowN(key, limit, n)
}

// allowN is Allow and AllowN for n >= 1.
func (m *MemoryLimiter) allowN(key string, limit Limit, n int) (Result, error) {
	emission, burstOffset, err := limit.gcra()
	if err != nil {
		return Result{Limit: limit}, err
	}
	s := &m.shards[maphash.String(m.seed, key)%shardCount]
	s.mu.Lock()
	// The clock is read under the lock: a reading taken before it could
	// be older than one another call has used on this bucket since, and
	// the arithmetic would then run the bucket's time backwards (a
	// Remaining off by one, or a cost-n request straddling another's).
	now := m.elapsed()
	if s.calls++; s.calls >= max(m.minSweep, s.sweepAt) {
		s.sweep(now)
	}
	tat, found := s.tats[key]
	if !found || tat < now {
		tat = now // a missing bucket, or one idle long enough, is full
	}
	if n > limit.burst() {
		// Never admissible, so no RetryAfter is true: report the time
		// until the bucket is full, as documented on Result. Checked before
		// n*emission, which could overflow for such an n.
		s.mu.Unlock()
		return Result{Limit: limit, RetryAfter: time.Duration(tat - now), ResetAfter: time.Duration(tat - now)}, nil
	}
	// n*emission <= burstOffset, which gcra bounds: no overflow.
	newTat := tat + int64(n)*emission
	diff := now - (newTat - burstOffset)
	if diff < 0 {
		// Refused: leave the bucket untouched, a refusal costs nothing.
		s.mu.Unlock()
		return Result{Limit: limit, RetryAfter: time.Duration(-diff), ResetAfter: time.Duration(tat - now)}, nil
	}
	if found {
		s.tats[key] = newTat
	} else {
		// Clone so that the map does not pin a larger buffer the caller
		// sliced key from (a request line, a header).
		s.tats[strings.Clone(key)] = newTat
		s.peak = max(s.peak, len(s.tats))
	}
	s.mu.Unlock()
	return Result{
		Limit:      limit,
		Allowed:    true,
		Remaining:  int(diff / emission),
		ResetAfter: time.Duration(newTat - now),
	}, nil
}

// Sweep deletes every bucket that is full again (its TAT has passed) and
// releases map memory left over from bursts of keys. Allow sweeps on its
// own as it is called (AllowN too); Sweep is for reclaiming memory after traffic stops.
func (m *MemoryLimiter) Sweep() {
	now := m.elapsed()
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.sweep(now)
		s.mu.Unlock()
	}
}

// Len returns the number of buckets held, full ones and quotas of ended
// periods not yet swept included.
func (m *MemoryLimiter) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tats) + len(s.quotas)
		s.mu.Unlock()
	}
	return n
}

// sweep must be called with s.mu held.
func (s *memShard) sweep(now int64) {
	maps.DeleteFunc(s.tats, func(_ string, tat int64) bool { return tat <= now })
	maps.DeleteFunc(s.quotas, func(_ string, q quotaCount) bool { return q.end <= now })
	n := len(s.tats)
	s.calls, s.sweepAt = 0, n
	if s.peak >= shrinkMin && n <= s.peak/4 {
		// Not maps.Clone: it may keep the source's capacity.
		tats := make(map[string]int64, n)
		maps.Copy(tats, s.tats)
		s.tats, s.peak = tats, n
	}
}

// AllowAll implements [MultiLimiter] with the arithmetic of allowAllScript,
// holding the locks of every shard involved (in shard order, so that two
// calls cannot deadlock) for the whole check: a single Allow of one of the
// buckets sees it entirely, or not at all. It never blocks on I/O, so ctx
// is not consulted.
func (m *MemoryLimiter) AllowAll(_ context.Context, group string, checks []Check, n int) (MultiResult, error) {
	if err := checkAll(group, checks, n); err != nil {
		return MultiResult{}, err
	}
	return m.allowAll(group, checks, n, false), nil
}

// PeekAll implements [MultiLimiter]: AllowAll's reading of the buckets,
// under the same locks, without its spending.
func (m *MemoryLimiter) PeekAll(_ context.Context, group string, checks []Check) (MultiResult, error) {
	if err := checkAll(group, checks, 1); err != nil {
		return MultiResult{}, err
	}
	return peeked(m.allowAll(group, checks, 1, true), checks), nil
}

// allowAll is AllowAll for checks that passed checkAll; peek makes it
// spend nothing.
func (m *MemoryLimiter) allowAll(group string, checks []Check, n int, peek bool) MultiResult {
	// The period is read before the locks, to name the quotas' buckets;
	// the time the buckets are computed at, after them (see allowN).
	wall := m.now()
	type bucket struct {
		key              string
		shard            *memShard
		emission, offset int64
		tat, end         int64
		endAt            time.Time // a quota's period end
		used, available  int64
		fits, quota      bool
	}
	bs := make([]bucket, len(checks))
	res := MultiResult{Allowed: true, Results: make([]Result, len(checks))}
	var locked [shardCount]bool
	for i, c := range checks {
		b := &bs[i]
		b.key = groupKey(group, c.Key)
		if c.Quota > 0 {
			id, start, end := quotaWindow(c.Period, wall)
			b.key += ":" + id
			b.quota, b.endAt = true, end
			res.Results[i].Limit = quotaLimit(c, start, end)
		} else {
			b.emission, b.offset, _ = c.Limit.gcra()
			res.Results[i].Limit = c.Limit
		}
		locked[maphash.String(m.seed, b.key)%shardCount] = true
	}
	for i := range locked {
		if locked[i] {
			s := &m.shards[i]
			s.mu.Lock()
			defer s.mu.Unlock()
		}
	}
	wall = m.now()
	now := int64(wall.Sub(m.epoch))
	for i := range locked {
		if s := &m.shards[i]; locked[i] {
			if s.calls++; s.calls >= max(m.minSweep, s.sweepAt) {
				s.sweep(now)
			}
		}
	}
	for i, c := range checks {
		b := &bs[i]
		b.shard = &m.shards[maphash.String(m.seed, b.key)%shardCount]
		if b.quota {
			b.end = now + int64(b.endAt.Sub(wall))
			if q, found := b.shard.quotas[b.key]; found && q.end > now {
				b.used = q.used
			}
			b.available = c.Quota - b.used
		} else {
			tat, found := b.shard.tats[b.key]
			if !found || tat < now {
				tat = now
			}
			b.tat = tat
			// Floor division: the numerator is negative when the burst
			// was lowered under a deep bucket.
			num := b.offset - (tat - now)
			b.available = num / b.emission
			if num < 0 && num%b.emission != 0 {
				b.available--
			}
		}
		b.fits = b.available >= int64(n)
		if !b.fits && !c.Shadow {
			res.Allowed = false
		}
	}
	for i := range checks {
		b, r := &bs[i], &res.Results[i]
		r.Allowed = b.fits
		spent := int64(0)
		if res.Allowed && b.fits && !peek {
			spent = int64(n)
		}
		r.Remaining = int(max(b.available-spent, 0))
		if b.quota {
			if spent > 0 {
				b.shard.quotas[b.key] = quotaCount{used: b.used + spent, end: b.end}
			}
			r.ResetAfter = time.Duration(max(b.end-now, 0))
			if !b.fits {
				r.RetryAfter = r.ResetAfter
			}
			continue
		}
		if spent > 0 {
			b.tat += spent * b.emission
			if c := checks[i]; c.Key == "" {
				// The group's name may be sliced from a larger buffer.
				b.key = strings.Clone(b.key)
			}
			b.shard.tats[b.key] = b.tat
			b.shard.peak = max(b.shard.peak, len(b.shard.tats))
		}
		r.ResetAfter = time.Duration(b.tat - now)
		switch {
		case b.fits:
		case int64(n) > b.offset/b.emission:
			// Above the burst: never admissible (see Result).
			r.RetryAfter = r.ResetAfter
		default:
			r.RetryAfter = time.Duration(b.tat + int64(n)*b.emission - b.offset - now)
		}
	}
	return res
}

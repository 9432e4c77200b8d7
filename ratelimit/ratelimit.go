// Package ratelimit holds FlagBridge's rate-limit semantics, in one place:
// the algorithm, its implementations (two Redis-backed, one in-process) and
// the X-RateLimit-* headers that report it.
//
// # Semantics
//
// Every bucket is a GCRA (generic cell rate algorithm) bucket, the algorithm
// of github.com/go-redis/redis_rate, with Burst equal to Rate:
//
//   - a bucket that has been idle for a whole Period admits Rate requests at
//     once (the burst);
//   - capacity then comes back continuously, one request every Period/Rate
//     (6 ms for 10,000/min), not all at once at the end of a window;
//   - a request may cost n >= 1 ([Limiter.AllowN]; [Limiter.Allow] is n =
//     1): it is admitted only if all n fit at once, exactly as n requests
//     admitted one after another would be, and then spends all n;
//   - a refused request costs nothing, whatever its n: a refused AllowN
//     does not spend the part of n that would have fitted;
//   - n above the burst can never be admitted: it is refused (see [Result]
//     for what it reports then), and waiting does not help.
//
// A request may also spend from several buckets at once
// ([MultiLimiter.AllowAll]: a key's named limits, its quota, its identity's
// and its route's), all or nothing in one atomic step: it is admitted only
// if every bucket admits it, and a refused request spends from none (a
// Shadow bucket reports what it would do and never refuses). A quota is a
// plain count per calendar period (UTC day or month), refused to the end
// of the period once spent.
//
// A [Result] reports it: Remaining is how many requests (of cost 1) would
// be admitted right now, RetryAfter (on refusal) how long until the refused
// request, with its n, would be, and ResetAfter how long until the bucket
// is full again.
//
// # Implementations
//
// All three pass the same conformance suite (package limitertest):
//
//   - [RedisLimiter] runs redis_rate's script: one atomic round trip per
//     request, on the Redis server's clock, shared by every instance. It is
//     the simple reference.
//   - [BatchingRedisLimiter] gives the same answers, as exactly, with less
//     Redis work per request: concurrent checks of one bucket go to Redis as
//     one "admit at most n" script run and are answered as if made one after
//     another (a check of cost n > 1 goes alone, in the script's "all or
//     none" mode, in its place in that order), and so do concurrent
//     multi-bucket checks of one group and bucket set; checks of different
//     buckets share pipelines, with a bounded number of round trips in
//     flight; and a bucket Redis reported empty is refused locally until
//     GCRA could admit again. It runs FlagBridge's own script, in exact integer
//     nanoseconds, on the buckets RedisLimiter uses (same keys, same stored
//     format), so the two can share a fleet.
//   - [MemoryLimiter] runs the same arithmetic on a local clock, so that the
//     embedded backend behaves identically on a single instance.
package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Limit is a rate: Rate requests per Period, with bursts of up to Burst.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// PerMinute returns the limit of n requests a minute with a burst of n.
func PerMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }

// IsZero reports whether the limit is unset.
func (l Limit) IsZero() bool { return l.Rate == 0 }

// String renders the limit as "10000/1m0s".
func (l Limit) String() string { return fmt.Sprintf("%d/%s", l.Rate, l.Period) }

// Result is the outcome of one check against a bucket.
type Result struct {
	Limit Limit
	// Allowed reports whether the request was admitted (all of its n).
	Allowed bool
	// Remaining is how many more requests the bucket would admit now: after
	// an admitted AllowN, what is left once its n are spent, the same as
	// after the last of n Allows. It is 0 on a refusal, as for a refused
	// Allow, even when some requests of cost less than n would still fit.
	Remaining int
	// RetryAfter is how long until a refused request, with its n, would be
	// admitted if nothing else spent the bucket meanwhile; zero when
	// Allowed. For n above the burst, which no wait can admit, it is
	// ResetAfter instead (zero when the bucket is full): a caller must not
	// retry such a request, and should not send RetryAfter to a client as
	// Retry-After.
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
}

// SelfBounded is a Limiter whose every call returns within a bound of its
// own, so that a caller bounded by the same time needs no timer of its own
// around each call (one per request costs more than a check that does not
// block). CallBound reports the bound, and false if there is none.
type SelfBounded interface {
	CallBound() (time.Duration, bool)
}

// Limiter checks requests against named buckets.
type Limiter interface {
	// Allow spends one request from bucket key under limit. It is AllowN
	// with n = 1.
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
	// AllowN spends n requests from bucket key under limit, all or nothing:
	// it admits them only if all n fit now (GCRA: the bucket's theoretical
	// arrival time plus n emission intervals stays within the burst
	// offset), and a refusal spends nothing. An n above the burst is always
	// refused. n must be at least 1: n <= 0 returns an error wrapping
	// [ErrInvalidLimit], without touching the bucket or the network.
	AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error)
	// A Limiter checks several buckets at once too, all or nothing: keys
	// with named limits, quotas or an identity need it.
	MultiLimiter
}

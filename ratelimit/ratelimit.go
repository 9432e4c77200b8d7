// Package ratelimit holds FlagBridge's rate-limit semantics, in one place:
// the algorithm, its two implementations (Redis-backed and in-process) and
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
//   - a refused request costs nothing.
//
// A [Result] reports it: Remaining is how many requests would be admitted
// right now, RetryAfter (on refusal) how long until the next one would be,
// and ResetAfter how long until the bucket is full again.
//
// The Redis limiter runs redis_rate's script (one round trip, atomic, shared
// by every instance); the in-process limiter runs the same arithmetic on a
// local clock so that the embedded backend behaves identically.
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
	// Allowed reports whether the request was admitted.
	Allowed bool
	// Remaining is how many more requests the bucket would admit now.
	Remaining int
	// RetryAfter is how long until a refused request would be admitted;
	// zero when Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
}

// Limiter checks requests against named buckets.
type Limiter interface {
	// Allow spends one request from bucket key under limit.
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
}

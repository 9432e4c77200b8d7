package ratelimit

import (
	"context"
	"fmt"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// RedisLimiter is the Limiter shared by every FlagBridge instance: each
// check is one atomic run of redis_rate's GCRA script, on the Redis
// server's clock. It is safe for concurrent use.
type RedisLimiter struct {
	rate      *redis_rate.Limiter
	client    redis.UniversalClient
	keyPrefix string
	// multiPrefix is where AllowAll keeps its buckets.
	multiPrefix string
}

// NewRedis returns a RedisLimiter storing its buckets in client under
// "rate:<prefix>:rl:{<key>}" (redis_rate adds "rate:"). The braces make the
// bucket key a Redis Cluster hash tag, so buckets spread over slots by key
// alone; prefix must therefore not contain '{', or its tag would win and
// every bucket would land in one slot.
//
// Allow and AllowN are bounded by their ctx only if client has
// ContextTimeoutEnabled; otherwise the client's own read and write timeouts
// apply.
func NewRedis(client redis.UniversalClient, prefix string) *RedisLimiter {
	return &RedisLimiter{rate: redis_rate.NewLimiter(client), client: client, keyPrefix: prefix + ":rl:{", multiPrefix: multiPrefix(prefix)}
}

// multiPrefix is the key prefix of multi-bucket checks' buckets:
// "rate:<prefix>:ml:", followed by "{<group>}:<bucket>" (and the period,
// for a quota). The group is the hash tag, so that one script run can
// reach all of a group's buckets in a Redis Cluster.
func multiPrefix(prefix string) string { return "rate:" + prefix + ":ml:" }

// AllowAll implements [MultiLimiter]: one atomic script run over the
// group's buckets, on the Redis server's clock (quota periods follow this
// instance's clock, in UTC). Errors are Allow's.
func (r *RedisLimiter) AllowAll(ctx context.Context, group string, checks []Check, n int) (MultiResult, error) {
	return allowAllRedis(ctx, r.client, r.multiPrefix, "rate:"+r.keyPrefix, group, checks, n)
}

// PeekAll implements [MultiLimiter] with one read-only script run.
func (r *RedisLimiter) PeekAll(ctx context.Context, group string, checks []Check) (MultiResult, error) {
	return peekAllRedis(ctx, r.client, r.multiPrefix, "rate:"+r.keyPrefix, group, checks)
}

// Allow implements [Limiter]. Redis errors (unreachable server, ctx
// deadline) are returned wrapped, with a zero Result: whether to fail open
// or closed is the caller's policy, not the limiter's. An unusable limit
// returns an error wrapping [ErrInvalidLimit] without a round trip.
func (r *RedisLimiter) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	return r.allowN(ctx, key, limit, 1)
}

// AllowN implements [Limiter] with redis_rate's AllowN, which admits all n
// or none in one atomic script run. Errors are Allow's; n < 1 returns an
// error wrapping [ErrInvalidLimit] without a round trip.
func (r *RedisLimiter) AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	if err := checkN(n); err != nil {
		return Result{Limit: limit}, err
	}
	return r.allowN(ctx, key, limit, n)
}

// allowN is Allow and AllowN for n >= 1.
func (r *RedisLimiter) allowN(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	if _, _, err := limit.gcra(); err != nil {
		return Result{Limit: limit}, err
	}
	res, err := r.rate.AllowN(ctx, r.keyPrefix+key+"}", redis_rate.Limit{
		Rate:   limit.Rate,
		Burst:  limit.burst(),
		Period: limit.Period,
	}, n)
	if err != nil {
		return Result{Limit: limit}, fmt.Errorf("ratelimit: redis limiter: %w", err)
	}
	out := Result{
		Limit:      limit,
		Allowed:    res.Allowed > 0,
		Remaining:  res.Remaining,
		ResetAfter: res.ResetAfter,
	}
	switch {
	case out.Allowed:
		// redis_rate reports -1 when allowed; ours is zero then.
	case n > limit.burst():
		// redis_rate reports when n would fit in a bucket deeper than
		// this one: never, here. Result documents ResetAfter instead.
		out.RetryAfter = res.ResetAfter
	default:
		out.RetryAfter = res.RetryAfter
	}
	return out, nil
}

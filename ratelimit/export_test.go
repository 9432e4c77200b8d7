package ratelimit

import (
	"context"
	"time"
)

// SetMinSweep lowers m's per-shard sweep threshold, so that a test can watch
// call-driven sweeping with a few thousand keys instead of 64 × 1024.
func SetMinSweep(m *MemoryLimiter, n int) { m.minSweep = n }

// BatchingAllowN runs l's script once, admitting at most n requests from
// key's bucket, so that a test can check the script's arithmetic directly.
func BatchingAllowN(ctx context.Context, l *BatchingRedisLimiter, key string, limit Limit, n int) (admitted, remaining int, retryAfter, resetAfter time.Duration, err error) {
	emission, _, err := limit.gcra()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	cmd := allowAtMostScript.Run(ctx, l.client, []string{l.keyPrefix + key + "}"}, emission, limit.burst(), n)
	a, r, retry, reset, err := parseScriptResult(cmd)
	return a, r, time.Duration(retry), time.Duration(reset), err
}

// BatchingAllowAll runs l's script once in its "all or none" mode, for one
// check of cost n, so that a test can check that mode's arithmetic directly.
func BatchingAllowAll(ctx context.Context, l *BatchingRedisLimiter, key string, limit Limit, n int) (admitted, remaining int, retryAfter, resetAfter time.Duration, err error) {
	emission, _, err := limit.gcra()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	cmd := allowAtMostScript.Run(ctx, l.client, []string{l.keyPrefix + key + "}"}, emission, limit.burst(), n, scriptAllOrNone)
	a, r, retry, reset, err := parseScriptResult(cmd)
	return a, r, time.Duration(retry), time.Duration(reset), err
}

// BatchingLen returns the number of buckets l holds state for.
func BatchingLen(l *BatchingRedisLimiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// BatchingQueueLen returns the number of checks of key's bucket waiting to
// be sent, so that a test can queue checks in a known order.
func BatchingQueueLen(l *BatchingRedisLimiter, key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		return len(b.queue)
	}
	return 0
}

// PolicyCacheLen returns the number of RateLimit-Policy fields cached.
func PolicyCacheLen() int {
	if m := policies.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// MaxPolicies is the bound of the RateLimit-Policy cache.
const MaxPolicies = maxPolicies

// BatchingGroupQueueLen returns the number of multi-bucket checks of group
// waiting to be sent, so that a test can queue checks in a known order.
func BatchingGroupQueueLen(l *BatchingRedisLimiter, group string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if g := l.groups[group]; g != nil {
		return len(g.queue)
	}
	return 0
}

// BatchingGroupsLen returns the number of groups l holds state for.
func BatchingGroupsLen(l *BatchingRedisLimiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.groups)
}

package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/ratelimit"
)

// benchChecks is a key's bucket set as the edge checks it: two named limits
// and a monthly quota, all wide enough to admit everything.
var benchChecks = []ratelimit.Check{
	{Key: "burst", Limit: ratelimit.PerMinute(1 << 30), Name: "burst"},
	{Key: "sustained", Limit: ratelimit.Limit{Rate: 1 << 30, Period: time.Hour, Burst: 1 << 30}, Name: "sustained"},
	{Key: "quota", Quota: 1 << 50, Period: ratelimit.Month, Name: "quota"},
}

func BenchmarkBatchingRedisAllowAll(b *testing.B) {
	for _, inFlight := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("InFlight=%d", inFlight), func(b *testing.B) {
			benchMulti(b, func(b *testing.B, c redis.UniversalClient, prefix string) ratelimit.MultiLimiter {
				return newBatching(b, c, prefix, ratelimit.BatchingOptions{MaxInFlight: inFlight})
			})
		})
	}
}

func BenchmarkRedisAllowAll(b *testing.B) {
	benchMulti(b, func(b *testing.B, c redis.UniversalClient, prefix string) ratelimit.MultiLimiter {
		return ratelimit.NewRedis(c, prefix)
	})
}

// benchMulti is benchLimiters for multi-bucket checks: benchChecks under 16
// callers per CPU, on one hot group and on 4096 groups.
func benchMulti(b *testing.B, newLimiter func(*testing.B, redis.UniversalClient, string) ratelimit.MultiLimiter) {
	benchRedisCalls(b, func(b *testing.B, c redis.UniversalClient, prefix string) func(string) error {
		l := newLimiter(b, c, prefix)
		return func(group string) error {
			r, err := l.AllowAll(context.Background(), group, benchChecks, 1)
			if err == nil && !r.Allowed {
				err = fmt.Errorf("refused: %+v", r)
			}
			return err
		}
	})
}

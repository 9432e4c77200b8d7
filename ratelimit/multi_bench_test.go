package ratelimit_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/internal/testenv"
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
// callers per CPU, on one hot group and on 4096 groups, reporting what each
// call costs Redis.
func benchMulti(b *testing.B, newLimiter func(*testing.B, redis.UniversalClient, string) ratelimit.MultiLimiter) {
	srv := testenv.StartRedis(b)
	groups := make([]string, 4096)
	for i := range groups {
		groups[i] = "apikey:" + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		name   string
		groups []string
	}{{"OneKey", groups[:1]}, {"ManyKeys", groups}} {
		b.Run(tc.name, func(b *testing.B) {
			client, hook := hookedClient(b, srv)
			l := newLimiter(b, client, testenv.UniquePrefix(b))
			stats := srv.Client()
			runs, trips := scriptRuns(b, stats), hook.trips()
			cpu0, rcpu0 := processCPU(b), serverCPU(b, stats)
			var next atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 997
				for pb.Next() {
					r, err := l.AllowAll(context.Background(), tc.groups[i%len(tc.groups)], benchChecks, 1)
					if err != nil || !r.Allowed {
						b.Error(r, err)
						return
					}
					i++
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(scriptRuns(b, stats)-runs)/float64(b.N), "scripts/op")
			b.ReportMetric(float64(hook.trips()-trips)/float64(b.N), "trips/op")
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "client-cpu-ns/op")
			b.ReportMetric(float64(serverCPU(b, stats)-rcpu0)/float64(b.N), "redis-cpu-ns/op")
		})
	}
}

package ratelimit_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/ratelimit/limitertest"
)

func TestRedisConformance(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	limitertest.Run(t, func(t *testing.T) ratelimit.Limiter {
		return ratelimit.NewRedis(client, testenv.UniquePrefix(t))
	})
}

func TestRedisMultiConformance(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	limitertest.RunMulti(t, func(t *testing.T) ratelimit.Limiter {
		return ratelimit.NewRedis(client, testenv.UniquePrefix(t))
	})
}

// TestRedisKeyIsHashTagged checks the key layout, and with a cluster-mode
// server's own CLUSTER KEYSLOT that the bucket key, not the prefix, picks
// the slot.
func TestRedisKeyIsHashTagged(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	prefix := testenv.UniquePrefix(t)
	lim := ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 10}
	if _, err := ratelimit.NewRedis(client, prefix).Allow(t.Context(), "apikey:42", lim); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := "rate:" + prefix + ":rl:{apikey:42}"
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys %q, want [%q]", keys, want)
	}
	// The bucket must go away on its own once full again (one request: 6 s).
	if ttl, err := client.TTL(t.Context(), want).Result(); err != nil || ttl <= 0 || ttl > 6*time.Second {
		t.Fatalf("TTL of %s: %v, %v, want within (0, 6s]", want, ttl, err)
	}

	cluster := testenv.StartRedis(t, "--cluster-enabled", "yes").Client()
	slot := func(k string) int64 {
		s, err := cluster.ClusterKeySlot(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
		}
		return s
	}
	slots := make(map[int64]bool)
	for _, k := range []string{"apikey:1", "apikey:2", "ip:10.0.0.1", "ip:10.0.0.2", "env:prod", "env:dev", "a", "b"} {
		full := strings.Replace(want, "apikey:42", k, 1)
		if got, tag := slot(full), slot(k); got != tag {
			t.Errorf("key %q is in slot %d, not its bucket's slot %d", full, got, tag)
		}
		slots[slot(full)] = true
	}
	if len(slots) < 6 {
		t.Errorf("8 buckets fell in %d slots: the prefix, not the bucket, picks the slot", len(slots))
	}
}

// TestRedisDownFailsFast checks that an unreachable Redis, whether dead or
// silent, costs a bounded wait and an error, never a hang.
func TestRedisDownFailsFast(t *testing.T) {
	lim := ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 10}
	newClient := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{
			Addr:                  addr,
			DialTimeout:           200 * time.Millisecond,
			ReadTimeout:           200 * time.Millisecond,
			WriteTimeout:          200 * time.Millisecond,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1, // 0 means the default of 3 in go-redis
		})
		t.Cleanup(func() { c.Close() })
		return c
	}
	// The deadline is shorter than go-redis's default dial retries (5 × 100
	// ms) so that the ctx, not the client's retry budget, must end the call.
	const deadline, bound = 300 * time.Millisecond, time.Second
	mustFail := func(t *testing.T, l *ratelimit.RedisLimiter) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		defer cancel()
		start := time.Now()
		r, err := l.Allow(ctx, "k", lim)
		if took := time.Since(start); err == nil || took > bound || r.Allowed {
			t.Fatalf("Allow on a dead Redis: allowed=%v err=%v after %v, want an error within %v", r.Allowed, err, took, bound)
		} else {
			t.Logf("failed after %v: %v", took, err)
		}
	}

	t.Run("Stopped", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		l := ratelimit.NewRedis(newClient(srv.Addr()), testenv.UniquePrefix(t))
		if _, err := l.Allow(t.Context(), "k", lim); err != nil {
			t.Fatal(err)
		}
		srv.Stop() // kills the server under a pooled connection
		mustFail(t, l)
		mustFail(t, l) // and a fresh dial
		// The restarted server has lost its script cache: the limiter must
		// recover without intervention.
		srv.Start()
		if r, err := l.Allow(t.Context(), "k", lim); err != nil || !r.Allowed {
			t.Fatalf("after restart: allowed=%v err=%v", r.Allowed, err)
		}
	})

	t.Run("Unresponsive", func(t *testing.T) {
		// Accepts connections and never answers, like a wedged server: only
		// the deadlines end the call.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { ln.Close(); wg.Wait() })
		wg.Go(func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { io.Copy(io.Discard, conn); conn.Close() })
			}
		})
		// newClient's cleanup runs first and closes the connections, which
		// ends the io.Copy goroutines before wg.Wait.
		mustFail(t, ratelimit.NewRedis(newClient(ln.Addr().String()), "p"))
	})
}

// BenchmarkRedisAllow is the reference for BenchmarkBatchingRedisAllow:
// one script run and one round trip per call.
func BenchmarkRedisAllow(b *testing.B) {
	benchLimiters(b, func(_ *testing.B, c redis.UniversalClient, prefix string) ratelimit.Limiter {
		return ratelimit.NewRedis(c, prefix)
	})
}

func abs[T int | time.Duration](x T) T {
	if x < 0 {
		return -x
	}
	return x
}

// TestQuotaKeyExpiresWithItsPeriod: a quota's count on Redis goes away when
// its period ends, and spending more of it keeps that expiry, on both
// Redis limiters.
func TestQuotaKeyExpiresWithItsPeriod(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	for name, newLim := range map[string]func(prefix string) ratelimit.MultiLimiter{
		"redis":    func(p string) ratelimit.MultiLimiter { return ratelimit.NewRedis(client, p) },
		"batching": func(p string) ratelimit.MultiLimiter { return newBatching(t, client, p, ratelimit.BatchingOptions{}) },
	} {
		t.Run(name, func(t *testing.T) {
			prefix := testenv.UniquePrefix(t)
			lim := newLim(prefix)
			checks := []ratelimit.Check{{Key: "q", Quota: 10, Period: ratelimit.Day}}
			for range 3 {
				if _, err := lim.AllowAll(t.Context(), "g", checks, 1); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()
			_, end := ratelimit.Day.Bounds(now)
			key := "rate:" + prefix + ":ml:{g}:q:" + now.UTC().Format("2006-01-02")
			if n, err := client.Get(t.Context(), key).Int(); err != nil || n != 3 {
				t.Fatalf("%s holds %d, %v, want 3", key, n, err)
			}
			at, err := client.PExpireTime(t.Context(), key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := time.UnixMilli(int64(at / time.Millisecond)); !got.Equal(end) {
				t.Fatalf("%s expires at %v, want the period's end %v", key, got, end)
			}
		})
	}
}

package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// BenchmarkAllowFastPaths measures, on one goroutine, the paths of Allow
// that do no I/O, where a few nanoseconds show: the in-process limiter
// admitting (called directly, and through the Limiter interface as the edge
// does) and refusing, and the batching limiter refusing from its deny
// cache. It uses Allow alone, so that it runs on trees from before AllowN
// too and compares them.
func BenchmarkAllowFastPaths(b *testing.B) {
	ctx := context.Background()
	b.Run("Memory/Admit", func(b *testing.B) {
		m, lim := ratelimit.NewMemory(), ratelimit.PerMinute(1<<30)
		b.ReportAllocs()
		for b.Loop() {
			if r, _ := m.Allow(ctx, "apikey:1", lim); !r.Allowed {
				b.Fatal("refused")
			}
		}
	})
	b.Run("Memory/AdmitViaInterface", func(b *testing.B) {
		// As the edge calls it: Allow is not inlined through an interface.
		var l ratelimit.Limiter = ratelimit.NewMemory()
		lim := ratelimit.PerMinute(1 << 30)
		b.ReportAllocs()
		for b.Loop() {
			if r, _ := l.Allow(ctx, "apikey:1", lim); !r.Allowed {
				b.Fatal("refused")
			}
		}
	})
	b.Run("Memory/Refuse", func(b *testing.B) {
		m, lim := ratelimit.NewMemory(), ratelimit.Limit{Rate: 1, Period: time.Hour}
		m.Allow(ctx, "apikey:1", lim)
		b.ReportAllocs()
		for b.Loop() {
			if r, _ := m.Allow(ctx, "apikey:1", lim); r.Allowed {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("Batching/Denied", func(b *testing.B) {
		client := testenv.StartRedis(b).Client()
		l, lim := newBatching(b, client, testenv.UniquePrefix(b), ratelimit.BatchingOptions{}), ratelimit.Limit{Rate: 1, Period: time.Hour}
		// Empties the bucket: a deny entry for the next hour.
		if r, err := l.Allow(ctx, "apikey:1", lim); err != nil || !r.Allowed {
			b.Fatal(r, err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if r, _ := l.Allow(ctx, "apikey:1", lim); r.Allowed {
				b.Fatal("admitted")
			}
		}
	})
}

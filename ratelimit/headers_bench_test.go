package ratelimit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/ratelimit"
)

// BenchmarkHeaders measures rendering one response's rate-limit headers,
// without and with the IETF fields, as the edge does once per request. It
// uses the public API alone, so that it runs on older trees too and compares
// serializations.
func BenchmarkHeaders(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name string
		res  ratelimit.Result
	}{
		{"Admitted", ratelimit.Result{Limit: ratelimit.PerMinute(10_000), Allowed: true, Remaining: 9_999, ResetAfter: 6 * time.Millisecond}},
		{"Refused", ratelimit.Result{Limit: ratelimit.PerMinute(10_000), RetryAfter: 5 * time.Millisecond, ResetAfter: time.Minute}},
	} {
		h := http.Header{}
		b.Run(tc.name+"/XRateLimit", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.res.Headers(now).Apply(h)
			}
		})
		b.Run(tc.name+"/WithPolicy", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.res.Headers(now).WithPolicy("live").Apply(h)
			}
			if h.Get("RateLimit-Policy") != `"live";q=10000;w=60` {
				b.Fatalf("RateLimit-Policy %q", h.Get("RateLimit-Policy"))
			}
		})
	}
}

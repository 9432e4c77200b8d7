package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestSetHeaders(t *testing.T) {
	now := time.Unix(1_800_000_000, 250_000_000)
	h := http.Header{}
	Result{Limit: PerMinute(100), Allowed: true, Remaining: 42, ResetAfter: 1500 * time.Millisecond}.SetHeaders(h, now)
	// now + 1.5s = ...001.75, rounded up to ...002.
	if h.Get("X-RateLimit-Limit") != "100" || h.Get("X-RateLimit-Remaining") != "42" ||
		h.Get("X-RateLimit-Reset") != "1800000002" || h.Get("Retry-After") != "" {
		t.Fatalf("admitted: %v", h)
	}
	h = http.Header{}
	Result{Limit: PerMinute(100), Remaining: -1, RetryAfter: 10 * time.Millisecond, ResetAfter: time.Minute}.SetHeaders(h, now)
	if h.Get("X-RateLimit-Remaining") != "0" || h.Get("Retry-After") != "1" {
		t.Fatalf("refused: %v", h)
	}
	h = http.Header{}
	Result{Limit: PerMinute(100), RetryAfter: 2001 * time.Millisecond}.SetHeaders(h, now)
	if h.Get("Retry-After") != "3" {
		t.Fatalf("Retry-After rounds up: %v", h)
	}
	// Adding a value later (as a proxy copying upstream headers does) must
	// not write into the shared slices.
	hv := Result{Limit: PerMinute(7), Allowed: true}.Headers(now)
	a, b := http.Header{}, http.Header{}
	hv.Apply(a)
	hv.Apply(b)
	a.Add("X-RateLimit-Limit", "1")
	if got := b.Values("X-RateLimit-Limit"); len(got) != 1 || got[0] != "7" {
		t.Fatalf("shared header slice was modified: %v", got)
	}
	h = http.Header{}
	LimitOnly(PerMinute(9)).Apply(h)
	if h.Get("X-RateLimit-Limit") != "9" || len(h) != 1 {
		t.Fatalf("LimitOnly: %v", h)
	}
}

func TestReapplyRestoresOnlyWhatChanged(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hv := Result{Limit: PerMinute(7), Allowed: true, Remaining: 3}.Headers(now)
	h := http.Header{}
	hv.Apply(h)
	hv.Reapply(h) // unchanged: still exactly one value each
	if got := h.Values("X-RateLimit-Limit"); len(got) != 1 || got[0] != "7" {
		t.Fatalf("after a no-op Reapply: %v", got)
	}
	h.Add("X-RateLimit-Remaining", "999") // an upstream's own header
	h.Set("X-RateLimit-Limit", "1")
	hv.Reapply(h)
	if h.Get("X-RateLimit-Limit") != "7" || len(h.Values("X-RateLimit-Remaining")) != 1 || h.Get("X-RateLimit-Remaining") != "3" {
		t.Fatalf("after Reapply: %v", h)
	}
	delete(h, "X-Ratelimit-Reset")
	hv.Reapply(h)
	if h.Get("X-RateLimit-Reset") == "" {
		t.Fatal("a removed header was not restored")
	}
}

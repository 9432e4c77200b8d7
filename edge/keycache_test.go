package edge

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
)

// The cache's own properties (shared loads, TTLs, invalidation by tag, a
// load racing an invalidation, purge, sweep, eviction) are tested once, on
// feedcache.Cache; these tests cover what KeyCache builds on it: the entry
// of a key, negative entries for digests no key has, the key id as the tag
// of every secret of a key, and last use kept across eviction.

// The entry of a key holds its record, its principal and bucket, and the
// variables handed to later handlers; a digest no key has is cached as
// such, for the shorter negative TTL.
func TestKeyCacheEntries(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	c := NewKeyCache(f.source, KeyCacheOptions{TTL: time.Minute, NegativeTTL: 5 * time.Second})
	now := time.Now()
	rec := f.records["live"]
	e, err := c.Load(context.Background(), apikey.DigestOf(f.keys["live"]), now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Key == nil || e.Key.ID != rec.ID || !e.Admits(now) {
		t.Fatalf("entry %+v", e)
	}
	if p := e.Principal; p == nil || p.Kind != authz.KeyPrincipal || p.ID != rec.ID || p.Type != apikey.Live ||
		p.Key != e.Key || !reflect.DeepEqual(p.Scope, authz.Scope{Org: rec.OrgID, Project: "app", Environment: "production"}) {
		t.Fatalf("principal %+v", e.Principal)
	}
	if e.Bucket != "key:"+rec.ID {
		t.Fatalf("bucket %q", e.Bucket)
	}
	if e.Boxed != [5]any{rec.ID, "live", "app", "production", nil} {
		t.Fatalf("boxed %v", e.Boxed)
	}
	if again, ok := c.Cached(apikey.DigestOf(f.keys["live"]), now.Add(time.Minute-time.Nanosecond)); !ok || again != e {
		t.Fatal("the entry was not cached for the TTL")
	}

	forged, _ := apikey.Generate(apikey.Live)
	d := apikey.DigestOf(forged)
	n, err := c.Load(context.Background(), d, now)
	if err != nil {
		t.Fatal(err)
	}
	if n.Key != nil || n.Principal != nil || n.Admits(now) || n.Bucket != "" {
		t.Fatalf("unknown digest: %+v", n)
	}
	if _, ok := c.Cached(d, now.Add(5*time.Second-time.Nanosecond)); !ok {
		t.Fatal("an unknown digest was not cached")
	}
	if _, ok := c.Cached(d, now.Add(5*time.Second)); ok {
		t.Fatal("an unknown digest outlived the negative TTL")
	}
	// The default negative TTL is ten seconds.
	def := NewKeyCache(f.source, KeyCacheOptions{})
	def.Load(context.Background(), d, now)
	if _, ok := def.Cached(d, now.Add(DefaultNegativeTTL-time.Nanosecond)); !ok {
		t.Fatal("default negative TTL too short")
	}
	if _, ok := def.Cached(d, now.Add(DefaultNegativeTTL)); ok {
		t.Fatal("default negative TTL too long")
	}
	// SetTTL reaches the cache.
	c.SetTTL(time.Second)
	if _, ok := c.Cached(apikey.DigestOf(f.keys["live"]), now.Add(time.Second)); ok {
		t.Fatal("SetTTL did not apply")
	}
}

// Invalidate takes a key id, the payload of the keys' change events, and
// drops every cached secret of that key (both secrets during a rotation's
// grace period), leaving other keys and unknown digests cached.
func TestKeyCacheInvalidateDropsEverySecret(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	ctx := context.Background()
	old := f.keys["test"]
	rot, err := f.svc.Keys.RotateKey(ctx, f.org, f.records["test"].ID, keys.RotateInput{GracePeriod: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	c := NewKeyCache(f.source, KeyCacheOptions{})
	now := time.Now()
	forged, _ := apikey.Generate(apikey.Test)
	for _, k := range []string{old, rot.Secret, f.keys["live"], forged} {
		e, err := c.Load(ctx, apikey.DigestOf(k), now)
		if err != nil {
			t.Fatal(err)
		}
		if (k == forged) != (e.Key == nil) {
			t.Fatalf("entry of %s: %+v", k[:8], e)
		}
	}
	if c.Len() != 4 {
		t.Fatalf("Len %d", c.Len())
	}
	c.Invalidate(rot.ID)
	for _, k := range []string{old, rot.Secret} {
		if _, ok := c.Cached(apikey.DigestOf(k), now); ok {
			t.Fatal("a secret of the invalidated key is still cached")
		}
	}
	for _, k := range []string{f.keys["live"], forged} {
		if _, ok := c.Cached(apikey.DigestOf(k), now); !ok {
			t.Fatal("invalidating one key dropped another digest")
		}
	}
	c.Purge()
	if c.Len() != 0 {
		t.Fatalf("Len %d after Purge", c.Len())
	}
}

// UsedSince reports the last use of every key, to the second, including
// keys that left the cache since the previous call (evicted, swept,
// invalidated or purged), so that last_used_at is not lost; each retired
// use is reported once.
func TestKeyCacheUsedSince(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	ctx := context.Background()
	c := NewKeyCache(f.source, KeyCacheOptions{TTL: time.Minute, MaxEntries: 2})
	t0 := time.Now().Truncate(time.Second)
	use := func(name string, at time.Time) {
		t.Helper()
		e, err := c.Load(ctx, apikey.DigestOf(f.keys[name]), at)
		if err != nil {
			t.Fatal(err)
		}
		e.MarkUsed(at)
	}
	use("live", t0)
	use("live", t0.Add(2*time.Second))
	use("test", t0.Add(time.Second))
	got := c.UsedSince(t0)
	if len(got) != 2 || !got[f.records["live"].ID].Equal(t0.Add(2*time.Second)) || !got[f.records["test"].ID].Equal(t0.Add(time.Second)) {
		t.Fatalf("UsedSince = %v", got)
	}
	// Uses before since are not reported.
	if got := c.UsedSince(t0.Add(2 * time.Second)); len(got) != 1 || got[f.records["live"].ID].IsZero() {
		t.Fatalf("UsedSince(t0+2s) = %v", got)
	}

	// A third key evicts one of the two (MaxEntries 2); its use is kept.
	use("admin", t0.Add(3*time.Second))
	if c.Len() != 2 {
		t.Fatalf("Len %d", c.Len())
	}
	got = c.UsedSince(t0)
	for _, name := range []string{"live", "test", "admin"} {
		if got[f.records[name].ID].IsZero() {
			t.Fatalf("UsedSince after an eviction lost %s: %v", name, got)
		}
	}
	// The evicted key's use was reported once; the cached ones' are kept
	// when they are invalidated or purged.
	cached := map[string]bool{}
	for _, name := range []string{"live", "test", "admin"} {
		if _, ok := c.Cached(apikey.DigestOf(f.keys[name]), t0.Add(3*time.Second)); ok {
			cached[f.records[name].ID] = true
		}
	}
	if !cached[f.records["admin"].ID] || len(cached) != 2 {
		t.Fatalf("cached after the eviction: %v", cached)
	}
	c.Invalidate(f.records["admin"].ID)
	c.Purge()
	got = c.UsedSince(t0)
	if len(got) != 2 {
		t.Fatalf("UsedSince after Invalidate and Purge = %v", got)
	}
	for id := range got {
		if !cached[id] {
			t.Fatalf("UsedSince after Invalidate and Purge reported %s again: %v", id, got)
		}
	}
	if got := c.UsedSince(t0); len(got) != 0 {
		t.Fatalf("retired uses reported twice: %v", got)
	}
	// Swept entries too.
	use("admin-ro", t0)
	c.Sweep(t0.Add(time.Minute))
	if c.Len() != 0 {
		t.Fatalf("Len %d after Sweep", c.Len())
	}
	if got := c.UsedSince(t0); len(got) != 1 || !got[f.records["admin-ro"].ID].Equal(t0) {
		t.Fatalf("UsedSince after Sweep = %v", got)
	}
}

// The cache counts a request's hit or miss where the request asks first
// (Cached), and each failed lookup of the source once; SetMetrics(nil)
// stops it.
func TestKeyCacheMetrics(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	src := &switchSource{KeySource: f.svc.Keys}
	c := NewKeyCache(src, KeyCacheOptions{})
	m := newTestMetrics()
	c.SetMetrics(m.cacheMetrics)
	now := time.Now()
	d := apikey.DigestOf(f.keys["live"])
	c.Cached(d, now)
	src.fail.Store(true)
	if _, err := c.Load(context.Background(), d, now); err == nil {
		t.Fatal("a failed lookup succeeded")
	}
	src.fail.Store(false)
	if _, err := c.Load(context.Background(), d, now); err != nil {
		t.Fatal(err)
	}
	c.Cached(d, now)
	if m.hits.n.Load() != 1 || m.misses.n.Load() != 1 || m.lookupErrors.n.Load() != 1 {
		t.Fatalf("hits %d, misses %d, lookup errors %d; want 1 each", m.hits.n.Load(), m.misses.n.Load(), m.lookupErrors.n.Load())
	}
	// Partial metrics are fine: nil fields record nothing.
	c.SetMetrics(&KeyCacheMetrics{Hits: &m.hits})
	c.Cached(d, now)
	c.Cached(apikey.DigestOf("nope"), now)
	if m.hits.n.Load() != 2 || m.misses.n.Load() != 1 {
		t.Fatalf("partial metrics: hits %d, misses %d", m.hits.n.Load(), m.misses.n.Load())
	}
	c.SetMetrics(nil)
	c.Cached(d, now)
	if m.hits.n.Load() != 2 {
		t.Fatal("counted with metrics off")
	}
}

package edge

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/internal/feedcache"
)

// KeySource finds key records by the digest of their secret. The keys
// service implements it over the store.
type KeySource interface {
	// LookupKey returns the record of the key one of whose current secrets
	// has this digest, or nil if there is none.
	LookupKey(ctx context.Context, digest apikey.Digest) (*apikey.Record, error)
}

// KeyCache keeps key records in process so that an authenticated request
// needs no storage round trip to know its key. It is a feedcache.Cache:
// entries live for a TTL as a safety net, and revocations and rotations
// evict them at once through [KeyCache.Invalidate], which the app calls on
// every change event. Unknown digests are cached too (for a shorter time),
// so a flood of forged but well-formed keys costs one lookup per distinct
// key, and the cache's size is capped so that such a flood cannot exhaust
// memory.
type KeyCache struct {
	cache *feedcache.Cache[apikey.Digest, *KeyEntry]

	// retired keeps the last use of entries dropped from the cache until
	// UsedSince reports it, so eviction does not lose last_used_at.
	retiredMu sync.Mutex
	retired   map[string]int64

	metrics atomic.Pointer[KeyCacheMetrics]
}

// KeyCacheMetrics are a KeyCache's instruments. Nil fields record nothing.
type KeyCacheMetrics struct {
	// Hits counts requests answered from the cache (an unknown digest
	// cached as such included); Misses those that were not.
	Hits, Misses Counter
	// LookupErrors counts lookups in the key source (storage) that failed.
	// Concurrent requests for one digest share a lookup, counted once.
	LookupErrors Counter
}

// SetMetrics makes the cache record into m from now on; nil stops it. It
// may be called at any time.
func (c *KeyCache) SetMetrics(m *KeyCacheMetrics) {
	if m == nil {
		c.metrics.Store(nil)
		return
	}
	f := *m
	for _, p := range []*Counter{&f.Hits, &f.Misses, &f.LookupErrors} {
		if *p == nil {
			*p = nopCounter{}
		}
	}
	c.metrics.Store(&f)
}

// KeyEntry is a cached answer for one digest.
type KeyEntry struct {
	// Key is the record, nil when no key has this digest.
	Key *apikey.Record
	// Principal is the key's, built once per cached record.
	Principal *authz.Principal
	// Bucket is the rate-limit bucket of the key: by key id, so that a
	// rotated key keeps its count.
	Bucket string
	// Limits, for a key with limits of its own (named limits, a quota),
	// are the buckets it spends from instead of Bucket; nil for the rest.
	Limits *KeyLimits
	// Boxed holds the key's id, type, project, environment and identity
	// (nil without one) as interface values, boxed once here rather than
	// on every request that hands them to later handlers (Caddy's
	// variables are a map[string]any).
	Boxed [5]any

	valid      bool
	validUntil time.Time // zero: no expiry
	lastUsed   atomic.Int64
	// merged caches the key's buckets joined with its identity's, as
	// checks returns them for a route without limits of its own, so that
	// a request of such a key does not build them anew.
	merged atomic.Pointer[mergedChecks]
}

// Admits reports whether the digest authenticates its key at time now.
func (e *KeyEntry) Admits(now time.Time) bool {
	return e.valid && (e.validUntil.IsZero() || now.Before(e.validUntil))
}

// ValidUntil is until when the digest authenticates its key: the zero
// time for no limit.
func (e *KeyEntry) ValidUntil() time.Time { return e.validUntil }

// MarkUsed notes that the key was used at now, for last_used_at.
func (e *KeyEntry) MarkUsed(now time.Time) {
	s := now.Unix()
	// Compare first: most requests fall in a second that is already
	// recorded, and a load is cheaper than a contended store.
	if e.lastUsed.Load() != s {
		e.lastUsed.Store(s)
	}
}

// KeyCacheOptions tune a KeyCache.
type KeyCacheOptions struct {
	TTL         time.Duration // default feedcache.DefaultTTL
	NegativeTTL time.Duration // default 10s
	MaxEntries  int           // default feedcache.DefaultMaxEntries
}

// DefaultNegativeTTL is how long a digest no key has is remembered as such.
const DefaultNegativeTTL = 10 * time.Second

// NewKeyCache returns a cache in front of source.
func NewKeyCache(source KeySource, opts KeyCacheOptions) *KeyCache {
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	c := &KeyCache{retired: make(map[string]int64)}
	load := func(ctx context.Context, d apikey.Digest, now time.Time) (*KeyEntry, error) {
		rec, err := source.LookupKey(ctx, d)
		if err != nil {
			if m := c.metrics.Load(); m != nil {
				m.LookupErrors.Inc()
			}
			return nil, err
		}
		return newEntry(rec, d, now), nil
	}
	c.cache = feedcache.New(load, feedcache.Options[*KeyEntry]{
		TTL: opts.TTL, NegativeTTL: opts.NegativeTTL, MaxEntries: opts.MaxEntries,
		Tag: func(e *KeyEntry) (string, bool) {
			if e.Key == nil {
				return "", false
			}
			return e.Key.ID, true
		},
		Negative: func(e *KeyEntry) bool { return e.Key == nil },
		Dropped:  c.retire,
	})
	return c
}

// retire keeps the last use of an entry leaving the cache.
func (c *KeyCache) retire(e *KeyEntry) {
	if e.Key == nil {
		return
	}
	s := e.lastUsed.Load()
	c.retiredMu.Lock()
	if s > c.retired[e.Key.ID] {
		c.retired[e.Key.ID] = s
	}
	c.retiredMu.Unlock()
}

// keyBuckets are the rate-limit buckets of rec's key (see KeyEntry).
func keyBuckets(rec *apikey.Record) (string, *KeyLimits) {
	return "key:" + rec.ID, keyLimitsOf(rec)
}

func newEntry(rec *apikey.Record, d apikey.Digest, now time.Time) *KeyEntry {
	e := &KeyEntry{Key: rec}
	if rec != nil {
		e.Principal = authz.ForKey(rec)
		e.Bucket, e.Limits = keyBuckets(rec)
		e.validUntil, e.valid = rec.ValidUntil(d.String(), now)
		e.Boxed = [5]any{rec.ID, rec.Type.String(), rec.Project, rec.Environment}
		if rec.Identity != "" {
			e.Boxed[4] = rec.Identity
		}
	}
	return e
}

// SetTTL changes the safety-net TTL (a config reload may change it).
func (c *KeyCache) SetTTL(ttl time.Duration) { c.cache.SetTTL(ttl) }

// Cached returns the fresh cached entry for digest, if there is one. It
// never touches storage. It is what a request asks first, so it counts the
// cache's hits and misses.
func (c *KeyCache) Cached(d apikey.Digest, now time.Time) (*KeyEntry, bool) {
	e, ok := c.cache.Cached(d, now)
	if m := c.metrics.Load(); m != nil {
		if ok {
			m.Hits.Inc()
		} else {
			m.Misses.Inc()
		}
	}
	return e, ok
}

// Load returns the entry for digest, from the cache or else from the
// source. Concurrent loads of one digest share a single lookup.
func (c *KeyCache) Load(ctx context.Context, d apikey.Digest, now time.Time) (*KeyEntry, error) {
	return c.cache.Get(ctx, d, now)
}

// Invalidate drops every cached secret of the key with this id, so that
// the next request re-reads it from storage.
func (c *KeyCache) Invalidate(id string) { c.cache.Invalidate(id) }

// Purge drops everything, for when change events may have been missed.
func (c *KeyCache) Purge() { c.cache.Purge() }

// Sweep drops entries that are no longer fresh, bounding memory to the keys
// seen within one TTL.
func (c *KeyCache) Sweep(now time.Time) { c.cache.Sweep(now) }

// Len returns the number of cached digests.
func (c *KeyCache) Len() int { return c.cache.Len() }

// UsedSince returns, for every key used at or after since, the last time it
// was used (to the second), including keys dropped from the cache since the
// previous call.
func (c *KeyCache) UsedSince(since time.Time) map[string]time.Time {
	cutoff := since.Unix()
	out := make(map[string]time.Time)
	note := func(id string, s int64) {
		if s >= cutoff && s > 0 {
			if t, ok := out[id]; !ok || t.Unix() < s {
				out[id] = time.Unix(s, 0).UTC()
			}
		}
	}
	c.cache.Each(func(e *KeyEntry) {
		if e.Key != nil {
			note(e.Key.ID, e.lastUsed.Load())
		}
	})
	c.retiredMu.Lock()
	for id, s := range c.retired {
		note(id, s)
	}
	clear(c.retired)
	c.retiredMu.Unlock()
	return out
}

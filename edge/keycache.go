package edge

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/flagbridge/flagbridge/apikey"
)

// KeySource finds key records by the digest of their secret. admin.Service
// implements it over the store.
type KeySource interface {
	// LookupKey returns the record of the key one of whose current secrets
	// has this digest, or nil if there is none.
	LookupKey(ctx context.Context, digest apikey.Digest) (*apikey.Record, error)
}

// KeyCache keeps key records in process so that an authenticated request
// needs no storage round trip to know its key. Entries live for a TTL as a
// safety net; revocations and rotations evict them at once through
// [KeyCache.Invalidate], which the app calls on every change event. Unknown
// digests are cached too (for a shorter time), so a flood of forged but
// well-formed keys costs one lookup per distinct key, and the cache's size
// is capped so that such a flood cannot exhaust memory.
type KeyCache struct {
	source      KeySource
	ttl         atomic.Int64 // time.Duration
	negativeTTL time.Duration
	maxEntries  int

	mu      sync.RWMutex
	entries map[apikey.Digest]*KeyEntry
	byID    map[string][]apikey.Digest
	// retiredUse keeps the last use of entries dropped from the cache
	// until UsedSince reports it, so eviction does not lose last_used_at.
	retiredUse map[string]int64
	// gen counts invalidations; a lookup that raced one does not cache
	// what it read, since it may predate the change.
	gen atomic.Uint64

	lookups singleflight.Group
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
	// Bucket is the rate-limit bucket of the key: by key id, so that a
	// rotated key keeps its count.
	Bucket string
	// Boxed holds the key's id, type, project and environment as interface
	// values, boxed once here rather than on every request that hands them
	// to later handlers (Caddy's variables are a map[string]any).
	Boxed [4]any

	valid      bool
	validUntil time.Time // zero: no expiry
	fetched    time.Time
	lastUsed   atomic.Int64 // Unix seconds
}

// Admits reports whether the digest authenticates its key at time now.
func (e *KeyEntry) Admits(now time.Time) bool {
	return e.valid && (e.validUntil.IsZero() || now.Before(e.validUntil))
}

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
	TTL         time.Duration // default 30s
	NegativeTTL time.Duration // default 10s
	MaxEntries  int           // default 100,000
}

// NewKeyCache returns a cache in front of source.
func NewKeyCache(source KeySource, opts KeyCacheOptions) *KeyCache {
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 10 * time.Second
	}
	if opts.NegativeTTL > opts.TTL {
		opts.NegativeTTL = opts.TTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100_000
	}
	c := &KeyCache{
		source:      source,
		negativeTTL: opts.NegativeTTL,
		maxEntries:  opts.MaxEntries,
		entries:     make(map[apikey.Digest]*KeyEntry),
		byID:        make(map[string][]apikey.Digest),
		retiredUse:  make(map[string]int64),
	}
	c.ttl.Store(int64(opts.TTL))
	return c
}

// SetTTL changes the safety-net TTL (a config reload may change it).
func (c *KeyCache) SetTTL(ttl time.Duration) {
	if ttl > 0 {
		c.ttl.Store(int64(ttl))
	}
}

// Cached returns the fresh cached entry for digest, if there is one. It
// never touches storage. It is what a request asks first, so it counts the
// cache's hits and misses.
func (c *KeyCache) Cached(d apikey.Digest, now time.Time) (*KeyEntry, bool) {
	e, ok := c.cached(d, now)
	if m := c.metrics.Load(); m != nil {
		if ok {
			m.Hits.Inc()
		} else {
			m.Misses.Inc()
		}
	}
	return e, ok
}

func (c *KeyCache) cached(d apikey.Digest, now time.Time) (*KeyEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[d]
	c.mu.RUnlock()
	if !ok || !c.fresh(e, now) {
		return nil, false
	}
	return e, true
}

func (c *KeyCache) fresh(e *KeyEntry, now time.Time) bool {
	ttl := time.Duration(c.ttl.Load())
	if e.Key == nil {
		ttl = c.negativeTTL
	}
	return now.Sub(e.fetched) < ttl
}

// Load returns the entry for digest, from the cache or else from the
// source. Concurrent loads of one digest share a single lookup.
func (c *KeyCache) Load(ctx context.Context, d apikey.Digest, now time.Time) (*KeyEntry, error) {
	if e, ok := c.cached(d, now); ok {
		return e, nil
	}
	// Only loads of one generation are shared: a request that starts after
	// an invalidation (a revocation, say) must not be handed the answer of
	// a lookup that may have read the record before the change.
	gen := c.gen.Load()
	var sfKey [len(d) + 8]byte
	copy(sfKey[:], d[:])
	binary.LittleEndian.PutUint64(sfKey[len(d):], gen)
	v, err, _ := c.lookups.Do(string(sfKey[:]), func() (any, error) {
		// The lookup is shared, so it must not die with the request that
		// happened to start it; it keeps that request's time bound only.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.lookupTimeout(ctx))
		defer cancel()
		rec, err := c.source.LookupKey(lctx, d)
		if err != nil {
			if m := c.metrics.Load(); m != nil {
				m.LookupErrors.Inc()
			}
			return nil, err
		}
		e := newEntry(rec, d, now)
		c.store(d, e, gen)
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*KeyEntry), nil
}

func newEntry(rec *apikey.Record, d apikey.Digest, now time.Time) *KeyEntry {
	e := &KeyEntry{Key: rec, fetched: now}
	if rec != nil {
		e.Bucket = "key:" + rec.ID
		e.validUntil, e.valid = rec.ValidUntil(d.String(), now)
		e.Boxed = [4]any{rec.ID, rec.Type.String(), rec.Project, rec.Environment}
	}
	return e
}

func (c *KeyCache) store(d apikey.Digest, e *KeyEntry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if old, ok := c.entries[d]; ok {
		c.unindex(d, old)
	} else if len(c.entries) >= c.maxEntries {
		// Evict an arbitrary entry: map iteration order is random, which
		// makes this cheap random eviction. A flood of distinct forged keys
		// thus churns the cache instead of growing it.
		for victim, ve := range c.entries {
			c.unindex(victim, ve)
			delete(c.entries, victim)
			break
		}
	}
	c.entries[d] = e
	if e.Key != nil {
		c.byID[e.Key.ID] = append(c.byID[e.Key.ID], d)
	}
}

// unindex removes d from byID and keeps its last use; c.mu must be held.
func (c *KeyCache) unindex(d apikey.Digest, e *KeyEntry) {
	if e.Key == nil {
		return
	}
	if s := e.lastUsed.Load(); s > c.retiredUse[e.Key.ID] {
		c.retiredUse[e.Key.ID] = s
	}
	ds := c.byID[e.Key.ID]
	for i, x := range ds {
		if x == d {
			ds = append(ds[:i], ds[i+1:]...)
			break
		}
	}
	if len(ds) == 0 {
		delete(c.byID, e.Key.ID)
	} else {
		c.byID[e.Key.ID] = ds
	}
}

// lookupTimeout is what is left of ctx's deadline, or 2s without one.
func (c *KeyCache) lookupTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return 2 * time.Second
}

// Invalidate drops every cached secret of the key with this id, so that
// the next request re-reads it from storage.
func (c *KeyCache) Invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	for _, d := range c.byID[id] {
		if e, ok := c.entries[d]; ok {
			c.unindex(d, e)
			delete(c.entries, d)
		}
	}
}

// Purge drops everything, for when change events may have been missed.
func (c *KeyCache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	for d, e := range c.entries {
		c.unindex(d, e)
	}
	clear(c.entries)
	clear(c.byID)
}

// Sweep drops entries that are no longer fresh, bounding memory to the keys
// seen within one TTL.
func (c *KeyCache) Sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, e := range c.entries {
		if !c.fresh(e, now) {
			c.unindex(d, e)
			delete(c.entries, d)
		}
	}
}

// Len returns the number of cached digests.
func (c *KeyCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

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
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.Key != nil {
			note(e.Key.ID, e.lastUsed.Load())
		}
	}
	for id, s := range c.retiredUse {
		note(id, s)
	}
	clear(c.retiredUse)
	return out
}

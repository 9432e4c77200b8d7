// Package feedcache is the one in-process cache of records that the change
// feed keeps current: the edge's key records and the compiled flag sets.
// Entries live for a TTL as a safety net; a change event evicts them at
// once by the tag it names ([Cache.Invalidate]), and a possible loss of
// events empties the cache ([Cache.Purge]).
//
// Loads are shared: concurrent misses of one key make one load. A load
// that raced an invalidation is not cached, since it may have read the
// record before the change, and only loads of one generation are shared,
// so that a request starting after a change is never handed an answer
// read before it.
package feedcache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of [Options].
const (
	DefaultTTL         = 30 * time.Second
	DefaultLoadTimeout = 5 * time.Second
	DefaultMaxEntries  = 100_000
)

// Options tune a Cache. The zero value of a field is its default.
type Options[V any] struct {
	// TTL bounds how long an entry is trusted without hearing of a change.
	TTL time.Duration
	// NegativeTTL, for entries Negative reports, is shorter: a record that
	// did not exist may be created any moment (default: TTL).
	NegativeTTL time.Duration
	// MaxEntries caps the cache; past it, an arbitrary entry makes room,
	// so that a flood of distinct keys churns the cache instead of growing
	// it.
	MaxEntries int
	// LoadTimeout bounds a shared load started by a caller without a
	// deadline; one with a deadline lends it to the load.
	LoadTimeout time.Duration
	// Tag returns the name change events use for a value (a key's id), if
	// it has one.
	Tag func(V) (string, bool)
	// Negative reports a value that records an absence.
	Negative func(V) bool
	// Dropped, if set, is called (with the cache locked) with every value
	// that leaves the cache, so that a wrapper can keep what it tracked.
	Dropped func(V)
}

// Cache maps keys to values loaded on a miss.
type Cache[K comparable, V any] struct {
	load        func(context.Context, K, time.Time) (V, error)
	opts        Options[V]
	ttl         atomic.Int64 // time.Duration
	negativeTTL time.Duration

	mu      sync.RWMutex
	entries map[K]*entry[V]
	byTag   map[string][]K
	// gen counts invalidations; see the package comment.
	gen   atomic.Uint64
	loads singleflight.Group
}

type entry[V any] struct {
	value   V
	fetched time.Time
}

// New returns a cache that loads missing keys with load, which is told the
// time of the Get that asked.
func New[K comparable, V any](load func(context.Context, K, time.Time) (V, error), opts Options[V]) *Cache[K, V] {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.NegativeTTL <= 0 || opts.NegativeTTL > opts.TTL {
		opts.NegativeTTL = opts.TTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = DefaultLoadTimeout
	}
	c := &Cache[K, V]{
		load: load, opts: opts, negativeTTL: opts.NegativeTTL,
		entries: make(map[K]*entry[V]), byTag: make(map[string][]K),
	}
	c.ttl.Store(int64(opts.TTL))
	return c
}

// SetTTL changes the TTL (a config reload may); non-positive is ignored.
func (c *Cache[K, V]) SetTTL(ttl time.Duration) {
	if ttl > 0 {
		c.ttl.Store(int64(ttl))
	}
}

func (c *Cache[K, V]) fresh(e *entry[V], now time.Time) bool {
	ttl := time.Duration(c.ttl.Load())
	if c.opts.Negative != nil && c.opts.Negative(e.value) {
		ttl = min(ttl, c.negativeTTL)
	}
	return now.Sub(e.fetched) < ttl
}

// Cached returns the fresh cached value of k, if there is one. It never
// loads.
func (c *Cache[K, V]) Cached(k K, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !c.fresh(e, now) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Get returns the value of k, from the cache or else loaded. Concurrent
// loads of one key (and one generation) share a single load.
func (c *Cache[K, V]) Get(ctx context.Context, k K, now time.Time) (V, error) {
	if v, ok := c.Cached(k, now); ok {
		return v, nil
	}
	gen := c.gen.Load()
	v, err, _ := c.loads.Do(fmt.Sprint(k, "\x00", gen), func() (any, error) {
		// The load is shared, so it must not die with the request that
		// happened to start it; it keeps that request's deadline only.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTimeout(ctx))
		defer cancel()
		v, err := c.load(lctx, k, now)
		if err != nil {
			return nil, err
		}
		c.store(k, v, now, gen)
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
}

// loadTimeout is what is left of ctx's deadline, or LoadTimeout without
// one.
func (c *Cache[K, V]) loadTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return c.opts.LoadTimeout
}

func (c *Cache[K, V]) store(k K, v V, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if old, ok := c.entries[k]; ok {
		c.unindex(k, old)
	} else if len(c.entries) >= c.opts.MaxEntries {
		// Map iteration order is random: this evicts a random entry.
		for victim, ve := range c.entries {
			c.unindex(victim, ve)
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = &entry[V]{value: v, fetched: now}
	if tag, ok := c.tag(v); ok {
		c.byTag[tag] = append(c.byTag[tag], k)
	}
}

func (c *Cache[K, V]) tag(v V) (string, bool) {
	if c.opts.Tag == nil {
		return "", false
	}
	return c.opts.Tag(v)
}

// unindex forgets k's tag and reports the value dropped; c.mu must be held.
func (c *Cache[K, V]) unindex(k K, e *entry[V]) {
	if c.opts.Dropped != nil {
		c.opts.Dropped(e.value)
	}
	tag, ok := c.tag(e.value)
	if !ok {
		return
	}
	ks := c.byTag[tag]
	for i, x := range ks {
		if x == k {
			ks = append(ks[:i], ks[i+1:]...)
			break
		}
	}
	if len(ks) == 0 {
		delete(c.byTag, tag)
	} else {
		c.byTag[tag] = ks
	}
}

// Invalidate drops every entry whose value has this tag, so that the next
// Get loads it again.
func (c *Cache[K, V]) Invalidate(tag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	// unindex shortens c.byTag[tag] in place as it goes, so iterate over
	// a copy: ranging over the shrinking slice itself skips entries.
	for _, k := range slices.Clone(c.byTag[tag]) {
		if e, ok := c.entries[k]; ok {
			c.unindex(k, e)
			delete(c.entries, k)
		}
	}
}

// Purge drops everything, for when change events may have been missed.
func (c *Cache[K, V]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	for k, e := range c.entries {
		c.unindex(k, e)
	}
	clear(c.entries)
	clear(c.byTag)
}

// Sweep drops entries that are no longer fresh, bounding memory to what
// was used within one TTL.
func (c *Cache[K, V]) Sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if !c.fresh(e, now) {
			c.unindex(k, e)
			delete(c.entries, k)
		}
	}
}

// Len returns the number of cached entries.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Each calls fn with every cached value, with the cache locked.
func (c *Cache[K, V]) Each(fn func(V)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.entries {
		fn(e.value)
	}
}

package evaluation

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/evaluator"
)

// FlagSource reads stored flag sets; admin.Service implements it.
type FlagSource interface {
	ReadFlagSet(ctx context.Context, ref admin.FlagSetRef) (*admin.FlagSet, error)
}

// loadTimeout bounds one shared load of a flag set.
const loadTimeout = 5 * time.Second

// Compiled is a flag set ready to evaluate, with the version it was
// compiled from. It is immutable.
type Compiled struct {
	Ref     admin.FlagSetRef
	Version int64
	Set     *evaluator.FlagSet
	fetched time.Time
}

// Registry keeps the compiled flag set of every environment in use.
type Registry struct {
	source FlagSource
	ttl    time.Duration
	now    func() time.Time

	mu   sync.RWMutex
	sets map[string]*Compiled // by FlagSetRef.String()
	// gen counts invalidations; a load that raced one is not cached.
	gen   atomic.Uint64
	loads singleflight.Group
}

// NewRegistry returns a registry over source. ttl (default 30s) bounds how
// long a set is trusted without hearing of a change.
func NewRegistry(source FlagSource, ttl time.Duration) *Registry {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &Registry{source: source, ttl: ttl, now: time.Now, sets: make(map[string]*Compiled)}
}

// Get returns the compiled set of ref, compiling it on first use or after
// a change.
func (r *Registry) Get(ctx context.Context, ref admin.FlagSetRef) (*Compiled, error) {
	key := ref.String()
	now := r.now()
	r.mu.RLock()
	c, ok := r.sets[key]
	r.mu.RUnlock()
	if ok && now.Sub(c.fetched) < r.ttl {
		return c, nil
	}
	// Only Gets of one generation share a load: a Get that starts after an
	// invalidation must not be handed a load that may have read the set
	// before the change, so the generation is part of the load's key.
	gen := r.gen.Load()
	v, err, _ := r.loads.Do(key+"\x00"+strconv.FormatUint(gen, 10), func() (any, error) {
		// The load is shared, so it must not die with the request that
		// happened to start it; it gets its own bound instead.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		fs, err := r.source.ReadFlagSet(lctx, ref)
		if err != nil {
			return nil, err
		}
		set, err := evaluator.Compile(fs.Document)
		if err != nil {
			// Stored sets were compiled before they were stored; failing
			// here means the evaluator changed under them.
			return nil, err
		}
		c := &Compiled{Ref: ref, Version: fs.Version, Set: set, fetched: now}
		r.mu.Lock()
		if r.gen.Load() == gen {
			r.sets[key] = c
		}
		r.mu.Unlock()
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Compiled), nil
}

// Invalidate drops the set a change event names ("org/project/env").
func (r *Registry) Invalidate(ref string) {
	r.mu.Lock()
	r.gen.Add(1)
	delete(r.sets, ref)
	r.mu.Unlock()
}

// Purge drops every set, for when change events may have been missed.
func (r *Registry) Purge() {
	r.mu.Lock()
	r.gen.Add(1)
	clear(r.sets)
	r.mu.Unlock()
}

// Sweep drops sets not refreshed within the TTL, so that environments
// nobody evaluates any more do not stay in memory.
func (r *Registry) Sweep() {
	now := r.now()
	r.mu.Lock()
	for k, c := range r.sets {
		if now.Sub(c.fetched) >= r.ttl {
			delete(r.sets, k)
		}
	}
	r.mu.Unlock()
}

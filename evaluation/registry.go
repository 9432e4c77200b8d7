package evaluation

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/evaluator"
	"github.com/flagbridge/flagbridge/internal/feedcache"
)

// FlagSource reads stored flag sets; flags.Service implements it.
type FlagSource interface {
	ReadFlagSet(ctx context.Context, ref flags.Ref) (*flags.FlagSet, error)
}

// Compiled is a flag set ready to evaluate, with the version it was
// compiled from. It is immutable.
type Compiled struct {
	Ref     flags.Ref
	Version int64
	// VersionText is Version in decimal, rendered once for the header
	// every evaluation answer carries.
	VersionText string
	Set         *evaluator.FlagSet
	// clientKeys are the flags a client key may evaluate (see
	// flags.ClientVisible), in key order, and client the same as a set.
	clientKeys []string
	client     map[string]bool
}

// compiled wraps a compiled set with what is worked out once per version.
func compiled(ref flags.Ref, version int64, set *evaluator.FlagSet) *Compiled {
	c := &Compiled{Ref: ref, Version: version, VersionText: strconv.FormatInt(version, 10), Set: set, client: map[string]bool{}}
	for _, k := range set.Keys() {
		if md, _ := set.Metadata(k); flags.ClientVisible(md) {
			c.clientKeys = append(c.clientKeys, k)
			c.client[k] = true
		}
	}
	return c
}

// ClientVisible reports whether a client key may evaluate flag.
func (c *Compiled) ClientVisible(flag string) bool { return c.client[flag] }

// Registry keeps the compiled flag set of every environment in use, in a
// feedcache.Cache tagged by the change-feed payload that names the set.
type Registry struct {
	cache *feedcache.Cache[flags.Ref, *Compiled]
	now   func() time.Time
	// forced is when AtLeast last read a set again, by ref.
	forced sync.Map
}

// forcedReadEvery bounds how often AtLeast reads one set again: a client
// naming a version that does not exist cannot make every request a read
// and a compile.
const forcedReadEvery = 250 * time.Millisecond

// NewRegistry returns a registry over source. ttl (default
// feedcache.DefaultTTL) bounds how long a set is trusted without hearing of
// a change.
func NewRegistry(source FlagSource, ttl time.Duration) *Registry {
	load := func(ctx context.Context, ref flags.Ref, _ time.Time) (*Compiled, error) {
		fs, err := source.ReadFlagSet(ctx, ref)
		if err != nil {
			return nil, err
		}
		set, err := evaluator.Compile(fs.Document)
		if err != nil {
			// Stored sets were compiled before they were stored; failing
			// here means the evaluator changed under them.
			return nil, err
		}
		return compiled(ref, fs.Version, set), nil
	}
	return &Registry{
		cache: feedcache.New(load, feedcache.Options[*Compiled]{
			TTL: ttl,
			Tag: func(c *Compiled) (string, bool) { return c.Ref.String(), true },
		}),
		now: time.Now,
	}
}

// Get returns the compiled set of ref, compiling it on first use or after
// a change.
func (r *Registry) Get(ctx context.Context, ref flags.Ref) (*Compiled, error) {
	return r.cache.Get(ctx, ref, r.now())
}

// AtLeast is Get for version min or a newer one: an instance that has not
// yet heard of that version through the change feed reads the set again
// from storage, at most once per forcedReadEvery for one set (a version
// that does not exist yet gets the newest there is).
func (r *Registry) AtLeast(ctx context.Context, ref flags.Ref, min int64) (*Compiled, error) {
	c, err := r.Get(ctx, ref)
	if err != nil || c.Version >= min {
		return c, err
	}
	now := r.now()
	key := ref.String()
	if last, ok := r.forced.Load(key); ok && now.Sub(last.(time.Time)) < forcedReadEvery {
		return c, nil
	}
	r.forced.Store(key, now)
	r.cache.Invalidate(key)
	return r.Get(ctx, ref)
}

// Invalidate drops the set a change event names ("org/project/env").
func (r *Registry) Invalidate(ref string) { r.cache.Invalidate(ref) }

// Purge drops every set, for when change events may have been missed.
func (r *Registry) Purge() { r.cache.Purge() }

// Sweep drops sets not refreshed within the TTL, so that environments
// nobody evaluates any more do not stay in memory.
func (r *Registry) Sweep() { r.cache.Sweep(r.now()) }

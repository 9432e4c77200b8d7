package feedcache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/feedcache"
)

// val is what the test caches: a record as one load read it.
type val struct {
	key     string
	tag     string // "" for a record change events do not name
	version int
	missing bool // records an absence (the cache's Negative)
}

// gate holds one load until released, and says when it has read the
// record.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

// source is the storage behind a cache: records the test changes, a count
// of loads by key, and an optional gate for the next load.
type source struct {
	mu      sync.Mutex
	recs    map[string]val
	loads   map[string]int
	fail    error
	next    *gate
	lastCtx context.Context
}

func newSource() *source {
	return &source{recs: map[string]val{}, loads: map[string]int{}}
}

// set stores a record (a new version of it).
func (s *source) set(key, tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.recs[key]
	s.recs[key] = val{key: key, tag: tag, version: v.version + 1}
}

// arm makes the next load wait, after reading its record, until the gate
// is released.
func (s *source) arm() *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.next = g
	s.mu.Unlock()
	return g
}

func (s *source) load(ctx context.Context, key string, _ time.Time) (*val, error) {
	s.mu.Lock()
	s.loads[key]++
	s.lastCtx = ctx
	v, ok := s.recs[key]
	g := s.next
	s.next = nil
	err := s.fail
	s.mu.Unlock()
	if g != nil {
		close(g.entered)
		<-g.release
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return &val{key: key, missing: true}, nil
	}
	return &v, nil
}

func (s *source) loadsOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads[key]
}

func (s *source) ctx() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastCtx
}

// options are the cache's hooks as the edge and the registry use them: a
// tag from the record, absences as negative entries, and a record of every
// value dropped.
type options struct {
	mu      sync.Mutex
	dropped []string // "key@version" of every dropped value
}

func (o *options) of(opts feedcache.Options[*val]) feedcache.Options[*val] {
	opts.Tag = func(v *val) (string, bool) { return v.tag, v.tag != "" }
	opts.Negative = func(v *val) bool { return v.missing }
	opts.Dropped = func(v *val) {
		o.mu.Lock()
		o.dropped = append(o.dropped, fmt.Sprintf("%s@%d", v.key, v.version))
		o.mu.Unlock()
	}
	return opts
}

// takeDropped returns the values dropped since the last call, sorted.
func (o *options) takeDropped() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := o.dropped
	o.dropped = nil
	slices.Sort(d)
	return d
}

type fixture struct {
	src   *source
	hooks *options
	cache *feedcache.Cache[string, *val]
}

func newCache(opts feedcache.Options[*val]) *fixture {
	f := &fixture{src: newSource(), hooks: &options{}}
	f.cache = feedcache.New(f.src.load, f.hooks.of(opts))
	return f
}

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// get is Get, failing the test on error.
func (f *fixture) get(t *testing.T, key string, now time.Time) *val {
	t.Helper()
	v, err := f.cache.Get(context.Background(), key, now)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return v
}

// wantVersion fails unless Get answers version v of key.
func (f *fixture) wantVersion(t *testing.T, key string, now time.Time, v int) {
	t.Helper()
	if got := f.get(t, key, now); got.version != v {
		t.Fatalf("Get(%s) = version %d, want %d", key, got.version, v)
	}
}

func (f *fixture) wantLoads(t *testing.T, key string, n int) {
	t.Helper()
	if got := f.src.loadsOf(key); got != n {
		t.Fatalf("%d loads of %s, want %d", got, key, n)
	}
}

// Concurrent misses of one key make one load, whose value every one of
// them gets; a load of another key meanwhile goes its own way.
func TestConcurrentMissesLoadOnce(t *testing.T) {
	f := newCache(feedcache.Options[*val]{})
	f.src.set("a", "a")
	f.src.set("b", "b")
	g := f.src.arm()

	const n = 32
	results := make(chan *val, n)
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		go func() {
			started.Done()
			v, err := f.cache.Get(context.Background(), "a", t0)
			if err != nil {
				t.Error(err)
			}
			results <- v
		}()
	}
	<-g.entered
	started.Wait()
	// The held load has not answered: every Get that started is waiting,
	// joined to it or about to join it. Another key is not held up.
	f.wantVersion(t, "b", t0, 1)
	time.Sleep(50 * time.Millisecond) // let the last goroutines reach Get
	close(g.release)
	var first *val
	for range n {
		v := <-results
		if first == nil {
			first = v
		}
		if v != first {
			t.Fatal("concurrent misses got different values: they did not share one load")
		}
	}
	f.wantLoads(t, "a", 1)
	f.wantLoads(t, "b", 1)
	if first.version != 1 {
		t.Fatalf("version %d", first.version)
	}
	// Once loaded, the value is served from memory.
	if f.get(t, "a", t0) != first {
		t.Fatal("a hit loaded again")
	}
	f.wantLoads(t, "a", 1)
}

// A value is trusted for the TTL without an event, and loaded again once
// the TTL has passed; the default TTL is 30 seconds, and SetTTL changes it
// for the entries already cached too.
func TestTTL(t *testing.T) {
	f := newCache(feedcache.Options[*val]{TTL: time.Minute})
	f.src.set("a", "a")
	f.wantVersion(t, "a", t0, 1)
	f.src.set("a", "a") // no event: only the TTL brings it in
	f.wantVersion(t, "a", t0.Add(time.Minute-time.Nanosecond), 1)
	if _, ok := f.cache.Cached("a", t0.Add(time.Minute-time.Nanosecond)); !ok {
		t.Fatal("Cached missed a fresh entry")
	}
	if _, ok := f.cache.Cached("a", t0.Add(time.Minute)); ok {
		t.Fatal("Cached answered an entry as old as the TTL")
	}
	f.wantLoads(t, "a", 1)
	f.wantVersion(t, "a", t0.Add(time.Minute), 2)
	f.wantLoads(t, "a", 2)
	// The reloaded entry counts from the time of the Get that loaded it.
	f.wantVersion(t, "a", t0.Add(2*time.Minute-time.Nanosecond), 2)
	f.wantLoads(t, "a", 2)

	// A shorter TTL applies to what is cached already; a non-positive one
	// is ignored.
	f.cache.SetTTL(10 * time.Second)
	f.cache.SetTTL(0)
	f.cache.SetTTL(-time.Second)
	f.src.set("a", "a")
	f.wantVersion(t, "a", t0.Add(time.Minute+10*time.Second-time.Nanosecond), 2)
	f.wantVersion(t, "a", t0.Add(time.Minute+10*time.Second), 3)

	def := newCache(feedcache.Options[*val]{})
	def.src.set("a", "a")
	def.get(t, "a", t0)
	def.get(t, "a", t0.Add(feedcache.DefaultTTL-time.Nanosecond))
	def.wantLoads(t, "a", 1)
	def.get(t, "a", t0.Add(feedcache.DefaultTTL))
	def.wantLoads(t, "a", 2)
	if feedcache.DefaultTTL != 30*time.Second {
		t.Fatalf("DefaultTTL = %v, want the documented 30s", feedcache.DefaultTTL)
	}
}

// A value that records an absence lives for the shorter NegativeTTL: the
// record may be created any moment. Without one, or with one longer than
// the TTL, the TTL applies.
func TestNegativeTTL(t *testing.T) {
	f := newCache(feedcache.Options[*val]{TTL: time.Minute, NegativeTTL: 5 * time.Second})
	f.src.set("known", "k")
	if v := f.get(t, "unknown", t0); !v.missing {
		t.Fatalf("unknown key: %+v", v)
	}
	f.get(t, "known", t0)
	f.get(t, "unknown", t0.Add(5*time.Second-time.Nanosecond))
	f.wantLoads(t, "unknown", 1)
	f.src.set("unknown", "u") // created meanwhile
	f.wantVersion(t, "unknown", t0.Add(5*time.Second), 1)
	f.wantLoads(t, "unknown", 2)
	// The record that exists keeps the full TTL.
	f.get(t, "known", t0.Add(time.Minute-time.Nanosecond))
	f.wantLoads(t, "known", 1)

	for name, opts := range map[string]feedcache.Options[*val]{
		"default":          {TTL: 20 * time.Second},
		"longer than TTL":  {TTL: 20 * time.Second, NegativeTTL: time.Hour},
		"negative setting": {TTL: 20 * time.Second, NegativeTTL: -time.Second},
	} {
		c := newCache(opts)
		c.get(t, "gone", t0)
		c.get(t, "gone", t0.Add(20*time.Second-time.Nanosecond))
		if n := c.src.loadsOf("gone"); n != 1 {
			t.Errorf("%s: negative entry reloaded before the TTL (%d loads)", name, n)
		}
		c.get(t, "gone", t0.Add(20*time.Second))
		if n := c.src.loadsOf("gone"); n != 2 {
			t.Errorf("%s: negative entry outlived the TTL (%d loads)", name, n)
		}
	}

	// A TTL set shorter than the negative TTL bounds negative entries too.
	s := newCache(feedcache.Options[*val]{TTL: time.Minute, NegativeTTL: 30 * time.Second})
	s.get(t, "gone", t0)
	s.cache.SetTTL(time.Second)
	s.get(t, "gone", t0.Add(time.Second))
	s.wantLoads(t, "gone", 2)
}

// Invalidate drops every entry whose value has the tag, however many there
// are, and nothing else.
func TestInvalidateByTag(t *testing.T) {
	f := newCache(feedcache.Options[*val]{TTL: time.Hour})
	for _, k := range []string{"a1", "a2", "a3", "a4"} {
		f.src.set(k, "a")
	}
	f.src.set("b1", "b")
	f.src.set("untagged", "")
	for _, k := range []string{"a1", "a2", "a3", "a4", "b1", "untagged", "missing"} {
		f.get(t, k, t0)
	}
	if n := f.cache.Len(); n != 7 {
		t.Fatalf("Len %d, want 7", n)
	}
	for _, k := range []string{"a1", "a2", "a3", "a4", "b1", "untagged"} {
		f.src.set(k, f.src.recs[k].tag)
	}
	f.hooks.takeDropped()

	f.cache.Invalidate("a")
	if got, want := f.hooks.takeDropped(), []string{"a1@1", "a2@1", "a3@1", "a4@1"}; !slices.Equal(got, want) {
		t.Fatalf("Invalidate(a) dropped %v, want %v", got, want)
	}
	for _, k := range []string{"a1", "a2", "a3", "a4"} {
		if _, ok := f.cache.Cached(k, t0); ok {
			t.Errorf("%s survived the invalidation of its tag", k)
		}
	}
	if n := f.cache.Len(); n != 3 {
		t.Fatalf("Len %d after invalidating a, want 3", n)
	}
	for _, k := range []string{"a1", "a2", "a3", "a4"} {
		f.wantVersion(t, k, t0, 2)
		f.wantLoads(t, k, 2)
	}
	// Other tags, untagged values and negative entries stay.
	f.cache.Invalidate("nobody")
	f.cache.Invalidate("")
	for _, k := range []string{"b1", "untagged"} {
		f.wantVersion(t, k, t0, 1)
		f.wantLoads(t, k, 1)
	}
	f.get(t, "missing", t0)
	f.wantLoads(t, "missing", 1)
	if d := f.hooks.takeDropped(); len(d) != 0 {
		t.Fatalf("invalidating other tags dropped %v", d)
	}

	// The reloaded entries are indexed again: the next event finds them.
	f.cache.Invalidate("a")
	if got := f.hooks.takeDropped(); len(got) != 4 {
		t.Fatalf("second Invalidate(a) dropped %v", got)
	}
	f.cache.Invalidate("b")
	if got := f.hooks.takeDropped(); !slices.Equal(got, []string{"b1@1"}) {
		t.Fatalf("Invalidate(b) dropped %v", got)
	}
	f.wantVersion(t, "b1", t0, 2)
}

// A failed load answers its error and caches nothing: the next Get loads
// again.
func TestErrorsAreNotCached(t *testing.T) {
	f := newCache(feedcache.Options[*val]{})
	f.src.set("a", "a")
	boom := errors.New("storage down")
	f.src.fail = boom
	if _, err := f.cache.Get(context.Background(), "a", t0); !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the load's error", err)
	}
	if _, ok := f.cache.Cached("a", t0); ok || f.cache.Len() != 0 {
		t.Fatal("a failed load was cached")
	}
	f.src.mu.Lock()
	f.src.fail = nil
	f.src.mu.Unlock()
	f.wantVersion(t, "a", t0, 1)
	f.wantLoads(t, "a", 2)
}

// A load that read its record before an invalidation (or a purge) must not
// leave that stale value in the cache, nor hand it to a Get that started
// after the invalidation; loads of other keys are unaffected.
func TestLoadRacingInvalidation(t *testing.T) {
	type result struct {
		v   *val
		err error
	}
	start := func(f *fixture, key string) chan result {
		ch := make(chan result, 1)
		go func() {
			v, err := f.cache.Get(context.Background(), key, t0)
			ch <- result{v, err}
		}()
		return ch
	}
	wait := func(t *testing.T, ch chan result) *val {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.v
		case <-time.After(10 * time.Second):
			t.Fatal("Get did not return within 10s")
		}
		return nil
	}
	entered := func(t *testing.T, g *gate) {
		t.Helper()
		select {
		case <-g.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the load never read the record")
		}
	}
	for _, purge := range []bool{false, true} {
		name := "invalidate"
		change := func(c *feedcache.Cache[string, *val]) { c.Invalidate("a") }
		if purge {
			name = "purge"
			change = func(c *feedcache.Cache[string, *val]) { c.Purge() }
		}
		t.Run(name+"/stale value not cached", func(t *testing.T) {
			f := newCache(feedcache.Options[*val]{TTL: time.Hour})
			f.src.set("a", "a")
			g := f.src.arm()
			slow := start(f, "a")
			entered(t, g) // the load holds version 1
			f.src.set("a", "a")
			change(f.cache)
			close(g.release)
			if v := wait(t, slow); v.version != 1 {
				t.Fatalf("the racing Get got version %d, want the 1 it read", v.version)
			}
			if _, ok := f.cache.Cached("a", t0); ok {
				t.Fatal("the value read before the change was cached")
			}
			f.wantVersion(t, "a", t0, 2)
			f.wantLoads(t, "a", 2)
		})
		t.Run(name+"/stale load not shared", func(t *testing.T) {
			f := newCache(feedcache.Options[*val]{TTL: time.Hour})
			f.src.set("a", "a")
			g := f.src.arm()
			slow := start(f, "a")
			entered(t, g)
			f.src.set("a", "a")
			change(f.cache)
			// A Get that starts after the change must load anew, not join
			// the load in flight. The slow load is released after a while
			// in any case, so that a Get that joined it fails the test
			// rather than hanging.
			fresh := start(f, "a")
			var v *val
			select {
			case r := <-fresh:
				if r.err != nil {
					t.Fatal(r.err)
				}
				v = r.v
			case <-time.After(2 * time.Second):
			}
			close(g.release)
			if v == nil {
				t.Fatal("a Get after the change waited for the load started before it")
			}
			if v.version != 2 {
				t.Fatalf("a Get after the change got version %d", v.version)
			}
			wait(t, slow)
			f.wantVersion(t, "a", t0, 2)
			f.wantLoads(t, "a", 2)
		})
	}
	t.Run("other keys unaffected", func(t *testing.T) {
		f := newCache(feedcache.Options[*val]{TTL: time.Hour})
		f.src.set("a", "a")
		f.src.set("b", "b")
		g := f.src.arm()
		slow := start(f, "a")
		entered(t, g)
		f.wantVersion(t, "b", t0, 1)
		close(g.release)
		if v := wait(t, slow); v.version != 1 {
			t.Fatalf("version %d", v.version)
		}
		f.wantVersion(t, "a", t0, 1)
		f.wantVersion(t, "b", t0, 1)
		f.wantLoads(t, "a", 1)
		f.wantLoads(t, "b", 1)
	})
}

// Purge drops every entry, tagged or not, negative or not.
func TestPurge(t *testing.T) {
	f := newCache(feedcache.Options[*val]{TTL: time.Hour})
	f.src.set("a", "a")
	f.src.set("b", "")
	for _, k := range []string{"a", "b", "missing"} {
		f.get(t, k, t0)
	}
	f.src.set("a", "a")
	f.src.set("b", "")
	f.hooks.takeDropped()
	f.cache.Purge()
	if n := f.cache.Len(); n != 0 {
		t.Fatalf("Len %d after Purge", n)
	}
	if got, want := f.hooks.takeDropped(), []string{"a@1", "b@1", "missing@0"}; !slices.Equal(got, want) {
		t.Fatalf("Purge dropped %v, want %v", got, want)
	}
	f.wantVersion(t, "a", t0, 2)
	f.wantVersion(t, "b", t0, 2)
	f.get(t, "missing", t0)
	f.wantLoads(t, "missing", 2)
	// The tag index was emptied with the entries and filled again.
	f.cache.Invalidate("a")
	if got := f.hooks.takeDropped(); !slices.Equal(got, []string{"a@2"}) {
		t.Fatalf("Invalidate after Purge dropped %v", got)
	}
}

// Sweep drops the entries nobody refreshed within their TTL (the negative
// TTL for absences) and keeps the others, with their tags.
func TestSweep(t *testing.T) {
	f := newCache(feedcache.Options[*val]{TTL: 30 * time.Second, NegativeTTL: 5 * time.Second})
	f.src.set("old", "t")
	f.src.set("young", "t")
	f.get(t, "old", t0)
	f.get(t, "missing", t0.Add(10*time.Second))
	f.get(t, "young", t0.Add(20*time.Second))
	f.hooks.takeDropped()

	f.cache.Sweep(t0.Add(30*time.Second - time.Nanosecond))
	if got, want := f.hooks.takeDropped(), []string{"missing@0"}; !slices.Equal(got, want) {
		t.Fatalf("Sweep dropped %v, want %v", got, want)
	}
	f.cache.Sweep(t0.Add(30 * time.Second))
	if got, want := f.hooks.takeDropped(), []string{"old@1"}; !slices.Equal(got, want) {
		t.Fatalf("Sweep dropped %v, want %v", got, want)
	}
	if n := f.cache.Len(); n != 1 {
		t.Fatalf("Len %d after Sweep, want 1", n)
	}
	// What is kept is still served from memory and still found by its tag.
	f.get(t, "young", t0.Add(30*time.Second))
	f.wantLoads(t, "young", 1)
	f.cache.Invalidate("t")
	if got, want := f.hooks.takeDropped(), []string{"young@1"}; !slices.Equal(got, want) {
		t.Fatalf("Invalidate after Sweep dropped %v, want %v", got, want)
	}
	if n := f.cache.Len(); n != 0 {
		t.Fatalf("Len %d", n)
	}
}

// Past MaxEntries an entry makes room, so that a flood of distinct keys
// churns the cache instead of growing it; an evicted entry leaves the tag
// index and is reported to Dropped.
func TestMaxEntries(t *testing.T) {
	f := newCache(feedcache.Options[*val]{TTL: time.Hour, MaxEntries: 3})
	const n = 20
	for i := range n {
		k := fmt.Sprint("k", i)
		f.src.set(k, k)
		f.get(t, k, t0)
		if l := f.cache.Len(); l > 3 {
			t.Fatalf("Len %d past MaxEntries 3", l)
		}
	}
	if l := f.cache.Len(); l != 3 {
		t.Fatalf("Len %d, want 3", l)
	}
	dropped := f.hooks.takeDropped()
	if len(dropped) != n-3 {
		t.Fatalf("%d evictions reported, want %d", len(dropped), n-3)
	}
	// Every key is either cached or was reported dropped, never both.
	var cached []string
	for i := range n {
		k := fmt.Sprint("k", i)
		_, ok := f.cache.Cached(k, t0)
		if ok == slices.Contains(dropped, k+"@1") {
			t.Fatalf("%s: cached %v, reported dropped %v", k, ok, !ok)
		}
		if ok {
			cached = append(cached, k)
		}
	}
	// An evicted entry's tag names nothing any more; a cached one's still
	// names it.
	f.cache.Invalidate(dropped[0][:len(dropped[0])-2])
	if l := f.cache.Len(); l != 3 {
		t.Fatalf("invalidating an evicted key's tag changed Len to %d", l)
	}
	f.cache.Invalidate(cached[0])
	if l := f.cache.Len(); l != 2 {
		t.Fatalf("invalidating a cached key's tag left Len %d", l)
	}
	// Reloading a key already cached replaces it in place: no eviction.
	f.hooks.takeDropped()
	f.src.set(cached[1], cached[1])
	f.get(t, cached[1], t0.Add(time.Hour))
	if l := f.cache.Len(); l != 2 {
		t.Fatalf("Len %d after replacing an entry", l)
	}
	if got := f.hooks.takeDropped(); !slices.Equal(got, []string{cached[1] + "@1"}) {
		t.Fatalf("replacing an entry dropped %v", got)
	}

	def := newCache(feedcache.Options[*val]{})
	for i := range feedcache.DefaultMaxEntries + 10 {
		def.cache.Get(context.Background(), fmt.Sprint(i), t0)
	}
	if l := def.cache.Len(); l != feedcache.DefaultMaxEntries {
		t.Fatalf("default cap: Len %d, want %d", l, feedcache.DefaultMaxEntries)
	}
}

// Dropped sees every value that leaves the cache, however it leaves:
// replaced after its TTL, invalidated, swept, evicted or purged; and
// nothing that stays. (One entry at most, so that the eviction is
// predictable.)
func TestDroppedHook(t *testing.T) {
	f := newCache(feedcache.Options[*val]{TTL: time.Minute, MaxEntries: 1})
	for _, k := range []string{"a", "b", "c", "d"} {
		f.src.set(k, k)
	}
	f.get(t, "a", t0)
	f.get(t, "a", t0.Add(time.Second)) // a hit
	f.cache.Cached("a", t0)
	f.cache.Each(func(*val) {})
	if d := f.hooks.takeDropped(); len(d) != 0 {
		t.Fatalf("hits dropped %v", d)
	}
	steps := []struct {
		what string
		do   func()
		want []string
	}{
		{"replaced after the TTL", func() { f.src.set("a", "a"); f.get(t, "a", t0.Add(time.Minute)) }, []string{"a@1"}},
		{"invalidated", func() { f.cache.Invalidate("a") }, []string{"a@2"}},
		{"swept", func() { f.get(t, "b", t0); f.cache.Sweep(t0.Add(time.Minute)) }, []string{"b@1"}},
		{"evicted", func() { f.get(t, "c", t0); f.get(t, "d", t0) }, []string{"c@1"}},
		{"purged", func() { f.cache.Purge() }, []string{"d@1"}},
	}
	for _, s := range steps {
		s.do()
		if got := f.hooks.takeDropped(); !slices.Equal(got, s.want) {
			t.Fatalf("%s: dropped %v, want %v", s.what, got, s.want)
		}
	}
	if n := f.cache.Len(); n != 0 {
		t.Fatalf("Len %d", n)
	}
}

// A load is shared, so it must not die with the request that happened to
// start it: it keeps that request's deadline (and values), or LoadTimeout
// without one, but not its cancellation.
func TestLoadDeadline(t *testing.T) {
	type ctxKey struct{}
	f := newCache(feedcache.Options[*val]{LoadTimeout: 7 * time.Second})
	f.src.set("a", "a")

	// The caller's deadline.
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "v"), time.Hour)
	defer cancel()
	want, _ := ctx.Deadline()
	if _, err := f.cache.Get(ctx, "a", t0); err != nil {
		t.Fatal(err)
	}
	got, ok := f.src.ctx().Deadline()
	// The same deadline, give or take the moment it takes to lend it.
	if !ok || got.Sub(want) > 10*time.Millisecond || want.Sub(got) > 10*time.Millisecond {
		t.Fatalf("load deadline %v (set %v), want the caller's %v", got, ok, want)
	}
	if f.src.ctx().Value(ctxKey{}) != "v" {
		t.Fatal("the load lost the caller's values")
	}

	// LoadTimeout without one.
	before := time.Now()
	if _, err := f.cache.Get(context.Background(), "b", t0); err != nil {
		t.Fatal(err)
	}
	got, ok = f.src.ctx().Deadline()
	if !ok || got.Before(before.Add(7*time.Second)) || got.After(time.Now().Add(7*time.Second)) {
		t.Fatalf("load deadline %v (set %v), want LoadTimeout 7s from %v", got, ok, before)
	}
	d := newCache(feedcache.Options[*val]{})
	before = time.Now()
	d.get(t, "x", t0)
	got, _ = d.src.ctx().Deadline()
	if got.Before(before.Add(feedcache.DefaultLoadTimeout)) || got.After(time.Now().Add(feedcache.DefaultLoadTimeout)) {
		t.Fatalf("default load deadline %v from %v, want %v", got, before, feedcache.DefaultLoadTimeout)
	}

	// A caller whose deadline has passed lends the load almost nothing;
	// the load's own failure is its answer, and is not cached.
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	stuck := feedcache.New(func(ctx context.Context, k string, _ time.Time) (*val, error) {
		<-ctx.Done() // storage that does not answer
		return nil, ctx.Err()
	}, feedcache.Options[*val]{})
	start := time.Now()
	if _, err := stuck.Get(expired, "a", t0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("load past its deadline: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a load with an expired deadline ran %v", took)
	}
	if stuck.Len() != 0 {
		t.Fatal("a timed-out load was cached")
	}

	// The caller that started the load goes away: the load goes on and
	// answers the other callers that joined it.
	f2 := newCache(feedcache.Options[*val]{})
	f2.src.set("a", "a")
	g := f2.src.arm()
	first, cancelFirst := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, err := f2.cache.Get(first, "a", t0)
		firstDone <- err
	}()
	<-g.entered
	cancelFirst()
	if err := f2.src.ctx().Err(); err != nil {
		t.Fatalf("the shared load was cancelled with its first caller: %v", err)
	}
	second := make(chan *val, 1)
	go func() {
		v, err := f2.cache.Get(context.Background(), "a", t0)
		if err != nil {
			t.Error(err)
		}
		second <- v
	}()
	time.Sleep(50 * time.Millisecond) // let the second Get join the load
	close(g.release)
	if err := <-firstDone; err != nil {
		t.Fatalf("the first caller: %v", err)
	}
	if v := <-second; v == nil || v.version != 1 {
		t.Fatalf("the joined caller got %+v", v)
	}
	f2.wantLoads(t, "a", 1)
}

// Cached never loads, and Each sees exactly what is cached.
func TestCachedAndEach(t *testing.T) {
	f := newCache(feedcache.Options[*val]{})
	if _, ok := f.cache.Cached("a", t0); ok {
		t.Fatal("Cached answered an empty cache")
	}
	f.wantLoads(t, "a", 0)
	f.src.set("a", "a")
	f.src.set("b", "")
	f.get(t, "a", t0)
	f.get(t, "b", t0)
	var seen []string
	f.cache.Each(func(v *val) { seen = append(seen, v.key) })
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"a", "b"}) {
		t.Fatalf("Each saw %v", seen)
	}
}

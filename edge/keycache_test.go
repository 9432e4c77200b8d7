package edge

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
)

// scriptedSource answers lookups from a record it can change, and can hold
// a lookup until released.
type scriptedSource struct {
	mu      sync.Mutex
	rec     *apikey.Record
	calls   int
	hold    chan struct{} // if set, the first lookup waits for it
	started chan struct{}
}

func (s *scriptedSource) LookupKey(ctx context.Context, d apikey.Digest) (*apikey.Record, error) {
	s.mu.Lock()
	s.calls++
	first := s.calls == 1
	rec := s.rec
	s.mu.Unlock()
	if first && s.hold != nil {
		close(s.started)
		<-s.hold
	}
	return rec, nil
}

// A lookup in flight when a key is invalidated must not answer requests
// that arrive after the invalidation, nor be cached.
func TestKeyCacheLoadAfterInvalidateDoesNotJoinStaleLookup(t *testing.T) {
	secret, _ := apikey.Generate(apikey.Live)
	d := apikey.DigestOf(secret)
	live := &apikey.Record{ID: "key_1", Type: apikey.Live, Permissions: apikey.AllPermissions, Digest: d.String()}
	src := &scriptedSource{rec: live, hold: make(chan struct{}), started: make(chan struct{})}
	c := NewKeyCache(src, KeyCacheOptions{})
	now := time.Now()

	first := make(chan *KeyEntry)
	go func() {
		e, _ := c.Load(context.Background(), d, now)
		first <- e
	}()
	<-src.started // the first lookup has read the record as it was

	revoked := *live
	revoked.RevokedAt = &now
	src.mu.Lock()
	src.rec = &revoked
	src.mu.Unlock()
	c.Invalidate(live.ID)

	secondCh := make(chan *KeyEntry)
	go func() {
		e, _ := c.Load(context.Background(), d, now)
		secondCh <- e
	}()
	var second *KeyEntry
	select {
	case second = <-secondCh:
	case <-time.After(2 * time.Second):
		close(src.hold)
		<-secondCh
		<-first
		t.Fatal("a request after the revocation waited for the lookup started before it")
	}
	if second.Admits(now) {
		t.Fatal("a request after the revocation was admitted with the record read before it")
	}
	close(src.hold)
	if e := <-first; !e.Admits(now) {
		t.Fatal("the first lookup should have seen the key as it was")
	}
	// The stale answer was not cached over the fresh one.
	if e, ok := c.Cached(d, now); !ok || e.Admits(now) {
		t.Fatalf("cache holds %+v, want the revoked record", e)
	}
}

package streams

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

func TestTokenRoundTripAndExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tk := NewTokensWithKey([]byte("0123456789abcdef0123456789abcdef"))
	tk.now = func() time.Time { return now }
	in := Claims{Digest: apikey.DigestOf("fb_live_x"), Project: "shop", Environment: "production", Version: 42, Session: "ses_9", Revision: 3}
	tok, err := tk.Mint(context.Background(), in)
	if err != nil || strings.Contains(tok, "fb_live_x") || len(tok) > 200 {
		t.Fatalf("Mint = %q %v", tok, err)
	}
	got, err := tk.Verify(context.Background(), tok)
	if err != nil || got.Digest != in.Digest || got.Project != "shop" || got.Environment != "production" || got.Version != 42 || got.Session != "ses_9" || got.Revision != 3 ||
		!got.Expires.Equal(now.Add(TokenTTL)) {
		t.Fatalf("Verify = %+v %v", got, err)
	}
	// Another secret (another deployment) does not take it.
	other := NewTokensWithKey([]byte("another secret, 32 bytes long!!!"))
	other.now = tk.now
	if _, err := other.Verify(context.Background(), tok); err != ErrInvalidToken {
		t.Fatalf("another secret: %v", err)
	}
	// Expired.
	now = now.Add(TokenTTL)
	if _, err := tk.Verify(context.Background(), tok); err != ErrInvalidToken {
		t.Fatalf("expired: %v", err)
	}
}

func TestTokensShareTheStoreSecret(t *testing.T) {
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, b := NewTokens(st), NewTokens(st) // two instances on one store
	tok, err := a.Mint(context.Background(), Claims{Project: "p", Environment: "e"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(context.Background(), tok); err != nil {
		t.Fatalf("the other instance refused the token: %v", err)
	}
}

func TestPosition(t *testing.T) {
	for in, want := range map[string]Position{"7": {7, 0}, "7.3": {7, 3}, " 12.0 ": {12, 0}} {
		if got, ok := ParsePosition(in); !ok || got != want {
			t.Errorf("ParsePosition(%q) = %+v %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.x", "1.-2"} {
		if _, ok := ParsePosition(bad); ok {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
	if (Position{7, 3}).ID(false) != "7" || (Position{7, 3}).ID(true) != "7.3" {
		t.Fatal("ID")
	}
}

func TestETag(t *testing.T) {
	for in, want := range map[string]int64{`"12"`: 12, `W/"12"`: 12, "12": 12, "": 0, `"x"`: 0, `"-3"`: 0} {
		if got := ParseETag(in); got != want {
			t.Errorf("ParseETag(%q) = %d, want %d", in, got, want)
		}
	}
	if ParseETag(ETag(99)) != 99 {
		t.Fatal("round trip")
	}
}

// A hub coalesces changes, tells only the streams of the changed set, ends
// a key's streams when it no longer validates and at its expiry.
func TestHub(t *testing.T) {
	var mu sync.Mutex
	version := map[string]int64{"o/p/prod": 5, "o/p/dev": 1}
	valid := map[apikey.Digest]bool{}
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := NewHub(HubConfig{
		Version: func(_ context.Context, ref string) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			return version[ref], nil
		},
		Validate: func(_ context.Context, d apikey.Digest) (time.Time, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return time.Time{}, valid[d], nil
		},
		Now: clock,
	})
	d1, d2 := apikey.DigestOf("one"), apikey.DigestOf("two")
	valid[d1], valid[d2] = true, true
	prod := h.Open("o/p/prod", "", "key_1", "192.0.2.1", d1, Position{Version: 4}, time.Time{})
	dev := h.Open("o/p/dev", "o/ses_1", "key_2", "192.0.2.1", d2, Position{Version: 1, Revision: 2}, now.Add(2*time.Second))
	if h.Len() != 2 {
		t.Fatal(h.Len())
	}
	// A key holds at most MaxStreamsPerClient from one address; others
	// addresses and keys are not held back by it, and closing frees one.
	var extra []*Stream
	for range MaxStreamsPerClient - 1 {
		extra = append(extra, h.Open("o/p/prod", "", "key_1", "192.0.2.1", d1, Position{}, time.Time{}))
	}
	if h.Open("o/p/prod", "", "key_1", "192.0.2.1", d1, Position{}, time.Time{}) != nil {
		t.Fatal("past the bound")
	}
	if h.Open("o/p/prod", "", "key_1", "192.0.2.2", d1, Position{}, time.Time{}) == nil {
		t.Fatal("another address held back")
	}
	h.Close(extra[0])
	if s := h.Open("o/p/prod", "", "key_1", "192.0.2.1", d1, Position{}, time.Time{}); s == nil {
		t.Fatal("closing freed nothing")
	}
	for _, s := range extra[1:] {
		h.Close(s)
	}
	h.FlagsChanged("o/p/prod")
	if p, ok := next(prod, time.Second); !ok || p != (Pending{Refetch: true, Latest: Position{Version: 5}}) {
		t.Fatalf("after the set changed: %+v %v", p, ok)
	}
	if p, ok := next(dev, 50*time.Millisecond); ok {
		t.Fatalf("the other set's stream woke: %+v", p)
	}
	// An old version never wakes a stream that knows a newer one.
	prod.Notify(Position{Version: 3})
	if p, ok := next(prod, 0); ok {
		t.Fatalf("woken by an older version: %+v", p)
	}
	// A session's change wakes its streams alone; one that ended, too.
	h.SessionChanged("o/ses_1")
	p, ok := next(dev, time.Second)
	if !ok || !p.Refetch || p.Latest != (Position{Version: 1, Revision: 3}) || p.Latest.ID(true) != "1.3" {
		t.Fatalf("after the session ended: %+v %v", p, ok)
	}
	// Revoked: its streams end; the other key's stay.
	mu.Lock()
	valid[d1] = false
	mu.Unlock()
	h.KeyChanged("key_1")
	if p, ok := next(prod, time.Second); !ok || !p.Ended {
		t.Fatalf("the revoked key's stream did not end: %+v", p)
	}
	// An end stays: a later signal still says so.
	prod.Notify(Position{Version: 9})
	if p, ok := next(prod, time.Second); !ok || !p.Ended || !p.Refetch {
		t.Fatalf("after its end: %+v %v", p, ok)
	}
	// Expiry: the sweep ends it once the clock passes it.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	if p, ok := next(dev, 3*time.Second); !ok || !p.Ended {
		t.Fatalf("the expired key's stream did not end: %+v", p)
	}
	if h.Len() != 0 {
		t.Fatalf("%d streams left", h.Len())
	}
	cancel()
	<-done
}

// next waits up to d for s's signal (none: only one already there) and
// returns what is pending; false if no signal came, or it found nothing
// to do.
func next(s *Stream, d time.Duration) (Pending, bool) {
	timeout := time.After(d)
	if d == 0 {
		c := make(chan time.Time)
		close(c)
		timeout = c
	}
	select {
	case <-s.Signal():
	default:
		select {
		case <-s.Signal():
		case <-timeout:
			return Pending{}, false
		}
	}
	p := s.Next()
	return p, p.Ended || p.Refetch || p.Beat
}

func TestEvent(t *testing.T) {
	if got := string((Position{8, 2}).Event(false)); got != "id: 8\ndata: {\"type\":\"refetchEvaluation\",\"etag\":\"\\\"8\\\"\"}\n\n" {
		t.Fatalf("%q", got)
	}
	if got := string((Position{8, 2}).Event(true)); !strings.HasPrefix(got, "id: 8.2\n") {
		t.Fatalf("%q", got)
	}
}

// Every Heartbeat, the sweep asks each open stream for one heartbeat, and
// nothing in between: an idle stream costs no timer of its own.
func TestHubHeartbeat(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	h := NewHub(HubConfig{
		Version:  func(context.Context, string) (int64, error) { return 1, nil },
		Validate: func(context.Context, apikey.Digest) (time.Time, bool, error) { return time.Time{}, true, nil },
		Revision: func(context.Context, string) (int64, bool, error) { return 0, true, nil },
		Now:      func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
	})
	d := apikey.DigestOf("one")
	a := h.Open("o/p/prod", "", "key_1", "192.0.2.1", d, Position{Version: 1}, time.Time{})
	b := h.Open("o/p/prod", "", "key_1", "192.0.2.2", d, Position{Version: 1}, time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Run(ctx)
	if p, ok := next(a, 1500*time.Millisecond); ok {
		t.Fatalf("a beat before Heartbeat passed: %+v", p)
	}
	mu.Lock()
	now = now.Add(Heartbeat)
	mu.Unlock()
	for _, s := range []*Stream{a, b} {
		if p, ok := next(s, 3*time.Second); !ok || p != (Pending{Beat: true, Latest: Position{Version: 1}}) {
			t.Fatalf("after Heartbeat: %+v %v", p, ok)
		}
	}
	if p, ok := next(a, 1500*time.Millisecond); ok {
		t.Fatalf("a second beat within Heartbeat: %+v", p)
	}
}

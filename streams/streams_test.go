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
	select {
	case <-prod.Wake():
	case <-time.After(time.Second):
		t.Fatal("no wake")
	}
	if prod.Latest() != (Position{Version: 5}) {
		t.Fatal(prod.Latest())
	}
	select {
	case <-dev.Wake():
		t.Fatal("the other set's stream woke")
	case <-time.After(50 * time.Millisecond):
	}
	// An old version never wakes a stream that knows a newer one.
	prod.Notify(Position{Version: 3})
	select {
	case <-prod.Wake():
		t.Fatal("woken by an older version")
	default:
	}
	// A session's change wakes its streams alone; one that ended, too.
	h.SessionChanged("o/ses_1")
	select {
	case <-dev.Wake():
	case <-time.After(time.Second):
		t.Fatal("the session's stream did not wake")
	}
	if got := dev.Latest(); got != (Position{Version: 1, Revision: 3}) || got.ID(true) != "1.3" {
		t.Fatalf("after the session ended: %+v", got)
	}
	// Revoked: its streams end; the other key's stay.
	mu.Lock()
	valid[d1] = false
	mu.Unlock()
	h.KeyChanged("key_1")
	select {
	case <-prod.Ended():
	case <-time.After(time.Second):
		t.Fatal("the revoked key's stream did not end")
	}
	// Expiry: the sweep ends it once the clock passes it.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	select {
	case <-dev.Ended():
	case <-time.After(3 * time.Second):
		t.Fatal("the expired key's stream did not end")
	}
	if h.Len() != 0 {
		t.Fatalf("%d streams left", h.Len())
	}
	cancel()
	<-done
}

func TestEvent(t *testing.T) {
	if got := string((Position{8, 2}).Event(false)); got != "id: 8\ndata: {\"type\":\"refetchEvaluation\",\"etag\":\"\\\"8\\\"\"}\n\n" {
		t.Fatalf("%q", got)
	}
	if got := string((Position{8, 2}).Event(true)); !strings.HasPrefix(got, "id: 8.2\n") {
		t.Fatalf("%q", got)
	}
}

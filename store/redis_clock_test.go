package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
)

// The change feed's wire format stays readable both ways across versions:
// messages from instances that send no clock frame arrive unstamped, a clock
// frame stamps exactly the messages it announces, and the frame itself is
// never delivered.
func TestRedisPublishedTimeWire(t *testing.T) {
	r := testenv.StartRedis(t)
	s := openRedis(t, r.URL(), store.Options{KeyPrefix: "clk"})
	got := make(chan store.Event, 16)
	unsubscribe := s.Subscribe(func(ev store.Event) {
		if !ev.Resync {
			got <- ev
		}
	})
	defer unsubscribe()
	next := func() store.Event {
		t.Helper()
		select {
		case ev := <-got:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no message delivered")
			return store.Event{}
		}
	}
	ctx := context.Background()
	raw := func(msgs ...string) {
		t.Helper()
		for _, m := range msgs {
			if err := r.Client().Publish(ctx, "clk:events", m).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := time.Unix(1_800_000_000, 123_456_789)
	clockFrame := func(n int) string {
		payload := strconv.FormatInt(at.UnixNano(), 10) + " " + strconv.Itoa(n)
		return strconv.Itoa(len("store:clock")) + ":store:clock" + payload
	}

	// An older instance's message: no clock frame before it.
	raw("4:keyskey_old")
	if ev := next(); ev.Topic != "keys" || string(ev.Payload) != "key_old" || !ev.Published.IsZero() {
		t.Fatalf("old-format message: %+v", ev)
	}
	// A clock frame for two messages, then a third without one.
	raw(clockFrame(2), "4:keysa", "5:flagsb", "4:keysc")
	for _, want := range []struct {
		payload string
		stamped bool
	}{{"a", true}, {"b", true}, {"c", false}} {
		ev := next()
		if string(ev.Payload) != want.payload {
			t.Fatalf("got %+v, want payload %q (a clock frame was delivered?)", ev, want.payload)
		}
		if want.stamped && !ev.Published.Equal(at) || !want.stamped && !ev.Published.IsZero() {
			t.Fatalf("message %q published at %v, want stamped=%v (%v)", want.payload, ev.Published, want.stamped, at)
		}
	}
	// A malformed clock frame stamps nothing and is not delivered either.
	raw("11:store:clockgarbage", "4:keysd")
	if ev := next(); string(ev.Payload) != "d" || !ev.Published.IsZero() {
		t.Fatalf("after a malformed clock frame: %+v", ev)
	}
	// What this version publishes: the frame, then the messages, stamped
	// with the commit time.
	before := time.Now()
	err := s.Update(ctx, func(w store.Writer) error {
		w.Publish("keys", []byte("e"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(); string(ev.Payload) != "e" || ev.Published.Before(before.Add(-time.Second)) || ev.Published.After(time.Now()) {
		t.Fatalf("published by this version: %+v", ev)
	}
	select {
	case ev := <-got:
		t.Fatalf("unexpected message %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

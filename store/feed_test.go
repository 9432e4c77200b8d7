package store

import (
	"strconv"
	"testing"
	"time"
)

// A subscriber too slow to keep up loses its backlog but is told so with a
// Resync, followed by the messages sent after the overflow.
func TestFeedOverflowResyncs(t *testing.T) {
	var f feed
	entered, release := make(chan struct{}), make(chan struct{})
	got := make(chan Event, 10)
	_, unsubscribe := f.subscribe(func(ev Event) {
		if ev.Topic == "first" {
			close(entered)
			<-release
		}
		got <- ev
	})
	defer f.close()
	defer unsubscribe()

	f.send(Event{Topic: "first"})
	<-entered // the callback is busy: everything below queues up
	for i := range queueLimit + 3 {
		f.send(Event{Topic: strconv.Itoa(i)})
	}
	close(release)

	want := []Event{
		{Topic: "first"},
		{Resync: true},
		{Topic: strconv.Itoa(queueLimit)},
		{Topic: strconv.Itoa(queueLimit + 1)},
		{Topic: strconv.Itoa(queueLimit + 2)},
	}
	for _, w := range want {
		select {
		case ev := <-got:
			if ev.Topic != w.Topic || ev.Resync != w.Resync {
				t.Fatalf("got %+v, want %+v", ev, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event, want %+v", w)
		}
	}
	select {
	case ev := <-got:
		t.Fatalf("unexpected extra event %+v", ev)
	default:
	}
}

func TestEventEncoding(t *testing.T) {
	for _, tc := range []Event{
		{Topic: "", Payload: []byte("")},
		{Topic: "a:b\nc", Payload: []byte("12:x\n")},
		{Topic: "ü", Payload: []byte{0, 1, 2}},
	} {
		ev, ok := decodeEvent(encodeEvent(tc.Topic, tc.Payload))
		if !ok || ev.Topic != tc.Topic || string(ev.Payload) != string(tc.Payload) {
			t.Errorf("round trip of %+v gave %+v, %v", tc, ev, ok)
		}
	}
	for _, bad := range []string{"", "x", "5:ab", "-1:a", "a:b"} {
		if _, ok := decodeEvent(bad); ok {
			t.Errorf("decodeEvent(%q) accepted a malformed message", bad)
		}
	}
}

// Package storetest is the conformance suite every [store.Store] backend
// must pass, so that the rest of FlagBridge can rely on one behaviour.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/store"
)

// eventTimeout bounds every wait for a message: long enough for a loaded CI
// machine, short enough that a lost message fails rather than hangs.
const eventTimeout = 10 * time.Second

// Run runs the conformance suite. open must return a fresh, empty store
// and register its Close with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"ValuesAreCopies", testValuesAreCopies},
		{"EmptyValueAndNames", testEmptyValueAndNames},
		{"ListOrder", testListOrder},
		{"Delete", testDelete},
		{"DeleteCollection", testDeleteCollection},
		{"ReadYourWrites", testReadYourWrites},
		{"ErrorWritesNothing", testErrorWritesNothing},
		{"OddNames", testOddNames},
		{"LargeValue", testLargeValue},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"PublishAfterCommit", testPublishAfterCommit},
		{"NoPublishOnError", testNoPublishOnError},
		{"EventOrder", testEventOrder},
		{"PublishedTime", testPublishedTime},
		{"Unsubscribe", testUnsubscribe},
		{"TwoSubscribers", testTwoSubscribers},
		{"CancelledContext", testCancelledContext},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// put commits one document.
func put(t *testing.T, s store.Store, collection, id, value string) {
	t.Helper()
	err := s.Update(context.Background(), func(w store.Writer) error {
		return w.Put(collection, id, []byte(value))
	})
	if err != nil {
		t.Fatalf("Put(%q, %q): %v", collection, id, err)
	}
}

// get reads one document in a View; missing is reported as ok == false.
func get(t *testing.T, s store.Store, collection, id string) (value string, ok bool) {
	t.Helper()
	err := s.View(context.Background(), func(r store.Reader) error {
		v, err := r.Get(collection, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		value, ok = string(v), err == nil
		return err
	})
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", collection, id, err)
	}
	return value, ok
}

func list(t *testing.T, s store.Store, collection string) []store.Item {
	t.Helper()
	var items []store.Item
	err := s.View(context.Background(), func(r store.Reader) (err error) {
		items, err = r.List(collection)
		return err
	})
	if err != nil {
		t.Fatalf("List(%q): %v", collection, err)
	}
	return items
}

// flat renders items as "id=value,..." for comparisons.
func flat(items []store.Item) string {
	var b bytes.Buffer
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%s", it.ID, it.Value)
	}
	return b.String()
}

func testGetMissing(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "c", "present", "1")
	for _, tc := range []struct{ collection, id string }{{"c", "absent"}, {"nocollection", "x"}} {
		err := s.View(ctx, func(r store.Reader) error {
			_, err := r.Get(tc.collection, tc.id)
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("View Get(%q, %q) = %v, want ErrNotFound", tc.collection, tc.id, err)
		}
		err = s.Update(ctx, func(w store.Writer) error {
			_, err := w.Get(tc.collection, tc.id)
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Update Get(%q, %q) = %v, want ErrNotFound", tc.collection, tc.id, err)
		}
	}
}

func testPutGet(t *testing.T, s store.Store) {
	put(t, s, "c", "a", `{"v":1}`)
	if v, ok := get(t, s, "c", "a"); !ok || v != `{"v":1}` {
		t.Fatalf("Get = %q, %v; want the document", v, ok)
	}
	put(t, s, "c", "a", `{"v":2}`)
	if v, _ := get(t, s, "c", "a"); v != `{"v":2}` {
		t.Fatalf("after replace, Get = %q", v)
	}
	if _, ok := get(t, s, "other", "a"); ok {
		t.Fatal("a document leaked into another collection")
	}
}

func testValuesAreCopies(t *testing.T, s store.Store) {
	ctx := context.Background()
	// The slice given to Put may be reused by the caller once Put returns.
	err := s.Update(ctx, func(w store.Writer) error {
		buf := []byte("original")
		if err := w.Put("c", "a", buf); err != nil {
			return err
		}
		copy(buf, "XXXXXXXX")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(r store.Reader) error {
		v, err := r.Get("c", "a")
		if err != nil {
			return err
		}
		copy(v, "mutated!")
		items, err := r.List("c")
		if err != nil {
			return err
		}
		copy(items[0].Value, "mutated!")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Same inside an Update, where the backend may hand out buffered writes.
	err = s.Update(ctx, func(w store.Writer) error {
		if err := w.Put("c", "b", []byte("original")); err != nil {
			return err
		}
		v, err := w.Get("c", "b")
		if err != nil {
			return err
		}
		copy(v, "mutated!")
		items, err := w.List("c")
		if err != nil {
			return err
		}
		for _, it := range items {
			copy(it.Value, "mutated!")
		}
		v, err = w.Get("c", "b")
		if err != nil || string(v) != "original" {
			return fmt.Errorf("inside Update, Get after mutating a returned value = %q, %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := flat(list(t, s, "c")); got != "a=original,b=original" {
		t.Fatalf("List = %s, want the values unchanged by callers' mutations", got)
	}
}

func testEmptyValueAndNames(t *testing.T, s store.Store) {
	put(t, s, "c", "empty", "")
	if v, ok := get(t, s, "c", "empty"); !ok || v != "" {
		t.Fatalf("Get of an empty document = %q, %v; want it present and empty", v, ok)
	}
	if got := flat(list(t, s, "c")); got != "empty=" {
		t.Fatalf("List = %s", got)
	}
	err := s.Update(context.Background(), func(w store.Writer) error {
		if w.Put("c", "", []byte("x")) == nil {
			return errors.New("Put with an empty id succeeded")
		}
		if w.Put("", "id", []byte("x")) == nil {
			return errors.New("Put with an empty collection succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testListOrder(t *testing.T, s store.Store) {
	if items := list(t, s, "never"); len(items) != 0 {
		t.Fatalf("List of an unwritten collection = %v, want empty", items)
	}
	ids := []string{"b", "a", "c", "a/b", "B", "aa", "10", "9", "é"}
	err := s.Update(context.Background(), func(w store.Writer) error {
		for _, id := range ids {
			if err := w.Put("c", id, []byte("v"+id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	items := list(t, s, "c")
	var got []string
	for _, it := range items {
		got = append(got, it.ID)
		if string(it.Value) != "v"+it.ID {
			t.Errorf("item %q has value %q", it.ID, it.Value)
		}
	}
	want := slices.Clone(ids)
	slices.Sort(want) // bytewise, as Go compares strings
	if !slices.Equal(got, want) {
		t.Fatalf("List ids = %q, want %q", got, want)
	}
}

func testDelete(t *testing.T, s store.Store) {
	put(t, s, "c", "a", "1")
	put(t, s, "c", "b", "2")
	err := s.Update(context.Background(), func(w store.Writer) error {
		if err := w.Delete("c", "a"); err != nil {
			return err
		}
		if err := w.Delete("c", "missing"); err != nil {
			return fmt.Errorf("deleting a missing document: %w", err)
		}
		if err := w.Delete("nocollection", "x"); err != nil {
			return fmt.Errorf("deleting from a missing collection: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, s, "c", "a"); ok {
		t.Fatal("deleted document still there")
	}
	if got := flat(list(t, s, "c")); got != "b=2" {
		t.Fatalf("List = %s, want b=2", got)
	}
}

func testDeleteCollection(t *testing.T, s store.Store) {
	put(t, s, "c", "a", "1")
	put(t, s, "c", "b", "2")
	put(t, s, "keep", "a", "3")
	err := s.Update(context.Background(), func(w store.Writer) error {
		if err := w.DeleteCollection("c"); err != nil {
			return err
		}
		return w.DeleteCollection("nocollection")
	})
	if err != nil {
		t.Fatal(err)
	}
	if items := list(t, s, "c"); len(items) != 0 {
		t.Fatalf("List after DeleteCollection = %s", flat(items))
	}
	if _, ok := get(t, s, "c", "a"); ok {
		t.Fatal("Get finds a document of a deleted collection")
	}
	if got := flat(list(t, s, "keep")); got != "a=3" {
		t.Fatalf("another collection changed: %s", got)
	}
	put(t, s, "c", "z", "4")
	if got := flat(list(t, s, "c")); got != "z=4" {
		t.Fatalf("List after re-creating = %s", got)
	}
}

func testReadYourWrites(t *testing.T, s store.Store) {
	put(t, s, "c", "x", "old-x")
	put(t, s, "c", "y", "old-y")
	step := func(w store.Writer, wantList string, gets map[string]string) error {
		items, err := w.List("c")
		if err != nil {
			return err
		}
		if got := flat(items); got != wantList {
			return fmt.Errorf("List = %q, want %q", got, wantList)
		}
		for id, want := range gets {
			v, err := w.Get("c", id)
			switch {
			case want == "-" && !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("Get(%q) = %q, %v; want ErrNotFound", id, v, err)
			case want != "-" && (err != nil || string(v) != want):
				return fmt.Errorf("Get(%q) = %q, %v; want %q", id, v, err, want)
			}
		}
		return nil
	}
	err := s.Update(context.Background(), func(w store.Writer) error {
		// Reads before any write see the committed state (and, on
		// optimistic backends, are what the commit is validated against).
		if err := step(w, "x=old-x,y=old-y", map[string]string{"x": "old-x"}); err != nil {
			return fmt.Errorf("initial: %w", err)
		}
		if err := w.Put("c", "a", []byte("new-a")); err != nil {
			return err
		}
		if err := w.Put("c", "x", []byte("new-x")); err != nil {
			return err
		}
		if err := step(w, "a=new-a,x=new-x,y=old-y", map[string]string{"a": "new-a", "x": "new-x"}); err != nil {
			return fmt.Errorf("after Put: %w", err)
		}
		if err := w.Delete("c", "y"); err != nil {
			return err
		}
		if err := w.Delete("c", "a"); err != nil {
			return err
		}
		if err := step(w, "x=new-x", map[string]string{"a": "-", "y": "-"}); err != nil {
			return fmt.Errorf("after Delete: %w", err)
		}
		if err := w.Put("c", "y", []byte("again-y")); err != nil {
			return err
		}
		if err := step(w, "x=new-x,y=again-y", map[string]string{"y": "again-y"}); err != nil {
			return fmt.Errorf("after Put of a deleted id: %w", err)
		}
		if err := w.DeleteCollection("c"); err != nil {
			return err
		}
		if err := step(w, "", map[string]string{"x": "-", "y": "-", "a": "-"}); err != nil {
			return fmt.Errorf("after DeleteCollection: %w", err)
		}
		if err := w.Put("c", "z", []byte("new-z")); err != nil {
			return err
		}
		if err := step(w, "z=new-z", map[string]string{"z": "new-z", "x": "-"}); err != nil {
			return fmt.Errorf("after DeleteCollection then Put: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := flat(list(t, s, "c")); got != "z=new-z" {
		t.Fatalf("committed List = %q, want z=new-z", got)
	}
}

// errBoom is the callers' own error, which Update must return as is.
var errBoom = errors.New("boom")

func testErrorWritesNothing(t *testing.T, s store.Store) {
	put(t, s, "c", "a", "before")
	put(t, s, "d", "keep", "before")
	wrapped := fmt.Errorf("validating: %w", errBoom)
	err := s.Update(context.Background(), func(w store.Writer) error {
		if err := w.Put("c", "a", []byte("after")); err != nil {
			return err
		}
		if err := w.Put("c", "b", []byte("after")); err != nil {
			return err
		}
		if err := w.DeleteCollection("d"); err != nil {
			return err
		}
		w.Publish("t", []byte("never"))
		return wrapped
	})
	if err != wrapped || !errors.Is(err, errBoom) { // identity, not just errors.Is
		t.Fatalf("Update returned %v, want fn's own error value", err)
	}
	if got := flat(list(t, s, "c")); got != "a=before" {
		t.Fatalf("after a failed Update, List(c) = %s; want a=before", got)
	}
	if got := flat(list(t, s, "d")); got != "keep=before" {
		t.Fatalf("after a failed Update, List(d) = %s; want keep=before", got)
	}
	// An error from View's fn is returned as is too.
	err = s.View(context.Background(), func(store.Reader) error { return wrapped })
	if err != wrapped { // identity, not just errors.Is
		t.Fatalf("View returned %v, want fn's own error value", err)
	}
}

func testOddNames(t *testing.T, s store.Store) {
	collections := []string{"a/b", "x:y", "ünïcødé", "{tag}", "with space", "c:*"}
	ids := []string{"p/q/r", "k:1", "日本語", "{x}", "a b", "*", "line\nbreak", `quote"`}
	err := s.Update(context.Background(), func(w store.Writer) error {
		for _, c := range collections {
			for _, id := range ids {
				if err := w.Put(c, id, []byte(c+"|"+id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(ids))
	for _, c := range collections {
		for _, id := range ids {
			if v, ok := get(t, s, c, id); !ok || v != c+"|"+id {
				t.Errorf("Get(%q, %q) = %q, %v", c, id, v, ok)
			}
		}
		var got []string
		for _, it := range list(t, s, c) {
			got = append(got, it.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("List(%q) ids = %q, want %q", c, got, want)
		}
	}
}

func testLargeValue(t *testing.T, s store.Store) {
	big := make([]byte, 1<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	err := s.Update(context.Background(), func(w store.Writer) error { return w.Put("c", "big", big) })
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(context.Background(), func(r store.Reader) error {
		v, err := r.Get("c", "big")
		if err != nil {
			return err
		}
		if !bytes.Equal(v, big) {
			return fmt.Errorf("1 MiB value came back different (%d bytes)", len(v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testConcurrentIncrements(t *testing.T, s store.Store) {
	const workers, each = 8, 25
	put(t, s, "c", "counter", "0")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				err := s.Update(context.Background(), func(w store.Writer) error {
					v, err := w.Get("c", "counter")
					if err != nil {
						return err
					}
					n, err := strconv.Atoi(string(v))
					if err != nil {
						return err
					}
					return w.Put("c", "counter", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Update: %v", err)
	}
	if v, _ := get(t, s, "c", "counter"); v != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s after %d increments: lost updates", v, workers*each)
	}
}

// collector records a subscription's messages. Resync events are skipped:
// a backend may send one at any time, and a message lost with it still
// fails the wait.
type collector struct {
	ch chan store.Event
}

func subscribe(t *testing.T, s store.Store) (*collector, func()) {
	c := &collector{ch: make(chan store.Event, 1000)}
	unsubscribe := s.Subscribe(func(ev store.Event) {
		if !ev.Resync {
			c.ch <- ev
		}
	})
	t.Cleanup(unsubscribe)
	return c, unsubscribe
}

func (c *collector) next(t *testing.T) store.Event {
	t.Helper()
	select {
	case ev := <-c.ch:
		return ev
	case <-time.After(eventTimeout):
		t.Fatal("no message delivered")
		return store.Event{}
	}
}

func (c *collector) expect(t *testing.T, topic, payload string) {
	t.Helper()
	ev := c.next(t)
	if ev.Topic != topic || string(ev.Payload) != payload {
		t.Fatalf("got message %q %q, want %q %q", ev.Topic, ev.Payload, topic, payload)
	}
}

func publish(t *testing.T, s store.Store, msgs ...string) {
	t.Helper()
	err := s.Update(context.Background(), func(w store.Writer) error {
		for _, m := range msgs {
			w.Publish("topic", []byte(m))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testPublishAfterCommit(t *testing.T, s store.Store) {
	type seen struct {
		ev    store.Event
		value string
		err   error
	}
	got := make(chan seen, 10)
	unsubscribe := s.Subscribe(func(ev store.Event) {
		if ev.Resync {
			return
		}
		// The change must already be visible when its message arrives.
		var v []byte
		err := s.View(context.Background(), func(r store.Reader) (err error) {
			v, err = r.Get("c", "a")
			return err
		})
		got <- seen{ev, string(v), err}
	})
	defer unsubscribe()
	topic, payload := "flags:changed\nx", []byte("bin\x00ary\n:payload")
	err := s.Update(context.Background(), func(w store.Writer) error {
		w.Publish(topic, payload)
		return w.Put("c", "a", []byte("committed"))
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g.ev.Topic != topic || !bytes.Equal(g.ev.Payload, payload) || g.ev.Resync {
			t.Fatalf("got %+v, want topic %q payload %q", g.ev, topic, payload)
		}
		if g.err != nil || g.value != "committed" {
			t.Fatalf("when the message arrived, the document was %q, %v: delivered before commit", g.value, g.err)
		}
	case <-time.After(eventTimeout):
		t.Fatal("no message delivered")
	}
}

func testNoPublishOnError(t *testing.T, s store.Store) {
	c, _ := subscribe(t, s)
	err := s.Update(context.Background(), func(w store.Writer) error {
		w.Publish("topic", []byte("rolled back"))
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	// Delivery is ordered, so had the failed message gone out it would come
	// before this one.
	publish(t, s, "marker")
	c.expect(t, "topic", "marker")
}

// Every message carries its commit time, so that subscribers can measure
// how long it took to reach them.
func testPublishedTime(t *testing.T, s store.Store) {
	c, _ := subscribe(t, s)
	before := time.Now()
	publish(t, s, "a", "b")
	after := time.Now()
	publish(t, s, "c")
	for _, m := range []string{"a", "b", "c"} {
		ev := c.next(t)
		if string(ev.Payload) != m {
			t.Fatalf("got %q, want %q", ev.Payload, m)
		}
		if ev.Published.IsZero() {
			t.Fatalf("message %q has no publication time", m)
		}
		if m != "c" && (ev.Published.Before(before) || ev.Published.After(after)) {
			t.Fatalf("message %q published at %v, not between %v and %v", m, ev.Published, before, after)
		}
	}
}

func testEventOrder(t *testing.T, s store.Store) {
	c, _ := subscribe(t, s)
	for i := range 50 {
		publish(t, s, strconv.Itoa(i))
	}
	publish(t, s, "x1", "x2", "x3")
	for i := range 50 {
		c.expect(t, "topic", strconv.Itoa(i))
	}
	for _, m := range []string{"x1", "x2", "x3"} {
		c.expect(t, "topic", m)
	}
}

func testUnsubscribe(t *testing.T, s store.Store) {
	gone, unsubscribe := subscribe(t, s)
	stays, _ := subscribe(t, s)
	publish(t, s, "1")
	gone.expect(t, "topic", "1")
	stays.expect(t, "topic", "1")
	unsubscribe()
	unsubscribe() // harmless twice
	publish(t, s, "2")
	publish(t, s, "3")
	stays.expect(t, "topic", "2")
	stays.expect(t, "topic", "3")
	select {
	case ev := <-gone.ch:
		t.Fatalf("message %q delivered after unsubscribe", ev.Payload)
	default:
	}
}

func testTwoSubscribers(t *testing.T, s store.Store) {
	a, _ := subscribe(t, s)
	b, _ := subscribe(t, s)
	for i := range 20 {
		publish(t, s, strconv.Itoa(i))
	}
	for i := range 20 {
		a.expect(t, "topic", strconv.Itoa(i))
		b.expect(t, "topic", strconv.Itoa(i))
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := s.Update(ctx, func(w store.Writer) error {
		ran = true
		return w.Put("c", "a", []byte("x"))
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a cancelled context = %v, want context.Canceled", err)
	}
	if ran {
		t.Error("Update ran fn with a cancelled context")
	}
	if err := s.View(ctx, func(store.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("View with a cancelled context = %v, want context.Canceled", err)
	}
	if _, ok := get(t, s, "c", "a"); ok {
		t.Fatal("Update with a cancelled context wrote")
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

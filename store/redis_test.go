package store_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
	"github.com/flagbridge/flagbridge/store/storetest"
)

func openRedis(t *testing.T, rawURL string, opts store.Options) *store.RedisStore {
	t.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = testenv.UniquePrefix(t)
	}
	s, err := store.OpenRedis(rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRedisConformance(t *testing.T) {
	url := testenv.RedisURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openRedis(t, url, store.Options{}) })
}

// Every collection is one hash, and every key shares the {prefix} hash tag.
func TestRedisLayout(t *testing.T) {
	r := testenv.StartRedis(t)
	s := openRedis(t, r.URL(), store.Options{KeyPrefix: "lay"})
	collections := []string{"flags", "a/b", "x:y"}
	err := s.Update(context.Background(), func(w store.Writer) error {
		for _, c := range collections {
			for _, id := range []string{"1", "2"} {
				if err := w.Put(c, id, []byte(c+id)); err != nil {
					return err
				}
			}
		}
		w.Publish("t", nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix() != "lay" {
		t.Errorf("Prefix() = %q", s.Prefix())
	}
	ctx := context.Background()
	c := r.Client()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{"{lay}:c:a/b", "{lay}:c:flags", "{lay}:c:x:y"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %q, want %q", keys, want)
	}
	for _, coll := range collections {
		key := "{lay}:c:" + coll
		if typ := c.Type(ctx, key).Val(); typ != "hash" {
			t.Errorf("%s is a %s, want a hash", key, typ)
		}
		m := c.HGetAll(ctx, key).Val()
		if len(m) != 2 || m["1"] != coll+"1" || m["2"] != coll+"2" {
			t.Errorf("HGETALL %s = %v", key, m)
		}
	}
}

// After Redis restarts (and so the feed's connection drops), subscribers get
// a Resync, then messages flow again.
func TestRedisResyncAfterRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	s := openRedis(t, r.URL(), store.Options{Timeout: 200 * time.Millisecond})
	events := make(chan store.Event, 100)
	s.Subscribe(func(ev store.Event) { events <- ev })
	publish := func(msg string) error {
		return s.Update(context.Background(), func(w store.Writer) error {
			w.Publish("t", []byte(msg))
			return nil
		})
	}
	next := func() store.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(15 * time.Second):
			t.Fatal("no event")
			return store.Event{}
		}
	}
	if err := publish("before"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Resync || string(ev.Payload) != "before" {
		t.Fatalf("got %+v, want the message", ev)
	}

	r.Stop()
	r.Start()
	if ev := next(); !ev.Resync || ev.Topic != "" {
		t.Fatalf("after a restart, got %+v, want a Resync", ev)
	}
	// The command pool may need a moment to give up its dead connections.
	deadline := time.Now().Add(10 * time.Second)
	for err := publish("after"); err != nil; err = publish("after") {
		if time.Now().After(deadline) {
			t.Fatalf("publishing after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ev := next(); ev.Resync || string(ev.Payload) != "after" {
		t.Fatalf("got %+v, want the message", ev)
	}
}

// With Redis down, every operation fails, quickly, and the store recovers
// once Redis is back.
func TestRedisDown(t *testing.T) {
	r := testenv.StartRedis(t)
	s := openRedis(t, r.URL(), store.Options{Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	write := func() error {
		return s.Update(ctx, func(w store.Writer) error {
			if _, err := w.Get("c", "a"); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return w.Put("c", "a", []byte("x"))
		})
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	ops := map[string]func() error{
		"Ping":   func() error { return s.Ping(ctx) },
		"Update": write,
		"View": func() error {
			return s.View(ctx, func(r store.Reader) error {
				_, err := r.List("c")
				return err
			})
		},
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		t.Logf("%s with Redis down: %v after %v", name, err, time.Since(start))
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s with Redis down took %v", name, d)
		}
		if err == nil {
			t.Errorf("%s with Redis down succeeded", name)
		}
	}
	start := time.Now()
	got := make(chan store.Event, 10)
	s.Subscribe(func(ev store.Event) { got <- ev })
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Subscribe with Redis down took %v", d)
	}

	r.Start()
	// A subscriber that could not be confirmed is told it may have missed
	// messages once the feed is up.
	select {
	case ev := <-got:
		if !ev.Resync {
			t.Fatalf("got %+v, want a Resync", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no Resync once Redis was back")
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := write(); err != nil; err = write() {
		if time.Now().After(deadline) {
			t.Fatalf("still failing after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisURL(t *testing.T) {
	opts := store.Options{Timeout: 300 * time.Millisecond}
	open := func(rawURL string) redis.UniversalClient {
		t.Helper()
		// Nothing listens on port 1: the constructor must not dial.
		s, err := store.OpenRedis(rawURL, opts)
		if err != nil {
			t.Fatalf("OpenRedis(%q): %v", rawURL, err)
		}
		t.Cleanup(func() { s.Close() })
		return s.Client()
	}

	c, ok := open("redis://127.0.0.1:1/2").(*redis.Client)
	if !ok {
		t.Fatal("a plain URL did not give a single-server client")
	}
	o := c.Options()
	if o.Addr != "127.0.0.1:1" || o.DB != 2 || o.DialTimeout != 600*time.Millisecond ||
		o.ReadTimeout != 300*time.Millisecond || o.WriteTimeout != 300*time.Millisecond ||
		o.MaxRetries != 1 || !o.ContextTimeoutEnabled {
		t.Errorf("single-server options not defaulted from store.Options: %+v", o)
	}
	if o := open("redis://127.0.0.1:1?read_timeout=7s&max_retries=4").(*redis.Client).Options(); o.ReadTimeout != 7*time.Second || o.MaxRetries != 4 {
		t.Errorf("the URL's own settings were overridden: read_timeout %v, max_retries %d", o.ReadTimeout, o.MaxRetries)
	}
	if o := open("rediss://127.0.0.1:1").(*redis.Client).Options(); o.TLSConfig == nil {
		t.Error("rediss:// without TLS")
	}

	f, ok := open("redis://:pw@127.0.0.1:1?master_name=mymaster").(*redis.Client)
	if !ok || f.Options().Addr != "FailoverClient" {
		t.Errorf("master_name did not give a Sentinel failover client")
	}

	for _, u := range []string{"redis://127.0.0.1:1?cluster=true", "redis://127.0.0.1:1?addr=127.0.0.1:2"} {
		cc, ok := open(u).(*redis.ClusterClient)
		if !ok {
			t.Errorf("%s did not give a cluster client", u)
			continue
		}
		if o := cc.Options(); o.Addrs[0] != "127.0.0.1:1" || o.ReadTimeout != 300*time.Millisecond || o.MaxRetries != 1 {
			t.Errorf("%s: cluster options %+v", u, o)
		}
	}
	if _, ok := open("redis://127.0.0.1:1?cluster=false").(*redis.Client); !ok {
		t.Error("cluster=false did not give a single-server client")
	}

	const secret = "s3cr3tpw"
	for _, bad := range []string{
		"redis://user:s3cr3tpw@127.0.0.1:6379/notadb",
		"redis://user:s3cr3tpw@127.0.0.1:6379?bogus=1",
		"redis://user:s3cr3tpw@127.0.0.1:6379?cluster=true&bogus=1",
		"redis://user:s3cr3tpw@127.0.0.1:6379?master_name=m&bogus=1",
		"redis://user:s3cr3tpw@127.0.0.1:6379?cluster=maybe",
		"redis://user:s3cr3tpw@127.0.0.1:6379?master_name=m&cluster=true",
		"redis://user:s3cr3%74pw@127.0.0.1:6379?bogus=1",
		"redis://user:s3cr3tpw@127.0.0.1:notaport",
		"redis://user:s3cr3tpw@127.0.0.1:6379/%zz",
		"http://user:s3cr3tpw@127.0.0.1:6379",
	} {
		s, err := store.OpenRedis(bad, opts)
		if err == nil {
			s.Close()
			t.Errorf("OpenRedis(%q) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("OpenRedis(%q) error shows the password: %v", bad, err)
		}
		if _, err := store.Open(bad, opts); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Open(%q) error = %v", bad, err)
		}
	}
	if _, err := store.OpenRedis("redis://127.0.0.1:1", store.Options{KeyPrefix: "a}b"}); err == nil {
		t.Error("a key prefix with a brace was accepted")
	}
}

// Close stops the receive loop, the subscribers and the client.
func TestRedisCloseNoLeak(t *testing.T) {
	r := testenv.StartRedis(t)
	before := runtime.NumGoroutine()
	s, err := store.OpenRedis(r.URL(), store.Options{KeyPrefix: testenv.UniquePrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan store.Event, 10)
	for range 3 {
		s.Subscribe(func(ev store.Event) { got <- ev })
	}
	err = s.Update(context.Background(), func(w store.Writer) error {
		w.Publish("t", nil)
		return w.Put("c", "a", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-got
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitGoroutines(t, before)
}

func TestRedisCluster(t *testing.T) {
	nodes := testenv.StartRedisCluster(t, 3)
	url := testenv.ClusterURL(nodes)

	// Pick prefixes whose data slot and feed channel live on different
	// nodes, so that the suite's publish/subscribe tests cross nodes.
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr()}})
	defer admin.Close()
	ctx := context.Background()
	slots, err := admin.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := func(key string) string {
		slot := int(admin.ClusterKeySlot(ctx, key).Val())
		for _, s := range slots {
			if slot >= s.Start && slot <= s.End {
				return s.Nodes[0].Addr
			}
		}
		t.Fatalf("no node owns slot %d", slot)
		return ""
	}
	crossPrefix := func(t *testing.T) string {
		for {
			p := testenv.UniquePrefix(t)
			if owner("{"+p+"}:c:x") != owner(p+":events") {
				return p
			}
		}
	}

	storetest.Run(t, func(t *testing.T) store.Store {
		return openRedis(t, url, store.Options{KeyPrefix: crossPrefix(t)})
	})

	// All keys of a store live on one node (one slot).
	p := crossPrefix(t)
	s := openRedis(t, url, store.Options{KeyPrefix: p})
	err = s.Update(ctx, func(w store.Writer) error {
		for i := range 20 {
			if err := w.Put(fmt.Sprintf("coll%d", i), "id", []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var holders []string
	for _, n := range nodes {
		keys, err := n.Client().Keys(ctx, "{"+p+"}*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			holders = append(holders, fmt.Sprintf("%s has %d", n.Addr(), len(keys)))
		}
	}
	if len(holders) != 1 || !strings.HasSuffix(holders[0], " 20") {
		t.Fatalf("keys spread over nodes: %v", holders)
	}
}

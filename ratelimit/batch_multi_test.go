package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// multiSet is a bucket set that exercises every rule of a coalesced run:
// an enforced limit, the group's own bucket, a shadow limit that runs out
// first, a quota that runs out before the limits, and a shadow quota.
// Emission intervals of an hour or more: nothing refills during a test.
func multiSet(shadow int, quota int64) []ratelimit.Check {
	return []ratelimit.Check{
		{Key: "hourly", Limit: ratelimit.Limit{Rate: 30, Period: 30 * time.Hour}},
		{Limit: ratelimit.Limit{Rate: 25, Period: 50 * time.Hour}},
		{Key: "shadow", Limit: ratelimit.Limit{Rate: shadow, Period: time.Duration(shadow) * time.Hour}, Shadow: true},
		{Key: "quota", Quota: quota, Period: ratelimit.Month},
		{Key: "soft", Quota: quota / 2, Period: ratelimit.Day, Shadow: true},
	}
}

type multiCall struct {
	checks []ratelimit.Check
	n      int
}

// serialMulti is what calls get from the in-process limiter, one after
// another at one instant: the answers a batching limiter must give.
func serialMulti(t *testing.T, group string, calls []multiCall) []ratelimit.MultiResult {
	t.Helper()
	now := time.Now()
	m := ratelimit.NewMemoryWithClock(func() time.Time { return now })
	out := make([]ratelimit.MultiResult, len(calls))
	for i, c := range calls {
		r, err := m.AllowAll(context.Background(), group, c.checks, c.n)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

// diffMulti describes how got differs from want, the in-process answer
// computed at the test's start: the counts exactly, the durations as seen
// up to slack later.
func diffMulti(got, want ratelimit.MultiResult, slack time.Duration) string {
	near := func(got, want time.Duration) bool { return got <= want+5*time.Millisecond && got >= want-slack }
	if got.Allowed != want.Allowed || len(got.Results) != len(want.Results) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	for j, w := range want.Results {
		g := got.Results[j]
		if g.Allowed != w.Allowed || g.Remaining != w.Remaining || g.Limit != w.Limit ||
			!near(g.RetryAfter, w.RetryAfter) || !near(g.ResetAfter, w.ResetAfter) || (g.RetryAfter == 0) != (w.RetryAfter == 0) {
			return fmt.Sprintf("bucket %d: got %+v, want %+v", j, g, w)
		}
	}
	return ""
}

// signature identifies a multi-bucket answer by its counts, which tell
// apart the admitted requests of a serial run.
func signature(r ratelimit.MultiResult) string {
	var b strings.Builder
	fmt.Fprint(&b, r.Allowed)
	for _, x := range r.Results {
		fmt.Fprintf(&b, " %v/%d", x.Allowed, x.Remaining)
	}
	return b.String()
}

// TestBatchingMultiConcurrentIsSerial hammers one group from 64 goroutines:
// the answers must be exactly those of the same calls made one after
// another (each admitted one's once, the refused ones as after them), with
// far fewer script runs than calls.
func TestBatchingMultiConcurrentIsSerial(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.delay.Store(int64(5 * time.Millisecond)) // so that callers queue
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 2})
	shared := multiSet(10, 20)
	const workers, each = 64, 3
	calls := make([]multiCall, workers*each)
	for i := range calls {
		calls[i] = multiCall{shared, 1}
	}
	start := time.Now() // no later than serialMulti's instant
	want := serialMulti(t, "g", calls)
	wantBySig := make(map[string][]ratelimit.MultiResult)
	for _, r := range want {
		wantBySig[signature(r)] = append(wantBySig[signature(r)], r)
	}

	before := scriptRuns(t, srv.Client())
	var (
		mu  sync.Mutex
		got []ratelimit.MultiResult
		wg  sync.WaitGroup
	)
	for i := range workers {
		checks := shared
		if i%2 == 1 {
			checks = slices.Clone(shared) // the same set, by value
		}
		wg.Go(func() {
			for range each {
				r, err := l.AllowAll(t.Context(), "g", checks, 1)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slack := time.Since(start) + 10*time.Millisecond
	gotBySig := make(map[string]int)
	for _, r := range got {
		s := signature(r)
		gotBySig[s]++
		ws := wantBySig[s]
		if len(ws) == 0 {
			t.Fatalf("answer %s (%+v) is none of the serial run's", s, r)
		}
		if d := diffMulti(r, ws[0], slack); d != "" {
			t.Errorf("answer %s: %s", s, d)
		}
	}
	for s, ws := range wantBySig {
		if gotBySig[s] != len(ws) {
			t.Errorf("answer %s given %d times, want %d", s, gotBySig[s], len(ws))
		}
	}
	runs := scriptRuns(t, srv.Client()) - before
	t.Logf("%d calls on one group: %d script runs", len(calls), runs)
	if runs > int64(len(calls)/4) {
		t.Errorf("%d script runs for %d concurrent calls on one group, want far fewer", runs, len(calls))
	}
}

// TestBatchingMultiQueueOrder queues calls of one group in a known order
// behind one held in flight: runs of cost-1 calls of one bucket set go
// together, a cost-n call and a call of another set each alone, and every
// caller gets the serial answer of its place in the order.
func TestBatchingMultiQueueOrder(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.entered = make(chan struct{}, 1)
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 1})
	x := multiSet(4, 8)
	y := x[:2] // some of x's buckets
	if _, err := l.AllowAll(t.Context(), "warm-up", x, 1); err != nil {
		t.Fatal(err)
	}
	<-hook.entered
	calls := []multiCall{
		{x, 1},         // in flight, held
		{x, 1}, {x, 1}, // one run
		{x, 3},         // alone, all or none: the shadow limit lacks 3
		{x, 1},         // alone: between two others
		{y, 1},         // alone: another set
		{x, 1}, {x, 1}, // one run: the quota runs out within it
	}
	start := time.Now()
	want := serialMulti(t, "g", calls)
	before := scriptRuns(t, srv.Client())
	hook.delay.Store(int64(200 * time.Millisecond))
	got := make([]ratelimit.MultiResult, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			r, err := l.AllowAll(t.Context(), "g", c.checks, c.n)
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		})
		if i == 0 {
			<-hook.entered
			continue
		}
		for ratelimit.BatchingGroupQueueLen(l, "g") < i {
			time.Sleep(time.Millisecond)
		}
	}
	hook.delay.Store(0)
	wg.Wait()
	slack := time.Since(start) + 10*time.Millisecond
	for i := range calls {
		if d := diffMulti(got[i], want[i], slack); d != "" {
			t.Errorf("call %d: %s", i, d)
		}
	}
	if !want[6].Allowed || want[6].Results[2].Allowed || want[7].Allowed {
		t.Fatalf("the serial run does not test what it should: %v", want)
	}
	if runs := scriptRuns(t, srv.Client()) - before; runs != 6 {
		t.Errorf("%d script runs, want 6: the held one, then [x x] [x cost 3] [x] [y] [x x]", runs)
	}
	if n := ratelimit.BatchingGroupsLen(l); n != 0 {
		t.Errorf("%d groups held once idle, want 0", n)
	}
}

// TestBatchingMultiCancel: a multi-bucket check that leaves before it is
// sent costs nothing; one that leaves after is counted; neither waits.
func TestBatchingMultiCancel(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.entered = make(chan struct{}, 1)
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 1})
	checks := []ratelimit.Check{
		{Key: "a", Limit: ratelimit.Limit{Rate: 3, Period: time.Hour}},
		{Key: "q", Quota: 10, Period: ratelimit.Day},
	}
	if _, err := l.AllowAll(t.Context(), "warm-up", checks, 1); err != nil {
		t.Fatal(err)
	}
	<-hook.entered
	hook.delay.Store(int64(150 * time.Millisecond))
	type answer struct {
		r   ratelimit.MultiResult
		err error
	}
	async := func(ctx context.Context, group string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			r, err := l.AllowAll(ctx, group, checks, 1)
			ch <- answer{r, err}
		}()
		return ch
	}
	remaining := func(a answer) int {
		if a.err != nil || !a.r.Allowed {
			return -1
		}
		return a.r.Results[0].Remaining
	}

	t.Run("BeforeSent", func(t *testing.T) {
		first := async(t.Context(), "a")
		<-hook.entered
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := l.AllowAll(ctx, "a", checks, 1); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("leaving caller: err %v after %v, want DeadlineExceeded after 20ms", err, time.Since(start))
		}
		third := async(t.Context(), "a")
		if a := <-first; remaining(a) != 2 {
			t.Fatalf("first: %+v", a)
		}
		if a := <-third; remaining(a) != 1 || a.r.Results[1].Remaining != 8 {
			t.Fatalf("third: %+v, want 1 and 8 remaining: the caller that left was not counted", a)
		}
	})

	t.Run("AfterSent", func(t *testing.T) {
		select {
		case <-hook.entered:
		default:
		}
		first := async(t.Context(), "b")
		<-hook.entered
		ctx, cancel := context.WithCancel(t.Context())
		second := async(ctx, "b")
		for ratelimit.BatchingGroupQueueLen(l, "b") < 1 {
			time.Sleep(time.Millisecond)
		}
		if a := <-first; remaining(a) != 2 {
			t.Fatalf("first: %+v", a)
		}
		<-hook.entered // second, sent by a worker, held
		start := time.Now()
		cancel()
		if a := <-second; !errors.Is(a.err, context.Canceled) || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("cancelled in flight: %+v after %v, want context.Canceled at once", a, time.Since(start))
		}
		hook.delay.Store(0)
		if a := <-async(t.Context(), "b"); remaining(a) != 0 || a.r.Results[1].Remaining != 7 {
			t.Fatalf("after a cancelled check: %+v, want 0 and 7 remaining", a)
		}
	})
}

// TestBatchingMultiErrors: with Redis gone, every waiting multi-bucket
// check fails fast with the limiter's error; after a restart (an empty
// script cache) they succeed again. Close answers waiting ones with
// ErrClosed.
func TestBatchingMultiErrors(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{
		Addr:                  srv.Addr(),
		DialTimeout:           200 * time.Millisecond,
		ReadTimeout:           200 * time.Millisecond,
		WriteTimeout:          200 * time.Millisecond,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
	})
	t.Cleanup(func() { client.Close() })
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	checks := multiSet(1000, 1000)
	storm := func() []error {
		var wg sync.WaitGroup
		errs := make([]error, 64)
		start := time.Now()
		for i := range errs {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				_, errs[i] = l.AllowAll(ctx, "g"+strconv.Itoa(i%8), checks, 1)
			})
		}
		wg.Wait()
		// Each round trip gives up after 200 ms; 3 s leaves room for a
		// loaded CI machine under -race and still tells fast from stuck.
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("64 calls took %v", took)
		}
		return errs
	}
	for _, err := range storm() {
		if err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	for i, err := range storm() {
		if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: redis multi-bucket check:") {
			t.Fatalf("call %d with Redis stopped: %v, want the limiter's error", i, err)
		}
	}
	srv.Start()
	for i, err := range storm() {
		if err != nil {
			t.Fatalf("call %d after restart: %v", i, err)
		}
	}

	// Close: calls queued behind a slow round trip get ErrClosed.
	hooked, hook := hookedClient(t, srv)
	hook.entered = make(chan struct{}, 1)
	c := ratelimit.NewBatchingRedis(hooked, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 1})
	hook.delay.Store(int64(300 * time.Millisecond))
	errs := make(chan error, 10)
	go func() { _, err := c.AllowAll(t.Context(), "g", checks, 1); errs <- err }()
	<-hook.entered
	for range 9 {
		go func() { _, err := c.AllowAll(t.Context(), "g", checks, 1); errs <- err }()
	}
	for ratelimit.BatchingGroupQueueLen(c, "g") < 9 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	closed := 0
	for range 10 {
		if err := <-errs; errors.Is(err, ratelimit.ErrClosed) {
			closed++
		}
	}
	if closed != 9 {
		t.Errorf("%d of the 9 calls queued at Close got ErrClosed", closed)
	}
	if _, err := c.AllowAll(t.Context(), "g", checks, 1); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("AllowAll after Close: %v, want ErrClosed", err)
	}
}

// TestBatchingMultiCluster runs hot groups on a three-node Redis Cluster,
// multi-bucket and single checks mixed in the same pipelines, which
// go-redis splits per node: each group admits exactly its quota, each
// Remaining once, in far fewer script runs than calls.
func TestBatchingMultiCluster(t *testing.T) {
	nodes := testenv.StartRedisCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}})
	t.Cleanup(func() { client.Close() })
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 1})
	checks := multiSet(10, 20)
	runs := func() int64 {
		var n int64
		for _, node := range nodes {
			n += scriptRuns(t, node.Client())
		}
		return n
	}
	before := runs()
	const groups, calls = 6, 60
	var (
		mu        sync.Mutex
		remaining [groups]map[int]int
		wg        sync.WaitGroup
	)
	for g := range remaining {
		remaining[g] = make(map[int]int)
	}
	for i := range groups * calls {
		wg.Go(func() {
			g := i % groups
			if i%5 == 0 {
				// A single bucket of another key, sharing the pipelines.
				if _, err := l.Allow(t.Context(), "single"+strconv.Itoa(g), ratelimit.PerMinute(1000)); err != nil {
					t.Error(err)
				}
			}
			r, err := l.AllowAll(t.Context(), "group-"+strconv.Itoa(g), checks, 1)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Allowed {
				mu.Lock()
				remaining[g][r.Results[3].Remaining]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for g, rem := range remaining {
		if len(rem) != 20 {
			t.Errorf("group %d: %d distinct quota Remaining among admissions, want 20: %v", g, len(rem), rem)
		}
		for r, n := range rem {
			if n != 1 || r < 0 || r >= 20 {
				t.Errorf("group %d: quota Remaining %d reported %d times", g, r, n)
			}
		}
	}
	n := runs() - before
	t.Logf("%d multi-bucket and %d single calls: %d script runs", groups*calls, groups*calls/5, n)
	if n >= groups*calls {
		t.Errorf("%d script runs for %d multi-bucket calls on %d groups: not coalesced", n, groups*calls, groups)
	}
}

// TestBatchingMultiGroupsShareTrips checks that multi-bucket checks of
// different groups share round trips, as single buckets do.
func TestBatchingMultiGroupsShareTrips(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.delay.Store(int64(20 * time.Millisecond))
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	checks := multiSet(10, 20)
	if _, err := l.AllowAll(t.Context(), "warm-up", checks, 1); err != nil {
		t.Fatal(err)
	}
	tripsBefore, runsBefore := hook.trips(), scriptRuns(t, srv.Client())
	const groups = 200
	var (
		wg      sync.WaitGroup
		correct atomic.Int64
	)
	start := make(chan struct{})
	for i := range groups {
		wg.Go(func() {
			<-start
			r, err := l.AllowAll(t.Context(), "g"+strconv.Itoa(i), checks, 1)
			if err == nil && r.Allowed && r.Results[0].Remaining == 29 && r.Results[3].Remaining == 19 {
				correct.Add(1)
			} else {
				t.Errorf("group %d: %+v, %v", i, r, err)
			}
		})
	}
	close(start)
	wg.Wait()
	trips, runs := hook.trips()-tripsBefore, scriptRuns(t, srv.Client())-runsBefore
	t.Logf("%d groups: %d round trips, %d script runs", groups, trips, runs)
	// One round trip per group would be 200; sharing pipelines takes a
	// few, and a loaded machine that starts the callers apart a few more.
	if trips >= groups/4 {
		t.Errorf("%d groups checked together took %d round trips, want far fewer", groups, trips)
	}
	if runs != groups {
		t.Errorf("%d script runs for %d groups, want one each", runs, groups)
	}
}

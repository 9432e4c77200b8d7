package ratelimit_test

import (
	"context"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// TestBatchingScriptAllOrNone checks the script's "all or none" mode
// directly: n admitted whole or not at all, a refusal costs nothing, and
// remaining and retry_after still speak of one request.
func TestBatchingScriptAllOrNone(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	const e = 6 * time.Minute
	type reply struct {
		admitted, remaining    int
		retryAfter, resetAfter time.Duration
	}
	call := func(key string, n int) reply {
		t.Helper()
		a, r, retry, reset, err := ratelimit.BatchingAllowAll(t.Context(), l, key, lim, n)
		if err != nil {
			t.Fatalf("all or none of %d: %v", n, err)
		}
		return reply{a, r, retry, reset}
	}
	if got, want := call("k", 4), (reply{4, 6, 0, 4 * e}); got != want {
		t.Fatalf("4 from a full bucket: %+v, want %+v", got, want)
	}
	// 7 do not fit in 6: nothing admitted, and the 6 are still there.
	if got := call("k", 7); got.admitted != 0 || got.remaining != 6 || got.retryAfter != 0 ||
		got.resetAfter > 4*e || got.resetAfter < 4*e-time.Second {
		t.Fatalf("7 from a bucket of 6: %+v, want none admitted, 6 remaining, reset in about %v", got, 4*e)
	}
	got := call("k", 6)
	if got.admitted != 6 || got.remaining != 0 || got.retryAfter > e || got.retryAfter < e-time.Second || got.retryAfter+9*e != got.resetAfter {
		t.Fatalf("6 from a bucket of 6: %+v, want all admitted and the next in about %v", got, e)
	}
	// Empty: refused, unchanged, with retry_after that of one request.
	again := call("k", 2)
	if again.admitted != 0 || again.remaining != 0 || again.retryAfter > got.retryAfter || again.retryAfter+9*e != again.resetAfter {
		t.Fatalf("2 from an empty bucket: %+v after %+v, want nothing admitted and nothing changed", again, got)
	}
	// Above the burst, however large: refused, without overflow.
	for _, n := range []int{11, math.MaxInt} {
		if got := call("fresh", n); got != (reply{0, 10, 0, 0}) {
			t.Fatalf("%d from a full bucket of 10: %+v, want none admitted and the bucket untouched", n, got)
		}
	}
}

// TestBatchingAllowNKeepsOrder queues checks of cost 1 and n behind one in
// flight and checks that they are answered as if applied one after another
// in arrival order, a cost-n check alone in its script run and cost-1
// checks around it still coalesced.
func TestBatchingAllowNKeepsOrder(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.entered = make(chan struct{}, 1)
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 1})
	lim := ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	const e = 6 * time.Minute
	if _, err := l.Allow(t.Context(), "warm-up", lim); err != nil {
		t.Fatal(err)
	}
	<-hook.entered
	before := scriptRuns(t, srv.Client())

	type answer struct {
		r   ratelimit.Result
		err error
	}
	async := func(n int) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			var a answer
			if n == 1 {
				a.r, a.err = l.Allow(t.Context(), "k", lim)
			} else {
				a.r, a.err = l.AllowN(t.Context(), "k", lim, n)
			}
			ch <- a
		}()
		return ch
	}
	hook.delay.Store(int64(200 * time.Millisecond))
	first := async(1)
	<-hook.entered // in flight, held: the rest queue behind it
	steps := []struct {
		n         int
		allowed   bool
		remaining int
		retry     time.Duration // for a refusal
	}{
		{1, true, 8, 0},
		{5, true, 3, 0},
		{1, true, 2, 0},
		{4, false, 0, 2 * e}, // 4 do not fit in 2; fit 2 intervals later
		{1, true, 1, 0},      // the refusal cost nothing
		{1, true, 0, 0},
		{2, false, 0, 2 * e}, // from the deny entry: one fits in e, two in 2e
	}
	answers := make([]<-chan answer, len(steps))
	for i, s := range steps {
		answers[i] = async(s.n)
		for ratelimit.BatchingQueueLen(l, "k") != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	hook.delay.Store(0)
	if a := <-first; a.err != nil || !a.r.Allowed || a.r.Remaining != 9 {
		t.Fatalf("first: %+v", a)
	}
	for i, s := range steps {
		a := <-answers[i]
		r := a.r
		if a.err != nil || r.Allowed != s.allowed || r.Remaining != s.remaining {
			t.Fatalf("step %d (cost %d): %+v, %v, want allowed=%v remaining %d", i, s.n, r, a.err, s.allowed, s.remaining)
		}
		if !s.allowed && (r.RetryAfter > s.retry || r.RetryAfter < s.retry-time.Second) {
			t.Fatalf("step %d (cost %d): RetryAfter %v, want about %v", i, s.n, r.RetryAfter, s.retry)
		}
	}
	// first; then [1], [5], [1], [4], and [1 1] coalesced; the last
	// refused locally.
	if runs := scriptRuns(t, srv.Client()) - before; runs != 6 {
		t.Fatalf("%d script runs, want 6: one per cost-n check, one per run of cost-1 checks between them", runs)
	}
}

// TestBatchingAllowNDenyCache checks the deny cache with checks of cost n:
// a refused cost-n check that leaves room for smaller ones sets no entry,
// and an entry refuses checks of any cost locally.
func TestBatchingAllowNDenyCache(t *testing.T) {
	srv := testenv.StartRedis(t)
	stats := srv.Client()
	l := newBatching(t, srv.Client(), testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.Limit{Rate: 4, Period: 20 * time.Second, Burst: 4} // 5 s interval
	const e = 5 * time.Second
	allowN := func(n int) ratelimit.Result {
		t.Helper()
		r, err := l.AllowN(t.Context(), "k", lim, n)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := allowN(2); !r.Allowed || r.Remaining != 2 {
		t.Fatalf("2 of 4: %+v", r)
	}
	before := scriptRuns(t, stats)
	if r := allowN(3); r.Allowed || r.RetryAfter > e || r.RetryAfter < e-time.Second {
		t.Fatalf("3 with 2 left: %+v, want refused for about %v", r, e)
	}
	// The refusal left 2: a deny entry set from it would refuse these.
	for i := range 2 {
		if r := allowN(1); !r.Allowed || r.Remaining != 1-i {
			t.Fatalf("Allow %d after a refused AllowN(3): %+v, want admitted", i, r)
		}
	}
	if runs := scriptRuns(t, stats) - before; runs != 3 {
		t.Fatalf("%d script runs, want 3: the refused AllowN must not have set a deny entry", runs)
	}
	// Empty now, known from the last reply: every cost refused locally.
	before = scriptRuns(t, stats)
	for _, n := range []int{1, 3, 4} {
		r := allowN(n)
		want := time.Duration(n) * e // one fits in e, n in n intervals
		if r.Allowed || r.Remaining != 0 || r.RetryAfter > want || r.RetryAfter < want-time.Second || r.ResetAfter > 4*e || r.ResetAfter < 4*e-time.Second {
			t.Fatalf("cost %d on an empty bucket: %+v, want refused for about %v, full in about %v", n, r, want, 4*e)
		}
	}
	if r := allowN(5); r.Allowed || r.RetryAfter != r.ResetAfter {
		t.Fatalf("cost 5, above the burst, on an empty bucket: %+v, want refused with RetryAfter = ResetAfter", r)
	}
	if runs := scriptRuns(t, stats) - before; runs != 0 {
		t.Fatalf("%d script runs while the bucket was known empty, want 0", runs)
	}
}

// TestBatchingAllowNPipelines checks that cost-n checks of different
// buckets still share round trips.
func TestBatchingAllowNPipelines(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.delay.Store(int64(20 * time.Millisecond))
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.PerMinute(10)
	if _, err := l.Allow(t.Context(), "warm-up", lim); err != nil {
		t.Fatal(err)
	}
	tripsBefore := hook.trips()
	const keys = 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range keys {
		wg.Go(func() {
			<-start
			r, err := l.AllowN(t.Context(), "key"+strconv.Itoa(i), lim, 3)
			if err != nil || !r.Allowed || r.Remaining != 7 {
				t.Errorf("key %d: %+v, %v, want admitted with 7 remaining", i, r, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if trips := hook.trips() - tripsBefore; trips >= keys/10 {
		t.Errorf("%d keys checked together took %d round trips, want far fewer", keys, trips)
	}
}

// TestBatchingAllowNSharesRedisBuckets checks that RedisLimiter and
// BatchingRedisLimiter agree on AllowN on one shared bucket: alternating
// between them, the answers are those of one limiter, here the in-process
// one run on a bucket of its own alongside.
func TestBatchingAllowNSharesRedisBuckets(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	prefix := testenv.UniquePrefix(t)
	plain, batching := ratelimit.NewRedis(client, prefix), newBatching(t, client, prefix, ratelimit.BatchingOptions{})
	mem := ratelimit.NewMemory()
	lim := ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	ctx := context.Background()
	costs := []int{3, 2, 1, 4, 2, 1, 1, 2, 11, 11, 1}
	admitted := 0
	for i, n := range costs {
		l, name := ratelimit.Limiter(plain), "redis"
		if i%2 == 1 {
			l, name = batching, "batching"
		}
		got, err := l.AllowN(ctx, "shared", lim, n)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := mem.AllowN(ctx, "shared", lim, n)
		if got.Allowed != want.Allowed || got.Remaining != want.Remaining ||
			abs(got.RetryAfter-want.RetryAfter) > 10*time.Millisecond || abs(got.ResetAfter-want.ResetAfter) > 10*time.Millisecond {
			t.Errorf("call %d, cost %d, by %s: %+v, want as in process %+v", i, n, name, got, want)
		}
		if got.Allowed {
			admitted += n
		}
	}
	// 3+2+1+4 = 10, then refusals: the sequence reaches both outcomes.
	if admitted != 10 {
		t.Errorf("admitted %d requests' worth, want 10", admitted)
	}
}

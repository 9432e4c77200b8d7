package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/ratelimit/limitertest"
)

func newBatching(t testing.TB, client redis.UniversalClient, prefix string, opts ratelimit.BatchingOptions) *ratelimit.BatchingRedisLimiter {
	l := ratelimit.NewBatchingRedis(client, prefix, opts)
	t.Cleanup(func() { l.Close() })
	return l
}

// tripHook counts the round trips a client makes (a command or a pipeline
// each) and can hold each one for a while, to make commands queue up
// behind it deterministically. It is instrumentation of a real client, not
// a fake: every command still goes to Redis.
type tripHook struct {
	commands, pipelines atomic.Int64
	delay               atomic.Int64  // ns each round trip is held
	entered             chan struct{} // if set, told of each round trip
}

func (h *tripHook) trips() int64 { return h.commands.Load() + h.pipelines.Load() }

func (h *tripHook) hold(ctx context.Context) {
	if h.entered != nil {
		select {
		case h.entered <- struct{}{}:
		default:
		}
	}
	if d := time.Duration(h.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
}

func (h *tripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.commands.Add(1)
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			h.hold(ctx) // not the commands that set up a connection
		}
		return next(ctx, cmd)
	}
}

func (h *tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		h.hold(ctx)
		return next(ctx, cmds)
	}
}

// hookedClient is a client of srv with a tripHook.
func hookedClient(t testing.TB, srv *testenv.Redis) (*redis.Client, *tripHook) {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	h := &tripHook{}
	c.AddHook(h)
	return c, h
}

// scriptRuns is how many EVALSHA and EVAL commands the server has run, by
// its own INFO commandstats: what the limiter cost Redis. An EVALSHA that
// failed with NOSCRIPT counts too: it was a command sent.
func scriptRuns(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	var n int64
	for line := range strings.Lines(info) {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			t.Fatalf("INFO commandstats: %q: %v", line, err)
		}
		n += v
	}
	return n
}

func TestBatchingConformance(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	limitertest.Run(t, func(t *testing.T) ratelimit.Limiter {
		return newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	})
}

func TestBatchingMultiConformance(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	limitertest.RunMulti(t, func(t *testing.T) ratelimit.Limiter {
		return newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	})
}

// TestBatchingMatchesReference drives the in-process, plain Redis and
// batching limiters through one sequence of single calls: the two Redis
// limiters must agree with the in-process one (Redis's clock and ours
// are compared from the instant a request comes back; Remaining may
// differ by float rounding in redis_rate's script), and with one caller
// batching must change nothing. The calls after a refusal are answered by
// the deny cache, on the local clock, and must still match.
func TestBatchingMatchesReference(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	limiters := []ratelimit.Limiter{
		ratelimit.NewMemory(),
		ratelimit.NewRedis(client, testenv.UniquePrefix(t)),
		newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{}),
	}
	lim := ratelimit.Limit{Rate: 8, Period: time.Second, Burst: 8} // 125 ms interval
	// The first call of a Redis limiter dials and loads its script: slower
	// than the next ones by more than the tolerance on a busy machine,
	// which would shift its clock against the in-process one for the
	// whole sequence. Warmed up on another bucket, they start together.
	for _, l := range limiters {
		if _, err := l.Allow(t.Context(), "warm-up", lim); err != nil {
			t.Fatal(err)
		}
	}
	// The three clocks are compared to 10 ms. A machine that stalls one
	// round of calls for longer than that (CI's two cores, other packages'
	// tests running), or a refill that falls between the calls of one
	// round, moves a call across the refill and proves nothing either
	// way: such a run is made again, on a fresh bucket, up to three times;
	// the failures of a run without either stand.
	var failures []string
	for attempt := range 3 {
		var stalled bool
		failures, stalled = matchReference(t, limiters, lim, fmt.Sprintf("k%d", attempt))
		if len(failures) == 0 || !stalled {
			break
		}
		t.Logf("run %d: a call stalled past the tolerance, running again: %v", attempt+1, failures)
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// matchReference runs the sequence of TestBatchingMatchesReference on key
// and returns what did not match, and whether a round of calls took
// longer than the tolerance or straddled a refill.
func matchReference(t *testing.T, limiters []ratelimit.Limiter, lim ratelimit.Limit, key string) (failures []string, stalled bool) {
	const tolerance = 10 * time.Millisecond
	steps := []struct {
		wait  time.Duration
		calls int
	}{{0, 10}, {190 * time.Millisecond, 3}, {250 * time.Millisecond, 4}, {625 * time.Millisecond, 9}}
	admitted := 0
	for si, s := range steps {
		time.Sleep(s.wait)
		for c := range s.calls {
			var rs [3]ratelimit.Result
			start := time.Now()
			for i, l := range limiters {
				r, err := l.Allow(t.Context(), key, lim)
				if err != nil {
					t.Fatal(err)
				}
				rs[i] = r
			}
			took := time.Since(start)
			if took > tolerance {
				stalled = true
			}
			for i, name := range []string{"redis", "batching"} {
				mem, other := rs[0], rs[i+1]
				if mem.Allowed != other.Allowed {
					// A refill that fell between the calls of one round
					// (the refused one would have been admitted within the
					// round's time) decides nothing either.
					refused := mem
					if mem.Allowed {
						refused = other
					}
					if refused.RetryAfter <= took+time.Millisecond {
						stalled = true
					}
				}
				if mem.Allowed != other.Allowed || abs(mem.Remaining-other.Remaining) > 1 ||
					abs(mem.RetryAfter-other.RetryAfter) > tolerance || abs(mem.ResetAfter-other.ResetAfter) > tolerance {
					failures = append(failures, fmt.Sprintf("step %d call %d: memory %+v, %s %+v", si, c, mem, name, other))
				}
			}
			if rs[0].Allowed {
				admitted++
			}
		}
	}
	// 8 + 1 + 2 + 5, by the arithmetic of the steps: a sequence where the
	// limiters admit everything, or nothing, would not compare anything.
	if admitted != 16 {
		failures = append(failures, fmt.Sprintf("admitted %d requests, want 16", admitted))
	}
	return failures, stalled
}

// TestBatchingSharesRedisBuckets checks the key layout and format: the two
// Redis limiters on one prefix share each bucket, so a fleet can switch
// from one to the other instance by instance under one exact limit.
func TestBatchingSharesRedisBuckets(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	prefix := testenv.UniquePrefix(t)
	plain, batching := ratelimit.NewRedis(client, prefix), newBatching(t, client, prefix, ratelimit.BatchingOptions{})

	r, err := batching.Allow(t.Context(), "apikey:42", ratelimit.PerMinute(10))
	if err != nil || !r.Allowed {
		t.Fatalf("first call: %+v, %v", r, err)
	}
	keys, err := client.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := "rate:" + prefix + ":rl:{apikey:42}"
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys %q, want [%q]", keys, want)
	}
	if ttl, err := client.PTTL(t.Context(), want).Result(); err != nil || ttl <= 5900*time.Millisecond || ttl > 6*time.Second {
		t.Fatalf("TTL of %s: %v, %v, want about 6s, the time until it is full again", want, ttl, err)
	}

	// Alternate the limiters on one bucket: the Remaining values must run
	// down as one sequence, whichever wrote the bucket last.
	lim := ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	for i := range 12 {
		l := ratelimit.Limiter(plain)
		if i%2 == 1 {
			l = batching
		}
		r, err := l.Allow(t.Context(), "shared", lim)
		if err != nil {
			t.Fatal(err)
		}
		if wantAllowed := i < 10; r.Allowed != wantAllowed || (wantAllowed && r.Remaining != 9-i) {
			t.Fatalf("call %d (%T): allowed=%v remaining=%d, want allowed=%v remaining=%d", i, l, r.Allowed, r.Remaining, wantAllowed, 9-i)
		}
		if want := time.Duration(i+1) * 6 * time.Minute; i < 10 && (r.ResetAfter > want || r.ResetAfter < want-time.Second) {
			t.Fatalf("call %d (%T): ResetAfter %v, want about %v", i, l, r.ResetAfter, want)
		}
	}
}

// TestBatchingScript checks the "admit at most n" script directly: never
// more than the bucket holds, a refusal costs nothing, and the arithmetic
// is in exact nanoseconds.
func TestBatchingScript(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	const e = 6 * time.Minute
	ctx := t.Context()
	type reply struct {
		admitted, remaining    int
		retryAfter, resetAfter time.Duration
	}
	call := func(key string, lim ratelimit.Limit, n int) reply {
		t.Helper()
		a, r, retry, reset, err := ratelimit.BatchingAllowN(ctx, l, key, lim, n)
		if err != nil {
			t.Fatalf("allow at most %d: %v", n, err)
		}
		return reply{a, r, retry, reset}
	}
	// A fresh bucket is measured from the very now of the script: exact.
	if got, want := call("k", lim, 4), (reply{4, 6, 0, 4 * e}); got != want {
		t.Fatalf("4 from a full bucket: %+v, want %+v", got, want)
	}
	// Asking for more than the bucket holds admits what it holds.
	got := call("k", lim, 10)
	if got.admitted != 6 || got.remaining != 0 || got.retryAfter > e || got.retryAfter < e-time.Second ||
		got.resetAfter > 10*e || got.resetAfter < 10*e-time.Second || got.retryAfter+9*e != got.resetAfter {
		t.Fatalf("10 from a bucket of 6: %+v, want 6 admitted, retry in about %v and reset in about %v", got, e, 10*e)
	}
	// An empty bucket admits nothing, and refusing does not move it.
	again := call("k", lim, 3)
	if again.admitted != 0 || again.remaining != 0 || again.retryAfter > got.retryAfter || again.resetAfter > got.resetAfter ||
		got.resetAfter-again.resetAfter > time.Second || again.retryAfter+9*e != again.resetAfter {
		t.Fatalf("3 from an empty bucket: %+v after %+v, want nothing admitted and nothing changed", again, got)
	}
	// A burst lowered under a deep bucket: nothing until it drains below.
	low := ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 5}
	if r := call("k", low, 1); r.admitted != 0 || r.retryAfter < 6*e-time.Second || r.retryAfter > 6*e {
		t.Fatalf("burst lowered to 5 under 10 used: %+v, want refused for about %v", r, 6*e)
	}
	// Sub-microsecond intervals stay exact: 3 per second is 333,333,333 ns.
	odd := ratelimit.Limit{Rate: 3, Period: time.Second, Burst: 3}
	if got, want := call("odd", odd, 2), (reply{2, 1, 0, 666_666_666}); got != want {
		t.Fatalf("2 of 3/s: %+v, want %+v", got, want)
	}
}

// TestBatchingHotKeyIsSequential hammers one key from 64 goroutines: the
// admissions must be exactly the burst, and each admitted call must see
// what it would have seen had the calls run one after another.
func TestBatchingHotKeyIsSequential(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.Limit{Rate: 100, Period: time.Hour, Burst: 100}
	const e = 36 * time.Second
	const workers, calls = 64, 50
	before := scriptRuns(t, client)
	var (
		mu        sync.Mutex
		remaining = make(map[int]int)
		bad       []string
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			for range calls {
				r, err := l.Allow(t.Context(), "hot", lim)
				mu.Lock()
				switch {
				case err != nil:
					bad = append(bad, err.Error())
				case r.Allowed:
					remaining[r.Remaining]++
					// The i-th admission pushed the reset i intervals out.
					if want := time.Duration(lim.Burst-r.Remaining) * e; r.RetryAfter != 0 || r.ResetAfter > want || r.ResetAfter < want-time.Second {
						bad = append(bad, fmt.Sprintf("admitted with remaining %d: %+v, want ResetAfter about %v", r.Remaining, r, want))
					}
				case r.Remaining != 0 || r.RetryAfter <= 0 || r.RetryAfter > e || r.ResetAfter < lim.Period-time.Second || r.ResetAfter > lim.Period:
					bad = append(bad, fmt.Sprintf("refused: %+v", r))
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for i, b := range bad {
		if i == 5 {
			t.Errorf("... %d more", len(bad)-i)
			break
		}
		t.Error(b)
	}
	total := 0
	for rem, n := range remaining {
		total += n
		if n != 1 || rem < 0 || rem >= lim.Burst {
			t.Errorf("Remaining %d reported by %d admitted calls, want once", rem, n)
		}
	}
	if total != lim.Burst {
		t.Errorf("%d calls: %d admitted, want exactly %d", workers*calls, total, lim.Burst)
	}
	// Every run but the last admits something, and the last empties the
	// bucket, after which the deny cache answers alone.
	runs := scriptRuns(t, client) - before
	t.Logf("%d calls, %d script runs", workers*calls, runs)
	if runs > int64(lim.Burst) {
		t.Errorf("%d script runs for %d calls on one key, want at most %d", runs, workers*calls, lim.Burst)
	}
}

// TestBatchingInstancesShareExactLimit runs three limiters, as three
// FlagBridge instances would, on one key: together they admit exactly the
// burst, each Remaining once.
func TestBatchingInstancesShareExactLimit(t *testing.T) {
	srv := testenv.StartRedis(t)
	prefix := testenv.UniquePrefix(t)
	lim := ratelimit.Limit{Rate: 100, Period: time.Hour, Burst: 100}
	var (
		mu        sync.Mutex
		remaining = make(map[int]int)
		perInst   [3]int
		errs      []error
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	for inst := range 3 {
		l := newBatching(t, srv.Client(), prefix, ratelimit.BatchingOptions{MaxInFlight: inst + 1})
		for range 16 {
			wg.Go(func() {
				<-start
				for range 20 {
					r, err := l.Allow(t.Context(), "shared", lim)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else if r.Allowed {
						remaining[r.Remaining]++
						perInst[inst]++
					}
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	total := 0
	for rem, n := range remaining {
		total += n
		if n != 1 || rem < 0 || rem >= lim.Burst {
			t.Errorf("Remaining %d reported by %d admitted calls, want once", rem, n)
		}
	}
	t.Logf("admitted per instance: %v", perInst)
	if total != lim.Burst {
		t.Fatalf("three instances admitted %d, want exactly %d", total, lim.Burst)
	}
}

func TestBatchingDenyCache(t *testing.T) {
	srv := testenv.StartRedis(t)
	stats := srv.Client()
	l := newBatching(t, srv.Client(), testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.Limit{Rate: 4, Period: 2 * time.Second, Burst: 4} // 500 ms interval
	allow := func(lim ratelimit.Limit) ratelimit.Result {
		t.Helper()
		r, err := l.Allow(t.Context(), "k", lim)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := range 4 {
		if r := allow(lim); !r.Allowed || r.Remaining != 3-i {
			t.Fatalf("call %d: %+v, want admitted with %d remaining", i, r, 3-i)
		}
	}
	// The call that emptied the bucket set the entry: from now on, no
	// command until RetryAfter has passed.
	before := scriptRuns(t, stats)
	var last ratelimit.Result
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		r := allow(lim)
		if r.Allowed || r.Remaining != 0 || r.RetryAfter <= 0 || r.RetryAfter > 500*time.Millisecond ||
			r.ResetAfter <= 1500*time.Millisecond || r.ResetAfter > 2*time.Second {
			t.Fatalf("denied call %d: %+v, want refused with RetryAfter within (0, 500ms] and ResetAfter about 2s", n, r)
		}
		if n > 0 && (r.RetryAfter > last.RetryAfter || r.ResetAfter > last.ResetAfter) {
			t.Fatalf("denied call %d: %+v after %+v: the countdown went back up", n, r, last)
		}
		last = r
		time.Sleep(time.Millisecond)
	}
	if runs := scriptRuns(t, stats) - before; runs != 0 {
		t.Fatalf("%d script runs while the bucket was known empty, want 0", runs)
	}
	// The countdown reaches the moment GCRA admits again, and Redis agrees.
	time.Sleep(last.RetryAfter + 10*time.Millisecond)
	if r := allow(lim); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("after RetryAfter: %+v, want one admitted", r)
	}
	if runs := scriptRuns(t, stats) - before; runs != 1 {
		t.Fatalf("%d script runs for the admission after RetryAfter, want 1", runs)
	}
	// Empty again: refused locally under the same limit, but a reloaded
	// limit must be checked by Redis.
	if r := allow(lim); r.Allowed {
		t.Fatalf("bucket just emptied admitted %+v", r)
	}
	reloaded := ratelimit.Limit{Rate: 4, Period: 2 * time.Second, Burst: 5}
	r := allow(reloaded)
	if runs := scriptRuns(t, stats) - before; runs != 2 {
		t.Fatalf("%d script runs after a call under a reloaded limit, want 2", runs)
	}
	if r.Limit != reloaded {
		t.Fatalf("reloaded limit: got Result.Limit %+v", r.Limit)
	}
}

// TestBatchingPipelines checks that checks of different keys share round
// trips. Each round trip is held 20 ms, so that the 200 calls released
// together queue up behind the first ones.
func TestBatchingPipelines(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.delay.Store(int64(20 * time.Millisecond))
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.PerMinute(10)
	// Load the script: on a fresh server every EVALSHA would first fail
	// with NOSCRIPT and go again as EVAL.
	if _, err := l.Allow(t.Context(), "warm-up", lim); err != nil {
		t.Fatal(err)
	}
	before, tripsBefore := scriptRuns(t, srv.Client()), hook.trips()
	const keys = 200
	var (
		wg    sync.WaitGroup
		wrong atomic.Int64
	)
	start := make(chan struct{})
	for i := range keys {
		wg.Go(func() {
			<-start
			r, err := l.Allow(t.Context(), "key"+strconv.Itoa(i), lim)
			if err != nil || !r.Allowed || r.Remaining != 9 {
				t.Errorf("key %d: %+v, %v, want admitted with 9 remaining", i, r, err)
				wrong.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	trips, runs := hook.trips()-tripsBefore, scriptRuns(t, srv.Client())-before
	t.Logf("%d keys: %d round trips (%d pipelines), %d script runs", keys, trips, hook.pipelines.Load(), runs)
	if trips >= keys/10 {
		t.Errorf("%d keys checked together took %d round trips, want far fewer", keys, trips)
	}
	if runs != keys {
		t.Errorf("%d script runs for %d distinct keys, want one each", runs, keys)
	}
}

// TestBatchingMixedLimits checks a key checked under two limits at once (a
// configuration reload mid-traffic): each caller's answer is under its own
// limit, and both limits apply to the one bucket.
func TestBatchingMixedLimits(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 1})
	limits := []ratelimit.Limit{
		{Rate: 10, Period: time.Hour, Burst: 10},
		{Rate: 10, Period: time.Hour, Burst: 20},
	}
	var (
		wg       sync.WaitGroup
		admitted [2]atomic.Int64
	)
	for i := range 32 {
		wg.Go(func() {
			lim := limits[i%2]
			for range 10 {
				r, err := l.Allow(t.Context(), "k", lim)
				if err != nil || r.Limit != lim {
					t.Errorf("under %+v: %+v, %v", lim, r, err)
					return
				}
				if r.Allowed {
					admitted[i%2].Add(1)
				}
			}
		})
	}
	wg.Wait()
	// One bucket, one interval: the larger burst caps the total, and the
	// smaller one can have taken no more than its own.
	a, b := admitted[0].Load(), admitted[1].Load()
	if a+b != 20 || a > 10 {
		t.Fatalf("admitted %d under burst 10 and %d under burst 20, want 20 in total and at most 10 under the first", a, b)
	}
}

// TestBatchingRedisDown checks that when Redis is gone every waiting call
// gets an error quickly, none hangs, and the limiter recovers by itself,
// script cache lost, when Redis is back.
func TestBatchingRedisDown(t *testing.T) {
	lim := ratelimit.Limit{Rate: 100, Period: time.Minute, Burst: 100}
	newClient := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{
			Addr:                  addr,
			DialTimeout:           200 * time.Millisecond,
			ReadTimeout:           200 * time.Millisecond,
			WriteTimeout:          200 * time.Millisecond,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
		})
		t.Cleanup(func() { c.Close() })
		return c
	}
	// storm makes 64 concurrent calls over 8 keys and returns their errors.
	storm := func(t *testing.T, l ratelimit.Limiter) []error {
		t.Helper()
		var (
			wg   sync.WaitGroup
			errs = make([]error, 64)
		)
		start := time.Now()
		for i := range errs {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				_, errs[i] = l.Allow(ctx, "k"+strconv.Itoa(i%8), lim)
			})
		}
		wg.Wait()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("64 calls took %v", took)
		}
		return errs
	}
	mustFail := func(t *testing.T, l ratelimit.Limiter) {
		t.Helper()
		for i, err := range storm(t, l) {
			// The limiter's own error, not the caller's deadline.
			if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: redis limiter:") {
				t.Fatalf("call %d: err %v, want a Redis error", i, err)
			}
		}
	}

	t.Run("Stopped", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		l := newBatching(t, newClient(srv.Addr()), testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
		for _, err := range storm(t, l) {
			if err != nil {
				t.Fatal(err)
			}
		}
		srv.Stop()
		mustFail(t, l)
		mustFail(t, l)
		srv.Start() // with an empty script cache: NOSCRIPT on every key
		for i, err := range storm(t, l) {
			if err != nil {
				t.Fatalf("call %d after restart: %v", i, err)
			}
		}
	})

	t.Run("Unresponsive", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { ln.Close(); wg.Wait() })
		wg.Go(func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { io.Copy(io.Discard, conn); conn.Close() })
			}
		})
		mustFail(t, newBatching(t, newClient(ln.Addr().String()), "p", ratelimit.BatchingOptions{}))

		// With client timeouts far off, the limiter's own Timeout must end
		// the round trips.
		slow := redis.NewClient(&redis.Options{
			Addr:                  ln.Addr().String(),
			ReadTimeout:           time.Minute,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
		})
		t.Cleanup(func() { slow.Close() })
		mustFail(t, newBatching(t, slow, "p", ratelimit.BatchingOptions{Timeout: 200 * time.Millisecond}))

		// The Timeout bounds each call, not each round trip: with one
		// round trip at a time, checks queued behind it still end within
		// it (callers without a deadline of their own, as the guard calls
		// a limiter that bounds itself), not one Timeout per trip ahead.
		const timeout = 300 * time.Millisecond
		one := newBatching(t, slow, "q", ratelimit.BatchingOptions{Timeout: timeout, MaxInFlight: 1})
		if d, ok := one.CallBound(); !ok || d != timeout {
			t.Fatalf("CallBound() = %v, %v", d, ok)
		}
		var calls sync.WaitGroup
		took := make([]time.Duration, 6)
		start := time.Now()
		for i := range took {
			calls.Go(func() {
				_, err := one.Allow(context.Background(), "key"+strconv.Itoa(i), lim)
				took[i] = time.Since(start)
				if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: redis limiter:") {
					t.Errorf("queued call %d: err %v, want the limiter's own", i, err)
				}
			})
		}
		calls.Wait()
		if last := slices.Max(took); last > timeout*3/2 {
			t.Fatalf("six checks queued behind one round trip ended after %v (each: %v); want within the Timeout, %v", last, took, timeout)
		}
	})
}

// TestBatchingCancel checks the rule for callers that leave: one that
// leaves before its check is sent costs nothing; one that leaves after is
// counted; neither waits for the round trip, nor disturbs the others.
func TestBatchingCancel(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	hook.entered = make(chan struct{}, 1)
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 1})
	lim := ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	// Dial and load the script first, so that each check below is one
	// round trip.
	if _, err := l.Allow(t.Context(), "warm-up", lim); err != nil {
		t.Fatal(err)
	}
	<-hook.entered
	hook.delay.Store(int64(150 * time.Millisecond))

	type answer struct {
		r   ratelimit.Result
		err error
	}
	async := func(ctx context.Context, key string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			r, err := l.Allow(ctx, key, lim)
			ch <- answer{r, err}
		}()
		return ch
	}
	leave := func(key string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := l.Allow(ctx, key, lim); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("leaving caller: err %v after %v, want DeadlineExceeded after 20ms", err, time.Since(start))
		}
	}

	t.Run("BeforeSent", func(t *testing.T) {
		first := async(t.Context(), "a")
		<-hook.entered // first is in flight, held 150 ms
		leave("a")     // queued behind it, leaves unsent
		third := async(t.Context(), "a")
		if a := <-first; a.err != nil || !a.r.Allowed || a.r.Remaining != 2 {
			t.Fatalf("first: %+v", a)
		}
		if a := <-third; a.err != nil || !a.r.Allowed || a.r.Remaining != 1 {
			t.Fatalf("third: %+v, want remaining 1: the caller that left was not counted", a)
		}
	})

	t.Run("AfterSent", func(t *testing.T) {
		select {
		case <-hook.entered: // the third call's round trip, above
		default:
		}
		first := async(t.Context(), "b")
		<-hook.entered
		// Queued behind first, then sent in a batch of its own when first
		// returns, and cancelled while that round trip is held.
		ctx, cancel := context.WithCancel(t.Context())
		second := async(ctx, "b")
		if a := <-first; a.err != nil || a.r.Remaining != 2 {
			t.Fatalf("first: %+v", a)
		}
		<-hook.entered
		start := time.Now()
		cancel()
		if a := <-second; !errors.Is(a.err, context.Canceled) || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("cancelled in flight: %+v after %v, want context.Canceled at once", a, time.Since(start))
		}
		hook.delay.Store(0)
		// The round trip went on without its caller and was counted.
		if a := <-async(t.Context(), "b"); a.err != nil || !a.r.Allowed || a.r.Remaining != 0 {
			t.Fatalf("after a cancelled check: %+v, want remaining 0", a)
		}
	})
}

// TestBatchingClose checks that Close stops every goroutine the limiter
// started, answers the calls still waiting, and refuses later ones.
func TestBatchingClose(t *testing.T) {
	srv := testenv.StartRedis(t)
	client, hook := hookedClient(t, srv)
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	settle := func() int {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	baseline := settle()

	l := ratelimit.NewBatchingRedis(client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{MaxInFlight: 3})
	lim := ratelimit.PerMinute(1000)
	// Some traffic, then a slow round trip with calls queued behind it.
	for i := range 100 {
		if _, err := l.Allow(t.Context(), "k"+strconv.Itoa(i%10), lim); err != nil {
			t.Fatal(err)
		}
	}
	hook.delay.Store(int64(300 * time.Millisecond))
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() { _, errs[i] = l.Allow(t.Context(), "k"+strconv.Itoa(i%4), lim) })
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("Close took %v with round trips held 300ms", took)
	}
	wg.Wait()
	// Calls queued get ErrClosed; calls whose check was in flight get its
	// answer: a worker's round trip is cancelled, a caller's own (sent on
	// an idle limiter) ends as a RedisLimiter call would.
	closed := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ratelimit.ErrClosed):
			closed++
		case err != nil && !errors.Is(err, context.Canceled):
			t.Errorf("a call waiting at Close got %v, want ErrClosed, a cancelled round trip or its answer", err)
		}
	}
	if closed == 0 {
		t.Errorf("none of %d calls waiting at Close got ErrClosed: %v", len(errs), errs)
	}
	if _, err := l.Allow(t.Context(), "k", lim); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("Allow after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	n := settle()
	for deadline := time.Now().Add(2 * time.Second); n > baseline && time.Now().Before(deadline); {
		n = settle()
	}
	if n > baseline {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before the limiter:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// TestBatchingForgetsBuckets checks that deny entries do not accumulate:
// once expired, they are swept by later traffic.
func TestBatchingForgetsBuckets(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.Limit{Rate: 1, Period: 100 * time.Millisecond, Burst: 1}
	var wg sync.WaitGroup
	for i := range 2000 {
		wg.Go(func() {
			if r, err := l.Allow(t.Context(), strconv.Itoa(i), lim); err != nil || !r.Allowed {
				t.Errorf("key %d: %+v, %v", i, r, err)
			}
		})
	}
	wg.Wait()
	// Each bucket is empty for 100 ms: each holds a deny entry.
	if n := ratelimit.BatchingLen(l); n != 2000 {
		t.Fatalf("%d buckets held after 2000 emptied, want 2000", n)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := l.Allow(t.Context(), "later", ratelimit.PerMinute(10)); err != nil {
		t.Fatal(err)
	}
	if n := ratelimit.BatchingLen(l); n != 0 {
		t.Fatalf("%d buckets held a second after their entries expired, want 0", n)
	}
}

// TestBatchingCluster runs the limiter on a three-node Redis Cluster,
// where go-redis splits each pipeline per node and each node first answers
// NOSCRIPT.
func TestBatchingCluster(t *testing.T) {
	nodes := testenv.StartRedisCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}})
	t.Cleanup(func() { client.Close() })
	l := newBatching(t, client, testenv.UniquePrefix(t), ratelimit.BatchingOptions{})
	lim := ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}
	const keys = 60
	var (
		wg       sync.WaitGroup
		admitted [keys]atomic.Int64
	)
	for i := range keys * 4 {
		wg.Go(func() {
			r, err := l.Allow(t.Context(), "key"+strconv.Itoa(i%keys), lim)
			if err != nil {
				t.Errorf("key %d: %v", i%keys, err)
			} else if r.Allowed {
				admitted[i%keys].Add(1)
			}
		})
	}
	wg.Wait()
	for i := range admitted {
		if n := admitted[i].Load(); n != 2 {
			t.Errorf("key %d: %d of 4 admitted, want 2", i, n)
		}
	}
	// The buckets spread over the nodes by their hash tags.
	spread := 0
	for _, n := range nodes {
		if size, err := n.Client().DBSize(t.Context()).Result(); err != nil {
			t.Fatal(err)
		} else if size > 0 {
			spread++
		}
	}
	if spread != 3 {
		t.Errorf("%d buckets are on %d of 3 nodes", keys, spread)
	}
}

func BenchmarkBatchingRedisAllow(b *testing.B) {
	for _, inFlight := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("InFlight=%d", inFlight), func(b *testing.B) {
			benchLimiters(b, func(b *testing.B, c redis.UniversalClient, prefix string) ratelimit.Limiter {
				return newBatching(b, c, prefix, ratelimit.BatchingOptions{MaxInFlight: inFlight})
			})
		})
	}
}

// benchLimiters measures a Redis limiter under 16 callers per CPU, on one
// hot key and on 4096 keys, and reports what each call costs Redis: script
// runs and round trips.
func benchLimiters(b *testing.B, newLimiter func(*testing.B, redis.UniversalClient, string) ratelimit.Limiter) {
	lim := ratelimit.PerMinute(1 << 30) // admits everything
	benchRedisCalls(b, func(b *testing.B, c redis.UniversalClient, prefix string) func(string) error {
		l := newLimiter(b, c, prefix)
		return func(key string) error {
			_, err := l.Allow(context.Background(), key, lim)
			return err
		}
	})
}

// benchRedisCalls runs the call newCall makes under 16 callers per CPU, on
// one hot key (or group) and on 4096, and reports what each call costs
// Redis and this process.
func benchRedisCalls(b *testing.B, newCall func(*testing.B, redis.UniversalClient, string) func(key string) error) {
	srv := testenv.StartRedis(b)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "apikey:" + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		name string
		keys []string
	}{{"OneKey", keys[:1]}, {"ManyKeys", keys}} {
		b.Run(tc.name, func(b *testing.B) {
			client, hook := hookedClient(b, srv)
			call := newCall(b, client, testenv.UniquePrefix(b))
			stats := srv.Client()
			runs, trips := scriptRuns(b, stats), hook.trips()
			cpu0, rcpu0 := processCPU(b), serverCPU(b, stats)
			var next atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 997
				for pb.Next() {
					if err := call(tc.keys[i%len(tc.keys)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(scriptRuns(b, stats)-runs)/float64(b.N), "scripts/op")
			b.ReportMetric(float64(hook.trips()-trips)/float64(b.N), "trips/op")
			// CPU per call, which is what the limiter takes from a proxy on
			// the same machine: this process (the benchmark's own loop
			// included) and redis-server.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "client-cpu-ns/op")
			b.ReportMetric(float64(serverCPU(b, stats)-rcpu0)/float64(b.N), "redis-cpu-ns/op")
		})
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is the CPU time redis-server has used, by its INFO cpu.
func serverCPU(b testing.TB, c *redis.Client) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(info) {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_sys" || name == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %q: %v", line, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// TestMultiClusterAndInstances runs multi-bucket checks on a three-node
// Redis Cluster, from three limiters (as three instances would) sharing
// it: a group's buckets must share a slot for one script to reach them,
// and the three must together admit exactly what one bucket set allows.
func TestMultiClusterAndInstances(t *testing.T) {
	nodes := testenv.StartRedisCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}})
	t.Cleanup(func() { client.Close() })
	prefix := testenv.UniquePrefix(t)
	instances := []ratelimit.MultiLimiter{
		newBatching(t, client, prefix, ratelimit.BatchingOptions{}),
		newBatching(t, client, prefix, ratelimit.BatchingOptions{}),
		ratelimit.NewRedis(client, prefix),
	}
	checks := []ratelimit.Check{
		{Key: "burst", Limit: ratelimit.Limit{Rate: 7, Period: time.Hour}},
		{Key: "sustained", Limit: ratelimit.Limit{Rate: 20, Period: 24 * time.Hour}},
		{Key: "quota", Quota: 12, Period: ratelimit.Month},
	}
	const groups = 12
	var (
		wg       sync.WaitGroup
		admitted [groups]atomic.Int64
	)
	for i := range groups * 12 {
		wg.Go(func() {
			g := "customer-" + strconv.Itoa(i%groups)
			r, err := instances[i%3].AllowAll(t.Context(), g, checks, 1)
			if err != nil {
				t.Errorf("group %s: %v", g, err)
			} else if r.Allowed {
				admitted[i%groups].Add(1)
			}
		})
	}
	wg.Wait()
	for i := range admitted {
		if n := admitted[i].Load(); n != 7 {
			t.Errorf("group %d: %d of 12 admitted by three instances, want exactly the burst, 7", i, n)
		}
	}
	spread := 0
	for _, n := range nodes {
		if size, err := n.Client().DBSize(t.Context()).Result(); err != nil {
			t.Fatal(err)
		} else if size > 0 {
			spread++
		}
	}
	if spread < 2 {
		t.Errorf("%d groups' buckets are on %d of 3 nodes: the group, not the prefix, should pick the slot", groups, spread)
	}
}

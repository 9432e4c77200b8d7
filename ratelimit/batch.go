package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by [BatchingRedisLimiter.Allow],
// [BatchingRedisLimiter.AllowN] and [BatchingRedisLimiter.AllowAll] once
// the limiter is closed, including to calls that were still waiting for
// Redis.
var ErrClosed = errors.New("ratelimit: limiter closed")

// Defaults of [BatchingOptions].
const (
	DefaultMaxInFlight    = 2
	DefaultMaxKeysPerTrip = 512
)

const (
	// sweepEvery is how often settle looks for expired deny entries.
	sweepEvery = time.Second
	// batchShrinkMin is the peak size from which an emptied bucket map is
	// reallocated (see shrinkMin).
	batchShrinkMin = 1024
)

// BatchingOptions tune a [BatchingRedisLimiter]. The zero value is the
// default.
type BatchingOptions struct {
	// MaxInFlight is the most round trips to Redis in flight at once
	// (default DefaultMaxInFlight). Checks that arrive while all are busy
	// wait and go together in the next one, so this bounds both the
	// connections used and the Redis work per request: under load, fewer
	// round trips in flight means larger, cheaper batches; when idle, a
	// check still leaves at once.
	MaxInFlight int
	// MaxKeysPerTrip caps the buckets checked in one pipeline (default
	// DefaultMaxKeysPerTrip; a group's bucket set counts as one), so that
	// one round trip's reply stays small and a burst of keys is spread over
	// the round trips in flight.
	MaxKeysPerTrip int
	// Timeout bounds each call, if positive: a round trip sent for the
	// call alone by its deadline, a check queued for a shared round trip by
	// a wait of at most Timeout from when it queued (see
	// [BatchingRedisLimiter.CallBound]). Like every deadline, a round
	// trip's takes effect only if the client has ContextTimeoutEnabled;
	// otherwise the client's own read and write timeouts bound it. Callers
	// are bounded by their own ctx either way.
	Timeout time.Duration
}

// BatchingRedisLimiter is a Limiter shared by every FlagBridge instance, as
// exact as [RedisLimiter] but with far less Redis work per request under
// load. Every answer still comes from the bucket's state in Redis (or, for
// refusals, from what Redis last said of it), with three economies:
//
//   - Coalescing: while a check of bucket K is in flight, further checks of K
//     wait; when it returns, all of them go to Redis as one "admit at most n"
//     run of the GCRA script. The script admits k of the n (as many as the
//     bucket holds, never more) and the waiters get the answers they would
//     have had one after another, in arrival order: the first k admitted,
//     the i-th (from 0) with Remaining = r + (k-1-i) and ResetAfter = R -
//     (k-1-i) × Period/Rate, where r and R are the bucket's after the batch;
//     the rest refused, with Remaining 0, ResetAfter R and the RetryAfter of
//     the next request. A hot key thus costs one script run per round trip,
//     not one per request. This holds for checks of cost 1 (Allow, AllowN
//     with n = 1), whose admissions are a prefix of their queue: once one is
//     refused, so is every later one of the same run.
//   - Checks of cost n > 1 (AllowN) are not coalesced: each goes to Redis
//     alone, as a run of the same script in its "all or none" mode, and its
//     bucket's queue waits behind it as behind any batch. Merging it with
//     cost-1 waiters would break the prefix rule above (a refused n may be
//     followed by admitted 1s), so "at most k" could not answer them. The
//     bucket still has one batch in flight at a time, taken from the head of
//     its queue, so its checks are still answered as if applied one after
//     another in arrival order; a cost-n check may share a pipeline with
//     other buckets' batches.
//   - Multi-bucket checks ([BatchingRedisLimiter.AllowAll]) coalesce the
//     same way, per group: while a check of group G is in flight, further
//     checks of G queue; then the head of the queue, the longest run of
//     cost-1 checks of one bucket set (the same buckets, limits, quotas
//     and shadow flags, in the same order), goes as one "admit at most k"
//     run of the multi-bucket script. It admits a = min(k, what each
//     bucket that is not Shadow holds): a prefix again, since a refused
//     request spends from no bucket and so changes nothing for the next.
//     Each bucket spends a, a Shadow bucket min(a, what it holds). The
//     reply is, per bucket, what it held before and its reset after, from
//     which each waiter's MultiResult is rebuilt exactly as if the k had
//     run one after another: the i-th waiter sees, in each bucket, the
//     min(i, a, held) spent before it, its own request if admitted and
//     the bucket had room, and the reset as of then (the later spending
//     taken back), so that a Shadow bucket's Allowed is right per waiter
//     too; the waiters after the a admitted see the bucket set as any
//     refused request after them would. A cost-n check, or one of
//     another bucket set, is the head of the queue alone (cost n in "all
//     or none" mode), in its place in arrival order. A hot group thus
//     costs one script run per round trip, as a hot key does. A group's
//     batches share pipelines with single buckets' batches; the group's
//     own bucket (Check.Key "") is queued apart from Allow's checks of the
//     same bucket, which are not ordered with the group's, but each script
//     run is atomic. There is no deny cache for bucket sets: a refused run
//     is still one script run per round trip for all of its group's
//     waiters. Quotas count in the period current when the batch is sent.
//   - Pipelining: checks of different buckets that wait at the same time go
//     in one pipeline (one EVALSHA per bucket or group), with at most
//     [BatchingOptions.MaxInFlight] round trips in flight. No check waits
//     for a timer: one that finds nothing else waiting and a round trip free
//     is sent at once, from the caller's own goroutine; the others wait at
//     most for a round trip in flight to end, and then go together.
//   - Deny cache: once Redis reports bucket K empty, with the next request
//     admissible after d, further checks of K under the same Limit, those
//     already waiting included and whatever their cost, are refused locally
//     until d has passed, with Remaining 0 and RetryAfter and ResetAfter
//     counting down (a cost-n check's RetryAfter is n-1 emission intervals
//     later: if one request does not fit, n do not). The entry is set only
//     from what the script reports of one request, never from a refused
//     cost-n check, which may leave room for smaller ones. GCRA can
//     admit nothing from K before then, whatever other instances do, since
//     they can only push K's state later; and d is counted from when the
//     check was sent, which is no later than when Redis ran it, so the cache
//     never refuses what Redis would have admitted. (The RetryAfter it
//     reports counts from when the answer arrived, so that, like
//     RedisLimiter's, it is never early.) A check under another Limit (a
//     configuration reload) bypasses it.
//
// The admissions, across all instances, are therefore exactly those of the
// same requests applied one at a time to the shared bucket in the order
// Redis ran them: the limit is exact, not approximated by local quotas.
// Results are on Redis's clock, like RedisLimiter's; the deny cache's on the
// local monotonic clock. An admin DEL of a bucket is not seen by a deny
// entry already made, which then refuses until it expires (at most one
// emission interval, Period/Rate, from a bucket emptied by requests).
//
// Buckets live under the key RedisLimiter uses, "rate:<prefix>:rl:{<key>}",
// in the same format, so that the two limiters share buckets (see
// allowAtMostScript); so do a group's buckets (see allowAllScript). The
// braces are a Redis Cluster hash tag: on a ClusterClient a pipeline is
// split per node by go-redis.
//
// Cancellation: a caller whose ctx ends while its check waits, or travels
// in a batch, returns ctx.Err() at once (or its answer, if that has already
// arrived), without affecting the other callers. If its check had not been
// sent it is dropped and costs nothing; once sent it is counted, as Redis
// has already spent it, and the caller just does not see the answer. A
// check sent alone from the caller's own goroutine runs under the caller's
// ctx, exactly like a RedisLimiter call: it is then bounded by ctx only if
// the client has ContextTimeoutEnabled.
//
// Errors: a failed round trip fails every check it carried, with the error
// wrapped and a zero Result (failing open or closed is the caller's
// policy); checks waiting behind it go in the next round trip, so none
// waits for more than the client's timeouts allow. Like any go-redis call, a
// round trip that timed out after Redis ran it may be retried by the client
// and its requests counted twice, which can only refuse more, never admit
// more; a client with MaxRetries -1 rules that out.
//
// A BatchingRedisLimiter runs MaxInFlight goroutines until
// [BatchingRedisLimiter.Close]. It is safe for concurrent use; build one
// with [NewBatchingRedis].
type BatchingRedisLimiter struct {
	client         redis.UniversalClient
	keyPrefix      string // "rate:<prefix>:rl:{"
	multiPrefix    string // where AllowAll keeps its buckets, as RedisLimiter
	maxInFlight    int
	maxKeysPerTrip int
	timeout        time.Duration
	epoch          time.Time // monotonic base of the deny cache's clock
	ctx            context.Context
	cancel         context.CancelFunc
	workers        sync.WaitGroup
	waiterPool     sync.Pool
	bucketPool     sync.Pool

	mu      sync.Mutex
	work    sync.Cond // signalled when ready gains buckets, or on Close
	buckets map[string]*bucketState
	// groups holds the multi-bucket checks' queues, one per group.
	groups map[string]*bucketState
	// ready lists, oldest first, the buckets with waiters and no check in
	// flight: the next round trip's work.
	ready     []*bucketState
	trips     int // round trips in flight, at most maxInFlight
	closed    bool
	nextSweep int64 // when settle next sweeps buckets, on the epoch clock
	peak      int   // largest len(buckets) since the map was allocated
	groupPeak int   // largest len(groups) since the map was allocated
	// expiry is closed when the checks queued in expirySlot have waited
	// long enough; see expiryLocked.
	expiry     chan struct{}
	expirySlot int64
}

// bucketState is what the limiter knows of one bucket between round trips,
// or, if multi, of one group's multi-bucket checks (AllowAll), which queue
// and travel the same way but have no deny entry. It exists only while it
// has waiters, a check in flight or a deny entry; all fields are guarded
// by BatchingRedisLimiter.mu.
type bucketState struct {
	redisKey string    // keyPrefix + key + "}"; unused if multi
	key      string    // the caller's key (a substring of redisKey), or group
	queue    []*waiter // waiting to be sent, in arrival order
	inFlight bool      // a batch of this bucket is on its way to Redis
	ready    bool      // listed in BatchingRedisLimiter.ready
	multi    bool      // a group's queue, in BatchingRedisLimiter.groups
	deny     denial
}

// denial is a deny cache entry: nothing is admissible from the bucket under
// limit before until. Times are ns on the limiter's epoch clock; until == 0
// means no entry.
//
// Redis computed its answer at some instant between sending and receiving,
// unknown here, so the entry keeps both bounds: until counts from the
// sending, and so ends no later than the bucket can admit again (the cache
// never refuses what Redis would admit); retryAt and resetAt, which the
// answers report, count from the receiving, and so are never early, as a
// RedisLimiter answer is not either (a client that waits RetryAfter is
// admitted). Between until and retryAt, about one round trip, checks go to
// Redis.
type denial struct {
	limit   Limit
	until   int64
	retryAt int64
	resetAt int64
}

// refusal returns the locally computed refusal for a check of cost 1 with
// limit at now, or false if the entry does not apply. A check of cost n > 1
// gets it through costRefusal: kept out of here, that branch would slow the
// deny cache's hot path, which refusal is inlined into.
func (d *denial) refusal(limit Limit, now int64) (Result, bool) {
	if now >= d.until || limit != d.limit {
		return Result{}, false
	}
	return Result{
		Limit:      limit,
		RetryAfter: time.Duration(d.retryAt - now), // > 0: retryAt >= until
		ResetAfter: time.Duration(max(d.resetAt-now, 0)),
	}, true
}

// costRefusal turns res, a deny entry's refusal of one request, into the
// refusal of a check of cost n > 1: if one request does not fit, n do not,
// and they fit n-1 intervals later than one.
func costRefusal(res Result, n int) Result {
	emission, _, _ := res.Limit.gcra() // checked by allowN
	res.RetryAfter = nRetryAfter(res.RetryAfter, res.ResetAfter, res.Limit, n, emission)
	return res
}

// nRetryAfter is the RetryAfter of a refused check of cost n, from that of
// one request, retry1 (the bucket's TAT plus one emission interval minus
// the burst offset): n-1 intervals later, since n fit once the bucket's TAT
// has come n-1 intervals closer than for one. Above the burst, never:
// reset, as [Result] documents.
func nRetryAfter(retry1, reset time.Duration, limit Limit, n int, emission int64) time.Duration {
	if n > limit.burst() {
		return reset
	}
	// (n-1)*emission < burst offset, which gcra bounds: no overflow.
	return retry1 + time.Duration(int64(n-1)*emission)
}

type waiterState uint8

const (
	waiterQueued    waiterState = iota // in a bucket's queue
	waiterTaken                        // sent, or answered: done will fire
	waiterAbandoned                    // left before it was sent: skip it
)

// waiter is one Allow, AllowN or AllowAll call waiting for its answer. The
// worker that takes it owns res (mres for AllowAll) and err until it
// signals done; the caller reads them after.
type waiter struct {
	limit  Limit
	checks []Check     // AllowAll's bucket set, nil for Allow and AllowN
	n      int         // the check's cost, >= 1
	state  waiterState // guarded by BatchingRedisLimiter.mu
	res    Result
	mres   MultiResult
	err    error
	done   chan struct{} // capacity 1: the answer never blocks the worker
	// expiry ends the wait of a queued check (expiryLocked); nil, which
	// never ends it, without a Timeout.
	expiry <-chan struct{}
}

// batch is one bucket's share of a round trip: the waiters sent together
// (worker.waiters[lo:hi]) under one limit, or, for a group, one bucket set
// (checks; then call is its script run, built outside the lock). n is their
// cost: 1 for a run of coalesced checks ("admit at most hi-lo"), or the
// cost of the one waiter of a cost-n check ("admit all n or none"; then
// hi-lo = 1).
type batch struct {
	b        *bucketState
	limit    Limit
	emission int64
	checks   []Check
	call     *multiCall
	n        int
	lo, hi   int
	cmd      *redis.Cmd
}

// NewBatchingRedis returns a BatchingRedisLimiter storing its buckets in
// client under "rate:<prefix>:rl:{<key>}", the layout of [NewRedis], and
// starts its goroutines; [BatchingRedisLimiter.Close] stops them. prefix
// must not contain '{' (see NewRedis).
func NewBatchingRedis(client redis.UniversalClient, prefix string, opts BatchingOptions) *BatchingRedisLimiter {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxKeysPerTrip <= 0 {
		opts.MaxKeysPerTrip = DefaultMaxKeysPerTrip
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &BatchingRedisLimiter{
		client:         client,
		keyPrefix:      "rate:" + prefix + ":rl:{",
		multiPrefix:    multiPrefix(prefix),
		maxInFlight:    opts.MaxInFlight,
		maxKeysPerTrip: opts.MaxKeysPerTrip,
		timeout:        opts.Timeout,
		epoch:          time.Now(),
		ctx:            ctx,
		cancel:         cancel,
		buckets:        make(map[string]*bucketState),
		groups:         make(map[string]*bucketState),
		nextSweep:      int64(sweepEvery),
	}
	l.work.L = &l.mu
	l.waiterPool.New = func() any { return &waiter{done: make(chan struct{}, 1)} }
	l.bucketPool.New = func() any { return new(bucketState) }
	for range opts.MaxInFlight {
		l.workers.Go(l.worker)
	}
	return l
}

// now is the time in ns since l.epoch, on the monotonic clock, so that
// wall-clock steps cannot stretch or cut a deny entry.
func (l *BatchingRedisLimiter) now() int64 { return int64(time.Since(l.epoch)) }

// Allow implements [Limiter]. It returns an error wrapping
// [ErrInvalidLimit] for an unusable limit, without a round trip; Redis
// errors wrapped, with a zero Result (failing open or closed is the
// caller's policy); ctx.Err() if ctx ends first; and [ErrClosed] after
// Close.
func (l *BatchingRedisLimiter) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	return l.allowN(ctx, key, limit, 1)
}

// AllowN implements [Limiter]: n requests are admitted together or not at
// all. A check with n = 1 is an Allow; one with n > 1 is not coalesced with
// others of its bucket (see [BatchingRedisLimiter]) but keeps its place in
// their order, and the deny cache refuses it like any. Errors are Allow's;
// n < 1 returns an error wrapping [ErrInvalidLimit] without a round trip.
func (l *BatchingRedisLimiter) AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	if err := checkN(n); err != nil {
		return Result{Limit: limit}, err
	}
	return l.allowN(ctx, key, limit, n)
}

// allowN is Allow and AllowN for n >= 1.
func (l *BatchingRedisLimiter) allowN(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	if _, _, err := limit.gcra(); err != nil {
		return Result{Limit: limit}, err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Result{Limit: limit}, ErrClosed
	}
	b := l.buckets[key]
	if b == nil {
		b = l.newBucket(key)
		l.buckets[b.key] = b
		l.peak = max(l.peak, len(l.buckets))
	} else if b.deny.until != 0 {
		now := l.now()
		if res, ok := b.deny.refusal(limit, now); ok {
			l.mu.Unlock()
			if n > 1 {
				res = costRefusal(res, n)
			}
			return res, nil
		}
		if now >= b.deny.until {
			b.deny = denial{}
		}
	}
	w := l.waiterPool.Get().(*waiter)
	w.limit, w.n, w.state = limit, n, waiterQueued
	if b.idle() && len(l.ready) == 0 && l.trips < l.maxInFlight {
		// Nothing else is waiting and a round trip is free: send this
		// check from the caller's goroutine. Handing it to a worker and
		// back would cost two goroutine switches, which on a lightly
		// loaded machine cost more CPU than the round trip's syscalls.
		w.state = waiterTaken
		b.inFlight = true
		l.trips++
		l.mu.Unlock()
		l.solo(ctx, b, w)
		return l.answer(w)
	}
	l.enqueueLocked(b, w)
	l.mu.Unlock()
	if err := l.wait(ctx, w); err != nil {
		return Result{Limit: limit}, err
	}
	return l.answer(w)
}

// enqueueLocked queues w behind b's other checks and, if b has no batch
// in flight, lists b as ready.
func (l *BatchingRedisLimiter) enqueueLocked(b *bucketState, w *waiter) {
	w.expiry = l.expiryLocked()
	b.queue = append(b.queue, w)
	if !b.inFlight && !b.ready {
		b.ready = true
		l.ready = append(l.ready, b)
		if l.trips < l.maxInFlight {
			// Wakes an idle worker. If every round trip is taken, the
			// first to end finds the bucket in ready.
			l.work.Signal()
		}
	}
}

// solo sends w, a check of b that nothing else waits for, as a round trip
// of its own from the caller's goroutine, under the caller's ctx: it then
// behaves exactly as a RedisLimiter call, cancellation included. Checks of
// b that arrive meanwhile queue behind it as usual. w's answer is ready
// when it returns.
func (l *BatchingRedisLimiter) solo(ctx context.Context, b *bucketState, w *waiter) {
	batches := [1]batch{{b: b, checks: w.checks, n: w.n, lo: 0, hi: 1}}
	if !b.multi {
		emission, _, _ := w.limit.gcra() // checked by allowN
		batches[0].limit, batches[0].emission = w.limit, emission
	}
	waiters := []*waiter{w}
	sent := l.now()
	l.roundTrip(ctx, batches[:])
	answerMulti(batches[:], waiters)
	l.mu.Lock()
	waiters = l.settleLocked(batches[:], waiters, sent)
	l.endTripLocked()
	l.mu.Unlock()
	for _, o := range waiters[1:] {
		o.done <- struct{}{}
	}
}

// endTripLocked frees a round trip and, if work is waiting for one, wakes
// a worker to send it.
func (l *BatchingRedisLimiter) endTripLocked() {
	l.trips--
	if len(l.ready) > 0 && !l.closed {
		l.work.Signal()
	}
}

// expirySlots is how many expiry channels a Timeout spans.
const expirySlots = 8

// expiryLocked returns the channel that ends the wait of a check queued
// now: closed one Timeout after the start of the current eighth of a
// Timeout, so that every queued check waits at most Timeout (and at least
// 7/8 of it) with one timer per eighth instead of one per check.
func (l *BatchingRedisLimiter) expiryLocked() <-chan struct{} {
	if l.timeout <= 0 {
		return nil
	}
	width := max(int64(l.timeout/expirySlots), 1)
	now := l.now()
	if slot := now / width; l.expiry == nil || slot != l.expirySlot {
		ch := make(chan struct{})
		l.expiry, l.expirySlot = ch, slot
		time.AfterFunc(time.Duration(slot*width-now)+l.timeout, func() { close(ch) })
	}
	return l.expiry
}

// CallBound implements [SelfBounded]: with a Timeout, every call returns
// within it (or within its ctx, if sooner), whether its check travels in
// a round trip of its own, under the Timeout as its deadline, or waits in
// a queue, for at most the Timeout from when it queued. A call that waited
// too long fails with an error wrapping context.DeadlineExceeded.
func (l *BatchingRedisLimiter) CallBound() (time.Duration, bool) {
	return l.timeout, l.timeout > 0
}

// wait waits for w's answer, and returns nil if it came before the end of
// ctx and w's expiry; else the reason, and w must not be used again.
func (l *BatchingRedisLimiter) wait(ctx context.Context, w *waiter) error {
	var err error
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-w.expiry:
		err = fmt.Errorf("ratelimit: redis limiter: no answer within %v: %w", l.timeout, context.DeadlineExceeded)
	}
	l.mu.Lock()
	st := w.state
	if st == waiterQueued {
		// Not sent: drop it, so that it costs the bucket nothing. The worker
		// discards it when it reaches the bucket.
		w.state = waiterAbandoned
	}
	l.mu.Unlock()
	if st == waiterTaken {
		select {
		case <-w.done:
			// The answer beat the cancellation: it is the truth, and for an
			// admitted request the one the caller has paid for.
			return nil
		default:
		}
	}
	// w is not recycled: a worker may still send to it.
	return err
}

func (l *BatchingRedisLimiter) answer(w *waiter) (Result, error) {
	res, err := w.res, w.err
	w.res, w.err = Result{}, nil
	l.waiterPool.Put(w)
	return res, err
}

func (l *BatchingRedisLimiter) newBucket(key string) *bucketState {
	b := l.bucketPool.Get().(*bucketState)
	// One allocation for both: the Redis key, and the map key cut from it,
	// which thus does not pin a larger buffer the caller sliced key from.
	b.redisKey = l.keyPrefix + key + "}"
	b.key = b.redisKey[len(l.keyPrefix) : len(b.redisKey)-1]
	return b
}

// dropBucketLocked forgets an idle bucket or group.
func (l *BatchingRedisLimiter) dropBucketLocked(b *bucketState) {
	if b.multi {
		delete(l.groups, b.key)
	} else {
		delete(l.buckets, b.key)
	}
	clear(b.queue[:cap(b.queue)])
	*b = bucketState{queue: b.queue[:0]}
	l.bucketPool.Put(b)
}

func (b *bucketState) idle() bool {
	return !b.inFlight && !b.ready && len(b.queue) == 0
}

// worker runs round trips until Close: it takes the buckets in ready, sends
// them in one pipeline, and answers their waiters. The slices are kept
// between round trips, so that a busy worker does not allocate for them.
func (l *BatchingRedisLimiter) worker() {
	var (
		batches []batch
		waiters []*waiter // the batches' waiters, then those to answer
	)
	for {
		l.mu.Lock()
		for (len(l.ready) == 0 || l.trips >= l.maxInFlight) && !l.closed {
			l.work.Wait()
		}
		if l.closed {
			l.mu.Unlock()
			return
		}
		batches, waiters = l.takeLocked(batches[:0], waiters[:0])
		if len(batches) == 0 {
			l.mu.Unlock()
			continue // every waiter taken had left
		}
		l.trips++
		if len(l.ready) > 0 && l.trips < l.maxInFlight {
			// More than one round trip's worth: let another worker start.
			l.work.Signal()
		}
		l.mu.Unlock()

		sent := l.now()
		l.roundTrip(l.ctx, batches)
		answerMulti(batches, waiters)

		l.mu.Lock()
		waiters = l.settleLocked(batches, waiters, sent)
		l.trips-- // this worker takes what is ready next, without a signal
		l.mu.Unlock()
		for _, w := range waiters {
			w.done <- struct{}{}
		}
		clear(batches)
		clear(waiters)
	}
}

// takeLocked moves up to maxKeysPerTrip buckets (and groups) from ready
// into batches. Each batch is the head of its bucket's queue: the longest
// run of cost-1 checks under one Limit (a reload can leave two in a queue)
// or, for a group, of one bucket set (sameChecks), or a single cost-n
// check, which is never merged with others (see [BatchingRedisLimiter]);
// waiters that left are dropped on the way. The rest of the queue waits
// for this batch to return.
func (l *BatchingRedisLimiter) takeLocked(batches []batch, waiters []*waiter) ([]batch, []*waiter) {
	n := min(len(l.ready), l.maxKeysPerTrip)
	for _, b := range l.ready[:n] {
		b.ready = false
		lo, i := len(waiters), 0
		var (
			limit  Limit
			checks []Check
			cost   int
		)
		for ; i < len(b.queue); i++ {
			w := b.queue[i]
			if w.state == waiterAbandoned {
				continue
			}
			if len(waiters) == lo {
				limit, checks, cost = w.limit, w.checks, w.n
			} else if w.limit != limit || w.n != 1 || cost != 1 || b.multi && !sameChecks(w.checks, checks) {
				break
			}
			w.state = waiterTaken
			waiters = append(waiters, w)
		}
		rest := copy(b.queue, b.queue[i:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		if len(waiters) == lo {
			if b.idle() && b.deny.until == 0 {
				l.dropBucketLocked(b)
			}
			continue
		}
		b.inFlight = true
		if b.multi {
			// The head's caller may leave, and then reuse its slice, while
			// the batch is in flight.
			checks = slices.Clone(checks)
			batches = append(batches, batch{b: b, checks: checks, n: cost, lo: lo, hi: len(waiters)})
			continue
		}
		emission, _, _ := limit.gcra() // checked by allowN
		batches = append(batches, batch{b: b, limit: limit, emission: emission, n: cost, lo: lo, hi: len(waiters)})
	}
	rest := copy(l.ready, l.ready[n:])
	clear(l.ready[rest:])
	l.ready = l.ready[:rest]
	return batches, waiters
}

// roundTrip runs the script for every batch, in one pipeline (or one plain
// command for a single batch, which go-redis sends with less overhead), and
// leaves each result in its batch's cmd.
func (l *BatchingRedisLimiter) roundTrip(ctx context.Context, batches []batch) {
	if l.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.timeout)
		defer cancel()
	}
	now := time.Now()
	for i := range batches {
		if bt := &batches[i]; bt.b.multi {
			bt.call = newMultiCall(l.multiPrefix, l.keyPrefix, bt.b.key, bt.checks, bt.n, bt.hi-bt.lo, now)
		}
	}
	if len(batches) == 1 {
		bt := &batches[0]
		keys, args := bt.scriptArgs()
		bt.cmd = l.client.EvalSha(ctx, bt.script().Hash(), keys, args...)
		if isNoScript(bt.cmd.Err()) {
			// NOSCRIPT: the script did not run, so sending it again cannot
			// count the requests twice. EVAL also caches it for next time.
			bt.cmd = l.client.Eval(ctx, bt.source(), keys, args...)
		}
		return
	}
	pipe := l.client.Pipeline()
	for i := range batches {
		keys, args := batches[i].scriptArgs()
		batches[i].cmd = pipe.EvalSha(ctx, batches[i].script().Hash(), keys, args...)
	}
	// Exec's error is also each failed command's; they are read one by one.
	_, _ = pipe.Exec(ctx)
	retry := false
	for i := range batches {
		if isNoScript(batches[i].cmd.Err()) {
			if !retry {
				// A restarted or failed-over server (or, in a cluster, a
				// node not yet seen) has an empty script cache.
				pipe, retry = l.client.Pipeline(), true
			}
			keys, args := batches[i].scriptArgs()
			batches[i].cmd = pipe.Eval(ctx, batches[i].source(), keys, args...)
		}
	}
	if retry {
		_, _ = pipe.Exec(ctx)
	}
}

func (bt *batch) script() *redis.Script {
	if bt.call != nil {
		return allowAllScript
	}
	return allowAtMostScript
}

func (bt *batch) source() string {
	if bt.call != nil {
		return allowAllSource
	}
	return allowAtMostSource
}

func (bt *batch) scriptArgs() ([]string, []any) {
	if bt.call != nil {
		return bt.call.keys, bt.call.args
	}
	if bt.n > 1 {
		return []string{bt.b.redisKey}, []any{bt.emission, bt.limit.burst(), bt.n, scriptAllOrNone}
	}
	return []string{bt.b.redisKey}, []any{bt.emission, bt.limit.burst(), bt.hi - bt.lo}
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// settleLocked hands out the results of a round trip sent at sent, updates
// the deny cache, and puts buckets with more waiters back in ready. It
// returns the waiters to answer: those of the batches, then any it could
// refuse from a fresh deny entry.
func (l *BatchingRedisLimiter) settleLocked(batches []batch, waiters []*waiter, sent int64) []*waiter {
	now := l.now()
	for i := range batches {
		bt := &batches[i]
		b := bt.b
		b.inFlight = false
		if !b.multi { // answered by answerMulti
			l.distribute(bt, waiters[bt.lo:bt.hi], sent, now)
		}
		if b.deny.until != 0 && b.deny.until > now {
			// Checks that queued during the round trip and that the fresh
			// entry refuses need not go to Redis either.
			j := 0
			for ; j < len(b.queue); j++ {
				w := b.queue[j]
				if w.state == waiterAbandoned {
					continue
				}
				res, ok := b.deny.refusal(w.limit, now)
				if !ok {
					break
				}
				if w.n > 1 {
					res = costRefusal(res, w.n)
				}
				w.state, w.res = waiterTaken, res
				waiters = append(waiters, w)
			}
			rest := copy(b.queue, b.queue[j:])
			clear(b.queue[rest:])
			b.queue = b.queue[:rest]
		}
		switch {
		case len(b.queue) > 0 && !l.closed:
			b.ready = true
			l.ready = append(l.ready, b) // this worker takes it next
		case len(b.queue) == 0 && b.deny.until == 0:
			l.dropBucketLocked(b)
		}
	}
	if now >= l.nextSweep {
		l.sweepLocked(now)
	}
	return waiters
}

// distribute turns one batch's script result into its waiters' answers,
// as if they had been checked one after another, and sets or clears the
// bucket's deny entry (see denial for sent and received).
func (l *BatchingRedisLimiter) distribute(bt *batch, ws []*waiter, sent, received int64) {
	admitted, remaining, retryAfter, resetAfter, err := parseScriptResult(bt.cmd)
	if err == nil && bt.n > 1 && admitted != 0 && admitted != bt.n {
		err = fmt.Errorf("unexpected script reply: %d of %d admitted, all or none asked", admitted, bt.n)
	}
	if err != nil {
		err = fmt.Errorf("ratelimit: redis limiter: %w", err)
		for _, w := range ws {
			w.res, w.err = Result{Limit: w.limit}, err
		}
		return
	}
	switch {
	case bt.n == 1:
		bt.distributeCoalesced(ws, admitted, remaining, retryAfter, resetAfter)
	case admitted > 0:
		// All n admitted: the bucket as after the last of n Allows.
		w := ws[0]
		w.res = Result{Limit: w.limit, Allowed: true, Remaining: remaining, ResetAfter: time.Duration(resetAfter)}
	default:
		// Refused, nothing spent: the bucket's TAT is still resetAfter, and
		// n fit once it is n emission intervals under the burst offset.
		// retryAfter is one request's only if the bucket is empty, so it is
		// computed from the TAT rather than taken from the reply.
		w := ws[0]
		burstOffset := bt.emission * int64(bt.limit.burst())
		retry1 := resetAfter + bt.emission - burstOffset
		w.res = Result{
			Limit:      w.limit,
			RetryAfter: nRetryAfter(time.Duration(retry1), time.Duration(resetAfter), bt.limit, bt.n, bt.emission),
			ResetAfter: time.Duration(resetAfter),
		}
	}
	// The script reports remaining and retryAfter for one more request,
	// whatever its mode: the deny entry depends on them alone.
	if remaining == 0 && retryAfter > 0 {
		bt.b.deny = denial{
			limit:   bt.limit,
			until:   sent + retryAfter,
			retryAt: received + retryAfter,
			resetAt: received + resetAfter,
		}
	} else {
		bt.b.deny = denial{}
	}
}

// distributeCoalesced answers a run of cost-1 checks from one "admit at
// most" reply: the first admitted ones as if checked one after another, the
// rest refused.
func (bt *batch) distributeCoalesced(ws []*waiter, admitted, remaining int, retryAfter, resetAfter int64) {
	for i, w := range ws {
		if i < admitted {
			// The i-th admitted saw the bucket before the k-1-i admissions
			// that came after it.
			later := int64(admitted - 1 - i)
			w.res = Result{
				Limit:      w.limit,
				Allowed:    true,
				Remaining:  remaining + int(later),
				ResetAfter: time.Duration(resetAfter - later*bt.emission),
			}
		} else {
			w.res = Result{Limit: w.limit, RetryAfter: time.Duration(retryAfter), ResetAfter: time.Duration(resetAfter)}
		}
	}
}

func parseScriptResult(cmd *redis.Cmd) (admitted, remaining int, retryAfter, resetAfter int64, err error) {
	vals, err := cmd.Int64Slice()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if len(vals) != 4 || vals[0] < 0 || vals[1] < 0 || vals[2] < 0 || vals[3] < 0 {
		return 0, 0, 0, 0, fmt.Errorf("unexpected script reply %v", vals)
	}
	return int(vals[0]), int(vals[1]), vals[2], vals[3], nil
}

// sweepLocked forgets buckets whose deny entry has expired, which nothing
// else would (a bucket is otherwise dropped as soon as it is idle), and
// releases map memory left over from a burst of keys. It runs from settle
// at most once per sweepEvery, so its cost is bounded per round trip
// and the map holds about the buckets refused in the last second or so.
func (l *BatchingRedisLimiter) sweepLocked(now int64) {
	l.nextSweep = now + int64(sweepEvery)
	for _, b := range l.buckets {
		if b.idle() && now >= b.deny.until {
			l.dropBucketLocked(b)
		}
	}
	if n := len(l.buckets); l.peak >= batchShrinkMin && n <= l.peak/4 {
		buckets := make(map[string]*bucketState, n)
		for k, b := range l.buckets {
			buckets[k] = b
		}
		l.buckets, l.peak = buckets, n
	}
	if n := len(l.groups); l.groupPeak >= batchShrinkMin && n <= l.groupPeak/4 {
		groups := make(map[string]*bucketState, n)
		for k, b := range l.groups {
			groups[k] = b
		}
		l.groups, l.groupPeak = groups, n
	}
}

// Close stops the limiter's goroutines and waits for them. Their round
// trips in flight are cancelled (their callers get an error, as far as the
// client honours cancellation); a round trip a caller sent from its own
// goroutine ends as it would have. Calls still waiting, and calls made
// after, get [ErrClosed]. Close does not close the Redis client. It is
// idempotent and always returns nil.
func (l *BatchingRedisLimiter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.work.Broadcast()
	l.mu.Unlock()
	l.cancel()
	l.workers.Wait()

	// No worker is left to send what is still queued.
	var orphans []*waiter
	l.mu.Lock()
	for _, m := range []map[string]*bucketState{l.buckets, l.groups} {
		for _, b := range m {
			for _, w := range b.queue {
				if w.state == waiterQueued {
					w.state, w.res, w.err = waiterTaken, Result{Limit: w.limit}, ErrClosed
					orphans = append(orphans, w)
				}
			}
			// Emptied, so that a caller's own round trip (see solo), which
			// Close does not wait for, finds nothing to answer when it ends.
			clear(b.queue)
			b.queue = b.queue[:0]
		}
	}
	clear(l.buckets)
	clear(l.groups)
	clear(l.ready)
	l.ready = nil
	l.mu.Unlock()
	for _, w := range orphans {
		w.done <- struct{}{}
	}
	return nil
}

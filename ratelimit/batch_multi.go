package ratelimit

import (
	"context"
	"fmt"
	"strings"
)

// AllowAll implements [MultiLimiter] on the buckets [RedisLimiter.AllowAll]
// uses, with the same answers, coalesced as [BatchingRedisLimiter]
// describes: concurrent calls of cost 1 on one group and one bucket set go
// to Redis as one run of the script, and each gets what it would have got
// had they run one after another. Other calls of the group (cost n > 1,
// another bucket set) keep their place in that order, one batch at a time;
// groups share pipelines with single-bucket checks. Errors and
// cancellation are Allow's; an invalid check returns an error wrapping
// [ErrInvalidLimit] without a round trip.
func (l *BatchingRedisLimiter) AllowAll(ctx context.Context, group string, checks []Check, n int) (MultiResult, error) {
	if err := checkAll(group, checks, n); err != nil {
		return MultiResult{}, err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return MultiResult{}, ErrClosed
	}
	g := l.groups[group]
	if g == nil {
		g = l.bucketPool.Get().(*bucketState)
		// Cloned so that the map does not pin a larger buffer the caller
		// sliced group from.
		g.key, g.multi = strings.Clone(group), true
		l.groups[g.key] = g
		l.groupPeak = max(l.groupPeak, len(l.groups))
	}
	w := l.waiterPool.Get().(*waiter)
	w.limit, w.checks, w.n, w.state = Limit{}, checks, n, waiterQueued
	if g.idle() && len(l.ready) == 0 && l.trips < l.maxInFlight {
		// As in allowN: nothing to coalesce with, so no worker hand-off.
		w.state = waiterTaken
		g.inFlight = true
		l.trips++
		l.mu.Unlock()
		l.solo(ctx, g, w)
		return l.answerAll(w)
	}
	l.enqueueLocked(g, w)
	l.mu.Unlock()
	if err := l.wait(ctx, w); err != nil {
		return MultiResult{}, err
	}
	return l.answerAll(w)
}

// PeekAll implements [MultiLimiter] with one read-only script run of its
// own, outside the batches: it is for reports of usage, not the hot path.
// Like every check it sees what Redis holds, not the requests still
// queued here.
func (l *BatchingRedisLimiter) PeekAll(ctx context.Context, group string, checks []Check) (MultiResult, error) {
	return peekAllRedis(ctx, l.client, l.multiPrefix, l.keyPrefix, group, checks)
}

func (l *BatchingRedisLimiter) answerAll(w *waiter) (MultiResult, error) {
	res, err := w.mres, w.err
	w.mres, w.err, w.checks = MultiResult{}, nil, nil
	l.waiterPool.Put(w)
	return res, err
}

// answerMulti answers the waiters of the groups' batches of a round trip
// from their script replies. It runs outside the lock: the waiters are
// taken, so the round trip's owner alone writes their answers until it
// signals them.
func answerMulti(batches []batch, waiters []*waiter) {
	for i := range batches {
		bt := &batches[i]
		if bt.call == nil {
			continue
		}
		ws := waiters[bt.lo:bt.hi]
		admitted, vals, err := bt.call.parse(bt.cmd)
		if err != nil {
			err = fmt.Errorf("ratelimit: redis multi-bucket check: %w", err)
			for _, w := range ws {
				w.mres, w.err = MultiResult{}, err
			}
			continue
		}
		for j, w := range ws {
			w.mres = bt.call.result(j, admitted, vals)
		}
	}
}

// sameChecks reports whether two AllowAll calls name the same bucket set,
// so that one script run can answer both: the same buckets, limits,
// quotas and shadow flags, in the same order. Names do not matter to the
// limiter.
func sameChecks(a, b []Check) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true // the edge passes a key's own slice each time
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Key != y.Key || x.Limit != y.Limit || x.Quota != y.Quota || x.Period != y.Period || x.Shadow != y.Shadow {
			return false
		}
	}
	return true
}

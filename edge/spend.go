package edge

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// errClientGone is spend's error when the request ended (the client went
// away) before storage answered: no storage failure, and no answer needed.
var errClientGone = errors.New("the client went away")

// spend is the one way anything spends from a rate limit: n requests from
// bucket under limit, from the shared limiter, bounded by the storage
// timeout, with the storage-failure policy applied when the limiter cannot
// answer. strict makes the allow policy act as local (for logins, which
// attackers probe: they never go unlimited). It returns the headers to
// send, rendered as of now in st (nil: storage of their own), and the
// refusal if any.
func (g *Guard) spend(ctx context.Context, cfg *Config, now time.Time, bucket string, limit ratelimit.Limit, n int, strict bool, st *ratelimit.HeaderStorage) (ratelimit.Headers, *apierror.Error) {
	res, err := g.allow(ctx, cfg, bucket, limit, n)
	switch {
	case err == errClientGone:
		// Nobody reads the answer; and a storage failure it is not.
		return ratelimit.Headers{}, apierror.StorageDown
	case err != nil:
		g.logStorageError("checking a rate limit", err)
		policy := cfg.OnStorageError
		if strict && policy == StorageAllow {
			policy = StorageLocal
		}
		switch policy {
		case StorageAllow:
			return ratelimit.LimitOnly(limit), nil
		case StorageLocal:
			// The memory limiter does no I/O: it only fails on a limit it
			// cannot use, which the shared limiter refused first.
			res, _ = g.local.AllowN(ctx, bucket, cfg.LocalLimit(limit), n)
		default:
			return ratelimit.Headers{}, apierror.StorageDown
		}
	}
	if !res.Allowed {
		return res.HeadersIn(st, now), apierror.RateLimited(res.RetryAfterSeconds())
	}
	return res.HeadersIn(st, now), nil
}

// spendCaller is spend for a caller's own bucket (a key's type bucket, a
// member's), where rate_limit_mode shadow applies: a refusal is then
// admitted, with the headers enforcement would send but no Retry-After,
// and wouldLimit set. Logins (Spend) are never shadowed.
func (g *Guard) spendCaller(ctx context.Context, cfg *Config, now time.Time, bucket string, limit ratelimit.Limit, n int, st *ratelimit.HeaderStorage) (h ratelimit.Headers, e *apierror.Error, wouldLimit bool) {
	h, e = g.spend(ctx, cfg, now, bucket, limit, n, false, st)
	if e != nil && cfg.ShadowLimits && e.Code == apierror.CodeRateLimited {
		return h.Admitted(), nil, true
	}
	return h, e, false
}

// Spend spends one request from bucket under limit through the guard's
// limiter path and storage policy, for limits that are not the guard's own
// (the dashboard's login attempts, by address and by account); the allow
// policy counts as local for them. It returns the headers to send with a
// refusal.
func (g *Guard) Spend(ctx context.Context, bucket string, limit ratelimit.Limit) (ratelimit.Headers, error) {
	h, e := g.spend(ctx, g.cfg.Load(), g.now(), bucket, limit, 1, true, nil)
	if e != nil {
		return h, e
	}
	return h, nil
}

// allow checks bucket against the shared limiter, bounded by the storage
// timeout, and notes whether storage answered.
func (g *Guard) allow(parent context.Context, cfg *Config, bucket string, limit ratelimit.Limit, n int) (ratelimit.Result, error) {
	ctx, cancel := parent, context.CancelFunc(nil)
	if g.needsTimer(cfg) {
		ctx, cancel = context.WithTimeout(parent, cfg.Timeout)
	}
	var res ratelimit.Result
	var err error
	if n == 1 {
		res, err = g.limiter.Allow(ctx, bucket, limit)
	} else {
		res, err = g.limiter.AllowN(ctx, bucket, limit, n)
	}
	if cancel != nil {
		cancel()
	}
	return res, g.noteStorage(parent, cfg, err)
}

// needsTimer reports whether the shared limiter's calls need a timer of
// the guard's to end within the storage timeout: not if the limiter bounds
// them within it itself (the in-process one, which cannot block; the
// batching Redis one, whose bound is storage_timeout). A timer per request
// costs more than the in-process check, and a few percent of the CPU of a
// request on Redis.
func (g *Guard) needsTimer(cfg *Config) bool {
	return !g.hasBound || g.limiterBound > cfg.Timeout
}

// noteStorage notes whether the shared limiter answered a check made
// under parent, and returns the check's error: errClientGone when the
// client went away meanwhile, which is no storage failure.
func (g *Guard) noteStorage(parent context.Context, cfg *Config, err error) error {
	switch {
	case err == nil:
		if g.storageDown.Load() && g.storageDown.CompareAndSwap(true, false) {
			g.log.Info("storage available again: rate limits are shared again",
				zap.String("on_storage_error", cfg.OnStorageError.String()))
		}
	case parent.Err() != nil:
		return errClientGone
	default:
		g.storageDown.Store(true)
	}
	return err
}

// logStorageError logs at most one line a second, so that an outage under
// load does not turn into a flood of identical lines.
func (g *Guard) logStorageError(doing string, err error) {
	now := time.Now().Unix()
	last := g.lastStorageLog.Load()
	if now == last || !g.lastStorageLog.CompareAndSwap(last, now) {
		return
	}
	cfg := g.cfg.Load()
	fields := []zap.Field{
		zap.String("while", doing),
		zap.String("on_storage_error", cfg.OnStorageError.String()),
	}
	if cfg.OnStorageError == StorageLocal {
		fields = append(fields, zap.Int("local_instances", cfg.LocalInstances))
	}
	g.log.Error("storage unavailable", append(fields, zap.Error(err))...)
}

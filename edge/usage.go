package edge

import (
	"context"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// BucketUsage is what one bucket a key spends from holds now: one of its
// limits (its type's default one when it has none of its own), its quota,
// or one of its identity's. Route limits are left out: they depend on the
// route called, not on the key.
type BucketUsage struct {
	// Name is the bucket's policy name, as RateLimit-Policy gives it: the
	// key type for its default limit, a named limit's name, "quota", or
	// "identity-<name>" for its identity's.
	Name string `json:"name"`
	// Kind is "key" for the key's own buckets, "identity" for those it
	// shares with every key of its identity.
	Kind string `json:"kind"`
	// Requests is the limit (per Window) or the quota (per Period).
	Requests int64            `json:"requests"`
	Window   ratelimit.Window `json:"window,omitempty"`
	Period   ratelimit.Period `json:"period,omitempty"`
	// Remaining is how many requests the bucket would admit now.
	Remaining int64 `json:"remaining"`
	// ResetAt is when the bucket is full again: a quota's period end.
	ResetAt time.Time `json:"reset_at"`
	Shadow  bool      `json:"shadow,omitempty"`
	// Near is whether at least NearLimitShare of the bucket is spent: the
	// one judgement of "near its limit" that every client shows.
	Near bool `json:"near"`
}

// Spent is the share of the bucket that is spent, from 0 to 1.
func (b BucketUsage) Spent() float64 {
	if b.Requests <= 0 {
		return 0
	}
	return 1 - float64(max(b.Remaining, 0))/float64(b.Requests)
}

// KeyUsage is what the buckets of one key hold now.
type KeyUsage []BucketUsage

// NearLimitShare is the spent share of a bucket at which its key counts
// as near its limit: the lowest of the thresholds the near-limit metric
// counts, so that the metric and the listing agree.
var NearLimitShare = NearThresholds[0]

// Near reports whether a bucket of the key has at least NearLimitShare of
// it spent. Shadow buckets count: they are there to show what a limit
// would do.
func (u KeyUsage) Near() bool {
	for _, b := range u {
		if b.Near {
			return true
		}
	}
	return false
}

// UsageReader reads what the rate-limit buckets of a key hold, without
// spending: the Guard, which owns their layout, for the admin APIs.
type UsageReader interface {
	KeyUsage(ctx context.Context, rec *apikey.Record) (KeyUsage, error)
}

// KeyUsage reads, without spending, what the buckets of rec's key hold,
// through the guard's limiter, under the storage timeout; with the
// configuration's default limit for its type, and its identity's buckets
// when it has one. It fails when storage does not answer: usage cannot be
// made up. A client key has none to show: its limit counts per client
// address (clientBucket), one bucket per visitor.
func (g *Guard) KeyUsage(ctx context.Context, rec *apikey.Record) (KeyUsage, error) {
	if rec.Type == apikey.Client {
		return KeyUsage{}, nil
	}
	cfg := g.cfg.Load()
	now := g.now()
	entry := KeyEntry{Key: rec}
	entry.Bucket, entry.Limits = keyBuckets(rec)
	var shared []ratelimit.Check
	if kl := entry.Limits; kl != nil && kl.Identity != "" && g.identities != nil {
		var err error
		if shared, err = g.identities.checks(ctx, kl.Identity, now, cfg.Timeout); err != nil {
			return nil, err
		}
	}
	group, checks := entry.checks(cfg.Limits[rec.Type], shared, nil)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res, err := g.limiter.PeekAll(ctx, group, checks)
	if err != nil {
		return nil, err
	}
	out := make(KeyUsage, len(checks))
	for i, c := range checks {
		r := res.Results[i]
		b := BucketUsage{Name: c.Name, Kind: kindNames[0], Remaining: int64(r.Remaining), Shadow: c.Shadow}
		if kindOf(c) == kindIdentity {
			b.Kind = kindNames[1]
		}
		if c.Quota > 0 {
			b.Requests, b.Period = c.Quota, c.Period
			_, b.ResetAt = c.Period.Bounds(now)
		} else {
			b.Requests, b.Window = int64(c.Limit.Rate), ratelimit.Window(c.Limit.Period)
			b.ResetAt = now.Add(r.ResetAfter).Truncate(time.Millisecond)
		}
		b.Near = b.Spent() >= NearLimitShare
		out[i] = b
	}
	return out, nil
}

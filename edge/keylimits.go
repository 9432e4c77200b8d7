package edge

import (
	"context"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// KeyLimits are the buckets of a key with limits of its own, built once
// per cached record: its named limits (or its type's default one), and its
// quota. Every request of the key spends from all of them at once, all or
// nothing ([ratelimit.MultiLimiter]).
type KeyLimits struct {
	// Group holds the buckets: the key's id, or, for a key of an identity,
	// the identity's, so that what the key and its identity spend is
	// checked in one step (one Redis hash slot).
	Group string
	// Checks are the buckets, in the order their results are reported.
	// With Default, the first is the key type's limit, whose value is the
	// configuration's (a reload may change it): see KeyEntry.checks.
	Checks  []ratelimit.Check
	Default bool
	// Identity is the key's identity's tag (IdentityTag), "" without one:
	// the identity's own buckets join the key's on every request.
	Identity string
}

// keyLimitsOf returns the limits of rec, or nil when it has none of its
// own and no identity, and so spends from its type's one bucket, as every
// key did before keys could carry limits. Their buckets are named by key
// id (a rotated key keeps them) and, within an identity's group, prefixed
// with it.
func keyLimitsOf(rec *apikey.Record) *KeyLimits {
	if rec.Limits == nil && rec.Quota == nil && rec.Identity == "" {
		return nil
	}
	kl := &KeyLimits{Group: "key:" + rec.ID, Default: rec.Limits == nil}
	prefix := ""
	if rec.Identity != "" {
		kl.Identity = IdentityTag(rec.OrgID, rec.Project, rec.Identity)
		kl.Group = "identity:" + kl.Identity
		prefix = "key:" + rec.ID + ":"
	}
	if kl.Default {
		// The type's bucket: the key's own (the one it spends without
		// limits of its own), or, within an identity's group, one by key.
		c := ratelimit.Check{Name: rec.Type.String()}
		if prefix != "" {
			c.Key = prefix + "default"
		}
		kl.Checks = append(kl.Checks, c)
	}
	for _, l := range rec.Limits {
		kl.Checks = append(kl.Checks, ratelimit.Check{Key: prefix + "limit:" + l.Name, Name: l.Name, Limit: l.Limit(), Shadow: l.Shadow})
	}
	if q := rec.Quota; q != nil {
		kl.Checks = append(kl.Checks, ratelimit.Check{Key: prefix + "quota", Name: "quota", Quota: q.Requests, Period: q.Period})
	}
	return kl
}

// chargeKey spends n requests of a key: from its type's bucket (bucket:
// the entry's, or a client key's per client address), or, for a key with
// limits of its own or on a route with limits, from every bucket at once
// (see spendAll). wouldLimit reports an admitted request that a
// shadow limit would have refused, which it logs.
func (g *Guard) chargeKey(ctx context.Context, cfg *Config, now time.Time, entry *KeyEntry, bucket string, route []ratelimit.NamedLimit, n int, st *ratelimit.HeaderStorage) (h ratelimit.Headers, e *apierror.Error, wouldLimit bool) {
	def := cfg.Limits[entry.Key.Type]
	var shadows bucketKinds
	if entry.Limits == nil && len(route) == 0 {
		var wouldLimit bool
		h, e, wouldLimit = g.spendCaller(ctx, cfg, now, bucket, def, n, st)
		if wouldLimit {
			shadows = kindKey
		}
	} else {
		var shared []ratelimit.Check
		if kl := entry.Limits; kl != nil && kl.Identity != "" && g.identities != nil {
			var err error
			shared, err = g.identities.checks(ctx, kl.Identity, now, cfg.Timeout)
			if err != nil {
				// As for a key the instance cannot look up: its limits
				// are unknown, so it is refused whatever the policy.
				g.logStorageError("looking up an identity", err)
				return ratelimit.Headers{}, apierror.StorageDown, false
			}
		}
		group, checks := entry.checks(def, shared, route)
		if entry.Limits == nil {
			group = bucket
		}
		h, e, shadows = g.spendAll(ctx, cfg, now, group, checks, n)
	}
	if shadows != 0 {
		g.logShadow(entry.Principal, shadows)
	}
	return h, e, shadows != 0
}

// bucketKinds is a set of the kinds of bucket a request spends from, for
// the shadow log: its key's own, its identity's, its route's.
type bucketKinds uint8

const (
	kindKey bucketKinds = 1 << iota
	kindIdentity
	kindRoute
	numKinds = 3
)

var kindNames = [numKinds]string{"key", "identity", "route"}

// kindOf is the kind of a bucket, by the names KeyEntry.checks gives.
func kindOf(c ratelimit.Check) bucketKinds {
	switch {
	case strings.HasPrefix(c.Key, "identity:"):
		return kindIdentity
	case strings.HasPrefix(c.Key, "route:"):
		return kindRoute
	}
	return kindKey
}

// checks returns the buckets a request of the entry's key spends from,
// with def as its type's limit, shared as its identity's buckets and route
// as the route's own limits, and their group.
func (e *KeyEntry) checks(def ratelimit.Limit, shared []ratelimit.Check, route []ratelimit.NamedLimit) (string, []ratelimit.Check) {
	kl := e.Limits
	if kl == nil {
		// The type's bucket is the one a request without route limits
		// spends from (the group's own: see ratelimit.Check.Key).
		checks := make([]ratelimit.Check, 1, 1+len(route))
		checks[0] = ratelimit.Check{Limit: def, Name: e.Key.Type.String()}
		return e.Bucket, appendRoute(checks, route)
	}
	if !kl.Default && len(shared) == 0 && len(route) == 0 {
		return kl.Group, kl.Checks
	}
	if len(route) == 0 {
		// The same for every request until the configuration or the
		// identity's cached entry changes: built once, shared read-only.
		if m := e.merged.Load(); m != nil && m.def == def && sameSlice(m.shared, shared) {
			return kl.Group, m.checks
		}
		m := &mergedChecks{def: def, shared: shared, checks: mergeChecks(kl, def, shared, 0)}
		e.merged.Store(m)
		return kl.Group, m.checks
	}
	return kl.Group, appendRoute(mergeChecks(kl, def, shared, len(route)), route)
}

// mergedChecks are a key's buckets joined with its identity's (see
// KeyEntry.merged), for def as its type's limit and shared as the
// identity's buckets.
type mergedChecks struct {
	def    ratelimit.Limit
	shared []ratelimit.Check
	checks []ratelimit.Check
}

// mergeChecks returns a new slice of kl's buckets, with def as the type's
// limit if kl has it, then shared, with room for extra more.
func mergeChecks(kl *KeyLimits, def ratelimit.Limit, shared []ratelimit.Check, extra int) []ratelimit.Check {
	checks := make([]ratelimit.Check, 0, len(kl.Checks)+len(shared)+extra)
	checks = append(checks, kl.Checks...)
	if kl.Default {
		checks[0].Limit = def
	}
	return append(checks, shared...)
}

// sameSlice reports whether a and b are the same slice (not only equal):
// an identity's cached entry keeps its buckets' slice for its lifetime.
func sameSlice(a, b []ratelimit.Check) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// appendRoute appends the buckets of a route's limits: by name, within the
// caller's group (its key, or its identity).
func appendRoute(checks []ratelimit.Check, route []ratelimit.NamedLimit) []ratelimit.Check {
	for _, l := range route {
		checks = append(checks, ratelimit.Check{Key: "route:" + l.Name, Name: "route-" + l.Name, Limit: l.Limit(), Shadow: l.Shadow})
	}
	return checks
}

// spendAll is spend for a key with limits of its own: n from every bucket
// of kl, all or nothing, under the same timeout and storage-failure policy.
// A refusal is RATE_LIMITED, or QUOTA_EXCEEDED when a quota refused, with
// Retry-After until every refusing bucket would admit the request.
// shadows are, for an admitted request, the kinds of the shadow buckets
// that would have refused it.
func (g *Guard) spendAll(ctx context.Context, cfg *Config, now time.Time, group string, checks []ratelimit.Check, n int) (h ratelimit.Headers, e *apierror.Error, shadows bucketKinds) {
	if cfg.ShadowLimits {
		checks = shadowed(checks)
	}
	res, err := g.allowAll(ctx, cfg, group, checks, n)
	switch {
	case err == errClientGone:
		return ratelimit.Headers{}, apierror.StorageDown, 0
	case err != nil:
		g.logStorageError("checking a rate limit", err)
		switch cfg.OnStorageError {
		case StorageAllow:
			for _, c := range checks {
				if c.Quota == 0 {
					return ratelimit.LimitOnly(c.Limit), nil, 0
				}
			}
			return ratelimit.Headers{}, nil, 0
		case StorageLocal:
			res, _ = g.local.AllowAll(ctx, group, cfg.localChecks(checks), n)
		default:
			return ratelimit.Headers{}, apierror.StorageDown, 0
		}
	}
	h = res.Headers(checks, now)
	if cfg.IETFHeaders {
		// Every bucket's policy, and the one the X-RateLimit-* headers
		// describe as the current one.
		h = res.WithPolicies(h, checks)
	}
	if res.Allowed {
		for i, r := range res.Results {
			if !r.Allowed {
				shadows |= kindOf(checks[i])
			}
		}
		return h, nil, shadows
	}
	secs := ratelimit.Result{RetryAfter: res.RetryAfter()}.RetryAfterSeconds()
	if res.QuotaRefused(checks) {
		return h, apierror.QuotaExceeded(secs), 0
	}
	return h, apierror.RateLimited(secs), 0
}

// shadowed returns checks with every bucket made Shadow.
func shadowed(checks []ratelimit.Check) []ratelimit.Check {
	out := slices.Clone(checks)
	for i := range out {
		out[i].Shadow = true
	}
	return out
}

// logShadow logs that shadow buckets of the kinds given would have refused
// a request of p's key: at most one line a second per kind.
func (g *Guard) logShadow(p *authz.Principal, kinds bucketKinds) {
	now := time.Now().Unix()
	for k := range numKinds {
		if kinds&(1<<k) == 0 {
			continue
		}
		last := g.lastShadowLog[k].Load()
		if now == last || !g.lastShadowLog[k].CompareAndSwap(last, now) {
			continue
		}
		fields := []zap.Field{zap.String("bucket", kindNames[k])}
		if p != nil && p.Key != nil {
			fields = append(fields, zap.String("key_id", p.Key.ID), zap.String("project", p.Key.Project))
			if p.Key.Identity != "" {
				fields = append(fields, zap.String("identity", p.Key.Identity))
			}
		}
		g.log.Info("a shadow rate limit would have refused a request (admitted; logged at most once a second per kind of bucket)", fields...)
	}
}

// allowAll is allow for several buckets: bounded by the storage timeout,
// noting whether storage answered.
func (g *Guard) allowAll(parent context.Context, cfg *Config, group string, checks []ratelimit.Check, n int) (ratelimit.MultiResult, error) {
	ctx, cancel := parent, context.CancelFunc(nil)
	if g.needsTimer(cfg) {
		ctx, cancel = context.WithTimeout(parent, cfg.Timeout)
	}
	res, err := g.limiter.AllowAll(ctx, group, checks, n)
	if cancel != nil {
		cancel()
	}
	return res, g.noteStorage(parent, cfg, err)
}

// localChecks are checks as this instance enforces them alone, while
// storage is down: each limit and quota its share (see LocalLimit).
func (c *Config) localChecks(checks []ratelimit.Check) []ratelimit.Check {
	if max(c.LocalInstances, 1) == 1 {
		return checks
	}
	out := slices.Clone(checks)
	for i := range out {
		if out[i].Quota > 0 {
			out[i].Quota = max(out[i].Quota/int64(c.LocalInstances), 1)
		} else {
			out[i].Limit = c.LocalLimit(out[i].Limit)
		}
	}
	return out
}

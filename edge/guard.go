package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// Default limits, per minute, by key type.
const (
	DefaultLiveLimit            = 10_000
	DefaultTestLimit            = 1_000
	DefaultAdminLimit           = 500
	DefaultUnauthenticatedLimit = 60
)

// Config is the guard's deployment-wide configuration.
type Config struct {
	// Limits holds the limit of each key type, indexed by apikey.Type.
	Limits [apikey.Admin + 1]ratelimit.Limit
	// Unauthenticated is the per-client-IP limit of requests that fail
	// authentication.
	Unauthenticated ratelimit.Limit
	// OnStorageError is what happens to a request when the rate limiter's
	// storage fails (on_storage_error). Authentication never fails open: a
	// key that cannot be verified is refused with 503 under every policy.
	OnStorageError StoragePolicy
	// LocalInstances is the number of instances sharing the limits, for
	// [StorageLocal]: while storage fails, each instance admits
	// 1/LocalInstances of every limit on its own. Zero means 1.
	LocalInstances int
	// Timeout bounds each storage call made for one request.
	Timeout time.Duration
	// IETFHeaders adds the RateLimit-Policy and RateLimit fields of
	// draft-ietf-httpapi-ratelimit-headers next to the X-RateLimit-*
	// headers, from the same limiter result (ietf_headers); see
	// [ratelimit.Headers.WithPolicy] and [PolicyName].
	IETFHeaders bool
}

// DefaultTimeout is the default bound of each storage call made for one
// request (storage_timeout).
const DefaultTimeout = 500 * time.Millisecond

// StoragePolicy is what the guard does with a request whose rate limit
// cannot be checked because storage fails.
type StoragePolicy uint8

const (
	// StorageDeny refuses the request with 503 STORAGE_UNAVAILABLE (the
	// default).
	StorageDeny StoragePolicy = iota
	// StorageAllow admits it unlimited, with only X-RateLimit-Limit.
	StorageAllow
	// StorageLocal checks it against an in-process bucket holding this
	// instance's share of the limit (the limit divided by
	// Config.LocalInstances), and reports that bucket in the headers. The
	// shared bucket applies again as soon as storage answers.
	StorageLocal
)

// ParseStoragePolicy reads "deny" (or ""), "allow" or "local".
func ParseStoragePolicy(s string) (StoragePolicy, error) {
	switch s {
	case "", "deny":
		return StorageDeny, nil
	case "allow":
		return StorageAllow, nil
	case "local":
		return StorageLocal, nil
	}
	return StorageDeny, fmt.Errorf("%q is not deny, allow or local", s)
}

// String returns the policy's configuration name.
func (p StoragePolicy) String() string {
	switch p {
	case StorageAllow:
		return "allow"
	case StorageLocal:
		return "local"
	}
	return "deny"
}

// LocalLimit is the share of l one instance enforces on its own under
// [StorageLocal]: Rate and Burst divided by LocalInstances, rounded down
// (so that the instances together never exceed l) but at least 1, over the
// same Period.
func (c *Config) LocalLimit(l ratelimit.Limit) ratelimit.Limit {
	n := max(c.LocalInstances, 1)
	if n == 1 {
		return l
	}
	return ratelimit.Limit{Rate: max(l.Rate/n, 1), Period: l.Period, Burst: max(l.Burst/n, 1)}
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	var c Config
	c.Limits[apikey.Live] = ratelimit.PerMinute(DefaultLiveLimit)
	c.Limits[apikey.Test] = ratelimit.PerMinute(DefaultTestLimit)
	c.Limits[apikey.Admin] = ratelimit.PerMinute(DefaultAdminLimit)
	c.Unauthenticated = ratelimit.PerMinute(DefaultUnauthenticatedLimit)
	c.Timeout = DefaultTimeout
	return c
}

// Policy is what one route asks of the guard.
type Policy struct {
	// Require, if set, is the least capable key type the route admits
	// (for routes in front of a team's own services); the permission then
	// follows the method. If unset, the scope table decides.
	Require apikey.Type
	// AllowHTTP admits requests that did not arrive over TLS. For local
	// development only.
	AllowHTTP bool
	// KeepCredentials passes the Authorization header on to the next
	// handler; by default it is removed so that upstream services never
	// see FlagBridge keys.
	KeepCredentials bool
}

// Request is what the guard needs to know about a request beyond its
// headers, as established by the server in front of it.
type Request struct {
	// HTTPS is true if the request arrived over TLS, or came from a
	// trusted proxy that says it did.
	HTTPS bool
	// ClientIP is the client's address, after trusted-proxy handling.
	ClientIP string
}

// Guard runs the edge checks. It is safe for concurrent use.
type Guard struct {
	cfg     atomic.Pointer[Config]
	keys    *KeyCache
	limiter ratelimit.Limiter
	// local holds the per-instance buckets of the local policy, used only
	// while the limiter's storage fails. Its buckets outlive an outage (a
	// flapping storage does not hand out a fresh share each time) and are
	// swept once full again.
	local   *ratelimit.MemoryLimiter
	scopes  *ScopeTable
	blocked *ipBlocklist
	log     *zap.Logger
	now     func() time.Time

	lastStorageLog atomic.Int64
	// metrics, if set, are what the guard records into; see SetMetrics.
	metrics atomic.Pointer[Metrics]
	// storageDown is set by a failed limiter call and cleared, with a log
	// line, by the next one that succeeds.
	storageDown atomic.Bool
}

// NewGuard returns a guard over a key cache and a limiter.
func NewGuard(cfg Config, keys *KeyCache, limiter ratelimit.Limiter, log *zap.Logger) *Guard {
	if log == nil {
		log = zap.NewNop()
	}
	g := &Guard{
		keys:    keys,
		limiter: limiter,
		local:   ratelimit.NewMemory(),
		scopes:  DefaultScopeTable,
		blocked: newIPBlocklist(100_000),
		log:     log,
		now:     time.Now,
	}
	// Every check of the shared limiter is timed once metrics are set.
	g.limiter = meteredLimiter{next: limiter, metrics: &g.metrics}
	g.SetConfig(cfg)
	return g
}

// SetConfig replaces the configuration (on a config reload).
func (g *Guard) SetConfig(cfg Config) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.LocalInstances = max(cfg.LocalInstances, 1)
	g.cfg.Store(&cfg)
}

// Sweep frees the local policy's buckets that are full again. The app
// calls it periodically: after an outage nothing else would.
func (g *Guard) Sweep() { g.local.Sweep() }

// Keys returns the guard's key cache.
func (g *Guard) Keys() *KeyCache { return g.keys }

// Decision is the outcome of [Guard.Check].
type Decision struct {
	// Key is the authenticated key, set when Err is nil, except for the
	// dashboard, whose requests carry no key.
	Key *apikey.Record
	// Err is the error to answer with, or nil to admit the request.
	Err *apierror.Error
	// Rate holds the rate-limit headers to send, if any.
	Rate ratelimit.Headers
	// Entry is the key's cache entry, set when Err is nil.
	Entry *KeyEntry
	// Style is the shape Err is written in, from the request's path.
	Style apierror.Style

	// keyType is the type of the authenticated key, also when the request
	// is refused after authentication; 0 (NoKey) if there is none.
	keyType apikey.Type
}

// Check decides on a request. It writes nothing.
func (g *Guard) Check(r *http.Request, in Request, p Policy) Decision {
	d := g.check(r, in, p)
	d.Style = ErrorStyle(r.URL.Path)
	g.finish(r, &d)
	return d
}

func (g *Guard) check(r *http.Request, in Request, p Policy) (d Decision) {
	if !in.HTTPS && !p.AllowHTTP {
		return Decision{Err: apierror.HTTPSRequired}
	}
	if p.Require == 0 && IsDashboard(r.URL.Path) {
		return Decision{}
	}
	cfg := g.cfg.Load()
	now := g.now()

	token, err := Credentials(r.Header)
	if err != nil {
		if errors.Is(err, errNoCredentials) {
			return g.refuse(r.Context(), cfg, in, now, apierror.MissingKey)
		}
		return g.refuse(r.Context(), cfg, in, now, apierror.InvalidKey)
	}
	typ, err := apikey.Parse(token)
	if err != nil {
		return g.refuse(r.Context(), cfg, in, now, apierror.InvalidKey)
	}
	digest := apikey.DigestOf(token)

	entry, ok := g.keys.Cached(digest, now)
	if !ok {
		// Only a key we have not seen lately costs a lookup, and an IP
		// that keeps presenting bad keys gets none.
		if res, blocked := g.blocked.check(in.ClientIP, now); blocked {
			return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		entry, err = g.keys.Load(ctx, digest, now)
		cancel()
		if err != nil {
			g.logStorageError("looking up an API key", err)
			return Decision{Err: apierror.StorageDown}
		}
	}
	if entry.Key == nil || entry.Key.Type != typ || !entry.Admits(now) {
		return g.refuse(r.Context(), cfg, in, now, apierror.InvalidKey)
	}
	key := entry.Key
	// Whatever is decided from here on is about a key of this type.
	defer func() { d.keyType = key.Type }()
	entry.MarkUsed(now)

	limit := cfg.Limits[key.Type]
	res, err := g.allow(r.Context(), cfg, entry.Bucket, limit)
	var rate ratelimit.Headers
	switch {
	case err == errClientGone:
		// Nobody reads the answer; and a storage failure it is not.
		return Decision{Err: apierror.StorageDown}
	case err != nil:
		g.logStorageError("checking a rate limit", err)
		switch cfg.OnStorageError {
		case StorageAllow:
			rate = ratelimit.LimitOnly(limit)
		case StorageLocal:
			// The memory limiter does no I/O: it only fails on a limit
			// it cannot use, which Allow refused first.
			res, _ = g.local.Allow(r.Context(), entry.Bucket, cfg.LocalLimit(limit))
			if !res.Allowed {
				return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
			}
			rate = res.Headers(now)
		default:
			return Decision{Err: apierror.StorageDown}
		}
	case !res.Allowed:
		return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
	default:
		rate = res.Headers(now)
	}

	need := p.requirement(g.scopes, r)
	if !key.Type.Includes(need.Type) {
		return Decision{Err: apierror.WrongKeyType, Rate: rate}
	}
	if !key.Permissions.Has(need.Permission) {
		if need.Permission == apikey.Write {
			return Decision{Err: apierror.ReadOnlyKey, Rate: rate}
		}
		return Decision{Err: apierror.Forbidden("This key lacks the READ permission"), Rate: rate}
	}
	return Decision{Key: key, Entry: entry, Rate: rate}
}

func (p Policy) requirement(t *ScopeTable, r *http.Request) Requirement {
	if p.Require != 0 {
		return Requirement{p.Require, MethodPermission(r.Method)}
	}
	return t.Lookup(r.Method, r.URL.Path)
}

// refuse answers a request that failed authentication, spending from its
// client IP's bucket.
func (g *Guard) refuse(ctx context.Context, cfg *Config, in Request, now time.Time, e *apierror.Error) Decision {
	if res, blocked := g.blocked.check(in.ClientIP, now); blocked {
		return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
	}
	bucket := "ip:" + in.ClientIP
	res, err := g.allow(ctx, cfg, bucket, cfg.Unauthenticated)
	if err == errClientGone {
		return Decision{Err: e}
	}
	if err != nil {
		g.logStorageError("checking the unauthenticated rate limit", err)
		if cfg.OnStorageError != StorageLocal {
			// The request is refused anyway; only the headers are missing.
			return Decision{Err: e}
		}
		res, _ = g.local.Allow(ctx, bucket, cfg.LocalLimit(cfg.Unauthenticated))
	}
	if !res.Allowed {
		g.blocked.block(in.ClientIP, res, now)
		return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
	}
	return Decision{Err: e, Rate: res.Headers(now)}
}

// errClientGone is allow's error when the request ended (the client went
// away) before storage answered: no storage failure, and no answer needed.
var errClientGone = errors.New("the client went away")

// allow checks bucket against the shared limiter, bounded by the storage
// timeout (the shared limiter's own round trips are bounded by the same
// storage_timeout), and notes whether storage answered.
func (g *Guard) allow(parent context.Context, cfg *Config, bucket string, limit ratelimit.Limit) (ratelimit.Result, error) {
	ctx, cancel := context.WithTimeout(parent, cfg.Timeout)
	res, err := g.limiter.Allow(ctx, bucket, limit)
	cancel()
	switch {
	case err == nil:
		if g.storageDown.Load() && g.storageDown.CompareAndSwap(true, false) {
			g.log.Info("storage available again: rate limits are shared again",
				zap.String("on_storage_error", cfg.OnStorageError.String()))
		}
	case parent.Err() != nil:
		return res, errClientGone
	default:
		g.storageDown.Store(true)
	}
	return res, err
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

// Apply carries out a decision on the response. If the request is refused
// it writes the error and returns ok false. Otherwise it returns the writer
// the next handler must use, which keeps the rate-limit headers on the
// response whatever that handler writes. It removes the key from the
// request unless the policy keeps it for an admitted request.
func (d Decision) Apply(w http.ResponseWriter, r *http.Request, p Policy) (next http.ResponseWriter, ok bool) {
	d.Rate.Apply(w.Header())
	// The key leaves the request here, refused or not, so that neither the
	// next handler nor an access log that records request headers sees it
	// (Caddy redacts Authorization in its logs, but not X-API-Key).
	if d.Err != nil || !p.KeepCredentials {
		r.Header.Del("Authorization")
		r.Header.Del("X-Api-Key")
	}
	if d.Err != nil {
		apierror.WriteStyled(w, d.Err, d.Style)
		return nil, false
	}
	if d.Rate.IsZero() {
		return w, true
	}
	return &rateHeaderWriter{ResponseWriter: w, rate: d.Rate}, true
}

// rateHeaderWriter applies the rate-limit headers again when the response
// header is written, over anything a proxied upstream copied onto them.
type rateHeaderWriter struct {
	http.ResponseWriter
	rate  ratelimit.Headers
	wrote bool
}

func (w *rateHeaderWriter) WriteHeader(status int) {
	if !w.wrote && status >= 200 {
		w.wrote = true
		w.rate.Reapply(w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *rateHeaderWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (for
// flushing, hijacking and deadlines).
func (w *rateHeaderWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ipBlocklist remembers client IPs that exhausted their unauthenticated
// bucket, so that until their Retry-After they are refused without any
// storage access: a flood of bad keys from one address costs nothing.
type ipBlocklist struct {
	mu    sync.Mutex
	max   int
	until map[string]blockedIP
}

type blockedIP struct {
	until time.Time
	res   ratelimit.Result
}

func newIPBlocklist(max int) *ipBlocklist {
	return &ipBlocklist{max: max, until: make(map[string]blockedIP)}
}

func (b *ipBlocklist) check(ip string, now time.Time) (ratelimit.Result, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.until[ip]
	if !ok {
		return ratelimit.Result{}, false
	}
	if !now.Before(e.until) {
		delete(b.until, ip)
		return ratelimit.Result{}, false
	}
	res := e.res
	res.RetryAfter = e.until.Sub(now)
	res.ResetAfter = max(res.ResetAfter-now.Sub(e.until.Add(-e.res.RetryAfter)), 0)
	return res, true
}

func (b *ipBlocklist) block(ip string, res ratelimit.Result, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.until) >= b.max {
		for k, e := range b.until {
			if !now.Before(e.until) || len(b.until) >= b.max {
				delete(b.until, k)
			}
			if len(b.until) < b.max {
				break
			}
		}
	}
	b.until[ip] = blockedIP{until: now.Add(res.RetryAfter), res: res}
}

package edge

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/store"
	"github.com/flagbridge/flagbridge/streams"
)

// Default limits, per minute, by key type. A logged-in member of the
// dashboard has the admin limit. A client key's limit counts per key and
// client address (see clientBucket): the key is public, and one visitor
// must not spend every other's share.
const (
	DefaultClientLimit          = 600
	DefaultLiveLimit            = 10_000
	DefaultTestLimit            = 1_000
	DefaultAdminLimit           = 500
	DefaultUnauthenticatedLimit = 60
)

// DefaultTimeout is the default bound of each storage call made for one
// request (storage_timeout): the store's own default.
const DefaultTimeout = store.DefaultTimeout

// Config is the guard's deployment-wide configuration.
type Config struct {
	// Limits holds the limit of each key type, indexed by apikey.Type.
	Limits [apikey.NumTypes]ratelimit.Limit
	// Unauthenticated is the per-client-address limit of requests that fail
	// authentication.
	Unauthenticated ratelimit.Limit
	// OnStorageError is what happens to a request when the rate limiter's
	// storage fails (on_storage_error). Authentication never fails open: a
	// credential that cannot be verified is refused with 503 under every
	// policy.
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
	// ShadowLimits makes every rate limit and quota advisory
	// (rate_limit_mode shadow): a request one of them would refuse is
	// admitted, with the headers enforcement would send, and counted as
	// OutcomeWouldLimit. Limits marked shadow one by one are so always.
	ShadowLimits bool
}

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
	c.Limits[apikey.Client] = ratelimit.PerMinute(DefaultClientLimit)
	c.Limits[apikey.Live] = ratelimit.PerMinute(DefaultLiveLimit)
	c.Limits[apikey.Test] = ratelimit.PerMinute(DefaultTestLimit)
	c.Limits[apikey.Admin] = ratelimit.PerMinute(DefaultAdminLimit)
	c.Unauthenticated = ratelimit.PerMinute(DefaultUnauthenticatedLimit)
	c.Timeout = DefaultTimeout
	return c
}

// Policy is what one guard (one flagbridge_auth in a Caddy route) asks.
type Policy struct {
	// Require, if set, is the least capable key type the route admits
	// (for routes in front of a team's own services); the permission then
	// follows the method. If unset, the route table decides.
	Require apikey.Type
	// AllowHTTP admits requests that did not arrive over TLS. For local
	// development only.
	AllowHTTP bool
	// KeepCredentials passes the key headers on to the next handler; by
	// default they are removed so that upstream services never see
	// FlagBridge keys.
	KeepCredentials bool
	// Limits are the route's own limits (flagbridge_auth's limit), spent
	// per key, or per identity for a key that has one, on top of the key's
	// limits; Cost, if above 1, is how many requests the route spends from
	// each of them (flagbridge_auth's cost).
	Limits []ratelimit.NamedLimit
	Cost   int
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

// SessionSource authenticates dashboard sessions; the identity service
// implements it over the store.
type SessionSource interface {
	// SessionPrincipal returns the principal of the member a session token
	// logs in, and the session's CSRF token. A missing, expired or ended
	// session is an *apierror.Error; anything else a storage failure.
	SessionPrincipal(ctx context.Context, token string) (*authz.Principal, string, error)
}

// Guard runs the edge checks. It is safe for concurrent use.
type Guard struct {
	cfg      atomic.Pointer[Config]
	keys     *KeyCache
	sessions SessionSource
	limiter  ratelimit.Limiter
	// local holds the per-instance buckets of the local policy, used only
	// while the limiter's storage fails. Its buckets outlive an outage (a
	// flapping storage does not hand out a fresh share each time) and are
	// swept once full again.
	local   *ratelimit.MemoryLimiter
	blocked *ipBlocklist
	log     *zap.Logger
	now     func() time.Time

	// limiterBound is how long a call of the shared limiter can take by
	// its own bound (ratelimit.SelfBounded), and hasBound whether it has
	// one: within the storage timeout, its calls need no timer of the
	// guard's (see needsTimer).
	limiterBound time.Duration
	hasBound     bool

	lastStorageLog atomic.Int64
	// identities, if set, holds identities' shared limits (SetIdentities).
	identities *IdentityCache
	// lastShadowLog is when a request a shadow limit would have refused
	// was last logged, in Unix seconds, per kind of bucket (bucketKinds):
	// at most one line a second each.
	lastShadowLog [numKinds]atomic.Int64
	// streamTokens verifies event streams' tokens (SetStreamTokens).
	streamTokens *streams.Tokens
	// metrics, if set, are what the guard records into; see SetMetrics.
	metrics atomic.Pointer[Metrics]
	// storageDown is set by a failed limiter call and cleared, with a log
	// line, by the next one that succeeds.
	storageDown atomic.Bool
}

// NewGuard returns a guard over a key cache, a source of dashboard
// sessions and a limiter.
func NewGuard(cfg Config, keys *KeyCache, sessions SessionSource, limiter ratelimit.Limiter, log *zap.Logger) *Guard {
	if log == nil {
		log = zap.NewNop()
	}
	g := &Guard{
		keys:     keys,
		sessions: sessions,
		local:    ratelimit.NewMemory(),
		blocked:  newIPBlocklist(100_000),
		log:      log,
		now:      time.Now,
	}
	// Every check of the shared limiter is timed once metrics are set.
	g.limiter = meteredLimiter{next: limiter, metrics: &g.metrics}
	if b, ok := limiter.(ratelimit.SelfBounded); ok {
		g.limiterBound, g.hasBound = b.CallBound()
	}
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
	// Err is the error to answer with, or nil to admit the request.
	Err *apierror.Error
	// Rate holds the rate-limit headers to send, if any.
	Rate ratelimit.Headers
	// Style is the shape Err is written in, from the request's route.
	Style apierror.Style

	admission *Admission
	// cors is the origin a client key's answer names as allowed (see
	// crossOriginKey), and preflight, if set, a CORS preflight's answer.
	cors      string
	preflight *preflightAnswer
	// caller is who the request was decided for, also when it is refused
	// after authentication.
	caller Caller
	// wouldLimit marks an admitted request that a shadow limit would have
	// refused.
	wouldLimit bool
}

// Admission returns the admitted request, nil if refused; [Decision.Apply]
// completes it.
func (d *Decision) Admission() *Admission { return d.admission }

// Check decides on a request. It writes nothing.
func (g *Guard) Check(r *http.Request, in Request, p Policy) Decision {
	d := g.check(r, in, p)
	g.finish(r, &d)
	return d
}

func (g *Guard) check(r *http.Request, in Request, p Policy) Decision {
	var m routes.Match
	if p.Require == 0 {
		m = routes.Lookup(r.Method, r.URL.Path)
	}
	style := apierror.REST
	if m.Family != nil {
		style = m.Style()
	}
	if !in.HTTPS && !p.AllowHTTP {
		return Decision{Err: apierror.HTTPSRequired, Style: style}
	}
	if p.Require == 0 {
		if d, ok := preflight(r); ok {
			return d
		}
	}
	cfg := g.cfg.Load()
	var d Decision
	switch {
	case p.Require != 0:
		d = g.byKey(r, in, cfg, &m, &p)
	case m.Credential() == routes.Public:
		d = g.public(r, &m)
	case m.Credential() == routes.Session || m.Credential() == routes.OptionalSession:
		d = g.bySession(r, in, cfg, &m)
	case m.Credential() == routes.StreamToken:
		d = g.byStreamToken(r, in, cfg, &m, &p)
	default:
		d = g.byKey(r, in, cfg, &m, &p)
	}
	d.Style = style
	if d.admission != nil {
		d.admission.ClientIP = in.ClientIP
	}
	return d
}

// public admits a request to a route that takes no credential; a change
// must still come from the dashboard's own origin.
func (g *Guard) public(r *http.Request, m *routes.Match) Decision {
	if !safe(r.Method) {
		if e := sameOrigin(r); e != nil {
			return Decision{Err: e}
		}
	}
	return Decision{admission: &Admission{Match: *m, guard: g}}
}

// byKey authenticates an API key: its shape and checksum (no storage), its
// record (from the cache, storage only on a miss), then its rate limits
// (and the route's), then what the route needs of it, or, in front of
// other services, the key type pol.Require and the method's permission.
func (g *Guard) byKey(r *http.Request, in Request, cfg *Config, m *routes.Match, pol *Policy) Decision {
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
	return g.byDigest(r, in, cfg, m, pol, now, typ, apikey.DigestOf(token))
}

// byDigest goes on from a credential's digest: the key's record (cached,
// or looked up), which must be of type typ (the credential's prefix; 0 for
// a stream token, which names the digest alone), its limits, and what the
// route (or pol) needs of it.
func (g *Guard) byDigest(r *http.Request, in Request, cfg *Config, m *routes.Match, pol *Policy, now time.Time, typ apikey.Type, digest apikey.Digest) Decision {
	require := pol.Require
	entry, ok := g.keys.Cached(digest, now)
	if !ok {
		// Only a key we have not seen lately costs a lookup, and an address
		// that keeps presenting bad keys gets none.
		if res, blocked := g.blocked.check(ClientKey(in.ClientIP), now); blocked {
			return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		var err error
		entry, err = g.keys.Load(ctx, digest, now)
		cancel()
		if err != nil {
			g.logStorageError("looking up an API key", err)
			return Decision{Err: apierror.StorageDown}
		}
	}
	if entry.Key == nil || (typ != 0 && entry.Key.Type != typ) || !entry.Admits(now) {
		return g.refuse(r.Context(), cfg, in, now, apierror.InvalidKey)
	}
	typ = entry.Key.Type
	p := entry.Principal
	d := Decision{caller: callerOf(p)}
	bucket := entry.Bucket
	if typ == apikey.Client {
		// Before any spending: a page of another site spends nothing.
		if d.cors, d.Err = crossOriginKey(r, m, entry.Key); d.Err != nil {
			return d
		}
		bucket = clientBucket(bucket, ClientKey(in.ClientIP))
	}
	entry.MarkUsed(now)
	adm := &Admission{Principal: p, Entry: entry, guard: g, bucket: bucket, Digest: digest}
	rate, e, wouldLimit := g.chargeKey(r.Context(), cfg, now, entry, bucket, pol.Limits, max(pol.Cost, 1), &adm.rateStorage)
	d.Rate, d.wouldLimit = rate, wouldLimit
	if e != nil {
		d.Err = e
		return d
	}
	var need authz.Need
	if require != 0 {
		need = authz.Need{Type: require, Permission: routes.MethodPermission(r.Method)}
	} else {
		need = m.Need(p.Org(), r.Method)
	}
	if err := authz.Permits(p, need); err != nil {
		d.Err = asAPIError(err)
		return d
	}
	adm.Match = *m
	d.admission = adm
	return d
}

// errLoggedOut answers a dashboard request without a valid session.
var errLoggedOut = apierror.New(http.StatusUnauthorized, apierror.CodeUnauthorized, "Please log in")

// errCSRF refuses a dashboard change without the session's token.
var errCSRF = apierror.Forbidden("This request lacks the page's security token; reload the page and try again")

// bySession authenticates a dashboard request by its session cookie: a
// change must come from the dashboard's own origin and carry the session's
// CSRF token; then the member's rate limit and what the route needs, as for
// a key.
func (g *Guard) bySession(r *http.Request, in Request, cfg *Config, m *routes.Match) Decision {
	optional := m.Credential() == routes.OptionalSession
	if !safe(r.Method) {
		if e := sameOrigin(r); e != nil {
			return Decision{Err: e}
		}
	}
	token := SessionToken(r)
	if token == "" {
		if optional {
			return Decision{admission: &Admission{Match: *m, guard: g}}
		}
		return g.refuse(r.Context(), cfg, in, g.now(), errLoggedOut)
	}
	// Sessions are not cached: as for a key the instance has not seen, an
	// address that keeps presenting bad credentials gets no lookup.
	if res, blocked := g.blocked.check(ClientKey(in.ClientIP), g.now()); blocked {
		return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(g.now())}
	}
	ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
	p, csrf, err := g.sessions.SessionPrincipal(ctx, token)
	cancel()
	if err != nil {
		var ae *apierror.Error
		switch {
		case !errors.As(err, &ae):
			g.logStorageError("looking up a login session", err)
			return Decision{Err: apierror.StorageDown}
		case optional:
			return Decision{admission: &Admission{Match: *m, guard: g}}
		}
		return g.refuse(r.Context(), cfg, in, g.now(), ae)
	}
	d := Decision{caller: CallerMember}
	var bucket string
	limit := cfg.Limits[apikey.Admin]
	if m.Route == nil || !m.Route.Unmetered {
		bucket = "member:" + p.ID
		rate, e, wouldLimit := g.spendCaller(r.Context(), cfg, g.now(), bucket, limit, 1, nil)
		d.Rate, d.wouldLimit = rate, wouldLimit
		if wouldLimit {
			g.logShadow(p, kindKey)
		}
		if e != nil {
			d.Err = e
			return d
		}
	}
	if !safe(r.Method) && !checkCSRF(r.Header.Get(HeaderCSRF), csrf) {
		d.Err = errCSRF
		return d
	}
	if err := authz.Permits(p, m.Need(p.Org(), r.Method)); err != nil {
		d.Err = asAPIError(err)
		return d
	}
	d.admission = &Admission{Principal: p, Match: *m, guard: g, bucket: bucket}
	return d
}

// refuse answers a request that failed authentication, spending from its
// client address's bucket; an address that exhausts it is refused locally,
// without any lookup, until its Retry-After has passed.
func (g *Guard) refuse(ctx context.Context, cfg *Config, in Request, now time.Time, e *apierror.Error) Decision {
	client := ClientKey(in.ClientIP)
	if res, blocked := g.blocked.check(client, now); blocked {
		return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
	}
	bucket := "ip:" + client
	res, err := g.allow(ctx, cfg, bucket, cfg.Unauthenticated, 1)
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
		g.blocked.block(client, res, now)
		return Decision{Err: apierror.RateLimited(res.RetryAfterSeconds()), Rate: res.Headers(now)}
	}
	return Decision{Err: e, Rate: res.Headers(now)}
}

// checkCSRF compares a request's CSRF token with its session's, in
// constant time.
func checkCSRF(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// asAPIError returns the *apierror.Error authz.Permits answers with.
func asAPIError(err error) *apierror.Error {
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return ae
	}
	return apierror.Internal
}

// ipBlocklist remembers client addresses that exhausted their
// unauthenticated bucket, so that until their Retry-After they are refused
// without any storage access: a flood of bad keys from one address costs
// nothing.
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

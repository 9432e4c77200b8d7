package edge

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// Counter counts events. A prometheus.Counter is one; so is anything with
// an Inc method.
type Counter interface{ Inc() }

// Observer records one observation, such as a duration in seconds. A
// prometheus.Histogram is one.
type Observer interface{ Observe(float64) }

// Outcome is how the guard decided a request, as its metrics report it.
type Outcome uint8

// The outcomes.
const (
	// OutcomeAllowed: the request was admitted.
	OutcomeAllowed Outcome = iota
	// OutcomeLimited: refused with 429, by the key's bucket or the client
	// address's bucket of failed authentications.
	OutcomeLimited
	// OutcomeUnauthorized: refused with 401 (no key, or one that is
	// malformed, unknown, expired or revoked).
	OutcomeUnauthorized
	// OutcomeForbidden: refused with 403 by what the route needs or the key's
	// permissions.
	OutcomeForbidden
	// OutcomeHTTPSRequired: refused with 403 for not using HTTPS.
	OutcomeHTTPSRequired
	// OutcomeStorageUnavailable: refused with 503 because storage failed.
	OutcomeStorageUnavailable
	// OutcomeWouldLimit: admitted, but a shadow limit (rate_limit_mode
	// shadow, or a limit marked shadow) would have refused it.
	OutcomeWouldLimit

	// NumOutcomes is the number of outcomes.
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{
	OutcomeAllowed:            "allowed",
	OutcomeLimited:            "limited",
	OutcomeUnauthorized:       "unauthorized",
	OutcomeForbidden:          "forbidden",
	OutcomeHTTPSRequired:      "https_required",
	OutcomeStorageUnavailable: "storage_unavailable",
	OutcomeWouldLimit:         "would_limit",
}

// String returns the outcome's metric label: allowed, limited,
// unauthorized, forbidden, https_required or storage_unavailable.
func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// OutcomeOf classifies the error of a [Decision]; nil is OutcomeAllowed.
func OutcomeOf(e *apierror.Error) Outcome {
	if e == nil {
		return OutcomeAllowed
	}
	switch e.Code {
	case apierror.CodeHTTPSRequired:
		return OutcomeHTTPSRequired
	case apierror.CodeRateLimited:
		return OutcomeLimited
	case apierror.CodeStorageUnavailable:
		return OutcomeStorageUnavailable
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		return OutcomeUnauthorized
	case e.Status == http.StatusTooManyRequests:
		return OutcomeLimited
	case e.Status >= 500:
		return OutcomeStorageUnavailable
	}
	return OutcomeForbidden
}

// Caller is who a request was decided for, as the guard's metrics count it.
type Caller uint8

// The callers.
const (
	// CallerNone: no authenticated caller (refused before or by
	// authentication, or a route that takes no credential).
	CallerNone Caller = iota
	// CallerLive, CallerTest and CallerAdmin: an API key of that type.
	CallerLive
	CallerTest
	CallerAdmin
	// CallerMember: a member logged in to the dashboard.
	CallerMember
	// CallerClient: a publishable client key.
	CallerClient

	// NumCallers is the number of callers.
	NumCallers
)

var callerNames = [NumCallers]string{"none", "live", "test", "admin", "member", "client"}

// String returns the caller's metric label (key_type): none, live, test,
// admin, member or client.
func (c Caller) String() string {
	if c < NumCallers {
		return callerNames[c]
	}
	return "unknown"
}

// callerOf classifies a principal.
func callerOf(p *authz.Principal) Caller {
	switch {
	case p == nil:
		return CallerNone
	case p.Kind == authz.MemberPrincipal:
		return CallerMember
	case p.Type == apikey.Live:
		return CallerLive
	case p.Type == apikey.Test:
		return CallerTest
	case p.Type == apikey.Admin:
		return CallerAdmin
	case p.Type == apikey.Client:
		return CallerClient
	}
	return CallerNone
}

// Metrics are the guard's instruments. They are resolved ahead of time (one
// counter per key type and outcome), so that recording a request costs an
// atomic add or two, and they carry no key material: no key id, digest or
// client address. Nil fields record nothing.
type Metrics struct {
	// Requests counts the guard's decisions by caller and outcome.
	Requests [NumCallers][NumOutcomes]Counter
	// LimiterSeconds observes how long each check of the shared rate
	// limiter took, failed ones included.
	LimiterSeconds Observer
	// LimiterErrors counts checks of the shared rate limiter that failed
	// (its storage did not answer in time, or answered with an error).
	LimiterErrors Counter
	// NearLimit counts, by key type and threshold (NearThresholds),
	// admitted key requests after which the limit nearest to refusing
	// (the one X-RateLimit-* describe) had at least that share of its
	// window spent: keys approaching their limits, without naming them.
	NearLimit [NumCallers][len(NearThresholds)]Counter
}

// NearThresholds are the spent shares of a limit that NearLimit counts.
var NearThresholds = [...]float64{0.80, 0.95}

type nopCounter struct{}

func (nopCounter) Inc() {}

type nopObserver struct{}

func (nopObserver) Observe(float64) {}

// filled returns a copy of m whose nil fields record nothing, so that the
// hot path needs no nil checks.
func (m *Metrics) filled() *Metrics {
	c := *m
	for t := range c.Requests {
		for o := range c.Requests[t] {
			if c.Requests[t][o] == nil {
				c.Requests[t][o] = nopCounter{}
			}
		}
	}
	if c.LimiterSeconds == nil {
		c.LimiterSeconds = nopObserver{}
	}
	if c.LimiterErrors == nil {
		c.LimiterErrors = nopCounter{}
	}
	for t := range c.NearLimit {
		for i := range c.NearLimit[t] {
			if c.NearLimit[t][i] == nil {
				c.NearLimit[t][i] = nopCounter{}
			}
		}
	}
	return &c
}

// SetMetrics makes the guard record into m from now on; nil stops it. It
// may be called at any time, also while requests are served.
func (g *Guard) SetMetrics(m *Metrics) {
	if m == nil {
		g.metrics.Store(nil)
		return
	}
	g.metrics.Store(m.filled())
}

// finish completes a decision of Check: it counts it and, if configured,
// adds the IETF rate-limit fields.
func (g *Guard) finish(r *http.Request, d *Decision) {
	if m := g.metrics.Load(); m != nil {
		o := OutcomeOf(d.Err)
		if o == OutcomeAllowed && d.wouldLimit {
			o = OutcomeWouldLimit
		}
		// A request whose client left while storage was consulted was
		// answered to no one; it is neither a storage failure nor anything
		// else worth counting.
		if o != OutcomeStorageUnavailable || r.Context().Err() == nil {
			m.Requests[d.caller][o].Inc()
		}
		if d.Err == nil && d.caller != CallerNone && d.caller != CallerMember {
			if spent, ok := d.Rate.SpentAtLeast(NearThresholds[0]); ok {
				for i, th := range NearThresholds {
					if spent >= th {
						m.NearLimit[d.caller][i].Inc()
					}
				}
			}
		}
	}
	if !d.Rate.IsZero() && !d.Rate.HasPolicy() && g.cfg.Load().IETFHeaders {
		d.Rate = d.Rate.WithPolicy(PolicyName(d.caller))
	}
}

// finishRate adds the IETF fields, if configured, to headers a charge of
// p's bucket rendered.
func (g *Guard) finishRate(rate *ratelimit.Headers, p *authz.Principal) {
	if !rate.HasPolicy() && g.cfg.Load().IETFHeaders {
		*rate = rate.WithPolicy(PolicyName(callerOf(p)))
	}
}

// PolicyName is the name of the rate-limit policy (the bucket) of a caller
// in the IETF RateLimit-Policy and RateLimit fields: client, live, test,
// admin or member, and unauthenticated for CallerNone (the client address's bucket
// of failed authentications).
func PolicyName(c Caller) string {
	if c == CallerNone {
		return "unauthenticated"
	}
	return c.String()
}

// meteredLimiter times every check of the shared limiter and counts its
// failures, when the guard has metrics.
type meteredLimiter struct {
	next    ratelimit.Limiter
	metrics *atomic.Pointer[Metrics]
}

func (l meteredLimiter) Allow(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Result, error) {
	m := l.metrics.Load()
	if m == nil {
		return l.next.Allow(ctx, key, limit)
	}
	start := time.Now()
	res, err := l.next.Allow(ctx, key, limit)
	m.LimiterSeconds.Observe(time.Since(start).Seconds())
	// A check cut short because the client went away is no storage error;
	// one that ran out of time is.
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		m.LimiterErrors.Inc()
	}
	return res, err
}

// AllowN times and counts like Allow.
func (l meteredLimiter) AllowN(ctx context.Context, key string, limit ratelimit.Limit, n int) (ratelimit.Result, error) {
	m := l.metrics.Load()
	if m == nil {
		return l.next.AllowN(ctx, key, limit, n)
	}
	start := time.Now()
	res, err := l.next.AllowN(ctx, key, limit, n)
	m.LimiterSeconds.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		m.LimiterErrors.Inc()
	}
	return res, err
}

// AllowAll times and counts like Allow.
func (l meteredLimiter) AllowAll(ctx context.Context, group string, checks []ratelimit.Check, n int) (ratelimit.MultiResult, error) {
	m := l.metrics.Load()
	if m == nil {
		return l.next.AllowAll(ctx, group, checks, n)
	}
	start := time.Now()
	res, err := l.next.AllowAll(ctx, group, checks, n)
	m.LimiterSeconds.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		m.LimiterErrors.Inc()
	}
	return res, err
}

// PeekAll passes through untimed: the limiter's figures are those of the
// checks that admit requests, which reports of usage would blur.
func (l meteredLimiter) PeekAll(ctx context.Context, group string, checks []ratelimit.Check) (ratelimit.MultiResult, error) {
	return l.next.PeekAll(ctx, group, checks)
}

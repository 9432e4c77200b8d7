package edge

import (
	"context"
	"net/http"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/streams"
)

// Admission is a request the guard let through: who makes it, which route
// it takes, and the rate limit it spent from. The router serves it; later
// handlers may charge it more (a GraphQL request with several mutations).
// It is also the response writer the next handler must use, which keeps
// the rate-limit headers on the response whatever that handler writes.
type Admission struct {
	// Principal is who makes the request; nil on a route that takes no
	// credential (the dashboard's page, logging in, invitations) or an
	// optional session that was not there.
	Principal *authz.Principal
	// Match is the request's route in the table; its Route is nil for a
	// guard in front of other services (Policy.Require) and for a path no
	// route has.
	Match routes.Match
	// Entry is the key's cache entry, for a key.
	Entry *KeyEntry
	// ClientIP is the client's address, as the server established it.
	ClientIP string
	// Stream is an event stream's token's claims, for a stream.
	Stream *streams.Claims
	// Digest is the digest of the secret the request authenticated with,
	// for a key (a stream token is minted for it).
	Digest apikey.Digest

	guard *Guard
	// bucket is the caller's rate-limit bucket, whose limit follows from
	// the principal's type; "" for a request that spent from none.
	bucket string
	rate   ratelimit.Headers
	w      admittedWriter
	// rateStorage holds the headers of a key's request (rate points into
	// it), so that the guard allocates once for an admitted request.
	rateStorage ratelimit.HeaderStorage
}

// Charge spends n more requests from the caller's rate limit, for work one
// request does many times over (the mutations of a GraphQL request), all
// or nothing. A refusal is a 429 error; either way the response's
// rate-limit headers follow.
func (a *Admission) Charge(ctx context.Context, n int) error {
	if n <= 0 || a.bucket == "" || a.Principal == nil {
		return nil
	}
	cfg := a.guard.cfg.Load()
	var rate ratelimit.Headers
	var e *apierror.Error
	if a.Entry != nil {
		// The key's and its identity's limits: a route's own limits
		// (flagbridge_auth's limit) count requests, not the work in them.
		rate, e, _ = a.guard.chargeKey(ctx, cfg, a.guard.now(), a.Entry, a.bucket, nil, n, nil)
	} else {
		rate, e, _ = a.guard.spendCaller(ctx, cfg, a.guard.now(), a.bucket, cfg.Limits[a.Principal.Type], n, nil)
	}
	if !rate.IsZero() {
		a.guard.finishRate(&rate, a.Principal)
		a.rate = rate
		a.rate.Apply(a.w.ResponseWriter.Header())
	}
	if e != nil {
		return e
	}
	return nil
}

// admittedWriter applies the rate-limit headers again when the response
// header is written, over anything a proxied upstream copied onto them.
type admittedWriter struct {
	http.ResponseWriter
	a     *Admission
	wrote bool
}

func (w *admittedWriter) WriteHeader(status int) {
	if !w.wrote && status >= 200 {
		w.wrote = true
		w.a.rate.Reapply(w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *admittedWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (for
// flushing, hijacking and deadlines).
func (w *admittedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Apply carries out a decision on the response. If the request is refused
// it writes the error and returns ok false. Otherwise it returns the
// admission, whose Writer the next handler must use. It removes the key
// from the request unless the policy keeps it for an admitted request.
func (d Decision) Apply(w http.ResponseWriter, r *http.Request, p Policy) (a *Admission, ok bool) {
	h := w.Header()
	if d.preflight != nil {
		d.preflight.write(w)
		return nil, false
	}
	if d.Style == apierror.Dashboard {
		apierror.SetDashboardHeaders(h)
	}
	if d.cors != "" {
		setCORS(h, d.cors)
	}
	d.Rate.Apply(h)
	// The key leaves the request here, refused or not, so that the next
	// handler never sees it.
	if d.Err != nil || !p.KeepCredentials {
		r.Header.Del("Authorization")
		r.Header.Del(HeaderAPIKey)
	}
	if d.Err != nil {
		apierror.WriteStyled(w, d.Err, d.Style)
		return nil, false
	}
	a = d.admission
	a.rate = d.Rate
	a.w = admittedWriter{ResponseWriter: w, a: a}
	return a, true
}

// Writer is the response writer the next handler must use.
func (a *Admission) Writer() http.ResponseWriter { return &a.w }

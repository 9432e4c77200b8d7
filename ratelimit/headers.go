package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// Header names, set on every response to a request the limiter saw. They
// are in Go's canonical form (X-Ratelimit-...), since they index
// http.Header directly; header names are case-insensitive on the wire.
const (
	HeaderLimit      = "X-Ratelimit-Limit"
	HeaderRemaining  = "X-Ratelimit-Remaining"
	HeaderReset      = "X-Ratelimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// SetHeaders writes the X-RateLimit-* headers for r as of now (and
// Retry-After when the request was refused):
//
//   - X-RateLimit-Limit: the bucket's Rate (requests per Period);
//   - X-RateLimit-Remaining: requests the bucket would admit right now;
//   - X-RateLimit-Reset: the Unix time, in whole seconds rounded up, at which
//     the bucket is full again if no more requests arrive;
//   - Retry-After: whole seconds, rounded up and at least 1, until a refused
//     request would be admitted.
func (r Result) SetHeaders(h http.Header, now time.Time) {
	r.Headers(now).Apply(h)
}

// Headers is the rendered set of rate-limit headers of one response, kept so
// that they can be applied again (after a proxied upstream copied its own
// headers over them) without formatting them twice.
type Headers struct {
	limit, remaining, reset, retryAfter []string
}

// Headers renders r's headers as of now; see [Result.SetHeaders].
func (r Result) Headers(now time.Time) Headers {
	// One backing array for all values, each slice capped at its single
	// element so that appending to one never writes into the next.
	vals := make([]string, 4)
	vals[0] = strconv.Itoa(r.Limit.Rate)
	vals[1] = strconv.Itoa(max(r.Remaining, 0))
	vals[2] = strconv.FormatInt(ceilUnix(now.Add(r.ResetAfter)), 10)
	hv := Headers{limit: vals[0:1:1], remaining: vals[1:2:2], reset: vals[2:3:3]}
	if !r.Allowed {
		vals[3] = strconv.FormatInt(r.RetryAfterSeconds(), 10)
		hv.retryAfter = vals[3:4:4]
	}
	return hv
}

// LimitOnly renders just X-RateLimit-Limit, for a request admitted while
// the limiter could not be reached (on_storage_error allow): the remaining
// count is unknown then, and inventing one would mislead clients.
func LimitOnly(l Limit) Headers {
	return Headers{limit: []string{strconv.Itoa(l.Rate)}}
}

// IsZero reports whether no header was rendered.
func (hv Headers) IsZero() bool { return hv.limit == nil }

// Apply sets the rendered headers on h, replacing any earlier values. The
// value slices are shared, not copied; http.Header.Add appends to a new
// array when it meets them, since their capacity is full.
func (hv Headers) Apply(h http.Header) {
	if hv.limit == nil {
		return
	}
	h[HeaderLimit] = hv.limit
	if hv.remaining != nil {
		h[HeaderRemaining] = hv.remaining
		h[HeaderReset] = hv.reset
	}
	if hv.retryAfter != nil {
		h[HeaderRetryAfter] = hv.retryAfter
	}
}

// Reapply sets the headers again where something replaced them (a proxied
// upstream's own, say). Most responses leave them alone, and a lookup is
// cheaper than an assignment, so only what changed is written.
func (hv Headers) Reapply(h http.Header) {
	if hv.limit == nil {
		return
	}
	same := func(key string, v []string) bool {
		cur := h[key]
		return v == nil || len(cur) == 1 && &cur[0] == &v[0]
	}
	if !same(HeaderLimit, hv.limit) || !same(HeaderRemaining, hv.remaining) ||
		!same(HeaderReset, hv.reset) || !same(HeaderRetryAfter, hv.retryAfter) {
		hv.Apply(h)
	}
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least 1.
func (r Result) RetryAfterSeconds() int64 {
	s := int64((r.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

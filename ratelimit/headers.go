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

// The IETF fields of draft-ietf-httpapi-ratelimit-headers (draft 11), sent
// next to the X-RateLimit-* headers when asked for; see [Headers.WithPolicy].
// They too are in Go's canonical form (RateLimit-Policy on the wire).
const (
	HeaderPolicy    = "Ratelimit-Policy"
	HeaderRateLimit = "Ratelimit"
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
// headers over them) without formatting them twice. It is a single pointer,
// so that carrying it (in a decision, in the response writer that reapplies
// it) costs next to nothing.
type Headers struct {
	r *rendered
}

// The header values of a rendered, by index.
const (
	valLimit = iota
	valRemaining
	valReset
	valRetryAfter
	valPolicy  // IETF RateLimit-Policy
	valCurrent // IETF RateLimit
	numVals
)

// headerNames are the headers the values go to, by index.
var headerNames = [numVals]string{HeaderLimit, HeaderRemaining, HeaderReset, HeaderRetryAfter, HeaderPolicy, HeaderRateLimit}

// rendered holds one response's header values; "" is a header not sent.
// The values are applied as one-element slices of vals, capped at their
// element so that appending to one never writes into the next.
type rendered struct {
	vals [numVals]string
	// window and effective are what WithPolicy needs beyond the values:
	// the limit's period, and the RateLimit field's t in seconds.
	window    time.Duration
	effective int64
}

// Headers renders r's headers as of now; see [Result.SetHeaders].
func (r Result) Headers(now time.Time) Headers {
	hv := &rendered{window: r.Limit.Period, effective: ceilSeconds(r.ResetAfter)}
	hv.vals[valLimit] = strconv.Itoa(r.Limit.Rate)
	hv.vals[valRemaining] = strconv.Itoa(max(r.Remaining, 0))
	hv.vals[valReset] = strconv.FormatInt(ceilUnix(now.Add(r.ResetAfter)), 10)
	if !r.Allowed {
		retry := r.RetryAfterSeconds()
		hv.vals[valRetryAfter] = strconv.FormatInt(retry, 10)
		hv.effective = retry
	}
	return Headers{hv}
}

// LimitOnly renders just X-RateLimit-Limit, for a request admitted while
// the limiter could not be reached (on_storage_error allow): the remaining
// count is unknown then, and inventing one would mislead clients.
func LimitOnly(l Limit) Headers {
	hv := &rendered{window: l.Period}
	hv.vals[valLimit] = strconv.Itoa(l.Rate)
	return Headers{hv}
}

// WithPolicy returns hv with the IETF fields of
// draft-ietf-httpapi-ratelimit-headers added, for the quota policy named
// policy, from the same limiter result as the X-RateLimit-* headers:
//
//	RateLimit-Policy: "live";q=10000;w=60
//	RateLimit: "live";r=9999;t=1
//
// The parameters:
//   - q is X-RateLimit-Limit, and w the limit's window in whole seconds
//     (rounded up);
//   - r is X-RateLimit-Remaining;
//   - t is the effective window: on an admitted request, the seconds
//     (rounded up) until X-RateLimit-Reset, when the bucket is full again;
//     on a refused one, Retry-After, since the draft asks that Retry-After
//     never point before the end of the effective window.
//
// Headers without a remaining count (LimitOnly) get RateLimit-Policy alone:
// the current quota is unknown then. The policy name is sent as a
// Structured Fields String; characters a String cannot hold (anything but
// printable ASCII) become '?'.
func (hv Headers) WithPolicy(policy string) Headers {
	if hv.r == nil {
		return hv
	}
	// A copy: hv's own values may be applied elsewhere already.
	c := *hv.r
	name := sfString(policy)
	w := max(ceilSeconds(c.window), 1)
	c.vals[valPolicy] = name + ";q=" + c.vals[valLimit] + ";w=" + strconv.FormatInt(w, 10)
	if c.vals[valRemaining] != "" {
		c.vals[valCurrent] = name + ";r=" + c.vals[valRemaining] + ";t=" + strconv.FormatInt(c.effective, 10)
	}
	return Headers{&c}
}

// sfString serializes s as a Structured Fields String (RFC 9651, section
// 4.1.6): in double quotes, with double quotes and backslashes escaped.
func sfString(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

// IsZero reports whether no header was rendered.
func (hv Headers) IsZero() bool { return hv.r == nil }

// Apply sets the rendered headers on h, replacing any earlier values. The
// value slices are shared, not copied; http.Header.Add appends to a new
// array when it meets them, since their capacity is full.
func (hv Headers) Apply(h http.Header) {
	if hv.r == nil {
		return
	}
	for i := range hv.r.vals {
		if hv.r.vals[i] != "" {
			h[headerNames[i]] = hv.r.vals[i : i+1 : i+1]
		}
	}
}

// Reapply sets the headers again where something replaced them (a proxied
// upstream's own, say). Most responses leave them alone, and a lookup is
// cheaper than an assignment, so only what changed is written.
func (hv Headers) Reapply(h http.Header) {
	if hv.r == nil {
		return
	}
	for i := range hv.r.vals {
		if hv.r.vals[i] == "" {
			continue
		}
		if cur := h[headerNames[i]]; len(cur) != 1 || &cur[0] != &hv.r.vals[i] {
			hv.Apply(h)
			return
		}
	}
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least 1.
func (r Result) RetryAfterSeconds() int64 {
	s := int64((r.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// ceilSeconds is d in whole seconds, rounded up; zero for d <= 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

package ratelimit

import (
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dunglas/httpsfv"
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

// The quota headers, sent when a quota applies (see [MultiResult.Headers]):
// the quota, what is left of it, and the Unix time its period ends.
const (
	HeaderQuotaLimit     = "X-Quota-Limit"
	HeaderQuotaRemaining = "X-Quota-Remaining"
	HeaderQuotaReset     = "X-Quota-Reset"
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
	// q, if set, holds the X-Quota-* values: apart, so that the responses
	// of keys without a quota, nearly all, allocate no more for them.
	q *[3]string
}

// quotaNames are the headers of Headers.q, by index.
var quotaNames = [3]string{HeaderQuotaLimit, HeaderQuotaRemaining, HeaderQuotaReset}

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
	// the limit's period, and the RateLimit field's t in seconds. (It reads
	// q and r back from vals rather than keep them here too: this struct is
	// allocated for every response, with the IETF fields or without, and
	// two more ints would take it to the next size class.)
	window    time.Duration
	effective int64
	// digits holds the numbers' text, which vals view (see format).
	digits [4 * maxDigits]byte
}

// maxDigits is the longest an int64 is in decimal, sign included.
const maxDigits = 20

// format sets vals[0:len(nums)] (the limit, remaining, reset and retry
// values, in that order) to nums in decimal. The strings view hv.digits,
// which is never written again, so that one allocation, hv's own, holds a
// response's headers: a string per number would be three or four more on
// every request.
func (hv *rendered) format(nums []int64) {
	b := hv.digits[:0]
	var ends [4]int
	for i, v := range nums {
		b = strconv.AppendInt(b, v, 10)
		ends[i] = len(b)
	}
	s := unsafe.String(unsafe.SliceData(b), len(b))
	start := 0
	for i := range nums {
		hv.vals[i] = s[start:ends[i]]
		start = ends[i]
	}
}

// Headers renders r's headers as of now; see [Result.SetHeaders].
func (r Result) Headers(now time.Time) Headers { return r.HeadersIn(nil, now) }

// HeaderStorage is room for one response's rate-limit headers, for a
// caller that allocates it with the rest of its request's state; see
// [Result.HeadersIn]. It must not be used for another response.
type HeaderStorage struct{ r rendered }

// HeadersIn is Headers rendered in st, or in storage of their own if st is
// nil.
func (r Result) HeadersIn(st *HeaderStorage, now time.Time) Headers {
	var hv *rendered
	if st != nil {
		hv = &st.r
	} else {
		hv = new(rendered)
	}
	hv.window, hv.effective = r.Limit.Period, ceilSeconds(r.ResetAfter)
	nums := [4]int64{valLimit: int64(r.Limit.Rate), valRemaining: int64(max(r.Remaining, 0)),
		valReset: ceilUnix(now.Add(r.ResetAfter))}
	n := valReset + 1
	if !r.Allowed {
		nums[valRetryAfter] = r.RetryAfterSeconds()
		hv.effective = nums[valRetryAfter]
		n++
	}
	hv.format(nums[:n])
	return Headers{r: hv}
}

// LimitOnly renders just X-RateLimit-Limit, for a request admitted while
// the limiter could not be reached (on_storage_error allow): the remaining
// count is unknown then, and inventing one would mislead clients.
func LimitOnly(l Limit) Headers {
	hv := &rendered{window: l.Period}
	hv.vals[valLimit] = strconv.Itoa(l.Rate)
	return Headers{r: hv}
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
// the current quota is unknown then.
//
// Both fields are RFC 9651 Structured Fields, a List of one Item each,
// serialized by httpsfv. The policy name is sent as a String, which holds
// printable ASCII only: any other byte (a control character, each byte of
// a UTF-8 sequence) becomes '?' first, so that any name still gives a valid
// field (name it in ASCII to see it as written). The numbers are Integers,
// which stop at 999,999,999,999,999: a larger q or r, which only a limit of
// more than 10^15 requests per window would need, is sent as that maximum
// (X-RateLimit-Limit and X-RateLimit-Remaining still carry the exact value).
//
// RateLimit-Policy depends only on the limit and the name, so it is
// rendered once per pair and cached (a few pairs per configuration); only
// RateLimit is serialized per call, from a recycled httpsfv List.
func (hv Headers) WithPolicy(policy string) Headers {
	if hv.r == nil {
		return hv
	}
	// A copy: hv's own values may be applied elsewhere already.
	c := *hv.r
	// Formatted by strconv from an int: they parse back.
	q, _ := strconv.ParseInt(c.vals[valLimit], 10, 64)
	p := policyFor(policy, q, max(ceilSeconds(c.window), 1))
	c.vals[valPolicy] = p.field
	if c.vals[valRemaining] != "" {
		r, _ := strconv.ParseInt(c.vals[valRemaining], 10, 64)
		c.vals[valCurrent] = p.current(r, c.effective)
	}
	return Headers{r: &c, q: hv.q}
}

// maxSFInteger is the largest Structured Fields Integer (RFC 9651, section
// 3.3.1: at most 15 digits); its negation is the smallest.
const maxSFInteger = 999_999_999_999_999

// sfInteger is v clamped to the Integers a Structured Field can carry.
func sfInteger(v int64) int64 { return max(min(v, maxSFInteger), -maxSFInteger) }

// sfItem is one policy's field as httpsfv builds it: a List of one Item,
// the String name (already made valid by sfSafe) with two Integer
// parameters.
type sfItem struct {
	list   httpsfv.StructuredFieldValue // httpsfv.List{item}, boxed once
	params *httpsfv.Params              // item's, to set the values
}

func newSFItem(name, k1, k2 string) *sfItem {
	item := httpsfv.NewItem(name)
	// Added once, in the order they are sent; marshal sets their values.
	item.Params.Add(k1, int64(0))
	item.Params.Add(k2, int64(0))
	return &sfItem{list: httpsfv.List{item}, params: item.Params}
}

// marshal serializes the field with parameter values v1 and v2 (k1 and k2
// of newSFItem). It returns "", so that the field is not sent, if httpsfv
// refuses them, which sfSafe and the clamping rule out: no field is better
// than an invalid one.
func (it *sfItem) marshal(k1 string, v1 int64, k2 string, v2 int64) string {
	// Add replaces the value of a parameter already there, in place.
	it.params.Add(k1, sfInteger(v1))
	it.params.Add(k2, sfInteger(v2))
	field, err := httpsfv.Marshal(it.list)
	if err != nil {
		return ""
	}
	return field
}

// sfSafe returns s with every byte that a Structured Fields String cannot
// hold (RFC 9651, section 3.3.3: anything outside %x20-7E) replaced by '?'.
// httpsfv refuses such a String rather than escape it, since the format has
// no escape for them. s itself is returned, without copying, when it is
// valid already, as policy names are.
func sfSafe(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			if b == nil {
				b = []byte(s)
			}
			b[i] = '?'
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// policyKey is what a RateLimit-Policy field depends on.
type policyKey struct {
	name string
	q, w int64
}

// policyField is a cached RateLimit-Policy field, with what the policy's
// RateLimit field needs.
type policyField struct {
	field string // the serialized RateLimit-Policy field
	name  string // sfSafe(policyKey.name)
	// items recycles the *sfItem of the RateLimit field: its Item, name
	// and parameter order are the same on every request, only r and t
	// change, so building one per request (a map, a slice, the List) would
	// be waste. One exists per request rendering at once.
	items sync.Pool
}

// current renders the policy's RateLimit field with r and t.
func (p *policyField) current(r, t int64) string {
	it, _ := p.items.Get().(*sfItem)
	if it == nil {
		it = newSFItem(p.name, "r", "t")
	}
	field := it.marshal("r", r, "t", t)
	p.items.Put(it)
	return field
}

// maxPolicies bounds the cache of RateLimit-Policy fields. A configuration
// has a few limits and names; reloads can add more over a process's life,
// so a full cache starts over rather than grow, and the pairs still in use
// come back on their next request.
const maxPolicies = 256

// policies is the cache of RateLimit-Policy fields: a map replaced whole on
// each insertion, behind an atomic pointer, since every request reads it
// and it changes only when a limit or name is first seen. Reads thus take
// no lock; writers take mu.
var policies struct {
	mu sync.Mutex
	m  atomic.Pointer[map[policyKey]*policyField]
}

// policyFor returns the RateLimit-Policy field of policy name with quota q
// in a window of w seconds, from the cache or rendered and cached.
func policyFor(name string, q, w int64) *policyField {
	key := policyKey{name, q, w}
	if m := policies.m.Load(); m != nil {
		if p, ok := (*m)[key]; ok {
			return p
		}
	}
	safe := sfSafe(name)
	p := &policyField{field: newSFItem(safe, "q", "w").marshal("q", q, "w", w), name: safe}
	policies.mu.Lock()
	defer policies.mu.Unlock()
	var next map[policyKey]*policyField
	if cur := policies.m.Load(); cur != nil && len(*cur) < maxPolicies {
		next = make(map[policyKey]*policyField, len(*cur)+1)
		maps.Copy(next, *cur)
	} else {
		next = make(map[policyKey]*policyField, 1)
	}
	// Cloned so that the cache does not pin a larger buffer name was
	// sliced from.
	key.name = strings.Clone(name)
	if safe == name {
		p.name = key.name
	}
	next[key] = p
	policies.m.Store(&next)
	return p
}

// Admitted returns hv as for an admitted request: without Retry-After, for
// a request a shadow limit would have refused (its other values say what
// enforcement would). The IETF RateLimit field keeps its t.
func (hv Headers) Admitted() Headers {
	if hv.r == nil || hv.r.vals[valRetryAfter] == "" {
		return hv
	}
	c := *hv.r
	c.vals[valRetryAfter] = ""
	return Headers{r: &c, q: hv.q}
}

// SpentAtLeast returns the share of the reported limit that is spent (1 -
// Remaining/Limit), and whether it is at least least (at most 0.8) and
// both values are there, for metrics of keys near their limits. Most
// responses are far from theirs: those are told apart without parsing.
func (hv Headers) SpentAtLeast(least float64) (float64, bool) {
	if hv.r == nil || least > 0.8 {
		return 0, false
	}
	rem, lim := hv.r.vals[valRemaining], hv.r.vals[valLimit]
	if rem == "" || lim == "" {
		return 0, false
	}
	// With as many digits as the limit and a first digit of 2 or more,
	// Remaining is at least 2*10^(d-1), more than a fifth of any limit
	// below 10^d: less than 80% is spent.
	if len(rem) == len(lim) && rem[0] >= '2' {
		return 0, false
	}
	// Formatted by strconv from ints: they parse back.
	q, _ := strconv.ParseInt(lim, 10, 64)
	r, _ := strconv.ParseInt(rem, 10, 64)
	if q <= 0 {
		return 0, false
	}
	spent := 1 - float64(r)/float64(q)
	return spent, spent >= least
}

// HasPolicy reports whether the IETF fields were added (WithPolicy).
func (hv Headers) HasPolicy() bool { return hv.r != nil && hv.r.vals[valPolicy] != "" }

// IsZero reports whether no header was rendered.
func (hv Headers) IsZero() bool { return hv.r == nil && hv.q == nil }

// Apply sets the rendered headers on h, replacing any earlier values. The
// value slices are shared, not copied; http.Header.Add appends to a new
// array when it meets them, since their capacity is full.
func (hv Headers) Apply(h http.Header) {
	if hv.q != nil {
		for i := range hv.q {
			h[quotaNames[i]] = hv.q[i : i+1 : i+1]
		}
	}
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
	if hv.q != nil {
		for i := range hv.q {
			if cur := h[quotaNames[i]]; len(cur) != 1 || &cur[0] != &hv.q[i] {
				hv.Apply(h)
				return
			}
		}
	}
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

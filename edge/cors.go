package edge

import (
	"net/http"
	"slices"
	"strings"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/routes"
)

// Cross-origin requests (CORS) reach only the routes the table marks for
// browsers (routes.Route.CORS: OFREP), and only client keys are read
// across origins. The preflight is answered at once, without a key and
// without storage: it names no key (browsers send none with it), and
// allows nothing by itself. The request that follows carries the key,
// and its answer names its origin in Access-Control-Allow-Origin only if
// the key allows that origin; a page of any other origin can read
// nothing, and its request is refused before it spends from any limit.

// corsAllowHeaders are the request headers a page may send: the
// credential, the body's type, and what OFREP's providers send (a cached
// answer's ETag, an event stream's last event).
const corsAllowHeaders = "Authorization, Content-Type, If-None-Match, Last-Event-ID, " + HeaderAPIKey

// corsExposeHeaders are the answer's headers a page may read besides the
// always-readable ones: the ETag OFREP's providers cache by, the flag
// set's version, the rate limit and when to retry.
const corsExposeHeaders = "ETag, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, RateLimit, RateLimit-Policy, Flagbridge-Flag-Set-Version"

// corsMaxAge is how long, in seconds, a browser may reuse a preflight's
// answer (Chromium's own cap is 2 hours).
const corsMaxAge = "7200"

// preflight answers a CORS preflight (OPTIONS with
// Access-Control-Request-Method) of a route the table opens to browsers;
// ok is false for any other request. A well-formed origin gets the
// route's methods; a malformed one, or a method the path does not have,
// gets an answer without Access-Control-Allow-Origin, which the browser
// takes as a refusal.
func preflight(r *http.Request) (d Decision, ok bool) {
	if r.Method != http.MethodOptions {
		return Decision{}, false
	}
	want := r.Header.Get("Access-Control-Request-Method")
	if want == "" {
		return Decision{}, false
	}
	methods := routes.CORSMethods(r.URL.Path)
	if len(methods) == 0 {
		return Decision{}, false
	}
	d.preflight = &preflightAnswer{}
	origin := r.Header.Get("Origin")
	if clean, err := apikey.CleanOrigin(origin); err == nil && clean == origin && slices.Contains(methods, want) {
		d.preflight.origin = origin
		d.preflight.methods = strings.Join(methods, ", ")
	}
	return d, true
}

// preflightAnswer is what a preflight is told: nothing if origin is "".
type preflightAnswer struct {
	origin, methods string
}

// write answers the preflight: 204, and the CORS headers if allowed.
func (p *preflightAnswer) write(w http.ResponseWriter) {
	h := w.Header()
	// Values of their own, never shared: Caddy's header directive edits
	// values in place.
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	if p.origin != "" {
		h.Set("Access-Control-Allow-Origin", p.origin)
		h.Set("Access-Control-Allow-Methods", p.methods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
	}
	w.WriteHeader(http.StatusNoContent)
}

// crossOriginKey decides a client key's request from a page (one with an
// Origin header) on a route open to browsers: the origin to name in the
// answer if the key allows it, a 403 if not. A request without Origin
// (a server, a script) needs no origin: the key is public anyway, and
// what it may do is the same from anywhere.
func crossOriginKey(r *http.Request, m *routes.Match, rec *apikey.Record) (string, *apierror.Error) {
	origin := r.Header.Get("Origin")
	if origin == "" || m.Route == nil || !m.Route.CORS {
		return "", nil
	}
	if !rec.AllowsOrigin(origin) {
		return "", apierror.Forbidden("This client key does not allow requests from origin %q; add it to the key's allowed_origins", origin)
	}
	return origin, nil
}

// setCORS names the allowed origin on an answer.
func setCORS(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	h.Add("Vary", "Origin")
}

// clientBucket is a client key's rate-limit bucket for one client
// address: the key is public, so that one visitor (or someone who copied
// the key from the page) cannot spend every other visitor's share.
func clientBucket(keyBucket, clientIP string) string {
	return keyBucket + "@" + clientIP
}

package edge

import (
	"net/http"
	"net/url"

	"github.com/flagbridge/flagbridge/apierror"
)

// crossOrigin is Go's own cross-site request forgery protection: it
// refuses a change (any method but GET, HEAD and OPTIONS) that a browser
// marks as coming from another origin (Sec-Fetch-Site), or, for browsers
// that do not send it, whose Origin names another host.
var crossOrigin = http.NewCrossOriginProtection()

// errCrossSite refuses a change made from another site.
var errCrossSite = apierror.Forbidden("Cross-site requests are not allowed")

// sameOrigin is the one check of the dashboard's changes against requests
// from other sites: Go's CrossOriginProtection, and, since FlagBridge serves
// browsers over HTTPS only, an Origin that names another scheme than https
// (an http:// page of the same host is another origin, which Host alone
// cannot tell).
func sameOrigin(r *http.Request) *apierror.Error {
	if err := crossOrigin.Check(r); err != nil {
		return errCrossSite
	}
	if o := r.Header.Get("Origin"); o != "" && !safe(r.Method) {
		if u, err := url.Parse(o); err != nil || u.Scheme != "https" {
			return errCrossSite
		}
	}
	return nil
}

// safe reports whether a method changes nothing.
func safe(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

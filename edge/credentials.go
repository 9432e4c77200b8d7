package edge

import (
	"errors"
	"net/http"
	"net/netip"
)

// The credentials the guard reads. Each is in one place: here.
const (
	// HeaderAPIKey carries a key for clients that cannot set Authorization
	// (OpenFeature's OFREP providers can send it), in canonical form.
	HeaderAPIKey = "X-Api-Key"
	// SessionCookie carries a dashboard login session. The __Host- prefix
	// makes browsers refuse it unless it is Secure, for the whole host and
	// set by it.
	SessionCookie = "__Host-flagbridge_session"
	// HeaderCSRF carries the session's CSRF token on every change.
	HeaderCSRF = "X-CSRF-Token"
)

// CredentialHeaders are the request headers that can carry a credential
// the guard accepts, in canonical form. The guard removes the key headers
// before the next handler (unless told to keep them), and they must never
// be logged.
var CredentialHeaders = []string{"Authorization", HeaderAPIKey, "Cookie"}

var (
	errNoCredentials  = errors.New("no Authorization header")
	errBadCredentials = errors.New("malformed Authorization header")
)

// Credentials extracts the key a request presents: "Authorization: Bearer
// <key>", or "X-API-Key: <key>". A request carrying both is malformed rather
// than guessed at.
func Credentials(h http.Header) (string, error) {
	auth, apiKey := h["Authorization"], h[HeaderAPIKey]
	switch {
	case len(auth) > 0 && len(apiKey) > 0:
		return "", errBadCredentials
	case len(apiKey) > 0:
		if len(apiKey) != 1 {
			return "", errBadCredentials
		}
		if apiKey[0] == "" {
			return "", errNoCredentials
		}
		if !tokenChars(apiKey[0]) {
			return "", errBadCredentials
		}
		return apiKey[0], nil
	}
	return BearerToken(auth)
}

// BearerToken extracts the token from the Authorization header values of a
// request. Exactly one header of the form "Bearer <token>" is accepted: the
// scheme in any case, one space, then a token with no spaces. Anything else
// (a second header, other schemes, extra or missing spaces, a trailing
// space) is malformed rather than guessed at.
func BearerToken(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", errNoCredentials
	case 1:
	default:
		return "", errBadCredentials
	}
	v := values[0]
	const scheme = "bearer "
	if len(v) <= len(scheme) {
		if v == "" {
			return "", errNoCredentials
		}
		return "", errBadCredentials
	}
	for i := 0; i < len(scheme); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return "", errBadCredentials
		}
	}
	token := v[len(scheme):]
	if !tokenChars(token) {
		return "", errBadCredentials
	}
	return token, nil
}

// tokenChars reports whether s is made of RFC 6750 b64token characters
// only; in particular no space, tab or comma, so "Bearer a b" and
// "Bearer  a" are refused.
func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// SessionToken returns the request's dashboard session token, or "".
func SessionToken(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// ClientKey is the name under which a client address is rate limited: the
// address itself for IPv4, its /64 network for IPv6, since one customer
// line commonly gets a whole /64 and would otherwise get a fresh bucket per
// address. Something that is no address is used as it is.
func ClientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	prefix, err := addr.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return prefix.String()
}

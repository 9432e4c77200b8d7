package edge

import (
	"errors"
	"net/http"
)

var (
	errNoCredentials  = errors.New("no Authorization header")
	errBadCredentials = errors.New("malformed Authorization header")
)

// Credentials extracts the key a request presents: "Authorization: Bearer
// <key>", or "X-API-Key: <key>" (which OpenFeature's OFREP providers can
// send instead). A request carrying both is malformed rather than guessed at.
func Credentials(h http.Header) (string, error) {
	auth, apiKey := h["Authorization"], h["X-Api-Key"]
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

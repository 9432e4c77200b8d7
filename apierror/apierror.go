// Package apierror is the one place that defines FlagBridge's JSON error
// bodies and writes them. Every error a client sees from the edge or the
// REST API is an [Error] written by [Write]:
//
//	{"error":"UNAUTHORIZED","message":"Invalid or expired API key"}
package apierror

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an API error: an HTTP status, a stable machine-readable code and a
// message for people.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// The codes, one per kind of failure.
const (
	CodeHTTPSRequired      = "HTTPS_REQUIRED"
	CodeUnauthorized       = "UNAUTHORIZED"
	CodeForbidden          = "FORBIDDEN"
	CodeRateLimited        = "RATE_LIMITED"
	CodeQuotaExceeded      = "QUOTA_EXCEEDED"
	CodeInvalidRequest     = "INVALID_REQUEST"
	CodeNotFound           = "NOT_FOUND"
	CodeMethodNotAllowed   = "METHOD_NOT_ALLOWED"
	CodeConflict           = "CONFLICT"
	CodePreconditionFailed = "PRECONDITION_FAILED"
	CodeFlagNotFound       = "FLAG_NOT_FOUND"
	CodeInvalidContext     = "INVALID_CONTEXT"
	CodeSessionNotFound    = "SESSION_NOT_FOUND"
	CodeStorageUnavailable = "STORAGE_UNAVAILABLE"
	CodeInternal           = "INTERNAL"
)

// The fixed errors of the edge. Their bodies are part of the API contract.
var (
	HTTPSRequired = &Error{http.StatusForbidden, CodeHTTPSRequired, "All requests must use HTTPS"}
	InvalidKey    = &Error{http.StatusUnauthorized, CodeUnauthorized, "Invalid or expired API key"}
	MissingKey    = &Error{http.StatusUnauthorized, CodeUnauthorized, "Missing API key"}
	WrongKeyType  = &Error{http.StatusForbidden, CodeForbidden, "This key type does not have access to this endpoint"}
	ReadOnlyKey   = &Error{http.StatusForbidden, CodeForbidden, "This key is read-only and cannot make changes"}
	StorageDown   = &Error{http.StatusServiceUnavailable, CodeStorageUnavailable, "Storage is unavailable; try again shortly"}
	Internal      = &Error{http.StatusInternalServerError, CodeInternal, "Internal error"}
)

// New returns an error with the given status, code and message.
func New(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// Invalid is a 400 INVALID_REQUEST naming what is wrong.
func Invalid(format string, args ...any) *Error {
	return &Error{http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf(format, args...)}
}

// NotFound is a 404 NOT_FOUND naming what was not found.
func NotFound(format string, args ...any) *Error {
	return &Error{http.StatusNotFound, CodeNotFound, fmt.Sprintf(format, args...)}
}

// Forbidden is a 403 FORBIDDEN saying why.
func Forbidden(format string, args ...any) *Error {
	return &Error{http.StatusForbidden, CodeForbidden, fmt.Sprintf(format, args...)}
}

// Conflict is a 409 CONFLICT saying with what.
func Conflict(format string, args ...any) *Error {
	return &Error{http.StatusConflict, CodeConflict, fmt.Sprintf(format, args...)}
}

// RateLimited is the 429 body for a request refused for retryAfter seconds.
func RateLimited(retryAfterSeconds int64) *Error {
	return &Error{http.StatusTooManyRequests, CodeRateLimited,
		fmt.Sprintf("Rate limit exceeded; retry in %d seconds", retryAfterSeconds)}
}

// QuotaExceeded is the 429 body for a request past its quota, refused for
// retryAfter seconds: until the quota's period ends.
func QuotaExceeded(retryAfterSeconds int64) *Error {
	return &Error{http.StatusTooManyRequests, CodeQuotaExceeded,
		fmt.Sprintf("Quota exceeded; it renews in %d seconds", retryAfterSeconds)}
}

// Write sends e as the response. 401s carry the WWW-Authenticate challenge
// RFC 6750 asks for; every error is marked uncacheable.
func Write(w http.ResponseWriter, e *Error) {
	new(HeaderValues).set(w.Header(), e.Status == http.StatusUnauthorized)
	body, err := json.Marshal(e)
	if err != nil {
		body = []byte(`{"error":"INTERNAL","message":"Internal error"}`)
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// HeaderValues holds the values of the headers every JSON answer carries:
// Content-Type, Cache-Control: no-store (API answers may hold secrets shown
// once), X-Content-Type-Options, and on a 401 the WWW-Authenticate
// challenge RFC 6750 asks for. They are set as one-element slices of it,
// one allocation for all of them. Each response needs its own: Caddy's
// header directive rewrites header values in place, so a slice shared
// between responses would carry one route's edit to every other answer.
type HeaderValues [4]string

const (
	hvContentType = iota
	hvCacheControl
	hvNoSniff
	hvChallenge
)

// set puts the headers on h, each capped at its element so that an append
// to one never writes into the next.
func (v *HeaderValues) set(h http.Header, challenge bool) {
	v[hvContentType], v[hvCacheControl], v[hvNoSniff] = "application/json", "no-store", "nosniff"
	h["Content-Type"] = v[hvContentType : hvContentType+1 : hvContentType+1]
	h["Cache-Control"] = v[hvCacheControl : hvCacheControl+1 : hvCacheControl+1]
	h["X-Content-Type-Options"] = v[hvNoSniff : hvNoSniff+1 : hvNoSniff+1]
	if challenge {
		v[hvChallenge] = `Bearer realm="flagbridge"`
		h["Www-Authenticate"] = v[hvChallenge : hvChallenge+1 : hvChallenge+1]
	}
}

// WriteJSON sends v as a JSON response with the given status, with the same
// headers as errors (API responses may hold secrets shown once, so none is
// cacheable).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		Write(w, Internal)
		return
	}
	WriteJSONBody(w, status, append(body, '\n'))
}

// WriteJSONBody sends an already encoded JSON answer, with WriteJSON's
// headers.
func WriteJSONBody(w http.ResponseWriter, status int, body []byte) {
	WriteJSONBodyIn(w, status, body, new(HeaderValues))
}

// WriteJSONBodyIn is WriteJSONBody with the header values kept in v, for a
// handler that allocates v with the rest of its request's state, in one
// piece. v must not be used for another response.
func WriteJSONBodyIn(w http.ResponseWriter, status int, body []byte, v *HeaderValues) {
	v.set(w.Header(), false)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Style is the shape an endpoint's errors take.
type Style uint8

// The error styles.
const (
	// REST is FlagBridge's {"error":..., "message":...}.
	REST Style = iota
	// GraphQL is GraphQL's {"errors":[{"message":...,"extensions":{"code":...}}]},
	// so that GraphQL clients surface the edge's refusals like any other
	// GraphQL error.
	GraphQL
	// OFREP is the OpenFeature Remote Evaluation Protocol's routes: the
	// edge's refusals (401, 403, 429, 503) are REST's, and the handlers
	// answer evaluation errors in OFREP's own shape.
	OFREP
	// Dashboard is REST's bodies, for pages a browser renders: every
	// response, errors included, also carries [SetDashboardHeaders].
	Dashboard
)

// String names the style.
func (s Style) String() string {
	switch s {
	case GraphQL:
		return "graphql"
	case OFREP:
		return "ofrep"
	case Dashboard:
		return "dashboard"
	}
	return "rest"
}

// dashboardCSP allows the dashboard's own scripts, styles and API and
// nothing else: no inline script, no framing, no plugins.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// SetDashboardHeaders sets the security headers of every response under
// /dashboard, whoever writes it (the edge's refusals included): a strict
// Content-Security-Policy, no sniffing, no framing, no referrer.
func SetDashboardHeaders(h http.Header) {
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

// The messages GraphQL clients get for refused requests, whatever the
// detail: the same words every GraphQL API uses.
const (
	GraphQLUnauthenticated = "You must be authenticated to perform this action"
	GraphQLForbidden       = "You do not have permission to perform this action"
)

// WriteStyled sends e in the given style.
func WriteStyled(w http.ResponseWriter, e *Error, style Style) {
	switch style {
	case GraphQL:
		WriteGraphQL(w, e)
	case Dashboard:
		SetDashboardHeaders(w.Header())
		Write(w, e)
	default:
		Write(w, e)
	}
}

// GraphQLCode returns the extensions.code and message e becomes in a
// GraphQL error: UNAUTHENTICATED and FORBIDDEN with their fixed messages,
// the others with e's own.
func GraphQLCode(e *Error) (code, message string) {
	switch {
	case e.Status == http.StatusUnauthorized:
		return "UNAUTHENTICATED", GraphQLUnauthenticated
	case e.Code == CodeForbidden:
		return "FORBIDDEN", GraphQLForbidden
	case e.Code == CodeInvalidRequest:
		return "BAD_USER_INPUT", e.Message
	}
	return e.Code, e.Message
}

// WriteGraphQL sends e as a GraphQL error response, with e's HTTP status.
func WriteGraphQL(w http.ResponseWriter, e *Error) {
	code, message := GraphQLCode(e)
	new(HeaderValues).set(w.Header(), e.Status == http.StatusUnauthorized)
	type extensions struct {
		Code string `json:"code"`
	}
	type gqlError struct {
		Message    string     `json:"message"`
		Extensions extensions `json:"extensions"`
	}
	body, err := json.Marshal(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{message, extensions{code}}}})
	if err != nil {
		body = []byte(`{"errors":[{"message":"Internal error","extensions":{"code":"INTERNAL"}}]}`)
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

package caddymodule

// Keeping API keys out of Caddy's logs.
//
// Caddy's server clones every request for its log entries before any
// handler runs (modules/caddyhttp/server.go, ServeHTTP: loggableReq), and
// writes that clone's headers into the access log entry and into the error
// log entry of a failed request. Its redaction (internal.LoggableHTTPHeader)
// knows only Cookie, Set-Cookie, Authorization and Proxy-Authorization, and
// offers no way to add a header. So a key sent in X-API-Key would be
// logged in full, and flagbridge_auth removing the header from the request
// changes nothing: the clone still holds it.
//
// For such a request flagbridge_auth therefore writes the request's log
// entries itself, from a copy of the request whose credential headers say
// REDACTED, as Caddy's entries do for Authorization, and makes Caddy write
// none: the access entry is skipped with the log_skip variable, and a
// handler error is handled here as Caddy's server would handle it (error
// routes, status, error log entry), so that none reaches Caddy.
//
// Everything below replicates Caddy v2.11.9 through exported APIs only:
// Server.ServeHTTP and logRequest (server.go), ServerLogConfig.wrapLogger
// and getLoggerHosts, errLogValues (logging.go), Server.shouldLogRequest,
// errorEmptyHandler (caddyhttp.go). Where it differs, and why, is said at
// each place. The integration test TestKeysNeverLoggedInAnyHeaderOrLog
// compares these entries with Caddy's own for the same requests sent with
// Authorization, so that a change in Caddy shows.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/routes"
)

// caddyRedacts are the request headers Caddy's log marshalers write as
// REDACTED (internal.LoggableHTTPHeader, Caddy v2.11.9), in canonical form.
var caddyRedacts = []string{"Authorization", "Cookie", "Proxy-Authorization", "Set-Cookie"}

// unredactedCredentialHeaders are the headers the edge takes a credential
// from (edge.CredentialHeaders, the one list) that Caddy does not redact:
// today X-Api-Key.
var unredactedCredentialHeaders = func() []string {
	var out []string
	for _, h := range edge.CredentialHeaders {
		if !slices.Contains(caddyRedacts, h) {
			out = append(out, h)
		}
	}
	return out
}()

// carriesUnredactedKey reports whether a request holds a header of
// unredactedCredentialHeaders: one map lookup per header, no allocation,
// so that requests with Authorization only pay nothing more.
func carriesUnredactedKey(h http.Header) bool {
	for _, name := range unredactedCredentialHeaders {
		if _, ok := h[name]; ok {
			return true
		}
	}
	return false
}

// streamPath is the path of OFREP's event streams, whose URL carries a
// stream token (edge.StreamTokenParam): a credential Caddy would log in
// the request's uri.
var streamPath = routes.ByName(routes.OFREPEvents).Pattern

// carriesStreamToken reports whether r is an event stream's request with
// a token in its URL.
func carriesStreamToken(r *http.Request) bool {
	return r.URL.Path == streamPath && r.URL.RawQuery != ""
}

// redactStreamToken returns uri with the stream token's value replaced by
// REDACTED (the rest of the query as it was).
func redactStreamToken(uri string) string {
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil && n == edge.StreamTokenParam {
			parts[i] = name + "=REDACTED"
		}
	}
	return path + "?" + strings.Join(parts, "&")
}

// varLogsTaken marks a request whose log entries a flagbridge_auth writes.
const varLogsTaken = "flagbridge.logs_taken"

// credLog holds what writing a request's log entries in Caddy's stead
// needs: the http app's access and error loggers, and each server's
// compiled error routes.
type credLog struct {
	access *zap.Logger // "http.log.access", as the server's accessLogger
	errors *zap.Logger // "http.log.error", as the server's errorLogger
	routes sync.Map    // *caddyhttp.Server -> caddyhttp.Handler
	// nearerErrorRoutes is set when flagbridge_auth is inside a subroute
	// that has error routes of its own (JSON config only): those take the
	// handlers' errors before the server does.
	nearerErrorRoutes bool
}

// newCredLog takes the http app's loggers: caddy.Context.Logger with a
// module returns a logger over the cores of the logs that admit that
// module's ID, named after it, which is what the http app gets for itself
// (app.go, Provision: app.logger = ctx.Logger()). Only the module's ID
// counts.
func newCredLog(ctx caddy.Context) *credLog {
	base := ctx.Logger(new(caddyhttp.App))
	l := &credLog{access: base.Named("log.access"), errors: base.Named("log.error")}
	for _, m := range ctx.Modules() { // the modules being provisioned, the http app first
		if sr, ok := m.(*caddyhttp.Subroute); ok && sr.Errors != nil && len(sr.Errors.Routes) > 0 {
			l.nearerErrorRoutes = true
		}
	}
	return l
}

// serveKeyOutOfLogs runs the guard (and the handlers after it) for a
// request that carriesUnredactedKey, writing the request's access and error
// log entries itself with the key redacted, and leaving none to Caddy. It
// returns nil: a handler error has been handled, as Caddy would have (but
// see handled).
func (a *Auth) serveKeyOutOfLogs(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs != nil && srv.Logs.ShouldLogCredentials {
		// With log_credentials the operator asked for credentials in the
		// logs, and Caddy writes Authorization in full: X-API-Key is
		// treated the same, and Caddy's entries stay.
		return a.serveGuard(w, r, next)
	}
	l := a.logs
	ctx := r.Context()
	if taken, _ := caddyhttp.GetVar(ctx, varLogsTaken).(bool); taken {
		// A flagbridge_auth before this one (with keep_credentials) has
		// taken the request's entries: it writes them when the request is
		// done, and handles the errors that reach it.
		return a.serveGuard(w, r, next)
	}
	caddyhttp.SetVar(ctx, varLogsTaken, true)
	start, ok := caddyhttp.GetVar(ctx, "start_time").(time.Time) // set as the server took the request
	if !ok {
		start = time.Now()
	}
	// The copy is taken before the guard removes the key and before later
	// handlers change the request; Caddy's was taken before any handler.
	logged := redactedRequest(r)

	var rec caddyhttp.ResponseRecorder
	var body *countingBody
	access := shouldLogRequest(srv, r)
	if access {
		rec = caddyhttp.NewResponseRecorder(w, nil, nil)
		w = rec
		if r.Body != nil {
			body = &countingBody{ReadCloser: r.Body}
			r.Body = body
		}
		// Deferred, as Caddy's logRequest is: it also runs while a handler
		// panics (reverse_proxy aborts a response with a panic), before
		// Caddy's own deferred entry, which it skips.
		var duration time.Duration
		defer func() { l.logAccess(srv, r, logged, rec, body, duration) }()
		err := a.serveGuard(w, r, next)
		duration = time.Since(start)
		return l.handled(srv, w, r, logged, err, duration)
	}
	err := a.serveGuard(w, r, next)
	return l.handled(srv, w, r, logged, err, time.Since(start))
}

// handled handles a handler error as Caddy's server would, and returns nil,
// unless other error routes than the server's primary handling are the
// error's next stop: a subroute's own (JSON config only), or the server's
// error routes when flagbridge_auth runs inside them (with no
// flagbridge_auth before it that took the request: Caddy then logged the
// first error, key and all, before they ran), where an error is Caddy's
// "error handling handler error". The error then goes on as before: the
// client gets the same answer, and Caddy logs nothing for it unless those
// error routes fail too (then with the key, as the request arrived). The
// access entry is still FlagBridge's, with the status and size written
// when flagbridge_auth returned, before those error routes ran.
func (l *credLog) handled(srv *caddyhttp.Server, w http.ResponseWriter, r *http.Request, logged *http.Request, err error, duration time.Duration) error {
	if err == nil {
		return nil
	}
	if l.nearerErrorRoutes || r.Context().Value(caddyhttp.ErrorCtxKey) != nil {
		return err
	}
	l.handleError(srv, w, r, logged, err, duration)
	return nil
}

// redactedRequest returns the request as Caddy's entries show it (the
// method, URI and remote address it arrived with, from
// caddyhttp.OriginalRequestCtxKey), with the value of every header of
// unredactedCredentialHeaders replaced by "REDACTED", as Caddy's
// LoggableHTTPHeader does for Authorization. Its headers are those
// flagbridge_auth received: a handler before it that changed them
// (request_header) shows, where Caddy's entry has them as they arrived.
func redactedRequest(r *http.Request) *http.Request {
	c := r.Clone(r.Context())
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		c.Method, c.RemoteAddr, c.RequestURI = orig.Method, orig.RemoteAddr, orig.RequestURI
	}
	for _, name := range unredactedCredentialHeaders {
		if _, ok := c.Header[name]; ok {
			c.Header[name] = []string{"REDACTED"}
		}
	}
	if carriesStreamToken(r) {
		c.RequestURI = redactStreamToken(c.RequestURI)
		u := *c.URL
		u.RawQuery = strings.TrimPrefix(redactStreamToken("?"+u.RawQuery), "?")
		c.URL = &u
	}
	return c
}

// loggable is the "request" field of both entries, as Caddy's loggableReq.
func loggable(logged *http.Request) zap.Field {
	return zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: logged})
}

// countingBody counts the request body bytes read, for bytes_read. Caddy
// counts from the start and through hijacked connections; this counts what
// the handlers from flagbridge_auth on read through r.Body (all of it,
// unless a handler before flagbridge_auth read the body). Atomic: a
// transport may still be reading the body of a proxied request when the
// handler returns.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// shouldLogRequest is Server.shouldLogRequest: whether the server writes an
// access entry for the request's host. The server has an access logger
// exactly when Logs is set (app.go, Provision).
func shouldLogRequest(srv *caddyhttp.Server, r *http.Request) bool {
	if srv.Logs == nil {
		return false
	}
	host := hostOnly(r.Host)
	for name := range srv.Logs.LoggerNames {
		if certmagic.MatchWildcard(host, name) {
			return true
		}
	}
	for _, h := range srv.Logs.SkipHosts {
		if certmagic.MatchWildcard(host, h) {
			return false
		}
	}
	return !srv.Logs.SkipUnmappedHosts
}

func hostOnly(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return host
}

// loggers is ServerLogConfig.wrapLogger: logger, or the loggers named for
// this request, from the access_logger_names variable (log_name) or else
// from the logger names of the request's host.
func loggers(logs *caddyhttp.ServerLogConfig, logger *zap.Logger, r *http.Request) []*zap.Logger {
	if logs == nil {
		return []*zap.Logger{logger}
	}
	if names, ok := caddyhttp.GetVar(r.Context(), caddyhttp.AccessLoggerNameVarKey).([]any); ok {
		out := make([]*zap.Logger, 0, len(names))
		for _, n := range names {
			// Caddy asserts a string (and would panic on anything else);
			// the vars directive only sets strings here.
			name, _ := n.(string)
			out = append(out, named(logger, name))
		}
		return out
	}
	names := loggerNames(logs, hostOnly(r.Host))
	out := make([]*zap.Logger, 0, len(names))
	for _, name := range names {
		out = append(out, named(logger, name))
	}
	return out
}

// loggerNames is ServerLogConfig.getLoggerHosts: the logger names mapped to
// host, exactly or by a wildcard replacing one label, or the default one.
// The map's keys are lowercase (the http app normalized them).
func loggerNames(logs *caddyhttp.ServerLogConfig, host string) []string {
	host = strings.ToLower(host)
	if names, ok := logs.LoggerNames[host]; ok {
		return names
	}
	labels := strings.Split(host, ".")
	for i := range labels {
		if labels[i] == "" {
			continue
		}
		labels[i] = "*"
		if names, ok := logs.LoggerNames[strings.Join(labels, ".")]; ok {
			return names
		}
	}
	return []string{logs.DefaultLoggerName}
}

func named(logger *zap.Logger, name string) *zap.Logger {
	if name == "" {
		return logger
	}
	return logger.Named(name)
}

// logAccess is Server.logRequest, for the redacted request; it then sets
// log_skip so that Caddy's own deferred logRequest writes nothing.
func (l *credLog) logAccess(srv *caddyhttp.Server, r *http.Request, logged *http.Request,
	rec caddyhttp.ResponseRecorder, body *countingBody, duration time.Duration) {
	ctx := r.Context()
	// log_skip may have been set by any handler, before flagbridge_auth
	// or after it: then neither Caddy nor FlagBridge writes an entry.
	if skip, ok := caddyhttp.GetVar(ctx, caddyhttp.LogSkipVar).(bool); ok && skip {
		return
	}
	caddyhttp.SetVar(ctx, caddyhttp.LogSkipVar, true)

	// Caddy flushes a response that went past the write timeout, so that
	// the entry shows the write error (server.go, the deferred flush).
	var writeErr error
	if srv.WriteTimeout > 0 && r.ProtoMajor == 1 && duration >= time.Duration(srv.WriteTimeout) {
		err := http.NewResponseController(rec).Flush()
		if err != nil && !errors.Is(err, http.ErrHijacked) && !errors.Is(err, http.ErrNotSupported) {
			writeErr = err
		}
	}

	status, size := rec.Status(), rec.Size()
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.response.status", status)
		repl.Set("http.response.size", size)
		repl.Set("http.response.duration", duration)
		repl.Set("http.response.duration_ms", duration.Seconds()*1e3)
	}

	message := "handled request"
	if nop, ok := caddyhttp.GetVar(ctx, "unhandled").(bool); ok && nop {
		message = "NOP"
	}
	level := zapcore.InfoLevel
	if status >= 500 {
		level = zapcore.ErrorLevel
	}
	if name, ok := caddyhttp.GetVar(ctx, caddyhttp.LogLevelVar).(string); ok {
		if lv, err := zapcore.ParseLevel(name); err == nil && lv >= zapcore.DebugLevel && lv <= zapcore.ErrorLevel {
			level = lv
		}
	}

	accLog := l.access.WithLazy(loggable(logged))
	var fields []zapcore.Field
	for _, logger := range loggers(srv.Logs, accLog, r) {
		c := logger.Check(level, message)
		if c == nil {
			continue
		}
		if fields == nil {
			var userID string
			if repl != nil {
				userID, _ = repl.GetString("http.auth.user.id")
			}
			var read int
			if body != nil {
				read = int(body.n.Load())
			}
			fields = []zapcore.Field{
				zap.Int("bytes_read", read),
				zap.String("user_id", userID),
				zap.Duration("duration", duration),
				zap.Int("size", size),
				zap.Int("status", status),
				zap.Object("resp_headers", caddyhttp.LoggableHTTPHeader{Header: rec.Header()}),
			}
			if writeErr != nil {
				fields = append(fields, zap.NamedError("write_error", writeErr))
			}
			fields = append(fields, extraFields(ctx)...)
		}
		c.Write(fields...)
	}
}

// extraFields rebuilds what it can of the request's caddyhttp.ExtraLogFields,
// which Caddy appends to its access entry but keeps in an unexported field:
// the tracing handler's traceID and spanID and the uuid of
// {http.request.uuid}, from the variables their handlers set alongside.
// Fields added by log_append (or by other modules) cannot be read and are
// missing from the entry.
func extraFields(ctx context.Context) []zapcore.Field {
	var fields []zapcore.Field
	if trace, ok := caddyhttp.GetVar(ctx, "trace_id").(string); ok {
		if span, ok := caddyhttp.GetVar(ctx, "span_id").(string); ok {
			fields = append(fields, zap.String("traceID", trace), zap.String("spanID", span))
		}
	}
	if id, ok := caddyhttp.GetVar(ctx, "uuid").(fmt.Stringer); ok {
		fields = append(fields, zap.String("uuid", id.String()))
	}
	return fields
}

// handleError is what Caddy's Server.ServeHTTP does with a handler error
// (after err := s.serveHTTP(w, r)), with the redacted request in the error
// entry: restore the request as it arrived, run the server's error routes
// or else write the error's status, and log the error.
//
// One difference: the error routes and the status are written to the
// writer flagbridge_auth was given, not to the server's own, so a handler
// before flagbridge_auth that wraps the response (encode in the same
// route, say) also sees the error response.
func (l *credLog) handleError(srv *caddyhttp.Server, w http.ResponseWriter, r *http.Request, logged *http.Request, err error, duration time.Duration) {
	// Restore the original request before the error routes run (Caddy
	// issue #3717); the headers are not restored, as in Caddy.
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		r.Method = orig.Method
		r.RemoteAddr = orig.RemoteAddr
		r.RequestURI = orig.RequestURI
		*r.URL = *orig.URL
		if orig.URL.User != nil {
			user := *orig.URL.User
			r.URL.User = &user
		}
	}

	errLog := l.errors.WithLazy(loggable(logged)).With(zap.Duration("duration", duration))
	errLoggers := loggers(srv.Logs, errLog, r)
	status, msg, errFields := errLogValues(err)
	r = srv.Errors.WithError(r, err) // a nil *HTTPErrorConfig does too

	var fields []zapcore.Field
	if srv.Errors != nil && len(srv.Errors.Routes) > 0 {
		if err2 := l.errorRoutes(srv).ServeHTTP(w, r); err2 == nil {
			for _, logger := range errLoggers {
				if c := logger.Check(zapcore.DebugLevel, msg); c != nil {
					if fields == nil {
						fields = errFields()
					}
					c.Write(fields...)
				}
			}
		} else {
			for _, logger := range errLoggers {
				if c := logger.Check(zapcore.ErrorLevel, "error handling handler error"); c != nil {
					if fields == nil {
						fields = append([]zapcore.Field{
							zap.String("error", err2.Error()),
							zap.Namespace("first_error"),
							zap.String("msg", msg),
						}, errFields()...)
					}
					c.Write(fields...)
				}
			}
			if handlerErr, ok := err.(caddyhttp.HandlerError); ok {
				w.WriteHeader(handlerErr.StatusCode)
			} else {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}
		return
	}
	level := zapcore.DebugLevel
	if status >= 500 {
		level = zapcore.ErrorLevel
	}
	for _, logger := range errLoggers {
		if c := logger.Check(level, msg); c != nil {
			if fields == nil {
				fields = errFields()
			}
			c.Write(fields...)
		}
	}
	w.WriteHeader(status)
}

// errorRoutes returns the server's error routes compiled, once per server,
// as the http app compiles them (app.go: srv.Errors.Routes.Compile). They
// are compiled on first use: when flagbridge_auth is provisioned, the
// server's error routes are not yet.
func (l *credLog) errorRoutes(srv *caddyhttp.Server) caddyhttp.Handler {
	if h, ok := l.routes.Load(srv); ok {
		return h.(caddyhttp.Handler)
	}
	h, _ := l.routes.LoadOrStore(srv, srv.Errors.Routes.Compile(errorEmptyHandler))
	return h.(caddyhttp.Handler)
}

// errorEmptyHandler is Caddy's: at the end of the error routes, it writes
// the error's status, in case no route handled the error.
var errorEmptyHandler caddyhttp.Handler = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	if handlerErr, ok := r.Context().Value(caddyhttp.ErrorCtxKey).(caddyhttp.HandlerError); ok {
		w.WriteHeader(handlerErr.StatusCode)
	} else {
		w.WriteHeader(http.StatusInternalServerError)
	}
	return nil
})

// errLogValues is Caddy's: the status, message and fields an error is
// logged with.
func errLogValues(err error) (status int, msg string, fields func() []zapcore.Field) {
	if handlerErr, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		status = handlerErr.StatusCode
		if handlerErr.Err == nil {
			msg = err.Error()
		} else {
			msg = handlerErr.Err.Error()
		}
		return status, msg, func() []zapcore.Field {
			return []zapcore.Field{
				zap.Int("status", handlerErr.StatusCode),
				zap.String("err_id", handlerErr.ID),
				zap.String("err_trace", handlerErr.Trace),
			}
		}
	}
	return http.StatusInternalServerError, err.Error(), func() []zapcore.Field {
		return []zapcore.Field{zap.Error(err)}
	}
}

package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/ratelimit"
)

func init() {
	caddy.RegisterModule(Auth{})
	httpcaddyfile.RegisterHandlerDirective("flagbridge_auth", parseAuth)
	httpcaddyfile.RegisterDirectiveOrder("flagbridge_auth", httpcaddyfile.After, "basic_auth")
}

// Variables the guard leaves for later handlers. {http.vars.flagbridge.key_id}
// and its siblings can be used as placeholders, e.g. in reverse_proxy's
// header_up, to tell an upstream which key called.
const (
	// varAdmission holds the *edge.Admission of an admitted request, for
	// flagbridge_api.
	varAdmission   = "flagbridge.admission"
	varKeyID       = "flagbridge.key_id"
	varKeyType     = "flagbridge.key_type"
	varProject     = "flagbridge.project"
	varEnvironment = "flagbridge.environment"
	// varIdentity is set only for a key with an identity.
	varIdentity = "flagbridge.identity"
)

// Auth is the edge guard, http.handlers.flagbridge_auth. It refuses
// requests that did not arrive over HTTPS, authenticates the request's
// credential, applies its rate limit, checks what the route needs and then
// hands the request on. Every response to an authenticated request carries
// the X-RateLimit-* headers, whichever handler wrote it.
//
// Without Require, the guard protects FlagBridge's own endpoints and must
// be followed by flagbridge_api: the route table decides what each endpoint
// takes (an API key, the dashboard's session cookie, or nothing) and needs.
// In front of anything else (a team's own services), Require sets the least
// capable key type the route admits (admin > test > live), and every path
// needs a key.
type Auth struct {
	// Require is "live", "test" or "admin": the key type a route needs.
	// Empty means the FlagBridge API's route table decides.
	Require string `json:"require,omitempty"`
	// AllowHTTP admits requests that did not arrive over TLS. For local
	// development only; it logs a warning.
	AllowHTTP bool `json:"allow_http,omitempty"`
	// KeepCredentials passes the key on to the next handler, in the header
	// it came in. By default it is removed, so upstreams never see keys.
	KeepCredentials bool `json:"keep_credentials,omitempty"`
	// Limits are the route's own rate limits (1 to 4), spent per key, or
	// per identity for a key that has one, on top of the key's own.
	Limits []ratelimit.NamedLimit `json:"limits,omitempty"`
	// Cost is how many requests the route spends from each of the
	// caller's limits (default 1).
	Cost int `json:"cost,omitempty"`

	appHandle
	policy edge.Policy
	logs   *credLog
}

// CaddyModule returns the Caddy module information.
func (Auth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.flagbridge_auth",
		New: func() caddy.Module { return new(Auth) },
	}
}

// Provision finds the flagbridge app and builds the route's policy.
func (a *Auth) Provision(ctx caddy.Context) error {
	if err := a.provision(ctx); err != nil {
		return err
	}
	a.logs = newCredLog(ctx)
	a.policy = edge.Policy{AllowHTTP: a.AllowHTTP, KeepCredentials: a.KeepCredentials, Limits: a.Limits, Cost: a.Cost}
	if a.Limits != nil {
		if err := ratelimit.CheckLimits(a.Limits, nil); err != nil {
			return fmt.Errorf("flagbridge_auth: %v", err)
		}
	}
	if a.Cost < 0 {
		return fmt.Errorf("flagbridge_auth: cost must be a positive whole number, not %d", a.Cost)
	}
	if a.Require != "" {
		t, err := parseRequire(a.Require)
		if err != nil {
			return fmt.Errorf("flagbridge_auth: require: %v", err)
		}
		a.policy.Require = t
	}
	if a.AllowHTTP {
		a.logger.Warn("flagbridge_auth: allow_http is set, so API keys may travel in clear text; use it for local development only")
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (a *Auth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if carriesUnredactedKey(r.Header) || carriesStreamToken(r) {
		// Caddy would log this key: flagbridge_auth writes the request's
		// log entries itself (credlog.go).
		return a.serveKeyOutOfLogs(w, r, next)
	}
	return a.serveGuard(w, r, next)
}

// serveGuard is the guard proper.
func (a *Auth) serveGuard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	c, ok := a.state(w)
	if !ok {
		return nil
	}
	in := edge.Request{HTTPS: arrivedOverHTTPS(r)}
	in.ClientIP, _ = caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	d := c.Guard.Check(r, in, a.policy)
	adm, ok := d.Apply(w, r, a.policy)
	if !ok {
		return nil
	}
	ctx := r.Context()
	caddyhttp.SetVar(ctx, varAdmission, adm)
	if e := adm.Entry; e != nil {
		boxed := &e.Boxed // boxed once per cached key, not per request
		caddyhttp.SetVar(ctx, varKeyID, boxed[0])
		caddyhttp.SetVar(ctx, varKeyType, boxed[1])
		caddyhttp.SetVar(ctx, varProject, boxed[2])
		caddyhttp.SetVar(ctx, varEnvironment, boxed[3])
		if boxed[4] != nil {
			caddyhttp.SetVar(ctx, varIdentity, boxed[4])
		}
	}
	return next.ServeHTTP(adm.Writer(), r)
}

// arrivedOverHTTPS reports whether the client's connection was TLS: either
// to Caddy itself, or to a proxy in Caddy's trusted_proxies that says so in
// X-Forwarded-Proto. The header is ignored from anyone else, since any
// client can send it.
func arrivedOverHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	if !trusted {
		return false
	}
	proto := r.Header.Values("X-Forwarded-Proto")
	if len(proto) == 0 {
		return false
	}
	// With several proxies the header may be a list; the first entry was
	// set by the proxy nearest the client.
	first, _, _ := strings.Cut(proto[0], ",")
	return strings.EqualFold(strings.TrimSpace(first), "https")
}

// parseRequire reads require's key type. Client keys are public (any page
// carries them) and made for OFREP alone, so no route of a team's own
// services may take them.
func parseRequire(s string) (apikey.Type, error) {
	t, err := apikey.ParseType(s)
	if err != nil {
		return 0, err
	}
	if t == apikey.Client {
		return 0, fmt.Errorf("client keys are public and only evaluate flags over OFREP; require live, test or admin")
	}
	return t, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	flagbridge_auth [<matcher>] {
//		require live|test|admin
//		allow_http
//		keep_credentials
//	}
//
// With no block, the route table of the FlagBridge API decides what each
// endpoint takes and needs. require is for routes in front of other
// services (reverse_proxy and such): the key type the route needs, where
// admin > test > live, and READ for safe methods, WRITE for the rest.
// allow_http admits plain HTTP (local development only). keep_credentials
// passes the key on to the next handler, in the header it came in.
func (a *Auth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "require":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if _, err := parseRequire(d.Val()); err != nil {
				return d.Errf("require: %v", err)
			}
			a.Require = strings.ToLower(d.Val())
			if d.NextArg() {
				return d.ArgErr()
			}
		case "allow_http":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AllowHTTP = true
		case "keep_credentials":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.KeepCredentials = true
		case "limit":
			// limit <name> <requests>[/<window>], as rate_limit writes a
			// limit; the values are checked by Provision.
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("limit takes a name and a limit, such as: limit search 100/1m")
			}
			rl, err := parseRateLimit(args[1])
			if err != nil {
				return d.Errf("limit %s: %v", args[0], err)
			}
			a.Limits = append(a.Limits, ratelimit.NamedLimit{Name: args[0], Requests: rl.Requests, Window: ratelimit.Window(rl.Window)})
		case "cost":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return d.Errf("cost: %q is not a positive whole number", d.Val())
			}
			a.Cost = n
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized flagbridge_auth option %q", d.Val())
		}
	}
	return nil
}

func parseAuth(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(Auth)
	err := a.UnmarshalCaddyfile(h.Dispenser)
	return a, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Auth)(nil)
	_ caddyhttp.MiddlewareHandler = (*Auth)(nil)
	_ caddyfile.Unmarshaler       = (*Auth)(nil)
)

package caddymodule

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/flagbridge/flagbridge/edge"
)

func init() {
	caddy.RegisterModule(API{})
	httpcaddyfile.RegisterHandlerDirective("flagbridge_api", parseAPI)
	httpcaddyfile.RegisterDirectiveOrder("flagbridge_api", httpcaddyfile.Before, "file_server")
}

// API is the in-process FlagBridge backend, http.handlers.flagbridge_api:
// the router serving the route table (the /v1 REST endpoints, OFREP,
// /graphql and the dashboard). It answers every request it gets (unknown
// paths with a JSON 404), so it ends a route. It must follow
// flagbridge_auth, which admits each request; without it every request is
// refused.
type API struct {
	appHandle
	// unloaded ends when this config is unloaded (a reload, or Caddy
	// stopping): the event streams it serves end then.
	unloaded context.Context
}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.flagbridge_api",
		New: func() caddy.Module { return new(API) },
	}
}

// Provision finds the flagbridge app.
func (a *API) Provision(ctx caddy.Context) error {
	a.unloaded = ctx
	return a.provision(ctx)
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	c, ok := a.state(w)
	if !ok {
		return nil
	}
	// Only flagbridge_auth stores an *edge.Admission here; a value set any
	// other way (the vars directive can only set strings) fails the
	// assertion, and the router refuses the request.
	adm, _ := caddyhttp.GetVar(r.Context(), varAdmission).(*edge.Admission)
	if adm != nil && adm.Stream != nil && a.unloaded != nil {
		// An event stream lasts until its client leaves, and Caddy's
		// default grace period waits for every request: without this, a
		// reload or a stop would wait for every stream's client. It ends
		// with this config instead, and the clients reconnect to the next.
		ctx, cancel := context.WithCancel(r.Context())
		stop := context.AfterFunc(a.unloaded, cancel)
		defer stop()
		defer cancel()
		r = r.WithContext(ctx)
	}
	c.Router.Serve(w, r, adm)
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. It takes no
// options:
//
//	flagbridge_api [<matcher>]
func (a *API) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("flagbridge_api takes no arguments or options")
	}
	return nil
}

func parseAPI(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(API)
	err := a.UnmarshalCaddyfile(h.Dispenser)
	return a, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*API)(nil)
	_ caddyhttp.MiddlewareHandler = (*API)(nil)
	_ caddyfile.Unmarshaler       = (*API)(nil)
)

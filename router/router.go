// Package router is FlagBridge's one router: it serves every route of the
// route table with its handler from the REST API, OFREP, GraphQL and the
// dashboard, side by side, for requests the edge admitted. It answers the
// paths and methods no route has (404 and 405) and errors in the route's
// style, and bounds each request's storage work by its timeout class.
package router

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/api"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/dashboard"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/graphqlapi"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/streams"
)

// RequestTimeout bounds the storage work of one request on a route of the
// Bounded timeout class.
const RequestTimeout = 10 * time.Second

// RequestIDHeader carries the id of a request on a route of the Bounded
// class (the admin API, GraphQL, the dashboard), which the audit entries
// of its changes name.
const RequestIDHeader = "Flagbridge-Request-Id"

// Config is what the router serves.
type Config struct {
	Admin *admin.Service
	Eval  *evaluation.Service
	// Limits spends the dashboard's login attempts and reads keys' usage
	// (the guard).
	Limits Limits
	Log    *zap.Logger
	// Tokens and Hub serve OFREP's event streams (none if nil).
	Tokens *streams.Tokens
	Hub    *streams.Hub
}

// Limits is what the router's handlers ask of the guard's rate limits.
type Limits interface {
	dashboard.Spender
	edge.UsageReader
}

// handler serves one route for an admitted request.
type handler func(w http.ResponseWriter, r *http.Request, a *edge.Admission) error

// Router serves the route table.
type Router struct {
	handlers []handler // by routes.Route.Index
	log      *zap.Logger
}

// New binds a handler to every route of the table. It panics if a route
// has none, or a handler no route, which the tests catch.
func New(cfg Config) *Router {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	rest := api.New(cfg.Admin, cfg.Eval, cfg.Limits, cfg.Log.Named("api"))
	if cfg.Tokens != nil && cfg.Hub != nil {
		rest.SetStreams(cfg.Tokens, cfg.Hub)
	}
	gql := graphqlapi.NewHandler(cfg.Admin, cfg.Limits, cfg.Log.Named("graphql"))
	dash := dashboard.New(cfg.Admin.Identity, cfg.Limits)

	// as serves a route on behalf of the admitted principal.
	as := func(f func(http.ResponseWriter, *http.Request, *authz.Principal) error) handler {
		return func(w http.ResponseWriter, r *http.Request, a *edge.Admission) error { return f(w, r, a.Principal) }
	}
	bound := map[routes.Name]handler{
		routes.ListProjects:      as(rest.ListProjects),
		routes.CreateProject:     as(rest.CreateProject),
		routes.GetProject:        as(rest.GetProject),
		routes.DeleteProject:     as(rest.DeleteProject),
		routes.ListEnvironments:  as(rest.ListEnvironments),
		routes.CreateEnvironment: as(rest.CreateEnvironment),
		routes.ListKeys:          as(rest.ListKeys),
		routes.CreateKey:         as(rest.CreateKey),
		routes.GetKey:            as(rest.GetKey),
		routes.UpdateKey:         as(rest.UpdateKey),
		routes.RevokeKey:         as(rest.RevokeKey),
		routes.RotateKey:         as(rest.RotateKey),
		routes.ListIdentities:    as(rest.ListIdentities),
		routes.GetIdentity:       as(rest.GetIdentity),
		routes.PutIdentity:       as(rest.PutIdentity),
		routes.DeleteIdentity:    as(rest.DeleteIdentity),
		routes.GetFlagSet:        as(rest.GetFlagSet),
		routes.PutFlagSet:        as(rest.PutFlagSet),
		routes.ListFlagVersions:  as(rest.ListFlagVersions),
		routes.GetFlagVersion:    as(rest.GetFlagVersion),
		routes.DiffFlagVersions:  as(rest.DiffFlagVersions),
		routes.RevertFlagSet:     as(rest.RevertFlagSet),
		routes.GetFlag:           as(rest.GetFlag),
		routes.PutFlag:           as(rest.PutFlag),
		routes.DeleteFlag:        as(rest.DeleteFlag),
		routes.ListMembers:       as(rest.ListMembers),
		routes.InviteMember:      as(rest.InviteMember),
		routes.RemoveMember:      as(rest.RemoveMember),
		routes.ListAuditLog:      as(rest.ListAuditLog),
		routes.CreateWebhook:     as(rest.CreateWebhook),
		routes.ListWebhooks:      as(rest.ListWebhooks),
		routes.DeleteWebhook:     as(rest.DeleteWebhook),
		routes.ListDeliveries:    as(rest.ListDeliveries),
		routes.ReplayDelivery:    as(rest.ReplayDelivery),
		routes.Evaluate:          as(rest.Evaluate),
		routes.EvaluateBatch:     as(rest.EvaluateBatch),
		routes.CreateSession:     as(rest.CreateSession),
		routes.SetOverrides:      as(rest.SetOverrides),
		routes.DeleteSession:     as(rest.DeleteSession),
		routes.OFREPEvaluate:     as(rest.OFREPEvaluate),
		routes.OFREPEvaluateAll:  rest.OFREPEvaluateAll,
		routes.OFREPEvents:       rest.OFREPEvents,
		routes.OFREPConfig:       as(rest.OFREPConfiguration),
		routes.GraphQLPost:       graphQL(gql),
		routes.GraphQLGet:        graphQL(gql),
		routes.DashboardRoot:     plain(dash.Root),
		routes.DashboardPage:     plain(dash.Static),
		routes.DashboardIndex:    plain(dash.Static),
		routes.DashboardAsset:    plain(dash.Static),
		routes.DashboardSession:  as(dash.Session),
		routes.DashboardLogin:    fromClient(dash.Login),
		routes.DashboardLogout:   plain(dash.Logout),
		routes.InviteLookup:      plain(dash.InviteLookup),
		routes.InviteAccept:      fromClient(dash.InviteAccept),
	}
	table := routes.All()
	rt := &Router{handlers: make([]handler, len(table)), log: cfg.Log}
	for i := range table {
		h, ok := bound[table[i].Name]
		if !ok {
			panic("router: no handler for route " + string(table[i].Name))
		}
		rt.handlers[table[i].Index()] = h
	}
	for name := range bound {
		if routes.ByName(name) == nil {
			panic("router: a handler for " + string(name) + ", which the table does not have")
		}
	}
	return rt
}

func plain(f func(http.ResponseWriter, *http.Request) error) handler {
	return func(w http.ResponseWriter, r *http.Request, _ *edge.Admission) error { return f(w, r) }
}

func fromClient(f func(http.ResponseWriter, *http.Request, string) error) handler {
	return func(w http.ResponseWriter, r *http.Request, a *edge.Admission) error { return f(w, r, a.ClientIP) }
}

// graphQL serves GraphQL, which writes its own answers, charging the
// admission for mutations.
func graphQL(g *graphqlapi.Handler) handler {
	return func(w http.ResponseWriter, r *http.Request, a *edge.Admission) error {
		g.Serve(w, r, a.Principal, a)
		return nil
	}
}

// Serve answers a request the edge admitted. Without an admission (no
// flagbridge_auth in front) it refuses.
func (rt *Router) Serve(w http.ResponseWriter, r *http.Request, a *edge.Admission) {
	if a == nil {
		rt.log.Error("flagbridge_api reached without flagbridge_auth; put flagbridge_auth before it in the route")
		apierror.Write(w, apierror.InvalidKey)
		return
	}
	m := &a.Match
	if m.Family == nil {
		rt.log.Error("flagbridge_api is behind a flagbridge_auth with require; the FlagBridge API needs flagbridge_auth without require")
		apierror.Write(w, apierror.Internal)
		return
	}
	style := m.Style()
	if m.Route == nil {
		if allowed := routes.Allowed(r.URL.Path); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			apierror.WriteStyled(w, apierror.New(http.StatusMethodNotAllowed, apierror.CodeMethodNotAllowed,
				r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.Join(allowed, " or ")), style)
			return
		}
		apierror.WriteStyled(w, apierror.NotFound("no endpoint %s %s", r.Method, r.URL.Path), style)
		return
	}
	m.SetPathValues(r)
	if m.Route.Timeout == routes.Bounded {
		// The routes that change state are all of this class: their
		// audit entries name the request (by the id its answer carries)
		// and the client's address. Evaluation is spared both.
		id := audit.NewRequestID()
		w.Header().Set(RequestIDHeader, id)
		ctx, cancel := context.WithTimeout(audit.WithOrigin(r.Context(), audit.Origin{ClientAddress: a.ClientIP, RequestID: id}), RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if err := rt.handlers[m.Route.Index()](w, r, a); err != nil {
		rt.fail(w, r, err, style)
	}
}

// fail writes a handler's error: API errors as they are, in the route's
// style; anything else as a storage failure (logged, since the client is
// told nothing specific).
func (rt *Router) fail(w http.ResponseWriter, r *http.Request, err error, style apierror.Style) {
	var ae *apierror.Error
	if !errors.As(err, &ae) {
		rt.log.Error("storage failure", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		ae = apierror.StorageDown
	}
	apierror.WriteStyled(w, ae, style)
}

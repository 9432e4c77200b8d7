// Package api is FlagBridge's REST API over net/http: the routes under /v1
// that the flagbridge_api Caddy handler serves in process. It decodes
// requests, calls the admin services and encodes their answers; it holds
// no business rules of its own.
//
// Every request reaching it has been authenticated by the edge, which hands
// over the calling key with [Handler.Serve].
package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/graphqlapi"
	"github.com/flagbridge/flagbridge/internal/route"
)

// MaxBodyBytes bounds request bodies of the admin endpoints.
const MaxBodyBytes = 64 << 10

// requestTimeout bounds the storage work of one API request.
const requestTimeout = 10 * time.Second

// Handler serves the REST API.
type Handler struct {
	admin   *admin.Service
	eval    *evaluation.Service
	graphql *graphqlapi.Handler
	log     *zap.Logger
	routes  []endpoint
}

type endpoint struct {
	method  string
	pattern route.Pattern
	handle  func(h *Handler, w http.ResponseWriter, r *http.Request, caller *apikey.Record) error
	// untimed endpoints run without the request timeout (see Serve).
	untimed bool
}

// New returns the API over the admin and evaluation services.
func New(svc *admin.Service, eval *evaluation.Service, log *zap.Logger) *Handler {
	if log == nil {
		log = zap.NewNop()
	}
	h := &Handler{admin: svc, eval: eval, graphql: graphqlapi.NewHandler(svc, log.Named("graphql")), log: log}
	add := func(method, pattern string, fn func(*Handler, http.ResponseWriter, *http.Request, *apikey.Record) error) {
		h.routes = append(h.routes, endpoint{method: method, pattern: route.Compile(pattern), handle: fn})
	}
	addEvaluation := func(method, pattern string, fn func(*Handler, http.ResponseWriter, *http.Request, *apikey.Record) error) {
		h.routes = append(h.routes, endpoint{method: method, pattern: route.Compile(pattern), handle: fn, untimed: true})
	}
	add("GET", "/v1/projects", (*Handler).listProjects)
	add("POST", "/v1/projects", (*Handler).createProject)
	add("GET", "/v1/projects/{project}", (*Handler).getProject)
	add("DELETE", "/v1/projects/{project}", (*Handler).deleteProject)
	add("GET", "/v1/projects/{project}/environments", (*Handler).listEnvironments)
	add("POST", "/v1/projects/{project}/environments", (*Handler).createEnvironment)
	add("GET", "/v1/projects/{project}/api-keys", (*Handler).listKeys)
	add("POST", "/v1/projects/{project}/api-keys", (*Handler).createKey)
	add("GET", "/v1/api-keys/{id}", (*Handler).getKey)
	add("DELETE", "/v1/api-keys/{id}", (*Handler).revokeKey)
	add("POST", "/v1/api-keys/{id}/rotate", (*Handler).rotateKey)

	add("GET", "/v1/projects/{project}/environments/{env}/flags", (*Handler).getFlagSet)
	add("PUT", "/v1/projects/{project}/environments/{env}/flags", (*Handler).putFlagSet)
	add("GET", "/v1/projects/{project}/environments/{env}/flags/{flag}", (*Handler).getFlag)
	add("PUT", "/v1/projects/{project}/environments/{env}/flags/{flag}", (*Handler).putFlag)
	add("DELETE", "/v1/projects/{project}/environments/{env}/flags/{flag}", (*Handler).deleteFlag)

	addEvaluation("POST", "/v1/evaluate", (*Handler).evaluate)
	addEvaluation("POST", "/v1/evaluate/batch", (*Handler).evaluateBatch)
	add("POST", "/v1/testing/sessions", (*Handler).createSession)
	add("POST", "/v1/testing/sessions/{id}/overrides", (*Handler).setOverrides)
	add("DELETE", "/v1/testing/sessions/{id}", (*Handler).deleteSession)

	addEvaluation("POST", "/ofrep/v1/evaluate/flags/{key}", (*Handler).ofrepEvaluate)
	addEvaluation("POST", "/ofrep/v1/evaluate/flags", (*Handler).ofrepEvaluateAll)
	addEvaluation("GET", "/ofrep/v1/configuration", (*Handler).ofrepConfiguration)

	add("POST", "/graphql", (*Handler).serveGraphQL)
	add("GET", "/graphql", (*Handler).serveGraphQL)
	return h
}

// Serve answers one request on behalf of caller, the key the edge
// authenticated. A nil caller (no edge in front) is refused.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, caller *apikey.Record) {
	if caller == nil {
		h.log.Error("flagbridge_api reached without an authenticated key; put flagbridge_auth before it in the route")
		apierror.Write(w, apierror.InvalidKey)
		return
	}
	var allowed []string
	for i := range h.routes {
		e := &h.routes[i]
		if !e.pattern.Params(r.URL.Path, r.SetPathValue) {
			continue
		}
		if e.method != r.Method {
			allowed = append(allowed, e.method)
			continue
		}
		if e.untimed {
			// Evaluation touches storage only to load a changed flag set or
			// a testing session, and both bound their own reads; the hot
			// path is spared a timer per request.
			h.fail(w, r, e.handle(h, w, r, caller))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		h.fail(w, r, e.handle(h, w, r.WithContext(ctx), caller))
		return
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		apierror.Write(w, apierror.New(http.StatusMethodNotAllowed, apierror.CodeMethodNotAllowed,
			r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.Join(allowed, " or ")))
		return
	}
	apierror.Write(w, apierror.NotFound("no endpoint %s %s", r.Method, r.URL.Path))
}

// fail writes err, if any: API errors as they are, anything else as a
// storage failure (logged, since the client is told nothing specific).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		return
	}
	var ae *apierror.Error
	if errors.As(err, &ae) {
		apierror.Write(w, ae)
		return
	}
	h.log.Error("storage failure", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	apierror.Write(w, apierror.StorageDown)
}

// serveGraphQL hands /graphql to the GraphQL layer, which writes its own
// answers in GraphQL's shape.
func (h *Handler) serveGraphQL(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	h.graphql.Serve(w, r, caller)
	return nil
}

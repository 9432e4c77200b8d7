package graphqlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
)

// Bounds on what one request may ask.
const (
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes = 64 << 10
	// MaxDepth bounds how deeply selections nest (introspection queries,
	// the deepest legitimate ones, reach about 13).
	MaxDepth = 15
	// MaxComplexity bounds the fields one operation may resolve,
	// introspection included (see complexityLimit).
	MaxComplexity = 500
)

// Codes of the errors refusing an operation before it runs because it asks
// too much. Like the parse and validation errors, they are request errors:
// the whole operation is refused, with 422.
const (
	codeTooComplex = "COMPLEXITY_LIMIT_EXCEEDED" // as gqlgen's extension.ComplexityLimit says it
	codeTooDeep    = "QUERY_TOO_DEEP"
	// codeRateLimited refuses an operation whose mutations the caller's
	// rate limit cannot pay for. It is not a request error: gqlgen answers
	// it with 200, which operationStatus turns into 429, as REST answers.
	codeRateLimited = apierror.CodeRateLimited
	// codeQuotaExceeded is the same refusal by the caller's quota.
	codeQuotaExceeded = apierror.CodeQuotaExceeded
	// codeBadRequest is the code of gqlgen's own errors about a request it
	// could not read (such as a body member of the wrong type), which carry
	// none.
	codeBadRequest = "BAD_REQUEST"
)

func init() {
	// gqlgen documents 422 for the complexity limit but leaves its code a
	// user error (200); an extension must register its codes.
	errcode.RegisterErrorType(codeTooComplex, errcode.KindProtocol)
	errcode.RegisterErrorType(codeTooDeep, errcode.KindProtocol)
}

// Meter charges a request's rate limit for work beyond the one request the
// edge counted: every mutation of an operation after the first.
type Meter interface {
	Charge(ctx context.Context, n int) error
}

// Handler serves /graphql.
type Handler struct {
	srv *handler.Server
	log *zap.Logger
}

// NewHandler returns the GraphQL endpoint over the admin services.
func NewHandler(svc *admin.Service, usage edge.UsageReader, log *zap.Logger) *Handler {
	if log == nil {
		log = zap.NewNop()
	}
	h := &Handler{log: log}
	srv := handler.New(NewExecutableSchema(Config{Resolvers: &Resolver{Admin: svc, Usage: usage}}))
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(&complexityLimit{max: MaxComplexity})
	srv.Use(depthLimit{max: MaxDepth})
	srv.Use(mutationCharge{})
	srv.SetErrorPresenter(h.present)
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		h.log.Error("panic in a GraphQL resolver", zap.Any("panic", p))
		return apierror.Internal
	})
	h.srv = srv
	return h
}

// Serve answers one GraphQL request on behalf of p, the principal the edge
// authenticated; every mutation after the first is charged through m (if
// not nil) to p's rate limit.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, p *authz.Principal, m Meter) {
	if p == nil {
		apierror.WriteGraphQL(w, apierror.InvalidKey)
		return
	}
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
		if err != nil {
			apierror.WriteGraphQL(w, apierror.Invalid("could not read the request body: %v", err))
			return
		}
		if len(body) > MaxRequestBytes {
			apierror.WriteGraphQL(w, apierror.Invalid("request body is larger than %d bytes", MaxRequestBytes))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if r.Method == http.MethodPost {
		// A POST carries {"query": ..., "variables": ...}; anything else is
		// refused here, in GraphQL's shape with a code, rather than by gqlgen
		// (which answers without a code, echoing the body).
		if !jsonObject(body) {
			apierror.WriteGraphQL(w, apierror.Invalid(`the request body must be a JSON object such as {"query": "{ viewer { id } }"}`))
			return
		}
		// curl -d sends form encoding unless told otherwise; a POST whose
		// body is a JSON object is a JSON request whatever it says.
		if !isJSON(r.Header.Get("Content-Type")) {
			r.Header.Set("Content-Type", "application/json")
		}
	}
	if r.Method != http.MethodPost {
		// Only a POST runs mutations: gqlgen refuses them over GET (406)
		// after building the operation, which charges them, so a GET is
		// never charged beyond the request the edge counted.
		m = nil
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	h.srv.ServeHTTP(rec, r.WithContext(withCaller(r.Context(), p, m)))

	status := rec.status
	if status == http.StatusOK {
		status = operationStatus(rec.body.Bytes())
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(rec.body.Bytes())
}

// jsonObject reports whether body is one JSON object.
func jsonObject(body []byte) bool {
	body = bytes.TrimSpace(body)
	return bytes.HasPrefix(body, []byte("{")) && json.Valid(body)
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// operationStatus turns an answer whose whole operation was refused (no
// root field has data, and every error is FORBIDDEN, or the one error says
// the rate limit cannot pay for it) into a 403 or a 429, as REST would; an
// answer with any data stays 200 and carries its field-level denials.
func operationStatus(body []byte) int {
	var resp struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &resp) != nil || len(resp.Errors) == 0 {
		return http.StatusOK
	}
	for _, v := range resp.Data {
		if d := bytes.TrimSpace(v); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
			return http.StatusOK
		}
	}
	if len(resp.Errors) == 1 {
		if c := resp.Errors[0].Extensions.Code; c == codeRateLimited || c == codeQuotaExceeded {
			return http.StatusTooManyRequests
		}
	}
	for _, e := range resp.Errors {
		if e.Extensions.Code != "FORBIDDEN" {
			return http.StatusOK
		}
	}
	return http.StatusForbidden
}

// present maps resolver errors onto GraphQL errors: the services' API
// errors by code (FORBIDDEN with the standard message), storage failures as
// STORAGE_UNAVAILABLE (logged, since the client learns nothing specific).
func (h *Handler) present(ctx context.Context, err error) *gqlerror.Error {
	gqlErr := graphql.DefaultErrorPresenter(ctx, err)
	var ae *apierror.Error
	if errors.As(err, &ae) {
		code, message := apierror.GraphQLCode(ae)
		gqlErr.Message = message
		gqlErr.Extensions = map[string]any{"code": code}
		return gqlErr
	}
	var parse *gqlerror.Error
	if errors.As(err, &parse) && parse.Err == nil {
		// gqlgen's own: parsing, validation, limits, unreadable requests.
		if code, _ := gqlErr.Extensions["code"].(string); code == "" {
			if gqlErr.Extensions == nil {
				gqlErr.Extensions = map[string]any{}
			}
			gqlErr.Extensions["code"] = codeBadRequest
		}
		return gqlErr
	}
	h.log.Error("storage failure in a GraphQL resolver", zap.Error(err))
	gqlErr.Message = apierror.StorageDown.Message
	gqlErr.Extensions = map[string]any{"code": apierror.CodeStorageUnavailable}
	return gqlErr
}

// recorder holds gqlgen's answer so that its status can be decided once
// the whole body is known.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

// depthLimit refuses operations whose selections nest deeper than max,
// following fragments.
type depthLimit struct{ max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = depthLimit{}

func (depthLimit) ExtensionName() string { return "DepthLimit" }

func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	if depth := selectionDepth(op.Operation.SelectionSet, op.Doc, 0, map[string]bool{}); depth > d.max {
		err := gqlerror.Errorf("operation nests %d levels deep; at most %d are allowed", depth, d.max)
		err.Extensions = map[string]any{"code": codeTooDeep}
		return err
	}
	return nil
}

func selectionDepth(set ast.SelectionSet, doc *ast.QueryDocument, depth int, visiting map[string]bool) int {
	deepest := depth
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.SelectionSet) == 0 {
				d = depth + 1
			} else {
				d = selectionDepth(s.SelectionSet, doc, depth+1, visiting)
			}
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, doc, depth, visiting)
		case *ast.FragmentSpread:
			// Validation has refused cyclic fragments already; visiting
			// guards anyway.
			if visiting[s.Name] || doc == nil {
				continue
			}
			if f := doc.Fragments.ForName(s.Name); f != nil {
				visiting[s.Name] = true
				d = selectionDepth(f.SelectionSet, doc, depth, visiting)
				delete(visiting, s.Name)
			}
		}
		if d > deepest {
			deepest = d
		}
	}
	return deepest
}

// complexityLimit refuses operations that ask for more than max fields:
// gqlgen's complexity count, which leaves introspection out, plus
// introspection's own cost, so that a request cannot multiply the schema's
// description by aliasing __schema a thousand times.
type complexityLimit struct {
	max int
	es  graphql.ExecutableSchema
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = &complexityLimit{}

func (*complexityLimit) ExtensionName() string { return "ComplexityLimit" }

func (c *complexityLimit) Validate(es graphql.ExecutableSchema) error {
	c.es = es
	return nil
}

func (c *complexityLimit) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	cost := complexity.Calculate(ctx, c.es, op.Operation, op.Variables) +
		introspectionCost(op.Operation.SelectionSet, len(c.es.Schema().Types), false, map[string]bool{})
	if cost > c.max {
		err := gqlerror.Errorf("operation has complexity %d, which exceeds the limit of %d", cost, c.max)
		err.Extensions = map[string]any{"code": codeTooComplex}
		return err
	}
	return nil
}

// introspectionCost counts the fields selected inside __schema and __type,
// as if each list held one element, plus, for each __schema and __type
// selection, the number of types in the schema, which a description of the
// schema fans out to.
func introspectionCost(set ast.SelectionSet, types int, inside bool, visiting map[string]bool) int {
	cost := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			in := inside || s.Name == "__schema" || s.Name == "__type"
			if in {
				cost++
			}
			if !inside && in {
				cost += types
			}
			cost += introspectionCost(s.SelectionSet, types, in, visiting)
		case *ast.InlineFragment:
			cost += introspectionCost(s.SelectionSet, types, inside, visiting)
		case *ast.FragmentSpread:
			if visiting[s.Name] || s.Definition == nil {
				continue
			}
			visiting[s.Name] = true
			cost += introspectionCost(s.Definition.SelectionSet, types, inside, visiting)
			delete(visiting, s.Name)
		}
	}
	return cost
}

// mutationCharge charges the caller's rate limit for each mutation of an
// operation after the first (the edge counted the request once), all or
// nothing, before any runs: aliases cannot multiply writes past the limit.
type mutationCharge struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = mutationCharge{}

func (mutationCharge) ExtensionName() string { return "MutationCharge" }

func (mutationCharge) Validate(graphql.ExecutableSchema) error { return nil }

func (mutationCharge) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil || op.Operation.Operation != ast.Mutation {
		return nil
	}
	m := meter(ctx)
	if m == nil {
		return nil
	}
	n := rootFields(op.Operation.SelectionSet, map[string]bool{})
	if n <= 1 {
		return nil
	}
	if err := m.Charge(ctx, n-1); err != nil {
		var ae *apierror.Error
		if !errors.As(err, &ae) {
			ae = apierror.StorageDown
		}
		gqlErr := gqlerror.Errorf("%s", ae.Message)
		gqlErr.Extensions = map[string]any{"code": ae.Code}
		return gqlErr
	}
	return nil
}

// rootFields counts the fields an operation's root selects (each alias
// once), following fragments.
func rootFields(set ast.SelectionSet, visiting map[string]bool) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name != "__typename" {
				n++
			}
		case *ast.InlineFragment:
			n += rootFields(s.SelectionSet, visiting)
		case *ast.FragmentSpread:
			if visiting[s.Name] || s.Definition == nil {
				continue
			}
			visiting[s.Name] = true
			n += rootFields(s.Definition.SelectionSet, visiting)
			delete(visiting, s.Name)
		}
	}
	return n
}

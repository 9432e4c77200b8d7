package edge

import (
	"net/http"
	"strings"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/internal/route"
)

// Requirement is what a request needs from the key presenting it: a key type
// at least as capable as Type, holding Permission.
type Requirement struct {
	Type       apikey.Type
	Permission apikey.Permission
}

// ScopeRule grants an endpoint to less capable key types than admin.
type ScopeRule struct {
	Method  string
	Pattern string
	Requirement
}

// Scopes is the scope table: the one place that says which key types may
// call which endpoint of the FlagBridge API. An endpoint it does not list is
// for admin keys only, so a new admin endpoint needs no entry and a typo in
// a path can only make access stricter.
var Scopes = []ScopeRule{
	{"POST", "/v1/evaluate", Requirement{apikey.Live, apikey.Read}},
	{"POST", "/v1/evaluate/batch", Requirement{apikey.Live, apikey.Read}},
	{"POST", "/v1/testing/sessions", Requirement{apikey.Test, apikey.Write}},
	{"POST", "/v1/testing/sessions/{id}/overrides", Requirement{apikey.Test, apikey.Write}},
	{"DELETE", "/v1/testing/sessions/{id}", Requirement{apikey.Test, apikey.Write}},
	// OpenFeature Remote Evaluation Protocol: evaluation, so live-level.
	{"POST", "/ofrep/v1/evaluate/flags/{key}", Requirement{apikey.Live, apikey.Read}},
	{"POST", "/ofrep/v1/evaluate/flags", Requirement{apikey.Live, apikey.Read}},
	{"GET", "/ofrep/v1/configuration", Requirement{apikey.Live, apikey.Read}},
	// GraphQL: admin keys. Queries and mutations alike arrive as POST, so
	// the edge asks for READ and the resolvers refuse mutations to
	// READ-only keys.
	{"POST", "/graphql", Requirement{apikey.Admin, apikey.Read}},
	{"GET", "/graphql", Requirement{apikey.Admin, apikey.Read}},
}

// DashboardPath is where the browser dashboard lives. Its requests carry
// no API key: the guard only makes sure they arrived over HTTPS, and the
// dashboard authenticates its users itself (login sessions).
const DashboardPath = "/dashboard"

// IsDashboard reports whether path belongs to the dashboard.
func IsDashboard(path string) bool {
	return path == DashboardPath || strings.HasPrefix(path, DashboardPath+"/")
}

// graphQLPaths are the endpoints whose refusals the edge writes in
// GraphQL's error shape rather than FlagBridge's.
var graphQLPaths = []string{"/graphql"}

// ErrorStyle returns the shape errors take on path.
func ErrorStyle(path string) apierror.Style {
	for _, p := range graphQLPaths {
		if path == p {
			return apierror.GraphQL
		}
	}
	return apierror.REST
}

// ScopeTable resolves requests to requirements.
type ScopeTable struct {
	rules []compiledRule
}

type compiledRule struct {
	method  string
	pattern route.Pattern
	req     Requirement
}

// NewScopeTable compiles rules.
func NewScopeTable(rules []ScopeRule) *ScopeTable {
	t := &ScopeTable{}
	for _, r := range rules {
		t.rules = append(t.rules, compiledRule{r.Method, route.Compile(r.Pattern), r.Requirement})
	}
	return t
}

// DefaultScopeTable is the compiled [Scopes].
var DefaultScopeTable = NewScopeTable(Scopes)

// Lookup returns what a request with this method and path requires.
func (t *ScopeTable) Lookup(method, path string) Requirement {
	for i := range t.rules {
		r := &t.rules[i]
		if r.method == method && r.pattern.Match(path) {
			return r.req
		}
	}
	return Requirement{apikey.Admin, MethodPermission(method)}
}

// MethodPermission is the permission a method needs where no rule says
// otherwise: READ for safe methods, WRITE for everything else.
func MethodPermission(method string) apikey.Permission {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return apikey.Read
	}
	return apikey.Write
}

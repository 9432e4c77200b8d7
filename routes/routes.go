package routes

import (
	"net/http"
	"strings"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
)

// Name identifies a route; the router binds a handler to each.
type Name string

// Credential is how a route's caller proves who they are.
type Credential uint8

// The credentials.
const (
	// APIKey: a key in Authorization: Bearer or X-API-Key.
	APIKey Credential = iota + 1
	// Session: the dashboard's session cookie; a change also needs the
	// session's CSRF token and a same-origin request.
	Session
	// OptionalSession: the session cookie if there is a valid one; the
	// route answers without it too.
	OptionalSession
	// Public: none. Changes still need a same-origin request.
	Public
	// StreamToken: an event stream's token, in the token query parameter
	// (a browser's EventSource cannot send headers), minted by a bulk
	// evaluation for its key.
	StreamToken
)

// String names the credential for messages and tests.
func (c Credential) String() string {
	switch c {
	case APIKey:
		return "api key"
	case Session:
		return "session"
	case OptionalSession:
		return "optional session"
	case Public:
		return "none"
	case StreamToken:
		return "stream token"
	}
	return "unknown"
}

// Timeout is how a route's storage work is bounded.
type Timeout uint8

// The timeout classes.
const (
	// Bounded routes run under the router's request timeout.
	Bounded Timeout = iota
	// SelfBounded routes (evaluation) touch storage only on a cache miss,
	// which bounds its own reads; the hot path is spared a timer.
	SelfBounded
)

// Capability is what a route needs of its caller, as declared in the table.
type Capability struct {
	// Type is the least capable key type that may call the route.
	Type apikey.Type
	// Permission is READ or WRITE.
	Permission apikey.Permission
	// Project and Environment name the path parameters holding the project
	// and environment the route acts on, if any.
	Project, Environment string
	// Organization marks a route acting on the whole organization.
	Organization bool
	// Partial admits a caller scoped to a part of the project the path
	// names (an environment key listing its project's keys); the service
	// narrows the work to that part. See authz.Need.Partial.
	Partial bool
	// Action names the route's work in refusals ("create projects in");
	// see authz.Need.Action.
	Action string
}

// Route is one endpoint.
type Route struct {
	Name       Name
	Method     string
	Pattern    string
	Credential Credential
	Needs      Capability
	Style      apierror.Style
	Timeout    Timeout
	// Unmetered routes do not spend from the caller's rate limit (logging
	// out must always work).
	Unmetered bool
	// CORS routes are open to pages of other origins, with a client key
	// that allows the page's origin (the edge answers their preflights).
	CORS bool

	pattern pattern
	index   int
	params  int
	// need is Need for a route that names no part of the organization.
	need authz.Need
}

// Index is the route's position in the table, for arrays indexed by route.
func (r *Route) Index() int {
	return r.index
}

// Need is what a request to r needs of a principal of org, with the path
// parameters param returns.
func (r *Route) Need(org string, param func(string) string) authz.Need {
	c := &r.Needs
	n := authz.Need{Type: c.Type, Permission: c.Permission, Partial: c.Partial, Action: c.Action}
	switch {
	case c.Organization:
		n.Target = authz.Organization(org)
	case c.Environment != "":
		n.Target = authz.Environment(org, param(c.Project), param(c.Environment))
	case c.Project != "":
		n.Target = authz.Project(org, param(c.Project))
	}
	return n
}

// targeted reports whether r's need names a part of the organization.
func (r *Route) targeted() bool {
	c := &r.Needs
	return c.Organization || c.Project != "" || c.Environment != ""
}

// Path returns r's path with params filled in, in the order the pattern
// names them (for Location headers and links).
func (r *Route) Path(params ...string) string {
	var b strings.Builder
	i := 0
	for _, s := range r.pattern.segments {
		b.WriteByte('/')
		if s.param == "" {
			b.WriteString(s.literal)
			continue
		}
		if i < len(params) {
			b.WriteString(params[i])
		}
		i++
	}
	return b.String()
}

// Family is a part of the URL space with a common error style and
// credential: what a path of it that no route has gets, so that an unknown
// path is never more open than its neighbours.
type Family struct {
	Prefix     string
	Style      apierror.Style
	Credential Credential
	// Mount, if set, serves the REST routes under Prefix with this
	// credential: Prefix minus Mount is the REST path.
	Mount string
}

// unknownNeed is what a path no route has needs: an admin key, READ for
// safe methods and WRITE for the rest. A typo in a path can thus only make
// access stricter.
func unknownNeed(method string) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: MethodPermission(method)}
}

// MethodPermission is the permission a method needs where no route says
// otherwise: READ for safe methods, WRITE for everything else.
func MethodPermission(method string) apikey.Permission {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return apikey.Read
	}
	return apikey.Write
}

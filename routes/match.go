package routes

import (
	"net/http"
	"strings"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
)

// Match is what the table says of one request: its route (nil if none has
// the path and method), the family the path belongs to, and its path, from
// which the route's parameters are read when asked for. It is a small
// value, so that looking up allocates nothing.
type Match struct {
	Route *Route
	// Family is the path's family; for a route, the route's own.
	Family *Family
	// Mounted is set when Route is a REST route served under a mount (the
	// dashboard's /dashboard/api/v1/...): its credential and style are the
	// family's.
	Mounted bool
	// path is the path Route's pattern matched (without the mount).
	path string
}

// Credential is what the request must present.
func (m *Match) Credential() Credential {
	if m.Route != nil && !m.Mounted {
		return m.Route.Credential
	}
	return m.Family.Credential
}

// Style is the shape of the request's errors.
func (m *Match) Style() apierror.Style {
	if m.Route != nil && !m.Mounted {
		return m.Route.Style
	}
	return m.Family.Style
}

// Need is what the request needs of a principal of org.
func (m *Match) Need(org, method string) authz.Need {
	switch {
	case m.Route == nil:
		return unknownNeed(method)
	case !m.Route.targeted():
		// The hot path's routes (evaluation) name no part: what they need
		// is the route's own, with nothing to read from the path.
		return m.Route.need
	}
	return m.Route.Need(org, m.Param)
}

// Param returns the value of a path parameter, or "".
func (m *Match) Param(name string) string {
	if m.Route == nil {
		return ""
	}
	value := ""
	m.Route.pattern.params(m.path, func(n, v string) {
		if n == name {
			value = v
		}
	})
	return value
}

// SetPathValues hands the path parameters to r, for r.PathValue.
func (m *Match) SetPathValues(r *http.Request) {
	if m.Route != nil && m.Route.paramCount() > 0 {
		m.Route.pattern.params(m.path, r.SetPathValue)
	}
}

// Lookup finds the route of a request: a route without parameters by its
// exact path (one map lookup per method, so that the hot path's routes,
// /v1/evaluate and its kin, cost no scan), the others by matching their
// patterns in table order.
func Lookup(method, path string) Match {
	m := Match{Family: familyOf(path)}
	rest := path
	mounted := m.Family.Mount != ""
	if mounted {
		rest = strings.TrimPrefix(path, m.Family.Mount)
	}
	if r, ok := exact[methodPath{method, rest}]; ok && (!mounted || r.mountable()) {
		m.Route, m.Mounted, m.path = r, mounted, rest
		return m
	}
	for _, r := range withParams[method] {
		if mounted && !r.mountable() {
			continue
		}
		if r.pattern.match(rest) {
			m.Route, m.Mounted, m.path = r, mounted, rest
			return m
		}
	}
	return m
}

// exact indexes the routes without parameters by method and path, and
// withParams lists the others by method, in table order.
var (
	exact      = map[methodPath]*Route{}
	withParams = map[string][]*Route{}
)

type methodPath struct{ method, path string }

// Allowed returns the methods routes have for path, for a 405's Allow
// header; none if no route has the path.
func Allowed(path string) []string {
	return methodsOf(path, func(*Route) bool { return true })
}

// CORSMethods returns the methods of the routes open to browsers (CORS)
// that path has, for a preflight's answer; none if it has none.
func CORSMethods(path string) []string {
	return methodsOf(path, func(r *Route) bool { return r.CORS })
}

// methodsOf returns the methods of the routes keep admits that path has.
func methodsOf(path string, keep func(*Route) bool) []string {
	fam := familyOf(path)
	rest := strings.TrimPrefix(path, fam.Mount)
	var out []string
	for i := range table {
		r := &table[i]
		if fam.Mount != "" && !r.mountable() || !keep(r) {
			continue
		}
		if r.pattern.match(rest) && !contains(out, r.Method) {
			out = append(out, r.Method)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// mountable reports whether r is served under a mount: the REST routes
// that take an API key.
func (r *Route) mountable() bool {
	return r.Credential == APIKey && r.Style == apierror.REST && strings.HasPrefix(r.Pattern, "/v1/")
}

func familyOf(path string) *Family {
	for i := range Families {
		if strings.HasPrefix(path, Families[i].Prefix) {
			return &Families[i]
		}
	}
	return &Families[len(Families)-1]
}

// All returns the table, for the router and the tests.
func All() []Route { return table }

// ByName returns the first route of a name, or nil.
func ByName(n Name) *Route {
	for i := range table {
		if table[i].Name == n {
			return &table[i]
		}
	}
	return nil
}

func init() {
	for i := range table {
		r := &table[i]
		if r.Credential == 0 {
			r.Credential = APIKey
		}
		r.pattern = compile(r.Pattern)
		r.index = i
		r.params = r.countParams()
		if !r.targeted() {
			r.need = r.Need("", nil)
		}
		if r.params > 0 {
			withParams[r.Method] = append(withParams[r.Method], r)
			continue
		}
		exact[methodPath{r.Method, r.Pattern}] = r
	}
}

// paramCount is how many path parameters r has.
func (r *Route) paramCount() int { return r.params }

func (r *Route) countParams() int {
	n := 0
	for _, s := range r.pattern.segments {
		if s.param != "" {
			n++
		}
	}
	return n
}

package routes

import (
	"net/http"
	"strings"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
)

// maxParams is the most path parameters a route has.
const maxParams = 4

type param struct{ name, value string }

// Match is what the table says of one request: its route (nil if none has
// the path and method), the family the path belongs to, and the path
// parameters. It is a value, so that looking up allocates nothing.
type Match struct {
	Route *Route
	// Family is the path's family; for a route, the route's own.
	Family *Family
	// Mounted is set when Route is a REST route served under a mount (the
	// dashboard's /dashboard/api/v1/...): its credential and style are the
	// family's.
	Mounted bool
	params  [maxParams]param
	n       int
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
	if m.Route == nil {
		return unknownNeed(method)
	}
	return m.Route.Need(org, m.Param)
}

// Param returns the value of a path parameter, or "".
func (m *Match) Param(name string) string {
	for i := 0; i < m.n; i++ {
		if m.params[i].name == name {
			return m.params[i].value
		}
	}
	return ""
}

// SetPathValues hands the path parameters to r, for r.PathValue.
func (m *Match) SetPathValues(r *http.Request) {
	for i := 0; i < m.n; i++ {
		r.SetPathValue(m.params[i].name, m.params[i].value)
	}
}

func (m *Match) set(name, value string) {
	if m.n < maxParams {
		m.params[m.n] = param{name, value}
		m.n++
	}
}

// Lookup finds the route of a request.
func Lookup(method, path string) Match {
	m := Match{Family: familyOf(path)}
	rest := path
	if mount := m.Family.Mount; mount != "" {
		rest = strings.TrimPrefix(path, mount)
	}
	for i := range table {
		r := &table[i]
		if r.Method != method || m.Family.Mount != "" && !r.mountable() {
			continue
		}
		if r.pattern.params(rest, m.set) {
			m.Route, m.Mounted = r, m.Family.Mount != ""
			return m
		}
		m.n = 0
	}
	return m
}

// Allowed returns the methods routes have for path, for a 405's Allow
// header; none if no route has the path.
func Allowed(path string) []string {
	fam := familyOf(path)
	rest := strings.TrimPrefix(path, fam.Mount)
	var out []string
	for i := range table {
		r := &table[i]
		if fam.Mount != "" && !r.mountable() {
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
		if n := r.paramCount(); n > maxParams {
			panic("routes: " + r.Pattern + " has more than maxParams parameters")
		}
	}
}

func (r *Route) paramCount() int {
	n := 0
	for _, s := range r.pattern.segments {
		if s.param != "" {
			n++
		}
	}
	return n
}

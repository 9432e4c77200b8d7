package router_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/router"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/store"
)

// change is how the audit test makes a route change state: as whom, with
// what call, and the action its entry must name.
type change struct {
	who    string // a principal of the world, by name
	make   func(w *world) call
	action audit.Action
	// also is the action of a second entry, if the route makes two
	// changes (accepting an invitation logs the new member in).
	also audit.Action
}

// ch is a change of one entry.
func ch(who string, make func(w *world) call, action audit.Action) change {
	return change{who: who, make: make, action: action}
}

// then is c with a second entry.
func (c change) then(a audit.Action) change { c.also = a; return c }

func (c change) actions() []audit.Action {
	if c.also != "" {
		return []audit.Action{c.action, c.also}
	}
	return []audit.Action{c.action}
}

// fromMatrix is the authorization matrix's call on the principal's own
// part of the organization.
func fromMatrix(name routes.Name) func(w *world) call {
	return func(w *world) call { return requests[name].make(w, own) }
}

// changes are the routes that change state. A route of the table that is
// not a safe method must be here or in readsOnly, so a new route that
// changes state without an entry fails TestAuditEveryChange.
var changes = map[routes.Name]change{
	routes.CreateProject:     ch("org admin", fromMatrix(routes.CreateProject), audit.ProjectCreated),
	routes.DeleteProject:     ch("org admin", func(*world) call { return call{method: "DELETE", path: "/v1/projects/p2", ok: 204} }, audit.ProjectDeleted),
	routes.CreateEnvironment: ch("org admin", fromMatrix(routes.CreateEnvironment), audit.EnvironmentCreated),
	routes.CreateKey:         ch("org admin", fromMatrix(routes.CreateKey), audit.KeyCreated),
	routes.UpdateKey:         ch("org admin", fromMatrix(routes.UpdateKey), audit.KeyUpdated),
	routes.RevokeKey:         ch("org admin", fromMatrix(routes.RevokeKey), audit.KeyRevoked),
	routes.RotateKey:         ch("org admin", fromMatrix(routes.RotateKey), audit.KeyRotated),
	routes.PutIdentity:       ch("org admin", fromMatrix(routes.PutIdentity), audit.IdentityPut),
	routes.DeleteIdentity:    ch("org admin", fromMatrix(routes.DeleteIdentity), audit.IdentityDeleted),
	routes.PutFlagSet:        ch("org admin", fromMatrix(routes.PutFlagSet), audit.FlagSetUpdated),
	routes.PutFlag:           ch("org admin", fromMatrix(routes.PutFlag), audit.FlagUpdated),
	routes.RevertFlagSet:     ch("org admin", fromMatrix(routes.RevertFlagSet), audit.FlagSetReverted),
	routes.DeleteFlag:        ch("org admin", fromMatrix(routes.DeleteFlag), audit.FlagDeleted),
	routes.InviteMember:      ch("org admin", fromMatrix(routes.InviteMember), audit.MemberInvited),
	routes.CreateWebhook:     ch("org admin", fromMatrix(routes.CreateWebhook), audit.WebhookCreated),
	routes.DeleteWebhook:     ch("org admin", fromMatrix(routes.DeleteWebhook), audit.WebhookDeleted),
	routes.ReplayDelivery:    ch("org admin", fromMatrix(routes.ReplayDelivery), audit.DeliveryReplayed),
	routes.RemoveMember:      ch("org admin", fromMatrix(routes.RemoveMember), audit.MemberRemoved),
	routes.CreateSession:     ch("test", fromMatrix(routes.CreateSession), audit.SessionCreated),
	routes.SetOverrides:      ch("test", fromMatrix(routes.SetOverrides), audit.SessionOverridesSet),
	routes.DeleteSession:     ch("test", fromMatrix(routes.DeleteSession), audit.SessionDeleted),
	routes.DashboardLogin: ch("", func(w *world) call {
		email := w.newMember()
		return call{method: "POST", path: "/dashboard/api/login", body: `{"email":"` + email + `","password":"` + password + `"}`, ok: 200}
	}, audit.LoginSucceeded),
	routes.DashboardLogout: ch("dashboard OWNER", fromMatrix(routes.DashboardLogout), audit.LoggedOut),
	routes.InviteAccept: ch("", func(w *world) call {
		token, _, err := w.svc.Identity.InviteMember(context.Background(), w.rootA, identity.InviteInput{Email: w.unique("joiner") + "@a.example", Name: "J"})
		if err != nil {
			w.t.Fatal(err)
		}
		return call{method: "POST", path: "/dashboard/api/invites/accept", body: `{"token":"` + token + `","password":"` + password + `"}`, ok: 200}
	}, audit.InvitationAccepted).then(audit.LoginSucceeded),
}

// readsOnly are the routes of unsafe methods that change nothing:
// evaluations (POST for their bodies), an invitation's lookup (POST to
// keep its token out of URLs) and GraphQL, whose mutations
// TestAuditEveryGraphQLMutation covers.
var readsOnly = []routes.Name{routes.Evaluate, routes.EvaluateBatch, routes.OFREPEvaluate, routes.OFREPEvaluateAll,
	routes.InviteLookup, routes.GraphQLPost}

// graphQLChanges are GraphQL's mutations, by field, with a call and the
// action of its entry.
var graphQLChanges = map[string]change{
	"createAPIKey": ch("org admin", func(*world) call {
		return graphQLCall(`mutation { createAPIKey(input: {name: "g", permissions: [READ], type: LIVE, project: "p1", environment: "production"}) { key } }`)
	}, audit.KeyCreated),
	"revokeAPIKey": ch("org admin", func(w *world) call {
		return graphQLCall(`mutation { revokeAPIKey(id: "` + w.keyIn(own) + `") { id } }`)
	}, audit.KeyRevoked),
	"rotateAPIKey": ch("org admin", func(w *world) call {
		return graphQLCall(`mutation { rotateAPIKey(id: "` + w.keyIn(own) + `") { key } }`)
	}, audit.KeyRotated),
	"updateAPIKey": ch("org admin", func(w *world) call {
		return graphQLCall(`mutation { updateAPIKey(id: "` + w.keyIn(own) + `", input: {name: "renamed"}) { id } }`)
	}, audit.KeyUpdated),
}

func graphQLCall(query string) call {
	b, _ := json.Marshal(map[string]string{"query": query})
	return call{method: "POST", path: "/graphql", body: string(b), ok: 200}
}

// newMember invites a member to A, who accepts, and returns the address.
func (w *world) newMember() string {
	ctx := context.Background()
	email := w.unique("member") + "@a.example"
	token, _, err := w.svc.Identity.InviteMember(ctx, w.rootA, identity.InviteInput{Email: email, Name: "M"})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.svc.Identity.AcceptInvite(ctx, token, password); err != nil {
		w.t.Fatal(err)
	}
	return email
}

func (w *world) person(name string) *who {
	for _, p := range w.people {
		if p.name == name {
			return p
		}
	}
	if name == "" {
		return &who{name: "nobody", session: true} // a public route
	}
	w.t.Fatalf("no principal %q", name)
	return nil
}

// entries is A's whole log, newest first.
func (w *world) entries() []audit.Entry {
	w.t.Helper()
	var out []audit.Entry
	if err := w.svc.Audit.Export(context.Background(), w.rootA, audit.Query{}, func(e *audit.Entry) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// do sends c to route r as p and checks that it wrote exactly the entries
// of want, in that order (none for no want), each naming the caller, its
// address and the request's id.
func (w *world) do(t *testing.T, p *who, r *routes.Route, c call, where string, want ...audit.Action) {
	t.Helper()
	before := len(w.entries())
	req, _ := w.request(t, p, r, c)
	if p.name == "nobody" {
		req.Header.Del("Cookie")
		req.Header.Set("Origin", "https://flags.example.com")
	}
	rec := httptest.NewRecorder()
	w.chain.ServeHTTP(rec, req)
	all := w.entries()
	if len(want) == 0 {
		if len(all) != before {
			t.Errorf("%s: %d %s wrote %d audit entries (newest %+v), and should write none", where, rec.Code, rec.Body, len(all)-before, all[0])
		}
		return
	}
	if rec.Code != c.ok {
		t.Errorf("%s: %d %s, want %d", where, rec.Code, rec.Body, c.ok)
		return
	}
	if len(all) != before+len(want) {
		t.Errorf("%s: %d new audit entries, want %d", where, len(all)-before, len(want))
		return
	}
	host, _, _ := net.SplitHostPort(req.RemoteAddr)
	var keyID string
	if p.key != "" {
		rec, err := w.svc.Keys.LookupKey(context.Background(), apikey.DigestOf(p.key))
		if err != nil || rec == nil {
			t.Fatal(err)
		}
		keyID = rec.ID
	}
	for i, action := range want {
		e := all[len(want)-1-i]
		switch {
		case e.Action != action:
			t.Errorf("%s: entry %s, want %s", where, e.Action, action)
		case e.Outcome != audit.Success:
			t.Errorf("%s: outcome %q", where, e.Outcome)
		case e.RequestID == "" || e.RequestID != rec.Header().Get(router.RequestIDHeader):
			t.Errorf("%s: request id %q, the answer's %q", where, e.RequestID, rec.Header().Get(router.RequestIDHeader))
		case e.ClientAddress != host:
			t.Errorf("%s: client address %q, want %q", where, e.ClientAddress, host)
		case e.Organization != w.orgA:
			t.Errorf("%s: organization %q", where, e.Organization)
		case keyID != "" && (e.Actor.Type != "api_key" || e.Actor.ID != keyID || e.Actor.KeyType == ""):
			t.Errorf("%s: actor %+v, want key %s", where, e.Actor, keyID)
		case keyID == "" && (e.Actor.Type != "member" || e.Actor.ID == ""):
			t.Errorf("%s: actor %+v, want a member", where, e.Actor)
		}
		// Never a secret: no key, digest or token of the request in it.
		b, _ := json.Marshal(e)
		for _, secret := range []string{p.key, p.cookie, p.csrf} {
			if secret != "" && (strings.Contains(string(b), secret) || strings.Contains(string(b), apikey.DigestOf(secret).String())) {
				t.Errorf("%s: the entry holds a credential: %s", where, b)
			}
		}
	}
}

// Every route that changes state writes its audit entry, and every other
// route writes none.
func TestAuditEveryChange(t *testing.T) {
	st, err := store.OpenRedis(testenv.StartRedis(t).URL(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := newWorld(t, st)
	safe := func(m string) bool { return m == http.MethodGet || m == http.MethodHead }
	var last []routes.Name // they end what others use
	for i := range routes.All() {
		r := &routes.All()[i]
		_, changesState := changes[r.Name]
		switch {
		case safe(r.Method) || slices.Contains(readsOnly, r.Name):
			if changesState {
				t.Errorf("route %s is listed as a change and as read-only", r.Name)
			}
			if r.Name == routes.OFREPEvents {
				continue // a stream; what it reads is the evaluations'
			}
			p := w.person("org admin")
			if r.Credential != routes.APIKey && r.Credential != routes.StreamToken {
				p = w.person("dashboard OWNER")
			}
			w.do(t, p, r, requests[r.Name].make(w, own), string(r.Name))
		case !changesState:
			t.Errorf("route %s (%s %s) changes state, and the audit test has no change for it", r.Name, r.Method, r.Pattern)
		case r.Name == routes.DeleteProject || r.Name == routes.DashboardLogout:
			last = append(last, r.Name)
		default:
			ch := changes[r.Name]
			w.do(t, w.person(ch.who), r, ch.make(w), string(r.Name), ch.actions()...)
		}
	}
	// A failed login leaves an entry too, for the account's organization.
	before := len(w.entries())
	email := w.newMember()
	r := routes.ByName(routes.DashboardLogin)
	req, _ := w.request(t, &who{name: "nobody"}, r, call{method: "POST", path: "/dashboard/api/login", body: `{"email":"` + email + `","password":"not the password"}`})
	req.Header.Set("Origin", "https://flags.example.com")
	rec := httptest.NewRecorder()
	w.chain.ServeHTTP(rec, req)
	all := w.entries()
	if rec.Code != 401 || len(all) < before+3 || all[0].Action != audit.LoginFailed || all[0].Outcome != audit.Failure || all[0].Reason == "" {
		t.Errorf("failed login: %d, entries %+v", rec.Code, all[:min(len(all), 3)])
	}
	for _, name := range last {
		ch := changes[name]
		w.do(t, w.person(ch.who), routes.ByName(name), ch.make(w), string(name), ch.actions()...)
	}
}

// Every GraphQL mutation writes its audit entry: the schema's mutations
// are read by introspection, so that a new one without an entry fails.
func TestAuditEveryGraphQLMutation(t *testing.T) {
	st, err := store.OpenRedis(testenv.StartRedis(t).URL(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := newWorld(t, st)
	r := routes.ByName(routes.GraphQLPost)
	admin := w.person("org admin")
	req, _ := w.request(t, admin, r, graphQLCall(`{ __type(name: "Mutation") { fields { name } } }`))
	rec := httptest.NewRecorder()
	w.chain.ServeHTTP(rec, req)
	var schema struct {
		Data struct {
			Type struct{ Fields []struct{ Name string } } `json:"__type"`
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &schema); err != nil || len(schema.Data.Type.Fields) == 0 {
		t.Fatalf("introspection: %s %v", rec.Body, err)
	}
	for _, f := range schema.Data.Type.Fields {
		ch, ok := graphQLChanges[f.Name]
		if !ok {
			t.Errorf("mutation %s: the audit test has no change for it", f.Name)
			continue
		}
		w.do(t, w.person(ch.who), r, ch.make(w), "mutation "+f.Name, ch.actions()...)
	}
}

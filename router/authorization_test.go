package router_test

// The authorization matrix: every kind of principal against every route of
// the route table, on its own resources and on another project's, another
// environment's and another organization's, sent through the real request
// path (guard and router over a real store). The expected answer comes from
// the oracle below, which states the policy once more, as a table of plain
// rules written without authz: if the two ever disagree, one of them is
// wrong. A route the table gains without a request here fails the test.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/store"
	"github.com/flagbridge/flagbridge/streams"
)

// target is what a request acts on, relative to the principal.
type target int

const (
	own          target = iota // p1, environment production
	otherEnv                   // p1, environment staging
	otherProject               // p2, environment production
	otherOrg                   // a resource of another organization
)

var targetNames = [...]string{"own", "other environment", "other project", "other organization"}

// scopeKind is where a principal's scope lies.
type scopeKind int

const (
	envScoped     scopeKind = iota // p1/production
	projectScoped                  // p1
	resourceList                   // organization-wide, limited to [p1]
	orgWide                        // the whole organization
)

// who is one kind of principal, described by plain attributes.
type who struct {
	name        string
	session     bool // a member logged in to the dashboard, not a key
	typ         apikey.Type
	read, write bool
	scope       scopeKind
	role        authz.Role // of the member the principal acts for
	dead        bool       // expired or revoked
	key         string     // the secret, for a key
	cookie      string     // the session token and its CSRF token, for a member
	csrf        string
}

// reaches reports whether w's scope takes in what t names (for an id of
// another organization, the resource is looked up in w's own and is not
// there: that is for the route rules to say).
func (w *who) reaches(t target) bool {
	switch w.scope {
	case envScoped:
		return t == own
	case projectScoped, resourceList:
		return t == own || t == otherEnv
	}
	return true
}

// world is two organizations: A with projects p1 and p2, each with the
// default environments, and B with project b1, plus the principals of A.
type world struct {
	t      *testing.T
	chain  *testchain.Chain
	svc    *admin.Service
	rootA  *authz.Principal
	rootB  *authz.Principal
	orgA   string
	orgB   string
	people []*who
	serial atomic.Int64
}

const password = "matrix password 1"

func newWorld(t *testing.T, st store.Store) *world {
	t.Helper()
	ctx := context.Background()
	// Limits out of the way: the matrix is about who may do what, and
	// sends thousands of requests, many refused, from few addresses.
	cfg := edge.DefaultConfig()
	for i := range cfg.Limits {
		cfg.Limits[i] = ratelimit.PerMinute(1_000_000)
	}
	cfg.Unauthenticated = ratelimit.PerMinute(1_000_000)
	c := testchain.New(st, testchain.Options{Config: &cfg})
	t.Cleanup(c.Close)
	w := &world{t: t, chain: c, svc: c.Admin}
	a, err := w.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OrgName: "A", OwnerEmail: w.unique("owner") + "@a.example", OwnerName: "Owner A"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OrgName: "B", OwnerEmail: w.unique("owner") + "@b.example", OwnerName: "Owner B"})
	if err != nil {
		t.Fatal(err)
	}
	w.rootA, w.rootB, w.orgA, w.orgB = a.Principal, b.Principal, a.Organization.ID, b.Organization.ID
	for _, p := range []string{"p1", "p2"} {
		w.must2(w.svc.Tenancy.CreateProject(ctx, w.rootA, tenancy.CreateProjectInput{Slug: p}))
	}
	w.must2(w.svc.Tenancy.CreateProject(ctx, w.rootB, tenancy.CreateProjectInput{Slug: "b1"}))
	// f is client-visible, so that a client key's evaluations succeed
	// where its scope allows (what it hides is TestClientKeysSeeOnlyClientFlags's).
	doc := []byte(`{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on","metadata":{"flagbridge.client":true}}}}`)
	for _, place := range [][2]string{{"p1", "production"}, {"p1", "staging"}, {"p2", "production"}} {
		w.must(w.svc.Flags.PutFlagSet(ctx, w.rootA, place[0], place[1], doc, flags.Precondition{}))
	}
	w.must(w.svc.Flags.PutFlagSet(ctx, w.rootB, "b1", "production", doc, flags.Precondition{}))

	key := func(name, project string, in keys.CreateInput) *who {
		in.Name = name
		k, err := w.svc.Keys.CreateKey(ctx, w.rootA, project, in)
		if err != nil {
			t.Fatalf("key %s: %v", name, err)
		}
		return &who{name: name, key: k.Secret, role: authz.RoleOwner, read: true, write: true}
	}
	client := key("client", "p1", keys.CreateInput{Type: "client", Environment: "production", AllowedOrigins: []string{"https://app.example"}})
	client.typ, client.scope, client.write = apikey.Client, envScoped, false
	live := key("live", "p1", keys.CreateInput{Type: "live", Environment: "production"})
	live.typ, live.scope = apikey.Live, envScoped
	test := key("test", "p1", keys.CreateInput{Type: "test", Environment: "production"})
	test.typ, test.scope = apikey.Test, envScoped
	projAdmin := key("project admin", "p1", keys.CreateInput{Type: "admin"})
	projAdmin.typ, projAdmin.scope = apikey.Admin, projectScoped
	envAdmin := key("environment admin", "p1", keys.CreateInput{Type: "admin", Environment: "production"})
	envAdmin.typ, envAdmin.scope = apikey.Admin, envScoped
	orgAdmin := key("org admin", "", keys.CreateInput{Type: "admin"})
	orgAdmin.typ, orgAdmin.scope = apikey.Admin, orgWide
	scoped := key("scoped [p1]", "", keys.CreateInput{Type: "admin", Resources: []string{"p1"}})
	scoped.typ, scoped.scope = apikey.Admin, resourceList
	readOnly := key("read-only", "", keys.CreateInput{Type: "admin", Permissions: []string{"READ"}})
	readOnly.typ, readOnly.scope, readOnly.write = apikey.Admin, orgWide, false
	writeOnly := key("write-only", "", keys.CreateInput{Type: "admin", Permissions: []string{"WRITE"}})
	writeOnly.typ, writeOnly.scope, writeOnly.read = apikey.Admin, orgWide, false
	// A key that expired a minute ago: made on a clock set back.
	earlier := time.Now().Add(-2 * time.Minute)
	w.svc.SetClock(func() time.Time { return earlier })
	expired := key("expired", "", keys.CreateInput{Type: "admin", ExpiresIn: "1m"})
	expired.typ, expired.scope, expired.dead = apikey.Admin, orgWide, true
	w.svc.SetClock(time.Now)
	revoked := key("revoked", "", keys.CreateInput{Type: "admin"})
	revoked.typ, revoked.scope, revoked.dead = apikey.Admin, orgWide, true
	rec, err := w.svc.Keys.LookupKey(ctx, apikey.DigestOf(revoked.key))
	if err != nil || rec == nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Keys.RevokeKey(ctx, w.rootA, rec.ID); err != nil {
		t.Fatal(err)
	}
	w.people = []*who{client, live, test, projAdmin, envAdmin, orgAdmin, scoped, readOnly, writeOnly, expired, revoked}
	for _, role := range []authz.Role{authz.RoleOwner, authz.RoleAdmin, authz.RoleMember} {
		w.people = append(w.people, w.member(role))
	}
	return w
}

// member invites a member of role to A and logs them in.
func (w *world) member(role authz.Role) *who {
	ctx := context.Background()
	email := w.unique(strings.ToLower(string(role))) + "@a.example"
	token, _, err := w.svc.Identity.InviteMember(ctx, w.rootA, identity.InviteInput{Email: email, Name: string(role), Role: string(role)})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.svc.Identity.AcceptInvite(ctx, token, password); err != nil {
		w.t.Fatal(err)
	}
	cookie, sess, _, err := w.svc.Identity.Login(ctx, email, password, w.orgA)
	if err != nil {
		w.t.Fatal(err)
	}
	return &who{
		name: "dashboard " + string(role), session: true, typ: apikey.Admin, scope: orgWide, role: role,
		read: true, write: role != authz.RoleMember, cookie: cookie, csrf: sess.CSRF,
	}
}

func (w *world) unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, w.serial.Add(1)) }

func (w *world) must2(_, _ any, err error) {
	w.t.Helper()
	w.must(nil, err)
}

func (w *world) must(_ any, err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

// place is the project and environment a target names.
func (w *world) place(t target) (org *authz.Principal, project, env string) {
	switch t {
	case otherEnv:
		return w.rootA, "p1", "staging"
	case otherProject:
		return w.rootA, "p2", "production"
	case otherOrg:
		return w.rootB, "b1", "production"
	}
	return w.rootA, "p1", "production"
}

// deliveryIn creates a webhook of the project t names and one delivery to
// it (a flag write), and returns their ids.
func (w *world) deliveryIn(t target) (webhook, delivery string) {
	w.pruneWebhooks(t)
	root, project, env := w.place(t)
	ctx := context.Background()
	h, err := w.svc.Audit.CreateWebhook(ctx, root, project, audit.WebhookInput{URL: "https://hooks.example.com/" + w.unique("h"), Events: []string{"flag_set.updated"}})
	if err != nil {
		w.t.Fatal(err)
	}
	doc := []byte(`{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on","metadata":{"flagbridge.client":true}}}}`)
	if _, err := w.svc.Flags.PutFlagSet(ctx, root, project, env, doc, flags.Precondition{}); err != nil {
		w.t.Fatal(err)
	}
	ds, err := w.svc.Audit.ListDeliveries(ctx, root, project, h.ID, 1)
	if err != nil || len(ds) != 1 {
		w.t.Fatalf("deliveries: %v %v", ds, err)
	}
	return h.ID, ds[0].ID
}

// pruneWebhooks deletes the webhooks of the project t names, which the
// cases before left, so that a project stays under its bound.
func (w *world) pruneWebhooks(t target) {
	root, project, _ := w.place(t)
	ctx := context.Background()
	hooks, err := w.svc.Audit.ListWebhooks(ctx, root, project)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, h := range hooks {
		if err := w.svc.Audit.DeleteWebhook(ctx, root, project, h.ID); err != nil {
			w.t.Fatal(err)
		}
	}
}

// keyIn creates a live key with WRITE only (so that a WRITE-only caller may
// rotate it) where t names, and returns its id.
func (w *world) keyIn(t target) string {
	root, project, env := w.place(t)
	k, err := w.svc.Keys.CreateKey(context.Background(), root, project, keys.CreateInput{
		Name: w.unique("target"), Type: "live", Environment: env, Permissions: []string{"WRITE"},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return k.ID
}

// sessionIn opens a testing session where t names, and returns its id.
func (w *world) sessionIn(t target) string {
	root, project, env := w.place(t)
	ts, err := w.svc.Flags.CreateSession(context.Background(), root, flags.CreateSessionInput{Project: project, Environment: env})
	if err != nil {
		w.t.Fatal(err)
	}
	return ts.ID
}

// flagIn creates a flag where t names, and returns its key.
func (w *world) flagIn(t target) string {
	root, project, env := w.place(t)
	name := w.unique("flag")
	_, _, err := w.svc.Flags.PutFlag(context.Background(), root, project, env, name,
		json.RawMessage(`{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a"}`), flags.Precondition{})
	if err != nil {
		w.t.Fatal(err)
	}
	return name
}

// identityIn puts an identity in the project t names, and returns its slug.
func (w *world) identityIn(t target) string {
	root, project, _ := w.place(t)
	slug := w.unique("identity")
	_, _, err := w.svc.Identities.PutIdentity(context.Background(), root, project, slug, customers.PutInput{
		Quota: &ratelimit.Quota{Requests: 1000, Period: ratelimit.Day},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return slug
}

// memberIn adds a member to A, or to B for otherOrg, and returns its id.
func (w *world) memberIn(t target) string {
	org := w.orgA
	if t == otherOrg {
		org = w.orgB
	}
	var id string
	err := w.svc.Store().Update(context.Background(), func(tx store.Writer) error {
		m, err := w.svc.Identity.AddMember(tx, org, w.unique("m")+"@example.com", "M", authz.RoleMember)
		if m != nil {
			id = m.ID
		}
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

// call is one request of the matrix.
type call struct {
	method, path, body string
	header             map[string]string
	// ok is the status of an admitted request.
	ok int
}

// targeted says which targets a route has: the four, or only own when it
// names no resource.
type request struct {
	targets []target
	make    func(w *world, t target) call
}

var allTargets = []target{own, otherEnv, otherProject, otherOrg}

func onEnv(w *world, t target) map[string]string {
	_, project, env := w.place(t)
	return map[string]string{"FlagBridge-Project": project, "FlagBridge-Environment": env}
}

// requests has a request for every route of the table.
var requests = map[routes.Name]request{
	routes.ListProjects: {[]target{own}, func(w *world, t target) call { return call{method: "GET", path: "/v1/projects", ok: 200} }},
	routes.CreateProject: {[]target{own}, func(w *world, t target) call {
		return call{method: "POST", path: "/v1/projects", body: `{"slug":"` + w.unique("new") + `"}`, ok: 201}
	}},
	routes.GetProject: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p, ok: 200}
	}},
	routes.DeleteProject: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "DELETE", path: "/v1/projects/" + p, ok: 204}
	}},
	routes.ListEnvironments: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/environments", ok: 200}
	}},
	routes.CreateEnvironment: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "POST", path: "/v1/projects/" + p + "/environments", body: `{"slug":"` + w.unique("env") + `"}`, ok: 201}
	}},
	routes.ListKeys: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/api-keys", ok: 200}
	}},
	routes.CreateKey: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "POST", path: "/v1/projects/" + p + "/api-keys",
			body: `{"name":"new","type":"live","environment":"` + env + `","permissions":["WRITE"]}`, ok: 201}
	}},
	routes.GetKey: {allTargets, func(w *world, t target) call {
		return call{method: "GET", path: "/v1/api-keys/" + w.keyIn(t), ok: 200}
	}},
	routes.UpdateKey: {allTargets, func(w *world, t target) call {
		return call{method: "PATCH", path: "/v1/api-keys/" + w.keyIn(t), body: `{"limits":[{"name":"burst","requests":10,"window":"1s"}]}`, ok: 200}
	}},
	routes.RevokeKey: {allTargets, func(w *world, t target) call {
		return call{method: "DELETE", path: "/v1/api-keys/" + w.keyIn(t), ok: 200}
	}},
	routes.RotateKey: {allTargets, func(w *world, t target) call {
		return call{method: "POST", path: "/v1/api-keys/" + w.keyIn(t) + "/rotate", ok: 200}
	}},
	routes.ListIdentities: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/identities", ok: 200}
	}},
	routes.GetIdentity: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/identities/" + w.identityIn(t), ok: 200}
	}},
	routes.PutIdentity: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "PUT", path: "/v1/projects/" + p + "/identities/" + w.unique("new"),
			body: `{"limits":[{"name":"sustained","requests":100,"window":"1m"}],"quota":{"requests":1000,"period":"day"}}`, ok: 201}
	}},
	routes.DeleteIdentity: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "DELETE", path: "/v1/projects/" + p + "/identities/" + w.identityIn(t), ok: 204}
	}},
	routes.GetFlagSet: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/environments/" + env + "/flags", ok: 200}
	}},
	routes.PutFlagSet: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "PUT", path: "/v1/projects/" + p + "/environments/" + env + "/flags",
			body: `{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on","metadata":{"flagbridge.client":true}}}}`, ok: 200}
	}},
	routes.ListFlagVersions: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/environments/" + env + "/flags/versions", ok: 200}
	}},
	routes.GetFlagVersion: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/environments/" + env + "/flags/versions/1", ok: 200}
	}},
	routes.DiffFlagVersions: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/environments/" + env + "/flags/versions/1/diff", ok: 200}
	}},
	routes.RevertFlagSet: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "POST", path: "/v1/projects/" + p + "/environments/" + env + "/flags/revert", body: `{"version":1}`, ok: 200}
	}},
	routes.GetFlag: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/environments/" + env + "/flags/f", ok: 200}
	}},
	routes.PutFlag: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "PUT", path: "/v1/projects/" + p + "/environments/" + env + "/flags/" + w.unique("new"),
			body: `{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a"}`, ok: 201}
	}},
	routes.DeleteFlag: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "DELETE", path: "/v1/projects/" + p + "/environments/" + env + "/flags/" + w.flagIn(t), ok: 204}
	}},
	routes.ListMembers: {[]target{own}, func(w *world, t target) call { return call{method: "GET", path: "/v1/members", ok: 200} }},
	routes.CreateWebhook: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		w.pruneWebhooks(t)
		return call{method: "POST", path: "/v1/projects/" + p + "/webhooks", body: `{"url":"https://hooks.example.com/flags","events":["flag_set.updated"]}`, ok: 201}
	}},
	routes.ListWebhooks: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/webhooks", ok: 200}
	}},
	routes.DeleteWebhook: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		hook, _ := w.deliveryIn(t)
		return call{method: "DELETE", path: "/v1/projects/" + p + "/webhooks/" + hook, ok: 204}
	}},
	routes.ListDeliveries: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		hook, _ := w.deliveryIn(t)
		return call{method: "GET", path: "/v1/projects/" + p + "/webhooks/" + hook + "/deliveries", ok: 200}
	}},
	routes.ReplayDelivery: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		hook, d := w.deliveryIn(t)
		return call{method: "POST", path: "/v1/projects/" + p + "/webhooks/" + hook + "/deliveries/" + d + "/replay", ok: 202}
	}},
	routes.ListAuditLog: {allTargets, func(w *world, t target) call {
		_, p, _ := w.place(t)
		return call{method: "GET", path: "/v1/audit-log?project=" + p, ok: 200}
	}},
	routes.InviteMember: {[]target{own}, func(w *world, t target) call {
		return call{method: "POST", path: "/v1/members/invitations", body: `{"email":"` + w.unique("i") + `@example.com","name":"I"}`, ok: 201}
	}},
	routes.RemoveMember: {[]target{own, otherOrg}, func(w *world, t target) call {
		return call{method: "DELETE", path: "/v1/members/" + w.memberIn(t), ok: 204}
	}},
	routes.Evaluate: {allTargets, func(w *world, t target) call {
		return call{method: "POST", path: "/v1/evaluate", body: `{"flag":"f"}`, header: onEnv(w, t), ok: 200}
	}},
	routes.EvaluateBatch: {allTargets, func(w *world, t target) call {
		return call{method: "POST", path: "/v1/evaluate/batch", body: `{}`, header: onEnv(w, t), ok: 200}
	}},
	routes.CreateSession: {allTargets, func(w *world, t target) call {
		_, p, env := w.place(t)
		return call{method: "POST", path: "/v1/testing/sessions", body: `{"project":"` + p + `","environment":"` + env + `"}`, ok: 201}
	}},
	routes.SetOverrides: {allTargets, func(w *world, t target) call {
		return call{method: "POST", path: "/v1/testing/sessions/" + w.sessionIn(t) + "/overrides", body: `{"overrides":{"f":false}}`, ok: 200}
	}},
	routes.DeleteSession: {allTargets, func(w *world, t target) call {
		return call{method: "DELETE", path: "/v1/testing/sessions/" + w.sessionIn(t), ok: 204}
	}},
	routes.OFREPEvaluate: {allTargets, func(w *world, t target) call {
		return call{method: "POST", path: "/ofrep/v1/evaluate/flags/f", body: `{"context":{}}`, header: onEnv(w, t), ok: 200}
	}},
	routes.OFREPEvaluateAll: {allTargets, func(w *world, t target) call {
		return call{method: "POST", path: "/ofrep/v1/evaluate/flags", body: `{"context":{}}`, header: onEnv(w, t), ok: 200}
	}},
	routes.OFREPConfig: {[]target{own}, func(w *world, t target) call { return call{method: "GET", path: "/ofrep/v1/configuration", ok: 200} }},
	// The stream's token names the target's environment; check adds a
	// token minted for the principal's key.
	routes.OFREPEvents: {allTargets, func(w *world, t target) call {
		return call{method: "GET", path: "/ofrep/v1/events", header: onEnv(w, t), ok: 200}
	}},
	routes.GraphQLPost: {[]target{own}, func(w *world, t target) call {
		return call{method: "POST", path: "/graphql", body: `{"query":"{ projects { id } }"}`, ok: 200}
	}},
	routes.GraphQLGet: {[]target{own}, func(w *world, t target) call {
		return call{method: "GET", path: "/graphql?query=" + url.QueryEscape("{ projects { id } }"), ok: 200}
	}},
	routes.DashboardRoot:  {[]target{own}, func(w *world, t target) call { return call{method: "GET", path: "/dashboard", ok: 308} }},
	routes.DashboardPage:  {[]target{own}, func(w *world, t target) call { return call{method: "GET", path: "/dashboard/", ok: 200} }},
	routes.DashboardIndex: {[]target{own}, func(w *world, t target) call { return call{method: "GET", path: "/dashboard/index.html", ok: 301} }},
	routes.DashboardAsset: {[]target{own}, func(w *world, t target) call {
		return call{method: "GET", path: "/dashboard/assets/app.js", ok: 200}
	}},
	routes.DashboardSession: {[]target{own}, func(w *world, t target) call {
		return call{method: "GET", path: "/dashboard/api/session", ok: 200}
	}},
	routes.DashboardLogin: {[]target{own}, func(w *world, t target) call {
		return call{method: "POST", path: "/dashboard/api/login", body: `{"email":"` + w.unique("nobody") + `@example.com","password":"wrong password"}`, ok: 401}
	}},
	routes.DashboardLogout: {[]target{own}, func(w *world, t target) call {
		return call{method: "POST", path: "/dashboard/api/logout", ok: 204}
	}},
	routes.InviteLookup: {[]target{own}, func(w *world, t target) call {
		return call{method: "POST", path: "/dashboard/api/invites/lookup", body: `{"token":"no-such-invitation"}`, ok: 404}
	}},
	routes.InviteAccept: {[]target{own}, func(w *world, t target) call {
		return call{method: "POST", path: "/dashboard/api/invites/accept", body: `{"token":"no-such-invitation","password":"` + password + `"}`, ok: 404}
	}},
}

// answer is what the oracle expects: a status and, for refusals, the error
// code and, where the message is fixed, the message.
type answer struct {
	status        int
	code, message string
}

var (
	badKey     = answer{401, apierror.CodeUnauthorized, apierror.InvalidKey.Message}
	missingKey = answer{401, apierror.CodeUnauthorized, apierror.MissingKey.Message}
	loggedOut  = answer{401, apierror.CodeUnauthorized, "Please log in"}
	// badStreamToken: no stream token (a member has none).
	badStreamToken = answer{401, apierror.CodeUnauthorized, "Invalid or expired stream token; evaluate again for a new event stream URL"}
	wrongType      = answer{403, apierror.CodeForbidden, apierror.WrongKeyType.Message}
	readOnly       = answer{403, apierror.CodeForbidden, apierror.ReadOnlyKey.Message}
	memberRO       = answer{403, apierror.CodeForbidden, "Your role (Member) is read-only; ask an owner or admin of your organization"}
	noRead         = answer{403, apierror.CodeForbidden, "This key lacks the READ permission"}
	forbidden      = answer{403, apierror.CodeForbidden, ""}
	notFound       = answer{404, apierror.CodeNotFound, ""}
	noSession      = answer{404, apierror.CodeSessionNotFound, ""}
)

// routeKind groups routes by the rule that governs their target.
func kindOf(n routes.Name) string {
	switch n {
	case routes.CreateProject, routes.InviteMember, routes.RemoveMember:
		return "organization"
	case routes.DeleteProject, routes.CreateEnvironment, routes.PutIdentity, routes.DeleteIdentity,
		routes.CreateWebhook, routes.ListWebhooks, routes.DeleteWebhook, routes.ListDeliveries, routes.ReplayDelivery:
		return "whole project"
	case routes.GetProject, routes.ListEnvironments, routes.ListKeys, routes.CreateKey, routes.ListIdentities, routes.GetIdentity:
		return "part of a project"
	case routes.GetKey, routes.UpdateKey, routes.RevokeKey, routes.RotateKey:
		return "key by id"
	case routes.SetOverrides, routes.DeleteSession:
		return "session by id"
	case routes.Evaluate, routes.EvaluateBatch, routes.OFREPEvaluate, routes.OFREPEvaluateAll, routes.OFREPEvents, routes.CreateSession:
		return "environment named in the request"
	case routes.GetFlagSet, routes.PutFlagSet, routes.GetFlag, routes.PutFlag, routes.DeleteFlag,
		routes.ListFlagVersions, routes.GetFlagVersion, routes.DiffFlagVersions, routes.RevertFlagSet:
		return "environment in the path"
	case routes.ListAuditLog:
		return "project filter"
	}
	return "nothing in particular"
}

// expect is the oracle: the policy, rule by rule.
func expect(p *who, r *routes.Route, c call, t target) answer {
	ok := answer{status: c.ok}
	// The route's credential first.
	switch r.Credential {
	case routes.Public:
		return ok
	case routes.OptionalSession:
		if !p.session {
			return answer{status: 204}
		}
		return ok
	case routes.Session:
		if !p.session {
			return loggedOut
		}
	case routes.StreamToken:
		if p.session {
			return badStreamToken
		}
	}
	if p.dead {
		return badKey
	}
	// Then the key type and the permission the route needs.
	needs := map[routes.Name]apikey.Type{
		routes.Evaluate: apikey.Live, routes.EvaluateBatch: apikey.Live, routes.OFREPEvaluate: apikey.Client,
		routes.OFREPEvaluateAll: apikey.Client, routes.OFREPConfig: apikey.Client, routes.OFREPEvents: apikey.Client,
		routes.CreateSession: apikey.Test, routes.SetOverrides: apikey.Test, routes.DeleteSession: apikey.Test,
	}
	typ, found := needs[r.Name]
	if !found {
		typ = apikey.Admin
	}
	// What each type may do, least first: client < live < test < admin.
	rank := map[apikey.Type]int{apikey.Client: 0, apikey.Live: 1, apikey.Test: 2, apikey.Admin: 3}
	if rank[p.typ] < rank[typ] {
		return wrongType
	}
	write := r.Method != "GET" && !strings.HasPrefix(string(r.Name), "evaluate") && !strings.HasPrefix(string(r.Name), "ofrep") &&
		r.Name != routes.GraphQLPost && r.Name != routes.DashboardLogout
	switch {
	case write && !p.write && p.session:
		return memberRO
	case write && !p.write:
		return readOnly
	case !write && !p.read:
		return noRead
	}
	// Then the scope.
	switch kindOf(r.Name) {
	case "organization":
		if p.scope != orgWide {
			return forbidden
		}
		if t == otherOrg {
			return notFound
		}
	case "whole project":
		if p.scope == envScoped || !p.reaches(t) {
			return forbidden
		}
		if t == otherOrg {
			return notFound
		}
	case "part of a project":
		// An environment key acts inside its project, and creates keys in
		// its environment only.
		inside := p.reaches(t) || p.scope == envScoped && t == otherEnv && r.Name != routes.CreateKey
		if !inside {
			return forbidden
		}
		if t == otherOrg {
			return notFound
		}
	case "project filter":
		// As a part of a project, but a project the organization does not
		// have (any more) is no error: the log keeps deleted projects'.
		if !p.reaches(t) && !(p.scope == envScoped && t == otherEnv) {
			return forbidden
		}
	case "key by id", "session by id":
		// Looked up in the caller's own organization first.
		if t == otherOrg {
			if kindOf(r.Name) == "session by id" {
				return noSession
			}
			return notFound
		}
		if !p.reaches(t) {
			if kindOf(r.Name) == "session by id" {
				return noSession // invisible outside their environment
			}
			return forbidden
		}
	case "environment named in the request", "environment in the path":
		if !p.reaches(t) {
			return forbidden
		}
		if t == otherOrg {
			if strings.HasPrefix(string(r.Name), "ofrep") {
				return answer{400, "", ""} // OFREP's GENERAL
			}
			return notFound
		}
	}
	return ok
}

func TestAuthorizationMatrix(t *testing.T) {
	for _, r := range routes.All() {
		if _, ok := requests[r.Name]; !ok {
			t.Errorf("route %s (%s %s) has no request in the authorization matrix", r.Name, r.Method, r.Pattern)
		}
	}
	if t.Failed() {
		return
	}
	st, err := store.OpenRedis(testenv.StartRedis(t).URL(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := newWorld(t, st)
	cases := 0
	for i := range routes.All() {
		r := &routes.All()[i]
		if r.Name == routes.DeleteProject || r.Name == routes.DashboardLogout {
			continue // they change the world; see below
		}
		for _, p := range w.people {
			for _, tg := range requests[r.Name].targets {
				w.check(t, p, r, tg)
				cases++
			}
		}
	}
	// Deleting a project and logging out end what the other cases use: each
	// admitted one runs in a world of its own.
	for _, name := range []routes.Name{routes.DeleteProject, routes.DashboardLogout} {
		r := routes.ByName(name)
		for pi := range w.people {
			for _, tg := range requests[name].targets {
				p := w.people[pi]
				c := requests[name].make(w, tg)
				if expect(p, r, c, tg).status >= 400 {
					w.check(t, p, r, tg)
				} else {
					fresh := newWorld(t, st)
					fresh.check(t, fresh.people[pi], r, tg)
				}
				cases++
			}
		}
	}
	t.Logf("%d principals x %d routes: %d requests, each with its one expected answer", len(w.people), len(routes.All()), cases)
}

// check sends one request and compares the answer with the oracle's.
func (w *world) check(t *testing.T, p *who, r *routes.Route, tg target) {
	t.Helper()
	c := requests[r.Name].make(w, tg)
	want := expect(p, r, c, tg)
	req, path := w.request(t, p, r, c)
	if p.session && r.Credential == routes.APIKey && !strings.HasPrefix(path, "/dashboard/api/") {
		// A session is no API key: the OFREP and GraphQL routes take keys.
		want = missingKey
	}
	rec := httptest.NewRecorder()
	w.chain.ServeHTTP(rec, req)
	where := fmt.Sprintf("%s as %s on %s (%s %s)", r.Name, p.name, targetNames[tg], c.method, path)
	if rec.Code != want.status {
		t.Errorf("%s: status %d, want %d: %s", where, rec.Code, want.status, rec.Body)
		return
	}
	if want.code == "" && want.status < 400 {
		return
	}
	if r.Style == apierror.GraphQL {
		var body struct {
			Errors []struct {
				Message    string
				Extensions struct{ Code string }
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
			t.Errorf("%s: body %s", where, rec.Body)
			return
		}
		code, msg := apierror.GraphQLCode(&apierror.Error{Status: want.status, Code: want.code, Message: want.message})
		if body.Errors[0].Extensions.Code != code || body.Errors[0].Message != msg {
			t.Errorf("%s: %s, want %s %q", where, rec.Body, code, msg)
		}
		return
	}
	if want.code == "" {
		return
	}
	var body struct{ Error, Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: body %s: %v", where, rec.Body, err)
		return
	}
	if body.Error != want.code || want.message != "" && body.Message != want.message {
		t.Errorf("%s: %s %q, want %s %q", where, body.Error, body.Message, want.code, want.message)
	}
}

// request builds the request of call c to route r as principal p, from an
// address of its own, and returns it with the path it was sent to (a
// member reaches the REST routes under /dashboard/api).
func (w *world) request(t *testing.T, p *who, r *routes.Route, c call) (*http.Request, string) {
	t.Helper()
	path := c.path
	mounted := r.Credential == routes.APIKey && strings.HasPrefix(r.Pattern, "/v1/")
	if p.session && mounted {
		path = "/dashboard/api" + path
	}
	req := httptest.NewRequest(c.method, "https://flags.example.com"+path, strings.NewReader(c.body))
	// Each request from an address of its own: logins are limited per
	// address whatever the guard's limits.
	n := w.serial.Add(1)
	req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1234", n>>16&255, n>>8&255, n&255)
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	switch {
	case p.session:
		req.AddCookie(&http.Cookie{Name: edge.SessionCookie, Value: p.cookie})
		req.Header.Set(edge.HeaderCSRF, p.csrf)
		req.Header.Set("Origin", "https://flags.example.com")
	default:
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	if r.Credential == routes.StreamToken {
		// A token minted for the principal's key, naming the target's
		// environment (a member has none). An admitted stream stays open
		// until the client leaves: here, after 100 ms.
		if !p.session {
			token, err := w.chain.Tokens.Mint(context.Background(), streams.Claims{Digest: apikey.DigestOf(p.key),
				Project: c.header["FlagBridge-Project"], Environment: c.header["FlagBridge-Environment"]})
			if err != nil {
				t.Fatal(err)
			}
			req.URL.RawQuery = "token=" + token
		}
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		t.Cleanup(cancel)
		req = req.WithContext(ctx)
	}
	return req, path
}

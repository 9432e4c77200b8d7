package admin_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
)

// auditLog is every entry p may read, newest first, page by page.
func auditLog(t *testing.T, e *env, p *authz.Principal, q audit.Query) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for {
		page, err := e.svc.Audit.List(context.Background(), p, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Entries...)
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

func actions(es []audit.Entry) []audit.Action {
	out := make([]audit.Action, len(es))
	for i := range es {
		out[i] = es[i].Action
	}
	return out
}

const flagDoc = `{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}}}`

// Changes are logged newest first, across days and pages, with the
// versions of a flag change; filters narrow; a key sees what its scope
// covers and nothing of another project or of the organization.
func TestAuditLog(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		other := e.newOrg(t, "gamma")
		alphaAdmin, err := e.svc.Keys.CreateKey(ctx, o.root, "alpha", keys.CreateInput{Name: "alpha admin", Type: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		alpha := as(alphaAdmin.Record)
		for i := range 3 {
			if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(flagDoc), flags.Precondition{}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "beta", "production", []byte(flagDoc), flags.Precondition{}); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Duration(i+1) * 20 * time.Hour) // into other days
		}
		if _, err := e.svc.Flags.PutFlagSet(ctx, other.root, "gamma", "production", []byte(flagDoc), flags.Precondition{}); err != nil {
			t.Fatal(err)
		}

		all := auditLog(t, e, o.root, audit.Query{Limit: 2})
		var last time.Time
		for i, en := range all {
			if en.Organization != o.id {
				t.Fatalf("entry of another organization: %+v", en)
			}
			if i > 0 && en.Time.After(last) {
				t.Fatalf("not newest first at %d: %v after %v", i, en.Time, last)
			}
			last = en.Time
		}
		flagSets := auditLog(t, e, o.root, audit.Query{Action: string(audit.FlagSetUpdated), Project: "alpha"})
		if len(flagSets) != 3 {
			t.Fatalf("alpha's flag set changes: %d", len(flagSets))
		}
		if v := flagSets[0].FlagSet; v == nil || v.Before != 2 || v.After != 3 || flagSets[0].Environment != "production" {
			t.Fatalf("newest change's versions: %+v", flagSets[0])
		}
		if n := len(auditLog(t, e, o.root, audit.Query{Action: "project.*"})); n != 2 {
			t.Fatalf("project.*: %d entries", n)
		}
		if n := len(auditLog(t, e, o.root, audit.Query{Actor: o.root.ID, Since: t0.Add(30 * time.Hour)})); n != 2 {
			t.Fatalf("by the root key since 30h in: %d entries", n)
		}
		// The project key: alpha's entries (its own creation among them),
		// none of beta's or the organization's.
		seen := auditLog(t, e, alpha, audit.Query{})
		if len(seen) != 5 {
			t.Fatalf("the alpha key sees %v", actions(seen))
		}
		for _, en := range seen {
			if en.Project != "alpha" {
				t.Fatalf("the alpha key sees %+v", en)
			}
		}
		_, err = e.svc.Audit.List(ctx, alpha, audit.Query{Project: "beta"})
		var ae *apierror.Error
		if !errors.As(err, &ae) || ae.Status != 403 {
			t.Fatalf("the alpha key filtering beta: %v", err)
		}
		// Bad filters name the problem.
		for _, q := range []audit.Query{{Action: "flag.exploded"}, {Cursor: "nope"}, {Limit: 5000}, {Environment: "production"}} {
			if _, err := e.svc.Audit.List(ctx, o.root, q); !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("%+v: %v", q, err)
			}
		}
	})
}

// An entry commits with its change or not at all: a change whose entry
// cannot be written is not made, and a refused change writes no entry.
func TestAuditSameTransaction(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		before := len(auditLog(t, e, o.root, audit.Query{}))
		broken := e.faulty(failOn("put", "audit/"))
		if _, err := broken.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(flagDoc), flags.Precondition{}); !errors.Is(err, errInjected) {
			t.Fatalf("with the audit write failing: %v", err)
		}
		if _, _, err := broken.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "beta"}); !errors.Is(err, errInjected) {
			t.Fatalf("with the audit write failing: %v", err)
		}
		if fs := e.flagSet(t, o, "alpha", "production"); fs.Version != 0 {
			t.Fatalf("the flag set changed without its entry: version %d", fs.Version)
		}
		if _, _, err := e.svc.Tenancy.GetProject(ctx, o.root, "beta"); err == nil {
			t.Fatal("the project exists without its entry")
		}
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(`{"flags":{"f":{"state":"ENABLED"}}}`), flags.Precondition{}); err == nil {
			t.Fatal("an invalid flag set was accepted")
		}
		if after := len(auditLog(t, e, o.root, audit.Query{})); after != before {
			t.Fatalf("%d entries without a change", after-before)
		}
		// A webhook's delivery is written with the change too: if it cannot
		// be, the change is not made.
		if _, err := e.svc.Audit.CreateWebhook(ctx, o.root, "alpha", audit.WebhookInput{URL: "https://hooks.example.com/f", Events: []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		noDeliveries := e.faulty(failOn("put", "webhook-deliveries/"))
		if _, err := noDeliveries.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(flagDoc), flags.Precondition{}); !errors.Is(err, errInjected) {
			t.Fatalf("with the delivery write failing: %v", err)
		}
		if fs := e.flagSet(t, o, "alpha", "production"); fs.Version != 0 {
			t.Fatalf("the flag set changed without its delivery: version %d", fs.Version)
		}
	})
}

// Entries past the retention are neither listed nor kept.
func TestAuditRetention(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		e.svc.Audit.Retention = 48 * time.Hour
		if n := len(auditLog(t, e, o.root, audit.Query{})); n == 0 {
			t.Fatal("no entries")
		}
		e.clock.Advance(24 * time.Hour)
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(flagDoc), flags.Precondition{}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(36 * time.Hour) // the first day's entries are past 48h
		kept := auditLog(t, e, o.root, audit.Query{})
		if len(kept) != 1 || kept[0].Action != audit.FlagSetUpdated {
			t.Fatalf("within the retention: %v", actions(kept))
		}
		n, err := e.svc.Audit.Sweep(ctx, []string{o.id})
		if err != nil || n != 1 {
			t.Fatalf("sweep: %d days, %v", n, err)
		}
		if snap := e.snap(t, "audit/"+o.id+"/"+t0.Format("20060102")); len(snap["audit/"+o.id+"/"+t0.Format("20060102")]) != 0 {
			t.Fatal("the swept day is still stored")
		}
		if kept := auditLog(t, e, o.root, audit.Query{}); len(kept) != 1 {
			t.Fatalf("after the sweep: %v", actions(kept))
		}
		// The deliveries of webhooks go too, once past it and done: one
		// delivered (to a loopback receiver), one still pending (its
		// endpoint refuses).
		e.svc.Audit.AllowInsecureWebhooks = true
		ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
		defer ok.Close()
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
		defer down.Close()
		hooks := map[string]string{}
		for name, srv := range map[string]*httptest.Server{"ok": ok, "down": down} {
			h, err := e.svc.Audit.CreateWebhook(ctx, o.root, "alpha", audit.WebhookInput{URL: srv.URL, Events: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			hooks[name] = h.ID
		}
		dctx, cancel := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() { audit.NewDispatcher(e.svc.Audit, nil).Run(dctx); close(stopped) }()
		stop := func() { cancel(); <-stopped }
		defer cancel()
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(flagDoc), flags.Precondition{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ds, _ := e.svc.Audit.ListDeliveries(ctx, o.root, "alpha", hooks["ok"], 0)
			if len(ds) == 1 && ds[0].Status == audit.DeliveryDelivered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not delivered: %+v", ds)
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		e.clock.Advance(72 * time.Hour)
		if _, err := e.svc.Audit.Sweep(ctx, []string{o.id}); err != nil {
			t.Fatal(err)
		}
		if ds, _ := e.svc.Audit.ListDeliveries(ctx, o.root, "alpha", hooks["ok"], 0); len(ds) != 0 {
			t.Fatalf("a delivered delivery past the retention is kept: %+v", ds)
		}
		if ds, _ := e.svc.Audit.ListDeliveries(ctx, o.root, "alpha", hooks["down"], 0); len(ds) != 1 || ds[0].Status != audit.DeliveryPending {
			t.Fatalf("a pending delivery was swept: %+v", ds)
		}
	})
}

// Removing a member revokes the keys they hold, each with an entry of its
// own in the key's project (a webhook of the project hears of it), by the
// one who removed them.
func TestAuditMemberRemovalRevokesKeys(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		m := e.join(t, o.root, "leaver@example.com", authz.RoleAdmin, "leaver password 1")
		k, err := e.svc.Keys.CreateKey(ctx, authz.ForMember(o.id, m.ID, authz.RoleAdmin), "alpha", keys.CreateInput{Name: "theirs", Type: "live", Environment: "production"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Identity.RemoveMember(ctx, o.root, m.ID); err != nil {
			t.Fatal(err)
		}
		revoked := auditLog(t, e, o.root, audit.Query{Action: string(audit.KeyRevoked), Project: "alpha"})
		if len(revoked) != 1 || revoked[0].Target.ID != k.ID || revoked[0].Actor.ID != o.root.ID {
			t.Fatalf("revocations: %+v", revoked)
		}
		page, err := e.svc.Audit.List(ctx, o.root, audit.Query{Limit: 2})
		if err != nil || page.Entries[0].Action != audit.MemberRemoved || page.Entries[1].Action != audit.KeyRevoked {
			t.Fatalf("newest entries: %+v %v", page, err)
		}
	})
}

// A project deleted takes its webhooks along: one made later with its
// slug has none, and receives nothing meant for the old one.
func TestDeletedProjectsWebhooks(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		if _, err := e.svc.Audit.CreateWebhook(ctx, o.root, "alpha", audit.WebhookInput{URL: "https://hooks.example.com/a", Events: []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		keep, err := e.svc.Audit.CreateWebhook(ctx, o.root, "beta", audit.WebhookInput{URL: "https://hooks.example.com/b", Events: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(flagDoc), flags.Precondition{}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteProject(ctx, o.root, "alpha"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
			t.Fatal(err)
		}
		if hooks, err := e.svc.Audit.ListWebhooks(ctx, o.root, "alpha"); err != nil || len(hooks) != 0 {
			t.Fatalf("the new alpha's webhooks: %+v %v", hooks, err)
		}
		if hooks, err := e.svc.Audit.ListWebhooks(ctx, o.root, "beta"); err != nil || len(hooks) != 1 || hooks[0].ID != keep.ID {
			t.Fatalf("beta's webhooks: %+v %v", hooks, err)
		}
		if snap := e.snap(t, "webhook-pending"); len(snap["webhook-pending"]) != 0 {
			t.Fatalf("deliveries of the deleted project pending: %v", snap)
		}
	})
}

package admin_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// identityFeed records what is published on customers.Topic.
type identityFeed struct {
	ch chan string
}

func (e *env) identityFeed(t *testing.T) *identityFeed {
	t.Helper()
	f := &identityFeed{ch: make(chan string, 1024)}
	unsub := e.st.Subscribe(func(ev store.Event) {
		if ev.Topic == customers.Topic {
			f.ch <- string(ev.Payload)
		}
	})
	t.Cleanup(unsub)
	return f
}

// expect receives len(refs) events and checks they carry exactly refs, in
// any order.
func (f *identityFeed) expect(t *testing.T, refs ...string) {
	t.Helper()
	var got []string
	for range refs {
		select {
		case p := <-f.ch:
			got = append(got, p)
		case <-time.After(10 * time.Second):
			t.Fatalf("published %q within 10s, want %q", got, refs)
		}
	}
	want := slices.Clone(refs)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("published %q, want %q", got, want)
	}
}

// expectQuiet checks that nothing was published since the last event read:
// it puts a marker identity and checks that the marker comes next, since
// events arrive in publication order.
func (f *identityFeed) expectQuiet(t *testing.T, e *env, o *org, project string) {
	t.Helper()
	if _, _, err := e.svc.Identities.PutIdentity(context.Background(), o.root, project, "marker", quotaOnly(1)); err != nil {
		t.Fatal(err)
	}
	f.expect(t, customers.Ref(o.id, project, "marker"))
}

func quotaOnly(n int64) customers.PutInput {
	return customers.PutInput{Quota: &ratelimit.Quota{Requests: n, Period: ratelimit.Day}}
}

func identityCol(orgID, project string) string { return "identities/" + orgID + "/" + project }

func TestIdentities(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		f := e.identityFeed(t)
		svc := e.svc.Identities

		// Created: limits in the shortest form, a quota, both times now.
		in := customers.PutInput{
			Limits: []keys.LimitInput{{Name: "sustained", Requests: 10000, Window: "60s"}, {Name: "burst", Requests: 100, Window: "1s", Shadow: true}},
			Quota:  &ratelimit.Quota{Requests: 1_000_000, Period: ratelimit.Month},
		}
		id, created, err := svc.PutIdentity(ctx, o.root, "alpha", "acme", in)
		if err != nil || !created {
			t.Fatalf("PutIdentity = %+v, created %v, %v", id, created, err)
		}
		f.expect(t, customers.Ref(o.id, "alpha", "acme"))
		burst := limit("burst", 100, time.Second)
		burst.Shadow = true
		want := customers.Identity{
			Slug: "acme", Project: "alpha",
			Limits:    []ratelimit.NamedLimit{limit("sustained", 10000, time.Minute), burst},
			Quota:     &ratelimit.Quota{Requests: 1_000_000, Period: ratelimit.Month},
			CreatedAt: t0, UpdatedAt: t0,
		}
		if !reflect.DeepEqual(*id, want) {
			t.Fatalf("answered %+v, want %+v", *id, want)
		}
		b, ok := e.doc(t, identityCol(o.id, "alpha"), "acme")
		if !ok || !strings.Contains(string(b), `"limits":[{"name":"sustained","requests":10000,"window":"1m"},{"name":"burst","requests":100,"window":"1s","shadow":true}],"quota":{"requests":1000000,"period":"month"}`) {
			t.Fatalf("stored document %s", b)
		}
		if got, err := svc.GetIdentity(ctx, o.root, "alpha", "acme"); err != nil || !reflect.DeepEqual(*got, want) {
			t.Fatalf("GetIdentity = %+v, %v", got, err)
		}
		if got, err := svc.LookupIdentity(ctx, o.id, "alpha", "acme"); err != nil || !reflect.DeepEqual(*got, want) {
			t.Fatalf("LookupIdentity = %+v, %v", got, err)
		}

		// Replaced whole: what the new PUT leaves out is gone, and it keeps
		// its creation time.
		e.clock.Advance(time.Minute)
		id, created, err = svc.PutIdentity(ctx, o.root, "alpha", "acme", quotaOnly(500))
		if err != nil || created {
			t.Fatalf("replacing: %+v, created %v, %v", id, created, err)
		}
		f.expect(t, customers.Ref(o.id, "alpha", "acme"))
		want = customers.Identity{Slug: "acme", Project: "alpha", Quota: &ratelimit.Quota{Requests: 500, Period: ratelimit.Day},
			CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)}
		if got, err := svc.LookupIdentity(ctx, o.id, "alpha", "acme"); err != nil || !reflect.DeepEqual(*id, want) || !reflect.DeepEqual(*got, want) {
			t.Fatalf("after replacing: answered %+v, stored %+v (%v), want %+v", *id, got, err, want)
		}
		if b, _ := e.doc(t, identityCol(o.id, "alpha"), "acme"); strings.Contains(string(b), `"limits"`) {
			t.Fatalf("replaced without limits, the document holds them: %s", b)
		}

		// Listed by slug, per project.
		for _, s := range []string{"zeta", "globex"} {
			if _, _, err := svc.PutIdentity(ctx, o.root, "alpha", s, quotaOnly(1)); err != nil {
				t.Fatal(err)
			}
			f.expect(t, customers.Ref(o.id, "alpha", s))
		}
		if _, _, err := svc.PutIdentity(ctx, o.root, "beta", "initech", customers.PutInput{Limits: []keys.LimitInput{{Name: "a", Requests: 1, Window: "1s"}}}); err != nil {
			t.Fatal(err)
		}
		f.expect(t, customers.Ref(o.id, "beta", "initech"))
		slugs := func(project string) []string {
			t.Helper()
			list, err := svc.ListIdentities(ctx, o.root, project)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, id := range list {
				if id.Project != project {
					t.Fatalf("listed %+v in project %s", id, project)
				}
				out = append(out, id.Slug)
			}
			return out
		}
		if got := slugs("alpha"); !slices.Equal(got, []string{"acme", "globex", "zeta"}) {
			t.Fatalf("alpha's identities %q", got)
		}
		if got := slugs("beta"); !slices.Equal(got, []string{"initech"}) {
			t.Fatalf("beta's identities %q", got)
		}
		// An identity belongs to its project: the same slug elsewhere is
		// another, or none.
		if got, err := svc.LookupIdentity(ctx, o.id, "beta", "acme"); got != nil || err != nil {
			t.Fatalf("LookupIdentity in another project = %+v, %v", got, err)
		}

		// Deleted: gone, published, and a second delete is 404.
		if err := svc.DeleteIdentity(ctx, o.root, "alpha", "globex"); err != nil {
			t.Fatal(err)
		}
		f.expect(t, customers.Ref(o.id, "alpha", "globex"))
		_, err = svc.GetIdentity(ctx, o.root, "alpha", "globex")
		wantExact(t, err, apierror.NotFound(`project "alpha" has no identity "globex"`))
		wantExact(t, svc.DeleteIdentity(ctx, o.root, "alpha", "globex"), apierror.NotFound(`project "alpha" has no identity "globex"`))
		if got, err := svc.LookupIdentity(ctx, o.id, "alpha", "globex"); got != nil || err != nil {
			t.Fatalf("LookupIdentity after delete = %+v, %v", got, err)
		}
		if got := slugs("alpha"); !slices.Equal(got, []string{"acme", "zeta"}) {
			t.Fatalf("alpha's identities after delete %q", got)
		}

		// A project that does not exist: 404 everywhere, nothing written.
		before := e.snap(t, identityCol(o.id, "nope"))
		_, _, err = svc.PutIdentity(ctx, o.root, "nope", "acme", quotaOnly(1))
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))
		_, err = svc.GetIdentity(ctx, o.root, "nope", "acme")
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))
		_, err = svc.ListIdentities(ctx, o.root, "nope")
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))
		wantExact(t, svc.DeleteIdentity(ctx, o.root, "nope", "acme"), apierror.NotFound(`project "nope" not found`))
		if !before.equal(e.snap(t, identityCol(o.id, "nope"))) {
			t.Fatal("a refused put wrote")
		}
		if got, err := svc.LookupIdentity(ctx, "org_nope", "alpha", "acme"); got != nil || err != nil {
			t.Fatalf("LookupIdentity in another organization = %+v, %v", got, err)
		}
		f.expectQuiet(t, e, o, "alpha")
	})
}

// Bad input is refused naming the field, with the words a key's limits get
// (one check serves both), and writes and publishes nothing.
func TestPutIdentityRefusals(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		f := e.identityFeed(t)
		if _, _, err := e.svc.Identities.PutIdentity(ctx, o.root, "alpha", "acme", quotaOnly(7)); err != nil {
			t.Fatal(err)
		}
		f.expect(t, customers.Ref(o.id, "alpha", "acme"))

		good := []keys.LimitInput{{Name: "a", Requests: 1, Window: "1s"}}
		refusals := []struct {
			name, slug string
			in         customers.PutInput
			want       string
		}{
			{"nothing", "acme", customers.PutInput{}, "give at least one of limits and quota"},
			{"identity not a slug", "Acme Corp", customers.PutInput{Limits: good}, `identity "Acme Corp" must be lower-case letters`},
			{"identity empty", "", customers.PutInput{Limits: good}, "identity is required"},
			{"identity too long", strings.Repeat("a", 64), customers.PutInput{Limits: good}, "identity must be at most 63 characters"},
		}
		for _, tc := range badLimits {
			refusals = append(refusals, struct {
				name, slug string
				in         customers.PutInput
				want       string
			}{tc.name, "acme", customers.PutInput{Limits: tc.limits, Quota: tc.quota}, tc.want})
		}
		before := e.snap(t, identityCol(o.id, "alpha"))
		for _, tc := range refusals {
			_, _, err := e.svc.Identities.PutIdentity(ctx, o.root, "alpha", tc.slug, tc.in)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest)
			if msg := apiErr(t, err).Message; !strings.HasPrefix(msg, tc.want) {
				t.Errorf("%s: message %q, want it to start with %q", tc.name, msg, tc.want)
			}
		}
		if !before.equal(e.snap(t, identityCol(o.id, "alpha"))) {
			t.Fatal("a refused put changed the store")
		}
		f.expectQuiet(t, e, o, "alpha")

		// A failing write leaves the identity as it was, and publishes
		// nothing.
		_, _, err := e.faulty(failOn("put", "identities/")).Identities.PutIdentity(ctx, o.root, "alpha", "acme", quotaOnly(9))
		if !errors.Is(err, errInjected) {
			t.Fatalf("error = %v, want the injected failure", err)
		}
		err = e.faulty(failOn("delete", "identities/")).Identities.DeleteIdentity(ctx, o.root, "alpha", "acme")
		if !errors.Is(err, errInjected) {
			t.Fatalf("error = %v, want the injected failure", err)
		}
		if got, _ := e.svc.Identities.LookupIdentity(ctx, o.id, "alpha", "acme"); got == nil || got.Quota.Requests != 7 {
			t.Fatalf("after failed writes: %+v", got)
		}
		f.expectQuiet(t, e, o, "alpha")
	})
}

// Who may read and change identities: admin principals whose scope reaches
// the project read them (an environment key of it too); changing them takes
// WRITE over the whole project, and no limits of one's own.
func TestIdentityAuthorization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		svc := e.svc.Identities
		if _, _, err := svc.PutIdentity(ctx, o.root, "alpha", "acme", quotaOnly(1)); err != nil {
			t.Fatal(err)
		}
		ro := *o.root.Key
		ro.Permissions = perms(t, "READ")
		envAdmin := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin", Environment: "production"}).Record)
		projAdmin := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"}).Record)
		betaAdmin := as(e.mint(t, o.root, "beta", keys.CreateInput{Type: "admin"}).Record)
		scopedBeta := as(e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Resources: []string{"beta"}}).Record)
		limited := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin", Limits: []keys.LimitInput{{Name: "slow", Requests: 10, Window: "1m"}}}).Record)
		quotaed := as(e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Quota: &ratelimit.Quota{Requests: 100, Period: ratelimit.Day}}).Record)
		live := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"}).Record)
		other := e.newOrg(t, "alpha")
		owner, member := authz.ForMember(o.id, "mem_1", authz.RoleAdmin), authz.ForMember(o.id, "mem_2", authz.RoleMember)

		hasLimits := apierror.Forbidden("This key has rate limits of its own and cannot change rate limits; use a key without limits, or the dashboard")
		for _, tc := range []struct {
			name        string
			p           *authz.Principal
			read, write error // nil: allowed
		}{
			{"no principal", nil, apierror.InvalidKey, apierror.InvalidKey},
			{"org admin", o.root, nil, nil},
			{"dashboard admin", owner, nil, nil},
			{"dashboard member", member, nil, apierror.Forbidden("Your role (Member) is read-only; ask an owner or admin of your organization")},
			{"read-only org key", as(&ro), nil, apierror.ReadOnlyKey},
			{"project admin", projAdmin, nil, nil},
			{"environment admin", envAdmin, nil,
				apierror.Forbidden(`This key belongs to environment "production" and cannot manage identities of the whole project "alpha"`)},
			{"admin of another project", betaAdmin,
				apierror.Forbidden(`This key belongs to project "beta" and cannot read identities of project "alpha"`),
				apierror.Forbidden(`This key belongs to project "beta" and cannot manage identities of project "alpha"`)},
			{"scoped to another project", scopedBeta,
				apierror.Forbidden(`This key is limited to projects [beta] and cannot read identities of project "alpha"`),
				apierror.Forbidden(`This key is limited to projects [beta] and cannot manage identities of project "alpha"`)},
			{"key with limits", limited, nil, hasLimits},
			{"key with a quota", quotaed, nil, hasLimits},
			{"live key", live, apierror.WrongKeyType, apierror.WrongKeyType},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := e.snap(t, identityCol(o.id, "alpha"))
				check := func(what string, err, want error) {
					t.Helper()
					if want == nil {
						if err != nil {
							t.Fatalf("%s: refused (%v), but the rules allow it", what, err)
						}
						return
					}
					wantExact(t, err, want.(*apierror.Error))
				}
				_, err := svc.GetIdentity(ctx, tc.p, "alpha", "acme")
				check("GetIdentity", err, tc.read)
				_, err = svc.ListIdentities(ctx, tc.p, "alpha")
				check("ListIdentities", err, tc.read)
				_, _, err = svc.PutIdentity(ctx, tc.p, "alpha", "acme", quotaOnly(2))
				check("PutIdentity", err, tc.write)
				_, _, err = svc.PutIdentity(ctx, tc.p, "alpha", "new", quotaOnly(2))
				check("PutIdentity (new)", err, tc.write)
				err = svc.DeleteIdentity(ctx, tc.p, "alpha", "new")
				check("DeleteIdentity", err, tc.write)
				if tc.write != nil {
					if !before.equal(e.snap(t, identityCol(o.id, "alpha"))) {
						t.Fatal("a refused change wrote")
					}
					return
				}
				// Put back as it was, for the next caller.
				if _, _, err := svc.PutIdentity(ctx, o.root, "alpha", "acme", quotaOnly(1)); err != nil {
					t.Fatal(err)
				}
			})
		}

		// Another organization names its own project "alpha", which has no
		// identity: it sees none of o's.
		_, err := svc.GetIdentity(ctx, other.root, "alpha", "acme")
		wantExact(t, err, apierror.NotFound(`project "alpha" has no identity "acme"`))
		if list, err := svc.ListIdentities(ctx, other.root, "alpha"); err != nil || len(list) != 0 {
			t.Fatalf("another organization lists %+v, %v", list, err)
		}
		wantExact(t, svc.DeleteIdentity(ctx, other.root, "alpha", "acme"), apierror.NotFound(`project "alpha" has no identity "acme"`))
		_, err = svc.GetIdentity(ctx, other.root, "beta", "acme")
		wantExact(t, err, apierror.NotFound(`project "beta" not found`))
		if got, _ := svc.LookupIdentity(ctx, o.id, "alpha", "acme"); got == nil || got.Quota.Requests != 1 {
			t.Fatalf("o's identity after the other organization's calls: %+v", got)
		}
	})
}

// Deleting a project deletes its identities, in the same transaction, and
// publishes each; a project made again with the same slug has none.
func TestDeleteProjectDeletesIdentities(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		svc := e.svc.Identities
		for _, s := range []string{"acme", "globex"} {
			if _, _, err := svc.PutIdentity(ctx, o.root, "alpha", s, quotaOnly(1)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := svc.PutIdentity(ctx, o.root, "beta", "acme", quotaOnly(2)); err != nil {
			t.Fatal(err)
		}
		f := e.identityFeed(t)

		// A failure in the middle leaves them, and publishes nothing.
		before := e.snap(t, identityCol(o.id, "alpha"))
		for _, fail := range []func(string, string, string) error{failOn("delete-collection", "identities/"), failOn("delete", "projects/")} {
			if err := e.faulty(fail).DeleteProject(ctx, o.root, "alpha"); !errors.Is(err, errInjected) {
				t.Fatalf("error = %v, want the injected failure", err)
			}
		}
		if !before.equal(e.snap(t, identityCol(o.id, "alpha"))) {
			t.Fatal("a failed project deletion changed its identities")
		}
		f.expectQuiet(t, e, o, "beta")

		if err := e.svc.DeleteProject(ctx, o.root, "alpha"); err != nil {
			t.Fatal(err)
		}
		f.expect(t, customers.Ref(o.id, "alpha", "acme"), customers.Ref(o.id, "alpha", "globex"))
		if got := e.ids(t, identityCol(o.id, "alpha")); len(got) != 0 {
			t.Fatalf("identities left behind: %q", got)
		}
		if got, err := svc.LookupIdentity(ctx, o.id, "alpha", "acme"); got != nil || err != nil {
			t.Fatalf("LookupIdentity after the project's deletion = %+v, %v", got, err)
		}
		if got, _ := svc.LookupIdentity(ctx, o.id, "beta", "acme"); got == nil || got.Quota.Requests != 2 {
			t.Fatalf("beta's identity: %+v", got)
		}
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
			t.Fatal(err)
		}
		if list, err := svc.ListIdentities(ctx, o.root, "alpha"); err != nil || len(list) != 0 {
			t.Fatalf("the new alpha inherits %+v, %v", list, err)
		}
	})
}

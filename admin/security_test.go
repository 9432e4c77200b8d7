package admin_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
)

// The security fixes of the refactor, each shown at the service level: every
// test here fails against the old admin service's behaviour.

// keyOf reads a key record as stored, through the root key.
func (e *env) keyOf(t *testing.T, o *org, id string) *keys.Key {
	t.Helper()
	k, err := e.svc.Keys.GetKey(context.Background(), o.root, id)
	if err != nil {
		t.Fatalf("GetKey(%s): %v", id, err)
	}
	return k
}

// Whoever rotates a key receives its new secret, so the key passes to the
// member the rotator acts for, and the member who owned it before keeps
// the old secret only while it is in grace. The finding: an ADMIN rotates
// the OWNER's key with a 7-day grace period, takes the new secret and is
// removed; the secret kept answering, since the key was still the OWNER's.
func TestRotationPassesOwnership(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword, "alpha")
		owner := principalOf(&o.owner)

		// The rotator, as the ADMIN member's own session or as a key the
		// ADMIN owns: both act for the ADMIN.
		for i, via := range []string{"member", "ADMIN-owned key"} {
			t.Run("removing the rotator revokes the key/"+via, func(t *testing.T) {
				ada := e.join(t, o.root, fmt.Sprintf("ada.%d@example.com", i), authz.RoleAdmin, adaPassword)
				rotator := principalOf(ada)
				var adaKey *keys.Created
				if via != "member" {
					adaKey = e.mint(t, rotator, "alpha", keys.CreateInput{Type: "admin"})
					rotator = as(adaKey.Record)
				}
				k := e.mint(t, owner, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
				if k.OwnerID != o.owner.ID {
					t.Fatalf("test setup: the key is owned by %q, not the OWNER", k.OwnerID)
				}
				f := e.subscribe(t)

				r, err := e.svc.Keys.RotateKey(ctx, rotator, k.ID, keys.RotateInput{GracePeriod: "7d"})
				if err != nil {
					t.Fatal(err)
				}
				f.expect(t, k.ID)
				end := e.clock.Now().Add(7 * 24 * time.Hour)
				if r.OwnerID != ada.ID || r.PreviousOwnerID != o.owner.ID || r.PreviousDigest != k.Digest ||
					!sameTime(r.PreviousValidUntil, &end) {
					t.Fatalf("rotated key: owner %q, previous owner %q, previous digest %q until %s; want %q, %q, %q, %s",
						r.OwnerID, r.PreviousOwnerID, r.PreviousDigest, fmtTime(r.PreviousValidUntil), ada.ID, o.owner.ID, k.Digest, end)
				}
				if stored := e.keyOf(t, o.org, k.ID); stored.OwnerID != ada.ID || stored.PreviousOwnerID != o.owner.ID {
					t.Fatalf("stored key: owner %q, previous owner %q", stored.OwnerID, stored.PreviousOwnerID)
				}
				for _, s := range []string{k.Secret, r.Secret} {
					if rec := e.lookup(t, s); rec == nil || rec.ID != k.ID {
						t.Fatalf("before the removal, secret %s does not find the key", apikey.Hint(s))
					}
				}

				e.clock.Advance(time.Minute)
				if err := e.svc.Identity.RemoveMember(ctx, o.root, ada.ID); err != nil {
					t.Fatal(err)
				}
				want := []string{k.ID}
				if adaKey != nil {
					want = append(want, adaKey.ID)
				}
				f.expect(t, want...)
				// Neither the new secret (the ADMIN's) nor the old one answers.
				for _, s := range []string{r.Secret, k.Secret} {
					if rec := e.lookup(t, s); rec != nil {
						if _, ok := rec.ValidUntil(apikey.DigestOf(s).String(), e.clock.Now()); ok {
							t.Fatalf("secret %s still authenticates after the rotator was removed: %+v", apikey.Hint(s), rec)
						}
					}
				}
				if got := e.keyOf(t, o.org, k.ID); got.RevokedAt == nil || !got.RevokedAt.Equal(e.clock.Now()) {
					t.Fatalf("key revoked at %s, want %s", fmtTime(got.RevokedAt), e.clock.Now())
				}
				f.expectQuiet(t, e, o.org, "alpha")
			})
		}

		t.Run("removing the previous owner ends the old secret's grace", func(t *testing.T) {
			ada := e.join(t, o.root, "ada.grace@example.com", authz.RoleAdmin, adaPassword)
			// The previous owner must be removable: a second owner.
			sam := e.join(t, o.root, "sam@example.com", authz.RoleOwner, "sam's own password")
			k := e.mint(t, principalOf(sam), "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
			f := e.subscribe(t)
			r, err := e.svc.Keys.RotateKey(ctx, principalOf(ada), k.ID, keys.RotateInput{GracePeriod: "7d"})
			if err != nil {
				t.Fatal(err)
			}
			f.expect(t, k.ID)
			if r.OwnerID != ada.ID || r.PreviousOwnerID != sam.ID {
				t.Fatalf("rotated key: owner %q, previous owner %q; want %q, %q", r.OwnerID, r.PreviousOwnerID, ada.ID, sam.ID)
			}
			if err := e.svc.Identity.RemoveMember(ctx, o.root, sam.ID); err != nil {
				t.Fatal(err)
			}
			f.expect(t, k.ID)
			if rec := e.lookup(t, k.Secret); rec != nil {
				t.Fatalf("the removed previous owner's secret still finds %+v", rec)
			}
			if _, ok := e.doc(t, "key-digests", k.Digest); ok {
				t.Fatal("the old digest is still indexed")
			}
			rec := e.lookup(t, r.Secret)
			if rec == nil || rec.ID != k.ID || rec.RevokedAt != nil {
				t.Fatalf("the new secret stopped working: %+v", rec)
			}
			if until, ok := rec.ValidUntil(r.Digest, e.clock.Now()); !ok || !until.IsZero() {
				t.Fatalf("new secret valid until %v, %v", until, ok)
			}
			if _, ok := rec.ValidUntil(k.Digest, e.clock.Now()); ok {
				t.Fatal("the old digest still validates")
			}
			if rec.OwnerID != ada.ID || rec.PreviousOwnerID != "" || rec.PreviousDigest != "" || rec.PreviousValidUntil != nil {
				t.Fatalf("key after the previous owner left = %+v", rec)
			}
			f.expectQuiet(t, e, o.org, "alpha")
		})
	})
}

// A Scoped key listing a deleted project loses it: a project created later
// with the same slug is not granted to keys made for the old one.
func TestDeleteProjectNarrowsScopedKeys(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "p1", "p2")
		only := e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Resources: []string{"p1"}})
		both := e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Resources: []string{"p1", "p2"}})
		other := e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Resources: []string{"p2"}})
		otherBefore, _ := e.doc(t, "keys/"+o.id, other.ID)
		f := e.subscribe(t)

		e.clock.Advance(time.Minute)
		if err := e.svc.DeleteProject(ctx, o.root, "p1"); err != nil {
			t.Fatal(err)
		}
		// Both changed keys are announced (and only they).
		f.expect(t, only.ID, both.ID)
		f.expectQuiet(t, e, o, "p2")

		// The key left with no project is revoked (an empty list would mean
		// the whole organization).
		if rec := e.lookup(t, only.Secret); rec != nil {
			t.Fatalf("the Scoped key of the deleted project still authenticates: %+v", rec)
		}
		onlyRec := e.keyOf(t, o, only.ID)
		if onlyRec.RevokedAt == nil || !onlyRec.RevokedAt.Equal(e.clock.Now()) {
			t.Fatalf("key of only p1: revoked at %s, want %s", fmtTime(onlyRec.RevokedAt), e.clock.Now())
		}
		if _, ok := onlyRec.ValidUntil(only.Digest, e.clock.Now()); ok {
			t.Fatal("the revoked key's record still validates its secret")
		}
		// The other is narrowed to what is left.
		bothRec := e.lookup(t, both.Secret)
		if bothRec == nil || bothRec.RevokedAt != nil || !slices.Equal(bothRec.Resources, []string{"p2"}) {
			t.Fatalf("key of p1 and p2 after deleting p1 = %+v, want it active on [p2]", bothRec)
		}
		if after, _ := e.doc(t, "keys/"+o.id, other.ID); string(after) != string(otherBefore) {
			t.Fatalf("a key not listing p1 changed: %s -> %s", otherBefore, after)
		}

		// A new p1 is no one's: the narrowed key, as the edge would build it
		// from the reloaded record, is refused.
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "p1"}); err != nil {
			t.Fatal(err)
		}
		p := as(bothRec)
		_, _, err := e.svc.Tenancy.GetProject(ctx, p, "p1")
		wantExact(t, err, apierror.Forbidden(`This key is limited to projects [p2] and cannot access project "p1"`))
		_, err = e.svc.Keys.ListKeys(ctx, p, "p1")
		wantExact(t, err, apierror.Forbidden(`This key is limited to projects [p2] and cannot list keys of project "p1"`))
		_, err = e.svc.Flags.GetFlagSet(ctx, p, "p1", "production")
		wantExact(t, err, apierror.Forbidden(`This key is limited to projects [p2] and cannot access project "p1"`))
		if ps, err := e.svc.Tenancy.ListProjects(ctx, p); err != nil || len(ps) != 1 || ps[0].Slug != "p2" {
			t.Fatalf("the narrowed key lists projects %+v, %v; want only p2", ps, err)
		}
		if _, _, err := e.svc.Tenancy.GetProject(ctx, p, "p2"); err != nil {
			t.Fatalf("the narrowed key lost p2: %v", err)
		}
		// The revoked key cannot authenticate at all (checked above); the
		// edge never builds a principal of it.
	})
}

// Accepting an invitation tells nothing about whether the address has an
// account elsewhere: the policy is checked first for everyone, and every
// policy-valid password that does not accept gets one answer.
func TestAcceptInviteTellsNothingAboutTheAddress(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t)
		// (b) has a password, as the owner of another organization.
		e.orgWithPassword(t, "Elsewhere", "has-password@example.com", ownerPassword)
		// (c) is a member elsewhere without a password.
		if _, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "no-password@example.com", OwnerName: "No Password"}); err != nil {
			t.Fatal(err)
		}
		cases := []struct{ what, email string }{
			{"(a) no account", "nobody@example.com"},
			{"(b) an account with a password elsewhere", "has-password@example.com"},
			{"(c) a member elsewhere without a password", "no-password@example.com"},
		}
		tokens := map[string]string{}
		for _, c := range cases {
			tok, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: c.email, Name: c.what})
			if err != nil {
				t.Fatal(err)
			}
			tokens[c.email] = tok
		}
		// body is the HTTP answer an error becomes.
		body := func(err error) string {
			t.Helper()
			rec := httptest.NewRecorder()
			apierror.Write(rec, apiErr(t, err))
			return fmt.Sprintf("%d %s", rec.Code, rec.Body.String())
		}
		cols := memberCols(o.id)

		// A too-short password: the same 400 for all three.
		tooShort := apierror.Invalid("password must be at least %d characters", identity.MinPasswordLen)
		var answers []string
		for _, c := range cases {
			before := e.snap(t, cols...)
			m, err := e.svc.Identity.AcceptInvite(ctx, tokens[c.email], "short")
			wantExact(t, err, tooShort)
			if m != nil || !before.equal(e.snap(t, cols...)) {
				t.Fatalf("%s: a refused acceptance changed the store", c.what)
			}
			answers = append(answers, body(err))
		}
		if answers[0] != answers[1] || answers[1] != answers[2] || answers[0] != `400 {"error":"INVALID_REQUEST","message":"password must be at least 10 characters"}` {
			t.Fatalf("too-short password answers differ: %q", answers)
		}

		// A policy-valid wrong password: the identical 401 for (b) and (c).
		const wrong = "a wrong but long password"
		answers = nil
		for _, c := range cases[1:] {
			before := e.snap(t, cols...)
			m, err := e.svc.Identity.AcceptInvite(ctx, tokens[c.email], wrong)
			wantExact(t, err, errInviteRefused)
			if m != nil || !before.equal(e.snap(t, cols...)) {
				t.Fatalf("%s: a refused acceptance changed the store", c.what)
			}
			answers = append(answers, body(err))
		}
		want := `401 {"error":"UNAUTHORIZED","message":"This password does not accept the invitation; if this address already has a FlagBridge password, enter that one"}`
		if answers[0] != want || answers[1] != want {
			t.Fatalf("wrong-password answers = %q, want both %q", answers, want)
		}

		// (a) chooses its password with a policy-valid one, and joins.
		m, err := e.svc.Identity.AcceptInvite(ctx, tokens["nobody@example.com"], wrong)
		if err != nil {
			t.Fatalf("a new address with a valid password: %v", err)
		}
		if m.OrgID != o.id || m.Email != "nobody@example.com" || m.Role != authz.RoleMember {
			t.Fatalf("joined as %+v", m)
		}
		if l := e.login(t, "nobody@example.com", wrong, ""); l.member.ID != m.ID {
			t.Fatalf("the new member logged in as %+v", l.member)
		}
	})
}

// A rotation's grace period never outlives the key: the old secret of a key
// expiring in a minute, rotated with a 7-day grace, works as long as the key
// and no longer.
func TestRotationGraceEndsWithTheKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		k := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "1m"})
		e.clock.Advance(20 * time.Second)
		r, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: "7d"})
		if err != nil {
			t.Fatal(err)
		}
		expires := t0.Add(time.Minute)
		if !sameTime(r.ExpiresAt, &expires) || !sameTime(r.PreviousValidUntil, r.ExpiresAt) || r.PreviousDigest != k.Digest {
			t.Fatalf("previous_key_valid_until = %s, expires_at = %s; want both %s", fmtTime(r.PreviousValidUntil), fmtTime(r.ExpiresAt), expires)
		}
		stored := e.keyOf(t, o, k.ID)
		if !sameTime(stored.PreviousValidUntil, &expires) {
			t.Fatalf("stored previous_valid_until = %s, want %s", fmtTime(stored.PreviousValidUntil), expires)
		}
		rec := e.lookup(t, k.Secret)
		if rec == nil {
			t.Fatal("the old secret does not work during its grace")
		}
		if until, ok := rec.ValidUntil(k.Digest, expires.Add(-time.Second)); !ok || !until.Equal(expires) {
			t.Fatalf("old secret a second before expiry: %v, %v", until, ok)
		}
		if _, ok := rec.ValidUntil(k.Digest, expires); ok {
			t.Fatal("the old secret works at the key's expiry")
		}
		// A grace period shorter than the key's life is kept as asked.
		long := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "30d"})
		r2, err := e.svc.Keys.RotateKey(ctx, o.root, long.ID, keys.RotateInput{GracePeriod: "7d"})
		if err != nil {
			t.Fatal(err)
		}
		if want := e.clock.Now().Add(7 * 24 * time.Hour); !sameTime(r2.PreviousValidUntil, &want) {
			t.Fatalf("previous_key_valid_until = %s, want %s", fmtTime(r2.PreviousValidUntil), want)
		}
	})
}

// An admin key may be narrowed to one environment of its project (it used
// to be refused): it manages that environment's flags, testing sessions and
// keys, and nothing else of its project.
func TestEnvironmentAdminKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		for _, pe := range [][2]string{{"alpha", "staging"}, {"alpha", "production"}, {"beta", "staging"}} {
			if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, pe[0], pe[1], []byte(overridesDoc), noPre); err != nil {
				t.Fatal(err)
			}
		}
		created, err := e.svc.Keys.CreateKey(ctx, o.root, "alpha", keys.CreateInput{Name: "staging admin", Type: "admin", Environment: "staging"})
		if err != nil {
			t.Fatalf("creating an admin key of one environment: %v", err)
		}
		if created.Type != apikey.Admin || created.Project != "alpha" || created.Environment != "staging" {
			t.Fatalf("created %+v", created.Record)
		}
		// The principal the edge builds from the stored record.
		rec := e.lookup(t, created.Secret)
		if rec == nil || rec.Environment != "staging" {
			t.Fatalf("LookupKey = %+v", rec)
		}
		p := as(rec)

		// Keys made by the root, to be listed or not.
		rootStaging := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "staging"})
		rootProd := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
		rootProject := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"})
		prodTest := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "production"})
		stagingTest := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})

		t.Run("its own environment", func(t *testing.T) {
			if fs, err := e.svc.Flags.GetFlagSet(ctx, p, "alpha", "staging"); err != nil || fs.Version != 1 {
				t.Fatalf("GetFlagSet = %+v, %v", fs, err)
			}
			if _, _, err := e.svc.Flags.GetFlag(ctx, p, "alpha", "staging", "theme"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.svc.Flags.PutFlag(ctx, p, "alpha", "staging", "banner",
				[]byte(`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}`), noPre); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Flags.DeleteFlag(ctx, p, "alpha", "staging", "banner", noPre); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Flags.PutFlagSet(ctx, p, "alpha", "staging", []byte(overridesDoc), noPre); err != nil {
				t.Fatal(err)
			}
			for _, in := range []keys.CreateInput{
				{Name: "live", Type: "live", Environment: "staging"},
				{Name: "test", Type: "test", Environment: "staging"},
				{Name: "admin", Type: "admin", Environment: "staging"},
			} {
				k, err := e.svc.Keys.CreateKey(ctx, p, "alpha", in)
				if err != nil {
					t.Fatalf("CreateKey(%+v): %v", in, err)
				}
				if k.Project != "alpha" || k.Environment != "staging" || k.OwnerID != rec.OwnerID {
					t.Fatalf("created %+v", k.Record)
				}
			}
			// Testing sessions: its own (the environment is its default),
			// and one a test key of the environment opened.
			own := e.session(t, p, flags.CreateSessionInput{})
			if own.Project != "alpha" || own.Environment != "staging" || own.CreatedBy != rec.ID {
				t.Fatalf("session = %+v", own)
			}
			theirs := e.session(t, as(stagingTest.Record), flags.CreateSessionInput{})
			for _, ts := range []*flags.TestingSession{own, theirs} {
				if _, err := e.svc.Flags.SetOverrides(ctx, p, ts.ID, overrides("theme", `"dark"`)); err != nil {
					t.Fatal(err)
				}
				if err := e.svc.Flags.DeleteSession(ctx, p, ts.ID); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.svc.Keys.RotateKey(ctx, p, rootStaging.ID, keys.RotateInput{}); err != nil {
				t.Fatalf("rotating a key of its environment: %v", err)
			}
		})

		t.Run("reads show only its environment", func(t *testing.T) {
			_, envs, err := e.svc.Tenancy.GetProject(ctx, p, "alpha")
			if err != nil {
				t.Fatal(err)
			}
			if len(envs) != 1 || envs[0].Slug != "staging" {
				t.Fatalf("GetProject lists environments %+v, want only staging", envs)
			}
			if envs, err := e.svc.Tenancy.ListEnvironments(ctx, p, "alpha"); err != nil || len(envs) != 1 || envs[0].Slug != "staging" {
				t.Fatalf("ListEnvironments = %+v, %v", envs, err)
			}
			if ps, err := e.svc.Tenancy.ListProjects(ctx, p); err != nil || len(ps) != 1 || ps[0].Slug != "alpha" {
				t.Fatalf("ListProjects = %+v, %v", ps, err)
			}
			listed, err := e.svc.Keys.ListKeys(ctx, p, "alpha")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range listed {
				if k.Environment != "staging" || k.Project != "alpha" {
					t.Errorf("ListKeys lists %s of %s/%s", k.ID, k.Project, k.Environment)
				}
				got = append(got, k.ID)
			}
			for _, id := range []string{created.ID, rootStaging.ID, stagingTest.ID} {
				if !slices.Contains(got, id) {
					t.Errorf("ListKeys lacks %s of its environment", id)
				}
			}
			for _, id := range []string{rootProd.ID, rootProject.ID, prodTest.ID} {
				if slices.Contains(got, id) {
					t.Errorf("ListKeys lists %s, outside its environment", id)
				}
			}
			visible, err := e.svc.Keys.ListVisibleKeys(ctx, p)
			if err != nil || len(visible) != len(listed) {
				t.Fatalf("ListVisibleKeys = %d keys, %v; want the %d of its environment", len(visible), err, len(listed))
			}
		})

		t.Run("refused elsewhere", func(t *testing.T) {
			otherEnv := func(verb string) *apierror.Error {
				return apierror.Forbidden(`This key belongs to environment "staging" and cannot %s environment "production"`, verb)
			}
			wholeProject := func(verb string) *apierror.Error {
				return apierror.Forbidden(`This key belongs to environment "staging" and cannot %s the whole project "alpha"`, verb)
			}
			prodSession := e.session(t, as(prodTest.Record), flags.CreateSessionInput{})
			before := e.snap(t, append(keyCols(o.id), flagCol(o, "alpha"), sessCol(o.id), "environments/"+o.id+"/alpha", "projects/"+o.id)...)
			for _, c := range []struct {
				what string
				err  error
				want *apierror.Error
			}{
				{"read another environment's flags", func() error {
					_, err := e.svc.Flags.GetFlagSet(ctx, p, "alpha", "production")
					return err
				}(), otherEnv("access")},
				{"write another environment's flags", func() error {
					_, _, err := e.svc.Flags.PutFlag(ctx, p, "alpha", "production", "theme",
						[]byte(`{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a"}`), noPre)
					return err
				}(), otherEnv("access")},
				{"replace another environment's flags", func() error {
					_, err := e.svc.Flags.PutFlagSet(ctx, p, "alpha", "production", []byte(`{"flags":{}}`), noPre)
					return err
				}(), otherEnv("access")},
				{"delete another environment's flag", func() error {
					_, err := e.svc.Flags.DeleteFlag(ctx, p, "alpha", "production", "theme", noPre)
					return err
				}(), otherEnv("access")},
				{"read another project's flags", func() error {
					_, err := e.svc.Flags.GetFlagSet(ctx, p, "beta", "staging")
					return err
				}(), apierror.Forbidden(`This key belongs to project "alpha" and cannot access project "beta"`)},
				{"open a session in another environment", func() error {
					_, err := e.svc.Flags.CreateSession(ctx, p, flags.CreateSessionInput{Environment: "production"})
					return err
				}(), otherEnv("open testing sessions in")},
				{"change a session of another environment", func() error {
					_, err := e.svc.Flags.SetOverrides(ctx, p, prodSession.ID, overrides("theme", `"dark"`))
					return err
				}(), sessionNotFound(prodSession.ID)},
				{"end a session of another environment", e.svc.Flags.DeleteSession(ctx, p, prodSession.ID), sessionNotFound(prodSession.ID)},
				{"use a session of another environment", func() error {
					_, err := e.svc.Flags.UseSession(ctx, p, prodSession.ID, refOf(p, "alpha", "production"))
					return err
				}(), sessionNotFound(prodSession.ID)},
				{"create an environment", func() error {
					_, err := e.svc.Tenancy.CreateEnvironment(ctx, p, "alpha", tenancy.CreateEnvironmentInput{Slug: "qa"})
					return err
				}(), wholeProject("add environments to")},
				{"delete the project", e.svc.DeleteProject(ctx, p, "alpha"), wholeProject("delete")},
				{"create a project-wide admin key", func() error {
					_, err := e.svc.Keys.CreateKey(ctx, p, "alpha", keys.CreateInput{Name: "n", Type: "admin"})
					return err
				}(), wholeProject("create a key for")},
				{"create a key in another environment", func() error {
					_, err := e.svc.Keys.CreateKey(ctx, p, "alpha", keys.CreateInput{Name: "n", Type: "live", Environment: "production"})
					return err
				}(), otherEnv("create a key for")},
				{"create an admin key of another environment", func() error {
					_, err := e.svc.Keys.CreateKey(ctx, p, "alpha", keys.CreateInput{Name: "n", Type: "admin", Environment: "production"})
					return err
				}(), otherEnv("create a key for")},
				{"create a key in another project", func() error {
					_, err := e.svc.Keys.CreateKey(ctx, p, "beta", keys.CreateInput{Name: "n", Type: "live", Environment: "staging"})
					return err
				}(), apierror.Forbidden(`This key belongs to project "alpha" and cannot create keys in project "beta"`)},
				{"read a key of another environment", func() error {
					_, err := e.svc.Keys.GetKey(ctx, p, rootProd.ID)
					return err
				}(), otherEnv("manage keys of")},
				{"rotate a key of another environment", func() error {
					_, err := e.svc.Keys.RotateKey(ctx, p, rootProd.ID, keys.RotateInput{})
					return err
				}(), otherEnv("manage keys of")},
				{"revoke the project's admin key", func() error {
					_, err := e.svc.Keys.RevokeKey(ctx, p, rootProject.ID)
					return err
				}(), wholeProject("manage keys of")},
			} {
				if c.err == nil {
					t.Errorf("%s: allowed", c.what)
					continue
				}
				if ae := apiErr(t, c.err); ae.Status != c.want.Status || ae.Code != c.want.Code || ae.Message != c.want.Message {
					t.Errorf("%s: %v, want %v", c.what, ae, c.want)
				}
			}
			if !before.equal(e.snap(t, append(keyCols(o.id), flagCol(o, "alpha"), sessCol(o.id), "environments/"+o.id+"/alpha", "projects/"+o.id)...)) {
				t.Fatal("a refused operation of the environment key changed the store")
			}
			if rec := e.lookup(t, rootProd.Secret); rec == nil || rec.Digest != rootProd.Digest {
				t.Fatal("a refused rotation changed the production key")
			}
		})
	})
}

// An organization may have at most flags.MaxSessionsPerOrg testing sessions
// open; other organizations are not affected, and an organization's
// sessions are invisible to the others. (A thousand sessions, each in its
// own transaction, take a few seconds on either backend.)
func TestTestingSessionsBoundedPerOrganization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.newOrg(t, "alpha")
		b := e.newOrg(t, "alpha")
		aTest := as(e.mint(t, a.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"}).Record)
		bTest := as(e.mint(t, b.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"}).Record)

		var first, last *flags.TestingSession
		for i := range flags.MaxSessionsPerOrg {
			ts := e.session(t, aTest, flags.CreateSessionInput{TTL: "10m"})
			if i == 0 {
				first = ts
			}
			last = ts
		}
		full := apierror.Conflict("the organization has %d open testing sessions, the most it may have; end some (DELETE /v1/testing/sessions/{id}) or let them expire", flags.MaxSessionsPerOrg)
		before := e.snap(t, sessCol(a.id))
		_, err := e.svc.Flags.CreateSession(ctx, aTest, flags.CreateSessionInput{})
		wantExact(t, err, full)
		// Another key of the organization is bound the same.
		_, err = e.svc.Flags.CreateSession(ctx, a.root, flags.CreateSessionInput{Project: "alpha", Environment: "production"})
		wantExact(t, err, full)
		if !before.equal(e.snap(t, sessCol(a.id))) {
			t.Fatal("a refused CreateSession stored a session")
		}
		// Another organization is not.
		theirs := e.session(t, bTest, flags.CreateSessionInput{})

		// Sessions are invisible across organizations.
		for _, c := range []*authz.Principal{bTest, b.root} {
			_, err := e.svc.Flags.SetOverrides(ctx, c, last.ID, overrides())
			wantExact(t, err, sessionNotFound(last.ID))
			wantExact(t, e.svc.Flags.DeleteSession(ctx, c, last.ID), sessionNotFound(last.ID))
			_, err = e.svc.Flags.UseSession(ctx, c, last.ID, refOf(c, "alpha", "staging"))
			wantExact(t, err, sessionNotFound(last.ID))
		}
		for _, c := range []*authz.Principal{aTest, a.root} {
			_, err := e.svc.Flags.UseSession(ctx, c, theirs.ID, refOf(c, "alpha", "staging"))
			wantExact(t, err, sessionNotFound(theirs.ID))
		}
		if !before.equal(e.snap(t, sessCol(a.id))) {
			t.Fatal("another organization changed a session")
		}

		// Ending one makes room for one.
		if err := e.svc.Flags.DeleteSession(ctx, aTest, first.ID); err != nil {
			t.Fatal(err)
		}
		e.session(t, aTest, flags.CreateSessionInput{})
		_, err = e.svc.Flags.CreateSession(ctx, aTest, flags.CreateSessionInput{})
		wantExact(t, err, full)
		// Expired sessions count until the sweep deletes them.
		e.clock.Advance(10 * time.Minute)
		_, err = e.svc.Flags.CreateSession(ctx, aTest, flags.CreateSessionInput{})
		wantExact(t, err, full)
		if n, err := e.svc.Flags.SweepSessions(ctx); err != nil || n != flags.MaxSessionsPerOrg-1 {
			t.Fatalf("SweepSessions = %d, %v; want %d", n, err, flags.MaxSessionsPerOrg-1)
		}
		e.session(t, aTest, flags.CreateSessionInput{})
	})
}

// An organization may have at most identity.MaxPendingInvites invitations
// waiting; accepting one, or its expiry, makes room.
func TestPendingInvitesBoundedPerOrganization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t)
		other := e.newOrg(t)
		var firstToken string
		for i := range identity.MaxPendingInvites {
			tok, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: fmt.Sprintf("p%d@example.com", i), Name: "P"})
			if err != nil {
				t.Fatalf("invitation %d: %v", i, err)
			}
			if i == 0 {
				firstToken = tok
			}
		}
		full := apierror.Conflict("the organization has %d pending invitations, the most it may have; they expire after 7 days", identity.MaxPendingInvites)
		before := e.snap(t, memberCols(o.id)...)
		_, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "one-more@example.com", Name: "One more"})
		wantExact(t, err, full)
		if !before.equal(e.snap(t, memberCols(o.id)...)) {
			t.Fatal("a refused invitation was stored")
		}
		if n := len(e.ids(t, "invites-of/"+o.id)); n != identity.MaxPendingInvites {
			t.Fatalf("%d invitations indexed, want %d", n, identity.MaxPendingInvites)
		}
		// Another organization is not bound by this one's invitations.
		if _, _, err := e.svc.Identity.InviteMember(ctx, other.root, identity.InviteInput{Email: "one-more@example.com", Name: "One more"}); err != nil {
			t.Fatal(err)
		}
		// Accepting one makes room for one.
		if _, err := e.svc.Identity.AcceptInvite(ctx, firstToken, adaPassword); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "one-more@example.com", Name: "One more"}); err != nil {
			t.Fatalf("after an acceptance: %v", err)
		}
		_, _, err = e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "two-more@example.com", Name: "Two more"})
		wantExact(t, err, full)
		// Expired invitations leave with the sweep.
		e.clock.Advance(identity.InviteTTL)
		if err := e.svc.Identity.SweepLoginSessions(ctx); err != nil {
			t.Fatal(err)
		}
		if ids := e.ids(t, "invites-of/"+o.id); len(ids) != 0 {
			t.Fatalf("%d invitations indexed after they expired", len(ids))
		}
		if _, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "two-more@example.com", Name: "Two more"}); err != nil {
			t.Fatalf("after the sweep: %v", err)
		}
	})
}

// A member has at most identity.MaxSessionsPerMember login sessions:
// logging in once more ends the oldest and keeps the newest.
func TestLoginSessionsBoundedPerMember(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		var logins []loginResult
		for range identity.MaxSessionsPerMember + 2 {
			// A second apart, so that "oldest" is well defined.
			e.clock.Advance(time.Second)
			logins = append(logins, e.login(t, o.email, ownerPassword, ""))
		}
		ended, kept := logins[:2], logins[2:]
		for _, l := range ended {
			sessionGone(t, e.svc, l.token)
			if _, ok := e.doc(t, "login-sessions", digestOf(l.token)); ok {
				t.Fatal("an ended session is still stored")
			}
		}
		var want []string
		for _, l := range kept {
			sessionOK(t, e.svc, l.token, &o.owner)
			want = append(want, digestOf(l.token))
		}
		slices.Sort(want)
		if got := e.ids(t, "login-sessions"); !slices.Equal(got, want) {
			t.Fatalf("login sessions = %q, want the %d newest %q", got, len(want), want)
		}
		if got := e.ids(t, "login-sessions-of/"+o.id+"/"+o.owner.ID); !slices.Equal(got, want) {
			t.Fatalf("the member's session index = %q, want %q", got, want)
		}
		// Another member's sessions are not ended by this one's logins.
		ada := e.join(t, o.root, "ada@example.com", authz.RoleAdmin, adaPassword)
		adaLogin := e.login(t, "ada@example.com", adaPassword, "")
		e.clock.Advance(time.Second)
		e.login(t, o.email, ownerPassword, "")
		sessionOK(t, e.svc, adaLogin.token, ada)
		sessionGone(t, e.svc, kept[0].token)
	})
}

// A Scoped key limited to p1 cannot open a testing session in p2, nor see,
// change or end one that p2's own test key opened.
func TestScopedKeyTestingSessions(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "p1", "p2")
		for _, p := range []string{"p1", "p2"} {
			if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, p, "staging", []byte(overridesDoc), noPre); err != nil {
				t.Fatal(err)
			}
		}
		scoped := as(e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Resources: []string{"p1"}}).Record)
		p2Test := as(e.mint(t, o.root, "p2", keys.CreateInput{Type: "test", Environment: "staging"}).Record)
		ts := e.session(t, p2Test, flags.CreateSessionInput{})
		if _, err := e.svc.Flags.SetOverrides(ctx, p2Test, ts.ID, overrides("theme", `"dark"`)); err != nil {
			t.Fatal(err)
		}
		before := e.snap(t, sessCol(o.id))

		_, err := e.svc.Flags.CreateSession(ctx, scoped, flags.CreateSessionInput{Project: "p2", Environment: "staging"})
		wantExact(t, err, apierror.Forbidden(`This key is limited to projects [p1] and cannot open testing sessions in project "p2"`))
		_, err = e.svc.Flags.SetOverrides(ctx, scoped, ts.ID, overrides("theme", `"light"`))
		wantExact(t, err, sessionNotFound(ts.ID))
		wantExact(t, e.svc.Flags.DeleteSession(ctx, scoped, ts.ID), sessionNotFound(ts.ID))
		_, err = e.svc.Flags.UseSession(ctx, scoped, ts.ID, refOf(scoped, "p2", "staging"))
		wantExact(t, err, sessionNotFound(ts.ID))
		if !before.equal(e.snap(t, sessCol(o.id))) {
			t.Fatal("the Scoped key changed p2's sessions")
		}
		got, err := e.svc.Flags.UseSession(ctx, p2Test, ts.ID, refOf(p2Test, "p2", "staging"))
		if err != nil || overridesText(got.Overrides) != `theme="dark"` {
			t.Fatalf("p2's session after the refusals: %+v, %v", got, err)
		}

		// In its own project it may.
		own := e.session(t, scoped, flags.CreateSessionInput{Project: "p1", Environment: "staging"})
		if _, err := e.svc.Flags.SetOverrides(ctx, scoped, own.ID, overrides("theme", `"dark"`)); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Flags.DeleteSession(ctx, scoped, own.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// The oldest session is the one ended even when the logins fall within one
// second, whatever their fractions of a second (a whole second included).
func TestLoginSessionsEndTheOldestWithinASecond(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		// t0 is a whole second; the others fall within it, some at
		// fractions with trailing zeros.
		offsets := []time.Duration{0, 100 * time.Millisecond, 120 * time.Millisecond, 123 * time.Millisecond,
			123400 * time.Microsecond, 123450 * time.Microsecond, 500 * time.Millisecond, 505 * time.Millisecond,
			550 * time.Millisecond, 555 * time.Millisecond, 900 * time.Millisecond, 999999999}
		var logins []loginResult
		for _, d := range offsets {
			e.clock.Set(t0.Add(d))
			logins = append(logins, e.login(t, o.email, ownerPassword, ""))
		}
		n := len(offsets) - identity.MaxSessionsPerMember
		for i, l := range logins {
			if i < n {
				sessionGone(t, e.svc, l.token)
			} else {
				sessionOK(t, e.svc, l.token, &o.owner)
			}
		}
	})
}

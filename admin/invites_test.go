package admin_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
)

var errNoInvite = apierror.New(http.StatusNotFound, apierror.CodeNotFound, "This invitation does not exist, was used already or has expired")

// errInviteRefused is the one answer to every policy-valid password that
// does not accept an invitation, whatever the address has elsewhere.
var errInviteRefused = apierror.New(http.StatusUnauthorized, apierror.CodeUnauthorized,
	"This password does not accept the invitation; if this address already has a FlagBridge password, enter that one")

// principalOf is the principal of a dashboard session of m (ForMember
// needs no stored session, so this costs no login).
func principalOf(m *identity.Member) *authz.Principal {
	return authz.ForMember(m.OrgID, m.ID, m.Role)
}

// memberCols are the collections that hold an organization's people,
// with the per-organization indexes of its invitations.
func memberCols(orgID string) []string {
	return []string{"members/" + orgID, "member-emails/" + orgID, "accounts", "invites", "invites-of/" + orgID, "login-sessions"}
}

func TestInviteAuthorization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		ada := e.join(t, o.root, "ada@example.com", authz.RoleAdmin, adaPassword)
		mem := e.join(t, o.root, "max@example.com", authz.RoleMember, maxPassword)
		// A key with WRITE whose owner is a MEMBER (an operator can mint one
		// with bootstrap --new-key --email).
		maxKey, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OwnerEmail: "max@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		projectAdmin := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"}).Record)
		scoped := as(e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Resources: []string{"alpha"}}).Record)
		readOnly := as(e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Permissions: []string{"READ"}}).Record)
		testKey := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"}).Record)
		ownerSession := principalOf(&identity.Member{ID: o.root.Member, OrgID: o.id, Role: authz.RoleOwner, Email: "owner@example.com"})
		adminSession, memberSession := principalOf(ada), principalOf(mem)

		nothingWritten := func(before snapshot, what string) {
			t.Helper()
			if !before.equal(e.snap(t, memberCols(o.id)...)) {
				t.Fatalf("%s was refused but changed the store", what)
			}
		}
		in := identity.InviteInput{Email: "new@example.com", Name: "New", Role: "MEMBER"}
		for _, c := range []struct {
			what   string
			caller *authz.Principal
			in     identity.InviteInput
			status int
			parts  []string
		}{
			{"no key", nil, in, 401, []string{"Invalid or expired API key"}},
			{"a MEMBER's session", memberSession, in, 403, []string{"read-only"}},
			{"a MEMBER's WRITE key", maxKey.Principal, in, 403, []string{"Only owners and admins manage members"}},
			{"a project's admin key", projectAdmin, in, 403, []string{`This key belongs to project "alpha" and cannot manage the members of the whole organization; use an organization-wide admin key`, "the whole organization"}},
			{"a Scoped key", scoped, in, 403, []string{"This key is limited to projects [alpha] and cannot manage the members of the whole organization", "the whole organization"}},
			{"a read-only key", readOnly, in, 403, []string{"read-only"}},
			{"a test key", testKey, in, 403, []string{"key type"}},
			{"an admin inviting an owner", adminSession, identity.InviteInput{Email: "boss@example.com", Name: "Boss", Role: "OWNER"}, 403,
				[]string{"Only owners invite owners"}},
			{"an existing member", o.root, identity.InviteInput{Email: " ADA@example.com ", Name: "Ada"}, 409, []string{"already a member"}},
			{"the owner", adminSession, identity.InviteInput{Email: "owner@EXAMPLE.com", Name: "Owner"}, 409, []string{"already a member"}},
			{"no address", o.root, identity.InviteInput{Name: "X"}, 400, []string{"email is required"}},
			{"a bad address", o.root, identity.InviteInput{Email: "not-an-address", Name: "X"}, 400, []string{"not an e-mail address"}},
			{"an address with a space", o.root, identity.InviteInput{Email: "a b@example.com", Name: "X"}, 400, []string{"not an e-mail address"}},
			{"an address without a domain", o.root, identity.InviteInput{Email: "x@", Name: "X"}, 400, []string{"not an e-mail address"}},
			{"no name", o.root, identity.InviteInput{Email: "x@example.com"}, 400, []string{"name is required"}},
			{"a bad role", o.root, identity.InviteInput{Email: "x@example.com", Name: "X", Role: "ROOT"}, 400, []string{"role", "ROOT"}},
		} {
			before := e.snap(t, memberCols(o.id)...)
			token, inv, err := e.svc.Identity.InviteMember(ctx, c.caller, c.in)
			if err == nil {
				t.Fatalf("%s: InviteMember succeeded", c.what)
			}
			ae := apiErr(t, err)
			if ae.Status != c.status {
				t.Fatalf("%s: %v, want status %d", c.what, ae, c.status)
			}
			for _, p := range c.parts {
				if !strings.Contains(ae.Message, p) {
					t.Fatalf("%s: message %q does not mention %q", c.what, ae.Message, p)
				}
			}
			if token != "" || inv != nil {
				t.Fatalf("%s: refused InviteMember returned %q %+v", c.what, token, inv)
			}
			nothingWritten(before, c.what)
		}

		for _, c := range []struct {
			caller *authz.Principal
			role   string
			want   authz.Role
		}{
			{o.root, "OWNER", authz.RoleOwner},
			{ownerSession, "owner", authz.RoleOwner},
			{o.root, "ADMIN", authz.RoleAdmin},
			{adminSession, " admin ", authz.RoleAdmin},
			{adminSession, "MEMBER", authz.RoleMember},
			{adminSession, "", authz.RoleMember},
		} {
			e.clock.Advance(time.Second)
			email := "New." + strings.ToLower(string(c.want)) + "@Example.com"
			token, inv, err := e.svc.Identity.InviteMember(ctx, c.caller, identity.InviteInput{Email: " " + email + " ", Name: " New ", Role: c.role})
			if err != nil {
				t.Fatalf("InviteMember(role %q) by %s: %v", c.role, c.caller.ID, err)
			}
			want := identity.Invite{OrgID: o.id, Email: email, Name: "New", Role: c.want, InvitedBy: c.caller.Member,
				ExpiresAt: e.clock.Now().Add(identity.InviteTTL)}
			if *inv != want || token == "" {
				t.Fatalf("invite = %+v, want %+v", *inv, want)
			}
			if _, ok := e.doc(t, "invites", digestOf(token)); !ok {
				t.Fatal("invitation not stored under its token's digest")
			}
		}
	})
}

func TestInviteTokens(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		res, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OrgName: "Acme Inc", OwnerEmail: "owner@example.com", OwnerName: "Owner"})
		if err != nil {
			t.Fatal(err)
		}
		a, invA, err := e.svc.Identity.InviteMember(ctx, res.Principal, identity.InviteInput{Email: "a@example.com", Name: "A", Role: "ADMIN"})
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := e.svc.Identity.InviteMember(ctx, res.Principal, identity.InviteInput{Email: "a@example.com", Name: "A again"})
		if err != nil {
			t.Fatalf("a second invitation to the same address: %v", err)
		}
		for _, tok := range []string{a, b} {
			if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != 32 {
				t.Fatalf("invitation token %q is not 32 random bytes in URL-safe base64", tok)
			}
		}
		if a == b {
			t.Fatal("two invitations share a token")
		}
		want := []string{digestOf(a), digestOf(b)}
		slices.Sort(want)
		if got := e.ids(t, "invites"); !slices.Equal(got, want) {
			t.Fatalf("invites = %q, want the tokens' digests %q", got, want)
		}
		raw := e.raw(t)
		for _, tok := range []string{a, b} {
			if bytes.Contains(raw, []byte(tok)) {
				t.Fatal("the backend holds an invitation token")
			}
			if !bytes.Contains(raw, []byte(digestOf(tok))) {
				t.Fatal("the backend dump lacks an invitation digest: it is not a real dump")
			}
		}

		inv, orgName, err := e.svc.Identity.InviteInfo(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if *inv != *invA || orgName != "Acme Inc" || inv.Email != "a@example.com" || inv.Role != authz.RoleAdmin ||
			!inv.ExpiresAt.Equal(t0.Add(identity.InviteTTL)) || inv.InvitedBy != res.Owner.ID {
			t.Fatalf("InviteInfo = %+v %q", inv, orgName)
		}
		for _, bad := range []string{"", "garbage", digestOf(a), a[:len(a)-1], a + "x"} {
			inv, name, err := e.svc.Identity.InviteInfo(ctx, bad)
			wantExact(t, err, errNoInvite)
			if inv != nil || name != "" {
				t.Fatalf("InviteInfo(%q) = %+v %q", bad, inv, name)
			}
			_, err = e.svc.Identity.AcceptInvite(ctx, bad, adaPassword)
			wantExact(t, err, errNoInvite)
		}
	})
}

func TestAcceptInvite(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t)
		token, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "New.Person@Example.com", Name: "New Person", Role: "ADMIN"})
		if err != nil {
			t.Fatal(err)
		}

		// A new account must choose a password the policy accepts.
		for _, pw := range []string{"", "too short", strings.Repeat(" ", 20), strings.Repeat("x", 257)} {
			before := e.snap(t, memberCols(o.id)...)
			m, err := e.svc.Identity.AcceptInvite(ctx, token, pw)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "password")
			if m != nil || !before.equal(e.snap(t, memberCols(o.id)...)) {
				t.Fatalf("AcceptInvite with the password %q was refused but changed the store", pw)
			}
		}
		if _, ok := e.doc(t, "accounts", "new.person@example.com"); ok {
			t.Fatal("a refused acceptance made an account")
		}

		e.clock.Advance(time.Hour)
		m, err := e.svc.Identity.AcceptInvite(ctx, token, adaPassword)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.ID, "mem_") || m.OrgID != o.id || m.Email != "New.Person@Example.com" || m.Name != "New Person" ||
			m.Role != authz.RoleAdmin || !m.CreatedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("member = %+v", m)
		}
		if got, err := e.svc.Identity.MemberByID(ctx, o.id, m.ID); err != nil || got == nil || *got != *m {
			t.Fatalf("MemberByID = %+v, %v", got, err)
		}
		if ids := e.ids(t, "invites"); len(ids) != 0 {
			t.Fatalf("the used invitation is still stored: %q", ids)
		}
		acct, _ := e.account(t, "new.person@example.com")
		checkPHC(t, acct.PasswordHash)
		if len(acct.Memberships) != 1 || !bytes.Contains(e.raw(t), []byte(m.ID)) {
			t.Fatalf("account = %+v", acct)
		}
		if bytes.Contains(e.raw(t), []byte(adaPassword)) {
			t.Fatal("the backend holds the password chosen on acceptance")
		}
		if _, ok := e.doc(t, "member-emails/"+o.id, "new.person@example.com"); !ok {
			t.Fatal("the member's address is not indexed")
		}

		// Used once only.
		before := e.snap(t, memberCols(o.id)...)
		_, err = e.svc.Identity.AcceptInvite(ctx, token, adaPassword)
		wantExact(t, err, errNoInvite)
		_, _, err = e.svc.Identity.InviteInfo(ctx, token)
		wantExact(t, err, errNoInvite)
		if !before.equal(e.snap(t, memberCols(o.id)...)) {
			t.Fatal("accepting a used invitation changed the store")
		}
		if l := e.login(t, "new.person@example.com", adaPassword, ""); l.member.ID != m.ID || l.sess.OrgID != o.id {
			t.Fatalf("the new member logged in as %+v", l.member)
		}

		// An invitation works until exactly InviteTTL after it was made.
		early, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "early@example.com", Name: "Early"})
		if err != nil {
			t.Fatal(err)
		}
		late, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "late@example.com", Name: "Late"})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(identity.InviteTTL - time.Second)
		if _, _, err := e.svc.Identity.InviteInfo(ctx, late); err != nil {
			t.Fatalf("InviteInfo a second before expiry: %v", err)
		}
		if m, err := e.svc.Identity.AcceptInvite(ctx, early, maxPassword); err != nil || m.Role != authz.RoleMember {
			t.Fatalf("AcceptInvite a second before expiry = %+v, %v", m, err)
		}
		e.clock.Advance(time.Second)
		before = e.snap(t, memberCols(o.id)...)
		_, _, err = e.svc.Identity.InviteInfo(ctx, late)
		wantExact(t, err, errNoInvite)
		_, err = e.svc.Identity.AcceptInvite(ctx, late, maxPassword)
		wantExact(t, err, errNoInvite)
		if !before.equal(e.snap(t, memberCols(o.id)...)) {
			t.Fatal("accepting an expired invitation changed the store")
		}
	})
}

// An address that already has a password (a member of another
// organization) accepts with that password, which stays as it is: a leaked
// invitation cannot take over somebody's login.
func TestAcceptInviteExistingAccount(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.orgWithPassword(t, "A", "alice@example.com", ownerPassword)
		e.clock.Advance(time.Second)
		b := e.newOrg(t)
		token, _, err := e.svc.Identity.InviteMember(ctx, b.root, identity.InviteInput{Email: "ALICE@example.com", Name: "Alice in B", Role: "ADMIN"})
		if err != nil {
			t.Fatal(err)
		}

		// The policy comes first, for everyone: an empty password is a 400.
		// Every other wrong password gets the one 401.
		for _, pw := range []string{"", "a brand new password", strings.ToUpper(ownerPassword)} {
			before := e.snap(t, memberCols(b.id)...)
			m, err := e.svc.Identity.AcceptInvite(ctx, token, pw)
			if pw == "" {
				wantExact(t, err, apierror.Invalid("password must be at least %d characters", identity.MinPasswordLen))
			} else {
				wantExact(t, err, errInviteRefused)
			}
			if m != nil || !before.equal(e.snap(t, memberCols(b.id)...)) {
				t.Fatalf("AcceptInvite with the wrong password %q changed the store", pw)
			}
		}
		acct, _ := e.account(t, "alice@example.com")
		m, err := e.svc.Identity.AcceptInvite(ctx, token, ownerPassword)
		if err != nil {
			t.Fatal(err)
		}
		if m.OrgID != b.id || m.Role != authz.RoleAdmin || m.Email != "ALICE@example.com" || m.Name != "Alice in B" {
			t.Fatalf("member = %+v", m)
		}
		after, _ := e.account(t, "alice@example.com")
		if after.PasswordHash != acct.PasswordHash {
			t.Fatal("accepting an invitation changed the existing password")
		}
		if len(after.Memberships) != 2 {
			t.Fatalf("memberships = %+v", after.Memberships)
		}

		// Login picks the membership asked for, else the first.
		if l := e.login(t, "alice@example.com", ownerPassword, b.id); l.sess.OrgID != b.id || l.member.ID != m.ID || l.member.Role != authz.RoleAdmin {
			t.Fatalf("Login(preferOrg B) = %+v / %+v", l.sess, l.member)
		}
		for _, prefer := range []string{a.id, "", "org_unknown"} {
			if l := e.login(t, "alice@example.com", ownerPassword, prefer); l.sess.OrgID != a.id || l.member.ID != a.owner.ID {
				t.Fatalf("Login(preferOrg %q) = %+v / %+v", prefer, l.sess, l.member)
			}
		}
	})
}

// An address that is a member somewhere but has no password yet cannot
// be given one by whoever holds an invitation: otherwise anyone who can
// invite (an admin of any organization) could choose the password of
// another organization's owner and log in as them.
func TestAcceptInviteCannotSetAnotherMembersPassword(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Carol owns organization C and has never set a password.
		c, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OrgName: "C", OwnerEmail: "carol@example.com", OwnerName: "Carol"})
		if err != nil {
			t.Fatal(err)
		}
		// Mallory owns organization M, invites Carol and keeps the link.
		m := e.newOrg(t)
		token, _, err := e.svc.Identity.InviteMember(ctx, m.root, identity.InviteInput{Email: "carol@example.com", Name: "Carol", Role: "MEMBER"})
		if err != nil {
			t.Fatal(err)
		}
		const chosen = "mallory's choice"
		before := e.snap(t, append(memberCols(m.id), "members/"+c.Organization.ID)...)
		got, err := e.svc.Identity.AcceptInvite(ctx, token, chosen)
		// Refused as a wrong password is (it used to be a 409 telling that
		// the address has no password).
		wantExact(t, err, errInviteRefused)
		if got != nil || !before.equal(e.snap(t, append(memberCols(m.id), "members/"+c.Organization.ID)...)) {
			t.Fatal("the refused acceptance changed the store")
		}
		_, _, _, err = e.svc.Identity.Login(ctx, "carol@example.com", chosen, "")
		wantExact(t, err, errBadLogin)

		// Once Carol's password is set (by an operator), she accepts with it.
		if err := e.svc.Identity.SetPassword(ctx, "carol@example.com", ownerPassword); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Identity.AcceptInvite(ctx, token, chosen)
		wantExact(t, err, errInviteRefused)
		joined, err := e.svc.Identity.AcceptInvite(ctx, token, ownerPassword)
		if err != nil {
			t.Fatal(err)
		}
		if joined.OrgID != m.id || joined.Role != authz.RoleMember {
			t.Fatalf("member = %+v", joined)
		}
	})
}

func TestRemoveMember(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Ada is the owner of organization P, with a password, and an
		// admin of organization o.
		p := e.orgWithPassword(t, "P", "ada@example.com", adaPassword)
		o := e.orgWithPassword(t, "O", "owner@example.com", ownerPassword, "alpha")
		ownerSession := principalOf(&o.owner)
		ada := e.join(t, o.root, "ada@example.com", authz.RoleAdmin, adaPassword)
		adam := e.join(t, o.root, "adam@example.com", authz.RoleAdmin, "adam's password")
		mem := e.join(t, o.root, "max@example.com", authz.RoleMember, maxPassword)
		second := e.join(t, o.root, "second@example.com", authz.RoleOwner, "second owner's password")

		// Ada's keys: made by her session, by a key she made, and one
		// rotated with a grace period (two live secrets).
		adaSession := principalOf(ada)
		ka1 := e.mint(t, adaSession, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
		ka2 := e.mint(t, adaSession, "", keys.CreateInput{Type: "admin"})
		ka3 := e.mint(t, as(ka2.Record), "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
		rotated, err := e.svc.Keys.RotateKey(ctx, adaSession, ka1.ID, keys.RotateInput{GracePeriod: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []*keys.Created{ka1, ka2, ka3} {
			if k.OwnerID != ada.ID {
				t.Fatalf("key %s is owned by %q, not Ada", k.ID, k.OwnerID)
			}
		}
		kr := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
		km := e.mint(t, principalOf(adam), "alpha", keys.CreateInput{Type: "live", Environment: "staging"})
		adaInO := e.login(t, "ada@example.com", adaPassword, o.id)
		adaInP := e.login(t, "ada@example.com", adaPassword, p.id)
		maxLogin := e.login(t, "max@example.com", maxPassword, "")
		if adaInO.sess.OrgID != o.id || adaInP.sess.OrgID != p.id {
			t.Fatal("test setup: Ada's sessions are not in O and P")
		}

		// Refusals change nothing.
		projectAdmin := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"}).Record)
		scoped := as(e.mint(t, o.root, "", keys.CreateInput{Type: "admin", Resources: []string{"alpha"}}).Record)
		cols := append(memberCols(o.id), keyCols(o.id)...)
		for _, c := range []struct {
			what   string
			caller *authz.Principal
			id     string
			status int
			part   string
		}{
			{"a MEMBER", principalOf(mem), ada.ID, 403, "read-only"},
			{"a MEMBER removing themselves", principalOf(mem), mem.ID, 403, "read-only"},
			{"a project's admin key", projectAdmin, mem.ID, 403, `This key belongs to project "alpha" and cannot manage the members of the whole organization; use an organization-wide admin key`},
			{"a Scoped key", scoped, mem.ID, 403, "This key is limited to projects [alpha] and cannot manage the members of the whole organization"},
			{"an admin removing an owner", principalOf(adam), second.ID, 403, "Only owners remove owners"},
			{"an admin removing the first owner", principalOf(adam), o.owner.ID, 403, "Only owners remove owners"},
			{"a member of another organization", p.root, ada.ID, 404, ada.ID},
			{"an unknown member", o.root, "mem_nope", 404, "mem_nope"},
		} {
			before := e.snap(t, cols...)
			err := e.svc.Identity.RemoveMember(ctx, c.caller, c.id)
			if err == nil {
				t.Fatalf("%s: RemoveMember succeeded", c.what)
			}
			if ae := apiErr(t, err); ae.Status != c.status || !strings.Contains(ae.Message, c.part) {
				t.Fatalf("%s: %v, want %d mentioning %q", c.what, ae, c.status, c.part)
			}
			if !before.equal(e.snap(t, cols...)) {
				t.Fatalf("%s: a refused RemoveMember changed the store", c.what)
			}
		}

		// Removing Ada revokes every key she owns (and tells every
		// instance), ends her sessions in O, and forgets her membership.
		f := e.subscribe(t)
		e.clock.Advance(time.Minute)
		if err := e.svc.Identity.RemoveMember(ctx, principalOf(adam), ada.ID); err != nil {
			t.Fatal(err)
		}
		f.expect(t, ka1.ID, ka2.ID, ka3.ID)
		f.expectQuiet(t, e, o.org, "alpha")
		for _, secret := range []string{ka1.Secret, rotated.Secret, ka2.Secret, ka3.Secret} {
			if rec := e.lookup(t, secret); rec != nil {
				t.Fatalf("a key of the removed member still authenticates: %+v", rec)
			}
		}
		for _, k := range []*keys.Created{ka1, ka2, ka3} {
			got, err := e.svc.Keys.GetKey(ctx, o.root, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.RevokedAt == nil || !got.RevokedAt.Equal(e.clock.Now()) {
				t.Fatalf("key %s: revoked at %s, want %s", k.ID, fmtTime(got.RevokedAt), e.clock.Now())
			}
		}
		for _, k := range []*keys.Created{kr, km} {
			if rec := e.lookup(t, k.Secret); rec == nil || rec.RevokedAt != nil {
				t.Fatalf("another member's key %s stopped working", k.ID)
			}
		}
		sessionGone(t, e.svc, adaInO.token)
		if _, ok := e.doc(t, "login-sessions", digestOf(adaInO.token)); ok {
			t.Fatal("the removed member's session is still stored")
		}
		sessionOK(t, e.svc, adaInP.token, adaInP.member)
		sessionOK(t, e.svc, maxLogin.token, mem)
		if m, err := e.svc.Identity.MemberByID(ctx, o.id, ada.ID); err != nil || m != nil {
			t.Fatalf("MemberByID(removed) = %+v, %v", m, err)
		}
		if _, ok := e.doc(t, "member-emails/"+o.id, "ada@example.com"); ok {
			t.Fatal("the removed member's address is still indexed")
		}
		acct, _ := e.account(t, "ada@example.com")
		if len(acct.Memberships) != 1 || acct.PasswordHash == "" {
			t.Fatalf("account after removal = %+v", acct)
		}
		// Her login now reaches only P.
		if l := e.login(t, "ada@example.com", adaPassword, o.id); l.sess.OrgID != p.id || l.member.ID != p.owner.ID {
			t.Fatalf("Login after removal = %+v / %+v", l.sess, l.member)
		}

		// She can be invited again, and joins as a new member.
		token, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "ada@example.com", Name: "Ada", Role: "MEMBER"})
		if err != nil {
			t.Fatalf("re-inviting a removed member: %v", err)
		}
		again, err := e.svc.Identity.AcceptInvite(ctx, token, adaPassword)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID == ada.ID || again.Role != authz.RoleMember {
			t.Fatalf("re-joined as %+v", again)
		}
		for _, secret := range []string{ka1.Secret, ka2.Secret, ka3.Secret} {
			if rec := e.lookup(t, secret); rec != nil {
				t.Fatal("re-joining brought a revoked key back")
			}
		}

		// An admin removes a member; an owner removes another owner, but
		// the last owner stays.
		if err := e.svc.Identity.RemoveMember(ctx, principalOf(adam), mem.ID); err != nil {
			t.Fatal(err)
		}
		sessionGone(t, e.svc, maxLogin.token)
		if err := e.svc.Identity.RemoveMember(ctx, ownerSession, second.ID); err != nil {
			t.Fatal(err)
		}
		before := e.snap(t, cols...)
		err = e.svc.Identity.RemoveMember(ctx, o.root, o.owner.ID)
		wantErr(t, err, http.StatusConflict, apierror.CodeConflict, "last owner")
		if !before.equal(e.snap(t, cols...)) {
			t.Fatal("refusing to remove the last owner changed the store")
		}
		if rec := e.lookup(t, o.rootKey); rec == nil || rec.RevokedAt != nil {
			t.Fatal("the last owner's key stopped working")
		}
		members, err := e.svc.Identity.ListMembers(ctx, o.root)
		if err != nil {
			t.Fatal(err)
		}
		var emails []string
		for _, m := range members {
			emails = append(emails, m.Email)
		}
		slices.Sort(emails)
		if want := []string{"ada@example.com", "adam@example.com", "owner@example.com"}; !slices.Equal(emails, want) {
			t.Fatalf("members = %q, want %q", emails, want)
		}
		// An admin may remove themselves.
		if err := e.svc.Identity.RemoveMember(ctx, principalOf(adam), adam.ID); err != nil {
			t.Fatal(err)
		}
	})
}

package admin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
)

// The answers the account code gives, word for word.
var (
	errBadLogin  = apierror.New(http.StatusUnauthorized, apierror.CodeUnauthorized, "Wrong e-mail address or password")
	errNoSession = apierror.New(http.StatusUnauthorized, apierror.CodeUnauthorized, "Please log in")
)

// Passwords of the tests' people. Every one satisfies the policy.
const (
	ownerPassword = "owner's password 1"
	adaPassword   = "ada lovelace 1815"
	maxPassword   = "max mustermann 1"
)

// pwOrg is an organization whose first owner has a dashboard password.
type pwOrg struct {
	*org
	name     string
	owner    identity.Member
	email    string
	password string
}

// orgWithPassword bootstraps a new organization whose owner (email) has a
// password.
func (e *env) orgWithPassword(t *testing.T, name, email, password string, projects ...string) *pwOrg {
	t.Helper()
	ctx := context.Background()
	res, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{
		NewOrg: true, OrgName: name, OwnerEmail: email, OwnerName: "Owner of " + name, OwnerPassword: password,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := &org{id: res.Organization.ID, root: res.Principal, rootKey: res.Key}
	for _, p := range projects {
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: p}); err != nil {
			t.Fatal(err)
		}
	}
	return &pwOrg{org: o, name: name, owner: res.Owner, email: email, password: password}
}

// join invites email into caller's organization and accepts the
// invitation with password.
func (e *env) join(t *testing.T, caller *authz.Principal, email string, role authz.Role, password string) *identity.Member {
	t.Helper()
	ctx := context.Background()
	token, _, err := e.svc.Identity.InviteMember(ctx, caller, identity.InviteInput{Email: email, Name: "Name of " + email, Role: string(role)})
	if err != nil {
		t.Fatalf("InviteMember(%s): %v", email, err)
	}
	m, err := e.svc.Identity.AcceptInvite(ctx, token, password)
	if err != nil {
		t.Fatalf("AcceptInvite(%s): %v", email, err)
	}
	if m.Role != role {
		t.Fatalf("%s joined as %s, want %s", email, m.Role, role)
	}
	return m
}

// login logs in, failing the test on error.
type loginResult struct {
	token  string
	sess   *identity.LoginSession
	member *identity.Member
}

func (e *env) login(t *testing.T, email, password, preferOrg string) loginResult {
	t.Helper()
	token, sess, m, err := e.svc.Identity.Login(context.Background(), email, password, preferOrg)
	if err != nil {
		t.Fatalf("Login(%s): %v", email, err)
	}
	return loginResult{token, sess, m}
}

// sessionOK checks that a token names a live session of member m.
func sessionOK(t *testing.T, svc *admin.Service, token string, m *identity.Member) *identity.LoginSession {
	t.Helper()
	sess, got, err := svc.Identity.Session(context.Background(), token)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if got.ID != m.ID || got.OrgID != m.OrgID || sess.MemberID != m.ID || sess.OrgID != m.OrgID {
		t.Fatalf("Session = %+v / %+v, want member %s of %s", sess, got, m.ID, m.OrgID)
	}
	return sess
}

// sessionGone checks that a token names no (more) session.
func sessionGone(t *testing.T, svc *admin.Service, token string) {
	t.Helper()
	sess, m, err := svc.Identity.Session(context.Background(), token)
	wantExact(t, err, errNoSession)
	if sess != nil || m != nil {
		t.Fatalf("refused Session returned %+v / %+v", sess, m)
	}
}

func digestOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// account reads the stored account of an address.
func (e *env) account(t *testing.T, email string) (identity.Account, []byte) {
	t.Helper()
	b, ok := e.doc(t, "accounts", strings.ToLower(email))
	if !ok {
		t.Fatalf("no account for %s", email)
	}
	var a identity.Account
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// storedLogin reads a stored login session by its token.
func (e *env) storedLogin(t *testing.T, token string) identity.LoginSession {
	t.Helper()
	b, ok := e.doc(t, "login-sessions", digestOf(token))
	if !ok {
		t.Fatal("login session not stored under the token's digest")
	}
	var s identity.LoginSession
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// phc is the exact encoding of a hash: argon2id, version 19, 19 MiB, two
// passes, one lane, a 16-byte salt and a 32-byte digest.
var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)

func checkPHC(t *testing.T, hash string) (salt, sum []byte) {
	t.Helper()
	m := phc.FindStringSubmatch(hash)
	if m == nil {
		t.Fatalf("password hash %q is not argon2id in PHC format with the expected parameters", hash)
	}
	salt, err := base64.RawStdEncoding.DecodeString(m[1])
	if err != nil || len(salt) != 16 {
		t.Fatalf("salt %q: %d bytes, %v", m[1], len(salt), err)
	}
	sum, err = base64.RawStdEncoding.DecodeString(m[2])
	if err != nil || len(sum) != 32 {
		t.Fatalf("digest %q: %d bytes, %v", m[2], len(sum), err)
	}
	return salt, sum
}

func TestPasswordHashing(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice := e.orgWithPassword(t, "Acme", "Alice@Example.com", ownerPassword)
		// Bob has the same password: the salt makes his hash another.
		bob := e.orgWithPassword(t, "Bobco", "bob@example.com", ownerPassword)
		// Carol has an account (she owns an organization) but no password.
		if _, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "carol@example.com", OwnerName: "Carol"}); err != nil {
			t.Fatal(err)
		}

		acct, _ := e.account(t, "alice@example.com")
		if acct.Email != "Alice@Example.com" || len(acct.Memberships) != 1 {
			t.Fatalf("account = %+v", acct)
		}
		saltA, sumA := checkPHC(t, acct.PasswordHash)
		acctB, _ := e.account(t, "bob@example.com")
		saltB, sumB := checkPHC(t, acctB.PasswordHash)
		if bytes.Equal(saltA, saltB) || bytes.Equal(sumA, sumB) {
			t.Fatal("two accounts with the same password have the same salt or digest")
		}
		if acctC, _ := e.account(t, "carol@example.com"); acctC.PasswordHash != "" {
			t.Fatalf("Carol has a password hash %q though none was set", acctC.PasswordHash)
		}
		if raw := e.raw(t); bytes.Contains(raw, []byte(ownerPassword)) {
			t.Fatal("the backend holds a password in clear")
		} else if !bytes.Contains(raw, []byte(acct.PasswordHash)) {
			t.Fatal("the backend dump lacks the password hash: it is not a real dump")
		}

		// The address is case-insensitive and trimmed; the password is not.
		l := e.login(t, "  ALICE@example.COM ", ownerPassword, "")
		if l.member.ID != alice.owner.ID || l.sess.OrgID != alice.id || l.sess.MemberID != alice.owner.ID {
			t.Fatalf("Login = %+v / %+v", l.sess, l.member)
		}
		if l := e.login(t, "bob@example.com", ownerPassword, ""); l.member.ID != bob.owner.ID {
			t.Fatalf("Bob logged in as %+v", l.member)
		}

		// Every failure is the same answer and opens no session.
		before := e.ids(t, "login-sessions")
		for _, c := range []struct{ email, password string }{
			{"alice@example.com", "Owner's password 1"},    // wrong case
			{"alice@example.com", ownerPassword + " "},     // not trimmed
			{"alice@example.com", ""},                      // empty
			{"nobody@example.com", ownerPassword},          // unknown address
			{"carol@example.com", ownerPassword},           // no password set
			{"carol@example.com", ""},                      // no password set, none given
			{"", ""},                                       // nothing
			{" ", ownerPassword},                           // no address
			{"alice@example.com", acct.PasswordHash},       // the hash is not the password
			{"alice@example.com.evil.test", ownerPassword}, // another address
		} {
			token, sess, m, err := e.svc.Identity.Login(ctx, c.email, c.password, "")
			wantExact(t, err, errBadLogin)
			if token != "" || sess != nil || m != nil {
				t.Fatalf("failed Login(%q, %q) returned %q %+v %+v", c.email, c.password, token, sess, m)
			}
		}
		if after := e.ids(t, "login-sessions"); !slices.Equal(before, after) {
			t.Fatalf("failed logins changed the sessions: %q -> %q", before, after)
		}
	})
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		for _, c := range []struct{ password, why string }{
			{"", "at least 10 characters"},
			{"123456789", "at least 10 characters"},
			// Characters, not bytes: nine of them are 18 bytes.
			{strings.Repeat("é", 9), "at least 10 characters"},
			{strings.Repeat("a", 257), "at most 256 characters"},
			{strings.Repeat("é", 257), "at most 256 characters"},
			{strings.Repeat(" ", 12), "must not be blank"},
			{" \t\n\r \t\n\r \t\n", "must not be blank"},
			{"\xff\xfe" + strings.Repeat("a", 10), "valid UTF-8"},
			{strings.Repeat("a", 10) + "\xc3", "valid UTF-8"},
		} {
			_, before := e.account(t, o.email)
			err := e.svc.Identity.SetPassword(ctx, o.email, c.password)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "password", c.why)
			if _, after := e.account(t, o.email); !bytes.Equal(before, after) {
				t.Fatalf("a refused SetPassword(%q) changed the account", c.password)
			}
			if c.password == "" {
				continue // to Bootstrap, an empty password means none
			}
			// Bootstrap applies the same policy before writing anything.
			orgs := e.ids(t, "orgs")
			_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "x@example.com", OwnerName: "X", OwnerPassword: c.password})
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "password", c.why)
			if !slices.Equal(orgs, e.ids(t, "orgs")) {
				t.Fatalf("Bootstrap with the password %q was refused but created an organization", c.password)
			}
			_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OrgID: o.id, OwnerPassword: c.password})
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "password", c.why)
		}
		wantErr(t, e.svc.Identity.SetPassword(ctx, "nobody@example.com", ownerPassword), http.StatusNotFound, apierror.CodeNotFound, "nobody@example.com")
		wantErr(t, e.svc.Identity.SetPassword(ctx, " ", ownerPassword), http.StatusNotFound, apierror.CodeNotFound)

		// The boundaries are accepted, and work.
		for _, pw := range []string{
			"abcdefghij",              // exactly 10
			strings.Repeat("é", 256),  // 256 characters, 512 bytes
			"  spaces  inside  and  ", // spaces count, and are kept
		} {
			if err := e.svc.Identity.SetPassword(ctx, " OWNER@example.com ", pw); err != nil {
				t.Fatalf("SetPassword(%d characters): %v", len([]rune(pw)), err)
			}
			acct, _ := e.account(t, o.email)
			checkPHC(t, acct.PasswordHash)
			if l := e.login(t, o.email, pw, ""); l.member.ID != o.owner.ID {
				t.Fatalf("logged in as %+v", l.member)
			}
		}
		_, _, _, err := e.svc.Identity.Login(ctx, o.email, "spaces  inside  and", "")
		wantExact(t, err, errBadLogin)
		// The former password no longer works.
		_, _, _, err = e.svc.Identity.Login(ctx, o.email, ownerPassword, "")
		wantExact(t, err, errBadLogin)
	})
}

// An unknown address costs a login the same work as a known one: exactly
// one argon2id computation, observed as the 19 MiB that argon2id
// allocates for its memory (a deterministic measure, unlike time). The test
// is not parallel, so that no other test allocates meanwhile.
func TestLoginCostsTheSameForUnknownAddresses(t *testing.T) {
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(st, nil)
	ctx := context.Background()
	o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
	if _, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "nopw@example.com", OwnerName: "No Password"}); err != nil {
		t.Fatal(err)
	}
	// Warm up: the first unknown address hashes the dummy password once.
	_, _, _, _ = e.svc.Identity.Login(ctx, "warm-up@example.com", "whatever", "")

	const argonBytes = 19 * 1024 * 1024
	allocated := func(email, password string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, _, _ = e.svc.Identity.Login(ctx, email, password, "")
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	for _, c := range []struct{ what, email, password string }{
		{"unknown address", "nobody@example.com", ownerPassword},
		{"another unknown address", "somebody-else@example.org", "x"},
		{"no address", "", ownerPassword},
		{"known address, wrong password", o.email, "wrong password"},
		{"address without a password", "nopw@example.com", ownerPassword},
		{"right password", o.email, ownerPassword},
	} {
		n := allocated(c.email, c.password)
		if n < argonBytes || n > argonBytes*3/2 {
			t.Errorf("%s: Login allocated %.1f MiB, want one argon2id run (%d MiB)", c.what, float64(n)/(1<<20), argonBytes>>20)
		}
	}
}

func TestBootstrapOwnerPassword(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		if l := e.login(t, "owner@example.com", ownerPassword, ""); l.member.ID != o.owner.ID || l.member.Role != authz.RoleOwner || l.sess.OrgID != o.id {
			t.Fatalf("owner login = %+v / %+v", l.sess, l.member)
		}
		ada := e.join(t, o.root, "Ada@Example.com", authz.RoleAdmin, adaPassword)

		// NewKey with an owner's address and a password sets that member's
		// password (and the key is theirs); nobody else's changes.
		_, ownerDoc := e.account(t, "owner@example.com")
		const newAda = "ada's new password"
		res, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OwnerEmail: " ada@example.COM ", OwnerPassword: newAda})
		if err != nil {
			t.Fatal(err)
		}
		if res.Owner.ID != ada.ID || res.Record.OwnerID != ada.ID || res.Created {
			t.Fatalf("NewKey for Ada = %+v, key owner %s", res.Owner, res.Record.OwnerID)
		}
		_, _, _, err = e.svc.Identity.Login(ctx, "ada@example.com", adaPassword, "")
		wantExact(t, err, errBadLogin)
		if l := e.login(t, "ada@example.com", newAda, ""); l.member.ID != ada.ID {
			t.Fatalf("Ada logged in as %+v", l.member)
		}
		if _, after := e.account(t, "owner@example.com"); !bytes.Equal(ownerDoc, after) {
			t.Fatal("setting Ada's password changed the owner's account")
		}

		// NewKey without an address picks the first owner.
		const newOwner = "owner's second password"
		res, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OwnerPassword: newOwner})
		if err != nil {
			t.Fatal(err)
		}
		if res.Owner.ID != o.owner.ID {
			t.Fatalf("NewKey without an address picked %+v", res.Owner)
		}
		if l := e.login(t, "owner@example.com", newOwner, ""); l.member.ID != o.owner.ID {
			t.Fatalf("owner logged in as %+v", l.member)
		}

		// NewKey without a password leaves the password alone; a refused
		// password changes nothing and mints nothing.
		_, adaDoc := e.account(t, "ada@example.com")
		if _, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OwnerEmail: "ada@example.com"}); err != nil {
			t.Fatal(err)
		}
		keys := e.ids(t, "keys/"+o.id)
		_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OwnerEmail: "ada@example.com", OwnerPassword: "too short"})
		wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "at least 10")
		if !slices.Equal(keys, e.ids(t, "keys/"+o.id)) {
			t.Fatal("a Bootstrap refused for its password minted a key")
		}
		if _, after := e.account(t, "ada@example.com"); !bytes.Equal(adaDoc, after) {
			t.Fatal("Bootstrap without a password, or with a refused one, changed Ada's account")
		}
		// An unknown address is refused, not given an account.
		_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OwnerEmail: "nobody@example.com", OwnerPassword: newOwner})
		wantErr(t, err, http.StatusNotFound, apierror.CodeNotFound, "nobody@example.com")
		if _, ok := e.doc(t, "accounts", "nobody@example.com"); ok {
			t.Fatal("Bootstrap for an unknown address made an account")
		}
	})
}

func TestLoginSessionTokens(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		l1 := e.login(t, "owner@example.com", ownerPassword, "")
		e.clock.Advance(time.Second)
		l2 := e.login(t, "owner@example.com", ownerPassword, "")

		for _, l := range []loginResult{l1, l2} {
			for what, tok := range map[string]string{"token": l.token, "CSRF token": l.sess.CSRF} {
				if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != 32 {
					t.Fatalf("%s %q is not 32 random bytes in URL-safe base64", what, tok)
				}
			}
		}
		if l1.token == l2.token || l1.sess.CSRF == l2.sess.CSRF || l1.token == l1.sess.CSRF {
			t.Fatal("two logins share a token")
		}
		// Stored under the SHA-256 of the token, never the token itself.
		want := []string{digestOf(l1.token), digestOf(l2.token)}
		slices.Sort(want)
		if got := e.ids(t, "login-sessions"); !slices.Equal(got, want) {
			t.Fatalf("login-sessions = %q, want the tokens' digests %q", got, want)
		}
		raw := e.raw(t)
		for _, l := range []loginResult{l1, l2} {
			if bytes.Contains(raw, []byte(l.token)) {
				t.Fatal("the backend holds a session token")
			}
			if !bytes.Contains(raw, []byte(digestOf(l.token))) {
				t.Fatal("the backend dump lacks a session digest: it is not a real dump")
			}
		}
		stored := e.storedLogin(t, l1.token)
		if stored.OrgID != o.id || stored.MemberID != o.owner.ID || stored.CSRF != l1.sess.CSRF ||
			!stored.CreatedAt.Equal(t0) || !stored.LastSeen.Equal(t0) {
			t.Fatalf("stored session = %+v", stored)
		}
		if l2.sess.CreatedAt != t0.Add(time.Second) || l2.sess.LastSeen != l2.sess.CreatedAt {
			t.Fatalf("second session = %+v", l2.sess)
		}

		sess := sessionOK(t, e.svc, l1.token, &o.owner)
		if sess.CSRF != l1.sess.CSRF || !identity.CheckCSRF(l1.sess.CSRF, sess.CSRF) || identity.CheckCSRF(l2.sess.CSRF, sess.CSRF) {
			t.Fatalf("session's CSRF token %q, login's %q", sess.CSRF, l1.sess.CSRF)
		}
		sessionOK(t, e.svc, l2.token, &o.owner)

		// Anything but the token itself is refused: nothing, garbage, a
		// near miss, the stored digest (a stolen database is no key), the
		// CSRF token.
		flipped := []byte(l1.token)
		flipped[len(flipped)-1] ^= 1
		for _, bad := range []string{"", "garbage", string(flipped), l1.token[:len(l1.token)-1], l1.token + "A",
			" " + l1.token, digestOf(l1.token), l1.sess.CSRF} {
			sessionGone(t, e.svc, bad)
		}
		if _, _, err := e.svc.Identity.Session(ctx, l1.token); err != nil {
			t.Fatalf("the session stopped working after refused attempts: %v", err)
		}
	})
}

func TestCheckCSRF(t *testing.T) {
	t.Parallel()
	s := &identity.LoginSession{CSRF: "csrf-token-123"}
	for tok, want := range map[string]bool{
		"csrf-token-123":  true,
		"csrf-token-124":  false,
		"csrf-token-12":   false,
		"csrf-token-1234": false,
		"CSRF-TOKEN-123":  false,
		" csrf-token-123": false,
		"":                false,
	} {
		if got := identity.CheckCSRF(tok, s.CSRF); got != want {
			t.Errorf("CheckCSRF(%q) = %v, want %v", tok, got, want)
		}
	}
	// A session without a token (never made by Login) matches nothing,
	// not even an empty header.
	if identity.CheckCSRF("", (&identity.LoginSession{}).CSRF) {
		t.Error("an empty CSRF token matched an empty session token")
	}
}

func TestSessionIdleAndMaxAge(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)

		// Idle: each use restarts the idle timeout, which ends it at
		// exactly SessionIdleTimeout.
		idle := e.login(t, o.email, ownerPassword, "")
		e.clock.Advance(identity.SessionIdleTimeout - time.Second)
		sessionOK(t, e.svc, idle.token, &o.owner)
		e.clock.Advance(identity.SessionIdleTimeout - time.Second) // alive only thanks to the use
		sessionOK(t, e.svc, idle.token, &o.owner)
		e.clock.Advance(identity.SessionIdleTimeout)
		sessionGone(t, e.svc, idle.token)

		// Absolute: used every 20 minutes, a session lives exactly
		// SessionMaxAge.
		busy := e.login(t, o.email, ownerPassword, "")
		born := e.clock.Now()
		for e.clock.Now().Add(20 * time.Minute).Before(born.Add(identity.SessionMaxAge)) {
			e.clock.Advance(20 * time.Minute)
			sessionOK(t, e.svc, busy.token, &o.owner)
		}
		e.clock.Set(born.Add(identity.SessionMaxAge - time.Second))
		sessionOK(t, e.svc, busy.token, &o.owner)
		e.clock.Advance(time.Second)
		sessionGone(t, e.svc, busy.token)

		// A member who is gone has no session, even one not yet swept.
		mem := e.join(t, o.root, "max@example.com", authz.RoleMember, maxPassword)
		ml := e.login(t, "max@example.com", maxPassword, "")
		sessionOK(t, e.svc, ml.token, mem)
		if err := e.st.Update(ctx, func(w store.Writer) error { return w.Delete("members/"+o.id, mem.ID) }); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.doc(t, "login-sessions", digestOf(ml.token)); !ok {
			t.Fatal("test setup: the session document is gone")
		}
		sessionGone(t, e.svc, ml.token)
	})
}

// Use of a session is written back at most once a minute.
func TestSessionTouch(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		l := e.login(t, o.email, ownerPassword, "")
		doc0, _ := e.doc(t, "login-sessions", digestOf(l.token))

		e.clock.Advance(59 * time.Second)
		if s := sessionOK(t, e.svc, l.token, &o.owner); !s.LastSeen.Equal(t0) {
			t.Fatalf("LastSeen = %s after 59s, want unchanged %s", s.LastSeen, t0)
		}
		if doc, _ := e.doc(t, "login-sessions", digestOf(l.token)); !bytes.Equal(doc, doc0) {
			t.Fatalf("a use within a minute rewrote the session: %s -> %s", doc0, doc)
		}

		e.clock.Advance(time.Second)
		touched := t0.Add(time.Minute)
		if s := sessionOK(t, e.svc, l.token, &o.owner); !s.LastSeen.Equal(touched) {
			t.Fatalf("LastSeen = %s after a minute, want %s", s.LastSeen, touched)
		}
		stored := e.storedLogin(t, l.token)
		if !stored.LastSeen.Equal(touched) || !stored.CreatedAt.Equal(t0) || stored.CSRF != l.sess.CSRF ||
			stored.MemberID != o.owner.ID || stored.OrgID != o.id {
			t.Fatalf("stored session after a use = %+v", stored)
		}
		doc1, _ := e.doc(t, "login-sessions", digestOf(l.token))

		for _, d := range []time.Duration{time.Second, 30 * time.Second, 28 * time.Second} { // up to 59s later
			e.clock.Advance(d)
			sessionOK(t, e.svc, l.token, &o.owner)
			if doc, _ := e.doc(t, "login-sessions", digestOf(l.token)); !bytes.Equal(doc, doc1) {
				t.Fatalf("a use %s after the last write rewrote the session", e.clock.Now().Sub(touched))
			}
		}
		e.clock.Advance(time.Second)
		sessionOK(t, e.svc, l.token, &o.owner)
		if s := e.storedLogin(t, l.token); !s.LastSeen.Equal(touched.Add(time.Minute)) {
			t.Fatalf("stored LastSeen = %s, want %s", s.LastSeen, touched.Add(time.Minute))
		}
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		a := e.login(t, o.email, ownerPassword, "")
		b := e.login(t, o.email, ownerPassword, "")
		// Another service over the same store, as another instance would be.
		other := admin.New(e.st)
		other.SetClock(e.clock.Now)
		sessionOK(t, other, a.token, &o.owner)

		if err := other.Identity.Logout(ctx, a.token); err != nil {
			t.Fatal(err)
		}
		sessionGone(t, e.svc, a.token)
		sessionGone(t, other, a.token)
		if _, ok := e.doc(t, "login-sessions", digestOf(a.token)); ok {
			t.Fatal("Logout left the session document")
		}
		if got := e.ids(t, "login-sessions-of/"+o.id+"/"+o.owner.ID); !slices.Equal(got, []string{digestOf(b.token)}) {
			t.Fatalf("the member's session index after Logout = %q, want only the other session", got)
		}
		// The member's other session is another login: it goes on.
		sessionOK(t, e.svc, b.token, &o.owner)
		for _, tok := range []string{"", "garbage", a.token, digestOf(b.token)} {
			if err := e.svc.Identity.Logout(ctx, tok); err != nil {
				t.Fatalf("Logout(%q) = %v", tok, err)
			}
		}
		sessionOK(t, e.svc, b.token, &o.owner)
	})
}

// Logging out on one instance ends the session on every other: two
// instances, each with its own connection to one Redis.
func TestLogoutOnEveryInstance(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	prefix := testenv.UniquePrefix(t)
	var svcs []*admin.Service
	for range 2 {
		st, err := store.OpenRedis(r.URL(), store.Options{KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		svcs = append(svcs, admin.New(st))
	}
	one, two := svcs[0], svcs[1]
	ctx := context.Background()
	res, err := one.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner", OwnerPassword: ownerPassword})
	if err != nil {
		t.Fatal(err)
	}
	token, _, _, err := one.Identity.Login(ctx, "owner@example.com", ownerPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _, err := two.Identity.Login(ctx, "owner@example.com", ownerPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs {
		sessionOK(t, svc, token, &res.Owner)
		sessionOK(t, svc, other, &res.Owner)
	}
	if err := two.Identity.Logout(ctx, token); err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs {
		sessionGone(t, svc, token)
		sessionOK(t, svc, other, &res.Owner)
	}
}

func TestSweepLoginSessions(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		sessions := func() []string { return e.ids(t, "login-sessions") }
		invites := func() []string { return e.ids(t, "invites") }
		sweep := func() {
			t.Helper()
			if err := e.svc.Identity.SweepLoginSessions(ctx); err != nil {
				t.Fatal(err)
			}
		}
		invite := func(email string) string {
			t.Helper()
			tok, _, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: email, Name: email})
			if err != nil {
				t.Fatal(err)
			}
			return digestOf(tok)
		}
		sorted := func(xs ...string) []string { slices.Sort(xs); return xs }

		idle := e.login(t, o.email, ownerPassword, "") // t0
		inviteX := invite("x@example.com")             // expires at t0 + InviteTTL
		e.clock.Advance(20 * time.Minute)
		live := e.login(t, o.email, ownerPassword, "")
		e.clock.Advance(10*time.Minute - time.Second) // idle: 29m59s
		sweep()
		if got := sessions(); !slices.Equal(got, sorted(digestOf(idle.token), digestOf(live.token))) {
			t.Fatalf("sessions after a sweep before any expiry = %q", got)
		}
		// A document that does not decode is swept too.
		if err := e.st.Update(ctx, func(w store.Writer) error { return w.Put("login-sessions", "junk", []byte("not json")) }); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second) // idle: exactly SessionIdleTimeout
		sweep()
		if got := sessions(); !slices.Equal(got, []string{digestOf(live.token)}) {
			t.Fatalf("sessions after sweeping an idle one = %q, want only the live one", got)
		}
		if got := invites(); !slices.Equal(got, []string{inviteX}) {
			t.Fatalf("invites = %q", got)
		}
		sessionGone(t, e.svc, idle.token)
		sessionOK(t, e.svc, live.token, live.member)

		// The live session, used every 20 minutes, is swept at its
		// absolute expiry.
		born := live.sess.CreatedAt
		for e.clock.Now().Add(20 * time.Minute).Before(born.Add(identity.SessionMaxAge)) {
			e.clock.Advance(20 * time.Minute)
			sessionOK(t, e.svc, live.token, live.member)
		}
		e.clock.Set(born.Add(identity.SessionMaxAge - time.Second))
		sessionOK(t, e.svc, live.token, live.member)
		fresh := e.login(t, o.email, ownerPassword, "")
		sweep()
		if got := sessions(); !slices.Equal(got, sorted(digestOf(live.token), digestOf(fresh.token))) {
			t.Fatalf("sessions a second before the absolute expiry = %q", got)
		}
		e.clock.Advance(time.Second)
		sweep()
		if got := sessions(); !slices.Equal(got, []string{digestOf(fresh.token)}) {
			t.Fatalf("sessions at the absolute expiry = %q, want only the fresh one", got)
		}

		// Invitations are swept when they expire.
		e.clock.Set(t0.Add(identity.InviteTTL - time.Second))
		inviteY := invite("y@example.com")
		sweep()
		if got := invites(); !slices.Equal(got, sorted(inviteX, inviteY)) {
			t.Fatalf("invites a second before the first expires = %q", got)
		}
		e.clock.Advance(time.Second)
		keep := e.login(t, o.email, ownerPassword, "")
		sweep()
		if got := invites(); !slices.Equal(got, []string{inviteY}) {
			t.Fatalf("invites after the first expired = %q", got)
		}
		if got := sessions(); !slices.Equal(got, []string{digestOf(keep.token)}) {
			t.Fatalf("sessions = %q, want only the one just opened", got)
		}
		sessionOK(t, e.svc, keep.token, &o.owner)
		// The per-member and per-organization indexes went with them.
		if got := e.ids(t, "login-sessions-of/"+o.id+"/"+o.owner.ID); !slices.Equal(got, []string{digestOf(keep.token)}) {
			t.Fatalf("the member's session index = %q, want only the one just opened", got)
		}
		if got := e.ids(t, "invites-of/"+o.id); !slices.Equal(got, []string{inviteY}) {
			t.Fatalf("the organization's invitation index = %q, want %q", got, inviteY)
		}
	})
}

func TestPrincipal(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword, "alpha")
		e.join(t, o.root, "ada@example.com", authz.RoleAdmin, adaPassword)
		e.join(t, o.root, "max@example.com", authz.RoleMember, maxPassword)

		principal := func(email, password string) (*authz.Principal, loginResult) {
			t.Helper()
			e.clock.Advance(time.Second)
			l := e.login(t, email, password, "")
			// The principal the edge builds from the session cookie.
			p, csrf, err := e.svc.Identity.SessionPrincipal(ctx, l.token)
			if err != nil {
				t.Fatalf("SessionPrincipal(%s): %v", email, err)
			}
			if p.Kind != authz.MemberPrincipal || p.Type != apikey.Admin || p.Org() != o.id || !p.Scope.OrgWide() ||
				!reflect.DeepEqual(p.Scope, authz.Organization(o.id)) ||
				p.ID != l.member.ID || p.Member != l.member.ID || p.Role != l.member.Role ||
				p.ExpiresAt != nil || p.Key != nil || csrf != l.sess.CSRF {
				t.Fatalf("SessionPrincipal(%s) = %+v, CSRF %q", email, p, csrf)
			}
			if want := authz.ForMember(o.id, l.member.ID, l.member.Role); !reflect.DeepEqual(p, want) {
				t.Fatalf("SessionPrincipal(%s) = %+v, want ForMember's %+v", email, p, want)
			}
			return p, l
		}
		for _, c := range []struct {
			email, password string
			role            authz.Role
		}{{o.email, ownerPassword, authz.RoleOwner}, {"ada@example.com", adaPassword, authz.RoleAdmin}} {
			p, l := principal(c.email, c.password)
			if l.member.Role != c.role || p.Permissions != apikey.AllPermissions {
				t.Fatalf("%s principal: role %s, permissions %v", c.role, l.member.Role, p.Permissions.List())
			}
			slug := strings.ToLower(string(c.role))
			if _, _, err := e.svc.Tenancy.CreateProject(ctx, p, tenancy.CreateProjectInput{Slug: slug}); err != nil {
				t.Fatalf("%s: CreateProject: %v", c.role, err)
			}
			k, err := e.svc.Keys.CreateKey(ctx, p, slug, keys.CreateInput{Name: "ci", Type: "live", Environment: "production"})
			if err != nil {
				t.Fatalf("%s: CreateKey: %v", c.role, err)
			}
			if k.OwnerID != l.member.ID {
				t.Fatalf("a key made by %s's session is owned by %q", c.email, k.OwnerID)
			}
			v, err := e.svc.Identity.Viewer(ctx, p)
			if err != nil || v.Member.ID != l.member.ID || v.Organization.ID != o.id {
				t.Fatalf("Viewer = %+v, %v", v, err)
			}
		}

		// A MEMBER reads, and nothing more.
		p, l := principal("max@example.com", maxPassword)
		if l.member.Role != authz.RoleMember || !p.Permissions.Has(apikey.Read) || p.Permissions.Has(apikey.Write) {
			t.Fatalf("member principal: role %s, permissions %v", l.member.Role, p.Permissions.List())
		}
		// A person is told about their role, not about a key they do not hold.
		memberReadOnly := apierror.Forbidden("Your role (Member) is read-only; ask an owner or admin of your organization")
		cols := []string{"projects/" + o.id, "keys/" + o.id, "key-digests", "invites", "members/" + o.id}
		before := e.snap(t, cols...)
		_, _, err := e.svc.Tenancy.CreateProject(ctx, p, tenancy.CreateProjectInput{Slug: "beta"})
		wantExact(t, err, memberReadOnly)
		_, err = e.svc.Keys.CreateKey(ctx, p, "alpha", keys.CreateInput{Name: "ci", Type: "live", Environment: "production", Permissions: []string{"READ"}})
		wantExact(t, err, memberReadOnly)
		_, err = e.svc.Keys.RevokeKey(ctx, p, o.root.ID)
		wantExact(t, err, memberReadOnly)
		wantExact(t, e.svc.DeleteProject(ctx, p, "alpha"), memberReadOnly)
		_, _, err = e.svc.Identity.InviteMember(ctx, p, identity.InviteInput{Email: "x@example.com", Name: "X"})
		wantExact(t, err, memberReadOnly)
		if !before.equal(e.snap(t, cols...)) {
			t.Fatal("a MEMBER's refused writes changed the store")
		}
		ps, err := e.svc.Tenancy.ListProjects(ctx, p)
		if err != nil || len(ps) != 3 {
			t.Fatalf("member ListProjects = %+v, %v", ps, err)
		}
		if _, err := e.svc.Keys.GetKey(ctx, p, o.root.ID); err != nil {
			t.Fatalf("member GetKey: %v", err)
		}
		if ms, err := e.svc.Identity.ListMembers(ctx, p); err != nil || len(ms) != 3 {
			t.Fatalf("member ListMembers = %+v, %v", ms, err)
		}
		if v, err := e.svc.Identity.Viewer(ctx, p); err != nil || v.Member.ID != l.member.ID {
			t.Fatalf("member Viewer = %+v, %v", v, err)
		}
	})
}

// A new password ends the account's open logins; an expired session is
// deleted when it is refused, so a clock that steps back cannot revive it;
// removing a member withdraws the invitations they sent.
func TestSessionsEndWithPasswordChangeExpiryAndRemoval(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@acme.example", ownerPassword)
		first := e.login(t, o.email, ownerPassword, "")
		second := e.login(t, o.email, ownerPassword, "")
		sessionOK(t, e.svc, first.token, first.member)
		if err := e.svc.Identity.SetPassword(ctx, o.email, "a brand new password"); err != nil {
			t.Fatal(err)
		}
		sessionGone(t, e.svc, first.token)
		sessionGone(t, e.svc, second.token)
		e.login(t, o.email, "a brand new password", "")

		// Expiry deletes the stored session.
		base := time.Now()
		e.svc.SetClock(func() time.Time { return base })
		third := e.login(t, o.email, "a brand new password", "")
		e.svc.SetClock(func() time.Time { return base.Add(identity.SessionIdleTimeout) })
		sessionGone(t, e.svc, third.token)
		e.svc.SetClock(func() time.Time { return base })
		sessionGone(t, e.svc, third.token)
		e.svc.SetClock(time.Now)

		// Invitations leave with the member who sent them.
		adminM := e.join(t, o.root, "ada@acme.example", authz.RoleAdmin, adaPassword)
		sess := e.login(t, "ada@acme.example", adaPassword, "")
		adaP, _, err := e.svc.Identity.SessionPrincipal(ctx, sess.token)
		if err != nil {
			t.Fatal(err)
		}
		token, _, err := e.svc.Identity.InviteMember(ctx, adaP,
			identity.InviteInput{Email: "max@acme.example", Name: "Max"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Identity.RemoveMember(ctx, o.root, adminM.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.Identity.InviteInfo(ctx, token); err == nil {
			t.Fatal("an invitation of a removed member still works")
		}
		if _, err := e.svc.Identity.AcceptInvite(ctx, token, maxPassword); err == nil {
			t.Fatal("an invitation of a removed member was accepted")
		}
	})
}

// Login sessions and invitations stored before they were indexed per member
// and per organization are indexed by the sweep (so that the bounds and the
// removal of a member see them), and the testing sessions of the single
// collection they were kept in before are deleted.
func TestSweepsIndexWhatWasStoredBefore(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.orgWithPassword(t, "Acme", "owner@example.com", ownerPassword)
		l := e.login(t, o.email, ownerPassword, "")
		token, inv, err := e.svc.Identity.InviteMember(ctx, o.root, identity.InviteInput{Email: "x@example.com", Name: "X"})
		if err != nil {
			t.Fatal(err)
		}
		sessIndex, invIndex := "login-sessions-of/"+o.id+"/"+o.owner.ID, "invites-of/"+o.id
		// As an older version stored them: no index entries, and a testing
		// session in the shared collection.
		if err := e.st.Update(ctx, func(w store.Writer) error {
			if err := w.Delete(sessIndex, digestOf(l.token)); err != nil {
				return err
			}
			if err := w.Delete(invIndex, digestOf(token)); err != nil {
				return err
			}
			return w.Put("testing-sessions", "ts_legacy", []byte(`{"id":"ts_legacy"}`))
		}); err != nil {
			t.Fatal(err)
		}
		if got := e.ids(t, sessIndex); len(got) != 0 {
			t.Fatalf("test setup: index %q", got)
		}

		if err := e.svc.Identity.SweepLoginSessions(ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.ids(t, sessIndex); !slices.Equal(got, []string{digestOf(l.token)}) {
			t.Fatalf("session index after the sweep = %q", got)
		}
		if b, ok := e.doc(t, invIndex, digestOf(token)); !ok || string(b) != inv.ExpiresAt.Format(time.RFC3339) {
			t.Fatalf("invitation index after the sweep = %q, %v; want its expiry", b, ok)
		}
		sessionOK(t, e.svc, l.token, &o.owner)
		if _, err := e.svc.Flags.SweepSessions(ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.ids(t, "testing-sessions"); len(got) != 0 {
			t.Fatalf("legacy testing sessions after the sweep = %q", got)
		}
		// Indexed, the old session is ended with the member's others.
		if err := e.svc.Identity.SetPassword(ctx, o.email, "a brand new password"); err != nil {
			t.Fatal(err)
		}
		sessionGone(t, e.svc, l.token)
	})
}

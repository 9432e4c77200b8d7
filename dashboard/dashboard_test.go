package dashboard_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/dashboard"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/store"
)

const (
	host          = "flags.example.com"
	origin        = "https://" + host
	ownerEmail    = "owner@example.com"
	ownerPassword = "owner's password 1"
	orgName       = "Acme"
)

// csp is the Content-Security-Policy every response carries, word for word.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// The dashboard's own refusals and the edge's refusals of dashboard
// requests, word for word.
const (
	msgCSRF       = "This request lacks the page's security token; reload the page and try again"
	msgCrossSite  = "Cross-site requests are not allowed"
	msgBadLogin   = "Wrong e-mail address or password"
	msgLogIn      = "Please log in"
	msgReadOnly   = "Your role (Member) is read-only; ask an owner or admin of your organization"
	msgTooManyLog = "Too many login attempts; try again in a few minutes"
	// msgInviteRefused is the one answer to every password that does not
	// accept an invitation.
	msgInviteRefused = "This password does not accept the invitation; if this address already has a FlagBridge password, enter that one"
)

// fixture is the real request path (the edge guard in front of the router,
// as Caddy runs them) over a real (file) store, with an organization whose
// owner has a password. Every request goes through it.
type fixture struct {
	st    store.Store
	chain *testchain.Chain
	svc   *admin.Service
	// limiter is the chain's shared limiter, to look into its buckets.
	limiter ratelimit.Limiter
	orgID   string
	owner   identity.Member
	// root is the principal of the owner's bootstrap key.
	root *authz.Principal
	// ip is the client address requests come from unless they say.
	ip string
}

// newFixture builds a fixture; configure may change the guard's
// configuration (its limits).
func newFixture(t *testing.T, configure ...func(*edge.Config)) *fixture {
	t.Helper()
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := edge.DefaultConfig()
	for _, c := range configure {
		c(&cfg)
	}
	limiter := ratelimit.NewMemory()
	chain := testchain.New(st, testchain.Options{Config: &cfg, Limiter: limiter})
	t.Cleanup(chain.Close)
	res, err := chain.Admin.Bootstrap(context.Background(), admin.BootstrapInput{
		OrgName: orgName, OwnerEmail: ownerEmail, OwnerName: "Owner", OwnerPassword: ownerPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, chain: chain, svc: chain.Admin, limiter: limiter, orgID: res.Organization.ID,
		owner: res.Owner, root: res.Principal, ip: "192.0.2.1"}
}

// join makes a member of the organization (through the services).
func (f *fixture) join(t *testing.T, email string, role authz.Role, password string) *identity.Member {
	t.Helper()
	ctx := context.Background()
	token, _, err := f.svc.Identity.InviteMember(ctx, f.root, identity.InviteInput{Email: email, Name: "Name of " + email, Role: string(role)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.svc.Identity.AcceptInvite(ctx, token, password)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// req is one request to the dashboard.
type req struct {
	method, path string
	body         any // a string is sent as it is, anything else as JSON
	cookie       string
	csrf         string
	origin       string
	ip           string
	// header holds more request headers (Sec-Fetch-Site).
	header map[string]string
	// plainHTTP sends the request without TLS.
	plainHTTP bool
}

type resp struct {
	*httptest.ResponseRecorder
	body []byte
}

// do sends one request through the chain, over HTTPS unless it says, and
// checks what holds of every dashboard response.
func (f *fixture) do(t *testing.T, r req) resp {
	t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	scheme := "https://"
	if r.plainHTTP {
		scheme = "http://"
	}
	hr := httptest.NewRequest(r.method, scheme+host+r.path, body)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: edge.SessionCookie, Value: r.cookie})
	}
	if r.csrf != "" {
		hr.Header.Set(edge.HeaderCSRF, r.csrf)
	}
	if r.origin != "" {
		hr.Header.Set("Origin", r.origin)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	ip := r.ip
	if ip == "" {
		ip = f.ip
	}
	hr.RemoteAddr = net.JoinHostPort(ip, "49152")
	w := httptest.NewRecorder()
	f.chain.ServeHTTP(w, hr)
	checkSecurityHeaders(t, r, w.Header())
	if strings.HasPrefix(r.path, "/dashboard/api/") {
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("%s %s: Cache-Control %q, want no-store (%d %s)", r.method, r.path, cc, w.Code, w.Body)
		}
	}
	return resp{w, w.Body.Bytes()}
}

// checkSecurityHeaders is applied to every response of every test, the
// edge's refusals included.
func checkSecurityHeaders(t *testing.T, r req, h http.Header) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Security-Policy":      csp,
		"X-Content-Type-Options":       "nosniff",
		"X-Frame-Options":              "DENY",
		"Referrer-Policy":              "no-referrer",
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Resource-Policy": "same-origin",
		"Permissions-Policy":           "camera=(), microphone=(), geolocation=()",
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Fatalf("%s %s: %s = %q, want %q", r.method, r.path, name, got, want)
		}
	}
}

// want checks a response's status and, for an error, its code and message.
func (r resp) want(t *testing.T, status int, codeAndMessage ...string) {
	t.Helper()
	if r.Code != status {
		t.Fatalf("status %d, want %d: %s", r.Code, status, r.body)
	}
	if len(codeAndMessage) == 0 {
		return
	}
	var e struct{ Error, Message string }
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e.Error != codeAndMessage[0] || (len(codeAndMessage) > 1 && e.Message != codeAndMessage[1]) {
		t.Fatalf("error %s %q, want %q", e.Error, e.Message, codeAndMessage)
	}
	if ct := r.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
}

// wantNoSession checks the session probe's answer when nobody is logged
// in: 204, with no body at all.
func (r resp) wantNoSession(t *testing.T) {
	t.Helper()
	r.want(t, http.StatusNoContent)
	if len(r.body) != 0 || r.Header().Get("Content-Type") != "" {
		t.Fatalf("204 with Content-Type %q and body %q", r.Header().Get("Content-Type"), r.body)
	}
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// sessionCookie returns the session cookie a response sets, or nil.
func (r resp) sessionCookie(t *testing.T) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range r.Result().Cookies() {
		if c.Name == edge.SessionCookie {
			if found != nil {
				t.Fatal("two session cookies in one response")
			}
			found = c
		}
	}
	return found
}

// checkLoginCookie checks the cookie a login sets.
func checkLoginCookie(t *testing.T, r resp) *http.Cookie {
	t.Helper()
	c := r.sessionCookie(t)
	if c == nil {
		t.Fatalf("no session cookie; Set-Cookie %q", r.Header().Values("Set-Cookie"))
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" ||
		c.MaxAge != int(identity.SessionMaxAge/time.Second) || c.Value == "" || !c.Expires.IsZero() {
		t.Fatalf("session cookie = %+v", c)
	}
	raw := strings.Join(r.Header().Values("Set-Cookie"), "\n")
	for _, part := range []string{edge.SessionCookie + "=", "Path=/", "Max-Age=43200", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(raw, part) {
			t.Fatalf("Set-Cookie %q lacks %q", raw, part)
		}
	}
	if strings.Contains(strings.ToLower(raw), "domain=") {
		t.Fatalf("Set-Cookie %q names a domain", raw)
	}
	return c
}

// sessionView is the body of a login and of GET /dashboard/api/session.
type sessionView struct {
	Member struct {
		ID, Email, Name, Role string
	}
	Organization struct{ ID, Name string }
	CSRFToken    string `json:"csrf_token"`
}

// browser is a logged-in page: its cookie and CSRF token.
type browser struct {
	cookie, csrf string
	view         sessionView
}

func (f *fixture) login(t *testing.T, email, password string) *browser {
	t.Helper()
	r := f.do(t, req{method: "POST", path: "/dashboard/api/login", body: map[string]string{"email": email, "password": password}})
	r.want(t, http.StatusOK)
	c := checkLoginCookie(t, r)
	b := &browser{cookie: c.Value}
	r.decode(t, &b.view)
	b.csrf = b.view.CSRFToken
	if b.csrf == "" || !strings.EqualFold(b.view.Member.Email, email) {
		t.Fatalf("login answered %s", r.body)
	}
	return b
}

// as fills in a request's session: cookie, CSRF token and the page's own
// Origin.
func (b *browser) as(r req) req {
	r.cookie, r.csrf, r.origin = b.cookie, b.csrf, origin
	return r
}

func digestOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func ids(t *testing.T, st store.Store, collection string) []string {
	t.Helper()
	var out []string
	err := st.View(context.Background(), func(r store.Reader) error {
		items, err := r.List(collection)
		for _, it := range items {
			out = append(out, it.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshot is the content of every collection the dashboard can change.
func (f *fixture) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := f.st.View(context.Background(), func(r store.Reader) error {
		projects, err := r.List("projects/" + f.orgID)
		if err != nil {
			return err
		}
		members, err := r.List("members/" + f.orgID)
		if err != nil {
			return err
		}
		cols := []string{"orgs", "projects/" + f.orgID, "keys/" + f.orgID, "key-digests", "members/" + f.orgID,
			"member-emails/" + f.orgID, "accounts", "invites", "invites-of/" + f.orgID, "login-sessions",
			"testing-sessions/" + f.orgID}
		for _, m := range members {
			cols = append(cols, "login-sessions-of/"+f.orgID+"/"+m.ID)
		}
		for _, p := range projects {
			cols = append(cols, "environments/"+f.orgID+"/"+p.ID, "flag-sets/"+f.orgID+"/"+p.ID)
		}
		for _, c := range cols {
			items, err := r.List(c)
			if err != nil {
				return err
			}
			for _, it := range items {
				fmt.Fprintf(&b, "%s/%s=%s\n", c, it.ID, it.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestStaticAndSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	r := f.do(t, req{method: "GET", path: "/dashboard"})
	r.want(t, http.StatusPermanentRedirect)
	if loc := r.Header().Get("Location"); loc != "/dashboard/" {
		t.Fatalf("GET /dashboard redirects to %q", loc)
	}

	index, err := os.ReadFile("web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dashboard/", "/dashboard/index.html"} {
		r = f.do(t, req{method: "GET", path: path})
		if path == "/dashboard/index.html" {
			// The file server sends its canonical address instead.
			r.want(t, http.StatusMovedPermanently)
			continue
		}
		r.want(t, http.StatusOK)
		if !bytes.Equal(r.body, index) {
			t.Fatalf("GET %s served %q, not web/index.html", path, r.body)
		}
		if ct := r.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("index Content-Type %q", ct)
		}
		if cc := r.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Fatalf("index Cache-Control %q, want no-cache", cc)
		}
	}
	for _, asset := range []string{"assets/app.js", "assets/app.css"} {
		want, err := os.ReadFile("web/" + asset)
		if err != nil {
			t.Fatal(err)
		}
		r = f.do(t, req{method: "GET", path: "/dashboard/" + asset})
		r.want(t, http.StatusOK)
		if !bytes.Equal(r.body, want) {
			t.Fatalf("GET %s served other bytes than web/%s", asset, asset)
		}
	}
	f.do(t, req{method: "HEAD", path: "/dashboard/"}).want(t, http.StatusOK)
	f.do(t, req{method: "GET", path: "/dashboard/no-such-file.js"}).want(t, http.StatusNotFound)
	f.do(t, req{method: "GET", path: "/dashboard/assets/no-such-file.js"}).want(t, http.StatusNotFound)
	r = f.do(t, req{method: "POST", path: "/dashboard/", body: "{}"})
	r.want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	if allow := r.Header().Get("Allow"); allow != "GET, HEAD" {
		t.Fatalf("405 Allow %q", allow)
	}

	// API answers, errors included (each do() checks the headers and
	// Cache-Control: no-store). A path no route has is 404 without any
	// authentication.
	f.do(t, req{method: "GET", path: "/dashboard/api/x"}).want(t, http.StatusNotFound, "NOT_FOUND", "no endpoint GET /dashboard/api/x")
	f.do(t, req{method: "GET", path: "/dashboard/api/session"}).wantNoSession(t)
	f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects"}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, req{method: "POST", path: "/dashboard/api/login", body: `{"email":`}).want(t, http.StatusBadRequest, "INVALID_REQUEST")
	// The route table has POST /dashboard/api/login only: another method
	// is the router's 405, naming the one there is.
	r = f.do(t, req{method: "GET", path: "/dashboard/api/login"})
	r.want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "GET is not allowed on /dashboard/api/login; use POST")
	if allow := r.Header().Get("Allow"); allow != "POST" {
		t.Fatalf("405 Allow %q", allow)
	}
	// The edge's own refusals carry the headers too.
	f.do(t, req{method: "POST", path: "/dashboard/api/login", plainHTTP: true, body: map[string]string{"email": ownerEmail, "password": ownerPassword}}).
		want(t, http.StatusForbidden, "HTTPS_REQUIRED", "All requests must use HTTPS")
	f.do(t, req{method: "GET", path: "/dashboard/", plainHTTP: true}).want(t, http.StatusForbidden, "HTTPS_REQUIRED")
	b := f.login(t, ownerEmail, ownerPassword)
	f.do(t, b.as(req{method: "GET", path: "/dashboard/api/session"})).want(t, http.StatusOK)
	f.do(t, b.as(req{method: "GET", path: "/dashboard/api/v1/projects"})).want(t, http.StatusOK)
	f.do(t, b.as(req{method: "GET", path: "/dashboard/api/v1/nope"})).want(t, http.StatusNotFound, "NOT_FOUND")
	f.do(t, b.as(req{method: "GET", path: "/dashboard/api/x"})).want(t, http.StatusNotFound, "NOT_FOUND")
	// Only /v1 is the REST API: its other routes are not reachable here.
	f.do(t, b.as(req{method: "GET", path: "/dashboard/api/ofrep/v1/configuration"})).want(t, http.StatusNotFound, "NOT_FOUND")
	f.do(t, b.as(req{method: "POST", path: "/dashboard/api/graphql", body: `{"query":"{viewer{member{id}}}"}`})).want(t, http.StatusNotFound, "NOT_FOUND")
}

func TestLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	r := f.do(t, req{method: "POST", path: "/dashboard/api/login", body: map[string]string{"email": " OWNER@example.com ", "password": ownerPassword}})
	r.want(t, http.StatusOK)
	c := checkLoginCookie(t, r)
	var v sessionView
	r.decode(t, &v)
	sess, m, err := f.svc.Identity.Session(ctx, c.Value)
	if err != nil {
		t.Fatalf("the cookie is no session: %v", err)
	}
	if m.ID != f.owner.ID || v.Member.ID != f.owner.ID || v.Member.Email != ownerEmail || v.Member.Role != "OWNER" ||
		v.Organization.ID != f.orgID || v.Organization.Name != orgName || v.CSRFToken != sess.CSRF {
		t.Fatalf("login answered %s", r.body)
	}
	if ids := ids(t, f.st, "login-sessions"); !slices.Equal(ids, []string{digestOf(c.Value)}) {
		t.Fatalf("login-sessions = %q", ids)
	}
	if ids := ids(t, f.st, "login-sessions-of/"+f.orgID+"/"+f.owner.ID); !slices.Equal(ids, []string{digestOf(c.Value)}) {
		t.Fatalf("the owner's login sessions = %q", ids)
	}

	// Every failure is one answer, with no cookie and no session.
	for _, body := range []any{
		map[string]string{"email": ownerEmail, "password": "wrong password"},
		map[string]string{"email": "nobody@example.com", "password": ownerPassword},
		map[string]string{"email": ownerEmail, "password": ""},
		map[string]string{"email": "", "password": ""},
	} {
		r := f.do(t, req{method: "POST", path: "/dashboard/api/login", body: body})
		r.want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgBadLogin)
		if len(r.Header().Values("Set-Cookie")) != 0 {
			t.Fatalf("a failed login set %q", r.Header().Values("Set-Cookie"))
		}
	}
	for _, body := range []string{"", "[]", `{"email":"owner@example.com","password":"x","extra":1}`} {
		r := f.do(t, req{method: "POST", path: "/dashboard/api/login", body: body})
		r.want(t, http.StatusBadRequest, "INVALID_REQUEST")
		if len(r.Header().Values("Set-Cookie")) != 0 {
			t.Fatal("a malformed login set a cookie")
		}
	}
	// A login from another site is refused before the password is tried.
	r = f.do(t, req{method: "POST", path: "/dashboard/api/login", origin: "https://evil.example",
		body: map[string]string{"email": ownerEmail, "password": ownerPassword}})
	r.want(t, http.StatusForbidden, "FORBIDDEN", msgCrossSite)
	if len(r.Header().Values("Set-Cookie")) != 0 {
		t.Fatal("a cross-site login set a cookie")
	}
	if n := len(ids(t, f.st, "login-sessions")); n != 1 {
		t.Fatalf("%d sessions after failed logins, want 1", n)
	}
	// The page's own origin may log in, without any CSRF token.
	r = f.do(t, req{method: "POST", path: "/dashboard/api/login", origin: origin,
		body: map[string]string{"email": ownerEmail, "password": ownerPassword}})
	r.want(t, http.StatusOK)
	checkLoginCookie(t, r)
}

// Logging in is limited per account (LoginPerAccount) and per client
// address (LoginPerIP), counting every attempt; each address and account
// has its own budget. The attempts are spent through the guard's limiter
// path, from the buckets "login-ip:<client key>" and
// "login-account:<address>".
func TestLoginRateLimits(t *testing.T) {
	t.Parallel()
	if dashboard.LoginPerAccount.Burst != 10 || dashboard.LoginPerIP.Burst != 30 {
		t.Fatalf("limits changed (%v, %v): adjust the test", dashboard.LoginPerAccount, dashboard.LoginPerIP)
	}
	f := newFixture(t)
	ctx := context.Background()
	const adaPassword = "ada's password 1"
	f.join(t, "ada@example.com", authz.RoleAdmin, adaPassword)
	login := func(ip, email, password string) resp {
		t.Helper()
		return f.do(t, req{method: "POST", path: "/dashboard/api/login", ip: ip,
			body: map[string]string{"email": email, "password": password}})
	}

	// Ten attempts on the owner's account, each from another address.
	for i := range dashboard.LoginPerAccount.Burst {
		login(fmt.Sprintf("198.51.100.%d", i+1), "Owner@Example.com", "wrong password").want(t, http.StatusUnauthorized)
	}
	// The eleventh is refused even with the right password, from anywhere.
	tooManyLogins(t, login("198.51.100.200", ownerEmail, ownerPassword))
	tooManyLogins(t, login("198.51.100.201", " OWNER@example.com", ownerPassword))
	// Ada's account has its own budget.
	login("198.51.100.200", "ada@example.com", adaPassword).want(t, http.StatusOK)

	// Thirty attempts from one address, each on another account.
	const ip = "203.0.113.7"
	for i := range dashboard.LoginPerIP.Burst {
		login(ip, fmt.Sprintf("nobody%d@example.com", i), "wrong password").want(t, http.StatusUnauthorized)
	}
	tooManyLogins(t, login(ip, "ada@example.com", adaPassword))
	// Another address has its own budget, and the refusal above did not
	// spend Ada's.
	login("203.0.113.8", "ada@example.com", adaPassword).want(t, http.StatusOK)

	// The buckets are the guard limiter's, by these names: emptied there,
	// they refuse the next login.
	drain := func(bucket string, l ratelimit.Limit) {
		t.Helper()
		if res, err := f.limiter.AllowN(ctx, bucket, l, l.Burst); err != nil || !res.Allowed {
			t.Fatalf("draining %s: %+v %v", bucket, res, err)
		}
	}
	const carolPassword = "carol's password 1"
	f.join(t, "carol@example.com", authz.RoleMember, carolPassword)
	drain("login-account:carol@example.com", dashboard.LoginPerAccount)
	tooManyLogins(t, login("192.0.2.50", "Carol@Example.com", carolPassword))
	if res, _ := f.limiter.AllowN(ctx, "login-ip:192.0.2.50", dashboard.LoginPerIP, dashboard.LoginPerIP.Burst); res.Allowed {
		t.Fatal("the refused login did not spend from login-ip:192.0.2.50")
	}
	const adaIP = "192.0.2.60"
	drain("login-ip:"+edge.ClientKey(adaIP), dashboard.LoginPerIP)
	tooManyLogins(t, login(adaIP, "ada@example.com", adaPassword))
}

// tooManyLogins checks a login refused by the login limits.
func tooManyLogins(t *testing.T, r resp) {
	t.Helper()
	r.want(t, http.StatusTooManyRequests, "RATE_LIMITED", msgTooManyLog)
	if r.sessionCookie(t) != nil {
		t.Fatal("a refused login set a cookie")
	}
	if s, err := strconv.Atoi(r.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", r.Header().Get("Retry-After"))
	}
}

func TestSessionAndLogout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := f.login(t, ownerEmail, ownerPassword)
	other := f.login(t, ownerEmail, ownerPassword)
	if b.cookie == other.cookie || b.csrf == other.csrf {
		t.Fatal("two logins share a token")
	}

	r := f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: b.cookie})
	r.want(t, http.StatusOK)
	var v sessionView
	r.decode(t, &v)
	if v.Member.ID != f.owner.ID || v.Member.Email != ownerEmail || v.Member.Name != "Owner" || v.Member.Role != "OWNER" ||
		v.Organization.ID != f.orgID || v.Organization.Name != orgName || v.CSRFToken != b.csrf {
		t.Fatalf("session = %s", r.body)
	}
	// Without a valid session the probe says so with 204, and the API
	// refuses.
	for _, cookie := range []string{"", "garbage", digestOf(b.cookie), b.csrf} {
		f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: cookie}).wantNoSession(t)
		f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects", cookie: cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	}

	// Logging out is a change: it needs the token.
	f.do(t, req{method: "POST", path: "/dashboard/api/logout", cookie: b.cookie}).want(t, http.StatusForbidden, "FORBIDDEN", msgCSRF)
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: b.cookie}).want(t, http.StatusOK)

	r = f.do(t, b.as(req{method: "POST", path: "/dashboard/api/logout"}))
	r.want(t, http.StatusNoContent)
	c := r.sessionCookie(t)
	if c == nil || c.MaxAge >= 0 || c.Value != "" || c.Path != "/" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("logout cookie = %+v", c)
	}
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: b.cookie}).wantNoSession(t)
	f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects", cookie: b.cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, b.as(req{method: "POST", path: "/dashboard/api/logout"})).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	if ids := ids(t, f.st, "login-sessions"); !slices.Equal(ids, []string{digestOf(other.cookie)}) {
		t.Fatalf("login-sessions after logout = %q", ids)
	}
	if ids := ids(t, f.st, "login-sessions-of/"+f.orgID+"/"+f.owner.ID); !slices.Equal(ids, []string{digestOf(other.cookie)}) {
		t.Fatalf("the owner's login sessions after logout = %q", ids)
	}
	// The other login goes on.
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: other.cookie}).want(t, http.StatusOK)
}

// Every change needs the session's CSRF token and, if the browser names
// one, the page's own origin; a refused change writes nothing.
func TestCSRF(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	b := f.login(t, ownerEmail, ownerPassword)
	other := f.login(t, ownerEmail, ownerPassword)
	if _, _, err := f.svc.Tenancy.CreateProject(ctx, f.root, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
		t.Fatal(err)
	}
	k, err := f.svc.Keys.CreateKey(ctx, f.root, "alpha", keys.CreateInput{Name: "ci", Type: "live", Environment: "production"})
	if err != nil {
		t.Fatal(err)
	}
	mem := f.join(t, "max@example.com", authz.RoleMember, "max's password 1")

	changes := []struct {
		req    req
		status int
	}{
		{req{method: "POST", path: "/dashboard/api/v1/projects", body: map[string]string{"slug": "beta"}}, http.StatusCreated},
		{req{method: "POST", path: "/dashboard/api/v1/projects/alpha/environments", body: map[string]string{"slug": "qa"}}, http.StatusCreated},
		{req{method: "POST", path: "/dashboard/api/v1/projects/alpha/api-keys", body: map[string]string{"name": "x", "type": "test", "environment": "staging"}}, http.StatusCreated},
		{req{method: "PUT", path: "/dashboard/api/v1/projects/alpha/environments/staging/flags",
			body: `{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}}}`}, http.StatusOK},
		{req{method: "POST", path: "/dashboard/api/v1/api-keys/" + k.ID + "/rotate"}, http.StatusOK},
		{req{method: "DELETE", path: "/dashboard/api/v1/api-keys/" + k.ID}, http.StatusOK},
		{req{method: "DELETE", path: "/dashboard/api/v1/projects/alpha"}, http.StatusNoContent},
		{req{method: "POST", path: "/dashboard/api/v1/members/invitations", body: map[string]string{"email": "new@example.com", "name": "New"}}, http.StatusCreated},
		{req{method: "DELETE", path: "/dashboard/api/v1/members/" + mem.ID}, http.StatusNoContent},
		{req{method: "POST", path: "/dashboard/api/logout"}, http.StatusNoContent},
	}
	// The session's token with its first character changed (to another
	// one: the token is random, and may start with either).
	wrongToken := "x" + b.csrf[1:]
	if b.csrf[0] == 'x' {
		wrongToken = "y" + b.csrf[1:]
	}
	before := f.snapshot(t)
	for _, c := range changes {
		for _, bad := range []struct {
			what, csrf, origin, message string
		}{
			{"no token", "", "", msgCSRF},
			{"no token, own origin", "", origin, msgCSRF},
			{"a wrong token", wrongToken, origin, msgCSRF},
			{"another session's token", other.csrf, origin, msgCSRF},
			{"the token as a prefix", b.csrf[:20], origin, msgCSRF},
			{"another site", b.csrf, "https://evil.example", msgCrossSite},
			{"a look-alike site", b.csrf, "https://" + host + ".evil.example", msgCrossSite},
			{"the same host on another port", b.csrf, "https://" + host + ":8443", msgCrossSite},
			{"the same host over http", b.csrf, "http://" + host, msgCrossSite},
			{"an opaque origin", b.csrf, "null", msgCrossSite},
		} {
			r := c.req
			r.cookie, r.csrf, r.origin = b.cookie, bad.csrf, bad.origin
			res := f.do(t, r)
			if res.Code != http.StatusForbidden {
				t.Fatalf("%s %s with %s: %d %s", r.method, r.path, bad.what, res.Code, res.body)
			}
			res.want(t, http.StatusForbidden, "FORBIDDEN", bad.message)
		}
	}
	if after := f.snapshot(t); after != before {
		t.Fatalf("refused changes wrote to the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Reads need no token, and other sites' reads are not answered with
	// anything a browser would hand them (no CORS headers).
	r := f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects", cookie: b.cookie, origin: "https://evil.example"})
	r.want(t, http.StatusOK)
	if acao := r.Header().Get("Access-Control-Allow-Origin"); acao != "" {
		t.Fatalf("Access-Control-Allow-Origin %q", acao)
	}

	// With the token, from the page's origin (or with no Origin at all),
	// every change goes through.
	for i, c := range changes {
		r := b.as(c.req)
		if i%2 == 1 {
			r.origin = ""
		}
		f.do(t, r).want(t, c.status)
	}
	if m, err := f.svc.Identity.MemberByID(ctx, f.orgID, mem.ID); err != nil || m != nil {
		t.Fatalf("the member is still there: %+v %v", m, err)
	}
	if n := len(ids(t, f.st, "invites")); n != 1 {
		t.Fatalf("%d invitations, want 1", n)
	}
	if n := len(ids(t, f.st, "invites-of/"+f.orgID)); n != 1 {
		t.Fatalf("%d invitations indexed, want 1", n)
	}
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: b.cookie}).wantNoSession(t)
	f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects", cookie: b.cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
}

// keyBody is a key as the REST API shows it.
type keyBody struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Type   string  `json:"type"`
	Key    *string `json:"key"`
	Status string  `json:"status"`
}

func TestRESTAPIAsTheMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	b := f.login(t, ownerEmail, ownerPassword)

	r := f.do(t, b.as(req{method: "POST", path: "/dashboard/api/v1/projects", body: map[string]string{"slug": "alpha", "name": "Alpha"}}))
	r.want(t, http.StatusCreated)
	var p struct {
		Slug, Name   string
		Environments []struct{ Slug string }
	}
	r.decode(t, &p)
	if p.Slug != "alpha" || p.Name != "Alpha" || len(p.Environments) != len(tenancy.DefaultEnvironments) {
		t.Fatalf("created project %s", r.body)
	}

	r = f.do(t, b.as(req{method: "POST", path: "/dashboard/api/v1/projects/alpha/api-keys",
		body: map[string]string{"name": "ci", "type": "live", "environment": "production"}}))
	r.want(t, http.StatusCreated)
	var created keyBody
	r.decode(t, &created)
	if created.Key == nil || created.Type != "live" || created.Name != "ci" || created.Status != "active" {
		t.Fatalf("created key %s", r.body)
	}
	secret := *created.Key
	rec, err := f.svc.Keys.LookupKey(ctx, apikey.DigestOf(secret))
	if err != nil || rec == nil || rec.ID != created.ID {
		t.Fatalf("LookupKey(created) = %+v, %v", rec, err)
	}
	if rec.OwnerID != f.owner.ID {
		t.Fatalf("a key made from the dashboard is owned by %q, not the member %q", rec.OwnerID, f.owner.ID)
	}

	r = f.do(t, b.as(req{method: "GET", path: "/dashboard/api/v1/projects/alpha/api-keys"}))
	r.want(t, http.StatusOK)
	var list struct{ Data []keyBody }
	r.decode(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != created.ID || list.Data[0].Key != nil || bytes.Contains(r.body, []byte(secret)) {
		t.Fatalf("key list %s", r.body)
	}

	r = f.do(t, b.as(req{method: "POST", path: "/dashboard/api/v1/api-keys/" + created.ID + "/rotate"}))
	r.want(t, http.StatusOK)
	var rotated keyBody
	r.decode(t, &rotated)
	if rotated.Key == nil || *rotated.Key == secret || rotated.ID != created.ID {
		t.Fatalf("rotated key %s", r.body)
	}
	if rec, _ := f.svc.Keys.LookupKey(ctx, apikey.DigestOf(secret)); rec != nil {
		t.Fatal("the rotated-out secret still works")
	}
	if rec, _ := f.svc.Keys.LookupKey(ctx, apikey.DigestOf(*rotated.Key)); rec == nil || rec.OwnerID != f.owner.ID {
		t.Fatalf("the new secret does not work, or is not the rotating member's: %+v", rec)
	}

	r = f.do(t, b.as(req{method: "DELETE", path: "/dashboard/api/v1/api-keys/" + created.ID}))
	r.want(t, http.StatusOK)
	var revoked keyBody
	r.decode(t, &revoked)
	if revoked.Status != "revoked" || revoked.Key != nil {
		t.Fatalf("revoked key %s", r.body)
	}
	if rec, _ := f.svc.Keys.LookupKey(ctx, apikey.DigestOf(*rotated.Key)); rec != nil {
		t.Fatal("a revoked key still works")
	}

	// A MEMBER reads; every write is refused with the API's own answer.
	const maxPassword = "max's password 1"
	f.join(t, "max@example.com", authz.RoleMember, maxPassword)
	m := f.login(t, "max@example.com", maxPassword)
	if m.view.Member.Role != "MEMBER" {
		t.Fatalf("member session %+v", m.view)
	}
	r = f.do(t, m.as(req{method: "GET", path: "/dashboard/api/v1/projects"}))
	r.want(t, http.StatusOK)
	if !bytes.Contains(r.body, []byte(`"slug":"alpha"`)) {
		t.Fatalf("member's project list %s", r.body)
	}
	f.do(t, m.as(req{method: "GET", path: "/dashboard/api/v1/projects/alpha/api-keys"})).want(t, http.StatusOK)
	f.do(t, m.as(req{method: "GET", path: "/dashboard/api/v1/members"})).want(t, http.StatusOK)
	before := f.snapshot(t)
	for _, w := range []req{
		{method: "POST", path: "/dashboard/api/v1/projects", body: map[string]string{"slug": "beta"}},
		{method: "DELETE", path: "/dashboard/api/v1/projects/alpha"},
		{method: "POST", path: "/dashboard/api/v1/projects/alpha/api-keys", body: map[string]any{"name": "x", "type": "test", "environment": "staging", "permissions": []string{"READ"}}},
		{method: "POST", path: "/dashboard/api/v1/api-keys/" + f.root.ID + "/rotate"},
		{method: "DELETE", path: "/dashboard/api/v1/api-keys/" + f.root.ID},
		{method: "POST", path: "/dashboard/api/v1/projects/alpha/environments", body: map[string]string{"slug": "qa"}},
		{method: "POST", path: "/dashboard/api/v1/members/invitations", body: map[string]string{"email": "x@example.com", "name": "X"}},
		{method: "DELETE", path: "/dashboard/api/v1/members/" + f.owner.ID},
	} {
		r := f.do(t, m.as(w))
		if r.Code != http.StatusForbidden {
			t.Fatalf("member %s %s: %d %s", w.method, w.path, r.Code, r.body)
		}
		r.want(t, http.StatusForbidden, "FORBIDDEN", msgReadOnly)
	}
	if f.snapshot(t) != before {
		t.Fatal("a MEMBER's refused writes changed the store")
	}
}

// A logged-in member has the admin key limit (edge.Config.Limits[Admin]),
// in the bucket "member:<id>" of the guard's limiter.
func TestMemberRateLimit(t *testing.T) {
	t.Parallel()
	limit := ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	f := newFixture(t, func(c *edge.Config) { c.Limits[apikey.Admin] = limit })
	ctx := context.Background()
	b := f.login(t, ownerEmail, ownerPassword)
	paths := []string{"/dashboard/api/session", "/dashboard/api/v1/projects", "/dashboard/api/v1/members"}
	for i, path := range paths {
		r := f.do(t, b.as(req{method: "GET", path: path}))
		r.want(t, http.StatusOK)
		if got := r.Header().Get("X-RateLimit-Limit"); got != "3" {
			t.Fatalf("%s: X-RateLimit-Limit %q", path, got)
		}
		if got := r.Header().Get("X-RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Fatalf("%s: X-RateLimit-Remaining %q, want %d", path, got, 2-i)
		}
		if reset, err := strconv.ParseInt(r.Header().Get("X-RateLimit-Reset"), 10, 64); err != nil || reset <= time.Now().Unix() {
			t.Fatalf("%s: X-RateLimit-Reset %q", path, r.Header().Get("X-RateLimit-Reset"))
		}
	}
	for _, r := range []req{
		{method: "GET", path: "/dashboard/api/session"},
		{method: "POST", path: "/dashboard/api/v1/projects", body: map[string]string{"slug": "alpha"}},
	} {
		res := f.do(t, b.as(r))
		res.want(t, http.StatusTooManyRequests, "RATE_LIMITED")
		if res.Header().Get("X-RateLimit-Remaining") != "0" || res.Header().Get("Retry-After") == "" {
			t.Fatalf("429 headers %v", res.Header())
		}
	}
	if ps, err := f.svc.Tenancy.ListProjects(ctx, f.root); err != nil || len(ps) != 0 {
		t.Fatalf("a rate-limited request created %+v (%v)", ps, err)
	}
	// The bucket is the member's, by id, in the guard's limiter.
	if res, err := f.limiter.Allow(ctx, "member:"+f.owner.ID, limit); err != nil || res.Allowed {
		t.Fatalf("bucket member:%s is not the one spent: %+v %v", f.owner.ID, res, err)
	}
	// The limit is per member.
	ada := f.join(t, "ada@example.com", authz.RoleAdmin, "ada's password 1")
	adaPage := f.login(t, "ada@example.com", "ada's password 1")
	r := f.do(t, adaPage.as(req{method: "GET", path: "/dashboard/api/session"}))
	r.want(t, http.StatusOK)
	if r.Header().Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("another member's remaining %q", r.Header().Get("X-RateLimit-Remaining"))
	}
	if res, err := f.limiter.Allow(ctx, "member:"+ada.ID, limit); err != nil || !res.Allowed || res.Remaining != 1 {
		t.Fatalf("bucket member:%s: %+v %v", ada.ID, res, err)
	}
	// Logging out spends nothing: it works with an empty bucket.
	f.do(t, b.as(req{method: "POST", path: "/dashboard/api/logout"})).want(t, http.StatusNoContent)
	if n := len(ids(t, f.st, "login-sessions-of/"+f.orgID+"/"+f.owner.ID)); n != 0 {
		t.Fatalf("%d sessions of the owner after logging out", n)
	}

	// By default a member gets an admin key's 500 a minute.
	d := newFixture(t)
	b = d.login(t, ownerEmail, ownerPassword)
	for _, path := range []string{"/dashboard/api/session", "/dashboard/api/v1/projects"} {
		r := d.do(t, b.as(req{method: "GET", path: path}))
		r.want(t, http.StatusOK)
		rem, err := strconv.Atoi(r.Header().Get("X-RateLimit-Remaining"))
		if r.Header().Get("X-RateLimit-Limit") != "500" || err != nil || rem < 490 || rem >= 500 {
			t.Fatalf("%s: rate-limit headers %v", path, r.Header())
		}
	}
}

// inviteBody is the answer to POST /dashboard/api/v1/members/invitations.
type inviteBody struct {
	Email, Name, Role string
	ExpiresAt         time.Time `json:"expires_at"`
	InviteURL         string    `json:"invite_url"`
}

// inviteLinkPrefix is what an invitation link starts with: the token
// follows in the fragment, which browsers never send.
const inviteLinkPrefix = "https://" + host + "/dashboard/#/invite/"

// invite creates an invitation from the dashboard and returns its token.
func (f *fixture) invite(t *testing.T, b *browser, email, name, role string) string {
	t.Helper()
	r := f.do(t, b.as(req{method: "POST", path: "/dashboard/api/v1/members/invitations",
		body: map[string]string{"email": email, "name": name, "role": role}}))
	r.want(t, http.StatusCreated)
	var inv inviteBody
	r.decode(t, &inv)
	token, ok := strings.CutPrefix(inv.InviteURL, inviteLinkPrefix)
	if !ok || len(token) != 43 {
		t.Fatalf("invite answered %s", r.body)
	}
	return token
}

func TestInvitesOverHTTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	owner := f.login(t, ownerEmail, ownerPassword)

	r := f.do(t, owner.as(req{method: "POST", path: "/dashboard/api/v1/members/invitations",
		body: map[string]string{"email": "New@Example.com", "name": "New Person", "role": "admin"}}))
	r.want(t, http.StatusCreated)
	var inv inviteBody
	r.decode(t, &inv)
	token, ok := strings.CutPrefix(inv.InviteURL, inviteLinkPrefix)
	if !ok || len(token) != 43 || inv.Email != "New@Example.com" || inv.Name != "New Person" || inv.Role != "ADMIN" ||
		time.Until(inv.ExpiresAt) < identity.InviteTTL-time.Minute {
		t.Fatalf("invite answered %s", r.body)
	}
	if got := ids(t, f.st, "invites"); !slices.Equal(got, []string{digestOf(token)}) {
		t.Fatalf("invites = %q, want the token's digest", got)
	}
	if got := ids(t, f.st, "invites-of/"+f.orgID); !slices.Equal(got, []string{digestOf(token)}) {
		t.Fatalf("invites-of = %q, want the token's digest", got)
	}

	// The invitation page needs no session; the token is in the body.
	lookup := func(r req) resp {
		t.Helper()
		r.method, r.path = "POST", "/dashboard/api/invites/lookup"
		return f.do(t, r)
	}
	r = lookup(req{body: map[string]string{"token": token}})
	r.want(t, http.StatusOK)
	var info struct{ Email, Name, Role, Organization string }
	r.decode(t, &info)
	if info.Email != "New@Example.com" || info.Name != "New Person" || info.Role != "ADMIN" || info.Organization != orgName {
		t.Fatalf("invitation %s", r.body)
	}
	lookup(req{body: map[string]string{"token": "garbage"}}).want(t, http.StatusNotFound, "NOT_FOUND")
	lookup(req{body: map[string]string{"token": ""}}).want(t, http.StatusNotFound, "NOT_FOUND")
	lookup(req{body: `{"token":`}).want(t, http.StatusBadRequest, "INVALID_REQUEST")
	lookup(req{body: map[string]string{"token": token}, origin: "https://evil.example"}).want(t, http.StatusForbidden, "FORBIDDEN", msgCrossSite)

	accept := func(r req) resp {
		t.Helper()
		r.method, r.path = "POST", "/dashboard/api/invites/accept"
		return f.do(t, r)
	}
	r = accept(req{body: map[string]string{"token": token, "password": "short"}})
	r.want(t, http.StatusBadRequest, "INVALID_REQUEST")
	if r.sessionCookie(t) != nil {
		t.Fatal("a refused acceptance set a cookie")
	}
	accept(req{body: map[string]string{"token": token, "password": "new person's password"}, origin: "https://evil.example"}).
		want(t, http.StatusForbidden, "FORBIDDEN", msgCrossSite)
	accept(req{body: map[string]string{"token": "garbage", "password": "new person's password"}}).want(t, http.StatusNotFound, "NOT_FOUND")
	if n := len(ids(t, f.st, "members/"+f.orgID)); n != 1 {
		t.Fatalf("%d members after refused acceptances", n)
	}

	r = accept(req{body: map[string]string{"token": token, "password": "new person's password"}, origin: origin})
	r.want(t, http.StatusOK)
	c := checkLoginCookie(t, r)
	var v sessionView
	r.decode(t, &v)
	if v.Member.Email != "New@Example.com" || v.Member.Role != "ADMIN" || v.Organization.ID != f.orgID || v.CSRFToken == "" {
		t.Fatalf("acceptance answered %s", r.body)
	}
	newcomer := &browser{cookie: c.Value, csrf: v.CSRFToken, view: v}
	r = f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: newcomer.cookie})
	r.want(t, http.StatusOK)
	var again sessionView
	r.decode(t, &again)
	if again.Member.ID != v.Member.ID || again.Member.Email != "New@Example.com" {
		t.Fatalf("the new member's session %s", r.body)
	}
	accept(req{body: map[string]string{"token": token, "password": "new person's password"}}).want(t, http.StatusNotFound, "NOT_FOUND")
	lookup(req{body: map[string]string{"token": token}}).want(t, http.StatusNotFound, "NOT_FOUND")
	if n := len(ids(t, f.st, "invites-of/"+f.orgID)); n != 0 {
		t.Fatalf("%d invitations indexed after acceptance", n)
	}

	// The new admin sees the members, may invite members but not owners.
	r = f.do(t, newcomer.as(req{method: "GET", path: "/dashboard/api/v1/members"}))
	r.want(t, http.StatusOK)
	var members struct {
		Data []struct{ ID, Email, Role string }
	}
	r.decode(t, &members)
	if len(members.Data) != 2 {
		t.Fatalf("members %s", r.body)
	}
	f.do(t, newcomer.as(req{method: "POST", path: "/dashboard/api/v1/members/invitations",
		body: map[string]string{"email": "boss@example.com", "name": "Boss", "role": "OWNER"}})).
		want(t, http.StatusForbidden, "FORBIDDEN", "Only owners invite owners")
	f.do(t, newcomer.as(req{method: "POST", path: "/dashboard/api/v1/members/invitations",
		body: map[string]string{"email": ownerEmail, "name": "Owner"}})).want(t, http.StatusConflict, "CONFLICT")
	f.do(t, newcomer.as(req{method: "POST", path: "/dashboard/api/v1/members/invitations",
		body: map[string]string{"email": "x@example.com", "name": "X", "role": "KING"}})).want(t, http.StatusBadRequest, "INVALID_REQUEST")

	// The owner removes them: their session ends at once.
	f.do(t, owner.as(req{method: "DELETE", path: "/dashboard/api/v1/members/" + v.Member.ID})).want(t, http.StatusNoContent)
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: newcomer.cookie}).wantNoSession(t)
	f.do(t, req{method: "GET", path: "/dashboard/api/v1/members", cookie: newcomer.cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, owner.as(req{method: "DELETE", path: "/dashboard/api/v1/members/" + f.owner.ID})).want(t, http.StatusConflict, "CONFLICT")

	// Invited to another organization, the owner accepts with the password
	// they have, and is logged in to the organization just joined; any
	// other password gets the one refusal.
	ctx := context.Background()
	other, err := f.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OrgName: "Other", OwnerEmail: "boss@example.com", OwnerName: "Boss"})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = f.svc.Identity.InviteMember(ctx, other.Principal, identity.InviteInput{Email: ownerEmail, Name: "Owner", Role: "MEMBER"})
	if err != nil {
		t.Fatal(err)
	}
	accept(req{body: map[string]string{"token": token, "password": "not the owner's password"}}).
		want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgInviteRefused)
	r = accept(req{body: map[string]string{"token": token, "password": ownerPassword}})
	r.want(t, http.StatusOK)
	checkLoginCookie(t, r)
	r.decode(t, &v)
	if v.Organization.ID != other.Organization.ID || v.Organization.Name != "Other" || v.Member.Role != "MEMBER" {
		t.Fatalf("accepting an invitation to another organization answered %s", r.body)
	}

	// Boss has no password (bootstrapped without one) and is a member of
	// Other: invited here, no password accepts, with the same refusal.
	token = f.invite(t, owner, "boss@example.com", "Boss", "MEMBER")
	accept(req{body: map[string]string{"token": token, "password": "boss's new password"}}).
		want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgInviteRefused)
	if m, err := f.svc.Identity.ListMembers(ctx, f.root); err != nil || len(m) != 1 {
		t.Fatalf("members after refused acceptances: %+v %v", m, err)
	}
}

// Accepting an invitation proves a password, so it spends from the login
// limits of the client address and of the invited address.
func TestInviteAcceptRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	owner := f.login(t, ownerEmail, ownerPassword)
	token := f.invite(t, owner, "new@example.com", "New", "MEMBER")
	bucket := "login-account:new@example.com"
	if res, err := f.limiter.AllowN(ctx, bucket, dashboard.LoginPerAccount, dashboard.LoginPerAccount.Burst); err != nil || !res.Allowed {
		t.Fatalf("draining %s: %+v %v", bucket, res, err)
	}
	r := f.do(t, req{method: "POST", path: "/dashboard/api/invites/accept",
		body: map[string]string{"token": token, "password": "new person's password"}})
	tooManyLogins(t, r)
	if _, _, err := f.svc.Identity.InviteInfo(ctx, token); err != nil {
		t.Fatalf("a refused acceptance used the invitation: %v", err)
	}
}

// TestOriginMustBeHTTPS: a change from the dashboard's host over plain
// http is another origin (a page an attacker injected into an http
// response of the same host), and browsers that mark a request as
// cross-site with Sec-Fetch-Site are refused whatever Origin says. The
// page's own https origin works.
func TestOriginMustBeHTTPS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := f.login(t, ownerEmail, ownerPassword)
	loginBody := map[string]string{"email": ownerEmail, "password": ownerPassword}
	before := len(ids(t, f.st, "login-sessions"))
	for _, bad := range []struct {
		what   string
		origin string
		header map[string]string
	}{
		{"http origin of the same host", "http://" + host, nil},
		{"http origin despite same-origin fetch metadata", "http://" + host, map[string]string{"Sec-Fetch-Site": "same-origin"}},
		{"cross-site fetch metadata", "", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"cross-site fetch metadata, own Origin", origin, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site fetch metadata", "", map[string]string{"Sec-Fetch-Site": "same-site"}},
	} {
		// Logging in (no credential), a REST change (session) and logging
		// out (session, unmetered).
		for _, r := range []req{
			{method: "POST", path: "/dashboard/api/login", body: loginBody},
			b.as(req{method: "POST", path: "/dashboard/api/v1/projects", body: map[string]string{"slug": "alpha"}}),
			b.as(req{method: "POST", path: "/dashboard/api/logout"}),
		} {
			r.origin, r.header = bad.origin, bad.header
			res := f.do(t, r)
			if res.Code != http.StatusForbidden {
				t.Fatalf("%s %s with %s: %d %s", r.method, r.path, bad.what, res.Code, res.body)
			}
			res.want(t, http.StatusForbidden, "FORBIDDEN", msgCrossSite)
			if res.sessionCookie(t) != nil {
				t.Fatalf("%s with %s set a cookie", r.path, bad.what)
			}
		}
	}
	if n := len(ids(t, f.st, "login-sessions")); n != before {
		t.Fatalf("%d login sessions after refused logins, want %d", n, before)
	}
	if ps, err := f.svc.Tenancy.ListProjects(context.Background(), f.root); err != nil || len(ps) != 0 {
		t.Fatalf("a refused change created %+v (%v)", ps, err)
	}
	// The page's own origin, as browsers describe it, works.
	same := map[string]string{"Sec-Fetch-Site": "same-origin"}
	f.do(t, req{method: "POST", path: "/dashboard/api/login", body: loginBody, origin: origin, header: same}).want(t, http.StatusOK)
	r := b.as(req{method: "POST", path: "/dashboard/api/v1/projects", body: map[string]string{"slug": "alpha"}})
	r.header = same
	f.do(t, r).want(t, http.StatusCreated)
	f.do(t, b.as(req{method: "POST", path: "/dashboard/api/logout"})).want(t, http.StatusNoContent)
}

// TestInviteTokensOnlyInBodies: an invitation token is a password's
// equivalent, so it never travels in a path, where server and proxy logs
// would keep it.
func TestInviteTokensOnlyInBodies(t *testing.T) {
	t.Parallel()
	// No route could carry one: the dashboard's own routes have no path
	// parameter but the static files' (served from the embedded assets,
	// never looked up as anything else), and every parameter of the table
	// names one of the API's nouns.
	nouns := map[string]bool{"project": true, "env": true, "flag": true, "id": true, "key": true, "identity": true, "version": true, "webhook": true, "delivery": true}
	for _, r := range routes.All() {
		params := routeParams(r.Pattern)
		lower := strings.ToLower(string(r.Name) + " " + r.Pattern)
		switch {
		case strings.Contains(lower, "invit") && len(params) > 0:
			t.Errorf("route %s %s %s carries %v in its path", r.Name, r.Method, r.Pattern, params)
		case strings.HasPrefix(r.Pattern, "/dashboard"):
			if r.Name == routes.DashboardAsset && slices.Equal(params, []string{"path..."}) &&
				strings.HasPrefix(r.Pattern, "/dashboard/assets/") {
				continue
			}
			if len(params) > 0 {
				t.Errorf("dashboard route %s %s %s has path parameters %v", r.Name, r.Method, r.Pattern, params)
			}
		default:
			for _, p := range params {
				if !nouns[p] {
					t.Errorf("route %s %s %s has parameter {%s}", r.Name, r.Method, r.Pattern, p)
				}
			}
		}
	}
	for _, n := range []routes.Name{routes.InviteLookup, routes.InviteAccept} {
		if r := routes.ByName(n); r == nil || r.Method != "POST" || r.Credential != routes.Public {
			t.Errorf("route %s: %+v", n, r)
		}
	}

	f := newFixture(t)
	ctx := context.Background()
	owner := f.login(t, ownerEmail, ownerPassword)
	token := f.invite(t, owner, "secret.person@example.com", "Secret Person", "ADMIN")
	// A token of the same shape that is no invitation.
	fake := strings.Repeat("A", len(token))
	// The old paths are no endpoint: the same 404 as for a token that is
	// no invitation, telling nothing of the invitation.
	for _, c := range []struct{ method, path string }{
		{"GET", "/dashboard/api/invites/%s"},
		{"POST", "/dashboard/api/invites/%s/accept"},
		{"GET", "/dashboard/api/invites/lookup/%s"},
	} {
		var body any
		if c.method == "POST" {
			body = map[string]string{"password": "a new password 1"}
		}
		real := f.do(t, req{method: c.method, path: fmt.Sprintf(c.path, token), body: body})
		none := f.do(t, req{method: c.method, path: fmt.Sprintf(c.path, fake), body: body})
		real.want(t, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("no endpoint %s %s", c.method, fmt.Sprintf(c.path, token)))
		if got, want := string(real.body), strings.ReplaceAll(string(none.body), fake, token); got != want || none.Code != real.Code {
			t.Fatalf("%s %s tells a real invitation from a fake one:\n%s\n%s", c.method, c.path, real.body, none.body)
		}
		for _, secret := range []string{"secret.person", "Secret Person", orgName, "ADMIN"} {
			if bytes.Contains(real.body, []byte(secret)) {
				t.Fatalf("%s %s reveals %q: %s", c.method, c.path, secret, real.body)
			}
		}
		if len(real.Header().Values("Set-Cookie")) != 0 {
			t.Fatalf("%s %s set a cookie", c.method, c.path)
		}
	}
	if _, _, err := f.svc.Identity.InviteInfo(ctx, token); err != nil {
		t.Fatalf("the invitation is gone after requests to the old paths: %v", err)
	}
	// With the token in the body, both work.
	r := f.do(t, req{method: "POST", path: "/dashboard/api/invites/lookup", body: map[string]string{"token": token}})
	r.want(t, http.StatusOK)
	if !bytes.Contains(r.body, []byte(`"email":"secret.person@example.com"`)) {
		t.Fatalf("lookup answered %s", r.body)
	}
	r = f.do(t, req{method: "POST", path: "/dashboard/api/invites/accept", origin: origin,
		body: map[string]string{"token": token, "password": "a new password 1"}})
	r.want(t, http.StatusOK)
	checkLoginCookie(t, r)
	if m, err := f.svc.Identity.ListMembers(ctx, f.root); err != nil || len(m) != 2 {
		t.Fatalf("members after acceptance: %+v %v", m, err)
	}
}

// routeParams lists the parameters of a pattern, "{path...}" as "path...".
func routeParams(pattern string) []string {
	var out []string
	for _, seg := range strings.Split(pattern, "/") {
		if p, ok := strings.CutPrefix(seg, "{"); ok {
			out = append(out, strings.TrimSuffix(p, "}"))
		}
	}
	return out
}

// TestSessionProbe: the page's first request asks who is logged in. Not
// being logged in is no error, so that no browser console shows a 401 on
// every visit: 204, with no body.
func TestSessionProbe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.do(t, req{method: "GET", path: "/dashboard/api/session"})
	r.wantNoSession(t)
	if len(r.Header().Values("Set-Cookie")) != 0 || r.Header().Get("Www-Authenticate") != "" {
		t.Fatalf("204 headers %v", r.Header())
	}
	// Nor does it spend from the unauthenticated budget of the address.
	for range edge.DefaultUnauthenticatedLimit + 1 {
		f.do(t, req{method: "GET", path: "/dashboard/api/session", ip: "198.51.100.9"}).wantNoSession(t)
	}
	b := f.login(t, ownerEmail, ownerPassword)
	r = f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: b.cookie})
	r.want(t, http.StatusOK)
	var v sessionView
	r.decode(t, &v)
	if v.Member.ID != f.owner.ID || v.CSRFToken != b.csrf {
		t.Fatalf("session %s", r.body)
	}
}

// TestClientBucketsPerIPv6Network: one customer line commonly gets a whole
// IPv6 /64, so login attempts and failed authentication are limited per
// /64, not per address.
func TestClientBucketsPerIPv6Network(t *testing.T) {
	t.Parallel()
	// Over an hour, so that nothing refills while the test runs.
	f := newFixture(t, func(c *edge.Config) { c.Unauthenticated = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3} })
	const (
		first     = "2001:db8:1:2::1"
		sibling   = "2001:db8:1:2::99"
		elsewhere = "2001:db8:1:3::1"
	)
	if edge.ClientKey(first) != edge.ClientKey(sibling) || edge.ClientKey(first) == edge.ClientKey(elsewhere) {
		t.Fatalf("ClientKey: %s %s %s", edge.ClientKey(first), edge.ClientKey(sibling), edge.ClientKey(elsewhere))
	}
	login := func(ip, email string) resp {
		t.Helper()
		return f.do(t, req{method: "POST", path: "/dashboard/api/login", ip: ip,
			body: map[string]string{"email": email, "password": "wrong password"}})
	}
	// All but three attempts of the network's budget spent already (every
	// attempt costs a password hash; the bucket refills one every 30
	// seconds), then three from one address: the next, from another
	// address of the /64, is refused.
	ctx := context.Background()
	if res, err := f.limiter.AllowN(ctx, "login-ip:"+edge.ClientKey(first), dashboard.LoginPerIP, dashboard.LoginPerIP.Burst-3); err != nil || !res.Allowed {
		t.Fatalf("spending the network's login budget: %+v %v", res, err)
	}
	for i := range 3 {
		login(first, fmt.Sprintf("nobody%d@example.com", i)).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgBadLogin)
	}
	tooManyLogins(t, login(sibling, "someone@example.com"))
	login(elsewhere, "someone@example.com").want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgBadLogin)

	// Failed authentication: three bad session cookies from one address,
	// then another address of its /64 is refused before any lookup.
	api := func(ip string) resp {
		t.Helper()
		return f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects", cookie: "garbage", ip: ip})
	}
	for range 3 {
		api(first).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	}
	r := api(sibling)
	r.want(t, http.StatusTooManyRequests, "RATE_LIMITED")
	if r.Header().Get("Retry-After") == "" {
		t.Fatalf("429 headers %v", r.Header())
	}
	api(elsewhere).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
}

package dashboard_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/api"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/dashboard"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/ratelimit"
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

// The dashboard's own refusals, word for word.
const (
	msgCSRF       = "This request lacks the page's security token; reload the page and try again"
	msgCrossSite  = "Cross-site requests are not allowed"
	msgBadLogin   = "Wrong e-mail address or password"
	msgLogIn      = "Please log in"
	msgReadOnly   = "Your role (Member) is read-only; ask an owner or admin of your organization"
	msgTooManyLog = "Too many login attempts; try again in a few minutes"
)

// fixture is a dashboard over a real (file) store, with an organization
// whose owner has a password.
type fixture struct {
	st    store.Store
	svc   *admin.Service
	h     *dashboard.Handler
	orgID string
	owner admin.Member
	root  *apikey.Record
	// ip is the client address requests come from unless they say.
	ip string
}

func newFixture(t *testing.T, configure ...func(*dashboard.Config)) *fixture {
	t.Helper()
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := admin.New(st)
	cfg := dashboard.Config{
		Admin:   svc,
		API:     api.New(svc, evaluation.New(svc, evaluation.NewRegistry(svc, 0)), nil),
		Limiter: ratelimit.NewMemory(),
	}
	for _, c := range configure {
		c(&cfg)
	}
	res, err := svc.Bootstrap(context.Background(), admin.BootstrapInput{
		OrgName: orgName, OwnerEmail: ownerEmail, OwnerName: "Owner", OwnerPassword: ownerPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, svc: svc, h: dashboard.New(cfg), orgID: res.Organization.ID, owner: res.Owner,
		root: res.Record, ip: "192.0.2.1"}
}

// join makes a member of the organization (through the services).
func (f *fixture) join(t *testing.T, email string, role admin.Role, password string) *admin.Member {
	t.Helper()
	ctx := context.Background()
	token, _, err := f.svc.InviteMember(ctx, f.root, admin.InviteInput{Email: email, Name: "Name of " + email, Role: string(role)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.svc.AcceptInvite(ctx, token, password)
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
}

type resp struct {
	*httptest.ResponseRecorder
	body []byte
}

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
	hr := httptest.NewRequest(r.method, r.path, body)
	hr.Host = host
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: r.cookie})
	}
	if r.csrf != "" {
		hr.Header.Set(dashboard.HeaderCSRF, r.csrf)
	}
	if r.origin != "" {
		hr.Header.Set("Origin", r.origin)
	}
	ip := r.ip
	if ip == "" {
		ip = f.ip
	}
	w := httptest.NewRecorder()
	f.h.Serve(w, hr, ip)
	checkSecurityHeaders(t, r, w.Header())
	if strings.HasPrefix(r.path, "/dashboard/api/") {
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("%s %s: Cache-Control %q, want no-store", r.method, r.path, cc)
		}
	}
	return resp{w, w.Body.Bytes()}
}

// checkSecurityHeaders is applied to every response of every test.
func checkSecurityHeaders(t *testing.T, r req, h http.Header) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Security-Policy": csp,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
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
		if c.Name == dashboard.CookieName {
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
		c.MaxAge != int(admin.SessionMaxAge/time.Second) || c.Value == "" || !c.Expires.IsZero() {
		t.Fatalf("session cookie = %+v", c)
	}
	raw := strings.Join(r.Header().Values("Set-Cookie"), "\n")
	for _, part := range []string{dashboard.CookieName + "=", "Path=/", "Max-Age=43200", "HttpOnly", "Secure", "SameSite=Strict"} {
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
		cols := []string{"orgs", "projects/" + f.orgID, "keys/" + f.orgID, "key-digests", "members/" + f.orgID,
			"member-emails/" + f.orgID, "accounts", "invites", "login-sessions"}
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
	f.do(t, req{method: "POST", path: "/dashboard/", body: "{}"}).want(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")

	// API answers, errors included (each do() checks the headers and
	// Cache-Control: no-store).
	f.do(t, req{method: "GET", path: "/dashboard/api/x"}).want(t, http.StatusNotFound, "NOT_FOUND", "no endpoint GET /dashboard/api/x")
	f.do(t, req{method: "GET", path: "/dashboard/api/session"}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects"}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, req{method: "POST", path: "/dashboard/api/login", body: `{"email":`}).want(t, http.StatusBadRequest, "INVALID_REQUEST")
	f.do(t, req{method: "GET", path: "/dashboard/api/login"}).want(t, http.StatusNotFound, "NOT_FOUND")
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
	sess, m, err := f.svc.Session(ctx, c.Value)
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
// has its own budget.
func TestLoginRateLimits(t *testing.T) {
	t.Parallel()
	if dashboard.LoginPerAccount.Burst != 10 || dashboard.LoginPerIP.Burst != 30 {
		t.Fatalf("limits changed (%v, %v): adjust the test", dashboard.LoginPerAccount, dashboard.LoginPerIP)
	}
	f := newFixture(t)
	const adaPassword = "ada's password 1"
	f.join(t, "ada@example.com", admin.RoleAdmin, adaPassword)
	login := func(ip, email, password string) resp {
		t.Helper()
		return f.do(t, req{method: "POST", path: "/dashboard/api/login", ip: ip,
			body: map[string]string{"email": email, "password": password}})
	}
	tooMany := func(r resp) {
		t.Helper()
		r.want(t, http.StatusTooManyRequests, "RATE_LIMITED", msgTooManyLog)
		if r.sessionCookie(t) != nil {
			t.Fatal("a refused login set a cookie")
		}
		if s, err := strconv.Atoi(r.Header().Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("Retry-After %q", r.Header().Get("Retry-After"))
		}
	}

	// Ten attempts on the owner's account, each from another address.
	for i := range dashboard.LoginPerAccount.Burst {
		login(fmt.Sprintf("198.51.100.%d", i+1), "Owner@Example.com", "wrong password").want(t, http.StatusUnauthorized)
	}
	// The eleventh is refused even with the right password, from anywhere.
	tooMany(login("198.51.100.200", ownerEmail, ownerPassword))
	tooMany(login("198.51.100.201", " OWNER@example.com", ownerPassword))
	// Ada's account has its own budget.
	login("198.51.100.200", "ada@example.com", adaPassword).want(t, http.StatusOK)

	// Thirty attempts from one address, each on another account.
	const ip = "203.0.113.7"
	for i := range dashboard.LoginPerIP.Burst {
		login(ip, fmt.Sprintf("nobody%d@example.com", i), "wrong password").want(t, http.StatusUnauthorized)
	}
	tooMany(login(ip, "ada@example.com", adaPassword))
	// Another address has its own budget, and the refusal above did not
	// spend Ada's.
	login("203.0.113.8", "ada@example.com", adaPassword).want(t, http.StatusOK)
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
	for _, cookie := range []string{"", "garbage", digestOf(b.cookie), b.csrf} {
		f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
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
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: b.cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, req{method: "GET", path: "/dashboard/api/v1/projects", cookie: b.cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, b.as(req{method: "POST", path: "/dashboard/api/logout"})).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	if ids := ids(t, f.st, "login-sessions"); !slices.Equal(ids, []string{digestOf(other.cookie)}) {
		t.Fatalf("login-sessions after logout = %q", ids)
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
	if _, err := f.svc.CreateProject(ctx, f.root, admin.CreateProjectInput{Slug: "alpha"}); err != nil {
		t.Fatal(err)
	}
	k, err := f.svc.CreateKey(ctx, f.root, "alpha", admin.CreateKeyInput{Name: "ci", Type: "live", Environment: "production"})
	if err != nil {
		t.Fatal(err)
	}
	mem := f.join(t, "max@example.com", admin.RoleMember, "max's password 1")

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
		{req{method: "POST", path: "/dashboard/api/members/invite", body: map[string]string{"email": "new@example.com", "name": "New"}}, http.StatusCreated},
		{req{method: "DELETE", path: "/dashboard/api/members/" + mem.ID}, http.StatusNoContent},
		{req{method: "POST", path: "/dashboard/api/logout"}, http.StatusNoContent},
	}
	before := f.snapshot(t)
	for _, c := range changes {
		for _, bad := range []struct {
			what, csrf, origin, message string
		}{
			{"no token", "", "", msgCSRF},
			{"no token, own origin", "", origin, msgCSRF},
			{"a wrong token", "x" + b.csrf[1:], origin, msgCSRF},
			{"another session's token", other.csrf, origin, msgCSRF},
			{"the token as a prefix", b.csrf[:20], origin, msgCSRF},
			{"another site", b.csrf, "https://evil.example", msgCrossSite},
			{"a look-alike site", b.csrf, "https://" + host + ".evil.example", msgCrossSite},
			{"the same host on another port", b.csrf, "https://" + host + ":8443", msgCrossSite},
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
	if m, err := f.svc.MemberByID(ctx, f.orgID, mem.ID); err != nil || m != nil {
		t.Fatalf("the member is still there: %+v %v", m, err)
	}
	if n := len(ids(t, f.st, "invites")); n != 1 {
		t.Fatalf("%d invitations, want 1", n)
	}
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: b.cookie}).want(t, http.StatusUnauthorized)
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
	if p.Slug != "alpha" || p.Name != "Alpha" || len(p.Environments) != len(admin.DefaultEnvironments) {
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
	rec, err := f.svc.LookupKey(ctx, apikey.DigestOf(secret))
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
	if rec, _ := f.svc.LookupKey(ctx, apikey.DigestOf(secret)); rec != nil {
		t.Fatal("the rotated-out secret still works")
	}
	if rec, _ := f.svc.LookupKey(ctx, apikey.DigestOf(*rotated.Key)); rec == nil {
		t.Fatal("the new secret does not work")
	}

	r = f.do(t, b.as(req{method: "DELETE", path: "/dashboard/api/v1/api-keys/" + created.ID}))
	r.want(t, http.StatusOK)
	var revoked keyBody
	r.decode(t, &revoked)
	if revoked.Status != "revoked" || revoked.Key != nil {
		t.Fatalf("revoked key %s", r.body)
	}
	if rec, _ := f.svc.LookupKey(ctx, apikey.DigestOf(*rotated.Key)); rec != nil {
		t.Fatal("a revoked key still works")
	}

	// A MEMBER reads; every write is refused with the API's own answer.
	const maxPassword = "max's password 1"
	f.join(t, "max@example.com", admin.RoleMember, maxPassword)
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
	before := f.snapshot(t)
	for _, w := range []req{
		{method: "POST", path: "/dashboard/api/v1/projects", body: map[string]string{"slug": "beta"}},
		{method: "DELETE", path: "/dashboard/api/v1/projects/alpha"},
		{method: "POST", path: "/dashboard/api/v1/projects/alpha/api-keys", body: map[string]any{"name": "x", "type": "test", "environment": "staging", "permissions": []string{"READ"}}},
		{method: "POST", path: "/dashboard/api/v1/api-keys/" + f.root.ID + "/rotate"},
		{method: "DELETE", path: "/dashboard/api/v1/api-keys/" + f.root.ID},
		{method: "POST", path: "/dashboard/api/v1/projects/alpha/environments", body: map[string]string{"slug": "qa"}},
		{method: "POST", path: "/dashboard/api/members/invite", body: map[string]string{"email": "x@example.com", "name": "X"}},
		{method: "DELETE", path: "/dashboard/api/members/" + f.owner.ID},
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

func TestMemberRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *dashboard.Config) {
		c.MemberLimit = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	})
	b := f.login(t, ownerEmail, ownerPassword)
	paths := []string{"/dashboard/api/session", "/dashboard/api/v1/projects", "/dashboard/api/members"}
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
	if ps, err := f.svc.ListProjects(context.Background(), f.root); err != nil || len(ps) != 0 {
		t.Fatalf("a rate-limited request created %+v (%v)", ps, err)
	}
	// The limit is per member.
	f.join(t, "ada@example.com", admin.RoleAdmin, "ada's password 1")
	ada := f.login(t, "ada@example.com", "ada's password 1")
	r := f.do(t, ada.as(req{method: "GET", path: "/dashboard/api/session"}))
	r.want(t, http.StatusOK)
	if r.Header().Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("another member's remaining %q", r.Header().Get("X-RateLimit-Remaining"))
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

func TestInvitesOverHTTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	owner := f.login(t, ownerEmail, ownerPassword)

	r := f.do(t, owner.as(req{method: "POST", path: "/dashboard/api/members/invite",
		body: map[string]string{"email": "New@Example.com", "name": "New Person", "role": "admin"}}))
	r.want(t, http.StatusCreated)
	var inv struct {
		Email, Name, Role string
		ExpiresAt         time.Time `json:"expires_at"`
		InviteURL         string    `json:"invite_url"`
	}
	r.decode(t, &inv)
	const prefix = "https://" + host + "/dashboard/#/invite/"
	token, ok := strings.CutPrefix(inv.InviteURL, prefix)
	if !ok || len(token) != 43 || inv.Email != "New@Example.com" || inv.Name != "New Person" || inv.Role != "ADMIN" ||
		time.Until(inv.ExpiresAt) < admin.InviteTTL-time.Minute {
		t.Fatalf("invite answered %s", r.body)
	}
	if got := ids(t, f.st, "invites"); !slices.Equal(got, []string{digestOf(token)}) {
		t.Fatalf("invites = %q, want the token's digest", got)
	}

	// The invitation page needs no session.
	r = f.do(t, req{method: "GET", path: "/dashboard/api/invites/" + token})
	r.want(t, http.StatusOK)
	var info struct{ Email, Name, Role, Organization string }
	r.decode(t, &info)
	if info.Email != "New@Example.com" || info.Name != "New Person" || info.Role != "ADMIN" || info.Organization != orgName {
		t.Fatalf("invitation %s", r.body)
	}
	f.do(t, req{method: "GET", path: "/dashboard/api/invites/garbage"}).want(t, http.StatusNotFound, "NOT_FOUND")

	accept := func(r req) resp {
		t.Helper()
		r.method, r.path = "POST", "/dashboard/api/invites/"+token+"/accept"
		return f.do(t, r)
	}
	r = accept(req{body: map[string]string{"password": "short"}})
	r.want(t, http.StatusBadRequest, "INVALID_REQUEST")
	if r.sessionCookie(t) != nil {
		t.Fatal("a refused acceptance set a cookie")
	}
	accept(req{body: map[string]string{"password": "new person's password"}, origin: "https://evil.example"}).
		want(t, http.StatusForbidden, "FORBIDDEN", msgCrossSite)
	if n := len(ids(t, f.st, "members/"+f.orgID)); n != 1 {
		t.Fatalf("%d members after refused acceptances", n)
	}

	r = accept(req{body: map[string]string{"password": "new person's password"}, origin: origin})
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
	accept(req{body: map[string]string{"password": "new person's password"}}).want(t, http.StatusNotFound, "NOT_FOUND")
	f.do(t, req{method: "GET", path: "/dashboard/api/invites/" + token}).want(t, http.StatusNotFound, "NOT_FOUND")

	// The new admin sees the members, may invite members but not owners.
	r = f.do(t, newcomer.as(req{method: "GET", path: "/dashboard/api/members"}))
	r.want(t, http.StatusOK)
	var members struct {
		Data []struct{ ID, Email, Role string }
	}
	r.decode(t, &members)
	if len(members.Data) != 2 {
		t.Fatalf("members %s", r.body)
	}
	f.do(t, newcomer.as(req{method: "POST", path: "/dashboard/api/members/invite",
		body: map[string]string{"email": "boss@example.com", "name": "Boss", "role": "OWNER"}})).
		want(t, http.StatusForbidden, "FORBIDDEN", "Only owners invite owners")
	f.do(t, newcomer.as(req{method: "POST", path: "/dashboard/api/members/invite",
		body: map[string]string{"email": ownerEmail, "name": "Owner"}})).want(t, http.StatusConflict, "CONFLICT")
	f.do(t, newcomer.as(req{method: "POST", path: "/dashboard/api/members/invite",
		body: map[string]string{"email": "x@example.com", "name": "X", "role": "KING"}})).want(t, http.StatusBadRequest, "INVALID_REQUEST")

	// The owner removes them: their session ends at once.
	f.do(t, owner.as(req{method: "DELETE", path: "/dashboard/api/members/" + v.Member.ID})).want(t, http.StatusNoContent)
	f.do(t, req{method: "GET", path: "/dashboard/api/session", cookie: newcomer.cookie}).want(t, http.StatusUnauthorized, "UNAUTHORIZED", msgLogIn)
	f.do(t, owner.as(req{method: "DELETE", path: "/dashboard/api/members/" + f.owner.ID})).want(t, http.StatusConflict, "CONFLICT")

	// Invited to another organization, the owner accepts with the password
	// they have, and is logged in to the organization just joined.
	ctx := context.Background()
	other, err := f.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OrgName: "Other", OwnerEmail: "boss@example.com", OwnerName: "Boss"})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = f.svc.InviteMember(ctx, other.Record, admin.InviteInput{Email: ownerEmail, Name: "Owner", Role: "MEMBER"})
	if err != nil {
		t.Fatal(err)
	}
	accept(req{body: map[string]string{"password": "not the owner's password"}}).
		want(t, http.StatusUnauthorized, "UNAUTHORIZED", "This address already has a FlagBridge password; enter it to accept the invitation")
	r = accept(req{body: map[string]string{"password": ownerPassword}})
	r.want(t, http.StatusOK)
	checkLoginCookie(t, r)
	r.decode(t, &v)
	if v.Organization.ID != other.Organization.ID || v.Organization.Name != "Other" || v.Member.Role != "MEMBER" {
		t.Fatalf("accepting an invitation to another organization answered %s", r.body)
	}
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// The dashboard's end-to-end tests: the embedded front end in a real
// headless Chromium, against a real Caddy over HTTPS that the browser
// trusts through the test CA. Any console error, uncaught exception or CSP
// violation fails a test (see testenv.Browser).

const (
	ownerEmail    = "owner@example.com"
	ownerName     = "Olive Owner"
	ownerPassword = "correct horse battery staple"
	sessionCookie = "__Host-flagbridge_session"
)

// dashboard is one test's server, its first owner and a browser.
type dashboard struct {
	t     *testing.T
	c     *testenv.Caddy
	b     *testenv.Browser
	admin string // the organization-wide admin key, for setup and checks from Go
}

func startDashboard(t *testing.T) *dashboard {
	t.Helper()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	d := &dashboard{t: t, c: c, admin: bootstrapOwner(t, c)}
	d.b = testenv.StartBrowser(t, testenv.BrowserOptions{TrustCA: c.RootCA(), ExpectHTTPErrorsUnder: "/dashboard/api/"})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the dashboard's requests (Caddy's access log):\n%s", dashboardRequests(readFile(t, c.AccessLog)))
		}
	})
	return d
}

// bootstrapOwner creates the organization with its first owner, who gets a
// dashboard password (read from standard input), and returns the admin key.
func bootstrapOwner(t *testing.T, c *testenv.Caddy) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, "flagbridge", "bootstrap", "--config", c.Config, "--adapter", c.Adapter,
		"--email", ownerEmail, "--name", ownerName, "--password-stdin")
	cmd.Env, cmd.Dir = c.Env(), c.Dir
	cmd.Stdin = strings.NewReader(ownerPassword + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	key := keyPattern.FindString(string(out))
	if key == "" {
		t.Fatalf("no key in bootstrap output:\n%s", out)
	}
	return key
}

// dashboardRequests summarizes an access log: method, path and status of
// each request under /dashboard.
func dashboardRequests(log string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(log, "\n") {
		var e struct {
			TS      float64 `json:"ts"`
			Status  int     `json:"status"`
			Request struct {
				Method string `json:"method"`
				URI    string `json:"uri"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || !strings.HasPrefix(e.Request.URI, "/dashboard") {
			continue
		}
		fmt.Fprintf(&b, "  %s %d %s %s\n", time.Unix(0, int64(e.TS*1e9)).Format("15:04:05.000"), e.Status, e.Request.Method, e.Request.URI)
	}
	return b.String()
}

// run runs browser actions in tab ctx, failing the test on an error.
func (d *dashboard) run(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		d.shot(ctx, "failed")
		d.t.Fatalf("%s: %v", what, err)
	}
}

func (d *dashboard) shot(ctx context.Context, name string) {
	d.t.Helper()
	d.b.Screenshot(ctx, name)
}

// evalJS evaluates a JavaScript expression in tab ctx.
func evalJS[T any](d *dashboard, ctx context.Context, expr string) T {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		d.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitText waits until the element sel shows text (a substring).
func (d *dashboard) waitText(ctx context.Context, sel, text string) string {
	d.t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(pctx, chromedp.PollFunction[bool](`(sel, text) => {
		const el = document.querySelector(sel);
		if (!el || el.closest('[hidden]')) return false;
		return (['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) ? el.value : el.textContent).includes(text);
	}`, chromedp.WithPollingArgs(sel, text), chromedp.WithPollingTimeout(15*time.Second)))
	got := d.textOf(ctx, sel)
	if err != nil {
		d.shot(ctx, "failed")
		d.t.Fatalf("waiting for %q in %s: %v (it shows %q)", text, sel, err, got)
	}
	return got
}

// textOf is the text (or a form field's value) of the first element
// matching sel, or "".
func (d *dashboard) textOf(ctx context.Context, sel string) string {
	d.t.Helper()
	b, _ := json.Marshal(sel)
	return evalJS[string](d, ctx, `(() => {
		const el = document.querySelector(`+string(b)+`);
		if (!el) return "";
		return ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) ? el.value : el.textContent;
	})()`)
}

// visible waits until sel is visible.
func (d *dashboard) visible(ctx context.Context, sel string) {
	d.t.Helper()
	d.run(ctx, "waiting for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// gone waits until nothing matches sel.
func (d *dashboard) gone(ctx context.Context, sel string) {
	d.t.Helper()
	d.run(ctx, "waiting for "+sel+" to go", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// click clicks sel once it is visible and enabled.
func (d *dashboard) click(ctx context.Context, sel string) {
	d.t.Helper()
	d.run(ctx, "clicking "+sel, chromedp.WaitEnabled(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// typeInto types text into the input sel, as a person would: it empties
// and focuses the field, then inserts the text through the browser's input
// pipeline (input events included). chromedp.SendKeys is avoided: in
// v0.23 it reads the node's attributes without holding the node's lock,
// which the race detector rightly reports while the page changes them.
func (d *dashboard) typeInto(ctx context.Context, sel, text string) {
	d.t.Helper()
	q, _ := json.Marshal(sel)
	empty := `(el => { el.value = ""; el.dispatchEvent(new Event("input", {bubbles: true})); el.focus(); return true; })(document.querySelector(` + string(q) + `))`
	d.run(ctx, "typing into "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			if _, err := chromedp.Evaluate[bool](empty)(ctx, t); err != nil {
				return chromedp.Void{}, err
			}
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
			return chromedp.Void{}, err
		},
	)
}

// goTo switches the app to a route (#/keys?...) and waits for its page.
func (d *dashboard) goTo(ctx context.Context, route string) {
	d.t.Helper()
	b, _ := json.Marshal("#/" + route)
	if evalJS[bool](d, ctx, `location.hash === `+string(b)) {
		d.run(ctx, "reloading", chromedp.Reload()) // the same hash would not render again
	} else {
		evalJS[string](d, ctx, `location.hash = `+string(b))
	}
	page, _, _ := strings.Cut(route, "?")
	d.visible(ctx, "#page-"+page+" h1")
}

// login logs in through the form and waits for the app.
func (d *dashboard) login(ctx context.Context, email, password string) {
	d.t.Helper()
	// Without a fragment this is a new document even from #/login, and
	// logged out the app shows the login form.
	d.run(ctx, "opening the dashboard", chromedp.Navigate(d.c.URL("/dashboard/")))
	d.visible(ctx, "#login-email")
	d.typeInto(ctx, "#login-email", email)
	d.typeInto(ctx, "#login-password", password)
	d.click(ctx, "#login-submit")
	d.visible(ctx, "#logout")
}

// cookie returns the browser's session cookie for the server.
func (d *dashboard) cookie(ctx context.Context) *network.Cookie {
	d.t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{d.c.URL("/dashboard/")}})
	if err != nil {
		d.t.Fatalf("reading cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// sessionRequest calls the dashboard API from Go with a session cookie.
func (d *dashboard) sessionRequest(method, path, cookie string, header map[string]string, body string) reply {
	d.t.Helper()
	req, err := http.NewRequest(method, d.c.URL(path), strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(d.t, d.c, req)
}

// evaluate asks /v1/evaluate from Go with key.
func (d *dashboard) evaluate(key, flag string) reply {
	d.t.Helper()
	return call(d.t, d.c, "POST", "/v1/evaluate", key, `{"flag":"`+flag+`","context":{"targetingKey":"user-1"}}`)
}

// pageHoldsSecret reports whether secret is anywhere in the page: its HTML,
// the values of its form fields, or its storage.
func (d *dashboard) pageHoldsSecret(ctx context.Context, secret string) bool {
	d.t.Helper()
	state := evalJS[string](d, ctx, `[
		document.documentElement.outerHTML,
		...[...document.querySelectorAll('input, textarea')].map((e) => e.value),
		JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.title,
	].join('\n')`)
	return strings.Contains(state, secret)
}

// TestDashboardLogin: a wrong password keeps the login form and shows the
// server's message; the right one opens the app; logging out returns to
// the form and ends the session on the server.
func TestDashboardLogin(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	tab := d.b.Tab()

	d.run(tab, "opening the dashboard", chromedp.Navigate(d.c.URL("/dashboard/")))
	d.visible(tab, "#login-email")
	if loc := evalJS[string](d, tab, `location.hash`); loc != "#/login" {
		t.Fatalf("logged out, the dashboard opened at %q, not #/login", loc)
	}
	// The login page logs nothing at all: asking whether there is a
	// session is no error when there is none.
	d.b.CheckConsole()
	if notes := d.b.TakeNotes(); len(notes) > 0 {
		t.Errorf("the login page logged %q", notes)
	}
	d.shot(tab, "login")

	// Wrong password: the server's message, still on the login form, and
	// the button was disabled while the request ran.
	evalJS[bool](d, tab, `window.sawBusy = false;
		new MutationObserver(() => {
			if (document.querySelector('#login-submit')?.disabled) window.sawBusy = true;
		}).observe(document.body, {subtree: true, attributes: true, childList: true}); true`)
	d.typeInto(tab, "#login-email", ownerEmail)
	d.typeInto(tab, "#login-password", "not the password")
	d.click(tab, "#login-submit")
	if msg := d.waitText(tab, "#login-error", "Wrong e-mail address or password"); strings.TrimSpace(msg) != "Wrong e-mail address or password" {
		t.Errorf("login error shows %q", msg)
	}
	if !evalJS[bool](d, tab, `window.sawBusy`) {
		t.Error("the login button was not disabled while logging in")
	}
	if evalJS[bool](d, tab, `!!document.querySelector('#logout') || location.hash !== '#/login'`) {
		t.Fatal("a wrong password left the login page")
	}
	if d.cookie(tab) != nil {
		t.Fatal("a wrong password set a session cookie")
	}
	d.shot(tab, "login-wrong-password")

	// The right password opens the app, with the header.
	d.typeInto(tab, "#login-password", ownerPassword)
	d.click(tab, "#login-submit")
	d.visible(tab, "#logout")
	d.waitText(tab, "#org-name", "Default")
	d.waitText(tab, "#user-name", ownerName)
	d.waitText(tab, ".topbar .badge", "Owner")
	d.waitText(tab, "#page-flags", "No projects yet")
	d.shot(tab, "logged-in")

	c := d.cookie(tab)
	if c == nil {
		t.Fatal("no session cookie after logging in")
	}
	if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" {
		t.Errorf("session cookie: HttpOnly=%v Secure=%v SameSite=%q Path=%q", c.HTTPOnly, c.Secure, c.SameSite, c.Path)
	}
	if evalJS[bool](d, tab, `document.cookie.includes('flagbridge')`) {
		t.Error("the page's script can read the session cookie")
	}
	mustStatus(t, d.sessionRequest("GET", "/dashboard/api/session", c.Value, nil, ""), 200)

	// A reload keeps the session (the page asks GET /session again).
	d.run(tab, "reloading", chromedp.Reload())
	d.visible(tab, "#logout")

	// Every page renders (with its empty state) and navigation works.
	for _, page := range []struct{ route, text string }{
		{"projects", "No projects yet"},
		{"keys", "No projects yet"},
		{"members", ownerEmail},
		{"flags", "No projects yet"},
	} {
		d.click(tab, "#nav-"+page.route)
		d.waitText(tab, "#page-"+page.route, page.text)
		if cur := evalJS[string](d, tab, `document.querySelector('[aria-current=page]')?.id ?? ''`); cur != "nav-"+page.route {
			t.Errorf("on %s the navigation marks %q", page.route, cur)
		}
		d.shot(tab, "page-"+page.route)
	}

	// Log out: the login page, and the old cookie no longer works.
	d.click(tab, "#logout")
	d.visible(tab, "#login-email")
	d.waitText(tab, ".auth-card", "You have logged out.")
	if loc := evalJS[string](d, tab, `location.hash`); loc != "#/login" {
		t.Errorf("after logging out the page is at %q", loc)
	}
	d.shot(tab, "logged-out")
	// The old cookie logs in no more: the session probe says so (204, no
	// session), and the API refuses it.
	r := d.sessionRequest("GET", "/dashboard/api/session", c.Value, nil, "")
	if r.Status != 204 {
		t.Fatalf("GET /dashboard/api/session with the old cookie: %d %s", r.Status, r.Body)
	}
	if r := d.sessionRequest("GET", "/dashboard/api/v1/projects", c.Value, nil, ""); r.Status != 401 || !strings.Contains(r.Body, "Please log in") {
		t.Fatalf("GET /dashboard/api/v1/projects with the old cookie: %d %s", r.Status, r.Body)
	}
	if d.cookie(tab) != nil {
		t.Error("the session cookie is still in the browser after logging out")
	}
	d.run(tab, "reloading", chromedp.Reload())
	d.visible(tab, "#login-email")

	// The console check catches CSP violations: an inline style is one.
	d.b.CheckConsole()
	evalJS[bool](d, tab, `document.body.setAttribute('style', 'color: red'); true`)
	problems := d.b.TakeProblems()
	if len(problems) == 0 {
		t.Fatal("an inline style (a CSP violation) was not reported")
	}
	for _, p := range problems {
		if !strings.Contains(p, "Content Security Policy") {
			t.Errorf("unexpected console error: %s", p)
		}
	}
}

// TestDashboardCSRF: the session cookie alone does not make a state change,
// nor does a request from another origin.
func TestDashboardCSRF(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	tab := d.b.Tab()
	d.login(tab, ownerEmail, ownerPassword)
	c := d.cookie(tab)
	if c == nil {
		t.Fatal("no session cookie")
	}
	var s struct {
		CSRF string `json:"csrf_token"`
	}
	r := mustStatus(t, d.sessionRequest("GET", "/dashboard/api/session", c.Value, nil, ""), 200)
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil || s.CSRF == "" {
		t.Fatalf("session: %v %s", err, r.Body)
	}
	body := `{"slug":"csrf","name":"CSRF"}`

	// The cookie without the token.
	r = d.sessionRequest("POST", "/dashboard/api/v1/projects", c.Value, nil, body)
	if r.Status != 403 || !strings.Contains(r.Body, `"error":"FORBIDDEN"`) {
		t.Errorf("POST without X-CSRF-Token: %d %s", r.Status, r.Body)
	}
	// A wrong token.
	r = d.sessionRequest("POST", "/dashboard/api/v1/projects", c.Value, map[string]string{"X-CSRF-Token": "x" + s.CSRF}, body)
	if r.Status != 403 {
		t.Errorf("POST with a wrong X-CSRF-Token: %d %s", r.Status, r.Body)
	}
	// Another site's page, even holding the token.
	r = d.sessionRequest("POST", "/dashboard/api/v1/projects", c.Value,
		map[string]string{"X-CSRF-Token": s.CSRF, "Origin": "https://evil.example"}, body)
	if r.Status != 403 || !strings.Contains(r.Body, "Cross-site") {
		t.Errorf("POST from a foreign Origin: %d %s", r.Status, r.Body)
	}
	// The other state-changing routes check too.
	if r := d.sessionRequest("POST", "/dashboard/api/v1/members/invitations", c.Value, nil, `{"email":"x@example.com","name":"X"}`); r.Status != 403 {
		t.Errorf("invite without X-CSRF-Token: %d %s", r.Status, r.Body)
	}
	if r := d.sessionRequest("POST", "/dashboard/api/logout", c.Value, map[string]string{"Origin": "https://evil.example", "X-CSRF-Token": s.CSRF}, ""); r.Status != 403 {
		t.Errorf("logout from a foreign Origin: %d %s", r.Status, r.Body)
	}
	// Nothing was created.
	if r := call(t, d.c, "GET", "/v1/projects", d.admin, ""); !strings.Contains(r.Body, `"data":[]`) {
		t.Fatalf("a refused request created a project: %s", r.Body)
	}
	// The same request with the token, from the page's origin, works: the
	// refusals above were for the token and the origin alone.
	mustStatus(t, d.sessionRequest("POST", "/dashboard/api/v1/projects", c.Value,
		map[string]string{"X-CSRF-Token": s.CSRF, "Origin": strings.TrimSuffix(d.c.URL(""), "/")}, body), 201)
	d.goTo(tab, "projects")
	d.waitText(tab, "#projects-list", "CSRF")
	d.shot(tab, "projects")
}

// TestDashboardAPIKeys: create a project and an environment, generate a key
// that is shown exactly once, use it, rotate it and revoke it.
func TestDashboardAPIKeys(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	tab := d.b.Tab()
	d.login(tab, ownerEmail, ownerPassword)

	// Projects: create one (its slug follows the name) and an environment.
	d.goTo(tab, "projects")
	d.waitText(tab, "#projects-list", "No projects yet")
	d.click(tab, "#new-project")
	d.visible(tab, "#new-project-dialog #project-name")
	d.typeInto(tab, "#project-name", "Web Shop")
	if slug := evalJS[string](d, tab, `document.querySelector('#project-slug').value`); slug != "web-shop" {
		t.Errorf("slug derived from the name: %q", slug)
	}
	d.shot(tab, "new-project-dialog")
	d.click(tab, "#new-project-dialog button[type=submit]")
	d.gone(tab, "#new-project-dialog")
	d.visible(tab, `[data-project="web-shop"] [data-environment="production"]`)
	d.click(tab, `[data-project="web-shop"] .new-environment`)
	d.visible(tab, "#new-environment-dialog #environment-name")
	d.typeInto(tab, "#environment-name", "QA")
	d.click(tab, "#new-environment-dialog button[type=submit]")
	d.gone(tab, "#new-environment-dialog")
	d.visible(tab, `[data-project="web-shop"] [data-environment="qa"]`)
	d.shot(tab, "projects")

	// A flag to evaluate, set from Go.
	mustStatus(t, call(t, d.c, "PUT", "/v1/projects/web-shop/environments/production/flags/new-checkout", d.admin,
		`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`), 201)

	// Generate a key: it is shown once, in the dialog.
	d.goTo(tab, "keys?project=web-shop")
	d.waitText(tab, "#keys-list", "No keys yet")
	d.shot(tab, "keys-empty")
	d.click(tab, "#new-key")
	d.visible(tab, "#new-key-dialog #key-name")
	d.typeInto(tab, "#key-name", "Checkout service")
	d.click(tab, "#key-type-live")
	if env := evalJS[string](d, tab, `document.querySelector('#key-environment').value`); env != "production" {
		t.Errorf("default environment: %q", env)
	}
	d.shot(tab, "new-key-dialog")
	d.click(tab, "#new-key-dialog button[type=submit]")
	d.visible(tab, "#secret-dialog #secret-value")
	key := d.textOf(tab, "#secret-value")
	if !regexp.MustCompile(`^fb_live_[0-9A-Za-z]{36}$`).MatchString(key) {
		t.Fatalf("the dialog shows %q, not a live key", key)
	}
	d.waitText(tab, "#secret-dialog", "only time")
	d.click(tab, "#secret-copy")
	d.waitText(tab, "#secret-copy", "C") // "Copied", or "Press Ctrl+C" without clipboard access
	d.shot(tab, "key-shown-once")
	d.click(tab, "#secret-done")
	d.gone(tab, "#secret-dialog")
	row := `#keys-list tr[data-key-name="Checkout service"]`
	d.visible(tab, row)
	hint := strings.TrimSpace(d.textOf(tab, row+" .key-hint"))
	if !strings.HasPrefix(hint, "fb_live_") || !strings.HasSuffix(hint, key[len(key)-4:]) || strings.Contains(hint, key) {
		t.Errorf("the list shows the hint %q for %s", hint, key)
	}
	if d.pageHoldsSecret(tab, key) {
		t.Fatal("the key is still in the page after its dialog closed")
	}
	d.run(tab, "reloading", chromedp.Reload())
	d.visible(tab, row)
	d.waitText(tab, row, hint)
	if d.pageHoldsSecret(tab, key) {
		t.Fatal("the key is in the page after a reload")
	}
	d.waitText(tab, row, "Active")
	d.shot(tab, "keys-after-reload")

	// The key works from Go.
	r := d.evaluate(key, "new-checkout")
	if r.Status != 200 || !strings.Contains(r.Body, `"value":true`) {
		t.Fatalf("evaluating with the new key: %d %s", r.Status, r.Body)
	}

	// Rotate: the new secret is shown once; the old one stops at once.
	d.click(tab, row+" .rotate-key")
	d.visible(tab, "#rotate-key-dialog #rotate-grace")
	d.shot(tab, "rotate-dialog")
	d.click(tab, "#rotate-key-dialog button[type=submit]")
	d.visible(tab, "#secret-dialog #secret-value")
	rotated := d.textOf(tab, "#secret-value")
	if !regexp.MustCompile(`^fb_live_[0-9A-Za-z]{36}$`).MatchString(rotated) || rotated == key {
		t.Fatalf("rotation shows %q", rotated)
	}
	d.waitText(tab, "#secret-dialog", "previous secret has stopped working")
	d.shot(tab, "key-rotated")
	d.click(tab, "#secret-done")
	d.gone(tab, "#secret-dialog")
	if d.pageHoldsSecret(tab, rotated) {
		t.Fatal("the rotated key is still in the page after its dialog closed")
	}
	eventually(t, 3*time.Second, "the old secret refused after rotation", func() bool {
		return d.evaluate(key, "new-checkout").Status == 401
	})
	if r := d.evaluate(rotated, "new-checkout"); r.Status != 200 || !strings.Contains(r.Body, `"value":true`) {
		t.Fatalf("evaluating with the rotated key: %d %s", r.Status, r.Body)
	}

	// Revoke, after confirming: the key is refused.
	d.click(tab, row+" .revoke-key")
	d.visible(tab, "#revoke-key-dialog")
	d.waitText(tab, "#revoke-key-dialog", "cannot be undone")
	d.shot(tab, "revoke-confirm")
	d.click(tab, "#revoke-key-dialog button[type=submit]")
	d.gone(tab, "#revoke-key-dialog")
	d.waitText(tab, row, "Revoked")
	if n := evalJS[int](d, tab, `document.querySelectorAll('#keys-list .revoke-key, #keys-list .rotate-key').length`); n != 0 {
		t.Errorf("a revoked key still offers %d actions", n)
	}
	d.shot(tab, "key-revoked")
	eventually(t, 3*time.Second, "the revoked key refused", func() bool {
		return d.evaluate(rotated, "new-checkout").Status == 401
	})
}

// TestDashboardClientKey: a client key from the key dialog is READ only
// and takes allowed origins instead of limits; the list shows its origins,
// and its Origins dialog changes them (a refused origin's message shown in
// the dialog, nothing changed).
func TestDashboardClientKey(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	mustStatus(t, call(t, d.c, "POST", "/v1/projects", d.admin, `{"slug":"shop","name":"Shop"}`), 201)
	tab := d.b.Tab()
	d.login(tab, ownerEmail, ownerPassword)

	d.goTo(tab, "keys?project=shop")
	d.waitText(tab, "#keys-list", "No keys yet")
	d.click(tab, "#new-key")
	d.visible(tab, "#new-key-dialog #key-name")
	d.typeInto(tab, "#key-name", "Storefront")
	if evalJS[bool](d, tab, `!document.querySelector('#key-origins').closest('[hidden]')`) {
		t.Error("a live key's dialog shows allowed origins")
	}
	d.click(tab, "#key-type-client")
	d.visible(tab, "#key-origins")
	if !evalJS[bool](d, tab, `document.querySelector('#key-perm-write').disabled && !document.querySelector('#key-perm-write').checked`) {
		t.Error("a client key may be given WRITE in the dialog")
	}
	if !evalJS[bool](d, tab, `!!document.querySelector('#key-limits-section').closest('[hidden]')`) {
		t.Error("a client key's dialog offers limits")
	}
	d.typeInto(tab, "#key-origins", "https://shop.example.com\nhttp://localhost:5173")
	d.shot(tab, "new-client-key")
	d.click(tab, "#new-key-dialog button[type=submit]")
	d.visible(tab, "#secret-dialog #secret-value")
	if key := d.textOf(tab, "#secret-value"); !regexp.MustCompile(`^fb_client_[0-9A-Za-z]{36}$`).MatchString(key) {
		t.Fatalf("the dialog shows %q, not a client key", key)
	}
	d.click(tab, "#secret-done")
	d.gone(tab, "#secret-dialog")

	row := `#keys-list tr[data-key-name="Storefront"]`
	d.visible(tab, row)
	if got := evalJS[[]string](d, tab, `[...document.querySelectorAll('`+row+` .key-origin')].map((e) => e.textContent)`); strings.Join(got, " ") != "https://shop.example.com http://localhost:5173" {
		t.Errorf("the list shows the origins as %q", got)
	}
	d.waitText(tab, row, "Client")
	if evalJS[bool](d, tab, `!!document.querySelector('`+row+` .edit-limits')`) {
		t.Error("a client key offers limits")
	}
	id := evalJS[string](d, tab, `document.querySelector('`+row+`').dataset.keyId`)
	stored := func() string {
		t.Helper()
		r := mustStatus(t, call(t, d.c, "GET", "/v1/api-keys/"+id, d.admin, ""), 200)
		var k struct {
			Type           string
			Permissions    []string
			AllowedOrigins []string `json:"allowed_origins"`
		}
		if err := json.Unmarshal([]byte(r.Body), &k); err != nil {
			t.Fatalf("key: %v\n%s", err, r.Body)
		}
		return fmt.Sprintf("%s %v %v", k.Type, k.Permissions, k.AllowedOrigins)
	}
	if got, want := stored(), "client [READ] [https://shop.example.com http://localhost:5173]"; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}

	// An origin the server refuses: its message, and nothing changed.
	edit := "#edit-origins-dialog"
	d.click(tab, row+" .edit-origins")
	d.visible(tab, edit+" #key-origins")
	if got := d.textOf(tab, edit+" #key-origins"); got != "https://shop.example.com\nhttp://localhost:5173" {
		t.Errorf("the dialog holds %q", got)
	}
	d.typeInto(tab, edit+" #key-origins", "http://shop.example.com")
	d.click(tab, edit+" button[type=submit]")
	d.waitText(tab, edit+" [role=alert]", "only https origins are allowed")
	if got, want := stored(), "client [READ] [https://shop.example.com http://localhost:5173]"; got != want {
		t.Fatalf("stored %q after a refused change", got)
	}
	d.typeInto(tab, edit+" #key-origins", "https://shop.example.com\nhttps://www.shop.example.com")
	d.click(tab, edit+" button[type=submit]")
	d.gone(tab, edit)
	d.waitText(tab, row+" .key-origins", "www.shop")
	if got, want := stored(), "client [READ] [https://shop.example.com https://www.shop.example.com]"; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
	d.shot(tab, "client-key-origins")
}

// TestDashboardKeyLimits: generate a key with two limits (one in shadow),
// a quota and an identity in the key dialog, see them in the list, then
// edit them: a window the server refuses shows its message in the dialog
// and changes nothing; removing the quota and changing a limit sends
// exactly those fields (null for the quota); removing every limit and the
// identity sends nulls. The REST API confirms what is stored each time.
func TestDashboardKeyLimits(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	mustStatus(t, call(t, d.c, "POST", "/v1/projects", d.admin, `{"slug":"shop","name":"Shop"}`), 201)
	tab := d.b.Tab()
	d.login(tab, ownerEmail, ownerPassword)

	d.goTo(tab, "keys?project=shop")
	d.waitText(tab, "#keys-list", "No keys yet")
	d.click(tab, "#new-key")
	d.visible(tab, "#new-key-dialog #key-name")
	d.typeInto(tab, "#key-name", "Partner API")
	d.waitText(tab, "#key-limits-default", "10,000/1m") // a live key's default
	d.click(tab, "#key-type-test")
	d.waitText(tab, "#key-limits-default", "1,000/1m")
	d.click(tab, "#key-type-live")
	d.waitText(tab, "#key-limits-default", "10,000/1m")

	// Up to four limits; then the button is disabled until one goes.
	limit := func(dlg string, n int, part string) string {
		return fmt.Sprintf("%s #key-limits .limit-row:nth-child(%d) .limit-%s", dlg, n, part)
	}
	rows := func() int { return evalJS[int](d, tab, `document.querySelectorAll('#key-limits .limit-row').length`) }
	for range 4 {
		d.click(tab, "#key-limit-add")
	}
	if n := rows(); n != 4 || !evalJS[bool](d, tab, `document.querySelector('#key-limit-add').disabled`) {
		t.Fatalf("after adding four limits: %d rows, and the add button is still enabled", n)
	}
	d.click(tab, limit("#new-key-dialog", 4, "remove"))
	d.click(tab, limit("#new-key-dialog", 3, "remove"))
	if n := rows(); n != 2 || evalJS[bool](d, tab, `document.querySelector('#key-limit-add').disabled`) {
		t.Fatalf("after removing two limits: %d rows, and the add button disabled", n)
	}
	create := "#new-key-dialog"
	d.typeInto(tab, limit(create, 1, "name"), "burst")
	d.typeInto(tab, limit(create, 1, "requests"), "100")
	d.typeInto(tab, limit(create, 1, "window"), "1s")
	d.typeInto(tab, limit(create, 2, "name"), "sustained")
	d.typeInto(tab, limit(create, 2, "requests"), "10000")
	if w := d.textOf(tab, limit(create, 2, "window")); w != "1m" {
		t.Errorf("a new limit's window is %q, not 1m", w)
	}
	d.click(tab, limit(create, 2, "shadow"))
	d.typeInto(tab, "#key-quota-requests", "1000000")
	if p := d.textOf(tab, "#key-quota-period"); p != "month" {
		t.Errorf("the quota's default period is %q", p)
	}
	d.typeInto(tab, "#key-identity", "acme-corp")
	d.shot(tab, "new-key-limits")
	d.click(tab, "#new-key-dialog button[type=submit]")
	d.visible(tab, "#secret-dialog #secret-value")
	d.click(tab, "#secret-done")
	d.gone(tab, "#secret-dialog")

	row := `#keys-list tr[data-key-name="Partner API"]`
	d.visible(tab, row)
	if got := strings.TrimSpace(d.waitText(tab, row+" .key-limits", "burst")); got != "burst 100/1s · sustained 10,000/1m (shadow)" {
		t.Errorf("the list shows the limits as %q", got)
	}
	d.waitText(tab, row+" .key-quota", "quota 1,000,000/month")
	d.waitText(tab, row+" .key-identity .badge", "acme-corp")
	d.shot(tab, "key-limits-listed")

	id := evalJS[string](d, tab, `document.querySelector('`+row+`').dataset.keyId`)
	stored := func() string {
		t.Helper()
		r := mustStatus(t, call(t, d.c, "GET", "/v1/api-keys/"+id, d.admin, ""), 200)
		var k struct{ Limits, Quota, Identity json.RawMessage }
		if err := json.Unmarshal([]byte(r.Body), &k); err != nil {
			t.Fatalf("key: %v\n%s", err, r.Body)
		}
		return fmt.Sprintf("limits=%s quota=%s identity=%s", k.Limits, k.Quota, k.Identity)
	}
	created := `limits=[{"name":"burst","requests":100,"window":"1s"},{"name":"sustained","requests":10000,"window":"1m","shadow":true}] ` +
		`quota={"requests":1000000,"period":"month"} identity="acme-corp"`
	if got := stored(); got != created {
		t.Fatalf("stored after creating:\n got %s\nwant %s", got, created)
	}

	// The page's PATCH bodies, as sent.
	evalJS[bool](d, tab, `window.patches = [];
		const fetch0 = window.fetch;
		window.fetch = (url, init) => {
			if (init && init.method === 'PATCH') window.patches.push(init.body);
			return fetch0(url, init);
		}; true`)
	patches := func() []string { return evalJS[[]string](d, tab, `window.patches`) }

	// Edit: the dialog holds the key's limits, quota and identity.
	edit := "#edit-limits-dialog"
	d.click(tab, row+" .edit-limits")
	d.visible(tab, edit+" #key-limits")
	for sel, want := range map[string]string{
		limit(edit, 1, "name"): "burst", limit(edit, 1, "requests"): "100", limit(edit, 1, "window"): "1s",
		limit(edit, 2, "name"): "sustained", limit(edit, 2, "requests"): "10000", limit(edit, 2, "window"): "1m",
		edit + " #key-quota-requests": "1000000", edit + " #key-quota-period": "month", edit + " #key-identity": "acme-corp",
	} {
		if got := d.textOf(tab, sel); got != want {
			t.Errorf("%s holds %q, not %q", sel, got, want)
		}
	}
	if !evalJS[bool](d, tab, `document.querySelector('`+limit(edit, 2, "shadow")+`').checked && !document.querySelector('`+limit(edit, 1, "shadow")+`').checked`) {
		t.Error("the shadow boxes do not show the key's")
	}
	if n := rows(); n != 2 {
		t.Errorf("the dialog shows %d limits", n)
	}

	// A window the server refuses: its message, in the dialog, and nothing
	// changed.
	d.typeInto(tab, limit(edit, 1, "window"), "25h")
	d.typeInto(tab, limit(edit, 2, "requests"), "20000")
	d.typeInto(tab, edit+" #key-quota-requests", "")
	d.click(tab, edit+" button[type=submit]")
	shown := d.waitText(tab, edit+" [role=alert]", "limits[0].window")
	if want := "limits[0].window must be between 1s and 24h, not 25h"; strings.TrimSpace(shown) != want {
		t.Errorf("the dialog shows %q, not %q", shown, want)
	}
	d.visible(tab, edit+" #key-limits")
	d.shot(tab, "edit-limits-refused")
	if got := stored(); got != created {
		t.Fatalf("a refused change changed the key:\n got %s\nwant %s", got, created)
	}

	// Corrected: only the limits and the quota (null) are sent.
	d.typeInto(tab, limit(edit, 1, "window"), "1s")
	d.click(tab, edit+" button[type=submit]")
	d.gone(tab, edit)
	d.waitText(tab, "#toasts", "saved")
	want := []string{
		`{"limits":[{"name":"burst","requests":100,"window":"25h"},{"name":"sustained","requests":20000,"window":"1m","shadow":true}],"quota":null}`,
		`{"limits":[{"name":"burst","requests":100,"window":"1s"},{"name":"sustained","requests":20000,"window":"1m","shadow":true}],"quota":null}`,
	}
	if got := patches(); !slices.Equal(got, want) {
		t.Errorf("the page sent\n %q\nnot\n %q", got, want)
	}
	d.waitText(tab, row+" .key-limits", "sustained 20,000/1m")
	d.waitText(tab, row+" .key-identity", "acme-corp")
	if evalJS[bool](d, tab, `!!document.querySelector('`+row+` .key-quota')`) {
		t.Error("the list still shows a quota")
	}
	d.shot(tab, "key-limits-edited")
	edited := `limits=[{"name":"burst","requests":100,"window":"1s"},{"name":"sustained","requests":20000,"window":"1m","shadow":true}] quota= identity="acme-corp"`
	if got := stored(); got != edited {
		t.Fatalf("stored after editing:\n got %s\nwant %s", got, edited)
	}

	// Saving without a change sends nothing.
	d.click(tab, row+" .edit-limits")
	d.visible(tab, edit+" #key-limits")
	d.click(tab, edit+" button[type=submit]")
	d.gone(tab, edit)
	d.waitText(tab, "#toasts", "Nothing changed")
	if n := len(patches()); n != 2 {
		t.Errorf("saving an unchanged dialog sent a PATCH (%d in all)", n)
	}

	// Removing every limit and the identity sends nulls: the key is back
	// to its type's default.
	d.click(tab, row+" .edit-limits")
	d.visible(tab, edit+" #key-limits")
	d.click(tab, limit(edit, 2, "remove"))
	d.click(tab, limit(edit, 1, "remove"))
	d.waitText(tab, edit+" #key-limits-default", "10,000/1m")
	d.typeInto(tab, edit+" #key-identity", "")
	d.click(tab, edit+" button[type=submit]")
	d.gone(tab, edit)
	d.waitText(tab, "#toasts", "saved")
	d.gone(tab, row+" .key-limits-line") // nothing but the type's default
	d.visible(tab, row+" .edit-limits")
	if got := patches(); len(got) != 3 || got[2] != `{"limits":null,"identity":null}` {
		t.Errorf("the page sent %q", got)
	}
	if got := stored(); got != "limits= quota= identity=" {
		t.Fatalf("stored after removing everything: %s", got)
	}
	d.b.CheckConsole()
}

// TestDashboardKeyUsage: the key list shows what is left of each key's
// limits and quota, marks the keys near a limit, and lists only those on
// request (GET ...?near_limit=true).
func TestDashboardKeyUsage(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	mustStatus(t, call(t, d.c, "POST", "/v1/projects", d.admin, `{"slug":"shop","name":"Shop"}`), 201)
	_, tight := createKey(t, d.c, d.admin, "shop", `{"name":"Tight","type":"live","environment":"production",
		"limits":[{"name":"hourly","requests":5,"window":"1h"}],"quota":{"requests":100,"period":"day"}}`)
	_, roomy := createKey(t, d.c, d.admin, "shop", `{"name":"Roomy","type":"live","environment":"production"}`)
	for range 4 {
		d.evaluate(tight, "anything")
	}
	d.evaluate(roomy, "anything")

	tab := d.b.Tab()
	d.login(tab, ownerEmail, ownerPassword)
	d.goTo(tab, "keys?project=shop")
	tightRow, roomyRow := `#keys-list tr[data-key-name="Tight"]`, `#keys-list tr[data-key-name="Roomy"]`
	for sel, want := range map[string]string{
		tightRow + ` .usage-bucket[data-bucket="hourly"] .usage-left`: "1 of 5 left",
		tightRow + ` .usage-bucket[data-bucket="quota"] .usage-left`:  "96 of 100 left",
		tightRow + ` .key-usage > .badge`:                             "Near limit",
	} {
		if got := strings.TrimSpace(d.waitText(tab, sel, want)); got != want {
			t.Errorf("%s shows %q, not %q", sel, got, want)
		}
	}
	// The type's default limit refills 10,000 a minute: one request is
	// back within 6 ms, so the figure is the whole or nearly.
	left := strings.TrimSpace(d.waitText(tab, roomyRow+` .usage-bucket[data-bucket="live"] .usage-left`, "of 10,000 left"))
	if left != "10,000 of 10,000 left" && left != "9,999 of 10,000 left" {
		t.Errorf("the default limit shows %q", left)
	}
	if evalJS[bool](d, tab, `!!document.querySelector('`+roomyRow+` .key-usage > .badge')`) {
		t.Error("a key far from its limit is marked near it")
	}
	d.shot(tab, "key-usage")

	d.click(tab, "#near-limit-only")
	d.gone(tab, roomyRow)
	d.visible(tab, tightRow)
	if n := evalJS[int](d, tab, `document.querySelectorAll('#keys-list tbody tr').length`); n != 1 {
		t.Errorf("near a limit only: %d keys listed, want the one", n)
	}
	d.shot(tab, "keys-near-limit")
	d.click(tab, "#near-limit-only")
	d.visible(tab, roomyRow)
	d.b.CheckConsole()
}

// TestDashboardFlags: create a flag in the editor (the server's validation
// message shows next to it), toggle it and watch /v1/evaluate follow, and
// a stale toggle (someone else wrote meanwhile) is refused and re-read.
func TestDashboardFlags(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	mustStatus(t, call(t, d.c, "POST", "/v1/projects", d.admin, `{"slug":"shop","name":"Shop"}`), 201)
	_, live := createKey(t, d.c, d.admin, "shop", `{"name":"web","type":"live","environment":"production"}`)
	tab := d.b.Tab()
	d.login(tab, ownerEmail, ownerPassword)

	d.goTo(tab, "flags?project=shop&env=production")
	d.waitText(tab, "#flags-list", "No flags yet")
	d.shot(tab, "flags-empty")

	// A new flag: first not JSON, then invalid for the server, then valid.
	d.click(tab, "#new-flag")
	d.visible(tab, "#flag-editor #flag-key")
	d.typeInto(tab, "#flag-key", "dark-mode")
	d.run(tab, "editing", chromedp.SetValue(chromedp.CSS("#flag-json"), `{"state": "ENABLED",`))
	d.click(tab, "#flag-save")
	d.waitText(tab, "#flag-error", "Not valid JSON")
	d.run(tab, "editing", chromedp.SetValue(chromedp.CSS("#flag-json"),
		`{"state": "ENABLED", "variants": {"on": true, "off": "no"}, "defaultVariant": "on"}`))
	d.click(tab, "#flag-save")
	msg := d.waitText(tab, "#flag-error", `flag "dark-mode"`)
	if !strings.Contains(msg, "invalid flag definitions") {
		t.Errorf("the editor shows %q, not the server's validation message", msg)
	}
	if d.evaluate(live, "dark-mode").Status != 404 {
		t.Fatal("an invalid flag was stored")
	}
	d.shot(tab, "flag-invalid")
	d.run(tab, "editing", chromedp.SetValue(chromedp.CSS("#flag-json"),
		`{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}`))
	d.click(tab, "#flag-save")
	sw := `#flags-list button[role=switch][data-flag="dark-mode"]`
	d.visible(tab, sw)
	d.waitText(tab, "#flag-editor-title", "dark-mode") // the editor now edits the stored flag
	d.shot(tab, "flag-created")
	value := func() string {
		r := d.evaluate(live, "dark-mode")
		if r.Status != 200 {
			t.Fatalf("evaluate: %d %s", r.Status, r.Body)
		}
		var v struct {
			Value  any    `json:"value"`
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal([]byte(r.Body), &v)
		if v.Reason == "DISABLED" {
			return "disabled"
		}
		b, _ := json.Marshal(v.Value)
		return string(b)
	}
	if v := value(); v != "true" {
		t.Fatalf("new flag evaluates to %s", v)
	}
	checked := func() string {
		return evalJS[string](d, tab, `document.querySelector('`+sw+`').getAttribute('aria-checked')`)
	}

	// Toggle off and on; evaluation follows.
	d.click(tab, sw)
	d.waitText(tab, "#toasts", "turned off")
	if checked() != "false" {
		t.Fatal("the switch did not turn off")
	}
	eventually(t, 3*time.Second, "evaluation sees the flag off", func() bool { return value() == "disabled" })
	d.waitText(tab, "#flag-json", `"DISABLED"`) // the open editor follows an unedited flag
	d.shot(tab, "flag-off")
	d.click(tab, sw)
	d.waitText(tab, "#toasts", "turned on")
	eventually(t, 3*time.Second, "evaluation sees the flag on", func() bool { return value() == "true" })

	// Someone else writes: the page's version is stale, the toggle is
	// refused (412) and the list re-read; nothing was overwritten.
	mustStatus(t, call(t, d.c, "PUT", "/v1/projects/shop/environments/production/flags/from-api", d.admin,
		`{"state":"ENABLED","variants":{"a":"x","b":"y"},"defaultVariant":"a"}`), 201)
	d.click(tab, sw)
	d.waitText(tab, "#flags-error", "changed since you loaded them")
	d.visible(tab, `#flags-list [data-flag="from-api"]`)
	if checked() != "true" {
		t.Error("after a refused toggle the switch shows the flag off")
	}
	if v := value(); v != "true" {
		t.Fatalf("a stale toggle changed the flag: %s", v)
	}
	d.shot(tab, "flag-stale")
	d.click(tab, sw)
	eventually(t, 3*time.Second, "evaluation sees the flag off", func() bool { return value() == "disabled" })
	d.waitText(tab, "#flag-set-version-number", "5")

	// The editor shows a stored flag's JSON.
	d.click(tab, `#flags-list tr[data-flag="from-api"] .edit-flag`)
	d.waitText(tab, "#flag-editor-title", "from-api")
	d.waitText(tab, "#flag-json", `"defaultVariant": "a"`)
	d.shot(tab, "flag-editor")
}

// TestDashboardReadOnlyMember: an owner invites a MEMBER in the UI; the
// invitation is accepted in another browser; the member logs in and tries
// to generate a key: the page shows the server's refusal and no key exists.
// Then the owner removes the member, which ends their session.
func TestDashboardReadOnlyMember(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	mustStatus(t, call(t, d.c, "POST", "/v1/projects", d.admin, `{"slug":"shop","name":"Shop"}`), 201)
	owner := d.b.Tab()
	d.login(owner, ownerEmail, ownerPassword)

	d.goTo(owner, "members")
	d.click(owner, "#invite-member")
	d.visible(owner, "#invite-dialog #invitee-email")
	d.typeInto(owner, "#invitee-email", "mia@example.com")
	d.typeInto(owner, "#invitee-name", "Mia Member")
	if role := evalJS[string](d, owner, `document.querySelector('#invitee-role').value`); role != "MEMBER" {
		t.Fatalf("default role %q", role)
	}
	d.shot(owner, "invite-dialog")
	d.click(owner, "#invite-dialog button[type=submit]")
	d.visible(owner, "#invite-link-dialog #secret-value")
	link := d.textOf(owner, "#secret-value")
	if !strings.HasPrefix(link, d.c.URL("/dashboard/#/invite/")) {
		t.Fatalf("invitation link %q", link)
	}
	d.shot(owner, "invite-link")
	d.click(owner, "#secret-done")
	d.gone(owner, "#invite-link-dialog")

	// Mia, in her own browser, accepts and is logged in.
	mia := d.b.NewPrivateTab()
	d.run(mia, "opening the invitation", chromedp.Navigate(link))
	d.visible(mia, "#invite-password")
	d.waitText(mia, "#invite-summary", "Member")
	d.shot(mia, "invite-accept")
	const miaPassword = "mia's long password"
	d.typeInto(mia, "#invite-password", miaPassword)
	d.typeInto(mia, "#invite-password-confirm", miaPassword)
	d.click(mia, "#invite-accept")
	d.visible(mia, "#logout")
	d.waitText(mia, "#user-name", "Mia Member")

	// She logs out and in again, with the password she chose.
	d.click(mia, "#logout")
	d.visible(mia, "#login-email")
	d.login(mia, "mia@example.com", miaPassword)
	d.waitText(mia, ".topbar .badge", "Member")

	// Generating a key is refused by the server, and the page says so.
	d.goTo(mia, "keys?project=shop")
	d.waitText(mia, "#page-keys", "read-only")
	d.waitText(mia, "#keys-list", "No keys yet")
	d.click(mia, "#new-key")
	d.visible(mia, "#new-key-dialog #key-name")
	d.typeInto(mia, "#key-name", "Mia's key")
	d.click(mia, "#new-key-dialog button[type=submit]")
	shown := d.waitText(mia, "#new-key-dialog [role=alert]", "read-only")
	d.shot(mia, "member-forbidden")

	// That is the server's FORBIDDEN message for this request.
	c := d.cookie(mia)
	var s struct {
		CSRF string `json:"csrf_token"`
	}
	_ = json.Unmarshal([]byte(mustStatus(t, d.sessionRequest("GET", "/dashboard/api/session", c.Value, nil, ""), 200).Body), &s)
	r := d.sessionRequest("POST", "/dashboard/api/v1/projects/shop/api-keys", c.Value, map[string]string{"X-CSRF-Token": s.CSRF},
		`{"name":"Mia's key","type":"live","environment":"production","permissions":["READ"]}`)
	var refusal struct{ Error, Message string }
	_ = json.Unmarshal([]byte(r.Body), &refusal)
	if r.Status != 403 || refusal.Error != "FORBIDDEN" || strings.TrimSpace(shown) != refusal.Message {
		t.Errorf("the page shows %q; the server answers %d %s", shown, r.Status, r.Body)
	}
	if keys := call(t, d.c, "GET", "/v1/projects/shop/api-keys", d.admin, ""); !strings.Contains(keys.Body, `"data":[]`) {
		t.Fatalf("a member created a key: %s", keys.Body)
	}
	if !evalJS[bool](d, mia, `!document.querySelector('#secret-dialog')`) {
		t.Fatal("a refused request showed a key")
	}
	d.click(mia, "#new-key-dialog .modal-footer button[value=cancel]")
	d.gone(mia, "#new-key-dialog")

	// A member sees the members but cannot manage them.
	d.goTo(mia, "members")
	d.waitText(mia, "#members-list", ownerEmail)
	if evalJS[bool](d, mia, `!!document.querySelector('#invite-member, .remove-member')`) {
		t.Error("a member is offered to invite or remove members")
	}

	// The owner removes Mia, after confirming: her session ends.
	d.goTo(owner, "members")
	miaRow := `#members-list tr[data-email="mia@example.com"]`
	d.waitText(owner, miaRow, "Member")
	d.shot(owner, "members")
	d.click(owner, miaRow+" .remove-member")
	d.waitText(owner, "#remove-member-dialog", "sessions end")
	d.click(owner, "#remove-member-dialog button[type=submit]")
	d.gone(owner, miaRow)
	if r := d.sessionRequest("GET", "/dashboard/api/session", c.Value, nil, ""); r.Status != 204 {
		t.Fatalf("the removed member's session: %d %s", r.Status, r.Body)
	}
	if r := d.sessionRequest("GET", "/dashboard/api/v1/projects", c.Value, nil, ""); r.Status != 401 {
		t.Fatalf("the removed member's session on the API: %d %s", r.Status, r.Body)
	}
	// Her page notices at its next request and returns to the login form.
	evalJS[string](d, mia, `location.hash = "#/projects"`)
	d.waitText(mia, ".auth-card", "Your session has ended")
	d.shot(mia, "member-removed")
}

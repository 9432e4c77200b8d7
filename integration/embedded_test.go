package integration

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestKeyMatrix drives every key type of two projects against every
// endpoint of the API, over real HTTPS, on the embedded store.
func TestKeyMatrix(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	org := bootstrap(t, c) // the server holds the store: goes through the admin endpoint

	for _, p := range []string{"app", "other"} {
		mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"`+p+`","name":"`+p+`"}`), 201)
	}
	type key struct{ typ, project, id, secret string }
	keys := map[string]key{}
	for _, p := range []string{"app", "other"} {
		for _, typ := range []string{"live", "test", "admin"} {
			body := fmt.Sprintf(`{"name":"%s %s","type":"%s","environment":"production"}`, p, typ, typ)
			if typ == "admin" {
				body = fmt.Sprintf(`{"name":"%s %s","type":"admin"}`, p, typ)
			}
			id, secret := createKey(t, c, org, p, body)
			keys[p+"/"+typ] = key{typ, p, id, secret}
		}
	}
	// A spare key of each project to rotate and revoke.
	target := map[string]string{}
	for _, p := range []string{"app", "other"} {
		target[p], _ = createKey(t, c, org, p, `{"name":"target","type":"live","environment":"staging"}`)
	}

	type endpoint struct {
		method, path, body string
		group              string // evaluate, testing, admin, org
		project            string // the project the resource belongs to
	}
	eps := []endpoint{
		{"POST", "/v1/evaluate", `{}`, "evaluate", ""},
		{"POST", "/v1/evaluate/batch", `{}`, "evaluate", ""},
		{"POST", "/v1/testing/sessions", `{}`, "testing", ""},
		{"POST", "/v1/testing/sessions/ts_x/overrides", `{}`, "testing", ""},
		{"DELETE", "/v1/testing/sessions/ts_x", "", "testing", ""},
		{"GET", "/v1/projects", "", "admin", ""},
		{"POST", "/v1/projects", `{"slug":"new-one"}`, "org", ""},
		{"GET", "/v1/projects/app", "", "admin", "app"},
		{"GET", "/v1/projects/app/environments", "", "admin", "app"},
		{"POST", "/v1/projects/app/environments", `{"slug":"qa-%s"}`, "admin", "app"},
		{"GET", "/v1/projects/app/api-keys", "", "admin", "app"},
		{"POST", "/v1/projects/app/api-keys", `{"name":"k","type":"live","environment":"production"}`, "admin", "app"},
		{"GET", "/v1/api-keys/" + target["app"], "", "admin", "app"},
		{"POST", "/v1/api-keys/" + target["app"] + "/rotate", "", "admin", "app"},
		{"GET", "/v1/projects/other", "", "admin", "other"},
		{"GET", "/v1/projects/other/api-keys", "", "admin", "other"},
		{"POST", "/v1/projects/other/api-keys", `{"name":"k","type":"live","environment":"production"}`, "admin", "other"},
		{"POST", "/v1/api-keys/" + target["other"] + "/rotate", "", "admin", "other"},
		{"GET", "/v1/api-keys/" + target["other"], "", "admin", "other"},
	}
	n := 0
	for name, k := range keys {
		for _, e := range eps {
			n++
			body := e.body
			if strings.Contains(body, "%s") {
				body = fmt.Sprintf(body, fmt.Sprint(n))
			}
			r := call(t, c, e.method, e.path, k.secret, body)
			label := fmt.Sprintf("%s key on %s %s", name, e.method, e.path)
			if r.Header.Get("X-RateLimit-Limit") == "" || r.Header.Get("X-RateLimit-Remaining") == "" || r.Header.Get("X-RateLimit-Reset") == "" {
				t.Errorf("%s: rate-limit headers missing: %v", label, r.Header)
			}
			typeAllowed := e.group == "evaluate" ||
				e.group == "testing" && k.typ != "live" ||
				(e.group == "admin" || e.group == "org") && k.typ == "admin"
			switch {
			case !typeAllowed:
				if r.Status != 403 || r.Body != bodyWrongKey {
					t.Errorf("%s: %d %s, want 403 wrong key type", label, r.Status, r.Body)
				}
			case e.group == "org":
				// Only organization-wide keys create projects.
				if r.Status != 403 || !strings.Contains(r.Body, "cannot create projects") {
					t.Errorf("%s: %d %s, want 403 project-scoped", label, r.Status, r.Body)
				}
			case e.project != "" && e.project != k.project:
				if r.Status != 403 || !strings.Contains(r.Body, `"FORBIDDEN"`) || !strings.Contains(r.Body, "project") {
					t.Errorf("%s: %d %s, want 403 other project", label, r.Status, r.Body)
				}
			case e.group == "admin":
				if r.Status != 200 && r.Status != 201 {
					t.Errorf("%s: %d %s, want success", label, r.Status, r.Body)
				}
			default:
				// Evaluation and testing sessions are admitted by the edge;
				// the evaluator itself is not part of this build yet.
				if r.Status == 401 || r.Status == 403 || r.Status == 429 {
					t.Errorf("%s: %d %s, want admitted by the edge", label, r.Status, r.Body)
				}
			}
		}
	}
	// The organization-wide key may do everything, in every project.
	for _, e := range eps {
		if e.group == "org" || e.group == "admin" {
			body := e.body
			if strings.Contains(body, "%s") {
				body = fmt.Sprintf(body, "org")
			}
			if r := call(t, c, e.method, e.path, org, body); r.Status >= 300 {
				t.Errorf("org key on %s %s: %d %s", e.method, e.path, r.Status, r.Body)
			}
		}
	}

	// Revoking works across projects only for keys that may.
	r := call(t, c, "DELETE", "/v1/api-keys/"+target["other"], keys["app/admin"].secret, "")
	if r.Status != 403 {
		t.Fatalf("app admin revoking another project's key: %d %s", r.Status, r.Body)
	}
	r = mustStatus(t, call(t, c, "DELETE", "/v1/api-keys/"+target["other"], keys["other/admin"].secret, ""), 200)
	if r.JSON(t)["revoked_at"] == nil {
		t.Fatalf("no revoked_at: %s", r.Body)
	}
}

// TestPlainHTTP checks that plain HTTP is refused with the exact body, no
// redirect, on the guarded port, and that Caddy binds no port 80.
func TestPlainHTTP(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	org := bootstrap(t, c)
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/v1/projects", "/v1/evaluate", "/", "/anything"} {
		for _, key := range []string{"", org, "garbage"} {
			r := send(t, plain, "GET", c.PlainURL(path), key, "")
			if r.Status != 403 || r.Body != bodyHTTPS || r.Header.Get("Location") != "" {
				t.Fatalf("plain GET %s: %d %v %s", path, r.Status, r.Header, r.Body)
			}
		}
	}
	// X-Forwarded-Proto from an untrusted client counts for nothing.
	req, _ := http.NewRequest("GET", c.PlainURL("/v1/projects"), nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Authorization", "Bearer "+org)
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("spoofed X-Forwarded-Proto: %d", resp.StatusCode)
	}
	// No redirecting server is added on the side.
	if !strings.Contains(c.Logs(), "automatic HTTP->HTTPS redirects are disabled") {
		t.Fatalf("redirects are not disabled:\n%s", c.Logs())
	}
}

// TestTrustedProxy checks that X-Forwarded-Proto counts from Caddy's
// trusted proxies, and only from them.
func TestTrustedProxy(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t)
	c := testenv.NewCaddy(t, testenv.CaddyOptions{
		Global: fmt.Sprintf("\tservers 127.0.0.1:%d {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}", port),
		Extra:  fmt.Sprintf("http://:%d {\n\tflagbridge_auth\n\tflagbridge_api\n}\n", port),
	}).Start()
	org := bootstrap(t, c)
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/projects", port)
	for _, tc := range []struct {
		proto string
		want  int
	}{{"https", 200}, {"HTTPS", 200}, {"https, http", 200}, {"http", 403}, {"", 403}} {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+org)
		if tc.proto != "" {
			req.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("X-Forwarded-Proto %q from a trusted proxy: %d, want %d", tc.proto, resp.StatusCode, tc.want)
		}
	}
}

// TestEmbeddedRestartLosesNothing kills the server (as a crash would) and
// checks that everything written before is still there after a restart.
func TestEmbeddedRestartLosesNothing(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"app","name":"App"}`), 201)
	mustStatus(t, call(t, c, "POST", "/v1/projects/app/environments", org, `{"slug":"qa"}`), 201)
	liveID, live := createKey(t, c, org, "app", `{"name":"live","type":"live","environment":"qa"}`)
	revokedID, revoked := createKey(t, c, org, "app", `{"name":"old","type":"test","environment":"qa"}`)
	mustStatus(t, call(t, c, "DELETE", "/v1/api-keys/"+revokedID, org, ""), 200)
	before := mustStatus(t, call(t, c, "GET", "/v1/projects/app/api-keys", org, ""), 200).Body

	c.Kill()
	c2 := testenv.NewCaddy(t, testenv.CaddyOptions{Dir: c.Dir}).Start()

	after := mustStatus(t, call(t, c2, "GET", "/v1/projects/app/api-keys", org, ""), 200).Body
	if before != after {
		t.Fatalf("key list changed across a crash:\nbefore %s\nafter  %s", before, after)
	}
	envs := mustStatus(t, call(t, c2, "GET", "/v1/projects/app/environments", org, ""), 200).Body
	if !strings.Contains(envs, `"qa"`) {
		t.Fatalf("environment lost: %s", envs)
	}
	if r := call(t, c2, "POST", "/v1/evaluate", live, `{}`); r.Status == 401 || r.Status == 403 {
		t.Fatalf("live key %s lost: %d %s", liveID, r.Status, r.Body)
	}
	if r := call(t, c2, "POST", "/v1/evaluate", revoked, `{}`); r.Status != 401 {
		t.Fatalf("revoked key works again after restart: %d", r.Status)
	}
	// The bootstrap refuses to run twice, with the server stopped too.
	c2.Stop()
	if _, errOut, err := c2.TryRun("flagbridge", "bootstrap", "--config", c2.Config); err == nil || !strings.Contains(errOut, "already bootstrapped") {
		t.Fatalf("second bootstrap: err=%v\n%s", err, errOut)
	}
	k := bootstrap(t, c2, "--new-key", "--key-name", "recovery")
	if k == org {
		t.Fatal("same key twice")
	}
}

// TestKeysNeverLogged checks Caddy's own log and the access log for keys.
func TestKeysNeverLogged(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"app"}`), 201)
	_, live := createKey(t, c, org, "app", `{"name":"live","type":"live","environment":"production"}`)
	call(t, c, "POST", "/v1/evaluate", live, `{}`)
	call(t, c, "GET", "/v1/projects", live, "")
	call(t, c, "GET", "/v1/projects", live+"x", "")
	c.Stop()
	access, _ := os.ReadFile(c.AccessLog)
	if len(access) == 0 {
		t.Fatal("the access log is empty: the test would prove nothing")
	}
	for name, text := range map[string]string{"access log": string(access), "caddy log": c.Logs(), "output": c.Output()} {
		for _, secret := range []string{org, live, live[8:]} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a key:\n%s", name, text)
			}
		}
	}
}

// TestAllowHTTPForLocalDevelopment checks the explicit opt-out: plain HTTP
// is admitted on that route only, and the server says so at start.
func TestAllowHTTPForLocalDevelopment(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t)
	c := testenv.NewCaddy(t, testenv.CaddyOptions{
		Extra: fmt.Sprintf("http://:%d {\n\tflagbridge_auth {\n\t\tallow_http\n\t}\n\tflagbridge_api\n}\n", port),
	}).Start()
	org := bootstrap(t, c)
	if !strings.Contains(c.Logs(), "allow_http is set") {
		t.Fatalf("no warning about allow_http in the log:\n%s", c.Logs())
	}
	r := send(t, http.DefaultClient, "GET", fmt.Sprintf("http://127.0.0.1:%d/v1/projects", port), org, "")
	if r.Status != 200 {
		t.Fatalf("allow_http route: %d %s", r.Status, r.Body)
	}
	// The other plain-HTTP site still refuses.
	if r := send(t, http.DefaultClient, "GET", c.PlainURL("/v1/projects"), org, ""); r.Status != 403 {
		t.Fatalf("guarded route: %d", r.Status)
	}
}

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// pageSite is a site of the test's Caddy on another port, so another
// origin: an empty HTML page that a test's script runs in.
func pageSite(port int) string {
	return fmt.Sprintf("https://localhost:%d {\n\ttls internal\n\theader Content-Type \"text/html; charset=utf-8\"\n\trespond `<!doctype html><title>shop</title>` 200\n}\n", port)
}

// A page of an origin the client key allows reads OFREP answers in a real
// browser, after the browser's own preflight, with only the
// client-visible flags; a page of another origin reads nothing, the
// browser's CORS check stopping it.
func TestBrowserClientKeyCORS(t *testing.T) {
	t.Parallel()
	allowedPort, otherPort := testenv.FreePort(t), testenv.FreePort(t)
	c := testenv.NewCaddy(t, testenv.CaddyOptions{Extra: pageSite(allowedPort) + pageSite(otherPort)}).Start()
	admin := bootstrapOwner(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"shop"}`), 201)
	mustStatus(t, call(t, c, "PUT", "/v1/projects/shop/environments/production/flags", admin, `{"flags":{
		"banner":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on","metadata":{"flagbridge.client":true}},
		"pricing-experiment":{"state":"ENABLED","variants":{"a":"a","b":"b"},"defaultVariant":"b"}}}`), 200)
	allowed := fmt.Sprintf("https://localhost:%d", allowedPort)
	created := mustStatus(t, call(t, c, "POST", "/v1/projects/shop/api-keys", admin,
		`{"name":"web","type":"client","environment":"production","allowed_origins":["`+allowed+`"]}`), 201)
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(created.Body), &k); err != nil || !strings.HasPrefix(k.Key, "fb_client_") {
		t.Fatalf("client key: %v %s", err, created.Body)
	}

	b := testenv.StartBrowser(t, testenv.BrowserOptions{TrustCA: c.RootCA()})
	tab := b.Tab()
	// What the page's script does: the bulk evaluation, as the OFREP web
	// provider sends it, and what it can read of the answer.
	script := fmt.Sprintf(`fetch(%q, {method: "POST", headers: {"Authorization": "Bearer " + %q, "Content-Type": "application/json"}, body: '{"context":{"targetingKey":"visitor-1"}}'})
		.then(async (r) => JSON.stringify({status: r.status, etag: r.headers.get("ETag") || "", remaining: r.headers.get("X-RateLimit-Remaining") || "",
			flags: (await r.json()).flags.map((f) => f.key + "=" + JSON.stringify(f.value))}))
		.catch((e) => "refused: " + e)`, c.URL("/ofrep/v1/evaluate/flags"), k.Key)
	run := func(page string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
			t.Fatalf("opening %s: %v", page, err)
		}
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("the page's script on %s: %v", page, err)
		}
		return out
	}

	got := run(allowed + "/")
	var read struct {
		Status    int      `json:"status"`
		ETag      string   `json:"etag"`
		Remaining string   `json:"remaining"`
		Flags     []string `json:"flags"`
	}
	if err := json.Unmarshal([]byte(got), &read); err != nil {
		t.Fatalf("the allowed page read %s", got)
	}
	if read.Status != 200 || read.ETag == "" || read.Remaining == "" || strings.Join(read.Flags, ",") != "banner=true" {
		t.Fatalf("the allowed page read %+v", read)
	}

	// Another origin: the browser refuses the page the answer (and says so
	// on the console, as it must).
	if got := run(fmt.Sprintf("https://localhost:%d/", otherPort)); !strings.HasPrefix(got, "refused: TypeError") {
		t.Fatalf("a page of another origin read %s", got)
	}
	problems := b.TakeProblems()
	if !strings.Contains(strings.Join(problems, "\n"), "CORS policy") {
		t.Fatalf("no CORS refusal on the console: %q", problems)
	}

	// The browser sent the preflight and the requests; the access log names
	// the origins and never the key.
	log := readFile(t, c.AccessLog)
	if strings.Contains(log, k.Key) || keyPattern.MatchString(log) {
		t.Fatal("a key is in the access log")
	}
	if !strings.Contains(log, `"method":"OPTIONS"`) {
		t.Fatal("the browser sent no preflight")
	}
	// And the same request from a server, with no Origin, is served too:
	// the key is public, what it may do the same from anywhere.
	r := mustStatus(t, call(t, c, "POST", "/ofrep/v1/evaluate/flags", k.Key, `{"context":{}}`), http.StatusOK)
	if strings.Contains(r.Body, "pricing-experiment") {
		t.Fatalf("a client key read a server-only flag: %s", r.Body)
	}
}

// browserExample serves examples/browser (the README's page, with its npm
// packages) from a site of its own on port.
func browserExample(t *testing.T, port int) string {
	t.Helper()
	dir := filepath.Join(testenv.ProjectRoot(t), "examples", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@openfeature", "ofrep-web-provider")); err != nil {
		npm := need(t, "npm", "install npm (Debian: apt-get install npm)")
		run(t, dir, nil, npm, "ci", "--no-audit", "--no-fund")
	}
	return fmt.Sprintf("https://localhost:%d {\n\ttls internal\n\troot * %q\n\tfile_server\n}\n", port, dir)
}

// The README's page, in a real browser on another origin than FlagBridge,
// reads a client-visible flag through OpenFeature's web SDK and the OFREP
// web provider with a client key, polling off: a change made through the
// admin API reaches it within a second, over the event stream the bulk
// answer named, with no reload. The same page on an origin the key does
// not allow reads nothing.
func TestBrowserWebProviderStreams(t *testing.T) {
	t.Parallel()
	readme := readFile(t, filepath.Join(testenv.ProjectRoot(t), "README.md"))
	if !strings.Contains(readme, readFile(t, filepath.Join(testenv.ProjectRoot(t), "examples", "browser", "index.html"))) {
		t.Error("README.md does not show examples/browser/index.html as it is")
	}
	pagePort, otherPort := testenv.FreePort(t), testenv.FreePort(t)
	c := testenv.NewCaddy(t, testenv.CaddyOptions{Extra: browserExample(t, pagePort) + browserExample(t, otherPort)}).Start()
	admin := bootstrapOwner(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"shop"}`), 201)
	flag := func(variant string) string {
		return `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"` + variant + `","metadata":{"flagbridge.client":true}}`
	}
	mustStatus(t, call(t, c, "PUT", "/v1/projects/shop/environments/production/flags/new-banner", admin, flag("off")), 201)
	page := fmt.Sprintf("https://localhost:%d", pagePort)
	created := mustStatus(t, call(t, c, "POST", "/v1/projects/shop/api-keys", admin,
		`{"name":"storefront","type":"client","environment":"production","allowed_origins":["`+page+`"]}`), 201)
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(created.Body), &k); err != nil {
		t.Fatal(err)
	}
	fragment := "#" + url.Values{"server": {c.URL("")}, "key": {k.Key}}.Encode()

	b := testenv.StartBrowser(t, testenv.BrowserOptions{TrustCA: c.RootCA()})
	tab := b.Tab()
	open := func(ctx context.Context, u string) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Run(cctx, chromedp.Navigate(u)); err != nil {
			t.Fatalf("opening %s: %v", u, err)
		}
	}
	banner := func(ctx context.Context, want string, within time.Duration) (time.Duration, bool) {
		t.Helper()
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		_, err := chromedp.Run(cctx, chromedp.PollFunction[bool](`(want) => document.querySelector('#banner')?.textContent === want`,
			chromedp.WithPollingArgs(want), chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(within)))
		return time.Since(start), err == nil
	}
	open(tab, page+"/index.html"+fragment)
	if _, ok := banner(tab, "false", 10*time.Second); !ok {
		t.Fatalf("the page never showed the flag; the console: %q", b.TakeProblems())
	}
	// Give the provider a moment to open the stream, then flip the flag.
	time.Sleep(300 * time.Millisecond)
	flipped := time.Now()
	mustStatus(t, call(t, c, "PUT", "/v1/projects/shop/environments/production/flags/new-banner", admin, flag("on")), 200)
	if took, ok := banner(tab, "true", 2*time.Second); !ok || time.Since(flipped) > time.Second {
		t.Fatalf("the page showed the change after %v (ok %v), want within 1 s", took, ok)
	} else {
		t.Logf("admin write to the page showing it: %v", time.Since(flipped).Round(time.Millisecond))
	}
	// And back, to see it was no one-off.
	mustStatus(t, call(t, c, "PUT", "/v1/projects/shop/environments/production/flags/new-banner", admin, flag("off")), 200)
	if _, ok := banner(tab, "false", time.Second); !ok {
		t.Fatal("the second change did not reach the page within 1 s")
	}

	// The stream's token is a credential: the access log has it redacted
	// (in the entry written when the stream ends: the page reloads), and
	// never the key.
	if _, err := chromedp.Run(tab, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the stream's access entry", func() bool {
		return strings.Contains(readFile(t, c.AccessLog), `"uri":"/ofrep/v1/events?token=REDACTED"`)
	})
	log := readFile(t, c.AccessLog)
	if keyPattern.MatchString(log) || regexp.MustCompile(`token=[A-Za-z0-9_-]{20,}`).MatchString(log) {
		t.Error("the access log holds a key or a stream token")
	}

	// The same page on an origin the key does not allow: nothing readable.
	other := b.NewPrivateTab()
	open(other, fmt.Sprintf("https://localhost:%d/index.html", otherPort)+fragment)
	if _, ok := banner(other, "false", 3*time.Second); ok {
		t.Fatal("a page of an origin the key does not allow read the flag")
	}
	if problems := strings.Join(b.TakeProblems(), "\n"); !strings.Contains(problems, "CORS policy") {
		t.Fatalf("no CORS refusal on the console: %q", problems)
	}
}

// openStream opens an event stream on c and returns a channel of its
// event ids, closed when the stream ends.
func openStream(t *testing.T, c *testenv.Caddy, u string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream on %s: %v %v", c.URL(""), err, resp)
	}
	ids := make(chan string, 16)
	go func() {
		defer close(ids)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids <- id
			}
		}
	}()
	return ids
}

// streamEnded reports whether a stream of openStream ends within d.
func streamEnded(ids <-chan string, within time.Duration) bool {
	deadline := time.After(within)
	for {
		select {
		case _, open := <-ids:
			if !open {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// streamURLOf is the event stream a bulk evaluation on c with key names.
func streamURLOf(t *testing.T, c *testenv.Caddy, key string) string {
	t.Helper()
	res := mustStatus(t, call(t, c, "POST", "/ofrep/v1/evaluate/flags", key, `{}`), 200)
	var bulk struct{ EventStreams []struct{ URL string } }
	if err := json.Unmarshal([]byte(res.Body), &bulk); err != nil || len(bulk.EventStreams) != 1 {
		t.Fatalf("bulk: %v %s", err, res.Body)
	}
	return bulk.EventStreams[0].URL
}

// Streams across instances sharing Redis: a write on one instance reaches
// a stream on another; a revocation on one ends the key's streams on the
// others within a second, and a rotation's grace period ends the old
// secret's streams when it ends.
func TestStreamsAcrossInstances(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	a, b := redisCaddy(t, r, ""), redisCaddy(t, r, "")
	admin := bootstrap(t, a)
	mustStatus(t, call(t, a, "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	flag := func(v string) string {
		return `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"` + v + `"}`
	}
	mustStatus(t, call(t, a, "PUT", "/v1/projects/app/environments/production/flags/f", admin, flag("off")), 201)
	id, live := createKey(t, a, admin, "app", `{"name":"l","type":"live","environment":"production"}`)
	// A token minted by a, used on b: the instances share its secret.
	u := streamURLOf(t, a, live)
	onB := openStream(t, b, strings.Replace(u, a.URL(""), b.URL(""), 1))

	start := time.Now()
	w := mustStatus(t, call(t, a, "PUT", "/v1/projects/app/environments/production/flags/f", admin, flag("on")), 200)
	select {
	case got := <-onB:
		if got != w.Header.Get("Flagbridge-Flag-Set-Version") {
			t.Fatalf("event %q for the write of version %s", got, w.Header.Get("Flagbridge-Flag-Set-Version"))
		}
		t.Logf("a write on a reached a stream on b in %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("a write on a did not reach the stream on b within 1 s")
	}

	// Revoked on a: the stream on b ends within a second.
	start = time.Now()
	mustStatus(t, call(t, a, "DELETE", "/v1/api-keys/"+id, admin, ""), 200)
	if !streamEnded(onB, time.Second) {
		t.Fatal("the revoked key's stream on b is open after 1 s")
	}
	t.Logf("a revocation on a ended the stream on b in %v", time.Since(start).Round(time.Millisecond))

	// Rotated with a grace period: the old secret's stream lives until the
	// grace period ends, then ends; the new secret's goes on.
	rid, old := createKey(t, a, admin, "app", `{"name":"r","type":"live","environment":"production","expires_in":"1h"}`)
	oldStream := openStream(t, b, strings.Replace(streamURLOf(t, a, old), a.URL(""), b.URL(""), 1))
	rot := mustStatus(t, call(t, a, "POST", "/v1/api-keys/"+rid+"/rotate", admin, `{"grace_period":"2s"}`), 200)
	var rotated struct{ Key string }
	if err := json.Unmarshal([]byte(rot.Body), &rotated); err != nil {
		t.Fatal(err)
	}
	if streamEnded(oldStream, time.Second) {
		t.Fatal("the old secret's stream ended within its grace period")
	}
	if !streamEnded(oldStream, 2500*time.Millisecond) {
		t.Fatal("the old secret's stream on b is open a second after its grace period")
	}
	newStream := openStream(t, b, strings.Replace(streamURLOf(t, a, rotated.Key), a.URL(""), b.URL(""), 1))
	if streamEnded(newStream, 300*time.Millisecond) {
		t.Fatal("the new secret's stream ended")
	}
}

// OpenFeature's server SDK for Node.js with its OFREP provider keeps
// working against FlagBridge (the Go provider is TestOpenFeatureProvider's).
func TestNodeOFREPProvider(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testenv.ProjectRoot(t), "integration", "testdata", "ofrep-node")
	node := need(t, "node", "install Node.js 18 or later (Debian: apt-get install nodejs npm)")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@openfeature", "ofrep-provider")); err != nil {
		npm := need(t, "npm", "install npm (Debian: apt-get install npm)")
		run(t, dir, nil, npm, "ci", "--no-audit", "--no-fund")
	}
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	mustStatus(t, call(t, c, "PUT", "/v1/projects/app/environments/production/flags/new-checkout", admin,
		`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off","targeting":{"if":[{"==":[{"var":"plan"},"pro"]},"on","off"]}}`), 201)
	_, live := createKey(t, c, admin, "app", `{"name":"node","type":"live","environment":"production"}`)
	out := run(t, dir, []string{"FLAGBRIDGE_URL=" + c.URL(""), "FLAGBRIDGE_KEY=" + live, "NODE_EXTRA_CA_CERTS=" + c.RootCA()}, node, "evaluate.mjs")
	want := `{"pro":[true,"TARGETING_MATCH","on"],"free":[false,"TARGETING_MATCH","off"],"missing":["fallback","FLAG_NOT_FOUND"]}`
	if strings.TrimSpace(out) != want {
		t.Fatalf("the Node.js OFREP provider read\n%s\nwant\n%s", out, want)
	}
}

// An open event stream does not hold Caddy back: a config reload ends it
// (its client reconnects to the new config, with the same URL), and so
// does a stop, which then takes no longer than without streams (Caddy's
// default grace period would otherwise wait for every stream's client).
func TestStreamsEndOnReloadAndStop(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	_, live := createKey(t, c, admin, "app", `{"name":"l","type":"live","environment":"production"}`)
	u := streamURLOf(t, c, live)
	first := openStream(t, c, u)
	c.Run("reload", "--config", c.Config, "--adapter", "caddyfile", "--address", fmt.Sprintf("localhost:%d", c.AdminPort), "--force")
	if !streamEnded(first, 5*time.Second) {
		t.Fatal("a reload left the stream open on the old config")
	}
	second := openStream(t, c, u) // the same URL, on the new config
	start := time.Now()
	c.Stop()
	if took := time.Since(start); took > 5*time.Second || !streamEnded(second, time.Second) {
		t.Fatalf("stopping with a stream open took %v", took)
	}
}

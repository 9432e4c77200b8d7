package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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

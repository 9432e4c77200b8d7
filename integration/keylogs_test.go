package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/internal/testenv"
)

// How a request presents its key.
const (
	viaAuthorization = "Authorization"
	viaAPIKey        = "X-API-Key"
	viaBoth          = "both"
)

// TestKeysNeverLoggedInAnyHeaderOrLog sends keys in Authorization and in
// X-API-Key to sites with a JSON access log, a console access log and none,
// admitted, refused and failing in a handler after flagbridge_auth (with
// and without handle_errors), and checks that no key reaches any log or the
// process output, that clients get the same answers whichever header they
// use, and that the entries FlagBridge writes in Caddy's stead for
// X-API-Key requests are the ones Caddy writes for the same requests sent
// with Authorization, field by field.
func TestKeysNeverLoggedInAnyHeaderOrLog(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var upstreamSaw []string // the X-API-Key values the upstream received
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/abort/") {
			// Headers and part of the body, then the connection drops:
			// reverse_proxy aborts the response with a panic.
			w.Header().Set("Content-Length", "100")
			fmt.Fprint(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		mu.Lock()
		upstreamSaw = append(upstreamSaw, r.Header.Get("X-Api-Key"))
		mu.Unlock()
		fmt.Fprint(w, "from upstream")
	}))
	defer upstream.Close()

	dead := testenv.FreePort(t) // nothing listens there: reverse_proxy fails with 502
	consolePort, barePort := testenv.FreePort(t), testenv.FreePort(t)
	// The same routes on every site: the FlagBridge API; services behind
	// a dead upstream (a handler error after flagbridge_auth: 502) and
	// one that drops the connection mid-response (reverse_proxy panics);
	// a 4xx handler error; log_skip after flagbridge_auth; the variables
	// that change an access entry (log_name, log_level), log_append and
	// the request's uuid; the key kept for an upstream; and handle_path.
	routes := fmt.Sprintf(`handle /dead/* {
		flagbridge_auth {
			require live
		}
		reverse_proxy 127.0.0.1:%[1]d
	}
	handle /teapot {
		flagbridge_auth {
			require live
		}
		error "short and stout" 418
	}
	handle /quiet {
		route {
			flagbridge_auth {
				require live
			}
			log_skip
			respond "quiet"
		}
	}
	handle /extras {
		route {
			flagbridge_auth {
				require live
			}
			log_name extras
			vars log_level WARN
			log_append tag fb
			header X-Request-Id {http.request.uuid}
			respond "extras"
		}
	}
	handle /abort/* {
		flagbridge_auth {
			require live
		}
		reverse_proxy %[2]s
	}
	handle /kept/* {
		flagbridge_auth {
			require live
			keep_credentials
		}
		reverse_proxy %[2]s
	}
	handle /kept-dead/* {
		flagbridge_auth {
			require live
			keep_credentials
		}
		reverse_proxy 127.0.0.1:%[1]d
	}
	handle_path /stripped/* {
		flagbridge_auth
		flagbridge_api
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`, dead, upstream.Listener.Addr())
	dir := t.TempDir()
	consoleLog := filepath.Join(dir, "console.log")
	c := testenv.NewCaddy(t, testenv.CaddyOptions{
		// Many refused requests come from one IP here.
		Global: "\tflagbridge {\n\t\trate_limit unauthenticated 10000/1m\n\t}",
		Site:   routes,
		Extra: fmt.Sprintf(`
https://localhost:%d {
	tls internal
	log {
		output file %s
		format console
	}
	handle_errors {
		respond "handled {err.status_code}" {err.status_code}
	}
	%s
}

https://localhost:%d {
	tls internal
	%s
}
`, consolePort, consoleLog, routes, barePort, routes),
	}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"app"}`), 201)
	_, live := createKey(t, c, org, "app", `{"name":"live","type":"live","environment":"production"}`)
	_, kept := createKey(t, c, org, "app", `{"name":"kept","type":"live","environment":"production"}`)
	_, stripped := createKey(t, c, org, "app", `{"name":"stripped","type":"admin"}`)
	// A key whose checksum fails, one never stored, and a revoked one.
	forged := live[:len(live)-1] + "a"
	if forged == live {
		forged = live[:len(live)-1] + "b"
	}
	unknown, err := apikey.Generate(apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	revokedID, revoked := createKey(t, c, org, "app", `{"name":"gone","type":"live","environment":"production"}`)
	mustStatus(t, call(t, c, "DELETE", "/v1/api-keys/"+revokedID, org, ""), 200)

	sites := map[string]int{"json": c.HTTPSPort, "console": consolePort, "bare": barePort}
	cases := []struct{ method, path, key, body string }{
		{"GET", "/v1/projects?case=admitted", org, ""},
		{"POST", "/v1/evaluate?case=body", live, `{"flag":"none","context":{"targetingKey":"u1"}}`},
		{"GET", "/v1/projects?case=wrong-type", live, ""},
		{"GET", "/v1/projects?case=malformed", live + "x", ""},
		{"GET", "/v1/projects?case=forged", forged, ""},
		{"GET", "/v1/projects?case=unknown", unknown, ""},
		{"GET", "/v1/projects?case=revoked", revoked, ""},
		{"GET", "/dead/1?case=proxy-error", live, ""},
		{"GET", "/teapot?case=4xx-error", live, ""},
		{"GET", "/dead/1?case=refused", live + "x", ""}, // refused before the proxy
		{"GET", "/abort/1?case=aborted", live, ""},      // reverse_proxy panics
		{"GET", "/quiet?case=log-skip", live, ""},
		{"GET", "/extras?case=extras", live, ""},
	}
	answers := map[string]reply{}
	send := func(site, method, path, key, via, body string) reply {
		t.Helper()
		url := fmt.Sprintf("https://localhost:%d%s", sites[site], path)
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		switch via {
		case viaAuthorization:
			req.Header.Set("Authorization", "Bearer "+key)
		case viaAPIKey:
			req.Header.Set("X-API-Key", key)
		case viaBoth:
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("X-API-Key", key)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{resp.StatusCode, resp.Header, string(b)}
	}
	for _, site := range []string{"json", "console", "bare"} {
		for _, k := range cases {
			// One after the other on one connection, so that the two
			// entries differ only where the header does.
			for _, via := range []string{viaAuthorization, viaAPIKey} {
				answers[site+" "+k.path+" "+via] = send(site, k.method, k.path, k.key, via, k.body)
			}
			send(site, k.method, k.path+"&both", k.key, viaBoth, k.body)
		}
	}

	// Clients see the same answers whichever header carries the key.
	for _, site := range []string{"json", "console", "bare"} {
		for _, k := range cases {
			a, x := answers[site+" "+k.path+" "+viaAuthorization], answers[site+" "+k.path+" "+viaAPIKey]
			if a.Status != x.Status || a.Body != x.Body || !reflect.DeepEqual(stableHeaders(a.Header), stableHeaders(x.Header)) {
				t.Errorf("%s %s: with Authorization %d %v %q; with X-API-Key %d %v %q", site, k.path,
					a.Status, a.Header, a.Body, x.Status, x.Header, x.Body)
			}
		}
	}
	for _, want := range []struct {
		site, path string
		status     int
		body       string
	}{
		{"json", "/v1/projects?case=admitted", 200, ""},
		{"json", "/v1/projects?case=wrong-type", 403, bodyWrongKey},
		{"json", "/v1/projects?case=malformed", 401, bodyInvalid},
		{"json", "/v1/projects?case=forged", 401, bodyInvalid},
		{"json", "/dead/1?case=proxy-error", 502, ""},
		{"json", "/teapot?case=4xx-error", 418, ""},
		{"bare", "/dead/1?case=proxy-error", 502, ""},
		{"console", "/dead/1?case=proxy-error", 502, "handled 502"},
		{"console", "/teapot?case=4xx-error", 418, "handled 418"},
	} {
		r := answers[want.site+" "+want.path+" "+viaAPIKey]
		if r.Status != want.status || want.body != "" && r.Body != want.body || want.status == 502 && want.body == "" && r.Body != "" {
			t.Errorf("%s %s with X-API-Key: %d %q, want %d %q", want.site, want.path, r.Status, r.Body, want.status, want.body)
		}
	}

	// keep_credentials passes the key on, from either header.
	for _, site := range []string{"json", "console", "bare"} {
		for _, via := range []string{viaAuthorization, viaAPIKey} {
			if r := send(site, "GET", "/kept/1?case=kept", kept, via, ""); r.Status != 200 || r.Body != "from upstream" {
				t.Fatalf("%s keep_credentials via %s: %d %s", site, via, r.Status, r.Body)
			}
			if r := send(site, "GET", "/kept-dead/1?case=kept-dead", kept, via, ""); r.Status != 502 {
				t.Fatalf("%s keep_credentials, dead upstream, via %s: %d %s", site, via, r.Status, r.Body)
			}
			if r := send(site, "GET", "/stripped/v1/projects?case=stripped", stripped, via, ""); r.Status != 200 {
				t.Fatalf("%s handle_path via %s: %d %s", site, via, r.Status, r.Body)
			}
		}
	}
	mu.Lock()
	if n := strings.Count(strings.Join(upstreamSaw, " "), kept); n != 3 {
		t.Errorf("the upstream got the kept key in X-API-Key %d times, want 3: %q", n, upstreamSaw)
	}
	mu.Unlock()
	c.Stop()

	accessJSON, console, caddyLog := readFile(t, c.AccessLog), readFile(t, consoleLog), c.Logs()
	if !strings.Contains(console, `"X-Api-Key": ["REDACTED"]`) && !strings.Contains(console, `"X-Api-Key":["REDACTED"]`) {
		t.Errorf("the console access log has no redacted X-API-Key entry:\n%s", console)
	}

	// No key in any log or the output: not the whole key, nor its secret
	// part. The kept and stripped keys are looked at below.
	var secrets []string
	for _, k := range []string{org, live, forged, unknown, revoked} {
		secrets = append(secrets, k, k[strings.LastIndexByte(k, '_')+1:])
	}
	logs := map[string]string{"JSON access log": accessJSON, "console access log": console, "Caddy's log": caddyLog, "process output": c.Output()}
	for name, text := range logs {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds a key (%s...):\n%s", name, s[:12], linesWith(text, s))
			}
		}
	}

	// The entries: Caddy's for Authorization, FlagBridge's for X-API-Key.
	access := parseEntries(t, accessJSON)
	errorsLog := parseEntries(t, caddyLog)
	errorLoggers := map[string]string{"json": "http.log.error.log0", "console": "http.log.error.log1", "bare": "http.log.error"}
	for _, site := range []string{"json", "console", "bare"} {
		host := fmt.Sprintf("localhost:%d", sites[site])
		for _, k := range cases {
			switch {
			case site == "bare":
				// No access log: nothing written for any request.
				for _, via := range []string{viaAuthorization, viaAPIKey} {
					if n := countEntries(errorsLog, "http.log.access", host, k.path, via); n != 0 {
						t.Errorf("bare site: %d access entries for %s via %s", n, k.path, via)
					}
				}
			case strings.Contains(k.path, "log-skip"):
				for _, via := range []string{viaAuthorization, viaAPIKey} {
					if n := countEntries(access, "http.log.access", host, k.path, via) + countEntries(errorsLog, "http.log.access", host, k.path, via); n != 0 {
						t.Errorf("%s: %d access entries for %s via %s despite log_skip", site, n, k.path, via)
					}
				}
			case site == "json" && strings.Contains(k.path, "extras"):
				// log_name sends the entry to http.log.access.extras (in
				// Caddy's log here), at the level of the log_level var.
				a := findEntry(t, errorsLog, "http.log.access.extras", host, k.path, viaAuthorization)
				x := findEntry(t, errorsLog, "http.log.access.extras", host, k.path, viaAPIKey)
				if a == nil || x == nil {
					break
				}
				// log_append's fields cannot be read by FlagBridge: they
				// are missing from its entry (README, "Keys and logs").
				if a["tag"] != "fb" {
					t.Errorf("Caddy's entry has no log_append field: %v", a)
				}
				if _, ok := x["tag"]; ok {
					t.Errorf("FlagBridge's entry has the log_append field now: update the README and this test: %v", x)
				}
				delete(a, "tag")
				for _, e := range []logEntry{a, x} {
					if id, _ := e["uuid"].(string); id == "" {
						t.Errorf("no uuid in %v", e)
					}
					e["uuid"] = "(varies)"
				}
				sameEntry(t, "access entry of "+k.path, a, x)
			case site == "json":
				a := findEntry(t, access, "http.log.access.log0", host, k.path, viaAuthorization)
				x := findEntry(t, access, "http.log.access.log0", host, k.path, viaAPIKey)
				if a != nil && x != nil {
					sameEntry(t, "access entry of "+k.path, a, x)
				}
				findEntry(t, access, "http.log.access.log0", host, k.path+"&both", viaBoth)
			}
			if !strings.Contains(k.path, "error") {
				continue
			}
			a := findEntry(t, errorsLog, errorLoggers[site], host, k.path, viaAuthorization)
			x := findEntry(t, errorsLog, errorLoggers[site], host, k.path, viaAPIKey)
			if a != nil && x != nil {
				sameEntry(t, site+" error entry of "+k.path, a, x)
			}
		}
	}
	// Each error entry was written once, at the level Caddy uses: error for
	// a 5xx without error routes, debug for a 4xx or a handled error.
	for _, want := range []struct{ site, path, level string }{
		{"json", "/dead/1?case=proxy-error", "error"},
		{"json", "/teapot?case=4xx-error", "debug"},
		{"console", "/dead/1?case=proxy-error", "debug"},
		{"bare", "/dead/1?case=proxy-error", "error"},
	} {
		host := fmt.Sprintf("localhost:%d", sites[want.site])
		if e := findEntry(t, errorsLog, errorLoggers[want.site], host, want.path, viaAPIKey); e != nil && e["level"] != want.level {
			t.Errorf("%s %s: error entry at %v, want %s", want.site, want.path, e["level"], want.level)
		}
	}
	if x := findEntry(t, access, "http.log.access.log0", fmt.Sprintf("localhost:%d", c.HTTPSPort), "/dead/1?case=proxy-error", viaAPIKey); x != nil {
		if x["level"] != "error" || x["status"] != 502.0 {
			t.Errorf("access entry of a 502: %v", x)
		}
	}

	// keep_credentials and handle_path: the access and error entries hold
	// no key; what Caddy's debug log gets is pinned here (README, "Keys
	// and logs"): reverse_proxy logs the upstream request it sends, and a
	// rewrite before flagbridge_auth (handle_path) logs the request it
	// rewrote, both at DEBUG and with X-API-Key in full.
	for name, text := range map[string]string{"JSON access log": accessJSON, "console access log": console, "process output": c.Output()} {
		for _, k := range []string{kept, stripped} {
			if strings.Contains(text, k[strings.LastIndexByte(k, '_')+1:]) {
				t.Errorf("%s holds a key:\n%s", name, linesWith(text, k[strings.LastIndexByte(k, '_')+1:]))
			}
		}
	}
	leaks := map[string]int{}
	for _, e := range errorsLog {
		b, _ := json.Marshal(e)
		for _, k := range []string{kept, stripped} {
			if strings.Contains(string(b), k[strings.LastIndexByte(k, '_')+1:]) {
				leaks[fmt.Sprintf("%v %v %q", e["logger"], e["level"], e["msg"])]++
			}
		}
	}
	for what, n := range leaks {
		switch what {
		case `http.handlers.reverse_proxy debug "upstream roundtrip"`, `http.handlers.rewrite debug "rewrote request"`:
			t.Logf("known, at DEBUG only: %d entries of %s hold an X-API-Key", n, what)
		default:
			t.Errorf("%d entries of %s hold a kept or stripped key", n, what)
		}
	}
	for _, site := range []string{"json", "console", "bare"} {
		host := fmt.Sprintf("localhost:%d", sites[site])
		findEntry(t, errorsLog, errorLoggers[site], host, "/kept-dead/1?case=kept-dead", viaAPIKey)
		if site == "json" {
			findEntry(t, access, "http.log.access.log0", host, "/kept/1?case=kept", viaAPIKey)
			findEntry(t, access, "http.log.access.log0", host, "/stripped/v1/projects?case=stripped", viaAPIKey)
		}
	}
}

// stableHeaders is a response's header without what differs from one
// request to the next (the rate-limit counters, the date).
func stableHeaders(h http.Header) http.Header {
	out := h.Clone()
	for k := range out {
		if varyingHeader(k) {
			out[k] = []string{"(varies)"}
		}
	}
	return out
}

func varyingHeader(name string) bool {
	name = strings.ToLower(name)
	return name == "date" || name == "x-ratelimit-remaining" || name == "x-ratelimit-reset" ||
		name == "ratelimit" || name == "retry-after" || name == "x-request-id" || name == "flagbridge-request-id"
}

type logEntry = map[string]any

// parseEntries reads a JSON log, one object a line.
func parseEntries(t *testing.T, text string) []logEntry {
	t.Helper()
	var out []logEntry
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e logEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON log line: %v\n%s", err, line)
		}
		out = append(out, e)
	}
	return out
}

// findEntry returns the one entry of logger for a request to host and uri
// that carried its key via the given header, failing if there is not
// exactly one.
func findEntry(t *testing.T, entries []logEntry, logger, host, uri, via string) logEntry {
	t.Helper()
	found := matchingEntries(entries, func(name string) bool { return name == logger }, host, uri, via)
	if len(found) != 1 {
		t.Errorf("%d entries of %s for %s %s via %s, want 1", len(found), logger, host, uri, via)
		return nil
	}
	return found[0]
}

// countEntries counts the entries of loggers named prefix or below it for
// a request.
func countEntries(entries []logEntry, prefix, host, uri, via string) int {
	return len(matchingEntries(entries, func(name string) bool {
		return name == prefix || strings.HasPrefix(name, prefix+".")
	}, host, uri, via))
}

func matchingEntries(entries []logEntry, logger func(string) bool, host, uri, via string) []logEntry {
	var found []logEntry
	for _, e := range entries {
		req, _ := e["request"].(map[string]any)
		name, _ := e["logger"].(string)
		if !logger(name) || req == nil || req["host"] != host || req["uri"] != uri {
			continue
		}
		h, _ := req["headers"].(map[string]any)
		_, auth := h["Authorization"]
		_, key := h["X-Api-Key"]
		if via == viaAuthorization && auth && !key || via == viaAPIKey && key && !auth || via == viaBoth && auth && key {
			found = append(found, e)
		}
	}
	return found
}

// sameEntry checks that FlagBridge's entry for an X-API-Key request is
// Caddy's for the same request sent with Authorization, but for the
// credential header (each redacted) and what varies from one request to
// the next: the time, the duration, the error's id and the rate-limit
// counters.
func sameEntry(t *testing.T, what string, caddys, ours logEntry) {
	t.Helper()
	a, x := deepCopy(caddys), deepCopy(ours)
	ah := a["request"].(map[string]any)["headers"].(map[string]any)
	xh := x["request"].(map[string]any)["headers"].(map[string]any)
	if !reflect.DeepEqual(ah["Authorization"], []any{"REDACTED"}) || !reflect.DeepEqual(xh["X-Api-Key"], []any{"REDACTED"}) {
		t.Errorf("%s: credential headers %v and %v, want both REDACTED", what, ah["Authorization"], xh["X-Api-Key"])
	}
	delete(ah, "Authorization")
	delete(xh, "X-Api-Key")
	for _, e := range []logEntry{a, x} {
		for _, k := range []string{"ts", "duration"} {
			if _, ok := e[k].(float64); !ok {
				t.Errorf("%s: no %s in %v", what, k, e)
			}
			e[k] = "(varies)"
		}
		for _, m := range []logEntry{e, asEntry(e["first_error"])} {
			if id, ok := m["err_id"]; ok {
				if id == "" {
					t.Errorf("%s: empty err_id", what)
				}
				m["err_id"] = "(varies)"
			}
		}
		if msg, ok := e["error"].(string); ok {
			e["error"] = errorID.ReplaceAllString(msg, "{id=(varies)}")
		}
		if rh, ok := e["resp_headers"].(map[string]any); ok {
			for k := range rh {
				if varyingHeader(k) {
					rh[k] = "(varies)"
				}
			}
		}
	}
	if !reflect.DeepEqual(a, x) {
		ja, _ := json.MarshalIndent(a, "", "  ")
		jx, _ := json.MarshalIndent(x, "", "  ")
		t.Errorf("%s: FlagBridge's entry differs from Caddy's\nCaddy's (Authorization):\n%s\nFlagBridge's (X-API-Key):\n%s", what, ja, jx)
	}
}

// errorID is the id a HandlerError's message starts with.
var errorID = regexp.MustCompile(`\{id=[0-9a-z]+\}`)

func asEntry(v any) logEntry {
	m, _ := v.(map[string]any)
	return m
}

func deepCopy(e logEntry) logEntry {
	b, _ := json.Marshal(e)
	var out logEntry
	_ = json.Unmarshal(b, &out)
	return out
}

// linesWith returns the lines of text that hold s.
func linesWith(text, s string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestKeysNeverLoggedWithSubrouteErrorRoutes puts flagbridge_auth in a
// subroute with error routes of its own (a JSON config: the Caddyfile has
// no such thing). Those routes, not the server's, take the error of a
// handler after flagbridge_auth, for an X-API-Key request as for one with
// Authorization; no key is logged, and the request has one access entry.
// It also puts a second flagbridge_auth, keeping the key, in the server's
// error routes, and makes those fail.
func TestKeysNeverLoggedWithSubrouteErrorRoutes(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{Site: `handle /sub/* {
		route {
			flagbridge_auth {
				require live
			}
			error "boom" 418
		}
	}
	handle /loop/* {
		flagbridge_auth {
			require live
			keep_credentials
		}
		error "first" 500
	}
	handle_errors {
		route /loop/* {
			flagbridge_auth {
				require live
				keep_credentials
			}
			error "second" 503
		}
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`})
	// The Caddyfile's handle block is a subroute: give it error routes.
	var cfg any
	if err := json.Unmarshal([]byte(c.Run("adapt", "--config", c.Config, "--adapter", "caddyfile")), &cfg); err != nil {
		t.Fatal(err)
	}
	var patched int
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "subroute" && strings.Contains(fmt.Sprint(v["routes"]), "boom") && !strings.Contains(fmt.Sprint(v["routes"]), "flagbridge_api") {
				v["errors"] = map[string]any{"routes": []any{map[string]any{"handle": []any{map[string]any{
					"handler": "static_response", "status_code": 299, "body": "subroute handled {http.error.status_code}",
				}}}}}
				patched++
				return
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(cfg)
	if patched != 1 {
		t.Fatalf("patched %d subroutes, want 1", patched)
	}
	b, _ := json.Marshal(cfg)
	c.Config, c.Adapter = filepath.Join(c.Dir, "caddy.json"), ""
	writeFile(t, c.Config, string(b))
	c.Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"app"}`), 201)
	_, live := createKey(t, c, org, "app", `{"name":"live","type":"live","environment":"production"}`)

	for _, via := range []string{viaAuthorization, viaAPIKey} {
		req, _ := http.NewRequest("GET", c.URL("/sub/x?via="+via), nil)
		if via == viaAuthorization {
			req.Header.Set("Authorization", "Bearer "+live)
		} else {
			req.Header.Set("X-API-Key", live)
		}
		resp, err := c.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 299 || string(body) != "subroute handled 418" {
			t.Errorf("via %s: %d %q, want the subroute's error route", via, resp.StatusCode, body)
		}
	}
	// flagbridge_auth again in the server's error routes, the key kept:
	// the error of the error routes is Caddy's "error handling handler
	// error", with the first error's status, and the entries are written
	// once, by the first flagbridge_auth, when the request is done.
	for _, via := range []string{viaAuthorization, viaAPIKey} {
		req, _ := http.NewRequest("GET", c.URL("/loop/x"), nil)
		if via == viaAuthorization {
			req.Header.Set("Authorization", "Bearer "+live)
		} else {
			req.Header.Set("X-API-Key", live)
		}
		resp, err := c.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Errorf("error routes failing via %s: %d, want 500", via, resp.StatusCode)
		}
	}
	c.Stop()
	access, caddyLog := readFile(t, c.AccessLog), c.Logs()
	for name, text := range map[string]string{"access log": access, "Caddy's log": caddyLog, "process output": c.Output()} {
		if s := live[strings.LastIndexByte(live, '_')+1:]; strings.Contains(text, s) {
			t.Errorf("%s holds the key:\n%s", name, linesWith(text, s))
		}
	}
	entries := parseEntries(t, access)
	host := fmt.Sprintf("localhost:%d", c.HTTPSPort)
	a := findEntry(t, entries, "http.log.access.log0", host, "/sub/x?via="+viaAuthorization, viaAuthorization)
	x := findEntry(t, entries, "http.log.access.log0", host, "/sub/x?via="+viaAPIKey, viaAPIKey)
	if a != nil && x != nil {
		// Caddy's entry has the error route's answer; FlagBridge's was
		// written before that route ran (README, "Keys and logs").
		if a["status"] != 299.0 || x["status"] != 0.0 {
			t.Errorf("statuses: Caddy's %v, FlagBridge's %v; want 299 and 0", a["status"], x["status"])
		}
	}
	a = findEntry(t, entries, "http.log.access.log0", host, "/loop/x", viaAuthorization)
	x = findEntry(t, entries, "http.log.access.log0", host, "/loop/x", viaAPIKey)
	if a != nil && x != nil {
		sameEntry(t, "access entry when the error routes fail", a, x)
	}
	errs := parseEntries(t, caddyLog)
	a = findEntry(t, errs, "http.log.error.log0", host, "/loop/x", viaAuthorization)
	x = findEntry(t, errs, "http.log.error.log0", host, "/loop/x", viaAPIKey)
	if a != nil && x != nil {
		if a["msg"] != "error handling handler error" {
			t.Errorf("Caddy's error entry: %v", a)
		}
		sameEntry(t, "error entry when the error routes fail", a, x)
	}
}

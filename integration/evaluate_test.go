package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// testFlags is a flagd document with one flag of each type, targeting and
// a disabled flag; version tells apart the sets of two projects.
func testFlags(theme string) string {
	return fmt.Sprintf(`{
  "flags": {
    "new-checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", null]},
      "metadata": {"owner": "payments"}
    },
    "theme": {"state": "ENABLED", "variants": {"light": "light", "dark": "dark", "%[1]s": "%[1]s"}, "defaultVariant": "%[1]s"},
    "max-items": {"state": "ENABLED", "variants": {"few": 3, "many": 30}, "defaultVariant": "few"},
    "ratio": {"state": "ENABLED", "variants": {"low": 0.25, "high": 0.75}, "defaultVariant": "high"},
    "banner": {"state": "ENABLED", "variants": {"a": {"text": "hi", "color": "blue"}}, "defaultVariant": "a"},
    "legacy": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
  },
  "metadata": {"team": "web"}
}`, theme)
}

type flagWorld struct {
	a, b                           *testenv.Caddy
	admin                          string
	shopLive, shopTest, shopRO     string
	otherLive, otherTest, stagTest string
}

// newFlagWorld starts two instances on one Redis with projects "shop" and
// "other", each with a production flag set, and keys of each kind.
func newFlagWorld(t *testing.T) *flagWorld {
	t.Helper()
	r := testenv.StartRedis(t)
	w := &flagWorld{a: redisCaddy(t, r, ""), b: redisCaddy(t, r, "")}
	w.admin = bootstrap(t, w.a)
	for _, p := range []string{"shop", "other"} {
		mustStatus(t, call(t, w.a, "POST", "/v1/projects", w.admin, `{"slug":"`+p+`"}`), 201)
		mustStatus(t, call(t, w.a, "PUT", "/v1/projects/"+p+"/environments/production/flags", w.admin, testFlags(p+"-theme")), 200)
	}
	_, w.shopLive = createKey(t, w.a, w.admin, "shop", `{"name":"l","type":"live","environment":"production"}`)
	_, w.shopTest = createKey(t, w.a, w.admin, "shop", `{"name":"t","type":"test","environment":"production"}`)
	_, w.shopRO = createKey(t, w.a, w.admin, "shop", `{"name":"ro","type":"test","environment":"production","permissions":["READ"]}`)
	_, w.stagTest = createKey(t, w.a, w.admin, "shop", `{"name":"s","type":"test","environment":"staging"}`)
	_, w.otherLive = createKey(t, w.a, w.admin, "other", `{"name":"l","type":"live","environment":"production"}`)
	_, w.otherTest = createKey(t, w.a, w.admin, "other", `{"name":"t","type":"test","environment":"production"}`)
	return w
}

// eval calls POST /v1/evaluate with optional extra headers (name, value...).
func eval(t *testing.T, c *testenv.Caddy, key, body string, headers ...string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", c.URL("/v1/evaluate"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, c, req)
}

func do(t *testing.T, c *testenv.Caddy, req *http.Request) reply {
	t.Helper()
	resp, err := c.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return reply{resp.StatusCode, resp.Header, b.String()}
}

func TestEvaluationThroughTheEdge(t *testing.T) {
	t.Parallel()
	w := newFlagWorld(t)
	a, b := w.a, w.b

	// The issue's own example.
	r := mustStatus(t, eval(t, a, w.shopLive, `{"flag":"new-checkout","context":{"targetingKey":"user-42","plan":"pro"}}`), 200)
	if r.Body != `{"flag":"new-checkout","value":true,"variant":"on","reason":"TARGETING_MATCH","metadata":{"owner":"payments","team":"web"}}`+"\n" {
		t.Fatalf("evaluate: %s", r.Body)
	}
	if r.Header.Get("X-RateLimit-Limit") != "10000" {
		t.Fatalf("no live-key rate headers: %v", r.Header)
	}
	for body, want := range map[string]string{
		`{"flag":"new-checkout","context":{"plan":"free"}}`: `"value":false,"variant":"off","reason":"DEFAULT"`,
		`{"flag":"theme"}`:     `"value":"shop-theme","variant":"shop-theme","reason":"STATIC"`,
		`{"flag":"max-items"}`: `"value":3,`,
		`{"flag":"ratio"}`:     `"value":0.75,`,
		`{"flag":"banner"}`:    `"value":{"color":"blue","text":"hi"}`,
		`{"flag":"legacy"}`:    `"value":null,"reason":"DISABLED"`,
	} {
		if r := mustStatus(t, eval(t, a, w.shopLive, body), 200); !strings.Contains(r.Body, want) {
			t.Errorf("%s: %s, want %s", body, r.Body, want)
		}
	}
	if r := eval(t, a, w.shopLive, `{"flag":"nope"}`); r.Status != 404 || !strings.HasPrefix(r.Body, `{"error":"FLAG_NOT_FOUND","message":`) {
		t.Fatalf("unknown flag: %d %s", r.Status, r.Body)
	}
	for _, bad := range []string{`{"flag":"theme","context":[1]}`, `{"flag":"theme","context":{"targetingKey":7}}`} {
		if r := eval(t, a, w.shopLive, bad); r.Status != 400 || !strings.Contains(r.Body, "INVALID_CONTEXT") {
			t.Fatalf("invalid context %s: %d %s", bad, r.Status, r.Body)
		}
	}
	// Isolation: the same flag in another project has that project's value.
	if r := mustStatus(t, eval(t, a, w.otherLive, `{"flag":"theme"}`), 200); !strings.Contains(r.Body, `"other-theme"`) {
		t.Fatalf("other project: %s", r.Body)
	}
	// A live key naming another project is refused, not silently served.
	if r := eval(t, a, w.shopLive, `{"flag":"theme"}`, "FlagBridge-Project", "other"); r.Status != 403 {
		t.Fatalf("live key naming another project: %d %s", r.Status, r.Body)
	}
	// An admin key names where it evaluates.
	if r := eval(t, a, w.admin, `{"flag":"theme"}`); r.Status != 400 {
		t.Fatalf("admin key without a project: %d %s", r.Status, r.Body)
	}
	r = mustStatus(t, eval(t, a, w.admin, `{"flag":"theme"}`, "FlagBridge-Project", "other", "FlagBridge-Environment", "production"), 200)
	if !strings.Contains(r.Body, `"other-theme"`) {
		t.Fatalf("admin key: %s", r.Body)
	}

	// Batch: one version for all, errors inline.
	r = mustStatus(t, call(t, a, "POST", "/v1/evaluate/batch", w.shopLive, `{"flags":["theme","nope","max-items"],"context":{}}`), 200)
	m := r.JSON(t)
	if m["version"].(float64) != 1 || len(m["results"].([]any)) != 3 {
		t.Fatalf("batch: %s", r.Body)
	}
	if res := m["results"].([]any)[1].(map[string]any); res["error_code"] != "FLAG_NOT_FOUND" || res["reason"] != "ERROR" {
		t.Fatalf("inline error: %v", res)
	}
	r = mustStatus(t, call(t, a, "POST", "/v1/evaluate/batch", w.shopLive, `{}`), 200)
	if n := len(r.JSON(t)["results"].([]any)); n != 6 {
		t.Fatalf("batch of all flags: %d results", n)
	}

	// A flag change on A reaches B within a second.
	mustStatus(t, eval(t, b, w.shopLive, `{"flag":"max-items"}`), 200) // B caches version 1
	mustStatus(t, call(t, a, "PUT", "/v1/projects/shop/environments/production/flags/max-items", w.admin,
		`{"state":"ENABLED","variants":{"few":3,"many":30},"defaultVariant":"many"}`), 200)
	took := eventually(t, time.Second, "flag change reaching B", func() bool {
		return strings.Contains(eval(t, b, w.shopLive, `{"flag":"max-items"}`).Body, `"value":30`)
	})
	t.Logf("flag change seen by B after %v", took)
	if v := eval(t, b, w.shopLive, `{"flag":"max-items"}`).Header.Get("FlagBridge-Flag-Set-Version"); v != "2" {
		t.Fatalf("version after one change: %q", v)
	}
}

func TestTestingSessionsAcrossInstances(t *testing.T) {
	t.Parallel()
	w := newFlagWorld(t)
	a, b := w.a, w.b
	r := mustStatus(t, call(t, a, "POST", "/v1/testing/sessions", w.shopTest, `{"ttl":"10m"}`), 201)
	s1 := r.JSON(t)["id"].(string)
	if !strings.HasPrefix(s1, "ts_") || r.JSON(t)["expires_at"] == nil {
		t.Fatalf("session: %s", r.Body)
	}
	s2 := mustStatus(t, call(t, a, "POST", "/v1/testing/sessions", w.shopTest, ""), 201).JSON(t)["id"].(string)

	mustStatus(t, call(t, a, "POST", "/v1/testing/sessions/"+s1+"/overrides", w.shopTest, `{"overrides":{"new-checkout":true,"theme":"dark"}}`), 200)
	mustStatus(t, call(t, a, "POST", "/v1/testing/sessions/"+s2+"/overrides", w.shopTest, `{"overrides":{"theme":"light"}}`), 200)
	for _, bad := range []string{`{"overrides":{"new-checkout":"yes"}}`, `{"overrides":{"nope":true}}`} {
		if r := call(t, a, "POST", "/v1/testing/sessions/"+s1+"/overrides", w.shopTest, bad); r.Status != 400 {
			t.Fatalf("bad override %s: %d %s", bad, r.Status, r.Body)
		}
	}

	// Straight to the other instance: no waiting for any event.
	r = mustStatus(t, eval(t, b, w.shopTest, `{"flag":"theme"}`, "FlagBridge-Session", s1), 200)
	if !strings.Contains(r.Body, `"value":"dark"`) || !strings.Contains(r.Body, `"reason":"OVERRIDE"`) {
		t.Fatalf("override on B: %s", r.Body)
	}
	if r := eval(t, b, w.shopTest, `{"flag":"theme"}`, "FlagBridge-Session", s2); !strings.Contains(r.Body, `"value":"light"`) {
		t.Fatalf("parallel session: %s", r.Body)
	}
	if r := eval(t, b, w.shopTest, `{"flag":"new-checkout"}`, "FlagBridge-Session", s2); !strings.Contains(r.Body, `"value":false`) {
		t.Fatalf("a session saw another's override: %s", r.Body)
	}
	// Without the header nothing changes, for anyone.
	if r := eval(t, b, w.shopLive, `{"flag":"theme"}`); !strings.Contains(r.Body, `"shop-theme"`) {
		t.Fatalf("production traffic was overridden: %s", r.Body)
	}
	// Live keys can never use a session; nor manage one.
	if r := eval(t, b, w.shopLive, `{"flag":"theme"}`, "FlagBridge-Session", s1); r.Status != 403 {
		t.Fatalf("live key with a session: %d %s", r.Status, r.Body)
	}
	if r := call(t, a, "POST", "/v1/testing/sessions", w.shopLive, ""); r.Status != 403 || r.Body != bodyWrongKey {
		t.Fatalf("live key opening a session: %d %s", r.Status, r.Body)
	}
	// Read-only test keys evaluate with sessions but cannot open them.
	if r := call(t, a, "POST", "/v1/testing/sessions", w.shopRO, ""); r.Status != 403 {
		t.Fatalf("read-only test key opening a session: %d", r.Status)
	}
	if r := eval(t, a, w.shopRO, `{"flag":"theme"}`, "FlagBridge-Session", s1); !strings.Contains(r.Body, `"dark"`) {
		t.Fatalf("read-only test key using a session: %s", r.Body)
	}
	// Invisible to other projects and environments.
	for name, key := range map[string]string{"other project": w.otherTest, "staging": w.stagTest} {
		if r := eval(t, a, key, `{"flag":"theme"}`, "FlagBridge-Session", s1); r.Status != 404 || !strings.Contains(r.Body, "SESSION_NOT_FOUND") {
			t.Fatalf("%s using the session: %d %s", name, r.Status, r.Body)
		}
		if r := call(t, a, "POST", "/v1/testing/sessions/"+s1+"/overrides", key, `{"overrides":{"theme":"x"}}`); r.Status != 404 {
			t.Fatalf("%s changing the session: %d", name, r.Status)
		}
	}
	// OFREP: STATIC with metadata, since its reasons are a closed list.
	r = mustStatus(t, ofrepCall(t, b, "/ofrep/v1/evaluate/flags/theme", w.shopTest, `{"context":{}}`, "FlagBridge-Session", s1), 200)
	if !strings.Contains(r.Body, `"reason":"STATIC"`) || !strings.Contains(r.Body, `"flagbridgeOverride":true`) {
		t.Fatalf("OFREP override: %s", r.Body)
	}
	// Ended at once.
	mustStatus(t, call(t, a, "DELETE", "/v1/testing/sessions/"+s1, w.shopTest, ""), 204)
	if r := eval(t, b, w.shopTest, `{"flag":"theme"}`, "FlagBridge-Session", s1); r.Status != 404 {
		t.Fatalf("ended session still applies: %d %s", r.Status, r.Body)
	}
}

// ofrepCall sends an OFREP request with X-API-Key and extra headers.
func ofrepCall(t *testing.T, c *testenv.Caddy, path, key, body string, headers ...string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", c.URL(path), strings.NewReader(body))
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, c, req)
}

func TestOFREPEndpoints(t *testing.T) {
	t.Parallel()
	w := newFlagWorld(t)
	a, b := w.a, w.b
	r := mustStatus(t, ofrepCall(t, a, "/ofrep/v1/evaluate/flags/new-checkout", w.shopLive, `{"context":{"targetingKey":"u1","plan":"pro"}}`), 200)
	if r.Body != `{"key":"new-checkout","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{"owner":"payments","team":"web"}}`+"\n" {
		t.Fatalf("single: %s", r.Body)
	}
	if r := ofrepCall(t, a, "/ofrep/v1/evaluate/flags/nope", w.shopLive, `{}`); r.Status != 404 || !strings.Contains(r.Body, `"errorCode":"FLAG_NOT_FOUND"`) {
		t.Fatalf("unknown: %d %s", r.Status, r.Body)
	}
	if r := ofrepCall(t, a, "/ofrep/v1/evaluate/flags/theme", w.shopLive, `{"context":"x"}`); r.Status != 400 || !strings.Contains(r.Body, `"errorCode":"INVALID_CONTEXT"`) {
		t.Fatalf("bad context: %d %s", r.Status, r.Body)
	}
	// Disabled: no value, the code default applies.
	if r := mustStatus(t, ofrepCall(t, a, "/ofrep/v1/evaluate/flags/legacy", w.shopLive, `{}`), 200); strings.Contains(r.Body, `"value"`) {
		t.Fatalf("disabled flag carries a value: %s", r.Body)
	}

	// Bulk with ETag and 304.
	ctxA := `{"context":{"targetingKey":"u1","plan":"pro"}}`
	r = mustStatus(t, ofrepCall(t, a, "/ofrep/v1/evaluate/flags", w.shopLive, ctxA), 200)
	etag := r.Header.Get("ETag")
	if etag == "" || !strings.Contains(r.Body, `"metadata":{"version":1}`) {
		t.Fatalf("bulk: %v %s", r.Header, r.Body)
	}
	if r := ofrepCall(t, b, "/ofrep/v1/evaluate/flags", w.shopLive, ctxA, "If-None-Match", etag); r.Status != 304 || r.Body != "" {
		t.Fatalf("unchanged, on the other instance: %d %s", r.Status, r.Body)
	}
	// Another context must never get the old ETag's 304.
	if r := ofrepCall(t, a, "/ofrep/v1/evaluate/flags", w.shopLive, `{"context":{"targetingKey":"u1","plan":"free"}}`, "If-None-Match", etag); r.Status != 200 || r.Header.Get("ETag") == etag {
		t.Fatalf("changed context: %d %v", r.Status, r.Header)
	}
	// Nor a new flag-set version.
	mustStatus(t, call(t, a, "PUT", "/v1/projects/shop/environments/production/flags/max-items", w.admin,
		`{"state":"ENABLED","variants":{"few":3,"many":30},"defaultVariant":"many"}`), 200)
	eventually(t, time.Second, "the change reaching A's cache", func() bool {
		return ofrepCall(t, a, "/ofrep/v1/evaluate/flags", w.shopLive, ctxA, "If-None-Match", etag).Status == 200
	})
	// Both ways of sending the key work, and the scope table treats OFREP
	// as evaluation.
	if r := call(t, a, "POST", "/ofrep/v1/evaluate/flags/theme", w.shopLive, `{}`); r.Status != 200 {
		t.Fatalf("OFREP with Bearer: %d", r.Status)
	}
	if r := ofrepCall(t, a, "/ofrep/v1/evaluate/flags/theme", "", `{}`); r.Status != 401 {
		t.Fatalf("OFREP without a key: %d", r.Status)
	}
	if r := mustStatus(t, call(t, a, "GET", "/ofrep/v1/configuration", w.shopLive, ""), 200); !strings.Contains(r.Body, `"name":"FlagBridge"`) {
		t.Fatalf("configuration: %s", r.Body)
	}
}

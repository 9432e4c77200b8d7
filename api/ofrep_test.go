package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/api"
)

// ofrep sends an OFREP request and checks that the answer is JSON (but for
// a 304) and never cached without revalidation.
func (s *server) ofrep(t *testing.T, caller *key, method, path, body string, header ...string) response {
	t.Helper()
	res := s.serve(t, caller, method, path, body, header...)
	if res.code == http.StatusNotModified {
		if res.body != "" {
			t.Errorf("%s %s: 304 with body %q", method, path, res.body)
		}
		return res
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" || !json.Valid([]byte(res.body)) {
		t.Errorf("%s %s: %q body %q", method, path, ct, res.body)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" && cc != "no-cache" {
		t.Errorf("%s %s: Cache-Control %q", method, path, cc)
	}
	return res
}

func (s *server) ofrepFlag(t *testing.T, caller *key, key, body string, header ...string) response {
	t.Helper()
	return s.ofrep(t, caller, "POST", "/ofrep/v1/evaluate/flags/"+key, body, header...)
}

func (s *server) ofrepBulk(t *testing.T, caller *key, body string, header ...string) response {
	t.Helper()
	return s.ofrep(t, caller, "POST", "/ofrep/v1/evaluate/flags", body, header...)
}

func ctxBody(ctx string) string { return `{"context":` + ctx + `}` }

func TestOFREPSingle(t *testing.T) {
	s := newEvalServer(t)
	md := `"metadata":{"team":"payments"}`
	for _, tc := range []struct {
		key, body string
		code      int
		want      string
	}{
		{"new-checkout", ctxBody(proCtx), 200, `{"key":"new-checkout","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{"owner":"ana","team":"payments"}}`},
		// false, 0 and "" are values, never left out.
		{"new-checkout", ctxBody(freeCtx), 200, `{"key":"new-checkout","value":false,"reason":"DEFAULT","variant":"off","metadata":{"owner":"ana","team":"payments"}}`},
		{"zero", ``, 200, `{"key":"zero","value":0,"reason":"STATIC","variant":"none",` + md + `}`},
		{"blank", `{}`, 200, `{"key":"blank","value":"","reason":"STATIC","variant":"empty",` + md + `}`},
		{"theme", `{"context":null}`, 200, `{"key":"theme","value":"light","reason":"STATIC","variant":"light",` + md + `}`},
		{"rollout", ctxBody(proCtx), 200, `{"key":"rollout","value":true,"reason":"SPLIT","variant":"on",` + md + `}`},
		{"layout", ``, 200, `{"key":"layout","value":{"cols":3},"reason":"STATIC","variant":"grid",` + md + `}`},
		// The code default applies: no value at all (not null).
		{"legacy", ctxBody(proCtx), 200, `{"key":"legacy","reason":"DISABLED",` + md + `}`},
		{"no-default", ``, 200, `{"key":"no-default","reason":"DEFAULT",` + md + `}`},
		// Failures in OFREP's shape.
		{"nope", ctxBody(proCtx), 404, `{"key":"nope","errorCode":"FLAG_NOT_FOUND","errorDetails":"flag \"nope\" not found"}`},
		{"theme", ctxBody(`"user-42"`), 400, `{"key":"theme","errorCode":"INVALID_CONTEXT","errorDetails":"context must be a JSON object"}`},
		{"theme", ctxBody(`{"targetingKey":42}`), 400, `{"key":"theme","errorCode":"INVALID_CONTEXT","errorDetails":"context.targetingKey must be a string"}`},
		{"theme", `{"context":`, 400, `{"key":"theme","errorCode":"PARSE_ERROR","errorDetails":"malformed JSON: unexpected end of body"}`},
		{"theme", `{"context":{}}}`, 400, `{"key":"theme","errorCode":"PARSE_ERROR","errorDetails":"request body has data after the JSON object"}`},
		{"by-plan", ctxBody(`{"plan":"enterprise"}`), 400, `{"key":"by-plan","errorCode":"GENERAL","errorDetails":"targeting of flag \"by-plan\" returned variant \"enterprise\", which the flag does not define"}`},
	} {
		res := s.ofrepFlag(t, s.live, tc.key, tc.body)
		if res.code != tc.code || res.body != tc.want+"\n" {
			t.Errorf("OFREP %s %s = %d %s\nwant %d %s", tc.key, tc.body, res.code, res.body, tc.code, tc.want)
		}
	}
	// The flag-set version travels in a header.
	wantVersion(t, s.ofrepFlag(t, s.live, "theme", ""), 1)

	// A testing session's value is STATIC, flagged in the metadata.
	id := s.session(t, s.test, "")
	if res := s.override(t, s.test, id, `{"new-checkout":false,"theme":"dark"}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	withSession := []string{api.HeaderSession, id}
	for _, tc := range []struct{ key, want string }{
		{"new-checkout", `{"key":"new-checkout","value":false,"reason":"STATIC","metadata":{"flagbridgeOverride":true}}`},
		{"theme", `{"key":"theme","value":"dark","reason":"STATIC","metadata":{"flagbridgeOverride":true}}`},
		{"rollout", `{"key":"rollout","value":true,"reason":"SPLIT","variant":"on"}`},
	} {
		if res := s.ofrepFlag(t, s.test, tc.key, ctxBody(proCtx), withSession...); res.code != 200 || res.body != tc.want+"\n" {
			t.Errorf("OFREP %s in a session = %d %s\nwant %s", tc.key, res.code, res.body, tc.want)
		}
	}
	// The metadata of the flag stays beside the marker.
	prodID := s.session(t, s.root, `{"project":"alpha","environment":"production"}`)
	if res := s.override(t, s.root, prodID, `{"new-checkout":true}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	wantBody(t, s.ofrepFlag(t, s.root, "new-checkout", ctxBody(freeCtx), api.HeaderProject, "alpha", api.HeaderEnvironment, "production", api.HeaderSession, prodID),
		200, `{"key":"new-checkout","value":true,"reason":"STATIC","metadata":{"flagbridgeOverride":true,"owner":"ana","team":"payments"}}`+"\n")

	// Refusals of the caller keep FlagBridge's error shape.
	wantBody(t, s.ofrepFlag(t, s.liveStaging, "theme", "", withSession...), 403,
		errorBody("FORBIDDEN", "Live keys cannot use testing sessions"))
	wantBody(t, s.ofrepFlag(t, s.live, "theme", "", api.HeaderProject, "beta"), 403,
		errorBody("FORBIDDEN", `This key belongs to project "alpha" and cannot evaluate flags of project "beta"`))
	wantBody(t, s.ofrepFlag(t, s.live, "theme", "", api.HeaderEnvironment, "staging"), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "production" and cannot evaluate flags of environment "staging"`))
	// A session that cannot be used here cannot be evaluated as asked.
	for _, c := range []*key{s.betaTest, s.otherTest} {
		res := s.ofrepFlag(t, c, "theme", "", withSession...)
		m := res.json(t)
		if res.code != 400 || m["errorCode"] != "GENERAL" || m["key"] != "theme" || strings.Contains(res.body, `"value"`) {
			t.Errorf("foreign session = %d %s", res.code, res.body)
		}
	}
	// Isolation: beta's key sees beta's flags.
	wantBody(t, s.ofrepFlag(t, s.betaLive, "new-checkout", ""), 200, `{"key":"new-checkout","value":"beta-b","reason":"STATIC","variant":"b"}`+"\n")
	if res := s.ofrepFlag(t, s.betaLive, "alpha-only", ""); res.code != 404 || res.json(t)["errorCode"] != "FLAG_NOT_FOUND" {
		t.Fatalf("beta evaluating alpha-only = %d %s", res.code, res.body)
	}
	if res := s.ofrepFlag(t, s.otherLive, "alpha-only", ""); res.code != 404 || res.json(t)["errorCode"] != "FLAG_NOT_FOUND" {
		t.Fatalf("other organization evaluating alpha-only = %d %s", res.code, res.body)
	}
}

var etagForm = regexp.MustCompile(`^"[0-9a-f]{32}"$`)

func TestOFREPBulk(t *testing.T) {
	s := newEvalServer(t)
	bulk := func(t *testing.T, caller *key, body string, header ...string) (response, string) {
		t.Helper()
		res := s.ofrepBulk(t, caller, body, header...)
		if res.code != 200 && res.code != 304 {
			t.Fatalf("bulk = %d %s", res.code, res.body)
		}
		etag := res.header.Get("ETag")
		if !etagForm.MatchString(etag) || res.header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("bulk ETag %q Cache-Control %q", etag, res.header.Get("Cache-Control"))
		}
		return res, etag
	}

	res, etag := bulk(t, s.live, ctxBody(proCtx))
	var got struct {
		Flags        []map[string]any `json:"flags"`
		Metadata     map[string]any   `json:"metadata"`
		EventStreams []struct {
			Type               string `json:"type"`
			URL                string `json:"url"`
			InactivityDelaySec int    `json:"inactivityDelaySec"`
		} `json:"eventStreams"`
	}
	if err := json.Unmarshal([]byte(res.body), &got); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(got.Metadata, map[string]any{"version": 1}) || len(res.json(t)) != 3 {
		t.Fatalf("bulk answer %s", res.body)
	}
	// One event stream, whose URL carries a token, never the key.
	if es := got.EventStreams; len(es) != 1 || es[0].Type != "sse" || es[0].InactivityDelaySec != 120 ||
		!strings.HasPrefix(es[0].URL, "https://flagbridge.test/ofrep/v1/events?token=") || strings.Contains(es[0].URL, s.live.Secret) {
		t.Fatalf("bulk eventStreams %+v", es)
	}
	byKey := map[string]map[string]any{}
	var keys []string
	for _, f := range got.Flags {
		k, _ := f["key"].(string)
		byKey[k] = f
		keys = append(keys, k)
	}
	if strings.Join(keys, ",") != strings.Join(evalKeys, ",") {
		t.Fatalf("bulk flags %q, want %q", keys, evalKeys)
	}
	for k, want := range map[string]string{
		"new-checkout": `{"key":"new-checkout","metadata":{"owner":"ana","team":"payments"},"reason":"TARGETING_MATCH","value":true,"variant":"on"}`,
		"zero":         `{"key":"zero","metadata":{"team":"payments"},"reason":"STATIC","value":0,"variant":"none"}`,
		"legacy":       `{"key":"legacy","metadata":{"team":"payments"},"reason":"DISABLED"}`,
		"no-default":   `{"key":"no-default","metadata":{"team":"payments"},"reason":"DEFAULT"}`,
		"by-plan":      `{"key":"by-plan","metadata":{"team":"payments"},"reason":"TARGETING_MATCH","value":"pro","variant":"pro"}`,
	} {
		if !jsonEqual(byKey[k], json.RawMessage(want)) {
			b, _ := json.Marshal(byKey[k])
			t.Errorf("bulk %s = %s, want %s", k, b, want)
		}
	}
	wantVersion(t, res, 1)

	// Per-flag failures are inline.
	res, _ = bulk(t, s.live, ctxBody(`{"plan":"enterprise"}`))
	if !strings.Contains(res.body, `{"key":"by-plan","errorCode":"GENERAL","errorDetails":"targeting of flag \"by-plan\" returned variant \"enterprise\", which the flag does not define"}`) {
		t.Fatalf("bulk with a failing flag: %s", res.body)
	}

	// The same request with its ETag: 304 and no body.
	notModified := func(t *testing.T, caller *key, body, inm string, header ...string) {
		t.Helper()
		res := s.ofrepBulk(t, caller, body, append([]string{"If-None-Match", inm}, header...)...)
		if res.code != http.StatusNotModified || res.body != "" {
			t.Fatalf("If-None-Match %s = %d %q, want 304", inm, res.code, res.body)
		}
		if !etagForm.MatchString(res.header.Get("ETag")) {
			t.Fatalf("304 without the ETag: %v", res.header)
		}
	}
	modified := func(t *testing.T, caller *key, body, inm string, header ...string) string {
		t.Helper()
		res := s.ofrepBulk(t, caller, body, append([]string{"If-None-Match", inm}, header...)...)
		if res.code != 200 || !strings.Contains(res.body, `"flags":[`) {
			t.Fatalf("If-None-Match %s = %d %q, want 200", inm, res.code, res.body)
		}
		if res.header.Get("ETag") == strings.TrimPrefix(inm, "W/") {
			t.Fatalf("a changed answer kept the ETag %s", inm)
		}
		return res.header.Get("ETag")
	}
	notModified(t, s.live, ctxBody(proCtx), etag)
	notModified(t, s.live, ctxBody(proCtx), "W/"+etag)
	notModified(t, s.live, ctxBody(proCtx), `"0123", `+etag)
	notModified(t, s.live, ctxBody(proCtx), `W/"x",W/`+etag+` , "y"`)
	notModified(t, s.live, ctxBody(proCtx), `*`)
	modified(t, s.live, ctxBody(proCtx), `"0123456789abcdef0123456789abcdef"`)
	modified(t, s.live, ctxBody(proCtx), `W/"0123456789abcdef0123456789abcdef", "x"`)
	modified(t, s.live, ctxBody(proCtx), strings.Trim(etag, `"`)) // unquoted: not the same tag

	// Another context with other answers: another ETag, never a stale 304.
	freeTag := modified(t, s.live, ctxBody(freeCtx), etag)
	modified(t, s.live, ctxBody(`{"targetingKey":"user-42"}`), etag)
	modified(t, s.live, ``, etag)
	notModified(t, s.live, ctxBody(freeCtx), freeTag)
	// Another environment or project with the same context: another ETag.
	modified(t, s.liveStaging, ctxBody(proCtx), etag)
	modified(t, s.betaLive, ctxBody(proCtx), etag)
	modified(t, s.root, ctxBody(proCtx), etag, api.HeaderProject, "beta", api.HeaderEnvironment, "production")
	// The same environment through an admin key: the same answer.
	notModified(t, s.root, ctxBody(proCtx), etag, api.HeaderProject, "alpha", api.HeaderEnvironment, "production")

	// A flag change: a new version, so a new ETag, even when no answer
	// changed.
	put := s.native(t, s.root, "PUT", "/v1/projects/alpha/environments/production/flags/unrelated",
		`{"state":"DISABLED","variants":{"a":1},"defaultVariant":"a"}`)
	if put.code != 201 {
		t.Fatalf("PUT flag = %d %s", put.code, put.body)
	}
	s.awaitWrite(t, put, "alpha", "production")
	v2 := modified(t, s.live, ctxBody(proCtx), etag)
	res, _ = bulk(t, s.live, ctxBody(proCtx))
	if !strings.Contains(res.body, `"metadata":{"version":2}`) {
		t.Fatalf("after the write: %s", res.body)
	}
	wantVersion(t, res, 2)
	s.putFlags(t, "alpha", "production", evalDoc) // same flags as before "unrelated", version 3
	v3 := modified(t, s.live, ctxBody(proCtx), v2)
	if v3 == etag {
		t.Fatal("version 3 answered with version 1's ETag")
	}
	notModified(t, s.live, ctxBody(proCtx), v3)

	// A session's override changes: new ETags each time.
	id := s.session(t, s.test, "")
	inSession := []string{api.HeaderSession, id}
	_, plain := bulk(t, s.test, ctxBody(freeCtx))
	_, empty := bulk(t, s.test, ctxBody(freeCtx), inSession...)
	if empty == plain {
		// An empty session answers like no session but says which session
		// it is (metadata), so the tags differ.
		t.Fatal("a session's answer has the ETag of the answer without it")
	}
	if res := s.override(t, s.test, id, `{"theme":"dark"}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	dark := modified(t, s.test, ctxBody(freeCtx), empty, inSession...)
	if res := s.override(t, s.test, id, `{"theme":"light"}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	light := modified(t, s.test, ctxBody(freeCtx), dark, inSession...)
	notModified(t, s.test, ctxBody(freeCtx), light, inSession...)
	res, _ = bulk(t, s.test, ctxBody(freeCtx), inSession...)
	if !strings.Contains(res.body, `{"key":"theme","value":"light","reason":"STATIC","metadata":{"flagbridgeOverride":true}}`) ||
		!strings.Contains(res.body, `"metadata":{"flagbridgeSession":"`+id+`","version":1}`) {
		t.Fatalf("bulk in a session: %s", res.body)
	}
	// Without the session, the plain answer (and its tag) is unchanged.
	notModified(t, s.test, ctxBody(freeCtx), plain)
	// Another session with the same overrides is another answer.
	twin := s.session(t, s.test, "")
	if res := s.override(t, s.test, twin, `{"theme":"light"}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	modified(t, s.test, ctxBody(freeCtx), light, api.HeaderSession, twin)

	// Refusals: a failed bulk request is OFREP's errorCode and errorDetails,
	// with no key.
	wantBody(t, s.ofrepBulk(t, s.live, ctxBody(`[]`)), 400,
		`{"errorCode":"INVALID_CONTEXT","errorDetails":"context must be a JSON object"}`+"\n")
	wantBody(t, s.ofrepBulk(t, s.live, `{"context":{`), 400,
		`{"errorCode":"PARSE_ERROR","errorDetails":"malformed JSON: unexpected end of body"}`+"\n")
	wantBody(t, s.ofrepBulk(t, s.liveStaging, "", inSession...), 403, errorBody("FORBIDDEN", "Live keys cannot use testing sessions"))
	wantBody(t, s.ofrepBulk(t, s.betaTest, "", inSession...), 400,
		`{"errorCode":"GENERAL","errorDetails":"testing session \"`+id+`\" not found or expired"}`+"\n")
}

func TestOFREPConfiguration(t *testing.T) {
	s := newEvalServer(t)
	for _, c := range []*key{s.live, s.test, s.root} {
		res := s.ofrep(t, c, "GET", "/ofrep/v1/configuration", "")
		m := res.json(t)
		caps, _ := m["capabilities"].(map[string]any)
		if res.code != 200 || m["name"] != "FlagBridge" || caps["cacheInvalidation"] == nil || caps["flagEvaluation"] == nil {
			t.Fatalf("configuration = %d %s", res.code, res.body)
		}
	}
	// A method no route has needs an admin key, as every path no route
	// has: to a live key it is refused, to an admin key it is a 405.
	for _, rt := range []struct{ method, path, allow string }{
		{"POST", "/ofrep/v1/configuration", "GET"},
		{"GET", "/ofrep/v1/evaluate/flags", "POST"},
		{"GET", "/ofrep/v1/evaluate/flags/theme", "POST"},
	} {
		wantBody(t, s.ofrep(t, s.live, rt.method, rt.path, ""), 403, errorBody("FORBIDDEN", "This key type does not have access to this endpoint"))
		res := s.ofrep(t, s.root, rt.method, rt.path, "")
		if res.code != 405 || res.header.Get("Allow") != rt.allow ||
			res.body != errorBody("METHOD_NOT_ALLOWED", rt.method+" is not allowed on "+rt.path+"; use "+rt.allow) {
			t.Errorf("%s %s = %d Allow %q %s", rt.method, rt.path, res.code, res.header.Get("Allow"), res.body)
		}
	}
}

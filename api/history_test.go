package api_test

import (
	"strings"
	"testing"
)

// The flag history over HTTP: versions listed newest first, one version
// with its document, a version's diff, and a revert that honours If-Match.
func TestFlagHistoryHTTP(t *testing.T) {
	s := newServer(t)
	base := "/v1/projects/alpha/environments/production/flags"
	for _, variant := range []string{"on", "off"} {
		doc := `{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"` + variant + `"}}}`
		if res := s.do(t, s.root, "PUT", base, doc); res.code != 200 {
			t.Fatal(res.body)
		}
	}
	res := s.do(t, s.root, "GET", base+"/versions", "")
	if res.code != 200 || !strings.HasPrefix(res.body, `{"data":[{"version":2,`) || strings.Contains(res.body, "document") {
		t.Fatalf("versions: %d %s", res.code, res.body)
	}
	res = s.do(t, s.root, "GET", base+"/versions/1", "")
	if res.code != 200 || !strings.Contains(res.body, `"document":{"flags":{"f":{"defaultVariant":"on"`) {
		t.Fatalf("version 1: %d %s", res.code, res.body)
	}
	res = s.do(t, s.root, "GET", base+"/versions/2/diff", "")
	if res.code != 200 || res.body != `{"from":1,"to":2,"flags":[{"key":"f","change":"changed","fields":["defaultVariant"]}]}`+"\n" {
		t.Fatalf("diff: %d %q", res.code, res.body)
	}
	stale := s.send(s.root, "POST", base+"/revert", `{"version":1}`, "If-Match", `"1"`)
	if stale.code != 412 {
		t.Fatalf("revert with a stale If-Match: %d %s", stale.code, stale.body)
	}
	res = s.send(s.root, "POST", base+"/revert", `{"version":1}`, "If-Match", `"2"`)
	if res.code != 200 || res.header.Get("ETag") != `"3"` {
		t.Fatalf("revert: %d %v %s", res.code, res.header, res.body)
	}
	if got := s.do(t, s.root, "GET", base+"/f", ""); !strings.Contains(got.body, `"defaultVariant": "on"`) {
		t.Fatalf("after the revert: %s", got.body)
	}
	for path, want := range map[string]string{
		base + "/versions/abc":           `version: \"abc\" is not a flag-set version`,
		base + "/versions/7":             "has no version 7",
		base + "/versions?limit=0":       `limit: \"0\" is not a whole number`,
		base + "/versions/2/diff?from=x": `from: \"x\" is not a flag-set version`,
	} {
		if res := s.do(t, s.root, "GET", path, ""); res.code < 400 || !strings.Contains(res.body, want) {
			t.Errorf("%s: %d %s, want %s", path, res.code, res.body, want)
		}
	}
	if res := s.do(t, s.root, "POST", base+"/revert", `{}`); res.code != 400 || !strings.Contains(res.body, "version is required") {
		t.Errorf("revert without a version: %d %s", res.code, res.body)
	}
}

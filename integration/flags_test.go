package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestFlagAdminEndpoints exercises the flag endpoints through the edge on
// the embedded store: export, import, one flag, versions and If-Match.
func TestFlagAdminEndpoints(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"shop"}`), 201)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"other"}`), 201)
	_, shopAdmin := createKey(t, c, admin, "shop", `{"name":"a","type":"admin"}`)
	_, live := createKey(t, c, admin, "shop", `{"name":"l","type":"live","environment":"production"}`)
	base := "/v1/projects/shop/environments/production/flags"

	r := mustStatus(t, call(t, c, "GET", base, shopAdmin, ""), 200)
	if strings.TrimSpace(r.Body) != "{\n  \"flags\": {}\n}" || r.Header.Get("ETag") != `"0"` {
		t.Fatalf("empty set: %v %q", r.Header, r.Body)
	}
	r = mustStatus(t, call(t, c, "PUT", base, shopAdmin, testFlags("t")), 200)
	if r.Header.Get("ETag") != `"1"` || !strings.Contains(r.Body, `"flags":6`) {
		t.Fatalf("import: %v %s", r.Header, r.Body)
	}
	export := mustStatus(t, call(t, c, "GET", base, shopAdmin, ""), 200).Body
	// The export imports again as it is (and makes version 2).
	mustStatus(t, call(t, c, "PUT", base, shopAdmin, export), 200)
	if again := mustStatus(t, call(t, c, "GET", base, shopAdmin, ""), 200).Body; again != export {
		t.Fatalf("export/import round trip changed the document:\n%s\n%s", export, again)
	}

	// One flag.
	r = mustStatus(t, call(t, c, "GET", base+"/theme", shopAdmin, ""), 200)
	if !strings.Contains(r.Body, `"defaultVariant": "t"`) {
		t.Fatalf("one flag: %s", r.Body)
	}
	mustStatus(t, call(t, c, "PUT", base+"/brand-new", shopAdmin, `{"state":"ENABLED","variants":{"x":1},"defaultVariant":"x"}`), 201)
	mustStatus(t, call(t, c, "DELETE", base+"/legacy", shopAdmin, ""), 204)
	if r := call(t, c, "DELETE", base+"/legacy", shopAdmin, ""); r.Status != 404 || !strings.Contains(r.Body, "FLAG_NOT_FOUND") {
		t.Fatalf("deleting twice: %d %s", r.Status, r.Body)
	}
	if r := call(t, c, "GET", base+"/legacy", shopAdmin, ""); r.Status != 404 {
		t.Fatalf("deleted flag: %d", r.Status)
	}

	// Invalid definitions are refused whole, naming the flag.
	r = call(t, c, "PUT", base+"/theme", shopAdmin, `{"state":"ENABLED","variants":{"a":1,"b":"x"},"defaultVariant":"a"}`)
	if r.Status != 400 || !strings.Contains(r.Body, `flag \"theme\"`) {
		t.Fatalf("invalid flag: %d %s", r.Status, r.Body)
	}

	// If-Match: a stale version is refused, the current one accepted.
	req, _ := http.NewRequest("PUT", c.URL(base+"/theme"), strings.NewReader(`{"state":"DISABLED","variants":{"a":"a"},"defaultVariant":"a"}`))
	req.Header.Set("Authorization", "Bearer "+shopAdmin)
	req.Header.Set("If-Match", `"1"`)
	if r := do(t, c, req); r.Status != 412 || !strings.Contains(r.Body, "PRECONDITION_FAILED") {
		t.Fatalf("stale If-Match: %d %s", r.Status, r.Body)
	}
	version := call(t, c, "GET", base, shopAdmin, "").Header.Get("ETag")
	req, _ = http.NewRequest("PUT", c.URL(base+"/theme"), strings.NewReader(`{"state":"DISABLED","variants":{"a":"a"},"defaultVariant":"a"}`))
	req.Header.Set("Authorization", "Bearer "+shopAdmin)
	req.Header.Set("If-Match", version)
	mustStatus(t, do(t, c, req), 200)
	// The embedded store serves the change at once.
	if r := eval(t, c, live, `{"flag":"theme"}`); !strings.Contains(r.Body, `"reason":"DISABLED"`) {
		t.Fatalf("evaluation after the change: %s", r.Body)
	}

	// Scope: a project admin key stays in its project; live keys manage nothing.
	if r := call(t, c, "GET", "/v1/projects/other/environments/production/flags", shopAdmin, ""); r.Status != 403 {
		t.Fatalf("another project's flags: %d", r.Status)
	}
	if r := call(t, c, "GET", base, live, ""); r.Status != 403 || r.Body != bodyWrongKey {
		t.Fatalf("live key reading flags: %d %s", r.Status, r.Body)
	}
	if r := call(t, c, "GET", "/v1/projects/shop/environments/nope/flags", shopAdmin, ""); r.Status != 404 {
		t.Fatalf("unknown environment: %d", r.Status)
	}
}

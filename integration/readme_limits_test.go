package integration

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// readmeShellBlocks returns the sh code blocks of the README between the
// first line starting with from and the next one starting with to.
func readmeShellBlocks(t *testing.T, from, to string) []string {
	t.Helper()
	readme := readFile(t, filepath.Join(testenv.ProjectRoot(t), "README.md"))
	i := strings.Index(readme, "\n"+from)
	if i < 0 {
		t.Fatalf("README.md has no line starting %q", from)
	}
	j := strings.Index(readme[i:], "\n"+to)
	if j < 0 {
		t.Fatalf("README.md has no line starting %q after %q", to, from)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)\n```sh\n(.*?)\n```").FindAllStringSubmatch(readme[i:i+j], -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// TestREADMELimitsExamples runs the README's examples of key limits,
// identities and usage as they are written (curl, with the README's $CA,
// $ADMIN and $ID), against a fresh server, and checks their answers say
// what the README says around them.
func TestREADMELimitsExamples(t *testing.T) {
	t.Parallel()
	blocks := readmeShellBlocks(t, "A key may also carry its own rate limits", "### Audit log")
	if len(blocks) != 3 {
		t.Fatalf("the README's limits section has %d sh examples, want 3 (PATCH a key, PUT an identity, near_limit): update this test", len(blocks))
	}
	curl := need(t, "curl", "install curl (Debian: apt-get install curl)")
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"my-app","name":"My App"}`), 201)
	id, live := createKey(t, c, admin, "my-app", `{"name":"Partner API","type":"live","environment":"production"}`)
	env := []string{"CA=" + c.RootCA(), "ADMIN=" + admin, "ID=" + id}
	origin := strings.TrimSuffix(c.URL("/"), "/")
	example := func(i int) map[string]any {
		t.Helper()
		script := strings.ReplaceAll(blocks[i], "https://localhost:8443", origin)
		if script == blocks[i] {
			t.Fatalf("example %d does not call https://localhost:8443:\n%s", i+1, blocks[i])
		}
		if !strings.Contains(script, "curl ") {
			t.Fatalf("example %d runs no curl:\n%s", i+1, script)
		}
		out := run(t, t.TempDir(), env, "sh", "-ec", strings.ReplaceAll(script, "curl ", curl+" --fail-with-body -sS "))
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("example %d answered %q: %v", i+1, out, err)
		}
		return m
	}

	// PATCH: the key now has the README's limits, quota and identity.
	key := example(0)
	for field, want := range map[string]string{
		"limits":   `[{"name":"burst","requests":100,"window":"1s"},{"name":"sustained","requests":10000,"window":"1m"}]`,
		"quota":    `{"requests":1000000,"period":"month"}`,
		"identity": `"acme-corp"`,
	} {
		got, _ := json.Marshal(key[field])
		if !jsonSame(t, string(got), want) {
			t.Errorf("after the PATCH example, %s = %s, want %s", field, got, want)
		}
	}
	// PUT: the identity, with the fields the README says the answer adds.
	ident := example(1)
	for _, f := range []string{"slug", "project", "created_at", "updated_at", "limits", "quota"} {
		if _, ok := ident[f]; !ok {
			t.Errorf("the PUT example's answer lacks %s: %v", f, ident)
		}
	}
	if ident["slug"] != "acme-corp" || ident["project"] != "my-app" {
		t.Errorf("the PUT example made %v", ident)
	}

	// near_limit: nothing is near at first; after the key spends 4 of a
	// limit of 5, it is listed, with the usage fields the README shows.
	if list := example(2)["data"].([]any); len(list) != 0 {
		t.Fatalf("near_limit lists %d keys before any request", len(list))
	}
	mustStatus(t, call(t, c, "PATCH", "/v1/api-keys/"+id, admin, `{"limits":[{"name":"hourly","requests":5,"window":"1h"}],"quota":{"requests":100,"period":"day"}}`), 200)
	for range 4 {
		call(t, c, "POST", "/v1/evaluate", live, `{"flag":"anything"}`)
	}
	list := example(2)["data"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != id {
		t.Fatalf("near_limit after 4 of 5 requests lists %v, want the key", list)
	}
	usage := list[0].(map[string]any)["usage"].([]any)
	kinds := map[string]map[string]any{}
	for _, u := range usage {
		b := u.(map[string]any)
		kinds[b["name"].(string)] = b
	}
	if b := kinds["hourly"]; b == nil || b["kind"] != "key" || b["requests"] != 5.0 || b["window"] != "1h" || b["remaining"] != 1.0 || b["reset_at"] == nil || b["near"] != true {
		t.Errorf("the limit's usage is %v", b)
	}
	if b := kinds["quota"]; b == nil || b["period"] != "day" || b["remaining"] != 96.0 || b["near"] != false {
		t.Errorf("the quota's usage is %v", b)
	}
	if b := kinds["identity-sustained"]; b == nil || b["kind"] != "identity" || b["requests"] != 10000.0 {
		t.Errorf("the identity's usage is %v", b)
	}
}

// jsonSame reports whether two JSON texts hold the same value.
func jsonSame(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

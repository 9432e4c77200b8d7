package integration

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestREADMEFlagExamples runs the README's flag examples as written
// (curl, with the README's $CA and $ADMIN): export, edit and import with
// If-Match, turning a flag off, then the history: the versions, what the
// latest changed, and a revert to version 1.
func TestREADMEFlagExamples(t *testing.T) {
	t.Parallel()
	blocks := readmeShellBlocks(t, "### Flag endpoints (admin keys)", "### Evaluating")
	if len(blocks) != 2 {
		t.Fatalf("the README's flag endpoints section has %d sh examples, want 2 (export and import, history): update this test", len(blocks))
	}
	curl := need(t, "curl", "install curl (Debian: apt-get install curl)")
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"my-app","name":"My App"}`), 201)
	base := "/v1/projects/my-app/environments/production/flags"
	mustStatus(t, call(t, c, "PUT", base+"/new-checkout", admin, `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`), 201)
	dir := t.TempDir()
	env := []string{"CA=" + c.RootCA(), "ADMIN=" + admin}
	sh := func(i int) []map[string]any {
		t.Helper()
		script := strings.ReplaceAll(blocks[i], "https://localhost:8443", strings.TrimSuffix(c.URL("/"), "/"))
		out := run(t, dir, env, "sh", "-ec", strings.ReplaceAll(script, "curl ", curl+" --fail-with-body -sS "))
		var docs []map[string]any
		dec := json.NewDecoder(strings.NewReader(out))
		for {
			var m map[string]any
			if err := dec.Decode(&m); err == io.EOF {
				return docs
			} else if err != nil {
				t.Fatalf("example %d answered %q: %v", i+1, out, err)
			}
			docs = append(docs, m)
		}
	}

	// Import (version 2, from version 1's export) and the incident's
	// switch (version 3).
	if got := sh(0); len(got) != 2 || got[0]["version"] != 2.0 || got[1]["version"] != 3.0 {
		t.Fatalf("the export/import example answered %v", got)
	}
	got := sh(1)
	if len(got) != 3 {
		t.Fatalf("the history example answered %v", got)
	}
	versions, _ := got[0]["data"].([]any)
	if len(versions) != 3 || versions[0].(map[string]any)["version"] != 3.0 {
		t.Fatalf("versions: %v", got[0])
	}
	if d, _ := json.Marshal(got[1]["flags"]); string(d) != `[{"change":"changed","fields":["defaultVariant","state"],"key":"new-checkout"}]` {
		t.Fatalf("what version 3 changed: %s", d)
	}
	if got[2]["version"] != 4.0 {
		t.Fatalf("the revert answered %v", got[2])
	}
	if set := mustStatus(t, call(t, c, "GET", base+"/new-checkout", admin, ""), 200); !strings.Contains(set.Body, `"state": "ENABLED"`) {
		t.Fatalf("after the revert to version 1: %s", set.Body)
	}
}

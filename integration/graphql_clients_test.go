package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestGraphQLClientExamples runs the README's four GraphQL examples (cURL,
// fetch, Python requests, Apollo Client) as they are written, against a
// fresh server, and checks the README shows them as they are.
func TestGraphQLClientExamples(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testenv.ProjectRoot(t), "examples", "graphql")
	readme := readFile(t, filepath.Join(testenv.ProjectRoot(t), "README.md"))
	for _, f := range []string{"curl.sh", "fetch.mjs", "requests_example.py", "apollo.mjs"} {
		if !strings.Contains(readme, readFile(t, filepath.Join(dir, f))) {
			t.Errorf("README.md does not show examples/graphql/%s as it is", f)
		}
	}

	node := need(t, "node", "install Node.js 18 or later (Debian: apt-get install nodejs npm)")
	python := pythonWithRequests(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@apollo", "client")); err != nil {
		npm := need(t, "npm", "install npm (Debian: apt-get install npm)")
		run(t, dir, nil, npm, "ci", "--no-audit", "--no-fund")
	}

	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	key := bootstrap(t, c)
	env := []string{
		"FLAGBRIDGE_URL=" + c.URL("/graphql"),
		"FLAGBRIDGE_KEY=" + key,
		"CURL_CA_BUNDLE=" + c.RootCA(),
		"NODE_EXTRA_CA_CERTS=" + c.RootCA(),
		"REQUESTS_CA_BUNDLE=" + c.RootCA(),
	}
	for name, cmd := range map[string][]string{
		"cURL":            {"sh", "curl.sh"},
		"fetch":           {node, "fetch.mjs"},
		"Python requests": {python, "requests_example.py"},
		"Apollo Client":   {node, "apollo.mjs"},
	} {
		out := run(t, dir, env, cmd[0], cmd[1:]...)
		for _, want := range []string{"owner@example.com", "CI/CD Pipeline", "fb_admin_", "revokedAt"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s example: output lacks %q:\n%s", name, want, out)
			}
		}
	}
	// Each example revoked the key it made: nothing is left active but
	// the bootstrap key.
	r := mustStatus(t, call(t, c, "POST", "/graphql", key, `{"query":"{ apiKeys { name status } }"}`), 200)
	if strings.Count(r.Body, `"status":"ACTIVE"`) != 1 || strings.Count(r.Body, `"status":"REVOKED"`) != 4 {
		t.Fatalf("keys after the examples: %s", r.Body)
	}
}

func need(t *testing.T, tool, how string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is needed to run the README's GraphQL examples: %s", tool, how)
	}
	return p
}

// pythonWithRequests finds a Python 3 that can import requests.
func pythonWithRequests(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import requests").Run() == nil {
			return path
		}
	}
	t.Fatal("no python3 with requests: apt-get install python3-requests")
	return ""
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

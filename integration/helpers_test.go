package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/internal/testenv"
)

// reply is one HTTP exchange's outcome.
type reply struct {
	Status int
	Header http.Header
	Body   string
}

// JSON decodes the body into a generic map.
func (r reply) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// call sends one request to an instance over HTTPS.
func call(t *testing.T, c *testenv.Caddy, method, path, key, body string) reply {
	t.Helper()
	return send(t, c.Client(), method, c.URL(path), key, body)
}

func send(t *testing.T, client *http.Client, method, url, key, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

var keyPattern = regexp.MustCompile(apikey.SecretPattern)

// bootstrap runs "caddy flagbridge bootstrap" for an instance and returns
// the printed admin key.
func bootstrap(t *testing.T, c *testenv.Caddy, args ...string) string {
	t.Helper()
	cmd := []string{"flagbridge", "bootstrap", "--config", c.Config}
	if !slices.Contains(args, "--new-key") && !slices.Contains(args, "--email") {
		cmd = append(cmd, "--email", "owner@example.com", "--name", "Olive Owner")
	}
	if c.Adapter != "" {
		cmd = append(cmd, "--adapter", c.Adapter)
	}
	out := c.Run(append(cmd, args...)...)
	k := keyPattern.FindString(out)
	if k == "" {
		t.Fatalf("no key in bootstrap output:\n%s", out)
	}
	return k
}

// mustStatus fails unless r has the wanted status.
func mustStatus(t *testing.T, r reply, want int) reply {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body: %s", r.Status, want, r.Body)
	}
	return r
}

// createKey creates a key over the API and returns its id and secret.
func createKey(t *testing.T, c *testenv.Caddy, adminKey, project, body string) (id, secret string) {
	t.Helper()
	r := mustStatus(t, call(t, c, "POST", "/v1/projects/"+project+"/api-keys", adminKey, body), 201)
	m := r.JSON(t)
	return m["id"].(string), m["key"].(string)
}

// eventually polls cond every 10ms until it holds or timeout passes, and
// returns how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

const (
	bodyInvalid  = `{"error":"UNAUTHORIZED","message":"Invalid or expired API key"}`
	bodyMissing  = `{"error":"UNAUTHORIZED","message":"Missing API key"}`
	bodyHTTPS    = `{"error":"HTTPS_REQUIRED","message":"All requests must use HTTPS"}`
	bodyWrongKey = `{"error":"FORBIDDEN","message":"This key type does not have access to this endpoint"}`
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

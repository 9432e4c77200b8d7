package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestREADMEAuditExample runs the README's audit log request as written
// (curl, with the README's $CA and $ADMIN) against a fresh server whose
// key was created and revoked, and checks the answer has the fields the
// README shows, newest first, with no secret in it.
func TestREADMEAuditExample(t *testing.T) {
	t.Parallel()
	blocks := readmeShellBlocks(t, "### Audit log", "### Webhooks")
	if len(blocks) != 1 {
		t.Fatalf("the README's audit log section has %d sh examples, want 1: update this test", len(blocks))
	}
	curl := need(t, "curl", "install curl (Debian: apt-get install curl)")
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"my-app","name":"My App"}`), 201)
	id, live := createKey(t, c, admin, "my-app", `{"name":"Production server","type":"live","environment":"production"}`)
	revoked := mustStatus(t, call(t, c, "DELETE", "/v1/api-keys/"+id, admin, ""), 200)

	script := strings.ReplaceAll(blocks[0], "https://localhost:8443", strings.TrimSuffix(c.URL("/"), "/"))
	out := run(t, t.TempDir(), []string{"CA=" + c.RootCA(), "ADMIN=" + admin}, "sh", "-ec", strings.ReplaceAll(script, "curl ", curl+" --fail-with-body -sS "))
	var page struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Data) != 2 {
		t.Fatalf("the example answered %q: %v", out, err)
	}
	if page.Data[0]["action"] != "api_key.revoked" || page.Data[1]["action"] != "api_key.created" {
		t.Fatalf("not the key's revocation and creation, newest first: %s", out)
	}
	for _, f := range []string{"id", "time", "organization", "project", "environment", "action", "target", "actor", "client_address", "request_id", "outcome"} {
		if _, ok := page.Data[0][f]; !ok {
			t.Errorf("the entry lacks %s: %v", f, page.Data[0])
		}
	}
	if page.Data[0]["request_id"] != revoked.Header.Get("Flagbridge-Request-Id") {
		t.Errorf("request_id %v, the revocation's answer said %q", page.Data[0]["request_id"], revoked.Header.Get("Flagbridge-Request-Id"))
	}
	if strings.Contains(out, live) || strings.Contains(out, admin) {
		t.Fatalf("a secret in the audit log: %s", out)
	}
}

// TestREADMEWebhookExample runs the README's webhook request as written:
// the webhook is made, with its secret in the answer and never in the
// list, and a flag change puts a delivery in its log.
func TestREADMEWebhookExample(t *testing.T) {
	t.Parallel()
	blocks := readmeShellBlocks(t, "### Webhooks", "### When storage fails")
	if len(blocks) != 1 {
		t.Fatalf("the README's webhooks section has %d sh examples, want 1: update this test", len(blocks))
	}
	curl := need(t, "curl", "install curl (Debian: apt-get install curl)")
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"my-app","name":"My App"}`), 201)
	script := strings.ReplaceAll(blocks[0], "https://localhost:8443", strings.TrimSuffix(c.URL("/"), "/"))
	out := run(t, t.TempDir(), []string{"CA=" + c.RootCA(), "ADMIN=" + admin}, "sh", "-ec", strings.ReplaceAll(script, "curl ", curl+" --fail-with-body -sS "))
	var hook struct{ ID, URL, Secret string }
	if err := json.Unmarshal([]byte(out), &hook); err != nil || !strings.HasPrefix(hook.Secret, "whsec_") || hook.URL != "https://hooks.example.com/flags" {
		t.Fatalf("the example answered %q: %v", out, err)
	}
	if list := mustStatus(t, call(t, c, "GET", "/v1/projects/my-app/webhooks", admin, ""), 200); strings.Contains(list.Body, hook.Secret) {
		t.Fatalf("the list shows the secret: %s", list.Body)
	}
	mustStatus(t, call(t, c, "PUT", "/v1/projects/my-app/environments/production/flags/f", admin, `{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a"}`), 201)
	log := mustStatus(t, call(t, c, "GET", "/v1/projects/my-app/webhooks/"+hook.ID+"/deliveries", admin, ""), 200)
	if !strings.Contains(log.Body, `"event":"flag.updated"`) {
		t.Fatalf("no delivery of the flag change: %s", log.Body)
	}
}

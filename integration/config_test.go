package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestModulesAdaptAndJSONConfig checks that the modules are listed, that
// the Caddyfile adapts, and that the adapted JSON runs as well.
func TestModulesAdaptAndJSONConfig(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{Global: "\tflagbridge {\n\t\trate_limit admin 42/1m\n\t}"})
	mods := c.Run("list-modules")
	for _, id := range []string{"flagbridge", "http.handlers.flagbridge_auth", "http.handlers.flagbridge_api", "admin.api.flagbridge"} {
		if !strings.Contains(mods, id+"\n") {
			t.Fatalf("list-modules lacks %s", id)
		}
	}
	adapted := c.Run("adapt", "--config", c.Config, "--adapter", "caddyfile")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(adapted), &cfg); err != nil {
		t.Fatalf("adapt output: %v\n%s", err, adapted)
	}
	if !strings.Contains(adapted, `"flagbridge":{"rate_limits":{"admin":{"requests":42`) {
		t.Fatalf("the app is missing from the adapted config:\n%s", adapted)
	}
	c.Run("validate", "--config", c.Config, "--adapter", "caddyfile")

	jsonPath := filepath.Join(c.Dir, "caddy.json")
	writeFile(t, jsonPath, adapted)
	c.Config, c.Adapter = jsonPath, ""
	c.Start()
	org := bootstrap(t, c)
	r := mustStatus(t, call(t, c, "GET", "/v1/projects", org, ""), 200)
	if r.Header.Get("X-RateLimit-Limit") != "42" {
		t.Fatalf("the JSON config's limit is not applied: %v", r.Header)
	}
}

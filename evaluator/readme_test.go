package evaluator

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExample compiles the flag document the README shows, so that
// the example stays true.
func TestReadmeExample(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	_, after, ok := strings.Cut(text, "### The format: flagd's")
	if !ok {
		t.Fatal("the README has no flag format section")
	}
	_, after, ok = strings.Cut(after, "```json\n")
	if !ok {
		t.Fatal("no JSON example in the flag format section")
	}
	doc, _, _ := strings.Cut(after, "```")
	fs, err := Compile([]byte(doc))
	if err != nil {
		t.Fatalf("the README's example does not compile: %v", err)
	}
	cases := []struct {
		flag   string
		ctx    map[string]any
		value  any
		reason Reason
	}{
		{"new-checkout", map[string]any{"email": "ann@example.com"}, true, ReasonTargetingMatch},
		{"new-checkout", map[string]any{"plan": "pro"}, true, ReasonTargetingMatch},
		{"new-checkout", map[string]any{"plan": "free"}, false, ReasonDefault},
		{"min-app-version", map[string]any{"version": "2.2.9"}, false, ReasonTargetingMatch},
		{"min-app-version", map[string]any{"version": "2.3.0"}, true, ReasonDefault},
		{"legacy-ui", nil, nil, ReasonDisabled},
	}
	for _, c := range cases {
		r := fs.Evaluate(c.flag, c.ctx)
		if r.Value != c.value || r.Reason != c.reason {
			t.Errorf("%s %v: %v %s, want %v %s", c.flag, c.ctx, r.Value, r.Reason, c.value, c.reason)
		}
	}
	split := fs.Evaluate("checkout-button", map[string]any{"targetingKey": "user-42"})
	if split.Reason != ReasonSplit || (split.Value != "#0000ff" && split.Value != "#00ff00") {
		t.Errorf("checkout-button: %+v", split)
	}
	if md := fs.Evaluate("new-checkout", nil).Metadata; md["owner"] != "payments" || md["team"] != "web" {
		t.Errorf("metadata: %v", md)
	}
}

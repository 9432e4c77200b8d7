package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/ratelimit"
)

func TestCaddyfileOnStorageError(t *testing.T) {
	cases := []struct {
		line      string
		policy    string
		instances int
		json      string
	}{
		{"on_storage_error deny", "deny", 0, `{"on_storage_error":"deny"}`},
		{"on_storage_error allow", "allow", 0, `{"on_storage_error":"allow"}`},
		{"on_storage_error local", "local", 0, `{"on_storage_error":"local"}`},
		{"on_storage_error local 1", "local", 1, `{"on_storage_error":"local","local_instances":1}`},
		{"on_storage_error local 3", "local", 3, `{"on_storage_error":"local","local_instances":3}`},
		// The last one wins, instances included.
		{"on_storage_error local 3\n on_storage_error local", "local", 0, `{"on_storage_error":"local"}`},
	}
	for _, c := range cases {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("flagbridge {\n " + c.line + "\n}")); err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if a.OnStorageError != c.policy || a.LocalInstances != c.instances {
			t.Errorf("%q: policy %q, instances %d; want %q, %d", c.line, a.OnStorageError, a.LocalInstances, c.policy, c.instances)
		}
		if got, _ := json.Marshal(a); string(got) != c.json {
			t.Errorf("%q: JSON %s, want %s", c.line, got, c.json)
		}
	}
}

func TestCaddyfileOnStorageErrorErrors(t *testing.T) {
	// The syntax: the parser refuses it.
	syntax := map[string]string{
		"on_storage_error":           "wrong argument count",
		"on_storage_error local 2 3": "wrong argument count",
		"on_storage_error local two": `on_storage_error local: "two" is not a number of instances`,
		"on_storage_error local 1.5": `on_storage_error local: "1.5" is not a number of instances`,
		// Zero is what the JSON form leaves out: it would silently become
		// one instance.
		"on_storage_error local 0": "on_storage_error local: local_instances: 0 is not a positive number of instances",
	}
	for line, want := range syntax {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("flagbridge {\n " + line + "\n}"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %q", line, err, want)
		}
	}
	// The values: the parser takes them, the app refuses them.
	values := map[string]string{
		"on_storage_error maybe":    `on_storage_error: "maybe" is not deny, allow or local`,
		"on_storage_error Local":    `on_storage_error: "Local" is not deny, allow or local`,
		"on_storage_error local -2": "local_instances: -2 is not a positive number of instances",
		"on_storage_error allow 3":  "local_instances is only for on_storage_error local, not allow",
		"on_storage_error deny 3":   "local_instances is only for on_storage_error local, not deny",
	}
	for line, want := range values {
		a := parseApp(t, line)
		if err := provisionApp(t, a, nil); err == nil || err.Error() != want {
			t.Errorf("%q: Validate = %v, want %q", line, err, want)
		}
	}
}

// TestOnStorageErrorJSON checks what Provision and Validate make of the
// JSON config (which need not come from a Caddyfile).
func TestOnStorageErrorJSON(t *testing.T) {
	good := []struct {
		json      string
		policy    edge.StoragePolicy
		instances int
		timeout   time.Duration
	}{
		{`{}`, edge.StorageDeny, 1, edge.DefaultTimeout},
		{`{"on_storage_error":"deny"}`, edge.StorageDeny, 1, edge.DefaultTimeout},
		{`{"on_storage_error":"allow","storage_timeout":"100ms"}`, edge.StorageAllow, 1, 100 * time.Millisecond},
		{`{"on_storage_error":"local"}`, edge.StorageLocal, 1, edge.DefaultTimeout},
		{`{"on_storage_error":"local","local_instances":4}`, edge.StorageLocal, 4, edge.DefaultTimeout},
	}
	for _, c := range good {
		var cfg edge.Config
		if err := provisionJSON(t, c.json, func(a *App) { cfg = a.guardConfig }); err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		if cfg.OnStorageError != c.policy || cfg.LocalInstances != c.instances || cfg.Timeout != c.timeout {
			t.Errorf("%s: %v %d %v, want %v %d %v", c.json, cfg.OnStorageError, cfg.LocalInstances, cfg.Timeout,
				c.policy, c.instances, c.timeout)
		}
	}
	bad := map[string]string{
		`{"on_storage_error":"maybe"}`:                      `on_storage_error: "maybe" is not deny, allow or local`,
		`{"on_storage_error":"allow","local_instances":2}`:  "local_instances is only for on_storage_error local, not allow",
		`{"local_instances":2}`:                             "local_instances is only for on_storage_error local, not deny",
		`{"on_storage_error":"local","local_instances":-1}`: "local_instances: -1 is not a positive number of instances",
		`{"storage_timeout":"-1s"}`:                         "storage_timeout: -1s is not a positive duration",
		`{"key_cache_ttl":"-1s"}`:                           "key_cache_ttl: -1s is not a positive duration",
		`{"rate_limits":{"root":{"requests":1}}}`:           `rate_limit: unknown bucket "root" (want client, live, test, admin or unauthenticated)`,
		`{"rate_limits":{"live":{"requests":0}}}`:           "rate_limit live: requests must be a positive whole number, not 0",
	}
	for in, want := range bad {
		if err := provisionJSON(t, in, nil); err == nil || err.Error() != want {
			t.Errorf("%s: Validate = %v, want %q", in, err, want)
		}
	}
}

// TestOnStorageErrorLocalShare checks the share of each limit an instance
// enforces under on_storage_error local, from the app's config through
// to the guard's arithmetic.
func TestOnStorageErrorLocalShare(t *testing.T) {
	a := App{OnStorageError: "local", LocalInstances: 3, RateLimits: map[string]RateLimit{
		"live": {Requests: 900}, "unauthenticated": {Requests: 2},
	}}
	cfg, err := a.guardSettings()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		limit, want ratelimit.Limit
	}{
		{cfg.Limits[apikey.Live], ratelimit.Limit{Rate: 300, Period: time.Minute, Burst: 300}},
		{cfg.Limits[apikey.Test], ratelimit.Limit{Rate: edge.DefaultTestLimit / 3, Period: time.Minute, Burst: edge.DefaultTestLimit / 3}},
		// Never zero: a limit smaller than the fleet still admits one
		// request per period on each instance.
		{cfg.Unauthenticated, ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 1}},
	} {
		if got := cfg.LocalLimit(c.limit); got != c.want {
			t.Errorf("share of %v: %v, want %v", c.limit, got, c.want)
		}
	}
}

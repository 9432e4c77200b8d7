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
	cases := map[string]string{
		"on_storage_error":           "wrong argument count",
		"on_storage_error local 2 3": "wrong argument count",
		"on_storage_error maybe":     "not deny, allow or local",
		"on_storage_error local 0":   "not a positive number of instances",
		"on_storage_error local -2":  "not a positive number of instances",
		"on_storage_error local two": "not a positive number of instances",
		"on_storage_error allow 3":   "only for local",
		"on_storage_error deny 3":    "only for local",
		"on_storage_error Local":     "not deny, allow or local",
		"on_storage_error local 1.5": "not a positive number of instances",
	}
	for line, want := range cases {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("flagbridge {\n " + line + "\n}"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %q", line, err, want)
		}
	}
}

// TestOnStorageErrorJSON checks what Provision makes of the JSON config
// (which need not come from a Caddyfile).
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
		var a App
		if err := json.Unmarshal([]byte(c.json), &a); err != nil {
			t.Fatal(err)
		}
		cfg, err := a.buildGuardConfig()
		if err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		if cfg.OnStorageError != c.policy || cfg.LocalInstances != c.instances || cfg.Timeout != c.timeout {
			t.Errorf("%s: %v %d %v, want %v %d %v", c.json, cfg.OnStorageError, cfg.LocalInstances, cfg.Timeout,
				c.policy, c.instances, c.timeout)
		}
	}
	bad := map[string]string{
		`{"on_storage_error":"maybe"}`:                      "not deny, allow or local",
		`{"on_storage_error":"allow","local_instances":2}`:  "only for on_storage_error local",
		`{"local_instances":2}`:                             "only for on_storage_error local",
		`{"on_storage_error":"local","local_instances":-1}`: "not a positive number",
		`{"storage_timeout":"-1s"}`:                         "not a positive duration",
	}
	for in, want := range bad {
		var a App
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatal(err)
		}
		if _, err := a.buildGuardConfig(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", in, err, want)
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
	cfg, err := a.buildGuardConfig()
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

package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func TestUnmarshalAppCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`flagbridge {
		storage redis://cache:6379?master_name=main
		storage_timeout 250ms
		key_prefix acme
		on_storage_error allow
		key_cache_ttl 1m
		audit_retention 30d
		webhook_allow_insecure
		rate_limit live 20000/1m
		rate_limit test 50/s
		rate_limit admin 100
		rate_limit unauthenticated 30/1h
	}`)
	var a App
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := App{
		Storage:              "redis://cache:6379?master_name=main",
		StorageTimeout:       caddy.Duration(250 * time.Millisecond),
		KeyPrefix:            "acme",
		OnStorageError:       "allow",
		KeyCacheTTL:          caddy.Duration(time.Minute),
		AuditRetention:       caddy.Duration(30 * 24 * time.Hour),
		WebhookAllowInsecure: true,
		RateLimits: map[string]RateLimit{
			"live":            {20000, caddy.Duration(time.Minute)},
			"test":            {50, caddy.Duration(time.Second)},
			"admin":           {100, caddy.Duration(time.Minute)},
			"unauthenticated": {30, caddy.Duration(time.Hour)},
		},
	}
	got, _ := json.Marshal(a)
	exp, _ := json.Marshal(want)
	if !bytes.Equal(got, exp) {
		t.Fatalf("got  %s\nwant %s", got, exp)
	}
}

// The parser refuses what is not the syntax, naming the problem; values of
// the right shape are the app's to check (see TestValidateNamesTheSetting).
func TestCaddyfileErrorsNameTheProblem(t *testing.T) {
	cases := map[string]string{
		"flagbridge {\n storage\n}":                  "wrong argument count",
		"flagbridge {\n rate_limit live ten/1m\n}":   `rate_limit live: "ten/1m": requests must be a whole number`,
		"flagbridge {\n rate_limit live 10/never\n}": `rate_limit live: "10/never": window must be a duration such as 1m`,
		"flagbridge {\n rate_limit live\n}":          "rate_limit takes a bucket and a limit",
		"flagbridge {\n key_cache_ttl soon\n}":       `key_cache_ttl: "soon" is not a duration`,
		"flagbridge {\n storage_timeout 1s 2s\n}":    "wrong argument count",
		"flagbridge {\n colour blue\n}":              "unrecognized flagbridge option",
		"flagbridge {\n storage a b\n}":              "wrong argument count",
		"flagbridge {\n ietf_headers on\n}":          "wrong argument count",
		"flagbridge {\n rate_limit_mode\n}":          "wrong argument count",
		"flagbridge {\n rate_limit_mode shadow x\n}": "wrong argument count",
		"flagbridge extra":                           "wrong argument count",
		// Zero is what the JSON form leaves out (the default): written
		// here it would never reach Validate, so the parser refuses it.
		"flagbridge {\n rate_limit live 10/0s\n}": `rate_limit live: "10/0s": the window must be a positive duration such as 1m`,
		"flagbridge {\n key_cache_ttl 0s\n}":      "key_cache_ttl: 0s is not a positive duration",
		"flagbridge {\n storage_timeout 0\n}":     "storage_timeout: 0 is not a positive duration",
	}
	for input, want := range cases {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %q", input, err, want)
		}
	}
	authCases := map[string]string{
		"flagbridge_auth {\n require root\n}":   "unknown key type",
		"flagbridge_auth {\n require\n}":        "wrong argument count",
		"flagbridge_auth {\n allow_http yes\n}": "wrong argument count",
		"flagbridge_auth {\n colour blue\n}":    "unrecognized flagbridge_auth option",
		"flagbridge_auth admin":                 "wrong argument count",
		"flagbridge_auth {\n limit search\n}":   "limit takes a name and a limit",
		"flagbridge_auth {\n limit a 1/x\n}":    `limit a: "1/x": window must be a duration`,
		"flagbridge_auth {\n cost 0\n}":         `cost: "0" is not a positive whole number`,
		"flagbridge_auth {\n cost 2 3\n}":       "wrong argument count",
	}
	for input, want := range authCases {
		var a Auth
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %q", input, err, want)
		}
	}
	var api API
	if err := api.UnmarshalCaddyfile(caddyfile.NewTestDispenser("flagbridge_api foo")); err == nil {
		t.Error("flagbridge_api accepted an argument")
	}
}

// TestValidateNamesTheSetting: a value of the right shape that the app
// cannot use parses, and App.Validate refuses it after Provision, naming
// the setting, whether it came from a Caddyfile or from JSON.
func TestValidateNamesTheSetting(t *testing.T) {
	cases := map[string]string{
		"on_storage_error maybe":          `on_storage_error: "maybe" is not deny, allow or local`,
		"rate_limit root 10/1m":           `rate_limit: unknown bucket "root" (want client, live, test, admin or unauthenticated)`,
		"rate_limit live 0":               "rate_limit live: requests must be a positive whole number, not 0",
		"rate_limit test -5/1m":           "rate_limit test: requests must be a positive whole number, not -5",
		"rate_limit admin 10/-1m":         "rate_limit admin: the window must be a positive duration such as 1m",
		"key_cache_ttl -1s":               "key_cache_ttl: -1s is not a positive duration",
		"storage_timeout -250ms":          "storage_timeout: -250ms is not a positive duration",
		"audit_retention 12h":             "audit_retention: 12h0m0s is shorter than a day (entries are kept by the day)",
		"on_storage_error local -2":       "local_instances: -2 is not a positive number of instances",
		"on_storage_error deny 3":         "local_instances is only for on_storage_error local, not deny",
		"on_storage_error allow 3":        "local_instances is only for on_storage_error local, not allow",
		"on_storage_error Local":          `on_storage_error: "Local" is not deny, allow or local`,
		"rate_limit unauthenticated 0/1h": "rate_limit unauthenticated: requests must be a positive whole number, not 0",
		"rate_limit_mode dry-run":         `rate_limit_mode: "dry-run" is not enforce or shadow`,
	}
	for line, want := range cases {
		a := parseApp(t, line)
		if err := provisionApp(t, a, nil); err == nil || err.Error() != want {
			t.Errorf("%q: Validate = %v, want %q", line, err, want)
		}
	}
	// Good values pass, and what the parser accepts provisions the same
	// as its JSON.
	for _, line := range []string{"rate_limit live 10000/1m", "on_storage_error local 3", "key_cache_ttl 1m", "storage_timeout 250ms", "ietf_headers", "rate_limit_mode shadow", "rate_limit_mode enforce"} {
		if err := provisionApp(t, parseApp(t, line), nil); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}

// parseApp parses one line of the flagbridge global option.
func parseApp(t *testing.T, line string) *App {
	t.Helper()
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("flagbridge {\n " + line + "\n}")); err != nil {
		t.Fatalf("%q does not parse: %v", line, err)
	}
	return &a
}

// provisionApp loads a's config as Caddy does (from its JSON), provisions
// it and returns what Validate says; got, if set, receives the provisioned
// app. It opens nothing.
func provisionApp(t *testing.T, a *App, got func(*App)) error {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return provisionJSON(t, string(raw), got)
}

// provisionJSON provisions the app of a JSON config and validates it; got,
// if set, receives the provisioned app.
func provisionJSON(t *testing.T, raw string, got func(*App)) error {
	t.Helper()
	var b App
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := b.Provision(ctx); err != nil {
		t.Fatalf("%s: Provision: %v", raw, err)
	}
	defer b.Cleanup()
	err := b.Validate()
	if got != nil {
		got(&b)
	}
	return err
}

// TestAdaptGolden adapts each testdata/*.caddyfiletest (a Caddyfile, a line
// of dashes, the JSON it must adapt to) and compares, as Caddy's own adapt
// tests do.
func TestAdaptGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatal("no separator")
			}
			got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input+"\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Fatalf("warnings: %v", warnings)
			}
			var g, e any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(expected), &e); err != nil {
				t.Fatalf("golden JSON: %v", err)
			}
			gb, _ := json.MarshalIndent(g, "", "  ")
			eb, _ := json.MarshalIndent(e, "", "  ")
			if !bytes.Equal(gb, eb) {
				t.Fatalf("adapted:\n%s\nwant:\n%s", gb, eb)
			}
		})
	}
}

// TestExampleAdapts checks the shipped Caddyfile.example: it must adapt,
// keep Caddy off port 80 with no redirects, and guard both sites.
func TestExampleAdapts(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(raw, nil)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v %v", err, warnings)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				HTTPPort  int `json:"http_port"`
				HTTPSPort int `json:"https_port"`
				Servers   map[string]struct {
					Listen        []string `json:"listen"`
					AutomaticHTTP struct {
						DisableRedirects bool `json:"disable_redirects"`
					} `json:"automatic_https"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(got, &cfg); err != nil {
		t.Fatal(err)
	}
	h := cfg.Apps.HTTP
	if h.HTTPPort != 8080 || h.HTTPSPort != 8443 {
		t.Fatalf("ports %d/%d", h.HTTPPort, h.HTTPSPort)
	}
	for name, s := range h.Servers {
		if !s.AutomaticHTTP.DisableRedirects {
			t.Errorf("server %s may redirect", name)
		}
		for _, l := range s.Listen {
			if strings.HasSuffix(l, ":80") || strings.HasSuffix(l, ":443") {
				t.Errorf("server %s listens on %s", name, l)
			}
		}
	}
	if n := strings.Count(string(got), `"handler":"flagbridge_auth"`); n != 2 {
		t.Errorf("flagbridge_auth appears %d times, want on both sites", n)
	}
}

// TestRateLimitModeReachesTheGuard: rate_limit_mode shadow makes every
// limit of the guard advisory; the default enforces.
func TestRateLimitModeReachesTheGuard(t *testing.T) {
	for line, want := range map[string]bool{"rate_limit_mode shadow": true, "rate_limit_mode enforce": false, "ietf_headers": false} {
		var shadow bool
		if err := provisionApp(t, parseApp(t, line), func(a *App) { shadow = a.guardConfig.ShadowLimits }); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if shadow != want {
			t.Errorf("%q: guard ShadowLimits = %v, want %v", line, shadow, want)
		}
	}
}

// TestAuthRouteLimits: limit and cost in flagbridge_auth's block become
// the route's limits, in the JSON form.
func TestAuthRouteLimits(t *testing.T) {
	var a Auth
	d := caddyfile.NewTestDispenser("flagbridge_auth {\n require live\n limit search 100/1m\n limit burst 10/1s\n cost 2\n}")
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(a)
	want := `{"require":"live","limits":[{"name":"search","requests":100,"window":"1m"},{"name":"burst","requests":10,"window":"1s"}],"cost":2}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

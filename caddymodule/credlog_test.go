package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
)

// Every header the edge takes a key from is either redacted by Caddy
// (Authorization) or listed in unredactedCredentialHeaders; headers that
// look like places for a key are not read by the edge. A header added to
// edge.Credentials must be added to the list.
func TestCredentialHeadersAreTheEdges(t *testing.T) {
	key, err := apikey.Generate(apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range unredactedCredentialHeaders {
		if name != http.CanonicalHeaderKey(name) {
			t.Errorf("%q is not canonical: the map lookup would miss it", name)
		}
		if got, err := edge.Credentials(http.Header{name: {key}}); err != nil || got != key {
			t.Errorf("the edge does not read a key from %s: %q, %v", name, got, err)
		}
	}
	if got, err := edge.Credentials(http.Header{"Authorization": {"Bearer " + key}}); err != nil || got != key {
		t.Fatalf("Authorization: %q, %v", got, err)
	}
	for _, name := range []string{"Api-Key", "X-Auth-Token", "X-Access-Token", "X-Flagbridge-Key", "X-Key", "Token",
		"Proxy-Authorization", "Cookie", "X-Api-Token", "X-Authorization"} {
		if slices.Contains(unredactedCredentialHeaders[:], name) {
			continue
		}
		if got, err := edge.Credentials(http.Header{name: {key}}); err == nil {
			t.Errorf("the edge reads a key from %s (%q): add it to unredactedCredentialHeaders", name, got)
		}
	}
}

// The check on every request is map lookups only: a request with
// Authorization alone pays no allocation for it.
func TestCarriesUnredactedKeyIsFree(t *testing.T) {
	auth := http.Header{"Authorization": {"Bearer k"}, "User-Agent": {"x"}, "Accept": {"*/*"}}
	apiKey := http.Header{"X-Api-Key": {"k"}}
	var got [2]bool
	if n := testing.AllocsPerRun(1000, func() {
		got[0], got[1] = carriesUnredactedKey(auth), carriesUnredactedKey(apiKey)
	}); n != 0 {
		t.Fatalf("%v allocations per check", n)
	}
	if got != [2]bool{false, true} {
		t.Fatalf("Authorization: %v, X-API-Key: %v", got[0], got[1])
	}
	// As the server hands requests on: canonical names, any case on the wire.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("x-api-key", "k")
	if !carriesUnredactedKey(r.Header) {
		t.Fatal("x-api-key not seen")
	}
}

// BenchmarkAuthorizationOnlyCheck is what flagbridge_auth adds to every
// request that presents its key in Authorization.
func BenchmarkAuthorizationOnlyCheck(b *testing.B) {
	h := http.Header{"Authorization": {"Bearer k"}, "User-Agent": {"x"}, "Accept": {"*/*"}, "Content-Type": {"application/json"}}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if carriesUnredactedKey(h) {
			n++
		}
	}
	if n != 0 {
		b.Fatal("Authorization taken for X-API-Key")
	}
}

func TestRedactedRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/projects?x=1", nil)
	r.Header.Set("X-API-Key", "fb_live_secret")
	r.Header.Set("Accept", "*/*")
	orig := http.Request{Method: "POST", RemoteAddr: "192.0.2.1:1234", RequestURI: "/before/rewrite", URL: r.URL}
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, orig))
	c := redactedRequest(r)
	if got := c.Header["X-Api-Key"]; !reflect.DeepEqual(got, []string{"REDACTED"}) {
		t.Fatalf("X-Api-Key = %q", got)
	}
	if r.Header.Get("X-Api-Key") != "fb_live_secret" {
		t.Fatal("the request itself was changed")
	}
	if c.Method != "POST" || c.RemoteAddr != "192.0.2.1:1234" || c.RequestURI != "/before/rewrite" || c.Header.Get("Accept") != "*/*" {
		t.Fatalf("copy: %s %s %s %v", c.Method, c.RemoteAddr, c.RequestURI, c.Header)
	}
}

// The logger names are Caddy's (ServerLogConfig.wrapLogger and
// getLoggerHosts, and Server.shouldLogRequest).
func TestAccessLoggerNames(t *testing.T) {
	logs := &caddyhttp.ServerLogConfig{
		DefaultLoggerName: "default",
		LoggerNames: map[string]caddyhttp.StringArray{
			"api.example.com":   {"api", "audit"},
			"*.example.com":     {"wild"},
			"quiet.example.com": {},
			"empty.example.com": {""},
		},
		SkipHosts: []string{"skip.example.org", "*.skip.example.net", "skip.example.com"},
	}
	for host, want := range map[string][]string{
		"api.example.com":   {"api", "audit"},
		"API.Example.COM":   {"api", "audit"},
		"other.example.com": {"wild"},
		"a.b.example.com":   {"default"}, // a wildcard replaces one label only
		"example.org":       {"default"},
		"quiet.example.com": {},
		"empty.example.com": {""},
	} {
		if got := loggerNames(logs, host); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}

	core, entries := observer.New(zap.DebugLevel)
	base := zap.New(core).Named("http.log.access")
	names := func(r *http.Request) []string {
		var out []string
		for _, l := range loggers(logs, base, r) {
			l.Info("x")
		}
		for _, e := range entries.TakeAll() {
			out = append(out, e.LoggerName)
		}
		return out
	}
	r := httptest.NewRequest("GET", "https://api.example.com:8443/", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
	if got := names(r); !slices.Equal(got, []string{"http.log.access.api", "http.log.access.audit"}) {
		t.Errorf("by host: %q", got)
	}
	// log_name sets access_logger_names, which wins; "" is the logger itself.
	caddyhttp.SetVar(r.Context(), caddyhttp.AccessLoggerNameVarKey, []any{"named", ""})
	if got := names(r); !slices.Equal(got, []string{"http.log.access.named", "http.log.access"}) {
		t.Errorf("by variable: %q", got)
	}
	if got := loggers(nil, base, r); len(got) != 1 || got[0] != base {
		t.Errorf("without Logs: %v", got)
	}

	for host, want := range map[string]bool{
		"api.example.com:443": true, // mapped
		"skip.example.org":    false,
		"skip.example.com":    true, // mapped (*.example.com) wins over skip_hosts
		"a.skip.example.net":  false,
		"example.org":         true,
		"quiet.example.com":   true, // mapped, to no logger
	} {
		srv := &caddyhttp.Server{Logs: logs}
		if got := shouldLogRequest(srv, &http.Request{Host: host}); got != want {
			t.Errorf("shouldLogRequest(%s) = %v", host, got)
		}
	}
	unmapped := *logs
	unmapped.SkipUnmappedHosts = true
	if shouldLogRequest(&caddyhttp.Server{Logs: &unmapped}, &http.Request{Host: "example.org"}) {
		t.Error("an unmapped host logged with skip_unmapped_hosts")
	}
	if shouldLogRequest(&caddyhttp.Server{}, &http.Request{Host: "api.example.com"}) {
		t.Error("logged without Logs")
	}
}

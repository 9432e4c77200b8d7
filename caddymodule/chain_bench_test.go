package caddymodule

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/internal/testenv"
)

// chain is a running Caddy config with FlagBridge's handlers, whose HTTP
// server the benchmarks call directly: every request goes through the whole
// handler chain as Caddy runs it (request preparation, the replacer and
// variables, routing, the access log, flagbridge_auth, flagbridge_api),
// without the network and TLS, which cost the same with or without
// FlagBridge.
type chain struct {
	srv  *caddyhttp.Server
	live string
}

// startChain loads a config on storage ("" for the embedded store in a
// temporary directory) with three routes: /base answered by
// static_response alone, /bench/ by flagbridge_auth (require live) in front
// of it, and the rest by flagbridge_auth and flagbridge_api. Access logs
// are on, written to a discarding writer, as a deployment would log them.
func startChain(tb testing.TB, storage string) *chain {
	tb.Helper()
	if storage == "" {
		storage = "file://" + filepath.Join(tb.TempDir(), "store")
	}
	port := testenv.FreePort(tb)
	cfg := fmt.Sprintf(`{
	"admin": {"disabled": true},
	"logging": {"logs": {
		"default": {"level": "ERROR", "exclude": ["http.log.access"]},
		"access": {"writer": {"output": "discard"}, "encoder": {"format": "json"}, "include": ["http.log.access"]}
	}},
	"apps": {
		"flagbridge": {
			"storage": %q,
			"key_prefix": "chain",
			"rate_limits": {"live": {"requests": 1000000000, "window": 60000000000}, "admin": {"requests": 1000000000, "window": 60000000000}}
		},
		"http": {"servers": {"bench": {
			"listen": ["127.0.0.1:%d"],
			"automatic_https": {"disable": true},
			"logs": {},
			"routes": [
				{"match": [{"path": ["/base"]}], "handle": [{"handler": "static_response", "body": "ok"}], "terminal": true},
				{"match": [{"path": ["/bench/*"]}], "handle": [{"handler": "flagbridge_auth", "require": "live"}, {"handler": "static_response", "body": "ok"}], "terminal": true},
				{"handle": [{"handler": "flagbridge_auth"}, {"handler": "flagbridge_api"}]}
			]
		}}}
	}
}`, storage, port)
	if err := caddy.Load([]byte(cfg), true); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = caddy.Stop() })
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		tb.Fatal(err)
	}
	c := &chain{srv: app.(*caddyhttp.App).Servers["bench"]}

	core, err := currentApp().ready()
	if err != nil {
		tb.Fatal(err)
	}
	res, err := admin.New(core.store).Bootstrap(context.Background(), admin.BootstrapInput{OwnerEmail: "bench@example.com", OwnerName: "Bench"})
	if err != nil {
		tb.Fatal(err)
	}
	adminKey := res.Key
	c.must(tb, "POST", "/v1/projects", adminKey, `{"slug":"bench"}`, 201)
	c.must(tb, "PUT", "/v1/projects/bench/environments/production/flags", adminKey,
		`{"flags":{"static-flag":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"},`+
			`"targeted-flag":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off",`+
			`"targeting":{"if":[{"==":[{"var":"plan"},"pro"]},"on",null]}}}}`, 200)
	var key struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(c.must(tb, "POST", "/v1/projects/bench/api-keys", adminKey,
		`{"name":"live","type":"live","environment":"production"}`, 201), &key); err != nil {
		tb.Fatal(err)
	}
	c.live = key.Key
	return c
}

// request is one HTTPS request as the server would hand it to Caddy.
func (c *chain) request(method, path, key, body string) *http.Request {
	r := httptest.NewRequest(method, "https://bench.example"+path, strings.NewReader(body))
	r.TLS = &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
	r.RemoteAddr = "127.0.0.1:40000"
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

func (c *chain) must(tb testing.TB, method, path, key, body string, want int) []byte {
	tb.Helper()
	w := httptest.NewRecorder()
	c.srv.ServeHTTP(w, c.request(method, path, key, body))
	if w.Code != want {
		tb.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	return w.Body.Bytes()
}

// discardWriter is a ResponseWriter that keeps nothing but the status and
// a reused header map, so that the benchmarks count the chain's work and
// not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// The deadline methods let http.ResponseController calls succeed as they do
// on a real connection, instead of each one allocating an error.
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

// bench runs one request built by build through the chain per iteration,
// and checks its status.
func (c *chain) bench(b *testing.B, build func() *http.Request, want int) {
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := build()
		clear(w.h)
		w.code = 200
		c.srv.ServeHTTP(w, r)
		if w.code != want {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkChain is one request through Caddy's whole handler chain for
// the load benchmark's scenarios, on the embedded store: (b)
// flagbridge_auth in front of static_response, (c) an evaluation, (d) one
// with targeting, and for each, (a) the same request answered by
// static_response alone. Each
// builds its request per iteration (a server does), the same way for a
// scenario and its (a), so what FlagBridge's handlers cost is the
// difference between the two.
func BenchmarkChain(b *testing.B) {
	c := startChain(b, "")
	body := `{"flag":"static-flag","context":{"targetingKey":"user-42"}}`
	b.Run("a_respond_get", func(b *testing.B) {
		c.bench(b, func() *http.Request { return c.request("GET", "/base", c.live, "") }, 200)
	})
	b.Run("a_respond_post", func(b *testing.B) {
		c.bench(b, func() *http.Request { return c.request("POST", "/base", c.live, body) }, 200)
	})
	b.Run("b_auth_respond", func(b *testing.B) {
		c.bench(b, func() *http.Request { return c.request("GET", "/bench/x", c.live, "") }, 200)
	})
	b.Run("c_evaluate", func(b *testing.B) {
		c.bench(b, func() *http.Request { return c.request("POST", "/v1/evaluate", c.live, body) }, 200)
	})
	// (d): a flag with targeting, whose context is decoded (a map, and a
	// value per attribute).
	targeted := `{"flag":"targeted-flag","context":{"targetingKey":"user-42","plan":"pro"}}`
	b.Run("a_respond_post_d", func(b *testing.B) {
		c.bench(b, func() *http.Request { return c.request("POST", "/base", c.live, targeted) }, 200)
	})
	b.Run("d_evaluate_targeting", func(b *testing.B) {
		c.bench(b, func() *http.Request { return c.request("POST", "/v1/evaluate", c.live, targeted) }, 200)
	})
}

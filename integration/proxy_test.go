package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestGuardInFrontOfReverseProxy puts flagbridge_auth with require in front
// of a team's own service.
func TestGuardInFrontOfReverseProxy(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		// A service with rate-limit headers of its own must not confuse
		// clients: the edge's win.
		w.Header().Set("X-RateLimit-Limit", "1")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, "from upstream")
	}))
	defer upstream.Close()

	c := testenv.NewCaddy(t, testenv.CaddyOptions{Site: fmt.Sprintf(`handle /orders/* {
		flagbridge_auth {
			require test
		}
		reverse_proxy %s {
			header_up X-FlagBridge-Key-Id {http.vars.flagbridge.key_id}
			header_up X-FlagBridge-Project {http.vars.flagbridge.project}
		}
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`, upstream.Listener.Addr())}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"shop"}`), 201)
	_, live := createKey(t, c, org, "shop", `{"name":"l","type":"live","environment":"production"}`)
	testID, test := createKey(t, c, org, "shop", `{"name":"t","type":"test","environment":"staging"}`)

	if r := call(t, c, "GET", "/orders/1", live, ""); r.Status != 403 || r.Body != bodyWrongKey {
		t.Fatalf("live key on a test route: %d %s", r.Status, r.Body)
	}
	if r := call(t, c, "GET", "/orders/1", "", ""); r.Status != 401 {
		t.Fatalf("no key: %d", r.Status)
	}
	mu.Lock()
	if len(seen) != 0 {
		t.Fatalf("refused requests reached the upstream: %d", len(seen))
	}
	mu.Unlock()

	r := call(t, c, "GET", "/orders/1", test, "")
	if r.Status != http.StatusAccepted || r.Body != "from upstream" {
		t.Fatalf("test key: %d %s", r.Status, r.Body)
	}
	if got := r.Header.Values("X-RateLimit-Limit"); len(got) != 1 || got[0] != "1000" {
		t.Fatalf("X-RateLimit-Limit through the proxy = %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("upstream saw %d requests", len(seen))
	}
	h := seen[0]
	if h.Get("Authorization") != "" {
		t.Fatalf("the upstream saw the key: %q", h.Get("Authorization"))
	}
	if h.Get("X-FlagBridge-Key-Id") != testID || h.Get("X-FlagBridge-Project") != "shop" {
		t.Fatalf("identity headers: %v", h)
	}
}

// TestHeaderReplaceStaysOnItsRoute edits the headers of FlagBridge's
// answers on one route with Caddy's header directive, which rewrites
// header values in place: the edit must reach that route's answers only,
// and never another route's (an answer cached as private on one route
// must not turn every later answer cacheable).
func TestHeaderReplaceStaysOnItsRoute(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{Site: `handle /v1/evaluate* {
		header >Cache-Control no-store private
		header >Content-Type application/json application/vnd.edited+json
		header >X-Ratelimit-Limit ^(.*)$ edited-$1
		flagbridge_auth
		flagbridge_api
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"shop"}`), 201)
	_, live := createKey(t, c, org, "shop", `{"name":"l","type":"live","environment":"production"}`)
	mustStatus(t, call(t, c, "PUT", "/v1/projects/shop/environments/production/flags/on", org,
		`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`), 201)

	for i := range 3 {
		for _, key := range []string{"", live} {
			edited := call(t, c, "POST", "/v1/evaluate", key, `{"flag":"on"}`)
			if got := edited.Header.Get("Cache-Control"); got != "private" {
				t.Fatalf("round %d: Cache-Control on the edited route = %q (status %d)", i, got, edited.Status)
			}
			if got := edited.Header.Get("Content-Type"); got != "application/vnd.edited+json" {
				t.Fatalf("round %d: Content-Type on the edited route = %q", i, got)
			}
			other := call(t, c, "GET", "/v1/projects/shop", key, "")
			if got := other.Header.Get("Cache-Control"); got != "no-store" {
				t.Fatalf("round %d: Cache-Control on another route = %q after the edit (status %d)", i, got, other.Status)
			}
			if got := other.Header.Get("Content-Type"); got != "application/json" {
				t.Fatalf("round %d: Content-Type on another route = %q after the edit", i, got)
			}
			if got := other.Header.Get("X-Ratelimit-Limit"); key != "" && strings.HasPrefix(got, "edited-") {
				t.Fatalf("round %d: X-RateLimit-Limit on another route = %q after the edit", i, got)
			}
		}
	}
}

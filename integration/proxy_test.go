package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
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

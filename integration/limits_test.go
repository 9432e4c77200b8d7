package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestKeyAndRouteLimits runs limits end to end on Redis: keys created and
// changed over REST with limits, a quota and an identity; flagbridge_auth
// with limit and cost in front of an upstream; the identity handed to it.
func TestKeyAndRouteLimits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var identities []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		identities = append(identities, r.Header.Get("X-Customer"))
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	defer upstream.Close()
	redis := testenv.StartRedis(t)
	c := testenv.NewCaddy(t, testenv.CaddyOptions{Global: "\tflagbridge {\n\t\tstorage " + redis.URL() + "\n\t}", Site: fmt.Sprintf(`handle /search/* {
		flagbridge_auth {
			require live
			limit search 3/1h
			cost 2
		}
		reverse_proxy %s {
			header_up X-Customer {http.vars.flagbridge.identity}
		}
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`, upstream.Listener.Addr())}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"shop"}`), 201)

	// A key of its own limits and a quota, on the API's evaluate route.
	id, key := createKey(t, c, org, "shop", `{"name":"metered","type":"live","environment":"production",
		"limits":[{"name":"burst","requests":2,"window":"1h"},{"name":"daily","requests":100,"window":"24h"}],
		"quota":{"requests":1000,"period":"month"}}`)
	for i := range 2 {
		r := call(t, c, "POST", "/v1/evaluate", key, `{"flag":"x"}`)
		if r.Header.Get("X-RateLimit-Limit") != "2" || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) || r.Header.Get("X-Quota-Remaining") != strconv.Itoa(999-i) {
			t.Fatalf("request %d: %d %v", i, r.Status, r.Header)
		}
	}
	if r := call(t, c, "POST", "/v1/evaluate", key, `{"flag":"x"}`); r.Status != 429 || r.Header.Get("X-Quota-Remaining") != "998" {
		t.Fatalf("past the burst: %d %v %s, want 429 with the quota untouched", r.Status, r.Header, r.Body)
	}
	// A PATCH is enforced from the next request: the type's default limit
	// again (the key's own bucket), and a quota of 2 a day.
	mustStatus(t, call(t, c, "PATCH", "/v1/api-keys/"+id, org, `{"limits":null,"quota":{"requests":2,"period":"day"}}`), 200)
	for i := range 2 {
		r := call(t, c, "POST", "/v1/evaluate", key, `{"flag":"x"}`)
		if r.Header.Get("X-RateLimit-Limit") != "10000" || r.Header.Get("X-Quota-Limit") != "2" || r.Header.Get("X-Quota-Remaining") != strconv.Itoa(1-i) {
			t.Fatalf("after the PATCH, request %d: %d %v", i, r.Status, r.Header)
		}
	}
	if r := call(t, c, "POST", "/v1/evaluate", key, `{"flag":"x"}`); r.Status != 429 ||
		r.Body != `{"error":"QUOTA_EXCEEDED","message":"Quota exceeded; it renews in `+r.Header.Get("Retry-After")+` seconds"}` {
		t.Fatalf("past the day's quota: %d %v %s", r.Status, r.Header, r.Body)
	}

	// Route limits per identity: two keys of one customer share the
	// route's 3 per hour, at a cost of 2 a request.
	_, a := createKey(t, c, org, "shop", `{"name":"a","type":"live","environment":"production","identity":"acme"}`)
	_, b := createKey(t, c, org, "shop", `{"name":"b","type":"live","environment":"production","identity":"acme"}`)
	_, other := createKey(t, c, org, "shop", `{"name":"o","type":"live","environment":"production"}`)
	if r := call(t, c, "GET", "/search/1", a, ""); r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != "3" || r.Header.Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("first search of acme: %d %v", r.Status, r.Header)
	}
	if r := call(t, c, "GET", "/search/1", b, ""); r.Status != 429 {
		t.Fatalf("acme's other key, with 1 left of the route's 3 and a cost of 2: %d %v", r.Status, r.Header)
	}
	if r := call(t, c, "GET", "/search/1", other, ""); r.Status != 200 || r.Header.Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("a key without an identity has the route's limit to itself: %d %v", r.Status, r.Header)
	}
	// The identity's own pool, shared by both keys from the next request.
	mustStatus(t, call(t, c, "PUT", "/v1/projects/shop/identities/acme", org, `{"limits":[{"name":"pool","requests":3,"window":"1h"}]}`), 201)
	var got []int
	for _, k := range []string{a, b, a, b} {
		got = append(got, call(t, c, "POST", "/v1/evaluate", k, `{"flag":"x"}`).Status)
	}
	if got[3] != 429 || got[0] == 429 || got[1] == 429 || got[2] == 429 {
		t.Fatalf("a, b, a, b under acme's pool of 3: %v, want the fourth refused", got)
	}
	if r := call(t, c, "POST", "/v1/evaluate", other, `{"flag":"x"}`); r.Status == 429 {
		t.Fatalf("a key of no identity was refused by acme's pool: %v", r.Header)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(identities) != 2 || identities[0] != "acme" || identities[1] != "" {
		t.Fatalf("the upstream saw identities %q, want acme then none", identities)
	}
}

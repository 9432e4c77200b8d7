package integration

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestOneLimitAcrossThreeInstances drives one key through three instances
// sharing Redis at once: together they admit what the key's limit allows,
// within 1%.
func TestOneLimitAcrossThreeInstances(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	// A long window, so that nothing refills during the test: the limit
	// admits exactly its burst.
	const limit = 1000
	limits := fmt.Sprintf("\t\trate_limit live %d/1h", limit)
	nodes := []*testenv.Caddy{redisCaddy(t, r, limits), redisCaddy(t, r, limits), redisCaddy(t, r, limits)}
	admin := bootstrap(t, nodes[0])
	mustStatus(t, call(t, nodes[0], "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	mustStatus(t, call(t, nodes[0], "PUT", "/v1/projects/app/environments/production/flags", admin,
		`{"flags":{"f":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"}}}`), 200)
	_, live := createKey(t, nodes[0], admin, "app", `{"name":"shared","type":"live","environment":"production"}`)

	const total = 3 * limit
	got, limited := hammer(t, nodes, total, func(int) (string, string, string, string) {
		return "POST", "/v1/evaluate", live, `{"flag":"f"}`
	})
	t.Logf("3 instances, %d requests: %d admitted, %d limited (limit %d)", total, got, limited, limit)
	if diff := got - limit; diff < -limit/100 || diff > limit/100 {
		t.Fatalf("admitted %d, want %d within 1%%", got, limit)
	}
}

// TestChangesReachEveryInstanceWithinASecond revokes keys and changes
// flags through one instance, many times, and measures when each of two
// other instances sharing Redis follows: the p99 must be under a second.
func TestChangesReachEveryInstanceWithinASecond(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	a, b, c := redisCaddy(t, r, ""), redisCaddy(t, r, ""), redisCaddy(t, r, "")
	admin := bootstrap(t, a)
	mustStatus(t, call(t, a, "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	_, live := createKey(t, a, admin, "app", `{"name":"l","type":"live","environment":"production"}`)
	const trials = 25
	var lags []time.Duration
	var mu sync.Mutex
	follow := func(what string, changed func(*testenv.Caddy) bool, change func()) {
		start := time.Now()
		change()
		var wg sync.WaitGroup
		for _, n := range []*testenv.Caddy{b, c} {
			wg.Add(1)
			go func(n *testenv.Caddy) {
				defer wg.Done()
				eventually(t, 2*time.Second, what, func() bool { return changed(n) })
				mu.Lock()
				lags = append(lags, time.Since(start))
				mu.Unlock()
			}(n)
		}
		wg.Wait()
	}
	for i := 0; i < trials; i++ {
		// Revocation: cache the key on both followers, revoke on a.
		id, key := createKey(t, a, admin, "app", fmt.Sprintf(`{"name":"k%d","type":"admin"}`, i))
		for _, n := range []*testenv.Caddy{b, c} {
			mustStatus(t, call(t, n, "GET", "/v1/projects", key, ""), 200)
		}
		follow("revocation", func(n *testenv.Caddy) bool {
			return call(t, n, "GET", "/v1/projects", key, "").Status == 401
		}, func() { mustStatus(t, call(t, a, "DELETE", "/v1/api-keys/"+id, admin, ""), 200) })

		// A limits change: a key at 1 request an hour everywhere, then,
		// patched on a, at 1,000 on the followers.
		lid, lkey := createKey(t, a, admin, "app", fmt.Sprintf(`{"name":"m%d","type":"live","environment":"production","limits":[{"name":"tight","requests":1,"window":"1h"}]}`, i))
		for _, n := range []*testenv.Caddy{b, c} {
			if r := call(t, n, "POST", "/v1/evaluate", lkey, `{"flag":"n"}`); r.Header.Get("X-Ratelimit-Limit") != "1" {
				t.Fatalf("key with a limit of 1: %d %v", r.Status, r.Header)
			}
		}
		follow("limits change", func(n *testenv.Caddy) bool {
			return call(t, n, "POST", "/v1/evaluate", lkey, `{"flag":"n"}`).Header.Get("X-Ratelimit-Limit") == "1000"
		}, func() {
			mustStatus(t, call(t, a, "PATCH", "/v1/api-keys/"+lid, admin, `{"limits":[{"name":"wide","requests":1000,"window":"1h"}]}`), 200)
		})

		// A flag change: the followers evaluate the old value, then the new.
		if r := call(t, a, "PUT", "/v1/projects/app/environments/production/flags/n", admin,
			fmt.Sprintf(`{"state":"ENABLED","variants":{"v":%d},"defaultVariant":"v"}`, 2*i)); r.Status != 200 && r.Status != 201 {
			t.Fatalf("flag write: %d %s", r.Status, r.Body)
		}
		for _, n := range []*testenv.Caddy{b, c} {
			eventually(t, 2*time.Second, "the first value", func() bool {
				return strings.Contains(call(t, n, "POST", "/v1/evaluate", live, `{"flag":"n"}`).Body, fmt.Sprintf(`"value":%d`, 2*i))
			})
		}
		follow("flag change", func(n *testenv.Caddy) bool {
			return strings.Contains(call(t, n, "POST", "/v1/evaluate", live, `{"flag":"n"}`).Body, fmt.Sprintf(`"value":%d`, 2*i+1))
		}, func() {
			mustStatus(t, call(t, a, "PUT", "/v1/projects/app/environments/production/flags/n", admin,
				fmt.Sprintf(`{"state":"ENABLED","variants":{"v":%d},"defaultVariant":"v"}`, 2*i+1)), 200)
		})
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
	t.Logf("%d changes seen by followers: p50 %v, p99 %v, max %v (each including one HTTP round trip to the follower)",
		len(lags), p50, p99, lags[len(lags)-1])
	if p99 >= time.Second {
		t.Fatalf("p99 %v, want under 1s", p99)
	}
}

// TestRedisCluster runs FlagBridge on a three-master Redis Cluster started
// on loopback: storage, limits and the change feed across instances.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	nodes := testenv.StartRedisCluster(t, 3)
	url := testenv.ClusterURL(nodes)
	start := func() *testenv.Caddy {
		return testenv.NewCaddy(t, testenv.CaddyOptions{
			Global: fmt.Sprintf("\tflagbridge {\n\t\tstorage %s\n\t\trate_limit test 5/1h\n\t}", url),
		}).Start()
	}
	a, b := start(), start()
	admin := bootstrap(t, a)
	mustStatus(t, call(t, a, "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	mustStatus(t, call(t, a, "PUT", "/v1/projects/app/environments/production/flags", admin,
		`{"flags":{"f":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}}}`), 200)
	id, key := createKey(t, a, admin, "app", `{"name":"k","type":"admin"}`)
	_, live := createKey(t, a, admin, "app", `{"name":"l","type":"live","environment":"production"}`)
	_, test := createKey(t, a, admin, "app", `{"name":"t","type":"test","environment":"production"}`)
	if r := mustStatus(t, call(t, b, "POST", "/v1/evaluate", live, `{"flag":"f"}`), 200); !strings.Contains(r.Body, `"value":true`) {
		t.Fatalf("evaluation on b: %s", r.Body)
	}
	// The limit is one bucket for both instances.
	for i := 0; i < 5; i++ {
		n := []*testenv.Caddy{a, b}[i%2]
		if r := call(t, n, "POST", "/v1/evaluate", test, `{"flag":"f"}`); r.Status != 200 || r.Header.Get("X-RateLimit-Remaining") != fmt.Sprint(4-i) {
			t.Fatalf("request %d: %d %v", i, r.Status, r.Header)
		}
	}
	if r := call(t, b, "POST", "/v1/evaluate", test, `{"flag":"f"}`); r.Status != 429 {
		t.Fatalf("over the shared limit: %d", r.Status)
	}
	// Changes travel between instances over the cluster's pub/sub.
	mustStatus(t, call(t, a, "PUT", "/v1/projects/app/environments/production/flags/f", admin,
		`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}`), 200)
	eventually(t, time.Second, "a flag change reaching b", func() bool {
		return strings.Contains(call(t, b, "POST", "/v1/evaluate", live, `{"flag":"f"}`).Body, `"value":false`)
	})
	mustStatus(t, call(t, a, "DELETE", "/v1/api-keys/"+id, admin, ""), 200)
	eventually(t, time.Second, "a revocation reaching b", func() bool {
		return call(t, b, "GET", "/v1/projects", key, "").Status == 401
	})
	// Keys that belong together share a hash tag: every FlagBridge record
	// is in the store's one slot, every bucket in its own.
	keys := map[string]bool{}
	for _, n := range nodes {
		for _, k := range n.Client().Keys(t.Context(), "*").Val() {
			keys[k] = true
		}
	}
	for k := range keys {
		if !strings.HasPrefix(k, "{fb}:") && !strings.HasPrefix(k, "rate:fb:rl:{") {
			t.Errorf("key %q has no FlagBridge hash tag", k)
		}
	}
}

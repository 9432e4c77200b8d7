package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// redisCaddy starts an instance on a shared Redis with extra flagbridge
// options.
func redisCaddy(t *testing.T, r *testenv.Redis, extra string) *testenv.Caddy {
	t.Helper()
	return testenv.NewCaddy(t, testenv.CaddyOptions{
		Global: fmt.Sprintf("\tflagbridge {\n\t\tstorage %s\n%s\n\t}", r.URL(), extra),
	}).Start()
}

// commandCounts reads Redis's own per-command call counters.
func commandCounts(t *testing.T, c *redis.Client) map[string]int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// dataCommands sums the calls of commands that read or write data,
// leaving out what a client does to stay connected and what the test
// itself sends.
func dataCommands(m map[string]int) int {
	n := 0
	for cmd, calls := range m {
		switch cmd {
		case "ping", "info", "client|setinfo", "client|setname", "hello", "subscribe", "config|resetstat":
		default:
			n += calls
		}
	}
	return n
}

func TestPlainHTTPCostsNoRedisCommand(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	c := redisCaddy(t, r, "")
	org := bootstrap(t, c)
	rc := r.Client()
	before := dataCommands(commandCounts(t, rc))
	for i := 0; i < 20; i++ {
		res := send(t, c.Client(), "GET", c.PlainURL("/v1/projects"), org, "")
		if res.Status != 403 || res.Body != bodyHTTPS {
			t.Fatalf("plain HTTP: %d %s", res.Status, res.Body)
		}
	}
	if after := dataCommands(commandCounts(t, rc)); after != before {
		t.Fatalf("plain HTTP requests ran %d Redis commands: %v", after-before, commandCounts(t, rc))
	}
	// And the hot path of an authenticated request costs exactly one
	// round trip, the limiter's script, once the key is cached. (Redis
	// counts the commands a script runs too, so scripts and storage
	// commands are counted apart.)
	mustStatus(t, call(t, c, "GET", "/v1/projects", org, ""), 200)
	scripts := func(m map[string]int) int { return m["evalsha"] + m["eval"] }
	storage := func(m map[string]int) int {
		return m["hget"] + m["hgetall"] + m["hset"] + m["hdel"] + m["watch"] + m["multi"] + m["exec"]
	}
	m0 := commandCounts(t, rc)
	const n = 10
	for i := 0; i < n; i++ {
		call(t, c, "POST", "/v1/evaluate", org, `{}`)
	}
	m1 := commandCounts(t, rc)
	if got := scripts(m1) - scripts(m0); got != n {
		t.Fatalf("%d authenticated requests ran %d limiter scripts, want %d: %v", n, got, n, m1)
	}
	if got := storage(m1) - storage(m0); got != 0 {
		t.Fatalf("%d authenticated requests ran %d storage commands, want none: %v", n, got, m1)
	}
}

// TestSecondInstanceSeesChanges revokes and rotates keys on one instance and
// watches another, sharing Redis, stop accepting them.
func TestSecondInstanceSeesChanges(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	a := redisCaddy(t, r, "")
	b := redisCaddy(t, r, "")
	org := bootstrap(t, a) // straight to Redis
	mustStatus(t, call(t, a, "POST", "/v1/projects", org, `{"slug":"app"}`), 201)

	works := func(c *testenv.Caddy, key string) bool {
		st := call(t, c, "GET", "/v1/projects", key, "").Status
		return st == 200
	}
	// Revocation.
	id, key := createKey(t, a, org, "app", `{"name":"k","type":"admin"}`)
	if !works(b, key) {
		t.Fatal("a key created on A does not work on B")
	}
	mustStatus(t, call(t, a, "DELETE", "/v1/api-keys/"+id, org, ""), 200)
	took := eventually(t, time.Second, "revocation reaching B", func() bool { return !works(b, key) })
	t.Logf("revocation seen by B after %v", took)

	// Rotation without a grace period: the old secret stops at once.
	id, key = createKey(t, a, org, "app", `{"name":"r","type":"admin"}`)
	if !works(b, key) {
		t.Fatal("new key on B")
	}
	rot := mustStatus(t, call(t, a, "POST", "/v1/api-keys/"+id+"/rotate", org, ""), 200).JSON(t)
	newKey := rot["key"].(string)
	took = eventually(t, time.Second, "rotation reaching B", func() bool { return !works(b, key) })
	t.Logf("rotation seen by B after %v", took)
	if !works(b, newKey) || rot["id"] != id {
		t.Fatalf("rotated key on B: %v", rot)
	}
	// Rotation with a grace period: both work on B until it ends.
	rot = mustStatus(t, call(t, a, "POST", "/v1/api-keys/"+id+"/rotate", org, `{"grace_period":"1h"}`), 200).JSON(t)
	if !works(b, newKey) || !works(b, rot["key"].(string)) {
		t.Fatal("grace period: both secrets should work on B")
	}
	// Deleting a project takes its keys with it, everywhere.
	_, pkey := createKey(t, a, org, "app", `{"name":"p","type":"admin"}`)
	if !works(b, pkey) {
		t.Fatal("project key on B")
	}
	mustStatus(t, call(t, a, "DELETE", "/v1/projects/app", org, ""), 204)
	eventually(t, time.Second, "project deletion reaching B", func() bool { return !works(b, pkey) })
}

// TestSharedLimitAndHeaders drives one key through two instances: they
// share the bucket, and every response carries its headers.
func TestSharedLimitAndHeaders(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	limits := "\t\trate_limit admin 6/1h\n\t\trate_limit unauthenticated 3/1h"
	a := redisCaddy(t, r, limits)
	b := redisCaddy(t, r, limits)
	org := bootstrap(t, a)
	seen := 0
	for i := 0; i < 6; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		// A 404 from the API (an unknown project) still reports the bucket.
		res := call(t, c, "GET", "/v1/projects/nope", org, "")
		if res.Status != 404 {
			t.Fatalf("request %d: %d %s", i, res.Status, res.Body)
		}
		if res.Header.Get("X-RateLimit-Limit") != "6" || res.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(5-i) {
			t.Fatalf("request %d: headers %v", i, res.Header)
		}
		reset, _ := strconv.ParseInt(res.Header.Get("X-RateLimit-Reset"), 10, 64)
		if reset < time.Now().Unix() {
			t.Fatalf("reset %d in the past", reset)
		}
		seen++
	}
	for _, c := range []*testenv.Caddy{a, b} {
		res := call(t, c, "GET", "/v1/projects", org, "")
		if res.Status != 429 || !strings.HasPrefix(res.Body, `{"error":"RATE_LIMITED"`) {
			t.Fatalf("over the shared limit: %d %s", res.Status, res.Body)
		}
		if res.Header.Get("Retry-After") == "" || res.Header.Get("X-RateLimit-Remaining") != "0" {
			t.Fatalf("429 headers: %v", res.Header)
		}
	}
	// Failed authentication: limited per IP, with that bucket's headers.
	for i := 0; i < 3; i++ {
		res := call(t, a, "GET", "/v1/projects", "", "")
		if res.Status != 401 || res.Body != bodyMissing || res.Header.Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("failure %d: %d %v %s", i, res.Status, res.Header, res.Body)
		}
	}
	if res := call(t, b, "GET", "/v1/projects", "fb_live_nope", ""); res.Status != 429 {
		t.Fatalf("key guessing past the IP limit (on another instance): %d", res.Status)
	}
}

// TestReloadKeepsState reloads the config under use and checks that the
// Redis connections (and the key cache) survive it.
func TestReloadKeepsState(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	c := redisCaddy(t, r, "")
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "GET", "/v1/projects", org, ""), 200)
	rc := r.Client()
	ids := func() map[string]bool {
		list, err := rc.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "id="); ok && !strings.Contains(line, "cmd=client|list") {
					out[v] = true
				}
			}
		}
		return out
	}
	before := ids()
	lookups := commandCounts(t, rc)["hget"]

	// Reload with a changed limit: the app is provisioned anew, the state
	// must not be.
	cfg := strings.Replace(readFile(t, c.Config), "flagbridge {", "flagbridge {\n\t\trate_limit admin 499/1m", 1)
	writeFile(t, c.Config, cfg)
	c.Run("reload", "--config", c.Config, "--adapter", "caddyfile", "--address", fmt.Sprintf("localhost:%d", c.AdminPort))

	res := mustStatus(t, call(t, c, "GET", "/v1/projects", org, ""), 200)
	if res.Header.Get("X-RateLimit-Limit") != "499" {
		t.Fatalf("the reloaded limit is not applied: %v", res.Header)
	}
	after := ids()
	for id := range before {
		if !after[id] {
			t.Fatalf("Redis connection %s was closed by the reload (before %v, after %v)", id, before, after)
		}
	}
	if got := commandCounts(t, rc)["hget"]; got != lookups {
		t.Fatalf("the key cache was lost in the reload: %d new key lookups", got-lookups)
	}
}

func TestBootstrapOnRedisWithoutServer(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	c := testenv.NewCaddy(t, testenv.CaddyOptions{
		Global: fmt.Sprintf("\tflagbridge {\n\t\tstorage %s\n\t}", r.URL()),
	})
	org := bootstrap(t, c) // nothing is running
	c.Start()
	mustStatus(t, call(t, c, "GET", "/v1/projects", org, ""), 200)
}

package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// hammer sends total requests from 12 clients per instance at once, the
// i-th made by req on instance i%len(nodes), and counts the answers.
func hammer(t *testing.T, nodes []*testenv.Caddy, total int, req func(i int) (method, path, key, body string)) (admitted, limited int) {
	t.Helper()
	var ok, refused, other atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		for range nodes {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					c := nodes[i%len(nodes)]
					method, path, key, body := req(i)
					r, _ := http.NewRequest(method, c.URL(path), strings.NewReader(body))
					r.Header.Set("Authorization", "Bearer "+key)
					resp, err := c.Client().Do(r)
					if err != nil {
						other.Add(1)
						continue
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case 200:
						ok.Add(1)
					case 429:
						refused.Add(1)
					default:
						other.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if other.Load() != 0 {
		t.Fatalf("%d of %d requests got neither 200 nor 429", other.Load(), total)
	}
	return int(ok.Load()), int(refused.Load())
}

// TestLimitsAcrossThreeInstances: three instances sharing Redis, under
// concurrent load, admit exactly (within 1%) what a key's named limit, a
// key's quota, an identity's shared pool and a route's limit allow.
func TestLimitsAcrossThreeInstances(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	const limit = 200 // per bucket; windows of an hour, so nothing refills
	site := fmt.Sprintf(`handle /search/* {
		flagbridge_auth {
			require live
			limit search %d/1h
		}
		respond "ok"
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`, limit)
	nodes := make([]*testenv.Caddy, 3)
	for i := range nodes {
		nodes[i] = testenv.NewCaddy(t, testenv.CaddyOptions{
			Global: fmt.Sprintf("\tflagbridge {\n\t\tstorage %s\n\t}", r.URL()), Site: site,
		}).Start()
	}
	admin := bootstrap(t, nodes[0])
	mustStatus(t, call(t, nodes[0], "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	mustStatus(t, call(t, nodes[0], "PUT", "/v1/projects/app/environments/production/flags", admin,
		`{"flags":{"f":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"}}}`), 200)
	_, limited := createKey(t, nodes[0], admin, "app", fmt.Sprintf(`{"name":"limited","type":"live","environment":"production",
		"limits":[{"name":"hourly","requests":%d,"window":"1h"},{"name":"daily","requests":100000,"window":"24h"}]}`, limit))
	_, quota := createKey(t, nodes[0], admin, "app", fmt.Sprintf(`{"name":"quota","type":"live","environment":"production",
		"quota":{"requests":%d,"period":"month"}}`, limit))
	mustStatus(t, call(t, nodes[0], "PUT", "/v1/projects/app/identities/acme", admin,
		fmt.Sprintf(`{"limits":[{"name":"pool","requests":%d,"window":"1h"}]}`, limit)), 201)
	_, acme1 := createKey(t, nodes[0], admin, "app", `{"name":"acme-1","type":"live","environment":"production","identity":"acme"}`)
	_, acme2 := createKey(t, nodes[0], admin, "app", `{"name":"acme-2","type":"live","environment":"production","identity":"acme"}`)
	_, plain := createKey(t, nodes[0], admin, "app", `{"name":"plain","type":"live","environment":"production"}`)

	eval := func(keys ...string) func(int) (string, string, string, string) {
		return func(i int) (string, string, string, string) {
			return "POST", "/v1/evaluate", keys[i%len(keys)], `{"flag":"f"}`
		}
	}
	search := func(i int) (string, string, string, string) { return "GET", "/search/q", plain, "" }
	for _, c := range []struct {
		name string
		req  func(int) (string, string, string, string)
	}{
		{"a key's named limit", eval(limited)},
		{"a key's quota", eval(quota)},
		{"an identity's pool, over two keys", eval(acme1, acme2)},
		{"a route's limit", search},
	} {
		total := 3 * limit
		got, refused := hammer(t, nodes, total, c.req)
		t.Logf("%s: %d requests over 3 instances, %d admitted, %d refused (limit %d)", c.name, total, got, refused, limit)
		if d := got - limit; d < -limit/100 || d > limit/100 {
			t.Errorf("%s: %d admitted, want %d within 1%%", c.name, got, limit)
		}
	}
}

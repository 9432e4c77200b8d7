package integration

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// metricSample is one line of a Prometheus text exposition.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

type metricSamples []metricSample

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)

// scrapeMetrics fetches /metrics from an instance's admin endpoint and
// returns FlagBridge's metricSamples and the raw text of their lines.
func scrapeMetrics(t *testing.T, c *testenv.Caddy) (metricSamples, string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", c.AdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	var out metricSamples
	var raw strings.Builder
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "flagbridge_") {
			continue
		}
		raw.WriteString(line + "\n")
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparsable metrics line %q", line)
		}
		s := metricSample{name: m[1], labels: map[string]string{}}
		if m[2] != "" {
			for _, pair := range strings.Split(m[2], ",") {
				k, v, ok := strings.Cut(pair, "=")
				if !ok {
					t.Fatalf("label %q in %q", pair, line)
				}
				s.labels[k] = strings.Trim(v, `"`)
			}
		}
		if s.value, err = strconv.ParseFloat(m[3], 64); err != nil {
			t.Fatalf("value in %q: %v", line, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatalf("no flagbridge metrics in /metrics:\n%s", body)
	}
	return out, raw.String()
}

// get sums the metricSamples of name whose labels include labels ("k", "v", ...).
func (ss metricSamples) get(name string, labels ...string) float64 {
	var sum float64
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		sum += s.value
	}
	return sum
}

func guardRequests(keyType, outcome string) []string {
	return []string{"key_type", keyType, "outcome", outcome}
}

// TestMetrics drives requests of every outcome through two instances on
// one Redis, reads their /metrics, and reloads one of them: the counters
// move, the labels hold no key material, and a reload neither panics on
// registering the collectors again nor resets them.
func TestMetrics(t *testing.T) {
	t.Parallel()
	// Durable, so that the keys survive the outage below.
	r := testenv.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	opts := "\t\tstorage_timeout 200ms\n\t\trate_limit live 2/1m\n\t\trate_limit unauthenticated 4/1m"
	a := redisCaddy(t, r, opts)
	b := redisCaddy(t, r, opts)
	org := bootstrap(t, a)
	mustStatus(t, call(t, a, "POST", "/v1/projects", org, `{"slug":"shop","name":"Shop"}`), 201)
	liveID, live := createKey(t, a, org, "shop", `{"name":"live","type":"live","environment":"production"}`)
	_, unused := createKey(t, a, org, "shop", `{"name":"never used","type":"live","environment":"production"}`)

	// One request of each outcome on a.
	if res := send(t, a.Client(), "GET", a.PlainURL("/v1/projects"), org, ""); res.Status != 403 {
		t.Fatalf("plain HTTP: %d", res.Status)
	}
	mustStatus(t, call(t, a, "GET", "/v1/projects", "", ""), 401)
	mustStatus(t, call(t, a, "GET", "/v1/projects", org, ""), 200)
	mustStatus(t, call(t, a, "POST", "/v1/evaluate", live, `{"flag":"none"}`), 404) // admitted; no such flag
	mustStatus(t, call(t, a, "GET", "/v1/projects", live, ""), 403)
	mustStatus(t, call(t, a, "POST", "/v1/evaluate", live, `{"flag":"none"}`), 429)

	m, _ := scrapeMetrics(t, a)
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{guardRequests("none", "https_required"), 1},
		{guardRequests("none", "unauthorized"), 1},
		{guardRequests("admin", "allowed"), 4}, // a project, two keys, the list
		{guardRequests("live", "allowed"), 1},
		{guardRequests("live", "forbidden"), 1},
		{guardRequests("live", "limited"), 1},
		{guardRequests("live", "storage_unavailable"), 0},
	} {
		if got := m.get("flagbridge_guard_requests_total", c.labels...); got != c.want {
			t.Errorf("requests%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if hits, misses := m.get("flagbridge_key_cache_lookups_total", "result", "hit"), m.get("flagbridge_key_cache_lookups_total", "result", "miss"); hits < 4 || misses < 2 {
		t.Errorf("key cache: %v hits, %v misses", hits, misses)
	}
	// Every request with a well-formed key or none checked a limiter.
	if n := m.get("flagbridge_rate_limiter_duration_seconds_count"); n < 7 {
		t.Errorf("limiter checks observed: %v", n)
	}

	// Changes reach the other instance, which measures how long they took:
	// a revocation (topic keys) and a flag set (topic flags).
	before, _ := scrapeMetrics(t, b)
	mustStatus(t, call(t, a, "DELETE", "/v1/api-keys/"+liveID, org, ""), 200)
	mustStatus(t, call(t, a, "PUT", "/v1/projects/shop/environments/production/flags", org,
		`{"flags":{"f":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"}}}`), 200)
	eventually(t, 5*time.Second, "invalidation lag observed on the other instance", func() bool {
		after, _ := scrapeMetrics(t, b)
		return after.get("flagbridge_invalidation_lag_seconds_count", "topic", "keys") > before.get("flagbridge_invalidation_lag_seconds_count", "topic", "keys") &&
			after.get("flagbridge_invalidation_lag_seconds_count", "topic", "flags") > before.get("flagbridge_invalidation_lag_seconds_count", "topic", "flags")
	})
	after, _ := scrapeMetrics(t, b)
	if sum := after.get("flagbridge_invalidation_lag_seconds_sum", "topic", "keys"); sum <= 0 || sum > 5 {
		t.Errorf("invalidation lag sum on b: %v s", sum)
	}

	// Storage fails: a key a has never seen cannot be verified, and a's
	// cached admin key cannot be rate limited (deny, the default).
	r.Stop()
	mustStatus(t, call(t, a, "GET", "/v1/projects", org, ""), 503)
	mustStatus(t, call(t, a, "POST", "/v1/evaluate", unused, `{"flag":"f"}`), 503)
	r.Start()
	eventually(t, 10*time.Second, "Redis back", func() bool {
		return call(t, a, "GET", "/v1/projects", org, "").Status == 200
	})
	m, raw := scrapeMetrics(t, a)
	if got := m.get("flagbridge_guard_requests_total", guardRequests("admin", "storage_unavailable")...); got < 1 {
		t.Errorf("admin storage_unavailable: %v", got)
	}
	if got := m.get("flagbridge_guard_requests_total", guardRequests("none", "storage_unavailable")...); got < 1 {
		t.Errorf("unverifiable key: requests(none, storage_unavailable) = %v", got)
	}
	if m.get("flagbridge_storage_errors_total", "operation", "rate_limit") < 1 || m.get("flagbridge_storage_errors_total", "operation", "key_lookup") < 1 {
		t.Errorf("storage errors: rate_limit %v, key_lookup %v",
			m.get("flagbridge_storage_errors_total", "operation", "rate_limit"), m.get("flagbridge_storage_errors_total", "operation", "key_lookup"))
	}
	eventually(t, 10*time.Second, "a resync counted after the outage", func() bool {
		m, _ := scrapeMetrics(t, a)
		return m.get("flagbridge_change_feed_resyncs_total") >= 1
	})

	// No key material anywhere in FlagBridge's metrics, and only the
	// documented labels.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`fb_(client|live|test|admin)_`),
		regexp.MustCompile(`key_[0-9A-Za-z]{20}`),
		regexp.MustCompile(`[0-9a-f]{64}`),
		regexp.MustCompile(`127\.0\.0\.1|::1|localhost`),
		regexp.MustCompile(regexp.QuoteMeta(live[len(live)-8:])),
	} {
		if loc := bad.FindString(raw); loc != "" {
			t.Errorf("metrics hold %q (%s)", loc, bad)
		}
	}
	for _, s := range m {
		for k := range s.labels {
			switch k {
			case "key_type", "outcome", "result", "operation", "topic", "threshold", "le":
			default:
				t.Errorf("%s has label %s", s.name, k)
			}
		}
	}

	// A reload (with the IETF fields turned on) registers the collectors in
	// the new config's registry: no duplicate-registration panic, and the
	// counters go on from where they were.
	prev := m.get("flagbridge_guard_requests_total", guardRequests("admin", "allowed")...)
	cfg := strings.Replace(readFile(t, a.Config), "flagbridge {", "flagbridge {\n\t\tietf_headers", 1)
	writeFile(t, a.Config, cfg)
	a.Run("reload", "--config", a.Config, "--adapter", "caddyfile", "--address", fmt.Sprintf("localhost:%d", a.AdminPort))
	res := mustStatus(t, call(t, a, "GET", "/v1/projects", org, ""), 200)
	if res.Header.Get("RateLimit-Policy") != `"admin";q=500;w=60` ||
		!strings.HasPrefix(res.Header.Get("RateLimit"), `"admin";r=`+res.Header.Get("X-RateLimit-Remaining")+";t=") {
		t.Errorf("IETF fields after the reload: RateLimit-Policy %q, RateLimit %q, X-RateLimit-Remaining %q",
			res.Header.Get("RateLimit-Policy"), res.Header.Get("RateLimit"), res.Header.Get("X-RateLimit-Remaining"))
	}
	m, _ = scrapeMetrics(t, a)
	if got := m.get("flagbridge_guard_requests_total", guardRequests("admin", "allowed")...); got != prev+1 {
		t.Errorf("after the reload: requests(admin, allowed) = %v, want %v (continued)", got, prev+1)
	}
	// And once more, with nothing changed in between.
	a.Run("reload", "--config", a.Config, "--adapter", "caddyfile", "--address", fmt.Sprintf("localhost:%d", a.AdminPort), "--force")
	mustStatus(t, call(t, a, "GET", "/v1/projects", org, ""), 200)
	m, _ = scrapeMetrics(t, a)
	if got := m.get("flagbridge_guard_requests_total", guardRequests("admin", "allowed")...); got != prev+2 {
		t.Errorf("after a second reload: requests(admin, allowed) = %v, want %v", got, prev+2)
	}
	if strings.Contains(a.Output(), "panic") || strings.Contains(a.Logs(), "duplicate metrics collector registration") {
		t.Fatalf("the reloads panicked or failed to register:\n%s", a.Output())
	}
}

//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/internal/testenv"
)

var (
	duration = flag.Duration("bench.duration", 10*time.Second, "how long each scenario runs")
	conns    = flag.Int("bench.conns", 32, "keep-alive connections (and goroutines) driving each scenario")
	manyKeys = flag.Int("bench.keys", 10000, "distinct live keys in the rotation scenario")
)

// result is one scenario's measurement.
type result struct {
	name      string
	requests  int64
	errors    int64
	elapsed   time.Duration
	latencies []time.Duration
	redisCmds int64
	// cpu is the server's CPU time during the scenario; redisCPU Redis's,
	// which shares the machine's cores with it.
	cpu         time.Duration
	redisCPU    time.Duration
	baseline    *result
	unexpected  map[int]int64
	description string
}

// against is the baseline r is compared with: its own if set, else a.
func (r *result) against(a *result) *result {
	if r.baseline != nil {
		return r.baseline
	}
	return a
}

func (r *result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r *result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p)
	return r.latencies[i]
}

// request builds one request of a scenario; i numbers them per connection.
type request func(i int) (*http.Request, int)

// drive runs a scenario: conns goroutines sending through client (with
// its own keep-alive HTTP/1.1 connection each, as wrk does, or sharing an
// HTTP/2 one), for the duration, charging the scenario with what cpuTime
// (the server's CPU) grew by meanwhile, and counting a response
// with another status than wanted as an error. rate > 0 paces the total
// load to that many requests a second.
func drive(t *testing.T, name string, cpuTime func() time.Duration, client *http.Client, build request, rate float64, rc *redis.Client) *result {
	t.Helper()
	before, redisBefore := redisCalls(t, rc), redisCPU(t, rc)
	cpuBefore := cpuTime()
	var (
		wg       sync.WaitGroup
		requests atomic.Int64
		errs     atomic.Int64
		mu       sync.Mutex
		lats     []time.Duration
		wrong    = map[int]int64{}
	)
	deadline := time.Now().Add(*duration)
	start := time.Now()
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(*conns) / rate * float64(time.Second))
			}
			next := time.Now()
			for i := c; time.Now().Before(deadline); i += *conns {
				if interval > 0 {
					next = next.Add(interval)
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
				}
				req, want := build(i)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				local = append(local, time.Since(t0))
				requests.Add(1)
				if err != nil || resp.StatusCode != want {
					errs.Add(1)
					mu.Lock()
					if err != nil {
						wrong[-1]++
						if wrong[-1] == 1 { // the first says what they are
							t.Logf("%s: %v", name, err)
						}
					} else {
						wrong[resp.StatusCode]++
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	r := &result{name: name, requests: requests.Load(), errors: errs.Load(), elapsed: elapsed, latencies: lats, unexpected: wrong,
		cpu: cpuTime() - cpuBefore}
	if rc != nil {
		r.redisCmds = redisCalls(t, rc) - before
		r.redisCPU = redisCPU(t, rc) - redisBefore
	}
	return r
}

// scriptInner are commands FlagBridge sends only from inside its Lua
// scripts: Redis counts them in commandstats too, but they cost no round
// trip, so they are left out (the script call itself counts).
var scriptInner = map[string]bool{"cmdstat_get": true, "cmdstat_set": true, "cmdstat_time": true, "cmdstat_info": true, "cmdstat_incrby": true, "cmdstat_pexpireat": true}

// redisCalls is the total of Redis's own per-command call counters: the
// commands clients sent, leaving out the ones run inside scripts and INFO
// (which the harness itself sends).
func redisCalls(t *testing.T, rc *redis.Client) int64 {
	if rc == nil {
		return 0
	}
	info, err := rc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || scriptInner[name] {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		total += n
	}
	return total
}

// redisCPU is the CPU time Redis has used (INFO cpu: user and system).
func redisCPU(t *testing.T, rc *redis.Client) time.Duration {
	if rc == nil {
		return 0
	}
	info, err := rc.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_sys" || name == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// client is an HTTP/1.1 keep-alive client trusting one instance's CA.
func client(c *testenv.Caddy) *http.Client {
	return clientTLS(c.Client().Transport.(*http.Transport).TLSClientConfig)
}

// clientTLS is client with the given TLS configuration.
func clientTLS(tlsConfig *tls.Config) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     tlsConfig.Clone(),
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		// HTTP/1.1 with one request in flight per connection, as wrk does.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// clientH2 is client speaking HTTP/2: the goroutines' requests share one
// connection as streams, as an OpenFeature SDK's or a browser's do.
func clientH2(tlsConfig *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: tlsConfig.Clone(), ForceAttemptHTTP2: true, MaxIdleConnsPerHost: *conns}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// floor is the bare Go HTTPS server of ./bench/floor, the benchmark's floor.
type floor struct {
	url string
	cmd *exec.Cmd
}

// startFloor builds and starts ./bench/floor, stopped when the test ends.
func startFloor(t *testing.T) *floor {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "floor")
	build := exec.Command("go", "build", "-o", bin, "./bench/floor")
	build.Dir = testenv.ProjectRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the floor server: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the floor server said nothing: %v", err)
	}
	return &floor{url: "https://" + strings.TrimSpace(line) + "/", cmd: cmd}
}

func (f *floor) CPUTime() time.Duration { return testenv.ProcessCPU(f.cmd.Process.Pid) }

// floorTLS trusts whatever certificate the floor made for itself: it is a
// local process of the test, and what is measured is its CPU.
var floorTLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own local server

func post(url, key, body string) *http.Request {
	req, _ := http.NewRequest("POST", url, bytes.NewBufferString(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func get(url, key string) *http.Request {
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req
}

const benchFlags = `{"flags": {
  "static-flag": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
  "targeted-flag": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"if": [{"and": [{"==": [{"var": "plan"}, "pro"]}, {"in": [{"var": "country"}, ["DE", "FR", "NL"]]},
      {"sem_ver": [{"var": "version"}, ">=", "2.0.0"]}]}, "on", null]}}
}}`

// instance is one FlagBridge under test with its keys.
type instance struct {
	c     *testenv.Caddy
	http  *http.Client
	admin string
	live  string
	test  string
	many  []string
	// limited is a live key of an identity, with two limits and a quota
	// of its own and the identity's limit beside them (none near
	// refusing): scenario (h), made by addLimited.
	limited string
	must    func(*http.Request, int) map[string]any
}

// addLimited creates the identity and the key of scenario (h).
func (in *instance) addLimited() {
	put, _ := http.NewRequest("PUT", in.c.URL("/v1/projects/bench/identities/acme"),
		strings.NewReader(`{"limits":[{"name":"shared","requests":1000000000,"window":"1m"}]}`))
	put.Header.Set("Authorization", "Bearer "+in.admin)
	in.must(put, 201)
	in.limited = in.must(post(in.c.URL("/v1/projects/bench/api-keys"), in.admin, `{"name":"limited","type":"live","environment":"production","identity":"acme",
		"limits":[{"name":"burst","requests":100000000,"window":"1s"},{"name":"sustained","requests":1000000000,"window":"1m"}],
		"quota":{"requests":1000000000000,"period":"month"}}`), 201)["key"].(string)
}

// setUp starts an instance of this tree's binary with the given storage
// line, creates a project, flags and keys.
func setUp(t *testing.T, storage string, nKeys int) *instance {
	return setUpBinary(t, "", storage, nKeys)
}

// setUpBinary is setUp for the Caddy binary bin ("" for this tree's).
func setUpBinary(t *testing.T, bin, storage string, nKeys int) *instance {
	t.Helper()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{
		Global: fmt.Sprintf("\tflagbridge {\n%s\t\trate_limit live 1000000000/1m\n\t\trate_limit admin 1000000000/1m\n\t\trate_limit test 100/1m\n\t\trate_limit unauthenticated 60/1m\n\t}", storage),
		Site: `handle /bench/* {
		flagbridge_auth {
			require live
		}
		respond "ok" 200
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`,
	})
	if bin != "" {
		c.Bin = bin
	}
	c.Start()
	out := c.Run("flagbridge", "bootstrap", "--config", c.Config, "--adapter", "caddyfile", "--email", "bench@example.com", "--name", "Bench", "--quiet")
	in := &instance{c: c, http: client(c), admin: strings.TrimSpace(out)}
	must := func(req *http.Request, want int) map[string]any {
		resp, err := in.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	must(post(c.URL("/v1/projects"), in.admin, `{"slug":"bench"}`), 201)
	put, _ := http.NewRequest("PUT", c.URL("/v1/projects/bench/environments/production/flags"), strings.NewReader(benchFlags))
	put.Header.Set("Authorization", "Bearer "+in.admin)
	must(put, 200)
	in.live = must(post(c.URL("/v1/projects/bench/api-keys"), in.admin, `{"name":"live","type":"live","environment":"production"}`), 201)["key"].(string)
	in.test = must(post(c.URL("/v1/projects/bench/api-keys"), in.admin, `{"name":"flood","type":"test","environment":"production"}`), 201)["key"].(string)
	in.must = must
	if nKeys > 0 {
		in.many = make([]string, nKeys)
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= nKeys {
						return
					}
					in.many[i] = must(post(c.URL("/v1/projects/bench/api-keys"), in.admin,
						fmt.Sprintf(`{"name":"k%d","type":"live","environment":"production"}`, i)), 201)["key"].(string)
				}
			}()
		}
		wg.Wait()
	}
	return in
}

// startShape starts Caddy alone answering POST /v1/evaluate as in with key
// answers body (its scenario (c)): with the same status, headers and bytes,
// from respond and Caddy's header directive. What (c) costs over it is
// FlagBridge's own work; what it costs over the baseline (a), the
// request's and answer's size, which any server of them pays.
func startShape(t *testing.T, in *instance, body string) *testenv.Caddy {
	t.Helper()
	resp, err := in.http.Do(post(in.c.URL("/v1/evaluate"), in.live, body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("(c)'s answer: %d %s", resp.StatusCode, answer)
	}
	var site strings.Builder
	site.WriteString("header {\n")
	for name, vals := range resp.Header {
		switch name {
		case "Date", "Content-Length", "Server", "Alt-Svc":
			continue // Caddy's own
		}
		fmt.Fprintf(&site, "\t\t%s %q\n", name, vals[0])
	}
	// A backquoted token is taken as it is, newline included.
	fmt.Fprintf(&site, "\t}\n\trespond `%s` 200", answer)
	shape := testenv.NewCaddy(t, testenv.CaddyOptions{Site: site.String()}).Start()
	// Through an HTTP/1.1 client of its own: shape.Client() would add h2
	// to the TLS configuration the scenarios' clients copy.
	got, err := client(shape).Do(post(shape.URL("/v1/evaluate"), in.live, body))
	if err != nil {
		t.Fatal(err)
	}
	gotBody, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(gotBody, answer) || len(got.Header) != len(resp.Header) {
		t.Fatalf("the shape's answer differs from (c)'s: %q %v, want %q %v", gotBody, got.Header, answer, resp.Header)
	}
	return shape
}

func TestLoad(t *testing.T) {
	r := testenv.StartRedis(t)
	rc := r.Client()
	redisStorage := fmt.Sprintf("\t\tstorage %s\n", r.URL())

	base := testenv.NewCaddy(t, testenv.CaddyOptions{Site: `respond "ok" 200`}).Start()
	fb := setUp(t, redisStorage, *manyKeys)
	fb.addLimited()
	embedded := setUp(t, "", *manyKeys)
	evalStatic := `{"flag":"static-flag","context":{"targetingKey":"user-42"}}`
	shape := startShape(t, fb, evalStatic)
	t.Logf("set up; running each scenario for %v with %d connections", *duration, *conns)

	evalTargeted := `{"flag":"targeted-flag","context":{"targetingKey":"user-42","plan":"pro","country":"DE","version":"2.3.1",` +
		`"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6}}`
	forged := make([]string, 4096)
	for i := range forged {
		forged[i], _ = apikey.Generate(apikey.Live)
	}
	var results []*result
	add := func(res *result, desc string) *result {
		res.description = desc
		results = append(results, res)
		t.Logf("%-34s %8.0f req/s  p99 %v  errors %d", res.name, res.rps(), res.percentile(0.99), res.errors)
		return res
	}
	baseHTTP := client(base)
	a := add(drive(t, "(a) baseline respond", base.CPUTime, baseHTTP, func(int) (*http.Request, int) { return get(base.URL("/"), ""), 200 }, 0, nil),
		"Caddy alone, static respond")
	shapeHTTP := client(shape)
	shapeY := add(drive(t, "(y) respond, (c)'s shape", shape.CPUTime, shapeHTTP, func(int) (*http.Request, int) {
		return post(shape.URL("/v1/evaluate"), fb.live, evalStatic), 200
	}, 0, nil), "Caddy alone answering (c)'s request with (c)'s headers and body")
	add(drive(t, "(b) auth + Redis limiter + respond", fb.c.CPUTime, fb.http, func(int) (*http.Request, int) {
		return get(fb.c.URL("/bench/x"), fb.live), 200
	}, 0, rc), "flagbridge_auth (require live) in front of respond")
	evalC := add(drive(t, "(c) POST /v1/evaluate, static", fb.c.CPUTime, fb.http, func(int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), fb.live, evalStatic), 200
	}, 0, rc), "full path, live key, static flag")
	add(drive(t, "(d) POST /v1/evaluate, targeting", fb.c.CPUTime, fb.http, func(int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), fb.live, evalTargeted), 200
	}, 0, rc), "a rule over a 10-attribute context")
	add(drive(t, "(e) 10,000 keys in rotation", fb.c.CPUTime, fb.http, func(i int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), fb.many[i%len(fb.many)], evalStatic), 200
	}, 0, rc), "distinct live keys, round robin")
	add(drive(t, "(f) forged keys flood", fb.c.CPUTime, fb.http, func(i int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), forged[i%len(forged)], evalStatic), 429
	}, 0, rc), "valid checksums, unknown keys, one client address")
	add(drive(t, "(g) one key far over its limit", fb.c.CPUTime, fb.http, func(int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), fb.test, evalStatic), 429
	}, 0, rc), "a test key limited to 100/min")
	add(drive(t, "(h) limits, quota, identity", fb.c.CPUTime, fb.http, func(int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), fb.limited, evalStatic), 200
	}, 0, rc), "as (c), with a key of two limits, a quota and an identity's limit")
	embC := add(drive(t, "(c) embedded store", embedded.c.CPUTime, embedded.http, func(int) (*http.Request, int) {
		return post(embedded.c.URL("/v1/evaluate"), embedded.live, evalStatic), 200
	}, 0, nil), "as (c), on the embedded store")
	add(drive(t, "(e) embedded store", embedded.c.CPUTime, embedded.http, func(i int) (*http.Request, int) {
		return post(embedded.c.URL("/v1/evaluate"), embedded.many[i%len(embedded.many)], evalStatic), 200
	}, 0, nil), "as (e), on the embedded store")

	// The floor, and HTTP/2 with its own baseline.
	fl := startFloor(t)
	floorH1 := add(drive(t, "(z) floor: Go net/http, TLS", fl.CPUTime, clientTLS(floorTLS), func(int) (*http.Request, int) {
		return get(fl.url, ""), 200
	}, 0, nil), "a bare Go HTTPS server answering fixed JSON")
	baseTLS := base.Client().Transport.(*http.Transport).TLSClientConfig
	fbTLS := fb.http.Transport.(*http.Transport).TLSClientConfig
	embTLS := embedded.http.Transport.(*http.Transport).TLSClientConfig
	baseH2, fbH2, embH2 := clientH2(baseTLS), clientH2(fbTLS), clientH2(embTLS)
	a2 := add(drive(t, "(a) h2 baseline respond", base.CPUTime, baseH2, func(int) (*http.Request, int) { return get(base.URL("/"), ""), 200 }, 0, nil),
		"as (a), over HTTP/2: one connection, 32 streams")
	a2.baseline = a2
	shapeY2 := add(drive(t, "(y) h2 respond, (c)'s shape", shape.CPUTime, clientH2(shape.Client().Transport.(*http.Transport).TLSClientConfig), func(int) (*http.Request, int) {
		return post(shape.URL("/v1/evaluate"), fb.live, evalStatic), 200
	}, 0, nil), "as (y), over HTTP/2")
	shapeY2.baseline = a2
	evalC2 := add(drive(t, "(c) h2 POST /v1/evaluate", fb.c.CPUTime, fbH2, func(int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), fb.live, evalStatic), 200
	}, 0, rc), "as (c), over HTTP/2")
	embC2 := add(drive(t, "(c) h2 embedded store", embedded.c.CPUTime, embH2, func(int) (*http.Request, int) {
		return post(embedded.c.URL("/v1/evaluate"), embedded.live, evalStatic), 200
	}, 0, nil), "as (c) on the embedded store, over HTTP/2")
	for _, r := range []*result{
		add(drive(t, "(b) h2 auth + Redis limiter", fb.c.CPUTime, fbH2, func(int) (*http.Request, int) {
			return get(fb.c.URL("/bench/x"), fb.live), 200
		}, 0, rc), "as (b), over HTTP/2"),
		evalC2,
		embC2,
	} {
		r.baseline = a2
	}
	floorH2 := add(drive(t, "(z) h2 floor", fl.CPUTime, clientH2(floorTLS), func(int) (*http.Request, int) {
		return get(fl.url, ""), 200
	}, 0, nil), "the floor over HTTP/2")
	floorH2.baseline = a2

	// Added latency at half the baseline's peak rate.
	half := a.rps() / 2
	baseHalf := add(drive(t, "(a) at half peak", base.CPUTime, baseHTTP, func(int) (*http.Request, int) { return get(base.URL("/"), ""), 200 }, half, nil),
		fmt.Sprintf("paced at %.0f req/s", half))
	authHalf := add(drive(t, "(b) at half peak", fb.c.CPUTime, fb.http, func(int) (*http.Request, int) {
		return get(fb.c.URL("/bench/x"), fb.live), 200
	}, half, rc), fmt.Sprintf("paced at %.0f req/s", half))
	evalHalf := add(drive(t, "(c) at half peak", fb.c.CPUTime, fb.http, func(int) (*http.Request, int) {
		return post(fb.c.URL("/v1/evaluate"), fb.live, evalStatic), 200
	}, half, rc), fmt.Sprintf("paced at %.0f req/s", half))
	shapeHalf := add(drive(t, "(y) at half peak", shape.CPUTime, shapeHTTP, func(int) (*http.Request, int) {
		return post(shape.URL("/v1/evaluate"), fb.live, evalStatic), 200
	}, half, nil), fmt.Sprintf("paced at %.0f req/s", half))
	embHalf := add(drive(t, "(c) embedded at half peak", embedded.c.CPUTime, embedded.http, func(int) (*http.Request, int) {
		return post(embedded.c.URL("/v1/evaluate"), embedded.live, evalStatic), 200
	}, half, nil), fmt.Sprintf("paced at %.0f req/s", half))

	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\treq/s\tp50\tp99\tp99.9\terrors\tvs (a)\tRedis cmds/req\tserver CPU/req\tRedis CPU/req\t\n")
	for _, r := range results {
		cmds := "-"
		if r.redisCmds > 0 || strings.Contains(r.name, "(f)") || strings.Contains(r.name, "(g)") || strings.Contains(r.name, "(b)") {
			cmds = fmt.Sprintf("%.3f", float64(r.redisCmds)/float64(max(r.requests, 1)))
		}
		redisPer := "-"
		if cmds != "-" {
			redisPer = fmt.Sprintf("%.1fµs", float64(r.redisCPU.Microseconds())/float64(max(r.requests, 1)))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%d\t%.2f\t%s\t%.1fµs\t%s\t\n", r.name, r.rps(),
			r.percentile(0.50).Round(time.Microsecond), r.percentile(0.99).Round(time.Microsecond),
			r.percentile(0.999).Round(time.Microsecond), r.errors, r.rps()/r.against(a).rps(), cmds,
			float64(r.cpu.Microseconds())/float64(max(r.requests, 1)), redisPer)
	}
	tw.Flush()
	fmt.Fprintf(&buf, "\nadded p99 at half of the baseline's peak (%.0f req/s): auth %v, evaluate %v\n", half,
		(authHalf.percentile(0.99) - baseHalf.percentile(0.99)).Round(time.Microsecond),
		(evalHalf.percentile(0.99) - baseHalf.percentile(0.99)).Round(time.Microsecond))
	fmt.Fprintf(&buf, "added p99 at that rate over Caddy alone with (c)'s request and answer, (y): evaluate %v, on the embedded store %v\n",
		(evalHalf.percentile(0.99) - shapeHalf.percentile(0.99)).Round(time.Microsecond),
		(embHalf.percentile(0.99) - shapeHalf.percentile(0.99)).Round(time.Microsecond))
	perReq := func(r *result) float64 { return float64(r.cpu.Microseconds()) / float64(max(r.requests, 1)) }
	redisPer := func(r *result) float64 { return float64(r.redisCPU.Microseconds()) / float64(max(r.requests, 1)) }
	fmt.Fprintf(&buf, "server CPU per request over the floor's (a bare Go HTTPS server, fixed JSON): (c) %.2f, (c) h2 %.2f\n",
		perReq(evalC)/perReq(floorH1), perReq(evalC2)/perReq(floorH2))
	fmt.Fprintf(&buf, "(c) against Caddy alone with (c)'s request and answer, (y): req/s %.2f, h2 %.2f; server CPU per request %.2f, h2 %.2f\n",
		evalC.rps()/shapeY.rps(), evalC2.rps()/shapeY2.rps(), perReq(evalC)/perReq(shapeY), perReq(evalC2)/perReq(shapeY2))
	fmt.Fprintf(&buf, "the same on the embedded store: req/s %.2f, h2 %.2f; server CPU per request %.2f, h2 %.2f\n",
		embC.rps()/shapeY.rps(), embC2.rps()/shapeY2.rps(), perReq(embC)/perReq(shapeY), perReq(embC2)/perReq(shapeY2))
	fmt.Fprintf(&buf, "(c) on Redis with Redis's CPU counted: server and Redis CPU per request over the floor's %.2f, h2 %.2f\n",
		(perReq(evalC)+redisPer(evalC))/perReq(floorH1), (perReq(evalC2)+redisPer(evalC2))/perReq(floorH2))
	fmt.Fprintf(&buf, "machine: %d CPUs (%s/%s), %s, %d connections, %v per scenario\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), *conns, *duration)
	for _, r := range results {
		if len(r.unexpected) > 0 {
			fmt.Fprintf(&buf, "%s: unexpected answers %v (-1: transport error)\n", r.name, r.unexpected)
		}
	}
	fmt.Fprint(os.Stdout, "\n"+buf.String())
}

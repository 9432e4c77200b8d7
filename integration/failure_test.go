package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// The tests of this file break Redis, or reload Caddy, while clients keep
// sending requests, and measure what the clients see: statuses, headers
// and latencies, with the goroutines of the Caddy process (through its
// admin endpoint's pprof) and FlagBridge's Redis connections (CLIENT LIST)
// counted before, during and after.

// edgeSite guards a route that needs no storage of its own, so that what
// the clients see is the edge's doing: /edge/* answers "ok" to any key at
// least as capable as a live key.
const edgeSite = `handle /edge/* {
		flagbridge_auth {
			require live
		}
		respond "ok" 200
	}
	handle {
		flagbridge_auth
		flagbridge_api
	}`

const bodyStorageDown = `{"error":"STORAGE_UNAVAILABLE","message":"Storage is unavailable; try again shortly"}`

// durableRedis starts a redis-server that keeps its data through a crash
// of its process (an append-only file), as production Redis is told to,
// and that accepts DEBUG (for DEBUG SLEEP). Redis writes every change to
// the file before it answers, so a killed process loses nothing; fsync
// only guards against the machine failing, and is left to the system
// here. The file lives in memory (/dev/shm) where there is one: Redis
// writes it from its only thread, and a write held up by other tests'
// disk work would stall Redis and blur what these tests measure.
func durableRedis(t *testing.T) *testenv.Redis {
	t.Helper()
	args := []string{"--appendonly", "yes", "--appendfsync", "no", "--enable-debug-command", "yes"}
	if dir := memDir(t); dir != "" {
		args = append(args, "--dir", dir) // the last --dir wins
	}
	return testenv.StartRedis(t, args...)
}

// memDir returns a new folder in memory (/dev/shm), removed when the test
// ends, or "" where there is none. The instances of these tests keep their
// files there (Redis its append-only file, Caddy its logs, one line per
// request), so that the latencies measured are not those of a disk shared
// with other tests.
func memDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "flagbridge-test-")
	if err != nil {
		return ""
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// edgeCaddy starts an instance on r serving edgeSite, with extra
// flagbridge options.
func edgeCaddy(t *testing.T, r *testenv.Redis, options string) *testenv.Caddy {
	t.Helper()
	return testenv.NewCaddy(t, testenv.CaddyOptions{
		Global: fmt.Sprintf("\tflagbridge {\n\t\tstorage %s\n%s\n\t}", r.URL(), options),
		Site:   edgeSite,
		Dir:    memDir(t),
	}).Start()
}

// edgeKeys bootstraps an instance and returns the organization's admin
// key and two live keys of a new project: warm, already used through the
// edge (so cached), and cold, never presented to the edge.
func edgeKeys(t *testing.T, c *testenv.Caddy) (org, warm, cold string) {
	t.Helper()
	org = bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"app"}`), 201)
	_, warm = createKey(t, c, org, "app", `{"name":"warm","type":"live","environment":"production"}`)
	_, cold = createKey(t, c, org, "app", `{"name":"cold","type":"live","environment":"production"}`)
	mustStatus(t, call(t, c, "GET", "/edge/warm-up", warm, ""), 200)
	return org, warm, cold
}

// http1Client is an HTTPS client for c that speaks HTTP/1.1 only, with
// keep-alive connections: one per concurrent request.
func http1Client(c *testenv.Caddy) *http.Client {
	tlsConfig := c.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConfig.NextProtos = []string{"http/1.1"}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     tlsConfig,
			MaxIdleConnsPerHost: 64,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		},
	}
}

// sample is one request of a load.
type sample struct {
	start, end       time.Time
	status           int
	body             string
	limit, remaining string // X-RateLimit-Limit and -Remaining ("" if absent)
	err              error  // a transport error: reset, EOF, timeout
}

func (s sample) latency() time.Duration { return s.end.Sub(s.start) }

// load sends GET requests with a key from workers goroutines, each pausing
// between requests, until stop.
type load struct {
	stopCh chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	got    []sample
}

// startLoad starts a load; it stops when the test ends, if not before.
func startLoad(t *testing.T, client *http.Client, url, key string, workers int, pause time.Duration) *load {
	l := &load{stopCh: make(chan struct{})}
	t.Cleanup(func() { l.stop() })
	for w := range workers {
		l.wg.Go(func() {
			var mine []sample
			defer func() {
				l.mu.Lock()
				l.got = append(l.got, mine...)
				l.mu.Unlock()
			}()
			for i := 0; ; i++ {
				select {
				case <-l.stopCh:
					return
				default:
				}
				mine = append(mine, get(client, fmt.Sprintf("%s-%d-%d", url, w, i), key))
				time.Sleep(pause)
			}
		})
	}
	return l
}

// stop ends the load and returns its samples, in order of their start.
func (l *load) stop() []sample {
	l.once.Do(func() { close(l.stopCh) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.got, func(a, b sample) int { return a.start.Compare(b.start) })
	return l.got
}

func get(client *http.Client, url, key string) sample {
	s := sample{start: time.Now()}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		s.end, s.err = time.Now(), err
		return s
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.end, s.err = time.Now(), err
	s.status, s.body = resp.StatusCode, string(b)
	s.limit, s.remaining = resp.Header.Get("X-RateLimit-Limit"), resp.Header.Get("X-RateLimit-Remaining")
	return s
}

// between returns the samples that started at or after from and ended
// before to.
func between(samples []sample, from, to time.Time) []sample {
	var out []sample
	for _, s := range samples {
		if !s.start.Before(from) && s.end.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// tally counts samples by outcome, for messages.
func tally(samples []sample) string {
	m := map[string]int{}
	for _, s := range samples {
		k := strconv.Itoa(s.status)
		if s.err != nil {
			k = "error: " + errText(s.err)
		}
		m[k]++
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s×%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// errText is a transport error without the request's URL, so that equal
// errors count together.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func latencies(samples []sample) (p50, p99, worst time.Duration) {
	if len(samples) == 0 {
		return 0, 0, 0
	}
	d := make([]time.Duration, len(samples))
	for i, s := range samples {
		d[i] = s.latency()
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
}

// goroutines reads the Caddy process's goroutine count from the pprof
// handler on its admin endpoint.
func goroutines(t *testing.T, c *testenv.Caddy) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/debug/pprof/goroutine?debug=1", c.AdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	n, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	count, cerr := strconv.Atoi(n)
	if err != nil || !ok || cerr != nil {
		t.Fatalf("goroutine profile: %q %v", line, err)
	}
	return count
}

// settledGoroutines waits for the count to come down to at most want
// (connections closing, handlers returning) and returns the last count.
func settledGoroutines(t *testing.T, c *testenv.Caddy, want int) int {
	t.Helper()
	var n int
	for deadline := time.Now().Add(3 * time.Second); ; {
		if n = goroutines(t, c); n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisClients counts the connections FlagBridge instances hold to Redis
// (go-redis names them "flagbridge").
func redisClients(t *testing.T, rc *redis.Client) int {
	t.Helper()
	list, err := rc.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(list, " name=flagbridge ")
}

// storageLog is what Caddy logged about storage, and the last lines
// go-redis wrote to its standard error, for failure messages.
func storageLog(c *testenv.Caddy) string {
	var b strings.Builder
	for _, line := range strings.Split(c.Logs(), "\n") {
		if strings.Contains(line, "storage") {
			b.WriteString(line + "\n")
		}
	}
	var redisLines []string
	for _, line := range strings.Split(c.Output(), "\n") {
		if strings.HasPrefix(line, "redis:") {
			redisLines = append(redisLines, line)
		}
	}
	b.WriteString(strings.Join(redisLines[max(len(redisLines)-20, 0):], "\n"))
	return b.String()
}

// logLines counts the lines of Caddy's log that contain s.
func logLines(c *testenv.Caddy, s string) int {
	return strings.Count(c.Logs(), s)
}

// TestFailureRedisRestart stops Redis under load and starts it again, for
// each on_storage_error policy, through a real Caddy whose key is cached.
func TestFailureRedisRestart(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"deny", "allow", "local"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			redisRestartUnderLoad(t, policy)
		})
	}
}

func redisRestartUnderLoad(t *testing.T, policy string) {
	const (
		workers = 16
		outage  = 1500 * time.Millisecond
	)
	// The shared limit, and under local (three instances) this
	// instance's share of it, which a 16-client load spends within the
	// outage.
	shared, share := "1000000", ""
	options := "\t\ton_storage_error " + policy + "\n\t\trate_limit live 1000000/1m"
	if policy == "local" {
		shared, share = "600", "200"
		options = "\t\ton_storage_error local 3\n\t\trate_limit live 600/1m"
	}
	r := durableRedis(t)
	c := edgeCaddy(t, r, options)
	_, warm, cold := edgeKeys(t, c)
	rc := r.Client()
	client := http1Client(c)

	idleBefore := goroutines(t, c)
	ld := startLoad(t, client, c.URL("/edge/load"), warm, workers, 2*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	loaded := goroutines(t, c)
	connsBefore := redisClients(t, rc)
	logsBefore := logLines(c, `"storage unavailable"`)

	r.Stop()
	down := time.Now()
	time.Sleep(outage / 2)
	during := goroutines(t, c)
	// A key this instance has never seen cannot be verified: 503 under
	// every policy.
	if res := call(t, c, "GET", "/edge/cold", cold, ""); res.Status != 503 || res.Body != bodyStorageDown {
		t.Errorf("never-seen key during the outage: %d %s", res.Status, res.Body)
	}
	time.Sleep(outage / 2)

	spawn := time.Now()
	r.Start()
	ready := time.Now()
	// Recovery of key lookups: the never-seen key works once Redis
	// answers.
	var coldBack time.Duration
	for {
		res := call(t, c, "GET", "/edge/cold", cold, "")
		if res.Status == 200 {
			coldBack = time.Since(spawn)
			break
		}
		if res.Status != 503 || time.Since(spawn) > 5*time.Second {
			t.Fatalf("never-seen key %v after Redis started: %d %s\n%s", time.Since(spawn), res.Status, res.Body, storageLog(c))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	recovered := goroutines(t, c)
	samples := ld.stop()
	client.CloseIdleConnections()
	idleAfter := settledGoroutines(t, c, idleBefore)
	connsAfter := redisClients(t, rc)

	// No transport error, and only the policy's statuses.
	okStatus := map[string][]int{"deny": {200, 503}, "allow": {200}, "local": {200, 429}}[policy]
	for _, s := range samples {
		if s.err != nil || !slices.Contains(okStatus, s.status) {
			t.Fatalf("%s: a request at %v into the test: %d %v %s (all: %s)",
				policy, s.start.Sub(samples[0].start).Round(time.Millisecond), s.status, s.err, s.body, tally(samples))
		}
	}
	// During the outage (requests sent once Redis was dead and answered
	// before it started again): the policy's answer.
	out := between(samples, down, spawn)
	if len(out) < workers {
		t.Fatalf("only %d requests during the outage", len(out))
	}
	localAdmitted := 0
	for _, s := range out {
		var ok bool
		switch policy {
		case "deny":
			ok = s.status == 503 && s.body == bodyStorageDown
		case "allow":
			// Admitted, with only the limit: the remaining count is unknown.
			ok = s.status == 200 && s.limit == shared && s.remaining == ""
		case "local":
			ok = (s.status == 200 || s.status == 429) && s.limit == share && s.remaining != "" ||
				// The shared limiter refuses a bucket Redis last reported
				// empty without asking Redis, until it could admit again
				// (one emission interval, 100ms at 600/1m): such a 429 is
				// still the shared bucket's, rightly.
				s.status == 429 && s.limit == shared && s.start.Before(down.Add(250*time.Millisecond))
		}
		if !ok {
			t.Fatalf("%s during the outage: %d limit %q remaining %q %s", policy, s.status, s.limit, s.remaining, s.body)
		}
	}
	if policy == "local" {
		// The local bucket admits its burst of 200, then 200 a minute:
		// whatever the number of clients, no more than that, counted
		// over every answer the local bucket gave.
		var first, last time.Time
		var refused int
		for _, s := range samples {
			if s.limit != share {
				continue
			}
			if first.IsZero() {
				first = s.start
			}
			last = s.end
			if s.status == 200 {
				localAdmitted++
			} else {
				refused++
			}
		}
		most := 200 + int(last.Sub(first).Seconds()*200/60) + 1
		if localAdmitted > most || refused == 0 {
			t.Fatalf("local share: %d admitted (at most %d), %d refused, over %v", localAdmitted, most, refused, last.Sub(first))
		}
	}
	// Recovery: the first request after Redis started that the shared
	// limiter answered.
	var back time.Duration = -1
	for _, s := range samples {
		if s.end.Before(spawn) {
			continue
		}
		var fromRedis bool
		switch policy {
		case "deny":
			fromRedis = s.status == 200
		case "allow":
			fromRedis = s.remaining != ""
		case "local":
			fromRedis = s.limit == shared
		}
		if fromRedis {
			back = s.end.Sub(spawn)
			break
		}
	}
	if back < 0 || back > 2*time.Second || coldBack > 2*time.Second {
		t.Fatalf("%s: shared limiter back after %v, key lookups after %v (Redis up after %v): want within 2s\n%s",
			policy, back, coldBack, ready.Sub(spawn), storageLog(c))
	}
	// And it stays back: the last second is all shared answers.
	for _, s := range between(samples, spawn.Add(back+time.Second), time.Now()) {
		if policy == "deny" && s.status != 200 || policy == "allow" && s.remaining == "" || policy == "local" && s.limit != shared {
			t.Fatalf("%s: %v after Redis started (shared limiter back after %v): %d limit %q remaining %q\n%s",
				policy, s.start.Sub(spawn), back, s.status, s.limit, s.remaining, storageLog(c))
		}
	}
	// One log line a second at most while storage fails, and one when it
	// answers again.
	logged := logLines(c, `"storage unavailable"`) - logsBefore
	if most := int(outage/time.Second) + 3; logged < 1 || logged > most {
		t.Errorf("%s: %d storage error lines for a %v outage, want 1 to %d", policy, logged, outage, most)
	}
	if n := logLines(c, "storage available again"); n < 1 {
		t.Errorf("%s: recovery not logged", policy)
	}
	// No goroutine or connection left behind.
	if idleAfter > idleBefore+2 {
		t.Errorf("%s: %d goroutines idle after the outage, %d before", policy, idleAfter, idleBefore)
	}
	// Under load each client connection has a goroutine or two; requests
	// piling up during the outage would show as hundreds more.
	if during > idleBefore+4*workers {
		t.Errorf("%s: %d goroutines during the outage, %d idle and %d under load before it", policy, during, idleBefore, loaded)
	}
	if connsAfter > connsBefore+2 {
		t.Errorf("%s: %d Redis connections after the outage, %d before", policy, connsAfter, connsBefore)
	}
	p50, p99, worst := latencies(out)
	b50, b99, bworst := latencies(between(samples, samples[0].start, down))
	t.Logf("%s: %d requests (%s); before the outage: latency p50 %v p99 %v max %v; outage %v: %d requests (%s), latency p50 %v p99 %v max %v",
		policy, len(samples), tally(samples), b50, b99, bworst, outage, len(out), tally(out), p50, p99, worst)
	if policy == "local" {
		t.Logf("local: %d admitted by the local share (200/1m) in all", localAdmitted)
	}
	t.Logf("%s: Redis answering %v after start; shared limiter back %v after start, never-seen key %v",
		policy, ready.Sub(spawn).Round(time.Millisecond), back.Round(time.Millisecond), coldBack.Round(time.Millisecond))
	t.Logf("%s: goroutines idle %d, loaded %d, outage %d, recovered %d, idle after %d; Redis connections %d before, %d after; %d storage error lines",
		policy, idleBefore, loaded, during, recovered, idleAfter, connsBefore, connsAfter, logged)
}

// TestFailureSlowRedis freezes Redis (DEBUG SLEEP) under load, with
// storage_timeout 100ms on three instances, one per policy: every request
// during the freeze gets its policy's answer within the timeout and a
// small margin, none hangs, and all is back to normal once Redis wakes.
// It runs alone (not in parallel) so that the latencies it measures are
// the edge's, not those of other tests sharing the machine.
func TestFailureSlowRedis(t *testing.T) {
	const (
		timeout = 100 * time.Millisecond
		margin  = 100 * time.Millisecond
		freeze  = 1500 * time.Millisecond
		workers = 6 // per instance
	)
	r := durableRedis(t)
	policies := []string{"deny", "allow", "local"}
	caddies := map[string]*testenv.Caddy{}
	for _, p := range policies {
		opt := p
		if p == "local" {
			opt = "local 2"
		}
		caddies[p] = edgeCaddy(t, r, fmt.Sprintf("\t\tstorage_timeout %v\n\t\ton_storage_error %s\n\t\trate_limit live 1000000/1m", timeout, opt))
	}
	_, warm, _ := edgeKeys(t, caddies["deny"])
	for _, p := range policies[1:] {
		mustStatus(t, call(t, caddies[p], "GET", "/edge/warm-up", warm, ""), 200)
	}
	rc := r.Client()
	sleeper := redis.NewClient(&redis.Options{Addr: r.Addr(), ReadTimeout: 10 * time.Second})
	defer sleeper.Close()
	if err := sleeper.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}

	idle := map[string]int{}
	for _, p := range policies {
		idle[p] = goroutines(t, caddies[p])
	}
	loads := map[string]*load{}
	clients := map[string]*http.Client{}
	for _, p := range policies {
		clients[p] = http1Client(caddies[p])
		loads[p] = startLoad(t, clients[p], caddies[p].URL("/edge/load"), warm, workers, 5*time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	connsBefore := redisClients(t, rc)

	frozen := time.Now()
	slept := make(chan time.Time, 1)
	go func() {
		_ = sleeper.Do(context.Background(), "DEBUG", "SLEEP", freeze.Seconds()).Err()
		slept <- time.Now()
	}()
	time.Sleep(freeze / 2)
	during := map[string]int{}
	for _, p := range policies {
		during[p] = goroutines(t, caddies[p])
	}
	woke := <-slept
	connsWoken := redisClients(t, rc)
	time.Sleep(1500 * time.Millisecond)
	connsAfter := redisClients(t, rc)
	samples := map[string][]sample{}
	for _, p := range policies {
		samples[p] = loads[p].stop()
		clients[p].CloseIdleConnections()
	}

	for _, p := range policies {
		all := samples[p]
		// Sent while Redis was frozen, with time left for the timeout to
		// run out before it woke.
		in := between(all, frozen.Add(20*time.Millisecond), woke)
		var slow []sample
		for _, s := range in {
			if s.start.Add(timeout).Before(woke) {
				slow = append(slow, s)
			}
		}
		if len(slow) < workers {
			t.Fatalf("%s: only %d requests during the freeze", p, len(slow))
		}
		for _, s := range slow {
			var ok bool
			switch p {
			case "deny":
				ok = s.status == 503 && s.body == bodyStorageDown
			case "allow":
				ok = s.status == 200 && s.limit == "1000000" && s.remaining == ""
			case "local":
				ok = s.status == 200 && s.limit == "500000" && s.remaining != ""
			}
			if !ok {
				t.Errorf("%s during the freeze: %d limit %q remaining %q %v %s", p, s.status, s.limit, s.remaining, s.err, s.body)
				break
			}
		}
		// Never more than one timeout (and a margin), whenever sent.
		p50, p99, worst := latencies(slow)
		_, allP99, allWorst := latencies(all)
		if worst > timeout+margin || allWorst > timeout+margin {
			t.Errorf("%s: latency during the freeze p50 %v p99 %v max %v, overall max %v: want at most %v",
				p, p50, p99, worst, allWorst, timeout+margin)
		}
		for _, s := range all {
			if s.err != nil || !slices.Contains([]int{200, 503}, s.status) {
				t.Fatalf("%s: %d %v %s", p, s.status, s.err, s.body)
			}
		}
		// Back to the shared limiter once Redis is awake.
		var back time.Duration = -1
		for _, s := range all {
			if !s.end.Before(woke) && s.status == 200 && s.remaining != "" && s.limit == "1000000" {
				back = s.end.Sub(woke)
				break
			}
		}
		if back < 0 || back > 2*time.Second {
			t.Errorf("%s: shared limiter back %v after Redis woke", p, back)
		}
		idleAfter := settledGoroutines(t, caddies[p], idle[p])
		if idleAfter > idle[p]+2 {
			t.Errorf("%s: %d goroutines idle after the freeze, %d before", p, idleAfter, idle[p])
		}
		if logged := logLines(caddies[p], `"storage unavailable"`); logged > int(freeze/time.Second)+3 {
			t.Errorf("%s: %d storage error lines for a %v freeze", p, logged, freeze)
		}
		t.Logf("%s: %d requests (%s); %d sent during the %v freeze (%s): latency p50 %v p99 %v max %v; overall p99 %v max %v; shared limiter back %v after Redis woke; goroutines idle %d, frozen %d, idle after %d",
			p, len(all), tally(all), len(slow), freeze, tally(slow), p50, p99, worst, allP99, allWorst,
			back.Round(time.Millisecond), idle[p], during[p], idleAfter)
	}
	t.Logf("Redis connections of the three instances: %d before, %d as Redis woke, %d 1.5s later", connsBefore, connsWoken, connsAfter)
	if connsAfter > connsBefore+6 {
		t.Errorf("Redis connections: %d before the freeze, %d after", connsBefore, connsAfter)
	}
}

// TestReloadUnderLoad reloads the config five times, each with a small
// change, while 16 clients (half on HTTP/2, half on HTTP/1.1 keep-alive
// connections) send requests: none fails, a key's bucket keeps counting
// across the reloads, no key is looked up again, and the Redis
// connections, goroutines included, are the same before and after.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	const reloads = 5
	r := testenv.StartRedis(t)
	c := edgeCaddy(t, r, "\t\trate_limit live 1000000/1m\n\t\trate_limit test 30/1h\n\t\trate_limit admin 500/1m")
	org, warm, _ := edgeKeys(t, c)
	_, counted := createKey(t, c, org, "app", `{"name":"counted","type":"test","environment":"staging"}`)
	spent := 0
	count := func(what string) {
		t.Helper()
		spent++
		res := call(t, c, "GET", "/edge/count", counted, "")
		if res.Status != 200 || res.Header.Get("X-RateLimit-Limit") != "30" ||
			res.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(30-spent) {
			t.Fatalf("%s: request %d of the counted key: %d, limit %q remaining %q, want remaining %d",
				what, spent, res.Status, res.Header.Get("X-RateLimit-Limit"), res.Header.Get("X-RateLimit-Remaining"), 30-spent)
		}
	}
	count("before the reloads") // also caches the key
	rc := r.Client()
	ids := func() map[string]bool {
		list, err := rc.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			if id, ok := strings.CutPrefix(strings.Fields(line)[0], "id="); ok && strings.Contains(line, " name=flagbridge ") {
				out[id] = true
			}
		}
		return out
	}
	idsBefore := ids()
	lookups := commandCounts(t, rc)["hget"]
	idleBefore := goroutines(t, c)

	h1 := http1Client(c)
	h2 := c.Client()
	l1 := startLoad(t, h1, c.URL("/edge/h1"), warm, 8, 2*time.Millisecond)
	l2 := startLoad(t, h2, c.URL("/edge/h2"), warm, 8, 2*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		count(fmt.Sprintf("before the reloads, %d", i))
	}
	base := readFile(t, c.Config)
	var took []time.Duration
	for i := 1; i <= reloads; i++ {
		// A small change each time: the admin limit, and every other time
		// the key cache's TTL. Neither touches the live or test buckets.
		cfg := strings.Replace(base, "rate_limit admin 500/1m", fmt.Sprintf("rate_limit admin %d/1m", 500-i), 1)
		if i%2 == 1 {
			cfg = strings.Replace(cfg, "rate_limit live", "key_cache_ttl 31s\n\t\trate_limit live", 1)
		}
		writeFile(t, c.Config, cfg)
		start := time.Now()
		c.Run("reload", "--config", c.Config, "--adapter", "caddyfile", "--address", fmt.Sprintf("localhost:%d", c.AdminPort))
		took = append(took, time.Since(start).Round(time.Millisecond))
		for j := range 4 {
			count(fmt.Sprintf("after reload %d, %d", i, j))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	samples := append(l1.stop(), l2.stop()...)
	h1.CloseIdleConnections()

	var failed []sample
	for _, s := range samples {
		if s.err != nil || s.status != 200 || s.body != "ok" {
			failed = append(failed, s)
		}
	}
	if len(failed) > 0 {
		s := failed[0]
		t.Fatalf("%d of %d requests failed during %d reloads (%s); the first: %d %v %s",
			len(failed), len(samples), reloads, tally(samples), s.status, s.err, s.body)
	}
	if got := commandCounts(t, rc)["hget"]; got != lookups {
		t.Fatalf("the key cache was lost in a reload: %d new key lookups", got-lookups)
	}
	// The last reload's admin limit is applied.
	if res := call(t, c, "GET", "/v1/projects", org, ""); res.Header.Get("X-RateLimit-Limit") != strconv.Itoa(500-reloads) {
		t.Fatalf("admin limit after the reloads: %v", res.Header)
	}
	idsAfter := ids()
	for id := range idsBefore {
		if !idsAfter[id] {
			t.Fatalf("Redis connection %s was closed by a reload (before %v, after %v)", id, idsBefore, idsAfter)
		}
	}
	idleAfter := settledGoroutines(t, c, idleBefore)
	if idleAfter > idleBefore+2 {
		t.Errorf("%d goroutines after %d reloads, %d before", idleAfter, reloads, idleBefore)
	}
	p50, p99, worst := latencies(samples)
	t.Logf("%d reloads (taking %v) under load: %d requests (%s), 0 failed; latency p50 %v p99 %v max %v; counted key at %d of 30; goroutines %d before, %d after; Redis connections %d before, %d after (all kept); no new key lookup",
		reloads, took, len(samples), tally(samples), p50, p99, worst, spent, idleBefore, idleAfter, len(idsBefore), len(idsAfter))
}

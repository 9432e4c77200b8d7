//go:build bench

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

var nStreams = flag.Int("bench.streams", 10_000, "event streams TestStreamsFanout opens, spread over three instances")

// peer starts another instance on the same storage as in (no bootstrap:
// the keys and flags are in.'s, shared through Redis).
func peer(t *testing.T, storage string) *testenv.Caddy {
	t.Helper()
	return testenv.NewCaddy(t, testenv.CaddyOptions{
		Global: fmt.Sprintf("\tflagbridge {\n%s\t\trate_limit live 1000000000/1m\n\t}", storage),
		Site:   "flagbridge_auth\n\tflagbridge_api",
	}).Start()
}

// memInUse reads an instance's heap and goroutine stacks in use from
// Caddy's expvar endpoint, after a collection.
func memInUse(t *testing.T, c *testenv.Caddy) (heap, stack uint64) {
	t.Helper()
	// A collection first (pprof's gc=1), so that the heap holds what is
	// live, not garbage a collection has not swept yet.
	if resp, err := http.Get(fmt.Sprintf("http://localhost:%d/debug/pprof/heap?gc=1", c.AdminPort)); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/debug/vars", c.AdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Memstats struct{ HeapInuse, StackInuse uint64 } `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Memstats.HeapInuse, v.Memstats.StackInuse
}

// percentiles sorts ds and returns its percentiles, rounded to the
// millisecond.
func percentiles(ds []time.Duration) func(p float64) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return func(p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[int(float64(len(ds)-1)*p)].Round(time.Millisecond)
	}
}

// TestStreamsFanout opens -bench.streams event streams spread over three
// instances sharing Redis, over HTTP/2 as browsers and SDKs connect, and
// measures: the heap each idle stream holds, the server CPU the idle
// streams cost, and how long a flag write takes to reach every stream as
// a refetchEvaluation event (p50, p99, max over all streams, for several
// writes, each made on one instance and carried to the others by the
// change feed).
//
//	go test -count=1 -tags bench -run TestStreamsFanout -v -timeout 30m ./bench
func TestStreamsFanout(t *testing.T) {
	r := testenv.StartRedis(t)
	storage := fmt.Sprintf("\t\tstorage %s\n", r.URL())
	// Sixteen keys: a key holds at most streams.MaxStreamsPerClient streams
	// from one address on one instance, and every stream here comes from
	// the loopback address.
	a := setUpBinary(t, "", storage, 16)
	insts := []*testenv.Caddy{a.c, peer(t, storage), peer(t, storage)}

	// One stream URL per instance and key, from a bulk evaluation there.
	urls := make([][]string, len(insts))
	clients := make([]*http.Client, len(insts))
	for i, c := range insts {
		clients[i] = clientH2(client(c).Transport.(*http.Transport).TLSClientConfig)
		clients[i].Timeout = 0
		for _, key := range a.many {
			resp, err := clients[i].Do(post(c.URL("/ofrep/v1/evaluate/flags"), key, `{}`))
			if err != nil {
				t.Fatal(err)
			}
			var bulk struct{ EventStreams []struct{ URL string } }
			err = json.NewDecoder(resp.Body).Decode(&bulk)
			resp.Body.Close()
			if err != nil || len(bulk.EventStreams) != 1 {
				t.Fatalf("instance %d: bulk answer without an event stream: %v", i, err)
			}
			urls[i] = append(urls[i], bulk.EventStreams[0].URL)
		}
	}
	time.Sleep(time.Second)
	var heapBefore, stackBefore [3]uint64
	for i, c := range insts {
		heapBefore[i], stackBefore[i] = memInUse(t, c)
	}

	n := *nStreams
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// got[v][i] is when stream i received version v's event.
	var mu sync.Mutex
	got := map[int64][]time.Time{}
	var open, failed atomic.Int64
	reconnected := make([]atomic.Int64, n) // when stream i last reconnected, Unix ns
	attempted := make([]atomic.Int64, n)   // when that attempt started
	retries := map[int]int{}               // failed reconnections by status (-1: no answer)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if i > 0 && i%1000 == 0 {
			// In waves of a thousand: what is measured here is the fan-out
			// to open streams, not a connection storm on two cores.
			for open.Load()+failed.Load() < int64(i) && time.Since(start) < 2*time.Minute {
				time.Sleep(10 * time.Millisecond)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := i % len(insts)
			// As EventSource does: on a stream's end, or a failed attempt,
			// wait the stream's retry field and connect again with
			// Last-Event-ID.
			lastID, first := "", true
			retry := 3 * time.Second // Chromium's default, until a stream says
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", urls[k][i/len(insts)%len(urls[k])], nil)
				if lastID != "" {
					req.Header.Set("Last-Event-ID", lastID)
				}
				tried := time.Now()
				resp, err := clients[k].Do(req)
				if err != nil || resp.StatusCode != 200 {
					code := -1
					if resp != nil {
						code = resp.StatusCode
						resp.Body.Close()
					}
					if !first {
						mu.Lock()
						retries[code]++
						mu.Unlock()
					}
					if first {
						if failed.Add(1) == 1 {
							t.Logf("stream %d: %v %v", i, err, resp)
						}
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-time.After(retry):
					}
					continue
				}
				if first {
					open.Add(1)
					first = false
				} else {
					reconnected[i].Store(time.Now().UnixNano())
					attempted[i].Store(tried.UnixNano())
				}
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					line := sc.Text()
					if ms, ok := strings.CutPrefix(line, "retry: "); ok {
						if v, err := strconv.Atoi(ms); err == nil {
							retry = time.Duration(v) * time.Millisecond
						}
					}
					if !strings.HasPrefix(line, "id: ") {
						continue
					}
					lastID = strings.TrimPrefix(line, "id: ")
					v, _ := strconv.ParseInt(lastID, 10, 64)
					at := time.Now()
					mu.Lock()
					if got[v] == nil {
						got[v] = make([]time.Time, n)
					}
					got[v][i] = at
					mu.Unlock()
				}
				resp.Body.Close()
				select {
				case <-ctx.Done():
					return
				case <-time.After(retry):
				}
			}
		}()
	}
	for open.Load()+failed.Load() < int64(n) && time.Since(start) < 2*time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d of %d streams failed to open", failed.Load(), n)
	}
	t.Logf("%d streams open in %v", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second)

	// Idle: heap per stream, and CPU over 10 s.
	var heapAfter uint64
	var heapDelta, stackDelta float64
	for i, c := range insts {
		h, st := memInUse(t, c)
		heapAfter += h
		heapDelta += float64(int64(h) - int64(heapBefore[i]))
		stackDelta += float64(int64(st) - int64(stackBefore[i]))
	}
	if *profile != "" {
		// The heap of the first instance with its streams idle.
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/debug/pprof/heap", insts[0].AdminPort))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = os.WriteFile(*profile+"-streams-heap.pprof", b, 0o644)
		}
	}
	var cpu0 time.Duration
	for _, c := range insts {
		cpu0 += c.CPUTime()
	}
	time.Sleep(10 * time.Second)
	var cpu1 time.Duration
	for _, c := range insts {
		cpu1 += c.CPUTime()
	}
	idleCPU := (cpu1 - cpu0).Seconds() / 10 // cores busy, summed over the instances

	// Writes: each on one instance, in turn.
	flagDoc := func(variant string) string {
		return `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"` + variant + `"}`
	}
	var lat []time.Duration
	var worstMiss int
	var profiled sync.WaitGroup
	if *profile != "" {
		// The first instance's CPU while the writes fan out.
		profiled.Go(func() { cpuProfile(t, &instance{c: insts[0]}, *profile+"-streams-cpu.pprof", 6*time.Second) })
	}
	var cpuW0 time.Duration
	for _, c := range insts {
		cpuW0 += c.CPUTime()
	}
	for w := range 5 {
		c := insts[w%len(insts)]
		req, _ := http.NewRequest("PUT", c.URL("/v1/projects/bench/environments/production/flags/pushed"), strings.NewReader(flagDoc([]string{"on", "off"}[w%2])))
		req.Header.Set("Authorization", "Bearer "+a.admin)
		t0 := time.Now()
		resp, err := clients[w%len(insts)].Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			t.Fatalf("write %d: %d", w, resp.StatusCode)
		}
		v, _ := strconv.ParseInt(resp.Header.Get("Flagbridge-Flag-Set-Version"), 10, 64)
		if v == 0 {
			t.Fatalf("write %d: no version in the answer", w)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			arrived := 0
			for _, at := range got[v] {
				if !at.IsZero() {
					arrived++
				}
			}
			mu.Unlock()
			if arrived == n || time.Now().After(deadline) {
				if arrived < n {
					worstMiss = max(worstMiss, n-arrived)
				}
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		for _, at := range got[v] {
			if !at.IsZero() {
				lat = append(lat, at.Sub(t0))
			}
		}
		mu.Unlock()
		time.Sleep(time.Second)
	}
	var cpuW1 time.Duration
	for _, c := range insts {
		cpuW1 += c.CPUTime()
	}
	profiled.Wait()
	pct := percentiles(lat)
	// A restart: the second instance stops (its streams end), a flag is
	// written meanwhile, and it starts again: its streams reconnect with
	// Last-Event-ID and are told of the write at once.
	down := insts[1]
	down.Stop()
	req, _ := http.NewRequest("PUT", insts[0].URL("/v1/projects/bench/environments/production/flags/pushed"), strings.NewReader(flagDoc("on")))
	req.Header.Set("Authorization", "Bearer "+a.admin)
	resp, err := clients[0].Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	away, _ := strconv.ParseInt(resp.Header.Get("Flagbridge-Flag-Set-Version"), 10, 64)
	time.Sleep(500 * time.Millisecond)
	restarted := time.Now()
	down.Start()
	ready := time.Now()
	if *profile != "" {
		// The restarted instance's CPU while its streams come back.
		profiled.Go(func() { cpuProfile(t, &instance{c: down}, *profile+"-storm-cpu.pprof", 3*time.Second) })
	}
	// From the instance's launch: it takes connections a little before
	// the harness sees it ready (ready - restarted, printed).
	var back, answered []time.Duration
	stormDeadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(stormDeadline) {
		back, answered = back[:0], answered[:0]
		for i := 1; i < n; i += len(insts) {
			if at := reconnected[i].Load(); at > restarted.UnixNano() {
				back = append(back, time.Duration(at-restarted.UnixNano()))
				answered = append(answered, time.Duration(at-attempted[i].Load()))
			}
		}
		if len(back) == (n+1)/len(insts) || len(back) == n/len(insts) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	profiled.Wait()
	missedAway := 0
	mu.Lock()
	for i := range n {
		if got[away] == nil || got[away][i].IsZero() {
			missedAway++
		}
	}
	mu.Unlock()
	backPct, answeredPct := percentiles(back), percentiles(answered)

	fmt.Printf("\n%d event streams over 3 instances sharing Redis (HTTP/2)\n", n)
	fmt.Printf("per idle stream: heap in use %.1f KiB, goroutine stacks %.1f KiB (heap %.0f MiB over all, three instances)\n",
		heapDelta/float64(n)/1024, stackDelta/float64(n)/1024, float64(heapAfter)/(1<<20))
	fmt.Printf("server CPU with the streams idle: %.3f cores (three instances together)\n", idleCPU)
	fmt.Printf("write to event, all streams, 5 writes: p50 %v, p99 %v, max %v; streams that missed a write: %d\n", pct(0.5), pct(0.99), pct(1), worstMiss)
	// The write phase's CPU includes the 1 s pauses, idle as measured above.
	fmt.Printf("server CPU per event delivered: %.1f µs (5 writes, all three instances)\n",
		(cpuW1-cpuW0-time.Duration(idleCPU*float64(5*time.Second))).Seconds()*1e6/float64(max(len(lat), 1)))
	fmt.Printf("restart of one instance (its %d streams reconnecting as EventSource does, after the stream's retry): %d back, after its launch p50 %v, p99 %v, max %v (it was ready for the harness after %v); streams that missed the write made while it was away: %d\n",
		(n+1)/len(insts), len(back), backPct(0.5), backPct(0.99), backPct(1), ready.Sub(restarted).Round(time.Millisecond), missedAway)
	fmt.Printf("  each successful reconnection, from its attempt to its answer: p50 %v, p99 %v, max %v\n", answeredPct(0.5), answeredPct(0.99), answeredPct(1))
	fmt.Printf("failed reconnection attempts by status (-1: no answer, the instance down): %v\n", retries)
	// What the restarted instance's guard said of its storage (one line a
	// second at most), so that a 503 is told by its cause.
	for _, line := range strings.Split(down.Logs(), "\n") {
		if strings.Contains(line, `"while"`) {
			if i := strings.Index(line, `"while"`); i >= 0 {
				fmt.Printf("  restarted instance: %.200s\n", line[i:])
			}
		}
	}
	if missedAway > 0 {
		t.Errorf("%d streams missed the write made while their instance was away", missedAway)
	}
	if worstMiss > 0 {
		t.Errorf("%d streams missed a write", worstMiss)
	}
	cancel()
	wg.Wait()
}

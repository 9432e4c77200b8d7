//go:build bench

package bench

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

var (
	against = flag.String("bench.against", "", "another build of the Caddy binary (say, of the commit before a change) to measure side by side with this tree's")
	rounds  = flag.Int("bench.rounds", 5, "rounds of the side-by-side comparison")
	only    = flag.String("bench.only", "", "a regular expression: run only the side-by-side scenarios whose names match")
	profile = flag.String("bench.profile", "", "write CPU profiles of the first round: TestLoadLimitsPair to <this>-c.pprof and <this>-h.pprof, TestLoadAB to <this>-<scenario letter and store>-this.pprof and -other.pprof")
)

// TestLoadAB measures this tree's binary against another (-bench.against),
// side by side: in each round both serve the same scenario at the same
// time, each driven by half the connections, so that whatever else the
// machine does weighs on both alike. It reports, per scenario and round,
// the other's requests a second and server CPU per request over this
// tree's, and their medians:
//
//	go build -o /tmp/caddy-before ./cmd/caddy    # at the commit before
//	go test -count=1 -tags bench -run TestLoadAB -v ./bench -bench.against /tmp/caddy-before
func TestLoadAB(t *testing.T) {
	if *against == "" {
		t.Skip("-bench.against names no binary to compare with")
	}
	if _, err := os.Stat(*against); err != nil {
		t.Fatal(err)
	}
	r := testenv.StartRedis(t)
	redisA := fmt.Sprintf("\t\tstorage %s\n\t\tkey_prefix fba\n", r.URL())
	redisB := fmt.Sprintf("\t\tstorage %s\n\t\tkey_prefix fbb\n", r.URL())
	match, err := regexp.Compile(*only)
	if err != nil {
		t.Fatalf("-bench.only: %v", err)
	}
	this := map[string]*instance{"redis": setUpBinary(t, "", redisA, 0), "embedded": setUpBinary(t, "", "", 0)}
	other := map[string]*instance{"redis": setUpBinary(t, *against, redisB, 0), "embedded": setUpBinary(t, *against, "", 0)}
	this["redis"].addLimited()
	other["redis"].addLimited()
	evalStatic := `{"flag":"static-flag","context":{"targetingKey":"user-42"}}`
	scenarios := []struct {
		name, store, tag string
		build            func(in *instance) request
	}{
		{"(b) auth + Redis limiter + respond", "redis", "b-redis", func(in *instance) request {
			return func(int) (*http.Request, int) { return get(in.c.URL("/bench/x"), in.live), 200 }
		}},
		{"(c) POST /v1/evaluate, static", "redis", "c-redis", func(in *instance) request {
			return func(int) (*http.Request, int) { return post(in.c.URL("/v1/evaluate"), in.live, evalStatic), 200 }
		}},
		{"(c) embedded store", "embedded", "c-embedded", func(in *instance) request {
			return func(int) (*http.Request, int) { return post(in.c.URL("/v1/evaluate"), in.live, evalStatic), 200 }
		}},
		{"(h) limits, quota, identity", "redis", "h-redis", func(in *instance) request {
			return func(int) (*http.Request, int) { return post(in.c.URL("/v1/evaluate"), in.limited, evalStatic), 200 }
		}},
	}
	half := max(*conns/2, 1)
	saved := *conns
	*conns = half
	defer func() { *conns = saved }()

	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tround\tthis req/s\tother req/s\tother/this\tthis CPU/req\tother CPU/req\tother/this\t\n")
	for _, sc := range scenarios {
		if !match.MatchString(sc.name) {
			continue
		}
		var rps, cpu []float64
		for round := 1; round <= *rounds; round++ {
			a, b := this[sc.store], other[sc.store]
			var ra, rb *result
			var wg sync.WaitGroup
			if *profile != "" && round == 1 {
				for name, in := range map[string]*instance{"this": a, "other": b} {
					wg.Go(func() { cpuProfile(t, in, *profile+"-"+sc.tag+"-"+name+".pprof", *duration-2*time.Second) })
				}
			}
			wg.Add(2)
			go func() { defer wg.Done(); ra = drive(t, sc.name, a.c.CPUTime, a.http, sc.build(a), 0, nil) }()
			go func() { defer wg.Done(); rb = drive(t, sc.name, b.c.CPUTime, b.http, sc.build(b), 0, nil) }()
			wg.Wait()
			if ra.errors > 0 || rb.errors > 0 {
				t.Errorf("%s round %d: errors %d (this) %d (other)", sc.name, round, ra.errors, rb.errors)
			}
			ca, cb := perRequest(ra), perRequest(rb)
			rps = append(rps, rb.rps()/ra.rps())
			cpu = append(cpu, cb/ca)
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%.1fµs\t%.1fµs\t%.2f\t\n", sc.name, round, ra.rps(), rb.rps(), rb.rps()/ra.rps(), ca, cb, cb/ca)
			time.Sleep(time.Second)
		}
		fmt.Fprintf(tw, "%s\tmedian\t\t\t%.2f\t\t\t%.2f\t\n", sc.name, median(rps), median(cpu))
	}
	tw.Flush()
	fmt.Fprintf(&buf, "other: %s; %d rounds of %v, %d connections each\n", *against, *rounds, *duration, half)
	fmt.Fprint(os.Stdout, "\n"+buf.String())
}

func perRequest(r *result) float64 {
	return float64(r.cpu.Microseconds()) / float64(max(r.requests, 1))
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TestLoadLimitsPair measures scenario (h) against (c) side by side on two
// instances of this tree's binary sharing one Redis: in each round one
// serves (c) and the other (h) at the same time, each driven by half the
// connections, and the instances swap scenarios every round. It reports
// (h)'s requests a second and server CPU per request over (c)'s, per round
// and as medians: what the limits of (h) cost, with the machine's noise
// weighing on both alike.
//
//	go test -count=1 -tags bench -run TestLoadLimitsPair -v ./bench
func TestLoadLimitsPair(t *testing.T) {
	r := testenv.StartRedis(t)
	rc := r.Client()
	ins := [2]*instance{
		setUpBinary(t, "", fmt.Sprintf("\t\tstorage %s\n\t\tkey_prefix fba\n", r.URL()), 0),
		setUpBinary(t, "", fmt.Sprintf("\t\tstorage %s\n\t\tkey_prefix fbb\n", r.URL()), 0),
	}
	for _, in := range ins {
		in.addLimited()
	}
	evalStatic := `{"flag":"static-flag","context":{"targetingKey":"user-42"}}`
	half := max(*conns/2, 1)
	saved := *conns
	*conns = half
	defer func() { *conns = saved }()

	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "round\t(c) req/s\t(h) req/s\t(h)/(c)\t(c) CPU/req\t(h) CPU/req\t(h)/(c)\t(h) Redis cmds/req\t\n")
	var rps, cpu []float64
	for round := 1; round <= *rounds; round++ {
		c, h := ins[round%2], ins[(round+1)%2]
		var rcRes, rhRes *result
		var wg sync.WaitGroup
		if *profile != "" && round == 1 {
			for name, in := range map[string]*instance{"c": c, "h": h} {
				wg.Go(func() { cpuProfile(t, in, *profile+"-"+name+".pprof", *duration-2*time.Second) })
			}
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			rcRes = drive(t, "(c)", c.c.CPUTime, c.http, func(int) (*http.Request, int) { return post(c.c.URL("/v1/evaluate"), c.live, evalStatic), 200 }, 0, nil)
		}()
		go func() {
			defer wg.Done()
			rhRes = drive(t, "(h)", h.c.CPUTime, h.http, func(int) (*http.Request, int) { return post(h.c.URL("/v1/evaluate"), h.limited, evalStatic), 200 }, 0, rc)
		}()
		wg.Wait()
		if rcRes.errors > 0 || rhRes.errors > 0 {
			t.Errorf("round %d: errors %d (c) %d (h)", round, rcRes.errors, rhRes.errors)
		}
		cc, ch := perRequest(rcRes), perRequest(rhRes)
		rps = append(rps, rhRes.rps()/rcRes.rps())
		cpu = append(cpu, ch/cc)
		// The Redis commands of both instances are counted, over (h)'s
		// requests: an upper bound for (h)'s own.
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t%.1fµs\t%.1fµs\t%.2f\t%.3f\t\n", round, rcRes.rps(), rhRes.rps(), rhRes.rps()/rcRes.rps(), cc, ch, ch/cc,
			float64(rhRes.redisCmds)/float64(max(rhRes.requests, 1)))
		time.Sleep(time.Second)
	}
	fmt.Fprintf(tw, "median\t\t\t%.2f\t\t\t%.2f\t\t\n", median(rps), median(cpu))
	tw.Flush()
	fmt.Fprintf(&buf, "%d rounds of %v, %d connections each\n", *rounds, *duration, half)
	fmt.Fprint(os.Stdout, "\n"+buf.String())
}

// cpuProfile writes a CPU profile of in's server, taken for d through
// Caddy's admin endpoint, to path.
func cpuProfile(t *testing.T, in *instance, path string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/debug/pprof/profile?seconds=%d", in.c.AdminPort, int(d.Seconds())))
	if err != nil {
		t.Errorf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Errorf("profile: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Errorf("profile: %v", err)
	}
}

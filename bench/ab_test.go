//go:build bench

package bench

import (
	"flag"
	"fmt"
	"net/http"
	"os"
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
	this := map[string]*instance{"redis": setUpBinary(t, "", redisA, 0), "embedded": setUpBinary(t, "", "", 0)}
	other := map[string]*instance{"redis": setUpBinary(t, *against, redisB, 0), "embedded": setUpBinary(t, *against, "", 0)}
	evalStatic := `{"flag":"static-flag","context":{"targetingKey":"user-42"}}`
	scenarios := []struct {
		name, store string
		build       func(in *instance) request
	}{
		{"(b) auth + Redis limiter + respond", "redis", func(in *instance) request {
			return func(int) (*http.Request, int) { return get(in.c.URL("/bench/x"), in.live), 200 }
		}},
		{"(c) POST /v1/evaluate, static", "redis", func(in *instance) request {
			return func(int) (*http.Request, int) { return post(in.c.URL("/v1/evaluate"), in.live, evalStatic), 200 }
		}},
		{"(c) embedded store", "embedded", func(in *instance) request {
			return func(int) (*http.Request, int) { return post(in.c.URL("/v1/evaluate"), in.live, evalStatic), 200 }
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
		var rps, cpu []float64
		for round := 1; round <= *rounds; round++ {
			a, b := this[sc.store], other[sc.store]
			var ra, rb *result
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); ra = drive(t, sc.name, a.c, a.http, sc.build(a), 0, nil) }()
			go func() { defer wg.Done(); rb = drive(t, sc.name, b.c, b.http, sc.build(b), 0, nil) }()
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

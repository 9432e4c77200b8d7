package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// receiver is a loopback webhook endpoint that verifies every delivery
// with the Standard Webhooks library and the webhook's secret.
type receiver struct {
	srv    *httptest.Server
	wh     atomic.Pointer[standardwebhooks.Webhook]
	down   atomic.Bool
	mu     sync.Mutex
	got    map[string]int     // successful deliveries by webhook-id
	ver    map[int64][]string // webhook-ids by the flag set's version
	lag    []time.Duration    // from the entry's time to arrival
	bad    []string           // what failed verification
	failed atomic.Int64       // answered 503 while down
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}, ver: map[int64][]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.down.Load() {
			r.failed.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		arrived := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		wh := r.wh.Load()
		if wh == nil || wh.Verify(body, req.Header) != nil {
			r.bad = append(r.bad, req.Header.Get("webhook-id")+": "+string(body))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct {
			Type string
			Data struct {
				Entry   struct{ Time time.Time }
				FlagSet struct{ Version int64 } `json:"flag_set"`
			}
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Type != "flag_set.updated" {
			r.bad = append(r.bad, "payload "+string(body))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		id := req.Header.Get("webhook-id")
		r.got[id]++
		r.ver[p.Data.FlagSet.Version] = append(r.ver[p.Data.FlagSet.Version], id)
		r.lag = append(r.lag, arrived.Sub(p.Data.Entry.Time))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// count is the number of distinct deliveries received and of requests
// that delivered one.
func (r *receiver) count() (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.got {
		total += n
	}
	return len(r.got), total
}

func (r *receiver) waitFor(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if d, _ := r.count(); d >= n {
			return
		}
		if time.Now().After(deadline) {
			d, total := r.count()
			t.Fatalf("%d of %d deliveries arrived within %v (%d requests)", d, n, within, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three instances sharing Redis, one webhook, a loopback receiver: every
// flag write is delivered exactly once whichever instance took it, each
// verifiable with the secret; with the receiver down for 30 s, every
// delivery arrives once after it is back; a replay sends one again with
// its id.
func TestWebhooksExactlyOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	insts := []*testenv.Caddy{
		redisCaddy(t, r, "\t\twebhook_allow_insecure\n\t\trate_limit admin 100000/1m"),
		redisCaddy(t, r, "\t\twebhook_allow_insecure\n\t\trate_limit admin 100000/1m"),
		redisCaddy(t, r, "\t\twebhook_allow_insecure\n\t\trate_limit admin 100000/1m"),
	}
	admin := bootstrap(t, insts[0])
	mustStatus(t, call(t, insts[0], "POST", "/v1/projects", admin, `{"slug":"app"}`), 201)
	rec := newReceiver(t)
	created := mustStatus(t, call(t, insts[1], "POST", "/v1/projects/app/webhooks", admin,
		`{"url":"`+rec.srv.URL+`/hooks","events":["flag_set.updated"]}`), 201).JSON(t)
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("created %v", created)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	rec.wh.Store(wh)
	hookID := created["id"].(string)
	if list := mustStatus(t, call(t, insts[2], "GET", "/v1/projects/app/webhooks", admin, ""), 200); strings.Contains(list.Body, secret) || !strings.Contains(list.Body, hookID) {
		t.Fatalf("the list shows the secret, or not the webhook: %s", list.Body)
	}

	write := func(i int) {
		doc := fmt.Sprintf(`{"flags":{"f":{"state":"ENABLED","variants":{"a":"a","b":"b"},"defaultVariant":"%s"}}}`, []string{"a", "b"}[i%2])
		mustStatus(t, call(t, insts[i%len(insts)], "PUT", "/v1/projects/app/environments/production/flags", admin, doc), 200)
	}
	const writes = 100
	for i := range writes {
		write(i)
	}
	rec.waitFor(t, writes, 30*time.Second)
	time.Sleep(2 * time.Second) // time for a duplicate to show
	distinct, total := rec.count()
	rec.mu.Lock()
	if distinct != writes || total != writes || len(rec.bad) > 0 {
		t.Fatalf("%d writes: %d deliveries in %d requests; unverified: %v", writes, distinct, total, rec.bad)
	}
	for v := int64(1); v <= writes; v++ {
		if len(rec.ver[v]) != 1 {
			t.Fatalf("version %d delivered %d times", v, len(rec.ver[v]))
		}
	}
	lag := append([]time.Duration(nil), rec.lag...)
	rec.mu.Unlock()
	sort.Slice(lag, func(i, j int) bool { return lag[i] < lag[j] })
	t.Logf("%d writes over 3 instances: %d deliveries, each once; from the change to its delivery p50 %v, p99 %v, max %v",
		writes, distinct, lag[len(lag)/2].Round(time.Millisecond), lag[len(lag)*99/100].Round(time.Millisecond), lag[len(lag)-1].Round(time.Millisecond))

	// The receiver down for 30 s: the writes made meanwhile arrive once
	// each after it is back.
	rec.down.Store(true)
	for i := range 10 {
		write(writes + i)
	}
	time.Sleep(30 * time.Second)
	rec.down.Store(false)
	back := time.Now()
	rec.waitFor(t, writes+10, 70*time.Second)
	t.Logf("after 30 s down (%d attempts refused), the last of 10 deliveries arrived %v after the receiver was back",
		rec.failed.Load(), time.Since(back).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if distinct, total := rec.count(); distinct != writes+10 || total != writes+10 {
		t.Fatalf("after the outage: %d deliveries in %d requests", distinct, total)
	}

	// The delivery log: the outage's refusals, then the delivery.
	var log struct {
		Data []struct {
			ID, Status string
			Attempts   []struct{ Status int }
		}
	}
	if err := json.Unmarshal([]byte(mustStatus(t, call(t, insts[0], "GET", "/v1/projects/app/webhooks/"+hookID+"/deliveries?limit=10", admin, ""), 200).Body), &log); err != nil {
		t.Fatal(err)
	}
	newest := log.Data[0]
	if newest.Status != "delivered" || len(newest.Attempts) < 2 || newest.Attempts[0].Status != 503 || newest.Attempts[len(newest.Attempts)-1].Status != 204 {
		t.Fatalf("the newest delivery's log: %+v", newest)
	}

	// A replay: the same webhook-id once more.
	mustStatus(t, call(t, insts[2], "POST", "/v1/projects/app/webhooks/"+hookID+"/deliveries/"+newest.ID+"/replay", admin, ""), 202)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		n := rec.got[newest.ID]
		rec.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replay did not arrive: %d", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/store"
)

// Registering in the same registry twice (the app provisioned again with
// one context) is harmless, and every config's fresh registry gets the same
// collectors, so counters continue across reloads.
func TestRegisterMetricsTwiceAndAcrossRegistries(t *testing.T) {
	first := prometheus.NewPedanticRegistry()
	if err := registerMetrics(first); err != nil {
		t.Fatal(err)
	}
	if err := registerMetrics(first); err != nil {
		t.Fatalf("second registration in one registry: %v", err)
	}
	metrics.guard.Requests[edge.CallerNone][edge.OutcomeHTTPSRequired].Inc()
	before := gatherValue(t, first, "flagbridge_guard_requests_total", map[string]string{"key_type": "none", "outcome": "https_required"})

	second := prometheus.NewPedanticRegistry() // as after a reload
	if err := registerMetrics(second); err != nil {
		t.Fatal(err)
	}
	metrics.guard.Requests[edge.CallerNone][edge.OutcomeHTTPSRequired].Inc()
	if got := gatherValue(t, second, "flagbridge_guard_requests_total", map[string]string{"key_type": "none", "outcome": "https_required"}); got != before+1 {
		t.Fatalf("after a reload the counter is %v, want %v", got, before+1)
	}
	// A different collector under a FlagBridge name is a real conflict.
	clash := prometheus.NewPedanticRegistry()
	clash.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "flagbridge_change_feed_resyncs_total", Help: "x"}))
	if err := registerMetrics(clash); err == nil {
		t.Fatal("a clashing collector was accepted")
	}
	if err := registerMetrics(nil); err != nil {
		t.Fatalf("nil registry: %v", err)
	}
}

// Every series exists from the start, and no label can hold key material:
// the label values are closed sets.
func TestMetricLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]map[string]bool{
		"key_type":  {"none": true, "live": true, "test": true, "admin": true, "member": true, "client": true},
		"outcome":   {"allowed": true, "limited": true, "unauthorized": true, "forbidden": true, "https_required": true, "storage_unavailable": true, "would_limit": true},
		"result":    {"hit": true, "miss": true},
		"operation": {"key_lookup": true, "rate_limit": true},
		"topic":     {"keys": true, "flags": true, "identities": true},
		"threshold": {"0.8": true, "0.95": true},
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			series[f.GetName()]++
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()][l.GetValue()] {
					t.Errorf("%s has label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	want := map[string]int{
		"flagbridge_guard_requests_total":          6 * 7,
		"flagbridge_rate_limit_near_total":         3 * 2,
		"flagbridge_rate_limiter_duration_seconds": 1,
		"flagbridge_key_cache_lookups_total":       2,
		"flagbridge_storage_errors_total":          2,
		"flagbridge_invalidation_lag_seconds":      3,
		"flagbridge_change_feed_resyncs_total":     1,
	}
	for name, n := range want {
		if series[name] != n {
			t.Errorf("%s: %d series, want %d", name, series[name], n)
		}
	}
}

func TestObserveChange(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	topicKeys := map[string]string{"topic": keys.Topic}
	count := func() uint64 {
		t.Helper()
		return gatherHistogram(t, reg, "flagbridge_invalidation_lag_seconds", topicKeys).GetSampleCount()
	}
	resyncs := func() float64 {
		return gatherValue(t, reg, "flagbridge_change_feed_resyncs_total", nil)
	}
	n, r := count(), resyncs()
	observeChange(store.Event{Topic: keys.Topic, Payload: []byte("key_1")}) // unstamped: an older instance
	observeChange(store.Event{Topic: "other", Published: time.Now()})
	if count() != n {
		t.Fatal("observed an unstamped event or an unknown topic")
	}
	observeChange(store.Event{Topic: keys.Topic, Published: time.Now().Add(-20 * time.Millisecond)})
	observeChange(store.Event{Topic: keys.Topic, Published: time.Now().Add(time.Hour)}) // a clock ahead
	h := gatherHistogram(t, reg, "flagbridge_invalidation_lag_seconds", topicKeys)
	if h.GetSampleCount() != n+2 {
		t.Fatalf("lag observations: %d, want %d", h.GetSampleCount(), n+2)
	}
	if h.GetSampleSum() < 0.02 || h.GetSampleSum() > 10 {
		t.Fatalf("lag sum %v s", h.GetSampleSum())
	}
	observeChange(store.Event{Resync: true})
	if resyncs() != r+1 {
		t.Fatal("a resync was not counted")
	}
}

func TestIETFHeadersOption(t *testing.T) {
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("flagbridge {\n ietf_headers\n}")); err != nil {
		t.Fatal(err)
	}
	if !a.IETFHeaders {
		t.Fatal("ietf_headers not set")
	}
	var cfg edge.Config
	if err := provisionApp(t, &a, func(p *App) { cfg = p.guardConfig }); err != nil || !cfg.IETFHeaders {
		t.Fatalf("guard config: %+v, %v", cfg, err)
	}
	if err := provisionApp(t, new(App), func(p *App) { cfg = p.guardConfig }); err != nil || cfg.IETFHeaders {
		t.Fatalf("IETF headers on by default: %v", err)
	}
	err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser("flagbridge {\n ietf_headers yes\n}"))
	if err == nil || !strings.Contains(err.Error(), "wrong argument count") {
		t.Fatalf("ietf_headers with an argument: %v", err)
	}
}

func gatherMetric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return nil
}

func gatherValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	return gatherMetric(t, reg, name, labels).GetCounter().GetValue()
}

func gatherHistogram(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	return gatherMetric(t, reg, name, labels).GetHistogram()
}

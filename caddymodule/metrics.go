package caddymodule

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/store"
)

// FlagBridge's Prometheus metrics. They are served wherever Caddy serves
// its own: the admin endpoint's /metrics, and the metrics handler.
//
// The collectors are process-wide and outlive config reloads, so that
// counters continue across a reload: every config's metrics registry (Caddy
// makes a new one for each config) gets the same collectors, registered
// once per registry. Labels carry no key material: no key id, digest or
// client address.
var metrics struct {
	once sync.Once

	requests        *prometheus.CounterVec // key_type, outcome
	nearLimit       *prometheus.CounterVec // key_type, threshold
	limiterSeconds  prometheus.Histogram
	cacheLookups    *prometheus.CounterVec   // result
	storageErrors   *prometheus.CounterVec   // operation
	invalidationLag *prometheus.HistogramVec // topic
	resyncs         prometheus.Counter

	// What the guard and the key cache record into, resolved once.
	guard edge.Metrics
	cache edge.KeyCacheMetrics
	// lag is the invalidation-lag histogram of each topic it observes.
	lag map[string]prometheus.Observer
}

// Metric and label names.
const (
	metricRequests        = "flagbridge_guard_requests_total"
	metricLimiterSeconds  = "flagbridge_rate_limiter_duration_seconds"
	metricCacheLookups    = "flagbridge_key_cache_lookups_total"
	metricStorageErrors   = "flagbridge_storage_errors_total"
	metricInvalidationLag = "flagbridge_invalidation_lag_seconds"
	metricResyncs         = "flagbridge_change_feed_resyncs_total"
	metricNearLimit       = "flagbridge_rate_limit_near_total"
)

// initMetrics creates the collectors and resolves every label combination
// ahead of time, so that recording costs an atomic add, and so that every
// series exists (at zero) from the start.
func initMetrics() {
	metrics.once.Do(func() {
		metrics.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricRequests,
			Help: "Requests decided by flagbridge_auth, by caller (the type of the authenticated key, member for a dashboard session, none without either) and outcome.",
		}, []string{"key_type", "outcome"})
		metrics.nearLimit = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricNearLimit,
			Help: "Admitted key requests after which the limit nearest to refusing had at least threshold (0.8, 0.95) of its window spent, by key type.",
		}, []string{"key_type", "threshold"})
		metrics.limiterSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    metricLimiterSeconds,
			Help:    "Time taken by each check of the shared rate limiter, failed checks included.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		})
		metrics.cacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricCacheLookups,
			Help: "Requests whose key was (hit) or was not (miss) in the key cache.",
		}, []string{"result"})
		metrics.storageErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricStorageErrors,
			Help: "Storage calls of the request path that failed: key lookups and rate-limit checks.",
		}, []string{"operation"})
		metrics.invalidationLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricInvalidationLag,
			Help:    "Time from a change's commit on one instance to its arrival on this one, by change topic (keys, flags, identities).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"topic"})
		metrics.resyncs = prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricResyncs,
			Help: "Times the change feed may have lost messages (a lost Redis Pub/Sub connection) and the caches were cleared.",
		})

		for c := range edge.NumCallers {
			for o := range edge.NumOutcomes {
				metrics.guard.Requests[c][o] = metrics.requests.WithLabelValues(c.String(), o.String())
			}
		}
		for _, c := range []edge.Caller{edge.CallerLive, edge.CallerTest, edge.CallerAdmin} {
			for i, th := range edge.NearThresholds {
				metrics.guard.NearLimit[c][i] = metrics.nearLimit.WithLabelValues(c.String(), strconv.FormatFloat(th, 'f', -1, 64))
			}
		}
		metrics.guard.LimiterSeconds = metrics.limiterSeconds
		metrics.guard.LimiterErrors = metrics.storageErrors.WithLabelValues("rate_limit")
		metrics.cache = edge.KeyCacheMetrics{
			Hits:         metrics.cacheLookups.WithLabelValues("hit"),
			Misses:       metrics.cacheLookups.WithLabelValues("miss"),
			LookupErrors: metrics.storageErrors.WithLabelValues("key_lookup"),
		}
		metrics.lag = map[string]prometheus.Observer{
			keys.Topic:      metrics.invalidationLag.WithLabelValues(keys.Topic),
			flags.Topic:     metrics.invalidationLag.WithLabelValues(flags.Topic),
			customers.Topic: metrics.invalidationLag.WithLabelValues(customers.Topic),
		}
	})
}

// registerMetrics registers FlagBridge's collectors in a config's metrics
// registry. Registering them again in the same registry is not an error, so
// that nothing depends on how often the app is provisioned; a nil registry
// (a caddy.Context not made by Caddy) registers nothing.
func registerMetrics(reg prometheus.Registerer) error {
	initMetrics()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		metrics.requests, metrics.nearLimit, metrics.limiterSeconds, metrics.cacheLookups,
		metrics.storageErrors, metrics.invalidationLag, metrics.resyncs,
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			return err
		}
	}
	return nil
}

// instrument makes an opened core's guard and key cache record into the
// metrics.
func instrument(o *openCore) {
	initMetrics()
	o.Guard.SetMetrics(&metrics.guard)
	o.Keys.SetMetrics(&metrics.cache)
}

// observeChange records a change-feed event: its invalidation lag, when the
// event says when it was published, or a resync.
func observeChange(ev store.Event) {
	initMetrics()
	if ev.Resync {
		metrics.resyncs.Inc()
		return
	}
	if ev.Published.IsZero() {
		return // from an instance that does not stamp its messages
	}
	lag, ok := metrics.lag[ev.Topic]
	if !ok {
		return
	}
	// Instances' clocks may disagree a little; a change cannot arrive
	// before it was made.
	lag.Observe(max(time.Since(ev.Published), 0).Seconds())
}

package caddymodule

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/feedcache"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the "flagbridge" Caddy app. It owns the state every FlagBridge
// handler shares: storage, the rate limiter, the key cache and the change
// feed that keeps caches on every instance current. That state lives in a
// caddy.UsagePool keyed by the storage settings, so a config reload reuses
// the open store (and its Redis connections, limiter state and cache)
// instead of reopening it.
//
// Its Caddyfile syntax is documented on [App.UnmarshalCaddyfile].
type App struct {
	// Storage is file://<dir> (the embedded store, the default, in Caddy's
	// data directory) or redis://, rediss:// (single server, Sentinel with
	// ?master_name=, Cluster with ?cluster=true).
	Storage string `json:"storage,omitempty"`
	// StorageTimeout bounds every storage call made while serving a request
	// (default edge.DefaultTimeout, 500ms).
	StorageTimeout caddy.Duration `json:"storage_timeout,omitempty"`
	// KeyPrefix namespaces FlagBridge's Redis keys (default "fb").
	KeyPrefix string `json:"key_prefix,omitempty"`
	// OnStorageError is what happens to a request whose rate limit cannot
	// be checked because storage fails: "deny" (the default: JSON 503),
	// "allow" (admit, with only X-RateLimit-Limit, and log) or "local"
	// (each instance enforces its own share of the limit, 1/LocalInstances,
	// in process, until storage answers again). A key that cannot be
	// verified is refused under every policy.
	OnStorageError string `json:"on_storage_error,omitempty"`
	// LocalInstances is, for on_storage_error local, the number of
	// instances sharing the limits (default 1): each then admits limit /
	// LocalInstances while storage fails. An instance cannot know it, so
	// it is configured; set it to the size of the fleet.
	LocalInstances int `json:"local_instances,omitempty"`
	// KeyCacheTTL is how long a key record is trusted without hearing of
	// a change (default feedcache.DefaultTTL, 30s). Changes arrive through the change feed at
	// once; this is only the safety net.
	KeyCacheTTL caddy.Duration `json:"key_cache_ttl,omitempty"`
	// AuditRetention is how long audit log entries are kept (default
	// audit.DefaultRetention, 90 days); older days are deleted.
	AuditRetention caddy.Duration `json:"audit_retention,omitempty"`
	// WebhookAllowInsecure admits http webhook URLs and private, loopback
	// and link-local targets: for development and tests only (logged at
	// start). By default deliveries go over https to public addresses, so
	// that a webhook cannot reach into the network FlagBridge runs in.
	WebhookAllowInsecure bool `json:"webhook_allow_insecure,omitempty"`
	// RateLimits overrides the default limits. Keys: client (per key and
	// client address), live, test, admin and unauthenticated (per client
	// IP, for requests failing authentication).
	RateLimits map[string]RateLimit `json:"rate_limits,omitempty"`
	// IETFHeaders adds the RateLimit-Policy and RateLimit fields of the
	// IETF draft (draft-ietf-httpapi-ratelimit-headers) next to the
	// X-RateLimit-* headers, from the same limiter result. Off by default.
	IETFHeaders bool `json:"ietf_headers,omitempty"`
	// RateLimitMode is "enforce" (or empty, the default) or "shadow":
	// every rate limit and quota is then advisory, admitting what it would
	// refuse while still reporting it (headers, the would_limit outcome,
	// a log line a second), to try limits before enforcing them.
	RateLimitMode string `json:"rate_limit_mode,omitempty"`

	guardConfig edge.Config
	// invalid is what Validate reports: a setting the app cannot use.
	invalid   error
	poolKey   string
	storeURL  string
	storeOpts store.Options
	core      *core
	logger    *zap.Logger
}

// RateLimit is one bucket's limit: Requests per Window (default one minute),
// with bursts of up to Requests.
type RateLimit struct {
	Requests int            `json:"requests"`
	Window   caddy.Duration `json:"window,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "flagbridge",
		New: func() caddy.Module { return new(App) },
	}
}

// DefaultStorage is the storage of an app that names none: the embedded
// store, in the flagbridge folder of Caddy's data directory.
func DefaultStorage() string {
	return "file://" + filepath.Join(caddy.AppDataDir(), "flagbridge")
}

// cores holds the state that outlives config reloads, by storage settings.
var cores = caddy.NewUsagePool()

// Provision sets defaults and takes (or creates) the shared state. It opens
// nothing: storage is opened by Start, so `caddy validate` has no side
// effects. Settings it cannot use are reported by Validate.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.storeURL = a.Storage
	if a.storeURL == "" {
		a.storeURL = DefaultStorage()
	}
	a.guardConfig, a.invalid = a.guardSettings()
	if a.invalid != nil {
		return nil
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	// One timeout for all three: the store's calls (and its client's dial,
	// read and write timeouts), the guard's deadline on each storage call
	// of a request, and the batching limiter's round trips. The limiter
	// thus never keeps a round trip going after every request it carries
	// has given up on it, nor gives up before they do.
	a.storeOpts = store.Options{Timeout: a.guardConfig.Timeout, KeyPrefix: a.KeyPrefix}

	a.poolKey = fmt.Sprintf("%s|%s|%s", a.storeURL, a.storeOpts.Timeout, a.storeOpts.KeyPrefix)
	c, _, err := cores.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		return newCore(a.storeURL, a.storeOpts, a.guardConfig, a.logger), nil
	})
	if err != nil {
		return err
	}
	a.core = c.(*core)
	return nil
}

// Validate reports the settings the app cannot use. The Caddyfile parser
// checks only their syntax: every value is checked here, once.
func (a *App) Validate() error { return a.invalid }

// guardSettings checks the app's settings and turns them into the guard's
// configuration, from the edge's documented defaults.
func (a *App) guardSettings() (edge.Config, error) {
	cfg := edge.DefaultConfig()
	switch {
	case a.StorageTimeout < 0:
		return cfg, fmt.Errorf("storage_timeout: %s is not a positive duration", time.Duration(a.StorageTimeout))
	case a.StorageTimeout > 0:
		cfg.Timeout = time.Duration(a.StorageTimeout)
	}
	if a.KeyCacheTTL < 0 {
		return cfg, fmt.Errorf("key_cache_ttl: %s is not a positive duration", time.Duration(a.KeyCacheTTL))
	}
	if a.AuditRetention < 0 || a.AuditRetention > 0 && time.Duration(a.AuditRetention) < 24*time.Hour {
		return cfg, fmt.Errorf("audit_retention: %s is shorter than a day (entries are kept by the day)", time.Duration(a.AuditRetention))
	}
	policy, err := edge.ParseStoragePolicy(a.OnStorageError)
	if err != nil {
		return cfg, fmt.Errorf("on_storage_error: %v", err)
	}
	cfg.OnStorageError = policy
	switch {
	case a.LocalInstances < 0:
		return cfg, fmt.Errorf("local_instances: %d is not a positive number of instances", a.LocalInstances)
	case a.LocalInstances > 0 && policy != edge.StorageLocal:
		return cfg, fmt.Errorf("local_instances is only for on_storage_error local, not %s", policy)
	}
	cfg.LocalInstances = max(a.LocalInstances, 1)
	cfg.IETFHeaders = a.IETFHeaders
	switch a.RateLimitMode {
	case "", "enforce":
	case "shadow":
		cfg.ShadowLimits = true
	default:
		return cfg, fmt.Errorf("rate_limit_mode: %q is not enforce or shadow", a.RateLimitMode)
	}
	for name, rl := range a.RateLimits {
		if rl.Requests <= 0 {
			return cfg, fmt.Errorf("rate_limit %s: requests must be a positive whole number, not %d", name, rl.Requests)
		}
		if rl.Window < 0 {
			return cfg, fmt.Errorf("rate_limit %s: the window must be a positive duration such as 1m", name)
		}
		window := time.Duration(rl.Window)
		if window == 0 {
			window = time.Minute
		}
		limit := ratelimit.Limit{Rate: rl.Requests, Period: window, Burst: rl.Requests}
		if name == "unauthenticated" {
			cfg.Unauthenticated = limit
			continue
		}
		t, err := apikey.ParseType(name)
		if err != nil {
			return cfg, fmt.Errorf("rate_limit: unknown bucket %q (want client, live, test, admin or unauthenticated)", name)
		}
		cfg.Limits[t] = limit
	}
	return cfg, nil
}

// Start opens storage (once per storage setting, across reloads) and applies
// this config's limits to the shared guard.
func (a *App) Start() error {
	if a.Storage == "" {
		a.logger.Info("using the embedded store (no storage configured)", zap.String("storage", a.storeURL))
	}
	r, err := a.core.open()
	if err != nil {
		return err
	}
	r.Guard.SetConfig(a.guardConfig)
	// Unset means the default again: a reload that drops key_cache_ttl
	// must not leave the cache on the previous config's value.
	ttl := time.Duration(a.KeyCacheTTL)
	if ttl <= 0 {
		ttl = feedcache.DefaultTTL
	}
	r.Keys.SetTTL(ttl)
	r.Identities.SetTTL(ttl)
	r.Admin.Audit.Retention = time.Duration(a.AuditRetention) // 0: the default
	r.Admin.Audit.AllowInsecureWebhooks = a.WebhookAllowInsecure
	if a.WebhookAllowInsecure {
		a.logger.Warn("flagbridge: webhook_allow_insecure is set, so webhooks may target http URLs and private or loopback addresses; use it for development and tests only")
	}
	setRunning(a)
	return nil
}

// Stop does nothing: the shared state is released by Cleanup, once no
// config uses it.
func (a *App) Stop() error {
	clearRunning(a)
	return nil
}

// Cleanup releases this config's hold on the shared state.
func (a *App) Cleanup() error {
	if a.core == nil {
		return nil
	}
	_, err := cores.Delete(a.poolKey)
	return err
}

// ready returns the opened shared state, opening it if a request arrives
// before Start (apps start in no fixed order).
func (a *App) ready() (*openCore, error) {
	return a.core.open()
}

// appHandle is what both HTTP handlers hold: the app, found at provision
// time, and a logger.
type appHandle struct {
	app    *App
	logger *zap.Logger
}

func (h *appHandle) provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := ctx.App("flagbridge")
	if err != nil {
		return err
	}
	h.app = app.(*App)
	return nil
}

// state returns the app's opened state, or answers 503 (and returns false)
// when storage cannot be opened.
func (h *appHandle) state(w http.ResponseWriter) (*openCore, bool) {
	c, err := h.app.ready()
	if err != nil {
		h.logger.Error("storage unavailable", zap.Error(err))
		apierror.Write(w, apierror.StorageDown)
		return nil, false
	}
	return c, true
}

// The app whose admin API route answers bootstrap requests: the most
// recently started one.
var (
	runningMu  sync.Mutex
	runningApp *App
)

func setRunning(a *App) {
	runningMu.Lock()
	runningApp = a
	runningMu.Unlock()
}

func clearRunning(a *App) {
	runningMu.Lock()
	if runningApp == a {
		runningApp = nil
	}
	runningMu.Unlock()
}

func currentApp() *App {
	runningMu.Lock()
	defer runningMu.Unlock()
	return runningApp
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

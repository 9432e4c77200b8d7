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
	// (default 500ms).
	StorageTimeout caddy.Duration `json:"storage_timeout,omitempty"`
	// KeyPrefix namespaces FlagBridge's Redis keys (default "fb").
	KeyPrefix string `json:"key_prefix,omitempty"`
	// OnStorageError is "deny" (the default: JSON 503 when the rate
	// limiter's storage fails) or "allow" (admit and log). A key that
	// cannot be verified is refused either way.
	OnStorageError string `json:"on_storage_error,omitempty"`
	// KeyCacheTTL is how long a key record is trusted without hearing of
	// a change (default 30s). Changes arrive through the change feed at
	// once; this is only the safety net.
	KeyCacheTTL caddy.Duration `json:"key_cache_ttl,omitempty"`
	// RateLimits overrides the default limits. Keys: live, test, admin and
	// unauthenticated (per client IP, for requests failing authentication).
	RateLimits map[string]RateLimit `json:"rate_limits,omitempty"`

	guardConfig edge.Config
	poolKey     string
	storeURL    string
	storeOpts   store.Options
	core        *core
	logger      *zap.Logger
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

// cores holds the state that outlives config reloads, by storage settings.
var cores = caddy.NewUsagePool()

// Provision sets defaults and takes (or creates) the shared state. It opens
// nothing: storage is opened by Start, so `caddy validate` has no side
// effects.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.storeURL = a.Storage
	if a.storeURL == "" {
		a.storeURL = "file://" + filepath.Join(caddy.AppDataDir(), "flagbridge")
	}
	a.storeOpts = store.Options{Timeout: time.Duration(a.StorageTimeout), KeyPrefix: a.KeyPrefix}

	cfg := edge.DefaultConfig()
	if a.StorageTimeout > 0 {
		cfg.Timeout = time.Duration(a.StorageTimeout)
	}
	switch a.OnStorageError {
	case "", "deny":
	case "allow":
		cfg.FailOpen = true
	default:
		return fmt.Errorf("on_storage_error: %q is not deny or allow", a.OnStorageError)
	}
	for name, rl := range a.RateLimits {
		if rl.Requests <= 0 {
			return fmt.Errorf("rate_limits: %s: requests must be positive", name)
		}
		window := time.Duration(rl.Window)
		if window <= 0 {
			window = time.Minute
		}
		limit := ratelimit.Limit{Rate: rl.Requests, Period: window, Burst: rl.Requests}
		if name == "unauthenticated" {
			cfg.Unauthenticated = limit
			continue
		}
		t, err := apikey.ParseType(name)
		if err != nil {
			return fmt.Errorf("rate_limits: %v (or unauthenticated)", err)
		}
		cfg.Limits[t] = limit
	}
	a.guardConfig = cfg

	a.poolKey = fmt.Sprintf("%s|%s|%s", a.storeURL, a.storeOpts.Timeout, a.storeOpts.KeyPrefix)
	c, _, err := cores.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		return newCore(a.storeURL, a.storeOpts, a.logger), nil
	})
	if err != nil {
		return err
	}
	a.core = c.(*core)
	return nil
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
	r.guard.SetConfig(a.guardConfig)
	r.keys.SetTTL(time.Duration(a.KeyCacheTTL))
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
	_ caddy.CleanerUpper = (*App)(nil)
)

package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/instance"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// usageFlushInterval is how often last-used times go to storage; it is the
// precision of last_used_at.
const usageFlushInterval = time.Minute

// core is the state shared by every config that names the same storage. It
// is opened lazily, once, and closed by the usage pool when the last config
// using it is cleaned up.
type core struct {
	url  string
	opts store.Options
	// guardConfig is the configuration of the app that created the core,
	// which the guard has from the start: a request may open the core
	// before any app's Start applies its own.
	guardConfig edge.Config
	log         *zap.Logger

	mu     sync.Mutex
	opened *openCore
	// ready is opened, readable without the lock: every request asks.
	ready atomic.Pointer[openCore]
	// closed is set by Destruct: a request still in flight on an old
	// config must not open the store again.
	closed bool
}

// openCore is a core whose storage is open.
type openCore struct {
	*instance.Instance
	store   store.Store
	limiter ratelimit.Limiter

	unsubscribe func()
	// resync asks resyncLoop to purge the caches (capacity 1: requests
	// made while one is pending are the same request).
	resync chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup
}

// resyncRetry is how often resyncLoop asks storage whether it answers.
const resyncRetry = 20 * time.Millisecond

func newCore(url string, opts store.Options, guardConfig edge.Config, log *zap.Logger) *core {
	return &core{url: url, opts: opts, guardConfig: guardConfig, log: log}
}

// open opens storage and starts the background work, the first time; later
// calls return the same state. A failed open is retried on the next call.
func (c *core) open() (*openCore, error) {
	if o := c.ready.Load(); o != nil {
		return o, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opened != nil {
		return c.opened, nil
	}
	if c.closed {
		return nil, errors.New("flagbridge is shutting down")
	}
	st, err := store.Open(c.url, c.opts)
	if err != nil {
		return nil, fmt.Errorf("opening storage %s: %w", store.Redact(c.url), err)
	}
	var limiter ratelimit.Limiter
	if rs, ok := st.(*store.RedisStore); ok {
		// Concurrent checks of a key share one round trip, checks of
		// different keys share pipelines, and an empty bucket is refused
		// locally until it can admit again: exact, and far cheaper than one
		// script call per request.
		// Its round trips are bounded by the storage timeout, the
		// guard's deadline for each check (see App.Provision).
		limiter = ratelimit.NewBatchingRedis(rs.Client(), rs.Prefix(), ratelimit.BatchingOptions{Timeout: c.timeout()})
	} else {
		limiter = ratelimit.NewMemory()
	}
	o := &openCore{
		Instance: instance.New(st, limiter, c.guardConfig, c.log),
		store:    st,
		limiter:  limiter,
		resync:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	instrument(o)
	o.unsubscribe = st.Subscribe(func(ev store.Event) {
		observeChange(ev)
		if o.Evict(ev) {
			select {
			case o.resync <- struct{}{}:
			default:
			}
		}
	})
	o.done.Add(4)
	go func() {
		// Webhook deliveries, until the core closes.
		defer o.done.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-o.stop; cancel() }()
		o.Webhooks.Run(ctx)
	}()
	go o.background(c.log)
	go o.resyncLoop()
	go func() {
		// The event streams' sweeps; stopping ends every stream.
		defer o.done.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-o.stop; cancel() }()
		o.Streams.Run(ctx)
	}()
	go endStreamsOnExit(o)
	c.opened = o
	c.ready.Store(o)
	c.log.Info("storage opened", zap.String("storage", store.Redact(c.url)))
	return o, nil
}

// endStreamsOnExit ends every event stream once Caddy starts exiting:
// its http app waits for every request to finish before it stops the
// other apps (with the default, eternal, grace period), and a stream
// finishes only when its client leaves. Checked every 100 ms: Caddy has
// no hook for a module to hear that it exits before its servers finish.
func endStreamsOnExit(o *openCore) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
			if caddy.Exiting() {
				o.Streams.CloseAll()
				return
			}
		}
	}
}

// timeout is the storage timeout: the store's, the guard's deadline and
// the limiter's round-trip bound (the app always sets it).
func (c *core) timeout() time.Duration { return c.guardConfig.Timeout }

// background sweeps the caches, flushes last-used times and deletes expired
// testing sessions and audit entries past their retention until stop.
func (o *openCore) background(log *zap.Logger) {
	defer o.done.Done()
	sweep := time.NewTicker(10 * time.Second)
	flush := time.NewTicker(usageFlushInterval)
	defer sweep.Stop()
	defer flush.Stop()
	lastFlush := time.Now()
	flushUsage := func() {
		since := lastFlush
		lastFlush = time.Now()
		used := o.Keys.UsedSince(since)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := o.Admin.Keys.RecordUsage(ctx, used); err != nil {
			log.Warn("could not record key usage", zap.Int("keys", len(used)), zap.Error(err))
		}
	}
	for {
		select {
		case <-o.stop:
			flushUsage()
			return
		case now := <-sweep.C:
			o.Keys.Sweep(now)
			o.Identities.Sweep(now)
			// The in-process limiter also sweeps as it is used; this
			// frees idle buckets once traffic stops.
			if m, ok := o.limiter.(*ratelimit.MemoryLimiter); ok {
				m.Sweep()
			}
			// And the guard's local buckets (on_storage_error local),
			// which nothing else frees after an outage.
			o.Guard.Sweep()
		case <-flush.C:
			flushUsage()
			o.Registry.Sweep()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := o.Admin.Flags.SweepSessions(ctx); err != nil {
				log.Warn("could not delete expired testing sessions", zap.Error(err))
			}
			if err := o.Admin.Identity.SweepLoginSessions(ctx); err != nil {
				log.Warn("could not delete expired login sessions", zap.Error(err))
			}
			if _, err := o.Admin.SweepAudit(ctx); err != nil {
				log.Warn("could not delete audit log entries past their retention", zap.Error(err))
			}
			cancel()
		}
	}
}

// resyncLoop purges the key cache and the flag sets when the change feed
// may have missed events (it reconnected, or a subscriber fell behind),
// but only once storage answers: after a Redis outage the feed's
// connection often comes back before the connection pool of lookups does
// (go-redis probes a pool that failed to dial once a second), and
// purging then would turn every cached key, which served through the
// outage, into a lookup that fails: a 503 under every policy, for up to a
// second after Redis is back. Until storage answers, the entries serve as
// they did during the outage, and they still expire with their TTL.
func (o *openCore) resyncLoop() {
	defer o.done.Done()
	for {
		select {
		case <-o.stop:
			return
		case <-o.resync:
		}
		for {
			if err := o.store.Ping(context.Background()); err == nil {
				break
			}
			select {
			case <-o.stop:
				return
			case <-time.After(resyncRetry):
			}
		}
		o.Purge()
	}
}

// Destruct closes storage when no config uses this core any more.
func (c *core) Destruct() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	o := c.opened
	if o == nil {
		return nil
	}
	c.opened = nil
	c.ready.Store(nil)
	close(o.stop)
	o.done.Wait()
	o.unsubscribe()
	if closer, ok := o.limiter.(interface{ Close() error }); ok {
		_ = closer.Close()
	}
	return o.store.Close()
}

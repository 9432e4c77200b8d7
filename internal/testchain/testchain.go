// Package testchain is FlagBridge's request path without Caddy, for tests:
// the edge guard in front of the router, over a real store, with the change
// feed keeping the caches current, built by internal/instance as caddymodule
// builds it and served as flagbridge_auth then flagbridge_api serve it.
// Tests of the REST API, the dashboard, GraphQL and the authorization matrix
// send their requests through it, so that they exercise the route table, the
// guard and the router that ship, not a stand-in.
package testchain

import (
	"context"
	"net"
	"net/http"
	"sync"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/instance"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// Chain is one instance's request path.
type Chain struct {
	*instance.Instance
	// Policy is the guard's: the zero value, as flagbridge_auth without
	// options, unless a test changes it.
	Policy edge.Policy

	unsubscribe func()
}

// Options shape a chain.
type Options struct {
	// Config is the guard's (default edge.DefaultConfig()).
	Config *edge.Config
	// Limiter is the shared rate limiter (default: in process).
	Limiter ratelimit.Limiter
	Log     *zap.Logger
	// AllowInsecureWebhooks admits webhooks on loopback http receivers
	// (webhook_allow_insecure).
	AllowInsecureWebhooks bool
}

// New returns the request path over st. Close stops its change-feed
// subscription; the store stays the caller's.
func New(st store.Store, opts Options) *Chain {
	cfg := edge.DefaultConfig()
	if opts.Config != nil {
		cfg = *opts.Config
	}
	if opts.Limiter == nil {
		opts.Limiter = ratelimit.NewMemory()
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	c := &Chain{Instance: instance.New(st, opts.Limiter, cfg, opts.Log)}
	unsubscribe := st.Subscribe(func(ev store.Event) {
		if c.Evict(ev) {
			c.Purge()
		}
	})
	c.Admin.Audit.AllowInsecureWebhooks = opts.AllowInsecureWebhooks
	ctx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	done.Go(func() { c.Streams.Run(ctx) })
	done.Go(func() { c.Webhooks.Run(ctx) })
	c.unsubscribe = func() { unsubscribe(); cancel(); done.Wait() }
	return c
}

// Close stops the change-feed subscription and ends the event streams.
func (c *Chain) Close() { c.unsubscribe() }

// ServeHTTP serves one request as Caddy would with flagbridge_auth and
// flagbridge_api: HTTPS if the request has TLS state (httptest.NewRequest
// gives it to https:// URLs), the client address from RemoteAddr.
func (c *Chain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := edge.Request{HTTPS: r.TLS != nil, ClientIP: r.RemoteAddr}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		in.ClientIP = host
	}
	d := c.Guard.Check(r, in, c.Policy)
	adm, ok := d.Apply(w, r, c.Policy)
	if !ok {
		return
	}
	c.Router.Serve(adm.Writer(), r, adm)
}

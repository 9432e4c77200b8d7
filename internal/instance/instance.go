// Package instance wires one FlagBridge instance together over a store:
// the admin services, the key cache, the compiled flag sets, the edge
// guard and the router, and which change-feed event evicts what. The
// Caddy app (caddymodule) and the tests' request path (internal/testchain)
// both build theirs here, so that what tests run is what ships.
package instance

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/router"
	"github.com/flagbridge/flagbridge/store"
	"github.com/flagbridge/flagbridge/streams"
)

// Instance is one instance's services and request path.
type Instance struct {
	Admin *admin.Service
	Keys  *edge.KeyCache
	// Identities holds identities' shared limits for the guard.
	Identities *edge.IdentityCache
	Registry   *evaluation.Registry
	Guard      *edge.Guard
	Router     *router.Router
	// Streams are the instance's open event streams; Run their sweeps
	// (RunStreams) for as long as the instance serves.
	Streams *streams.Hub
	// Tokens mint and verify event streams' tokens.
	Tokens *streams.Tokens
	// Webhooks sends this instance's share of the webhook deliveries; Run
	// it for as long as the instance serves.
	Webhooks *audit.Dispatcher
}

// New builds an instance over st, limiting with limiter. The guard logs
// under log's "edge" name, the router under log itself.
func New(st store.Store, limiter ratelimit.Limiter, cfg edge.Config, log *zap.Logger) *Instance {
	svc := admin.New(st)
	kc := edge.NewKeyCache(svc.Keys, edge.KeyCacheOptions{})
	reg := evaluation.NewRegistry(svc.Flags, 0)
	guard := edge.NewGuard(cfg, kc, svc.Identity, limiter, log.Named("edge"))
	ids := edge.NewIdentityCache(identitySource{svc.Identities}, 0)
	guard.SetIdentities(ids)
	tokens := streams.NewTokens(st)
	guard.SetStreamTokens(tokens)
	hub := streams.NewHub(streams.HubConfig{
		Version: func(ctx context.Context, ref string) (int64, error) {
			r, err := flags.ParseRef(ref)
			if err != nil {
				return 0, err
			}
			c, err := reg.Get(ctx, r)
			if err != nil {
				return 0, err
			}
			return c.Version, nil
		},
		Revision: func(ctx context.Context, session string) (int64, bool, error) {
			org, id, _ := strings.Cut(session, "/")
			return svc.Flags.SessionRevision(ctx, org, id)
		},
		// Read afresh: the feed event that asks has just dropped the
		// cached record.
		Validate: func(ctx context.Context, d apikey.Digest) (time.Time, bool, error) {
			e, err := kc.Load(ctx, d, time.Now())
			if err != nil {
				return time.Time{}, false, err
			}
			return e.ValidUntil(), e.Key != nil && e.Admits(time.Now()), nil
		},
	})
	return &Instance{
		Admin: svc, Keys: kc, Identities: ids, Registry: reg, Guard: guard, Streams: hub, Tokens: tokens,
		Webhooks: audit.NewDispatcher(svc.Audit, log.Named("webhooks")),
		Router: router.New(router.Config{Admin: svc, Eval: evaluation.New(svc.Flags, reg), Limits: guard, Log: log,
			Tokens: tokens, Hub: hub}),
	}
}

// Evict drops what a change-feed event made stale: the key record a
// revocation, rotation or deletion names, or the flag set a write names.
// It reports whether the event is a resync (the feed may have missed
// events), which asks for Purge; when to purge is the caller's.
func (in *Instance) Evict(ev store.Event) (resync bool) {
	switch {
	case ev.Resync:
		return true
	case ev.Topic == keys.Topic:
		in.Keys.Invalidate(string(ev.Payload))
		in.Streams.KeyChanged(string(ev.Payload))
	case ev.Topic == flags.Topic:
		in.Registry.Invalidate(string(ev.Payload))
		in.Streams.FlagsChanged(string(ev.Payload))
	case ev.Topic == flags.SessionTopic:
		in.Streams.SessionChanged(string(ev.Payload))
	case ev.Topic == audit.WebhookTopic:
		in.Webhooks.Wake()
	case ev.Topic == customers.Topic:
		// The payload is customers.Ref's "<org>/<project>/<slug>", the
		// edge's IdentityTag.
		in.Identities.Invalidate(string(ev.Payload))
	}
	return false
}

// Purge drops every cached key record, identity and flag set.
func (in *Instance) Purge() {
	in.Keys.Purge()
	in.Identities.Purge()
	in.Registry.Purge()
	in.Streams.Resync()
}

// identitySource is the customers service as the edge reads it.
type identitySource struct{ s *customers.Service }

func (i identitySource) LookupIdentityLimits(ctx context.Context, org, project, identity string) (*edge.IdentityLimits, error) {
	id, err := i.s.LookupIdentity(ctx, org, project, identity)
	if err != nil || id == nil {
		return nil, err
	}
	return &edge.IdentityLimits{Limits: id.Limits, Quota: id.Quota}, nil
}

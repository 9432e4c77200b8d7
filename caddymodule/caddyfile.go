package caddymodule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("flagbridge", parseGlobalOption)
}

// UnmarshalCaddyfile sets up the app from the Caddyfile global option:
//
//	{
//		flagbridge {
//			storage <url>
//			storage_timeout <duration>
//			key_prefix <prefix>
//			on_storage_error deny|allow|local [<instances>]
//			key_cache_ttl <duration>
//			audit_retention <duration>
//			webhook_allow_insecure
//			rate_limit client|live|test|admin|unauthenticated <requests>[/<window>]
//			ietf_headers
//			rate_limit_mode enforce|shadow
//		}
//	}
//
// storage is file://<dir> (default: the flagbridge folder of Caddy's data
// directory) or a redis:// or rediss:// URL: a single server, Sentinel
// (?master_name=<name>&addr=<sentinel2>...) or Cluster
// (?cluster=true&addr=<node2>...). rate_limit sets one bucket's limit, with
// bursts of up to <requests>; the window defaults to 1m, so
// "rate_limit live 10000" and "rate_limit live 10000/1m" are the same.
//
// on_storage_error says what happens when the rate limiter's storage
// fails: deny (503), allow (admit and log) or local, under which each
// instance enforces <instances>-th of every limit in process until storage
// answers again. <instances> (only with local, default 1) is the number of
// instances sharing the limits; no instance can know it on its own.
//
// The parser checks the syntax only; the values (positive durations and
// counts, known policies and buckets) are checked by [App.Validate], once,
// whether the configuration came from a Caddyfile or JSON. The exception is
// an explicit zero duration or instance count: the JSON form leaves zero
// out (it means the default), so Validate could not see it, and the parser
// refuses it.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "on_storage_error":
			args := d.RemainingArgs()
			if len(args) == 0 || len(args) > 2 {
				return d.Errf("on_storage_error takes deny, allow or local [<instances>]: wrong argument count")
			}
			a.OnStorageError = args[0]
			a.LocalInstances = 0
			if len(args) == 2 {
				n, err := strconv.Atoi(args[1])
				if err != nil {
					return d.Errf("on_storage_error %s: %q is not a number of instances", args[0], args[1])
				}
				if n == 0 {
					// The JSON form leaves zero out (it means the default),
					// so App.Validate would never see it.
					return d.Errf("on_storage_error %s: local_instances: 0 is not a positive number of instances", args[0])
				}
				a.LocalInstances = n
			}
		case "ietf_headers":
			// The IETF draft's RateLimit-Policy and RateLimit fields, next
			// to the X-RateLimit-* headers.
			if d.NextArg() {
				return d.ArgErr()
			}
			a.IETFHeaders = true
		case "webhook_allow_insecure":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.WebhookAllowInsecure = true
		case "rate_limit_mode":
			// Checked by Validate, as the JSON form's is.
			if !d.NextArg() {
				return d.ArgErr()
			}
			a.RateLimitMode = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "storage", "key_prefix":
			if !d.NextArg() {
				return d.ArgErr()
			}
			v := d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			switch opt {
			case "storage":
				a.Storage = v
			case "key_prefix":
				a.KeyPrefix = v
			}
		case "storage_timeout", "key_cache_ttl", "audit_retention":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("%s: %q is not a duration", opt, d.Val())
			}
			if dur == 0 {
				// Zero would become the default: the JSON form leaves it
				// out, so App.Validate would never see it.
				return d.Errf("%s: %s is not a positive duration", opt, d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			switch opt {
			case "storage_timeout":
				a.StorageTimeout = caddy.Duration(dur)
			case "key_cache_ttl":
				a.KeyCacheTTL = caddy.Duration(dur)
			default:
				a.AuditRetention = caddy.Duration(dur)
			}
		case "rate_limit":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("rate_limit takes a bucket and a limit, e.g. rate_limit live 10000/1m")
			}
			rl, err := parseRateLimit(args[1])
			if err != nil {
				return d.Errf("rate_limit %s: %v", args[0], err)
			}
			if a.RateLimits == nil {
				a.RateLimits = make(map[string]RateLimit)
			}
			a.RateLimits[args[0]] = rl
		default:
			return d.Errf("unrecognized flagbridge option %q", opt)
		}
	}
	return nil
}

// parseRateLimit reads "<requests>[/<window>]"; the window defaults to a
// minute. It checks the syntax only: App.Validate checks the values.
func parseRateLimit(s string) (RateLimit, error) {
	n, window, hasWindow := strings.Cut(s, "/")
	requests, err := strconv.Atoi(n)
	if err != nil {
		return RateLimit{}, fmt.Errorf("%q: requests must be a whole number", s)
	}
	rl := RateLimit{Requests: requests, Window: caddy.Duration(time.Minute)}
	if hasWindow {
		// Allow "/min" style shorthands as well as durations.
		switch window {
		case "s", "sec", "second":
			window = "1s"
		case "m", "min", "minute":
			window = "1m"
		case "h", "hour":
			window = "1h"
		}
		dur, err := caddy.ParseDuration(window)
		if err != nil {
			return RateLimit{}, fmt.Errorf("%q: window must be a duration such as 1m", s)
		}
		if dur == 0 {
			// Zero would become the default minute: the JSON form leaves
			// it out, so App.Validate would never see it.
			return RateLimit{}, fmt.Errorf("%q: the window must be a positive duration such as 1m", s)
		}
		rl.Window = caddy.Duration(dur)
	}
	return rl, nil
}

func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  "flagbridge",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*App)(nil)

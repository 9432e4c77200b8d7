// Package caddymodule plugs FlagBridge into Caddy. It is the only package
// that imports Caddy: everything it wires together (the edge guard, the
// admin services, the REST API, storage and rate limiting) is plain Go.
//
// It registers:
//
//   - the app "flagbridge" ([App]), configured by the Caddyfile global
//     option flagbridge { ... }; it owns storage, the rate limiter and the
//     key cache, which survive config reloads;
//   - the handler http.handlers.flagbridge_auth ([Auth]), the edge guard,
//     usable in front of any handler, reverse_proxy included;
//   - the handler http.handlers.flagbridge_api ([API]), the in-process
//     REST backend;
//   - the admin API route /flagbridge/bootstrap ([AdminAPI]) on Caddy's
//     local admin endpoint;
//   - the CLI command "caddy flagbridge bootstrap".
//
// A complete Caddyfile:
//
//	{
//		flagbridge {
//			storage redis://redis.internal:6379
//			rate_limit live 10000/1m
//		}
//	}
//
//	api.example.com {
//		route /v1/* {
//			flagbridge_auth
//			flagbridge_api
//		}
//	}
package caddymodule

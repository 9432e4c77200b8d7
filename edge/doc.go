// Package edge is FlagBridge's edge guard, in plain Go: it decides, for each
// request, whether it arrived over HTTPS, who makes it, whether they may
// take the route, and whether their rate limit admits it, and it writes the
// rate-limit headers and error bodies that follow. The Caddy module
// flagbridge_auth is a thin adapter around [Guard].
//
// The credential is the one the route table says the route takes: an API
// key (Authorization: Bearer, or X-API-Key), the dashboard's session
// cookie, or none. Whatever it is, it becomes an authz.Principal, and the
// route's needs are decided by authz.Permits, the one decision; its rate
// limit is spent through the one limiter path ([Guard.Spend] is the same
// path for limits that are not the guard's own).
//
// The order of the checks is deliberate:
//
//  1. HTTPS, before anything else, so that a key sent in clear is never
//     even looked up;
//  2. for a change to the dashboard, that it comes from the dashboard's own
//     origin, before any lookup;
//  3. the credential's shape (and a key's checksum), which costs no storage
//     access and refuses garbage and forgeries;
//  4. the key record, from the in-process [KeyCache] (storage only on a
//     miss), or the login session;
//  5. the rate limit (the one storage round trip of the hot path), so that
//     every response to an authenticated request, 403s included, reports
//     the caller's bucket;
//  6. a dashboard change's CSRF token, then what the route needs.
//
// Requests that fail authentication spend from a per-client-address bucket
// instead; an address that exhausts it is refused locally, without any
// lookup, until its Retry-After has passed.
package edge

// Package edge is FlagBridge's edge guard, in plain Go: it decides, for each
// request, whether it arrived over HTTPS, which key it carries, whether that
// key may call the endpoint, and whether its rate limit admits it, and it
// writes the rate-limit headers and error bodies that follow. The Caddy
// module flagbridge_auth is a thin adapter around [Guard].
//
// The order of the checks is deliberate:
//
//  1. HTTPS, before anything else, so that a key sent in clear is never
//     even looked up;
//  2. the Authorization header's shape and the key's checksum, which costs
//     no storage access and refuses garbage and forgeries;
//  3. the key record, from the in-process [KeyCache] (storage only on a
//     miss);
//  4. the key's rate limit (the one storage round trip of the hot path),
//     so that every response to an authenticated request, 403s included,
//     reports the key's bucket;
//  5. the scope table and the key's permissions.
//
// Requests that fail authentication spend from a per-client-IP bucket
// instead; an IP that exhausts it is refused locally, without any lookup,
// until its Retry-After has passed.
package edge

// Package apikey defines FlagBridge's API key format and the record stored
// for each key.
//
// A key looks like
//
//	fb_live_<30 random base62 characters><6 base62 checksum characters>
//
// with the prefix naming the key type (fb_live_, fb_test_, fb_admin_). The
// checksum is the CRC-32 of everything before it, so a mistyped, truncated or
// forged key is refused by [Parse] with no storage lookup at all, the same
// trick GitHub's tokens use. The random part carries about 178 bits of
// entropy, so keys cannot be guessed; only their SHA-256 digest ([Digest]) is
// ever stored.
//
// This package is the single place that knows the key format, the key types
// and their capabilities, and the permissions a key may carry.
package apikey

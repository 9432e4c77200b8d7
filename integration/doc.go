// Package integration holds FlagBridge's end-to-end tests: they build the
// custom Caddy binary, run it (and redis-server) as real processes on free
// loopback ports, and talk to it over real HTTPS. The shared process
// helpers live in internal/testenv.
package integration

// Package testenv starts the real processes FlagBridge's tests run against
// (redis-server, the custom Caddy build) on free loopback ports, and cleans
// them up when the test ends. It is the one helper every integration test
// shares.
package testenv

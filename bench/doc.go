// Package bench holds FlagBridge's load benchmark. It is a test behind the
// "bench" build tag, so that `go test ./...` never runs it:
//
//	go test -tags bench -run TestLoad -v -timeout 30m ./bench
//
// It builds the custom Caddy, starts redis-server and several instances of
// the build (one serving a static respond as the baseline), drives each
// scenario over HTTPS with keep-alive connections from a Go load generator,
// and prints one table: requests/s, p50/p99/p99.9 latency, errors, the
// ratio to the baseline's throughput in the same run, and the Redis
// commands each request cost (counted by Redis itself, INFO commandstats).
package bench

// Command caddy is Caddy with FlagBridge built in: the same binary xcaddy
// would produce with --with github.com/flagbridge/flagbridge, buildable with
// a plain "go build ./cmd/caddy".
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules, as in the official distribution.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// FlagBridge's app, handlers, admin route and CLI command.
	_ "github.com/flagbridge/flagbridge/caddymodule"
)

func main() {
	caddycmd.Main()
}

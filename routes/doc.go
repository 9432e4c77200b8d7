// Package routes is FlagBridge's route table: every endpoint, declared once
// with its method, its path pattern, the credential it takes, what it needs
// of its caller, the shape of its errors and how long its storage work may
// take. The edge asks the table what a request needs before it lets it
// through; the router serves the same table; the authorization test is
// generated from it. No other code holds an endpoint's path.
//
// The REST routes under /v1 are also served to the dashboard under
// /dashboard/api, for a logged-in member instead of an API key; a request
// whose path no route has gets its family's safe default (see [Families]).
package routes

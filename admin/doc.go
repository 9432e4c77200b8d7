// Package admin is FlagBridge's administration backend in plain Go:
// organizations, projects, environments and API keys, as services over a
// [store.Store]. The REST API, and later GraphQL and the dashboard, are thin
// layers over these services, so every rule (validation, who may do what,
// what is written together) lives here once.
//
// Every operation takes the calling key and checks, here, that it may act:
// admin type, WRITE permission for changes, and the project it is scoped to.
// Errors meant for the caller are *apierror.Error values; any other error is
// a storage failure.
//
// # Storage layout
//
// Each line is a collection of JSON documents (see package store):
//
//	orgs                        id -> Organization
//	projects/<org>              slug -> Project
//	environments/<org>/<slug>   environment slug -> Environment
//	keys/<org>                  key id -> apikey.Record
//	key-digests                 hex SHA-256 of a secret -> {org_id, key_id}
//	key-use                     key id -> last use (RFC 3339)
//
// A change to a key publishes its id on topic [TopicKeys], which every
// instance's key cache listens to.
package admin

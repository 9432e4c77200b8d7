// Package api is FlagBridge's REST API and OpenFeature OFREP endpoints over
// net/http: one method per route of the route table, which the router
// binds. A handler decodes its request, calls the services and encodes
// their answer; it holds no business rules, and decides nothing about who
// may call it: the edge and the services ask authz.
package api

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
	"github.com/flagbridge/flagbridge/streams"
)

// MaxBodyBytes bounds request bodies of the admin endpoints.
const MaxBodyBytes = 64 << 10

// Handler holds the REST and OFREP route handlers.
type Handler struct {
	admin *admin.Service
	eval  *evaluation.Service
	usage edge.UsageReader
	log   *zap.Logger
	// tokens and hub serve OFREP's event streams; without them bulk
	// answers name none.
	tokens *streams.Tokens
	hub    *streams.Hub
}

// SetStreams turns on event streams: bulk answers name a stream URL with
// a token from tokens, and streams register with hub.
func (h *Handler) SetStreams(tokens *streams.Tokens, hub *streams.Hub) {
	h.tokens, h.hub = tokens, hub
}

// New returns the handlers over the admin and evaluation services, with
// usage reporting what keys' buckets hold (nil: usage is not served).
func New(svc *admin.Service, eval *evaluation.Service, usage edge.UsageReader, log *zap.Logger) *Handler {
	if log == nil {
		log = zap.NewNop()
	}
	return &Handler{admin: svc, eval: eval, usage: usage, log: log}
}

// decodeJSON reads a request's JSON object body, of at most MaxBodyBytes.
func decodeJSON(r *http.Request, dst any, optional bool) error {
	return jsonbody.Decode(r, dst, MaxBodyBytes, optional)
}

package graphqlapi

import (
	"context"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apikey"
)

// Resolver is the root of the resolvers: the admin services, and nothing
// else. The calling key travels in the request's context.
type Resolver struct {
	Admin *admin.Service
}

type callerKey struct{}

// withCaller returns ctx carrying the key the edge authenticated.
func withCaller(ctx context.Context, caller *apikey.Record) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// caller returns the calling key (nil if none, which every admin service
// refuses).
func caller(ctx context.Context) *apikey.Record {
	c, _ := ctx.Value(callerKey{}).(*apikey.Record)
	return c
}

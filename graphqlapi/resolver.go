package graphqlapi

import (
	"context"
	"errors"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
)

// Resolver is the root of the resolvers: the admin services, and what
// keys' rate-limit buckets hold (the guard). The calling key travels in
// the request's context.
type Resolver struct {
	Admin *admin.Service
	Usage edge.UsageReader
}

type callerKey struct{}

type meterKey struct{}

// withCaller returns ctx carrying the principal the edge authenticated, and
// the meter its rate limit is charged through.
func withCaller(ctx context.Context, p *authz.Principal, m Meter) context.Context {
	ctx = context.WithValue(ctx, callerKey{}, p)
	if m != nil {
		ctx = context.WithValue(ctx, meterKey{}, m)
	}
	return ctx
}

// caller returns the calling principal (nil if none, which every admin
// service refuses).
func caller(ctx context.Context) *authz.Principal {
	c, _ := ctx.Value(callerKey{}).(*authz.Principal)
	return c
}

// meter returns the request's meter, or nil.
func meter(ctx context.Context) Meter {
	m, _ := ctx.Value(meterKey{}).(Meter)
	return m
}

// keyByIDError is the error of a mutation naming a key by id. Key ids are
// global, so an id may name a key of another organization, which the admin
// services report as missing (NOT_FOUND, so that the two cannot be told
// apart). GraphQL answers both as FORBIDDEN, like a key of the caller's own
// organization outside its scope: whatever the id names, the caller may not
// touch it, and learns nothing about whether it exists.
func keyByIDError(err error) error {
	var ae *apierror.Error
	if errors.As(err, &ae) && ae.Code == apierror.CodeNotFound {
		return apierror.Forbidden("This key cannot manage that API key (%s)", ae.Message)
	}
	return err
}

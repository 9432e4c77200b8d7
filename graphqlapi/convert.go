package graphqlapi

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// The conversions between the admin services' types and the schema's.

func keyType(t apikey.Type) KeyType { return KeyType(strings.ToUpper(t.String())) }

func permissions(ps apikey.Permissions) []Permission {
	out := make([]Permission, 0, 2)
	for _, p := range ps.List() {
		out = append(out, Permission(p))
	}
	return out
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func member(m *identity.Member) *Member {
	return &Member{ID: m.ID, Email: m.Email, Name: m.Name, Role: Role(m.Role)}
}

// callingKey shows the key a request came with; GraphQL takes only keys, but
// a principal without a record is shown from what the principal holds.
func callingKey(p *authz.Principal) *CallingKey {
	k := p.Key
	if k == nil {
		k = &apikey.Record{ID: p.ID, Type: p.Type, Permissions: p.Permissions, OrgID: p.Org(), ExpiresAt: p.ExpiresAt}
	}
	return &CallingKey{
		ID: k.ID, Name: k.Name, Type: keyType(k.Type), Kind: KeyKind(k.Kind()),
		Permissions: permissions(k.Permissions), Project: optional(k.Project),
		Environment: optional(k.Environment), Resources: k.Resources, ExpiresAt: k.ExpiresAt,
	}
}

func apiKey(k *keys.Key, owner *Member, now time.Time) *APIKey {
	return &APIKey{
		ID: k.ID, Name: k.Name, Type: keyType(k.Type), Kind: KeyKind(k.Kind()),
		Permissions: permissions(k.Permissions), Project: optional(k.Project),
		Environment: optional(k.Environment), Resources: k.Resources, Hint: k.Hint,
		Status: KeyStatus(strings.ToUpper(k.Status(now))), Owner: owner,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt,
		RotatedAt: k.RotatedAt, LastUsedAt: k.LastUsedAt,
		Limits: rateLimits(k.Limits), Quota: quota(k.Quota), Identity: optional(k.Identity),
		AllowedOrigins: k.AllowedOrigins,
	}
}

func createdKey(k *keys.Created, now time.Time) *CreatedAPIKey {
	out := &CreatedAPIKey{
		ID: k.ID, Key: k.Secret, Name: k.Name, Type: keyType(k.Type), Kind: KeyKind(k.Kind()),
		Permissions: permissions(k.Permissions), Project: optional(k.Project),
		Environment: optional(k.Environment), Resources: k.Resources, Hint: k.Hint,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
		Limits: rateLimits(k.Limits), Quota: quota(k.Quota), Identity: optional(k.Identity),
		AllowedOrigins: k.AllowedOrigins,
	}
	if k.PreviousValidUntil != nil && now.Before(*k.PreviousValidUntil) {
		out.PreviousKeyValidUntil = k.PreviousValidUntil
	}
	return out
}

func rateLimits(ls []ratelimit.NamedLimit) []*RateLimit {
	if ls == nil {
		return nil
	}
	out := make([]*RateLimit, len(ls))
	for i, l := range ls {
		out[i] = &RateLimit{Name: l.Name, Requests: l.Requests, Window: l.Window.String(), Shadow: l.Shadow}
	}
	return out
}

func quota(q *ratelimit.Quota) *Quota {
	if q == nil {
		return nil
	}
	return &Quota{Requests: int(q.Requests), Period: QuotaPeriod(strings.ToUpper(string(q.Period)))}
}

// limitsIn keeps nil (not given) apart from an empty list, which the admin
// service refuses by name.
func limitsIn(ls []*RateLimitInput) []keys.LimitInput {
	if ls == nil {
		return nil
	}
	out := make([]keys.LimitInput, len(ls))
	for i, l := range ls {
		out[i] = keys.LimitInput{Name: l.Name, Requests: l.Requests, Window: l.Window}
		if l.Shadow != nil {
			out[i].Shadow = *l.Shadow
		}
	}
	return out
}

func quotaIn(q *QuotaInput) *ratelimit.Quota {
	if q == nil {
		return nil
	}
	return &ratelimit.Quota{Requests: int64(q.Requests), Period: ratelimit.Period(strings.ToLower(string(q.Period)))}
}

// updateIn is updateAPIKey's input as the admin service takes it: gqlgen's
// Omittable says whether a field was given, its nil value that it was null.
func updateIn(in UpdateAPIKeyInput) keys.UpdateInput {
	var out keys.UpdateInput
	if v, ok := in.Name.ValueOK(); ok {
		out.Name = jsonbody.Optional[string]{Set: true, Value: v}
	}
	if v, ok := in.Limits.ValueOK(); ok {
		out.Limits.Set = true
		if v != nil {
			ls := limitsIn(v)
			out.Limits.Value = &ls
		}
	}
	if v, ok := in.Quota.ValueOK(); ok {
		out.Quota = jsonbody.Optional[ratelimit.Quota]{Set: true, Value: quotaIn(v)}
	}
	if v, ok := in.Identity.ValueOK(); ok {
		out.Identity = jsonbody.Optional[string]{Set: true, Value: v}
	}
	if v, ok := in.AllowedOrigins.ValueOK(); ok {
		out.AllowedOrigins.Set = true
		if v != nil {
			out.AllowedOrigins.Value = &v
		}
	}
	return out
}

// usageWanted reports whether the query selects usage of the keys the
// current field returns: it is read from the limiter only then.
func usageWanted(ctx context.Context) bool {
	return slices.Contains(graphql.CollectAllFields(ctx), "usage")
}

// keyUsage is what rec's buckets hold. A limiter that does not answer is
// a storage failure (the error presenter logs it).
func (r *Resolver) keyUsage(ctx context.Context, rec *apikey.Record) (edge.KeyUsage, error) {
	if r.Usage == nil {
		return nil, apierror.Internal
	}
	return r.Usage.KeyUsage(ctx, rec)
}

func bucketUsage(u edge.KeyUsage) []*BucketUsage {
	out := make([]*BucketUsage, len(u))
	for i, b := range u {
		g := &BucketUsage{
			Name: b.Name, Kind: BucketKind(strings.ToUpper(b.Kind)), Requests: int(min(b.Requests, math.MaxInt32)),
			Remaining: int(min(b.Remaining, math.MaxInt32)), ResetAt: b.ResetAt, Shadow: b.Shadow, Near: b.Near,
		}
		if b.Period != "" {
			p := QuotaPeriod(strings.ToUpper(string(b.Period)))
			g.Period = &p
		} else {
			w := b.Window.String()
			g.Window = &w
		}
		out[i] = g
	}
	return out
}

// auditEntry is an audit log entry as GraphQL shows it.
func auditEntry(e *audit.Entry) *AuditEntry {
	out := &AuditEntry{
		ID: e.ID, Time: e.Time, Organization: e.Organization, Project: optional(e.Project), Environment: optional(e.Environment),
		Action: string(e.Action), Target: &AuditTarget{Type: e.Target.Type, ID: e.Target.ID},
		Actor:         &AuditActor{Type: e.Actor.Type, ID: optional(e.Actor.ID), KeyType: optional(e.Actor.KeyType), Member: optional(e.Actor.Member)},
		ClientAddress: optional(e.ClientAddress), RequestID: optional(e.RequestID), Outcome: e.Outcome, Reason: optional(e.Reason),
	}
	if v := e.FlagSet; v != nil {
		out.FlagSet = &AuditVersions{Before: int(v.Before), After: int(v.After)}
		if v.RevertOf != 0 {
			n := int(v.RevertOf)
			out.FlagSet.RevertOf = &n
		}
	}
	return out
}

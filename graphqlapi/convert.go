package graphqlapi

import (
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
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
	}
}

func createdKey(k *keys.Created, now time.Time) *CreatedAPIKey {
	out := &CreatedAPIKey{
		ID: k.ID, Key: k.Secret, Name: k.Name, Type: keyType(k.Type), Kind: KeyKind(k.Kind()),
		Permissions: permissions(k.Permissions), Project: optional(k.Project),
		Environment: optional(k.Environment), Resources: k.Resources, Hint: k.Hint,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
	}
	if k.PreviousValidUntil != nil && now.Before(*k.PreviousValidUntil) {
		out.PreviousKeyValidUntil = k.PreviousValidUntil
	}
	return out
}

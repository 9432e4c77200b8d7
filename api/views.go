package api

import (
	"time"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// keyView is a key as the API shows it: never its secret or digest.
type keyView struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Type        apikey.Type         `json:"type"`
	Project     *string             `json:"project"`
	Environment *string             `json:"environment"`
	Permissions []apikey.Permission `json:"permissions"`
	Hint        string              `json:"hint"`
	Status      string              `json:"status"`
	CreatedAt   time.Time           `json:"created_at"`
	ExpiresAt   *time.Time          `json:"expires_at"`
	RevokedAt   *time.Time          `json:"revoked_at"`
	RotatedAt   *time.Time          `json:"rotated_at"`
	LastUsedAt  *time.Time          `json:"last_used_at"`
	// Key is the full secret, present only in the response that created or
	// rotated it.
	Key string `json:"key,omitempty"`
	// PreviousKeyValidUntil says until when the secret replaced by a
	// rotation keeps working.
	PreviousKeyValidUntil *time.Time `json:"previous_key_valid_until,omitempty"`
	// Limits, Quota and Identity are shown only when set: a key without
	// them has its type's default limit, no quota and no identity.
	Limits   []ratelimit.NamedLimit `json:"limits,omitempty"`
	Quota    *ratelimit.Quota       `json:"quota,omitempty"`
	Identity string                 `json:"identity,omitempty"`
	// AllowedOrigins are a client key's origins.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// Usage is what the key's buckets hold now, when asked for.
	Usage edge.KeyUsage `json:"usage,omitempty"`
}

func viewKey(k *keys.Key, now time.Time) keyView {
	v := keyView{
		ID:          k.ID,
		Name:        k.Name,
		Type:        k.Type,
		Project:     optional(k.Project),
		Environment: optional(k.Environment),
		Permissions: k.Permissions.List(),
		Hint:        k.Hint,
		Status:      k.Status(now),
		CreatedAt:   k.CreatedAt,
		ExpiresAt:   k.ExpiresAt,
		RevokedAt:   k.RevokedAt,
		RotatedAt:   k.RotatedAt,
		LastUsedAt:  k.LastUsedAt,
		Limits:      k.Limits,
		Quota:       k.Quota,
		Identity:    k.Identity,

		AllowedOrigins: k.AllowedOrigins,
	}
	if k.PreviousValidUntil != nil && now.Before(*k.PreviousValidUntil) {
		v.PreviousKeyValidUntil = k.PreviousValidUntil
	}
	return v
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// projectView is a project, with its environments when one is asked for.
type projectView struct {
	tenancy.Project
	Environments []tenancy.Environment `json:"environments,omitempty"`
}

// inviteView is a new invitation: its link is shown this once.
type inviteView struct {
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
	URL       string    `json:"invite_url"`
}

// list wraps collections, leaving room for paging fields later.
type list[T any] struct {
	Data []T `json:"data"`
}

func listOf[T any](xs []T) list[T] {
	if xs == nil {
		xs = []T{}
	}
	return list[T]{Data: xs}
}

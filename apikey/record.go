package apikey

import (
	"time"

	"github.com/flagbridge/flagbridge/ratelimit"
)

// Record is everything FlagBridge keeps about a key except its secret.
// It is the authenticated principal the edge hands to the API.
type Record struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
	// Project is the slug of the project the key belongs to; empty only for
	// an organization-wide admin key.
	Project string `json:"project,omitempty"`
	// Environment is the environment a live or test key evaluates in; an
	// admin key with one manages only that environment of its project, and
	// one without covers every environment.
	Environment string `json:"environment,omitempty"`
	// Resources, if not empty, limits the key to these projects (a Scoped
	// key), within its project or organization.
	Resources []string `json:"resources,omitempty"`
	// OwnerID is the member who owns the key: whoever created it, or the
	// owner of the key that created it.
	OwnerID     string      `json:"owner_id,omitempty"`
	Type        Type        `json:"type"`
	Permissions Permissions `json:"permissions"`
	Name        string      `json:"name"`
	Hint        string      `json:"hint"`
	CreatedAt   time.Time   `json:"created_at"`
	ExpiresAt   *time.Time  `json:"expires_at,omitempty"`
	RevokedAt   *time.Time  `json:"revoked_at,omitempty"`
	RotatedAt   *time.Time  `json:"rotated_at,omitempty"`
	// Digest is the hex SHA-256 of the current secret.
	Digest string `json:"digest"`
	// PreviousDigest is the secret replaced by the last rotation, accepted
	// until PreviousValidUntil so that a rotation needs no downtime.
	PreviousDigest     string     `json:"previous_digest,omitempty"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	// PreviousOwnerID is who owned the key before its last rotation, and so
	// holds PreviousDigest's secret: removing them ends its grace period.
	PreviousOwnerID string `json:"previous_owner_id,omitempty"`
	// Limits, if set, replace the key type's default rate limit: a request
	// is admitted only if every one of them admits it. A rotation keeps
	// them, and the buckets they count in (those are by key id).
	Limits []ratelimit.NamedLimit `json:"limits,omitempty"`
	// Quota, if set, bounds the key's requests per calendar period.
	Quota *ratelimit.Quota `json:"quota,omitempty"`
	// Identity, if set, names the customer the key belongs to (a slug,
	// within its project): every key of one identity shares that
	// identity's limits and quota.
	Identity string `json:"identity,omitempty"`
	// AllowedOrigins are the origins of the pages that may use a client
	// key (see CleanOrigin); required for one, empty for other types.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
}

// OrgWide reports whether the key spans every project of its organization.
func (r *Record) OrgWide() bool { return r.Project == "" }

// Kind names a key the way people describe it: "SCOPED" if it lists
// resources, else "READ_ONLY" without WRITE, else "FULL_ACCESS".
func (r *Record) Kind() string {
	switch {
	case len(r.Resources) > 0:
		return "SCOPED"
	case !r.Permissions.Has(Write):
		return "READ_ONLY"
	}
	return "FULL_ACCESS"
}

// Status names the state of the key at time now: "active", "expired" or
// "revoked".
func (r *Record) Status(now time.Time) string {
	switch {
	case r.RevokedAt != nil:
		return "revoked"
	case r.ExpiresAt != nil && !now.Before(*r.ExpiresAt):
		return "expired"
	}
	return "active"
}

// ValidUntil returns how long a secret with the given digest authenticates
// this key: the zero time for "no limit", ok false if the digest is not (or
// no longer) one of the key's secrets or the key is revoked or expired.
func (r *Record) ValidUntil(digest string, now time.Time) (until time.Time, ok bool) {
	if r.Status(now) != "active" {
		return time.Time{}, false
	}
	if r.ExpiresAt != nil {
		until = *r.ExpiresAt
	}
	switch {
	case digest == r.Digest:
		return until, true
	case digest != "" && digest == r.PreviousDigest && r.PreviousValidUntil != nil && now.Before(*r.PreviousValidUntil):
		if until.IsZero() || r.PreviousValidUntil.Before(until) {
			until = *r.PreviousValidUntil
		}
		return until, true
	}
	return time.Time{}, false
}

// Package keys manages API keys: minting them (the secret is shown once and
// only its digest is kept), listing, changing their name, limits, quota and
// identity, rotating with a grace period, revoking, and finding a key by the
// digest of a secret for the edge.
package keys

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/internal/input"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// CreateInput is the body of POST /v1/projects/{project}/api-keys.
type CreateInput struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Environment is required for live and test keys; for an admin key it
	// narrows the key to that environment of its project.
	Environment string   `json:"environment,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
	ExpiresIn   string   `json:"expires_in,omitempty"`
	// Resources makes a Scoped organization-wide key: only these projects.
	Resources []string `json:"resources,omitempty"`
	// Limits, if given, replace the key type's default rate limit.
	Limits []LimitInput `json:"limits,omitempty"`
	// Quota, if given, bounds the key's requests per day or month.
	Quota *ratelimit.Quota `json:"quota,omitempty"`
	// Identity, if given, names the customer the key belongs to (a slug).
	Identity string `json:"identity,omitempty"`
	// AllowedOrigins are the origins of the pages that may use a client
	// key: required for one, refused for the other types.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
}

// UpdateInput is the body of PATCH /v1/api-keys/{id}: what to change of a
// key. A member left out stays as it is; null clears it (limits fall back to
// the key type's default, the key has no quota, or no identity; a name
// cannot be cleared). At least one is required.
type UpdateInput struct {
	Name     jsonbody.Optional[string]          `json:"name"`
	Limits   jsonbody.Optional[[]LimitInput]    `json:"limits"`
	Quota    jsonbody.Optional[ratelimit.Quota] `json:"quota"`
	Identity jsonbody.Optional[string]          `json:"identity"`
	// AllowedOrigins replaces a client key's origins (never null: a client
	// key always has one).
	AllowedOrigins jsonbody.Optional[[]string] `json:"allowed_origins"`
}

// RotateInput is the (optional) body of POST /v1/api-keys/{id}/rotate.
type RotateInput struct {
	// GracePeriod keeps the old secret working this long ("1h", "2d"),
	// but never past the key's expiry; empty means the old secret stops
	// working at once.
	GracePeriod string `json:"grace_period,omitempty"`
}

// Key is a key record as callers see it, with its last use.
type Key struct {
	*apikey.Record
	LastUsedAt *time.Time
}

// Created is a key with its secret, which is shown this once.
type Created struct {
	Key
	Secret string
}

// digestRef is the document of the digest index.
type digestRef struct {
	OrgID string `json:"org_id"`
	KeyID string `json:"key_id"`
}

// Service manages API keys.
type Service struct {
	env *docs.Env
}

// New returns the service over env.
func New(env *docs.Env) *Service { return &Service{env: env} }

// ScopeOf is the part of its organization a key acts on.
func ScopeOf(rec *apikey.Record) authz.Scope {
	return authz.Scope{Org: rec.OrgID, Project: rec.Project, Environment: rec.Environment, Resources: rec.Resources}
}

// onKey is the need of reading (or changing) a key: a principal sees and
// manages exactly the keys its scope covers.
func onKey(rec *apikey.Record, perm apikey.Permission) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: perm, Target: ScopeOf(rec), Action: "manage keys of"}
}

// Spec is what a new key is made of.
type Spec struct {
	Scope       authz.Scope
	Type        apikey.Type
	Permissions apikey.Permissions
	Name        string
	ExpiresAt   *time.Time
	Owner       string
	Limits      []ratelimit.NamedLimit
	Quota       *ratelimit.Quota
	Identity    string
	// AllowedOrigins, for a client key (checked by CleanOrigins).
	AllowedOrigins []string
}

// Mint makes a key and its secret and writes it, inside a transaction. It
// checks nothing: callers (CreateKey, the bootstrap) have.
func (s *Service) Mint(tx store.Writer, spec Spec) (*apikey.Record, string, error) {
	id, err := apikey.NewID("key")
	if err != nil {
		return nil, "", err
	}
	secret, err := apikey.Generate(spec.Type)
	if err != nil {
		return nil, "", err
	}
	rec := &apikey.Record{
		ID:          id,
		OrgID:       spec.Scope.Org,
		Project:     spec.Scope.Project,
		Environment: spec.Scope.Environment,
		Resources:   spec.Scope.Resources,
		Type:        spec.Type,
		Permissions: spec.Permissions,
		Name:        spec.Name,
		Hint:        apikey.Hint(secret),
		CreatedAt:   s.env.Timestamp(),
		ExpiresAt:   spec.ExpiresAt,
		OwnerID:     spec.Owner,
		Digest:      apikey.DigestOf(secret).String(),
		Limits:      spec.Limits,
		Quota:       spec.Quota,
		Identity:    spec.Identity,

		AllowedOrigins: spec.AllowedOrigins,
	}
	return rec, secret, putKey(tx, rec)
}

// putKey writes a key record and indexes its current secret.
func putKey(tx store.Writer, rec *apikey.Record) error {
	if err := docs.Put(tx, colKeys(rec.OrgID), rec.ID, rec); err != nil {
		return err
	}
	return docs.Put(tx, colDigests, rec.Digest, digestRef{OrgID: rec.OrgID, KeyID: rec.ID})
}

func dropDigests(tx store.Writer, rec *apikey.Record) error {
	for _, d := range []string{rec.Digest, rec.PreviousDigest} {
		if d == "" {
			continue
		}
		if err := tx.Delete(colDigests, d); err != nil {
			return err
		}
	}
	return nil
}

// CreateKey makes a key in a project, or (project empty) an
// organization-wide one. The caller can never hand out more than it has: the
// new key's permissions must be among the caller's, it cannot outlive the
// caller, and its scope must be within the caller's.
func (s *Service) CreateKey(ctx context.Context, p *authz.Principal, project string, in CreateInput) (*Created, error) {
	need := authz.Need{Type: apikey.Admin, Permission: apikey.Write, Partial: true, Action: "create keys in"}
	if project != "" {
		need.Target = authz.Project(p.Org(), project)
	}
	if err := authz.Permits(p, need); err != nil {
		return nil, err
	}
	name, err := input.Name("name", in.Name, "", true)
	if err != nil {
		return nil, err
	}
	if in.Type == "" {
		return nil, apierror.Invalid("type is required (client, live, test or admin)")
	}
	typ, err := apikey.ParseType(in.Type)
	if err != nil {
		return nil, apierror.Invalid("type: %v", err)
	}
	switch {
	case project == "" && typ != apikey.Admin:
		return nil, apierror.Invalid("project is required for %s keys", typ)
	case project == "" && in.Environment != "":
		return nil, apierror.Invalid("environment: an organization-wide key covers every project; name the project of an environment key")
	case typ != apikey.Admin && in.Environment == "":
		return nil, apierror.Invalid("environment is required for %s keys", typ)
	case project != "" && len(in.Resources) > 0:
		return nil, apierror.Invalid("resources: a key of project %q is already limited to it; resources narrow organization-wide keys", project)
	}
	if in.Environment != "" {
		if err := input.Slug("environment", in.Environment); err != nil {
			return nil, err
		}
	}
	perms := apikey.AllPermissions
	if typ == apikey.Client {
		perms = clientPermissions
	}
	if in.Permissions != nil {
		if perms, err = apikey.ParsePermissions(in.Permissions); err != nil {
			return nil, apierror.Invalid("permissions: %v", err)
		}
	}
	origins, err := checkClient(typ, perms, in)
	if err != nil {
		return nil, err
	}
	var expiresAt *time.Time
	if in.ExpiresIn != "" {
		d, err := apikey.ParseDuration(in.ExpiresIn)
		if err != nil {
			return nil, apierror.Invalid("expires_in: %v", err)
		}
		if d < apikey.MinLifetime || d > apikey.MaxLifetime {
			return nil, apierror.Invalid("expires_in must be between 1m and 365d")
		}
		t := s.env.Timestamp().Add(d)
		expiresAt = &t
	}
	resources, err := cleanResources(in.Resources)
	if err != nil {
		return nil, err
	}
	limits, err := input.Limits(in.Limits, in.Quota)
	if err != nil {
		return nil, err
	}
	if in.Identity != "" {
		if err := input.Slug("identity", in.Identity); err != nil {
			return nil, err
		}
	}
	scope := authz.Scope{Org: p.Org(), Project: project, Environment: in.Environment, Resources: resources}
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write,
		Grant: &authz.Grant{Permissions: perms, ExpiresAt: expiresAt, Scope: scope, Action: "create a key", Hint: "set expires_in accordingly"}}); err != nil {
		return nil, err
	}

	var out *Created
	err = s.env.Update(ctx, func(tx store.Writer) error {
		for _, pr := range append([]string{project}, resources...) {
			if pr == "" {
				continue
			}
			var proj tenancy.Project
			if err := tenancy.MustGetProject(tx, p.Org(), pr, &proj); err != nil {
				return err
			}
		}
		if in.Environment != "" {
			if err := tenancy.EnvironmentExists(tx, p.Org(), project, in.Environment); err != nil {
				return apierror.Invalid("environment: project %q has no environment %q", project, in.Environment)
			}
		}
		rec, secret, err := s.Mint(tx, Spec{
			Scope: scope, Type: typ, Permissions: perms, Name: name, ExpiresAt: expiresAt, Owner: p.Member,
			Limits: limits, Quota: in.Quota, Identity: in.Identity, AllowedOrigins: origins,
		})
		if err != nil {
			return err
		}
		out = &Created{Key: Key{Record: rec}, Secret: secret}
		return s.record(ctx, tx, p, audit.KeyCreated, rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// record writes the audit entry of a change to key rec by p, in tx.
func (s *Service) record(ctx context.Context, tx store.Writer, p *authz.Principal, a audit.Action, rec *apikey.Record) error {
	return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{
		Org: rec.OrgID, Project: rec.Project, Environment: rec.Environment, Resources: rec.Resources,
		Action: a, Target: audit.Target{Type: "api_key", ID: rec.ID},
	})
}

// errClientLimits refuses limits, quota or identity to a client key.
var errClientLimits = apierror.Invalid("client keys are public, so they take no limits, quota or identity of their own (anyone could spend them); their limit counts per key and client address (rate_limit client)")

// originsNotClient refuses allowed origins to a key of another type.
func originsNotClient(typ apikey.Type) error {
	return apierror.Invalid("allowed_origins: only client keys have origins; %s keys are secret and not for browsers", typ)
}

// clientPermissions are a client key's: it reads flags and nothing else.
var clientPermissions, _ = apikey.ParsePermissions([]string{string(apikey.Read)})

// checkClient checks what sets a client key apart, and returns its
// allowed origins. Such a key is public (every visitor of the page holds
// it), so it only reads, and it has no limits, quota or identity of its
// own: anyone could spend them. Its type's limit counts per key and client
// address instead (rate_limit client).
func checkClient(typ apikey.Type, perms apikey.Permissions, in CreateInput) ([]string, error) {
	if typ != apikey.Client {
		if len(in.AllowedOrigins) > 0 {
			return nil, originsNotClient(typ)
		}
		return nil, nil
	}
	switch {
	case perms != clientPermissions:
		return nil, apierror.Invalid("permissions: client keys are READ only")
	case len(in.Limits) > 0 || in.Quota != nil || in.Identity != "":
		return nil, errClientLimits
	}
	origins, err := apikey.CleanOrigins(in.AllowedOrigins)
	if err != nil {
		return nil, apierror.Invalid("allowed_origins: %v", err)
	}
	return origins, nil
}

// cleanResources checks the projects a new Scoped key lists: slugs, each
// once, in a canonical order.
func cleanResources(resources []string) ([]string, error) {
	if len(resources) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(resources))
	for _, pr := range resources {
		if err := input.Slug("resources", pr); err != nil {
			return nil, err
		}
		if slices.Contains(out, pr) {
			return nil, apierror.Invalid("resources: %q is listed twice", pr)
		}
		out = append(out, pr)
	}
	sort.Strings(out)
	return out, nil
}

// ListKeys returns the keys of a project that the caller's scope covers,
// oldest first. Secrets are never stored, so they cannot be listed.
func (s *Service) ListKeys(ctx context.Context, p *authz.Principal, project string) ([]Key, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read,
		Target: authz.Project(p.Org(), project), Partial: true, Action: "list keys of"}); err != nil {
		return nil, err
	}
	return s.listWhere(ctx, p, func(r store.Reader) error {
		var pr tenancy.Project
		return tenancy.MustGetProject(r, p.Org(), project, &pr)
	}, func(k *apikey.Record) bool { return k.Project == project })
}

// ListVisibleKeys returns every key of the caller's organization that the
// caller's scope covers, oldest first.
func (s *Service) ListVisibleKeys(ctx context.Context, p *authz.Principal) ([]Key, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read}); err != nil {
		return nil, err
	}
	return s.listWhere(ctx, p, nil, func(*apikey.Record) bool { return true })
}

// listWhere lists the keys of the caller's organization that keep selects
// and the caller may see, with their last use, oldest first, after check
// (if any) passes in the same view.
func (s *Service) listWhere(ctx context.Context, p *authz.Principal, check func(store.Reader) error, keep func(*apikey.Record) bool) ([]Key, error) {
	var out []Key
	err := s.env.View(ctx, func(r store.Reader) error {
		if check != nil {
			if err := check(r); err != nil {
				return err
			}
		}
		recs, err := docs.List[apikey.Record](r, colKeys(p.Org()))
		if err != nil {
			return err
		}
		for i := range recs {
			if !keep(&recs[i]) || !authz.Allows(p, onKey(&recs[i], apikey.Read)) {
				continue
			}
			k, err := withUse(r, &recs[i])
			if err != nil {
				return err
			}
			out = append(out, k)
		}
		return nil
	})
	docs.SortBy(out, func(a, b *Key) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out, err
}

// GetKey returns one key.
func (s *Service) GetKey(ctx context.Context, p *authz.Principal, id string) (*Key, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read}); err != nil {
		return nil, err
	}
	var out Key
	err := s.env.View(ctx, func(r store.Reader) error {
		rec, err := keyFor(r, p, id, apikey.Read)
		if err != nil {
			return err
		}
		out, err = withUse(r, rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// keyFor reads key id of the caller's organization and checks that the
// caller may act on it. A key of another organization is indistinguishable
// from a missing one.
func keyFor(r store.Reader, p *authz.Principal, id string, perm apikey.Permission) (*apikey.Record, error) {
	var rec apikey.Record
	found, err := docs.Get(r, colKeys(p.Org()), id, &rec)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apierror.NotFound("API key %q not found", id)
	}
	if err := authz.Permits(p, onKey(&rec, perm)); err != nil {
		return nil, err
	}
	return &rec, nil
}

func withUse(r store.Reader, rec *apikey.Record) (Key, error) {
	k := Key{Record: rec}
	b, err := r.Get(colKeyUse, rec.ID)
	if errors.Is(err, store.ErrNotFound) {
		return k, nil
	}
	if err != nil {
		return k, err
	}
	t, err := time.Parse(time.RFC3339, string(b))
	if err == nil {
		k.LastUsedAt = &t
	}
	return k, nil
}

// change is an UpdateInput checked: the record's new values, for the
// members that were given.
type change struct {
	in       UpdateInput
	name     string
	limits   []ratelimit.NamedLimit
	quota    *ratelimit.Quota
	identity string
	origins  []string
}

// checkUpdate checks an UpdateInput whole, before anything is read, so that
// a refusal writes nothing.
func checkUpdate(in UpdateInput) (*change, error) {
	if !in.Name.Set && !in.Limits.Set && !in.Quota.Set && !in.Identity.Set && !in.AllowedOrigins.Set {
		return nil, apierror.Invalid("nothing to change: give at least one of name, limits, quota, identity and allowed_origins")
	}
	c := &change{in: in, quota: in.Quota.Value}
	if in.Name.Set {
		if in.Name.Value == nil {
			return nil, apierror.Invalid("name cannot be null: a key always has a name")
		}
		name, err := input.Name("name", *in.Name.Value, "", true)
		if err != nil {
			return nil, err
		}
		c.name = name
	}
	var limits []LimitInput
	if in.Limits.Value != nil {
		// Non-nil even when empty, so that [] is refused rather than
		// taken for null.
		limits = *in.Limits.Value
		if limits == nil {
			limits = []LimitInput{}
		}
	}
	var err error
	if c.limits, err = input.Limits(limits, in.Quota.Value); err != nil {
		return nil, err
	}
	if in.Identity.Value != nil {
		c.identity = *in.Identity.Value
		if c.identity == "" {
			return nil, apierror.Invalid("identity must not be empty; null removes it")
		}
		if err := input.Slug("identity", c.identity); err != nil {
			return nil, err
		}
	}
	if in.AllowedOrigins.Set {
		if in.AllowedOrigins.Value == nil {
			return nil, apierror.Invalid("allowed_origins cannot be null: a client key always has an origin")
		}
		if c.origins, err = apikey.CleanOrigins(*in.AllowedOrigins.Value); err != nil {
			return nil, apierror.Invalid("allowed_origins: %v", err)
		}
	}
	return c, nil
}

// checkFor checks the change against the key it changes: origins are a
// client key's alone, and limits, quota and identity never a client key's.
func (c *change) checkFor(rec *apikey.Record) error {
	switch {
	case c.in.AllowedOrigins.Set && rec.Type != apikey.Client:
		return originsNotClient(rec.Type)
	case rec.Type == apikey.Client && (c.in.Limits.Value != nil || c.in.Quota.Value != nil || c.in.Identity.Value != nil):
		return errClientLimits
	}
	return nil
}

// apply sets the given members on rec; null clears.
func (c *change) apply(rec *apikey.Record) {
	if c.in.Name.Set {
		rec.Name = c.name
	}
	if c.in.Limits.Set {
		rec.Limits = c.limits
	}
	if c.in.Quota.Set {
		rec.Quota = c.quota
	}
	if c.in.Identity.Set {
		rec.Identity = c.identity
	}
	if c.in.AllowedOrigins.Set {
		rec.AllowedOrigins = c.origins
	}
}

// UpdateKey changes a key's name, limits, quota or identity (see
// UpdateInput), on every instance at once: the change is published like a
// rotation, so that the key caches drop the old record. It takes what
// rotating or revoking the key takes, and like a rotation it refuses a key
// that is revoked or expired.
func (s *Service) UpdateKey(ctx context.Context, p *authz.Principal, id string, in UpdateInput) (*Key, error) {
	sets := in.Limits.Set || in.Quota.Set || in.Identity.Set
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write, SetsLimits: sets}); err != nil {
		return nil, err
	}
	c, err := checkUpdate(in)
	if err != nil {
		return nil, err
	}
	var out Key
	err = s.env.Update(ctx, func(tx store.Writer) error {
		rec, err := keyFor(tx, p, id, apikey.Write)
		if err != nil {
			return err
		}
		switch rec.Status(s.env.Now()) {
		case "revoked":
			return apierror.Conflict("API key %q is revoked and cannot be updated", id)
		case "expired":
			return apierror.Conflict("API key %q has expired and cannot be updated", id)
		}
		if err := c.checkFor(rec); err != nil {
			return err
		}
		c.apply(rec)
		if err := docs.Put(tx, colKeys(rec.OrgID), rec.ID, rec); err != nil {
			return err
		}
		tx.Publish(Topic, []byte(rec.ID))
		if out, err = withUse(tx, rec); err != nil {
			return err
		}
		return s.record(ctx, tx, p, audit.KeyUpdated, rec)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateKey gives a key a new secret, keeping its id, settings and rate-limit
// bucket. The old secret stops working at once, or after the grace period
// (never after the key itself expires). Whoever rotates a key receives its
// secret, so the key passes to the member the caller acts for: removing that
// member revokes it, and removing the previous owner ends the old secret's
// grace period.
func (s *Service) RotateKey(ctx context.Context, p *authz.Principal, id string, in RotateInput) (*Created, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write}); err != nil {
		return nil, err
	}
	var grace time.Duration
	if in.GracePeriod != "" {
		d, err := apikey.ParseDuration(in.GracePeriod)
		if err != nil {
			return nil, apierror.Invalid("grace_period: %v", err)
		}
		if d > apikey.MaxGracePeriod {
			return nil, apierror.Invalid("grace_period must be at most 7d")
		}
		grace = d
	}
	var out *Created
	err := s.env.Update(ctx, func(tx store.Writer) error {
		rec, err := keyFor(tx, p, id, apikey.Write)
		if err != nil {
			return err
		}
		switch rec.Status(s.env.Now()) {
		case "revoked":
			return apierror.Conflict("API key %q is revoked and cannot be rotated", id)
		case "expired":
			return apierror.Conflict("API key %q has expired and cannot be rotated", id)
		}
		if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write, Grant: &authz.Grant{
			Permissions: rec.Permissions, ExpiresAt: rec.ExpiresAt, Scope: ScopeOf(rec), Action: "rotate a key",
		}}); err != nil {
			return err
		}
		secret, err := apikey.Generate(rec.Type)
		if err != nil {
			return err
		}
		// Only one previous secret is kept: an older one still in its
		// grace period ends now.
		if rec.PreviousDigest != "" {
			if err := tx.Delete(colDigests, rec.PreviousDigest); err != nil {
				return err
			}
		}
		rec.PreviousDigest, rec.PreviousValidUntil, rec.PreviousOwnerID = "", nil, ""
		now := s.env.Timestamp()
		if until := now.Add(grace); grace > 0 && (rec.ExpiresAt == nil || until.Before(*rec.ExpiresAt)) {
			rec.PreviousDigest, rec.PreviousValidUntil, rec.PreviousOwnerID = rec.Digest, &until, rec.OwnerID
		} else if grace > 0 {
			// The key expires first: the old secret works as long as the
			// key does, and no longer.
			rec.PreviousDigest, rec.PreviousValidUntil, rec.PreviousOwnerID = rec.Digest, rec.ExpiresAt, rec.OwnerID
		} else if err := tx.Delete(colDigests, rec.Digest); err != nil {
			return err
		}
		if p.Member != "" {
			rec.OwnerID = p.Member
		}
		rec.Digest = apikey.DigestOf(secret).String()
		rec.Hint = apikey.Hint(secret)
		rec.RotatedAt = &now
		if err := putKey(tx, rec); err != nil {
			return err
		}
		tx.Publish(Topic, []byte(rec.ID))
		k, err := withUse(tx, rec)
		if err != nil {
			return err
		}
		out = &Created{Key: k, Secret: secret}
		return s.record(ctx, tx, p, audit.KeyRotated, rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeKey revokes a key at once, on every instance. Revoking a revoked key
// changes nothing and returns it as it is.
func (s *Service) RevokeKey(ctx context.Context, p *authz.Principal, id string) (*Key, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write}); err != nil {
		return nil, err
	}
	var out Key
	err := s.env.Update(ctx, func(tx store.Writer) error {
		rec, err := keyFor(tx, p, id, apikey.Write)
		if err != nil {
			return err
		}
		if rec.RevokedAt == nil {
			if err := s.revoke(tx, rec); err != nil {
				return err
			}
			if err := s.record(ctx, tx, p, audit.KeyRevoked, rec); err != nil {
				return err
			}
		}
		out, err = withUse(tx, rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// revoke marks rec revoked, drops its secrets and tells every instance.
func (s *Service) revoke(tx store.Writer, rec *apikey.Record) error {
	t := s.env.Timestamp()
	rec.RevokedAt = &t
	if err := dropDigests(tx, rec); err != nil {
		return err
	}
	if err := docs.Put(tx, colKeys(rec.OrgID), rec.ID, rec); err != nil {
		return err
	}
	tx.Publish(Topic, []byte(rec.ID))
	return nil
}

// RevokeHeldBy revokes, inside a transaction, every key of org whose current
// secret the member holds (they own it), and ends the grace period of every
// old secret they held (they owned the key before its last rotation): what
// a member removed from the organization could still use.
func (s *Service) RevokeHeldBy(ctx context.Context, tx store.Writer, p *authz.Principal, org, member string) error {
	recs, err := docs.List[apikey.Record](tx, colKeys(org))
	if err != nil {
		return err
	}
	for i := range recs {
		k := &recs[i]
		if k.RevokedAt != nil {
			continue
		}
		switch {
		case k.OwnerID == member:
			if err := s.revoke(tx, k); err != nil {
				return err
			}
			// Each revocation is an entry of its own (and a webhook event
			// of the key's project), by whoever removed the member.
			if err := s.record(ctx, tx, p, audit.KeyRevoked, k); err != nil {
				return err
			}
		case k.PreviousOwnerID == member && k.PreviousDigest != "":
			if err := tx.Delete(colDigests, k.PreviousDigest); err != nil {
				return err
			}
			k.PreviousDigest, k.PreviousValidUntil, k.PreviousOwnerID = "", nil, ""
			if err := docs.Put(tx, colKeys(org), k.ID, k); err != nil {
				return err
			}
			tx.Publish(Topic, []byte(k.ID))
		}
	}
	return nil
}

// DeleteProject removes, inside a transaction, every key of a project being
// deleted, and takes the project out of every Scoped key that lists it, so
// that a project created later with the same slug inherits no grant. A
// Scoped key left with no project is revoked: an empty list would mean the
// whole organization.
func (s *Service) DeleteProject(tx store.Writer, org, slug string) error {
	recs, err := docs.List[apikey.Record](tx, colKeys(org))
	if err != nil {
		return err
	}
	for i := range recs {
		k := &recs[i]
		switch {
		case k.Project == slug:
			if err := dropDigests(tx, k); err != nil {
				return err
			}
			if err := tx.Delete(colKeyUse, k.ID); err != nil {
				return err
			}
			if err := tx.Delete(colKeys(org), k.ID); err != nil {
				return err
			}
			tx.Publish(Topic, []byte(k.ID))
		case k.OrgWide() && slices.Contains(k.Resources, slug):
			if len(k.Resources) == 1 {
				if k.RevokedAt == nil {
					if err := s.revoke(tx, k); err != nil {
						return err
					}
				}
				continue
			}
			k.Resources = slices.DeleteFunc(slices.Clone(k.Resources), func(r string) bool { return r == slug })
			if err := docs.Put(tx, colKeys(org), k.ID, k); err != nil {
				return err
			}
			tx.Publish(Topic, []byte(k.ID))
		}
	}
	return nil
}

// LookupKey is what the edge's key cache asks: the record whose current (or
// grace-period) secret has this digest, or nil.
func (s *Service) LookupKey(ctx context.Context, digest apikey.Digest) (*apikey.Record, error) {
	var out *apikey.Record
	err := s.env.View(ctx, func(r store.Reader) error {
		var ref digestRef
		found, err := docs.Get(r, colDigests, digest.String(), &ref)
		if err != nil || !found {
			return err
		}
		var rec apikey.Record
		found, err = docs.Get(r, colKeys(ref.OrgID), ref.KeyID, &rec)
		if err != nil || !found {
			return err
		}
		out = &rec
		return nil
	})
	return out, err
}

// RecordUsage stores when keys were last used, keeping the later time when
// several instances report the same key.
func (s *Service) RecordUsage(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return s.env.Update(ctx, func(tx store.Writer) error {
		for id, t := range used {
			b, err := tx.Get(colKeyUse, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			default:
				if prev, err := time.Parse(time.RFC3339, string(b)); err == nil && !prev.Before(t) {
					continue
				}
			}
			if err := tx.Put(colKeyUse, id, []byte(t.UTC().Format(time.RFC3339))); err != nil {
				return err
			}
		}
		return nil
	})
}

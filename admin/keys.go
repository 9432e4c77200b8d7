package admin

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// CreateKeyInput is the body of POST /v1/projects/{project}/api-keys.
type CreateKeyInput struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Environment string   `json:"environment,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
	ExpiresIn   string   `json:"expires_in,omitempty"`
	// Resources makes a Scoped organization-wide key: only these projects.
	Resources []string `json:"resources,omitempty"`
}

// RotateKeyInput is the (optional) body of POST /v1/api-keys/{id}/rotate.
type RotateKeyInput struct {
	// GracePeriod keeps the old secret working this long ("1h", "2d");
	// empty means the old secret stops working at once.
	GracePeriod string `json:"grace_period,omitempty"`
}

// Key is a key record as callers see it, with its last use.
type Key struct {
	*apikey.Record
	LastUsedAt *time.Time
}

// CreatedKey is a key with its secret, which is shown this once.
type CreatedKey struct {
	Key
	Secret string
}

// digestRef is the document of the digest index.
type digestRef struct {
	OrgID string `json:"org_id"`
	KeyID string `json:"key_id"`
}

// keySpec is what a new key is made of.
type keySpec struct {
	org, project, env string
	typ               apikey.Type
	perms             apikey.Permissions
	name              string
	expiresAt         *time.Time
	owner             string
	resources         []string
}

// newKey makes a record and its secret; it writes nothing.
func (s *Service) newKey(spec keySpec) (*apikey.Record, string, error) {
	id, err := apikey.NewID("key")
	if err != nil {
		return nil, "", err
	}
	secret, err := apikey.Generate(spec.typ)
	if err != nil {
		return nil, "", err
	}
	rec := &apikey.Record{
		ID:          id,
		OrgID:       spec.org,
		Project:     spec.project,
		Environment: spec.env,
		Type:        spec.typ,
		Permissions: spec.perms,
		Name:        spec.name,
		Hint:        apikey.Hint(secret),
		CreatedAt:   s.timestamp(),
		ExpiresAt:   spec.expiresAt,
		Resources:   spec.resources,
		OwnerID:     spec.owner,
		Digest:      apikey.DigestOf(secret).String(),
	}
	return rec, secret, nil
}

// putKey writes a key record and indexes its current secret.
func (s *Service) putKey(tx store.Writer, rec *apikey.Record) error {
	if err := putJSON(tx, colKeys(rec.OrgID), rec.ID, rec); err != nil {
		return err
	}
	return putJSON(tx, colDigests, rec.Digest, digestRef{OrgID: rec.OrgID, KeyID: rec.ID})
}

// deleteKey removes a key, its digests and its usage, and tells every
// instance.
func (s *Service) deleteKey(tx store.Writer, rec *apikey.Record) error {
	if err := dropDigests(tx, rec); err != nil {
		return err
	}
	if err := tx.Delete(colKeyUse, rec.ID); err != nil {
		return err
	}
	tx.Publish(TopicKeys, []byte(rec.ID))
	return tx.Delete(colKeys(rec.OrgID), rec.ID)
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

// CreateKey makes a key in a project. The caller can never hand out more
// than it has: the new key's permissions must be among the caller's, and it
// cannot outlive the caller.
func (s *Service) CreateKey(ctx context.Context, caller *apikey.Record, project string, in CreateKeyInput) (*CreatedKey, error) {
	if err := authorize(caller, writeAccess, project); err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, "", true)
	if err != nil {
		return nil, err
	}
	if in.Type == "" {
		return nil, apierror.Invalid("type is required (live, test or admin)")
	}
	typ, err := apikey.ParseType(in.Type)
	if err != nil {
		return nil, apierror.Invalid("type: %v", err)
	}
	switch {
	case project == "" && typ != apikey.Admin:
		return nil, apierror.Invalid("project is required for %s keys", typ)
	case typ == apikey.Admin && in.Environment != "":
		return nil, apierror.Invalid("environment: admin keys cover every environment of their project; omit environment")
	case typ != apikey.Admin && in.Environment == "":
		return nil, apierror.Invalid("environment is required for %s keys", typ)
	case project != "" && len(in.Resources) > 0:
		return nil, apierror.Invalid("resources: a key of project %q is already limited to it; resources narrow organization-wide keys", project)
	}
	if project == "" {
		if err := requireOrgWide(caller, "create organization-wide keys"); err != nil {
			return nil, err
		}
	}
	perms := apikey.AllPermissions
	if in.Permissions != nil {
		if perms, err = apikey.ParsePermissions(in.Permissions); err != nil {
			return nil, apierror.Invalid("permissions: %v", err)
		}
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
		t := s.timestamp().Add(d)
		expiresAt = &t
	}
	if err := mayHandOut(caller, perms, expiresAt, "create a key that outlives it; set expires_in accordingly"); err != nil {
		return nil, err
	}
	resources, err := narrowResources(caller, project, in.Resources)
	if err != nil {
		return nil, err
	}

	var out *CreatedKey
	err = s.update(ctx, func(tx store.Writer) error {
		for _, p := range append([]string{project}, resources...) {
			if p == "" {
				continue
			}
			var proj Project
			if err := mustGetProject(tx, caller.OrgID, p, &proj); err != nil {
				return err
			}
		}
		if in.Environment != "" {
			var e Environment
			found, err := getJSON(tx, colEnvironments(caller.OrgID, project), in.Environment, &e)
			if err != nil {
				return err
			}
			if !found {
				return apierror.Invalid("environment: project %q has no environment %q", project, in.Environment)
			}
		}
		rec, secret, err := s.newKey(keySpec{
			org: caller.OrgID, project: project, env: in.Environment,
			typ: typ, perms: perms, name: name, expiresAt: expiresAt,
			owner: caller.OwnerID, resources: resources,
		})
		if err != nil {
			return err
		}
		out = &CreatedKey{Key: Key{Record: rec}, Secret: secret}
		return s.putKey(tx, rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// narrowResources checks the projects a new Scoped key lists: each within
// the caller's own scope, and a caller that is itself Scoped can only hand
// out keys at least as narrow (never an unscoped one).
func narrowResources(caller *apikey.Record, project string, resources []string) ([]string, error) {
	if project != "" {
		return nil, nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(resources))
	for _, p := range resources {
		if err := validSlug("resources", p); err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, apierror.Invalid("resources: %q is listed twice", p)
		}
		seen[p] = true
		if !caller.CoversProject(p) {
			return nil, apierror.Forbidden("This key cannot grant access to project %q, which is outside its own scope", p)
		}
		out = append(out, p)
	}
	if len(caller.Resources) > 0 && len(out) == 0 {
		return nil, apierror.Forbidden("This key is limited to projects %v and cannot create a key without that limit; list resources", caller.Resources)
	}
	if len(out) == 0 {
		return nil, nil
	}
	sort.Strings(out)
	return out, nil
}

// mayHandOut refuses to give the caller a secret for a key with permissions
// it lacks or that outlives it: creating such a key, or rotating an existing
// one (which hands out its new secret), would be privilege escalation.
func mayHandOut(caller *apikey.Record, perms apikey.Permissions, expiresAt *time.Time, outlives string) error {
	if !caller.Permissions.Contains(perms) {
		return apierror.Forbidden("This key cannot grant permissions it does not have (it has %v)", caller.Permissions.List())
	}
	if caller.ExpiresAt != nil && (expiresAt == nil || expiresAt.After(*caller.ExpiresAt)) {
		return apierror.Forbidden("This key expires at %s and cannot %s",
			caller.ExpiresAt.UTC().Format(time.RFC3339), outlives)
	}
	return nil
}

// ListKeys returns a project's keys, oldest first. Secrets are never
// stored, so they cannot be listed.
func (s *Service) ListKeys(ctx context.Context, caller *apikey.Record, project string) ([]Key, error) {
	if err := authorize(caller, readAccess, project); err != nil {
		return nil, err
	}
	return s.listKeysWhere(ctx, caller, func(r store.Reader) error {
		var p Project
		return mustGetProject(r, caller.OrgID, project, &p)
	}, func(k *apikey.Record) bool { return k.Project == project })
}

// ListVisibleKeys returns every key of the caller's organization that the
// caller's scope covers, oldest first: all of them for an unscoped
// organization-wide key, its project's for a project key, its projects'
// for a Scoped key.
func (s *Service) ListVisibleKeys(ctx context.Context, caller *apikey.Record) ([]Key, error) {
	if err := authorize(caller, readAccess, ""); err != nil {
		return nil, err
	}
	return s.listKeysWhere(ctx, caller, nil, func(k *apikey.Record) bool { return mayManage(caller, k) == nil })
}

// listKeysWhere lists the caller's organization's keys that keep selects,
// with their last use, oldest first, after check (if any) passes in the
// same view.
func (s *Service) listKeysWhere(ctx context.Context, caller *apikey.Record, check func(store.Reader) error, keep func(*apikey.Record) bool) ([]Key, error) {
	var out []Key
	err := s.view(ctx, func(r store.Reader) error {
		if check != nil {
			if err := check(r); err != nil {
				return err
			}
		}
		recs, err := listJSON[apikey.Record](r, colKeys(caller.OrgID))
		if err != nil {
			return err
		}
		for i := range recs {
			if !keep(&recs[i]) {
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
	sortKeys(out)
	return out, err
}

func sortKeys(keys []Key) {
	sortBy(keys, func(a, b *Key) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
}

// GetKey returns one key.
func (s *Service) GetKey(ctx context.Context, caller *apikey.Record, id string) (*Key, error) {
	if err := authorize(caller, readAccess, ""); err != nil {
		return nil, err
	}
	var out Key
	err := s.view(ctx, func(r store.Reader) error {
		rec, err := keyFor(r, caller, id)
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
// caller may manage it. A key of another organization is indistinguishable
// from a missing one.
func keyFor(r store.Reader, caller *apikey.Record, id string) (*apikey.Record, error) {
	var rec apikey.Record
	found, err := getJSON(r, colKeys(caller.OrgID), id, &rec)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apierror.NotFound("API key %q not found", id)
	}
	if err := mayManage(caller, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// mayManage checks that caller's scope covers key's: a project key manages
// keys of its project, a Scoped key keys of its projects, and only an
// unscoped organization-wide key manages organization-wide keys.
func mayManage(caller, key *apikey.Record) error {
	switch {
	case key.OrgWide() && !caller.OrgWide():
		return apierror.Forbidden("This key is scoped to project %q and cannot manage organization-wide keys", caller.Project)
	case key.OrgWide() && len(caller.Resources) > 0 && !subset(key.Resources, caller.Resources):
		return apierror.Forbidden("This key is limited to projects %v and cannot manage keys beyond them", caller.Resources)
	case !key.OrgWide() && !caller.CoversProject(key.Project):
		if !caller.OrgWide() {
			return apierror.Forbidden("This key belongs to project %q and cannot manage keys of project %q", caller.Project, key.Project)
		}
		return apierror.Forbidden("This key is limited to projects %v and cannot manage keys of project %q", caller.Resources, key.Project)
	}
	return nil
}

// subset reports whether every element of a is in b; an empty a (no
// limit) is a subset of nothing but an empty b.
func subset(a, b []string) bool {
	if len(a) == 0 {
		return len(b) == 0
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
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

// RotateKey gives a key a new secret, keeping its id, settings and rate-limit
// bucket. The old secret stops working at once, or after the grace period.
func (s *Service) RotateKey(ctx context.Context, caller *apikey.Record, id string, in RotateKeyInput) (*CreatedKey, error) {
	if err := authorize(caller, writeAccess, ""); err != nil {
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
	var out *CreatedKey
	err := s.update(ctx, func(tx store.Writer) error {
		rec, err := keyFor(tx, caller, id)
		if err != nil {
			return err
		}
		now := s.now()
		switch rec.Status(now) {
		case "revoked":
			return apierror.Conflict("API key %q is revoked and cannot be rotated", id)
		case "expired":
			return apierror.Conflict("API key %q has expired and cannot be rotated", id)
		}
		if err := mayHandOut(caller, rec.Permissions, rec.ExpiresAt, "rotate a key that outlives it"); err != nil {
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
		rec.PreviousDigest, rec.PreviousValidUntil = "", nil
		if grace > 0 {
			until := s.timestamp().Add(grace)
			rec.PreviousDigest, rec.PreviousValidUntil = rec.Digest, &until
		} else if err := tx.Delete(colDigests, rec.Digest); err != nil {
			return err
		}
		rotated := s.timestamp()
		rec.Digest = apikey.DigestOf(secret).String()
		rec.Hint = apikey.Hint(secret)
		rec.RotatedAt = &rotated
		if err := s.putKey(tx, rec); err != nil {
			return err
		}
		tx.Publish(TopicKeys, []byte(rec.ID))
		k, err := withUse(tx, rec)
		if err != nil {
			return err
		}
		out = &CreatedKey{Key: k, Secret: secret}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeKey revokes a key at once, on every instance. Revoking a revoked key
// changes nothing and returns it as it is.
func (s *Service) RevokeKey(ctx context.Context, caller *apikey.Record, id string) (*Key, error) {
	if err := authorize(caller, writeAccess, ""); err != nil {
		return nil, err
	}
	var out Key
	err := s.update(ctx, func(tx store.Writer) error {
		rec, err := keyFor(tx, caller, id)
		if err != nil {
			return err
		}
		if rec.RevokedAt == nil {
			t := s.timestamp()
			rec.RevokedAt = &t
			if err := dropDigests(tx, rec); err != nil {
				return err
			}
			if err := putJSON(tx, colKeys(rec.OrgID), rec.ID, rec); err != nil {
				return err
			}
			tx.Publish(TopicKeys, []byte(rec.ID))
		}
		out, err = withUse(tx, rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// LookupKey implements edge.KeySource: the record whose current (or
// grace-period) secret has this digest, or nil.
func (s *Service) LookupKey(ctx context.Context, digest apikey.Digest) (*apikey.Record, error) {
	var out *apikey.Record
	err := s.view(ctx, func(r store.Reader) error {
		var ref digestRef
		found, err := getJSON(r, colDigests, digest.String(), &ref)
		if err != nil || !found {
			return err
		}
		var rec apikey.Record
		found, err = getJSON(r, colKeys(ref.OrgID), ref.KeyID, &rec)
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
	return s.update(ctx, func(tx store.Writer) error {
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

// Package customers manages identities: the customers of a team's service,
// each named by a slug within a project, whose rate limits and quota are
// shared by every key of the project that carries "identity": "<slug>".
// The API calls them identities; the package is named otherwise so as not
// to be taken for package identity, which is about the people who log in.
//
// The service writes and reads them for the admin front doors, and
// LookupIdentity answers the edge, which enforces them.
package customers

import (
	"context"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/internal/input"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// Identity is a customer of a project: the limits and quota its keys share.
type Identity struct {
	Slug      string                 `json:"slug"`
	Project   string                 `json:"project"`
	Limits    []ratelimit.NamedLimit `json:"limits,omitempty"`
	Quota     *ratelimit.Quota       `json:"quota,omitempty"`
	CreatedAt time.Time              `json:"created_at"`
	UpdatedAt time.Time              `json:"updated_at"`
}

// PutInput is the body of PUT /v1/projects/{project}/identities/{identity}:
// the identity whole (a PUT replaces it), with at least one of Limits and
// Quota. Limits take the shape, and the checks, of a key's.
type PutInput struct {
	Limits []keys.LimitInput `json:"limits,omitempty"`
	Quota  *ratelimit.Quota  `json:"quota,omitempty"`
}

// Service manages identities.
type Service struct {
	env *docs.Env
}

// New returns the service over env.
func New(env *docs.Env) *Service { return &Service{env: env} }

// reading is the need of reading a project's identities: an environment
// key of the project may, as it may list the project's keys (its keys are
// among theirs).
func reading(org, project string) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Project(org, project),
		Partial: true, Action: "read identities of"}
}

// managing is the need of changing one: an identity spans the project's
// environments, so it takes a principal covering the whole project, as
// adding an environment does. Its limits bind keys, so a key held to limits
// of its own may not change them (SetsLimits), nor delete them.
func managing(org, project string) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Project(org, project),
		Action: "manage identities of", SetsLimits: true}
}

// PutIdentity creates or replaces an identity of a project; created says
// which. A refusal writes nothing.
func (s *Service) PutIdentity(ctx context.Context, p *authz.Principal, project, slug string, in PutInput) (_ *Identity, created bool, _ error) {
	if err := authz.Permits(p, managing(p.Org(), project)); err != nil {
		return nil, false, err
	}
	if err := input.Slug("identity", slug); err != nil {
		return nil, false, err
	}
	if in.Limits == nil && in.Quota == nil {
		return nil, false, apierror.Invalid("give at least one of limits and quota")
	}
	limits, err := input.Limits(in.Limits, in.Quota)
	if err != nil {
		return nil, false, err
	}
	now := s.env.Timestamp()
	id := &Identity{Slug: slug, Project: project, Limits: limits, Quota: in.Quota, UpdatedAt: now}
	err = s.env.Update(ctx, func(tx store.Writer) error {
		var pr tenancy.Project
		if err := tenancy.MustGetProject(tx, p.Org(), project, &pr); err != nil {
			return err
		}
		var old Identity
		found, err := docs.Get(tx, colIdentities(p.Org(), project), slug, &old)
		if err != nil {
			return err
		}
		// Set on every run: the store may run fn again after a conflict.
		created, id.CreatedAt = !found, now
		if found {
			id.CreatedAt = old.CreatedAt
		}
		if err := docs.Put(tx, colIdentities(p.Org(), project), slug, id); err != nil {
			return err
		}
		tx.Publish(Topic, []byte(Ref(p.Org(), project, slug)))
		return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Project: project, Action: audit.IdentityPut,
			Target: audit.Target{Type: "identity", ID: slug}})
	})
	if err != nil {
		return nil, false, err
	}
	return id, created, nil
}

// GetIdentity returns one identity of a project.
func (s *Service) GetIdentity(ctx context.Context, p *authz.Principal, project, slug string) (*Identity, error) {
	if err := authz.Permits(p, reading(p.Org(), project)); err != nil {
		return nil, err
	}
	var out Identity
	err := s.env.View(ctx, func(r store.Reader) error {
		return mustGet(r, p.Org(), project, slug, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListIdentities returns the identities of a project, by slug.
func (s *Service) ListIdentities(ctx context.Context, p *authz.Principal, project string) ([]Identity, error) {
	if err := authz.Permits(p, reading(p.Org(), project)); err != nil {
		return nil, err
	}
	var out []Identity
	err := s.env.View(ctx, func(r store.Reader) error {
		var pr tenancy.Project
		if err := tenancy.MustGetProject(r, p.Org(), project, &pr); err != nil {
			return err
		}
		// In id order, which is slug order.
		var err error
		out, err = docs.List[Identity](r, colIdentities(p.Org(), project))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteIdentity deletes an identity of a project. Keys that name it keep
// their identity; its limits and quota no longer bind them.
func (s *Service) DeleteIdentity(ctx context.Context, p *authz.Principal, project, slug string) error {
	if err := authz.Permits(p, managing(p.Org(), project)); err != nil {
		return err
	}
	return s.env.Update(ctx, func(tx store.Writer) error {
		var id Identity
		if err := mustGet(tx, p.Org(), project, slug, &id); err != nil {
			return err
		}
		if err := tx.Delete(colIdentities(p.Org(), project), slug); err != nil {
			return err
		}
		tx.Publish(Topic, []byte(Ref(p.Org(), project, slug)))
		return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Project: project, Action: audit.IdentityDeleted,
			Target: audit.Target{Type: "identity", ID: slug}})
	})
}

// mustGet reads an identity, or fails with NOT_FOUND naming the project or
// the identity, whichever is missing.
func mustGet(r store.Reader, org, project, slug string, id *Identity) error {
	var pr tenancy.Project
	if err := tenancy.MustGetProject(r, org, project, &pr); err != nil {
		return err
	}
	found, err := docs.Get(r, colIdentities(org, project), slug, id)
	if err != nil {
		return err
	}
	if !found {
		return apierror.NotFound("project %q has no identity %q", project, slug)
	}
	return nil
}

// DeleteProject removes, inside a transaction, every identity of a project
// being deleted, and tells every instance, so that a project created later
// with the same slug inherits none.
func (s *Service) DeleteProject(tx store.Writer, org, project string) error {
	all, err := docs.List[Identity](tx, colIdentities(org, project))
	if err != nil {
		return err
	}
	for _, id := range all {
		tx.Publish(Topic, []byte(Ref(org, project, id.Slug)))
	}
	return tx.DeleteCollection(colIdentities(org, project))
}

// LookupIdentity is what the edge asks about a key's identity: the
// identity, or nil if the project has none of that slug. It takes no
// principal: the edge asks for keys it has already admitted, as it asks
// LookupKey.
func (s *Service) LookupIdentity(ctx context.Context, org, project, slug string) (*Identity, error) {
	var out *Identity
	err := s.env.View(ctx, func(r store.Reader) error {
		var id Identity
		found, err := docs.Get(r, colIdentities(org, project), slug, &id)
		if err != nil || !found {
			return err
		}
		out = &id
		return nil
	})
	return out, err
}

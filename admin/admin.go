// Package admin is FlagBridge's administration backend in plain Go, split by
// noun into the services it composes:
//
//   - [tenancy]: organizations, projects and environments;
//   - [keys]: API keys, their secrets' digests and last use;
//   - [customers]: identities, the customers whose keys share limits;
//   - [flags]: each environment's flag set, and testing sessions;
//   - [identity]: accounts, members, invitations and login sessions;
//   - [audit]: the audit log, which each of them writes in the
//     transaction of every change.
//
// Each keeps its rules, and lists its collections in its collections.go.
// What spans nouns is here: the bootstrap of a deployment and the deletion
// of a project, each in one transaction. The REST API, GraphQL and the
// dashboard are thin layers over these services, and every operation
// decides who may do what by asking authz.Permits about its principal.
// Errors meant for the caller are *apierror.Error values; any other error
// is a storage failure.
package admin

import (
	"context"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Service is the administration backend: the nouns' services over one
// store and one clock.
type Service struct {
	Tenancy *tenancy.Service
	Keys    *keys.Service
	// Identities are the customers whose keys share limits (the API's
	// "identities"); Identity is the people who log in.
	Identities *customers.Service
	Flags      *flags.Service
	Identity   *identity.Service
	// Audit reads the audit log, which every service above writes as it
	// changes state.
	Audit *audit.Service

	env *docs.Env
}

// New returns the services over st.
func New(st store.Store) *Service {
	env := &docs.Env{Store: st, Now: time.Now}
	ks := keys.New(env)
	return &Service{
		Tenancy:    tenancy.New(env),
		Keys:       ks,
		Identities: customers.New(env),
		Flags:      flags.New(env),
		Identity:   identity.New(env, ks),
		Audit: audit.New(env, func(r store.Reader, org, project string) error {
			var p tenancy.Project
			return tenancy.MustGetProject(r, org, project, &p)
		}),
		env: env,
	}
}

// SetClock replaces every service's clock, for tests.
func (s *Service) SetClock(now func() time.Time) { s.env.Now = now }

// Store returns the underlying store.
func (s *Service) Store() store.Store { return s.env.Store }

// DeleteProject deletes a project with its environments, keys, identities,
// flag sets (and their history), testing sessions and webhooks, and takes it out of every Scoped key that lists it,
// in one transaction; every instance drops what it cached of them. It takes
// a principal covering the whole project.
func (s *Service) DeleteProject(ctx context.Context, p *authz.Principal, slug string) error {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write,
		Target: authz.Project(p.Org(), slug), Action: "delete"}); err != nil {
		return err
	}
	return s.env.Update(ctx, func(tx store.Writer) error {
		var pr tenancy.Project
		if err := tenancy.MustGetProject(tx, p.Org(), slug, &pr); err != nil {
			return err
		}
		envs, err := tenancy.ProjectEnvironments(tx, p.Org(), slug)
		if err != nil {
			return err
		}
		if err := s.Keys.DeleteProject(tx, p.Org(), slug); err != nil {
			return err
		}
		if err := s.Identities.DeleteProject(tx, p.Org(), slug); err != nil {
			return err
		}
		if err := s.Flags.DeleteProject(tx, p.Org(), slug, envs); err != nil {
			return err
		}
		if err := s.Audit.DeleteProject(tx, p.Org(), slug); err != nil {
			return err
		}
		if err := tenancy.DeleteProject(tx, p.Org(), slug); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Project: slug, Action: audit.ProjectDeleted,
			Target: audit.Target{Type: "project", ID: slug}})
	})
}

// SweepAudit deletes every organization's audit entries past the log's
// retention, and returns how many days of entries it deleted.
func (s *Service) SweepAudit(ctx context.Context) (int, error) {
	var orgs []string
	if err := s.env.View(ctx, func(r store.Reader) error {
		all, err := tenancy.Organizations(r)
		for _, o := range all {
			orgs = append(orgs, o.ID)
		}
		return err
	}); err != nil {
		return 0, err
	}
	return s.Audit.Sweep(ctx, orgs)
}

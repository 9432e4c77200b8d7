// Package tenancy holds FlagBridge's tenants: organizations, their projects
// and each project's environments. Every other noun lives inside one of
// them, so it also answers, inside their transactions, whether a project or
// environment exists.
package tenancy

import (
	"context"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/internal/input"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// DefaultEnvironments are the environments every new project starts with.
var DefaultEnvironments = []string{"production", "staging", "development"}

// Organization owns projects, members and the keys that manage them.
type Organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Project groups environments, keys and flags. Its slug is unique within its
// organization and is how the API names it.
type Project struct {
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Environment is one stage of a project, such as production.
type Environment struct {
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateProjectInput is the body of POST /v1/projects.
type CreateProjectInput struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// CreateEnvironmentInput is the body of POST /v1/projects/{p}/environments.
type CreateEnvironmentInput struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// Service manages organizations, projects and environments.
type Service struct {
	env *docs.Env
}

// New returns the service over env.
func New(env *docs.Env) *Service { return &Service{env: env} }

// readProject is what reading a project, or a part of it, needs.
func readProject(org, slug string) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Project(org, slug), Partial: true}
}

// ListProjects returns the projects the caller can see: every project of
// its organization its scope reaches.
func (s *Service) ListProjects(ctx context.Context, p *authz.Principal) ([]Project, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read}); err != nil {
		return nil, err
	}
	var out []Project
	err := s.env.View(ctx, func(r store.Reader) error {
		all, err := docs.List[Project](r, colProjects(p.Org()))
		if err != nil {
			return err
		}
		out = all[:0]
		for _, pr := range all {
			if authz.Allows(p, readProject(p.Org(), pr.Slug)) {
				out = append(out, pr)
			}
		}
		return nil
	})
	return out, err
}

// CreateProject creates a project with the default environments, which it
// returns with it. Only a principal covering the whole organization may.
func (s *Service) CreateProject(ctx context.Context, p *authz.Principal, in CreateProjectInput) (*Project, []Environment, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write,
		Target: authz.Organization(p.Org()), Action: "create projects in"}); err != nil {
		return nil, nil, err
	}
	if err := input.Slug("slug", in.Slug); err != nil {
		return nil, nil, err
	}
	name, err := input.Name("name", in.Name, in.Slug, false)
	if err != nil {
		return nil, nil, err
	}
	now := s.env.Timestamp()
	pr := &Project{Slug: in.Slug, Name: name, CreatedAt: now}
	envs := make([]Environment, len(DefaultEnvironments))
	for i, env := range DefaultEnvironments {
		envs[i] = Environment{Slug: env, Name: env, CreatedAt: now}
	}
	err = s.env.Update(ctx, func(tx store.Writer) error {
		var existing Project
		found, err := docs.Get(tx, colProjects(p.Org()), in.Slug, &existing)
		if err != nil {
			return err
		}
		if found {
			return apierror.Conflict("project %q already exists", in.Slug)
		}
		if err := docs.Put(tx, colProjects(p.Org()), pr.Slug, pr); err != nil {
			return err
		}
		for _, e := range envs {
			if err := docs.Put(tx, colEnvironments(p.Org(), pr.Slug), e.Slug, e); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Project: pr.Slug, Action: audit.ProjectCreated,
			Target: audit.Target{Type: "project", ID: pr.Slug}})
	})
	if err != nil {
		return nil, nil, err
	}
	docs.SortBy(envs, func(a, b *Environment) bool { return a.Slug < b.Slug })
	return pr, envs, nil
}

// GetProject returns one project and the environments of it the caller's
// scope reaches (all of them, but for an environment key).
func (s *Service) GetProject(ctx context.Context, p *authz.Principal, slug string) (*Project, []Environment, error) {
	if err := authz.Permits(p, readProject(p.Org(), slug)); err != nil {
		return nil, nil, err
	}
	var pr Project
	var envs []Environment
	err := s.env.View(ctx, func(r store.Reader) error {
		if err := MustGetProject(r, p.Org(), slug, &pr); err != nil {
			return err
		}
		all, err := docs.List[Environment](r, colEnvironments(p.Org(), slug))
		if err != nil {
			return err
		}
		for _, e := range all {
			if authz.Allows(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read,
				Target: authz.Environment(p.Org(), slug, e.Slug)}) {
				envs = append(envs, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return &pr, envs, nil
}

// ListEnvironments returns the environments of a project the caller's scope
// reaches.
func (s *Service) ListEnvironments(ctx context.Context, p *authz.Principal, project string) ([]Environment, error) {
	_, envs, err := s.GetProject(ctx, p, project)
	return envs, err
}

// CreateEnvironment adds an environment to a project, which takes a
// principal covering the whole project.
func (s *Service) CreateEnvironment(ctx context.Context, p *authz.Principal, project string, in CreateEnvironmentInput) (*Environment, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Write,
		Target: authz.Project(p.Org(), project), Action: "add environments to"}); err != nil {
		return nil, err
	}
	if err := input.Slug("slug", in.Slug); err != nil {
		return nil, err
	}
	name, err := input.Name("name", in.Name, in.Slug, false)
	if err != nil {
		return nil, err
	}
	e := &Environment{Slug: in.Slug, Name: name, CreatedAt: s.env.Timestamp()}
	err = s.env.Update(ctx, func(tx store.Writer) error {
		var pr Project
		if err := MustGetProject(tx, p.Org(), project, &pr); err != nil {
			return err
		}
		var existing Environment
		found, err := docs.Get(tx, colEnvironments(p.Org(), project), in.Slug, &existing)
		if err != nil {
			return err
		}
		if found {
			return apierror.Conflict("environment %q already exists in project %q", in.Slug, project)
		}
		if err := docs.Put(tx, colEnvironments(p.Org(), project), e.Slug, e); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Project: project, Environment: e.Slug,
			Action: audit.EnvironmentCreated, Target: audit.Target{Type: "environment", ID: e.Slug}})
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// MustGetProject reads a project or fails with NOT_FOUND.
func MustGetProject(r store.Reader, org, slug string, p *Project) error {
	found, err := docs.Get(r, colProjects(org), slug, p)
	if err != nil {
		return err
	}
	if !found {
		return apierror.NotFound("project %q not found", slug)
	}
	return nil
}

// EnvironmentExists fails with NOT_FOUND unless the project and its
// environment exist.
func EnvironmentExists(r store.Reader, org, project, env string) error {
	var p Project
	if err := MustGetProject(r, org, project, &p); err != nil {
		return err
	}
	var e Environment
	found, err := docs.Get(r, colEnvironments(org, project), env, &e)
	if err != nil {
		return err
	}
	if !found {
		return apierror.NotFound("project %q has no environment %q", project, env)
	}
	return nil
}

// ProjectEnvironments lists a project's environments, inside a transaction.
func ProjectEnvironments(r store.Reader, org, project string) ([]Environment, error) {
	return docs.List[Environment](r, colEnvironments(org, project))
}

// DeleteProject deletes a project and its environments, inside a
// transaction that also deletes what lives in them (see admin.Service).
func DeleteProject(tx store.Writer, org, slug string) error {
	if err := tx.DeleteCollection(colEnvironments(org, slug)); err != nil {
		return err
	}
	return tx.Delete(colProjects(org), slug)
}

// Organizations lists every organization, inside a transaction.
func Organizations(r store.Reader) ([]Organization, error) {
	return docs.List[Organization](r, colOrgs)
}

// GetOrganization reads one organization; found is false if there is none.
func GetOrganization(r store.Reader, id string) (org Organization, found bool, err error) {
	found, err = docs.Get(r, colOrgs, id, &org)
	return org, found, err
}

// PutOrganization writes an organization, inside a transaction.
func PutOrganization(tx store.Writer, org Organization) error {
	return docs.Put(tx, colOrgs, org.ID, org)
}

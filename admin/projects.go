package admin

import (
	"context"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// DefaultEnvironments are the environments every new project starts with.
var DefaultEnvironments = []string{"production", "staging", "development"}

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

// ListProjects returns the projects the caller can see: all of its
// organization's for an organization-wide key, else its own.
func (s *Service) ListProjects(ctx context.Context, caller *apikey.Record) ([]Project, error) {
	if err := authorize(caller, readAccess, ""); err != nil {
		return nil, err
	}
	var out []Project
	err := s.view(ctx, func(r store.Reader) error {
		all, err := listJSON[Project](r, colProjects(caller.OrgID))
		if err != nil {
			return err
		}
		out = all[:0]
		for _, p := range all {
			if caller.CoversProject(p.Slug) {
				out = append(out, p)
			}
		}
		return nil
	})
	return out, err
}

// CreateProject creates a project with the default environments. Only an
// organization-wide key may.
func (s *Service) CreateProject(ctx context.Context, caller *apikey.Record, in CreateProjectInput) (*Project, error) {
	if err := authorize(caller, writeAccess, ""); err != nil {
		return nil, err
	}
	if err := requireOrgWide(caller, "create projects"); err != nil {
		return nil, err
	}
	if err := requireUnscoped(caller, "create projects"); err != nil {
		return nil, err
	}
	if err := validSlug("slug", in.Slug); err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, in.Slug, false)
	if err != nil {
		return nil, err
	}
	now := s.timestamp()
	p := &Project{Slug: in.Slug, Name: name, CreatedAt: now}
	err = s.update(ctx, func(tx store.Writer) error {
		var existing Project
		found, err := getJSON(tx, colProjects(caller.OrgID), in.Slug, &existing)
		if err != nil {
			return err
		}
		if found {
			return apierror.Conflict("project %q already exists", in.Slug)
		}
		if err := putJSON(tx, colProjects(caller.OrgID), p.Slug, p); err != nil {
			return err
		}
		for _, env := range DefaultEnvironments {
			e := Environment{Slug: env, Name: env, CreatedAt: now}
			if err := putJSON(tx, colEnvironments(caller.OrgID, p.Slug), env, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// GetProject returns one project and its environments.
func (s *Service) GetProject(ctx context.Context, caller *apikey.Record, slug string) (*Project, []Environment, error) {
	if err := authorize(caller, readAccess, slug); err != nil {
		return nil, nil, err
	}
	var p Project
	var envs []Environment
	err := s.view(ctx, func(r store.Reader) error {
		if err := mustGetProject(r, caller.OrgID, slug, &p); err != nil {
			return err
		}
		var err error
		envs, err = listJSON[Environment](r, colEnvironments(caller.OrgID, slug))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &p, envs, nil
}

// DeleteProject deletes a project with its environments, keys, flag sets
// and testing sessions, in one transaction; every instance drops the
// deleted keys and flag sets from its caches.
func (s *Service) DeleteProject(ctx context.Context, caller *apikey.Record, slug string) error {
	if err := authorize(caller, writeAccess, slug); err != nil {
		return err
	}
	return s.update(ctx, func(tx store.Writer) error {
		var p Project
		if err := mustGetProject(tx, caller.OrgID, slug, &p); err != nil {
			return err
		}
		keys, err := listJSON[apikey.Record](tx, colKeys(caller.OrgID))
		if err != nil {
			return err
		}
		for i := range keys {
			k := &keys[i]
			if k.Project != slug {
				continue
			}
			if err := s.deleteKey(tx, k); err != nil {
				return err
			}
		}
		envs, err := listJSON[Environment](tx, colEnvironments(caller.OrgID, slug))
		if err != nil {
			return err
		}
		for _, e := range envs {
			tx.Publish(TopicFlags, []byte(FlagSetRef{caller.OrgID, slug, e.Slug}.String()))
		}
		if err := tx.DeleteCollection(colFlagSets(caller.OrgID, slug)); err != nil {
			return err
		}
		if err := deleteProjectSessions(tx, caller.OrgID, slug); err != nil {
			return err
		}
		if err := tx.DeleteCollection(colEnvironments(caller.OrgID, slug)); err != nil {
			return err
		}
		return tx.Delete(colProjects(caller.OrgID), slug)
	})
}

// ListEnvironments returns a project's environments.
func (s *Service) ListEnvironments(ctx context.Context, caller *apikey.Record, project string) ([]Environment, error) {
	_, envs, err := s.GetProject(ctx, caller, project)
	return envs, err
}

// CreateEnvironment adds an environment to a project.
func (s *Service) CreateEnvironment(ctx context.Context, caller *apikey.Record, project string, in CreateEnvironmentInput) (*Environment, error) {
	if err := authorize(caller, writeAccess, project); err != nil {
		return nil, err
	}
	if err := validSlug("slug", in.Slug); err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, in.Slug, false)
	if err != nil {
		return nil, err
	}
	e := &Environment{Slug: in.Slug, Name: name, CreatedAt: s.timestamp()}
	err = s.update(ctx, func(tx store.Writer) error {
		var p Project
		if err := mustGetProject(tx, caller.OrgID, project, &p); err != nil {
			return err
		}
		var existing Environment
		found, err := getJSON(tx, colEnvironments(caller.OrgID, project), in.Slug, &existing)
		if err != nil {
			return err
		}
		if found {
			return apierror.Conflict("environment %q already exists in project %q", in.Slug, project)
		}
		return putJSON(tx, colEnvironments(caller.OrgID, project), e.Slug, e)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// mustGetProject reads a project or fails with NOT_FOUND.
func mustGetProject(r store.Reader, org, slug string, p *Project) error {
	found, err := getJSON(r, colProjects(org), slug, p)
	if err != nil {
		return err
	}
	if !found {
		return apierror.NotFound("project %q not found", slug)
	}
	return nil
}

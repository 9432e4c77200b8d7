package authz

import (
	"fmt"
	"slices"
)

// Scope is a part of an organization: the whole of it (Project empty), only
// the projects Resources lists (an organization-wide Scoped key), one
// project (Environment empty), or one environment of a project.
type Scope struct {
	Org         string
	Project     string
	Environment string
	// Resources narrows an organization-wide scope to these projects;
	// empty means every project. A project scope never has resources.
	Resources []string
}

// Organization is the scope of a whole organization.
func Organization(org string) Scope { return Scope{Org: org} }

// Project is the scope of one project and all its environments.
func Project(org, project string) Scope { return Scope{Org: org, Project: project} }

// Environment is the scope of one environment of a project.
func Environment(org, project, env string) Scope {
	return Scope{Org: org, Project: project, Environment: env}
}

// IsZero reports whether s names nothing, which as a [Need]'s target means
// that the request acts on no resource in particular.
func (s Scope) IsZero() bool {
	return s.Org == "" && s.Project == "" && s.Environment == "" && len(s.Resources) == 0
}

// OrgWide reports whether s spans projects rather than being one.
func (s Scope) OrgWide() bool { return s.Project == "" }

// Covers reports whether everything in t is within s: t belongs to s's
// organization, to s's project (or, for an organization-wide s narrowed to
// resources, to one of them, or t is itself narrowed to some of them), and
// to s's environment if s has one. An environment scope therefore never
// covers its whole project.
func (s Scope) Covers(t Scope) bool {
	if s.Org != t.Org {
		return false
	}
	switch {
	case s.Project != "":
		if t.Project != s.Project {
			return false
		}
	case len(s.Resources) > 0:
		if t.Project != "" {
			if !slices.Contains(s.Resources, t.Project) {
				return false
			}
		} else if len(t.Resources) == 0 || !subset(t.Resources, s.Resources) {
			// An organization-wide target is within a Scoped s only if it
			// is narrowed to projects s has.
			return false
		}
	}
	return s.Environment == "" || t.Environment == s.Environment
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// String describes s for messages and logs: "organization org_1",
// "project my-app", "environment my-app/production" or "projects [a b]".
func (s Scope) String() string {
	switch {
	case s.Environment != "":
		return fmt.Sprintf("environment %s/%s", s.Project, s.Environment)
	case s.Project != "":
		return "project " + s.Project
	case len(s.Resources) > 0:
		return fmt.Sprintf("projects %v", s.Resources)
	}
	return "organization " + s.Org
}

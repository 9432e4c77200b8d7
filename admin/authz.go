package admin

import (
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
)

// Access is what an operation needs.
type access uint8

const (
	readAccess access = iota
	writeAccess
)

// authorize checks that caller is an admin key holding the permission the
// operation needs and, if project is not empty, that it may act on that
// project. It is the one place where the admin services decide who may do
// what; the edge's scope table has already refused other key types, and
// this repeats that check so that no future caller of the services can
// skip it.
func authorize(caller *apikey.Record, need access, project string) error {
	if caller == nil {
		return apierror.InvalidKey
	}
	if caller.Type != apikey.Admin {
		return apierror.WrongKeyType
	}
	switch need {
	case writeAccess:
		if !caller.Permissions.Has(apikey.Write) {
			return readOnly(caller)
		}
	case readAccess:
		if !caller.Permissions.Has(apikey.Read) {
			return apierror.Forbidden("This key lacks the READ permission")
		}
	}
	if project != "" && !caller.CoversProject(project) {
		if !caller.OrgWide() {
			return apierror.Forbidden("This key belongs to project %q and cannot access project %q", caller.Project, project)
		}
		return apierror.Forbidden("This key is limited to projects %v and cannot access project %q", caller.Resources, project)
	}
	return nil
}

// requireOrgWide refuses project-scoped keys for operations on the whole
// organization, such as creating a project.
func requireOrgWide(caller *apikey.Record, what string) error {
	if !caller.OrgWide() {
		return apierror.Forbidden("This key is scoped to project %q and cannot %s; use an organization-wide admin key", caller.Project, what)
	}
	return nil
}

// requireUnscoped refuses Scoped keys (limited to listed projects) for
// operations that would reach beyond those projects.
func requireUnscoped(caller *apikey.Record, what string) error {
	if len(caller.Resources) > 0 {
		return apierror.Forbidden("This key is limited to projects %v and cannot %s", caller.Resources, what)
	}
	return nil
}

package graphqlapi_test

import (
	"testing"

	"github.com/flagbridge/flagbridge/admin/keys"
)

// auditLog pages newest first as GET /v1/audit-log does, with what the
// caller's scope covers: a project's key sees that project's entries and
// none of the organization's; a bad filter is a BAD_USER_INPUT naming it.
func TestGraphQLAuditLog(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
		aKey, aRec := w.mint(t, o.rootKey, "a", keys.CreateInput{Permissions: []string{"READ"}})
		type entry struct {
			ID, Action, Project, Outcome string
			Target                       struct{ Type, ID string }
			Actor                        struct{ Type, ID, KeyType string }
		}
		type page struct {
			Entries    []entry
			NextCursor *string
		}
		const q = `query($after: String, $project: ID) { auditLog(first: 2, after: $after, project: $project) {
			entries { id action project outcome target { type id } actor { type id keyType } } nextCursor } }`
		var all []entry
		var after any
		for {
			var p page
			w.gql(t, o.rootKey, q, map[string]any{"after": after}).ok(t).field(t, "auditLog", &p)
			all = append(all, p.Entries...)
			if p.NextCursor == nil {
				break
			}
			after = *p.NextCursor
		}
		// The bootstrap, two projects, the key: newest first.
		if len(all) != 4 || all[0].Action != "api_key.created" || all[0].Target.ID != aRec.ID || all[3].Action != "organization.bootstrapped" {
			t.Fatalf("the organization's log: %+v", all)
		}
		if all[0].Actor.Type != "api_key" || all[0].Actor.ID != o.root.ID || all[0].Actor.KeyType != "admin" || all[0].Outcome != "success" {
			t.Fatalf("actor: %+v", all[0])
		}
		var p page
		w.gql(t, aKey, q, nil).ok(t).field(t, "auditLog", &p)
		if len(p.Entries) != 2 {
			t.Fatalf("the project key sees %+v", p.Entries)
		}
		for _, e := range p.Entries {
			if e.Project != "a" {
				t.Fatalf("the project key sees %+v", e)
			}
		}
		w.gql(t, aKey, q, map[string]any{"project": "b"}).forbidden(t)
		w.gql(t, o.rootKey, `{ auditLog(action: "flag.exploded") { nextCursor } }`, nil).badInput(t, `action: no action "flag.exploded"`)
	})
}

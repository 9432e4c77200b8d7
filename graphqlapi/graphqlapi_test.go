package graphqlapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/graphqlapi"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// unauthenticatedBody is the exact answer to a request without a valid key.
const unauthenticatedBody = `{"errors":[{"message":"You must be authenticated to perform this action","extensions":{"code":"UNAUTHENTICATED"}}]}`

// The documents clients send, exactly as the issue gives them.
const (
	viewerQuery    = `{ viewer { id email } }`
	createMutation = `mutation CreateKey($input: CreateAPIKeyInput!) {
  createAPIKey(input: $input) {
    id
    key
    name
    createdAt
    expiresAt
  }
}`
	createVariables = `{"input":{"name":"CI/CD Pipeline","permissions":["READ","WRITE"],"expiresIn":"30d"}}`
	revokeMutation  = `mutation RevokeKey($id: ID!) {
  revokeAPIKey(id: $id) {
    id
    revokedAt
  }
}`
)

const (
	fullViewer = `{ viewer { id email name role
  organization { id name members { id email name role } }
  key { id name type kind permissions project environment resources expiresAt } } }`
	keyFields = `id name type kind permissions project environment resources hint status
  owner { id email name role } createdAt expiresAt revokedAt rotatedAt lastUsedAt`
	createFull = `mutation($input: CreateAPIKeyInput!) { createAPIKey(input: $input) {
  id key name type kind permissions project environment resources hint createdAt expiresAt previousKeyValidUntil } }`
	rotateFull = `mutation($id: ID!, $grace: String) { rotateAPIKey(id: $id, gracePeriod: $grace) {
  id key name type kind permissions project environment resources hint createdAt expiresAt previousKeyValidUntil } }`
	revokeFull = `mutation($id: ID!) { revokeAPIKey(id: $id) { id revokedAt } }`
)

// input is a createAPIKey input.
type input map[string]any

func vars(in input) map[string]any { return map[string]any{"input": map[string]any(in)} }

// create runs createAPIKey and returns the created key, failing unless it
// succeeded.
func (w *world) create(t *testing.T, key string, in input) keyView {
	t.Helper()
	var k keyView
	w.gql(t, key, createFull, vars(in)).ok(t).field(t, "createAPIKey", &k)
	if !fullKey.MatchString(k.Key) || apikey.Hint(k.Key) != k.Hint {
		t.Fatalf("created key %q with hint %q", k.Key, k.Hint)
	}
	return k
}

// listKeys runs apiKeys (of project, if not empty) and returns the keys.
func (w *world) listKeys(t *testing.T, key, project string) []keyView {
	t.Helper()
	var v map[string]any
	if project != "" {
		v = map[string]any{"p": project}
	}
	var keys []keyView
	w.gql(t, key, `query($p: ID) { apiKeys(project: $p) { `+keyFields+` } }`, v).ok(t).field(t, "apiKeys", &keys)
	return keys
}

// works reports whether key authenticates on /graphql, through the edge.
func (w *world) works(t *testing.T, key string) bool {
	t.Helper()
	r := w.gql(t, key, viewerQuery, nil)
	switch {
	case r.Status == http.StatusOK && len(r.Errors) == 0:
		return true
	case r.Status == http.StatusUnauthorized && r.Body == unauthenticatedBody:
		return false
	}
	t.Fatalf("viewer: %d %s", r.Status, r.Body)
	return false
}

// stopsWorking reports whether key is refused on /graphql within a few
// seconds. A revocation or rotation reaches the edge's key cache through
// the change feed, as on every instance: asynchronously, but at once.
func (w *world) stopsWorking(t *testing.T, key string) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if !w.works(t, key) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}

func TestGraphQLServeWithoutCaller(t *testing.T) {
	t.Parallel()
	h := graphqlapi.NewHandler(nil, nil, nil)
	rec := httptest.NewRecorder()
	h.Serve(rec, httptest.NewRequest("POST", "/graphql", strings.NewReader(`{"query":"{ viewer { id } }"}`)), nil, nil)
	if rec.Code != http.StatusUnauthorized || rec.Body.String() != unauthenticatedBody {
		t.Fatalf("no caller: %d %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="flagbridge"` {
		t.Fatalf("WWW-Authenticate %q", got)
	}
}

func TestGraphQLUnauthenticated(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	revoked, revokedRec := w.mint(t, o.rootKey, "a", keys.CreateInput{})
	if _, err := w.svc.Keys.RevokeKey(context.Background(), o.rootP, revokedRec.ID); err != nil {
		t.Fatal(err)
	}
	expired, _ := w.mintAt(t, -2*time.Minute, o.rootKey, "a", keys.CreateInput{ExpiresIn: "1m"})
	unknown, err := apikey.Generate(apikey.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{"no key": "", "unknown key": unknown, "revoked key": revoked, "expired key": expired} {
		for _, q := range []string{viewerQuery, revokeFull} {
			r := w.gql(t, key, q, map[string]any{"id": revokedRec.ID})
			if r.Status != http.StatusUnauthorized || r.Body != unauthenticatedBody {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
	}
	if !w.works(t, o.rootKey) {
		t.Fatal("the bootstrap key does not work")
	}
}

// TestGraphQLClientRequests sends exactly the documents of the issue.
func TestGraphQLClientRequests(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "web")

		var viewer struct{ ID, Email string }
		r := w.gql(t, o.rootKey, viewerQuery, nil).ok(t)
		r.field(t, "viewer", &viewer)
		if viewer.ID != o.owner.ID || viewer.Email != "owner@example.com" || len(r.Data) != 1 {
			t.Fatalf("viewer: %s", r.Body)
		}

		body := `{"query":` + quote(createMutation) + `,"variables":` + createVariables + `}`
		before := time.Now().UTC().Truncate(time.Second)
		r = w.send(t, o.rootKey, request{body: body}).ok(t)
		after := time.Now().UTC()
		var created map[string]any
		r.field(t, "createAPIKey", &created)
		if got := slices.Sorted(maps.Keys(created)); !slices.Equal(got, []string{"createdAt", "expiresAt", "id", "key", "name"}) {
			t.Fatalf("createAPIKey answered %v", got)
		}
		var k keyView
		r.field(t, "createAPIKey", &k)
		if !strings.HasPrefix(k.ID, "key_") || !strings.HasPrefix(k.Key, "fb_admin_") || k.Name != "CI/CD Pipeline" {
			t.Fatalf("created %s", r.Body)
		}
		if k.CreatedAt == nil || k.CreatedAt.Before(before) || k.CreatedAt.After(after) ||
			k.ExpiresAt == nil || !k.ExpiresAt.Equal(k.CreatedAt.Add(30*24*time.Hour)) {
			t.Fatalf("createdAt/expiresAt: %s", r.Body)
		}
		// The new key is the caller's kind of key, owned by the same
		// member, and works at once.
		var me struct {
			ID  string
			Key struct {
				ID, Kind    string
				Project     *string
				Permissions []string
				ExpiresAt   *time.Time
			}
		}
		w.gql(t, k.Key, `{ viewer { id key { id kind project permissions expiresAt } } }`, nil).ok(t).field(t, "viewer", &me)
		if me.ID != o.owner.ID || me.Key.ID != k.ID || me.Key.Kind != "FULL_ACCESS" || me.Key.Project != nil ||
			!slices.Equal(me.Key.Permissions, []string{"READ", "WRITE"}) || !me.Key.ExpiresAt.Equal(*k.ExpiresAt) {
			t.Fatalf("the new key's viewer: %+v", me)
		}

		// Revoked by the key it came from: answered with the time, and
		// refused from then on.
		r = w.gql(t, o.rootKey, revokeMutation, map[string]any{"id": k.ID}).ok(t)
		var rev struct {
			ID        string
			RevokedAt time.Time
		}
		r.field(t, "revokeAPIKey", &rev)
		if rev.ID != k.ID || rev.RevokedAt.Before(before) || rev.RevokedAt.After(time.Now()) {
			t.Fatalf("revoked: %s", r.Body)
		}
		if !w.stopsWorking(t, k.Key) {
			t.Fatal("the revoked key still works")
		}
		for _, listed := range w.listKeys(t, o.rootKey, "") {
			if listed.ID == k.ID && (listed.Status != "REVOKED" || !listed.RevokedAt.Equal(rev.RevokedAt)) {
				t.Fatalf("listed after revocation: %+v", listed)
			}
		}
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type viewerView struct {
	ID, Email, Name, Role string
	Organization          struct {
		ID, Name string
		Members  []struct{ ID, Email, Name, Role string }
	}
	Key struct {
		ID, Name, Type, Kind string
		Permissions          []string
		Project, Environment *string
		Resources            []string
		ExpiresAt            *time.Time
	}
}

func TestGraphQLViewer(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
		other := w.newOrg(t, "Globex", "hank@globex.example", "Hank Scorpio", "a")
		ada := w.addMember(t, o, "ada@example.com", "Ada Admin", authz.RoleAdmin)
		adaKey, adaRec := w.keyFor(t, o, "ada@example.com")

		// Keys made with a key belong to that key's owner, however far
		// down the line.
		ro := w.create(t, o.rootKey, input{"name": "ro", "permissions": []string{"READ"}, "project": "a", "expiresIn": "2h"})
		scoped := w.create(t, adaKey, input{"name": "scoped", "permissions": []string{"READ", "WRITE"}, "resources": []string{"b", "a"}})
		fromScoped := w.create(t, scoped.Key, input{"name": "from scoped", "permissions": []string{"READ"}, "project": "b"})

		type want struct {
			key            string
			owner          identity.Member
			org            *org
			id, name, kind string
			perms          []string
			project        string
			resources      []string
			expiresAt      *time.Time
			members        []identity.Member
		}
		cases := []want{
			{o.rootKey, o.owner, o, o.root.ID, "bootstrap", "FULL_ACCESS", []string{"READ", "WRITE"}, "", nil, nil, []identity.Member{o.owner, ada}},
			{adaKey, ada, o, adaRec.ID, "for ada@example.com", "FULL_ACCESS", []string{"READ", "WRITE"}, "", nil, nil, []identity.Member{o.owner, ada}},
			{ro.Key, o.owner, o, ro.ID, "ro", "READ_ONLY", []string{"READ"}, "a", nil, ro.ExpiresAt, []identity.Member{o.owner, ada}},
			{scoped.Key, ada, o, scoped.ID, "scoped", "SCOPED", []string{"READ", "WRITE"}, "", []string{"a", "b"}, nil, []identity.Member{o.owner, ada}},
			{fromScoped.Key, ada, o, fromScoped.ID, "from scoped", "READ_ONLY", []string{"READ"}, "b", nil, nil, []identity.Member{o.owner, ada}},
			{other.rootKey, other.owner, other, other.root.ID, "bootstrap", "FULL_ACCESS", []string{"READ", "WRITE"}, "", nil, nil, []identity.Member{other.owner}},
		}
		for _, c := range cases {
			var v viewerView
			w.gql(t, c.key, fullViewer, nil).ok(t).field(t, "viewer", &v)
			if v.ID != c.owner.ID || v.Email != c.owner.Email || v.Name != c.owner.Name || v.Role != string(c.owner.Role) {
				t.Errorf("%s: viewer %+v, want member %+v", c.name, v, c.owner)
			}
			if v.Organization.ID != c.org.id || v.Organization.Name != c.org.name || len(v.Organization.Members) != len(c.members) {
				t.Errorf("%s: organization %+v", c.name, v.Organization)
			}
			for i, m := range c.members {
				if i < len(v.Organization.Members) {
					got := v.Organization.Members[i]
					if got.ID != m.ID || got.Email != m.Email || got.Name != m.Name || got.Role != string(m.Role) {
						t.Errorf("%s: member %d is %+v, want %+v", c.name, i, got, m)
					}
				}
			}
			k := v.Key
			if k.ID != c.id || k.Name != c.name || k.Type != "ADMIN" || k.Kind != c.kind ||
				!slices.Equal(k.Permissions, c.perms) || str(k.Project) != strOr(c.project) || k.Environment != nil ||
				!slices.Equal(k.Resources, c.resources) || !sameTime(k.ExpiresAt, c.expiresAt) {
				t.Errorf("%s: key %+v", c.name, k)
			}
		}
		if ro.ExpiresAt == nil {
			t.Fatal("the read-only key has no expiry")
		}
	})
}

func strOr(s string) string {
	if s == "" {
		return "<null>"
	}
	return s
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// keySpec describes a key a test made, to compute what each caller sees.
type keySpec struct {
	secret    string
	rec       *apikey.Record
	project   string
	resources []string
	status    string
	lastUsed  *time.Time
}

// sees is the rule for apiKeys without a project, from the issue: every
// key the caller's scope covers. A project key covers its project's keys;
// an unscoped organization-wide key every key; a Scoped key the keys of its
// projects, and organization-wide keys limited to some of them.
func sees(caller, key keySpec) bool {
	inScope := func(p string) bool {
		if caller.project != "" && caller.project != p {
			return false
		}
		return len(caller.resources) == 0 || slices.Contains(caller.resources, p)
	}
	if key.project != "" {
		return inScope(key.project)
	}
	if caller.project != "" {
		return false
	}
	if len(caller.resources) == 0 {
		return true
	}
	if len(key.resources) == 0 {
		return false
	}
	for _, p := range key.resources {
		if !slices.Contains(caller.resources, p) {
			return false
		}
	}
	return true
}

func TestGraphQLAPIKeys(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
		other := w.newOrg(t, "Globex", "hank@globex.example", "Hank Scorpio", "a", "zeta")
		w.mint(t, other.rootKey, "a", keys.CreateInput{Name: "globex a"})
		w.mint(t, other.rootKey, "", keys.CreateInput{Name: "globex scoped", Resources: []string{"a"}})

		spec := func(secret string, rec *apikey.Record) keySpec {
			return keySpec{secret: secret, rec: rec, project: rec.Project, resources: rec.Resources, status: "ACTIVE"}
		}
		all := []keySpec{{secret: o.rootKey, rec: o.root, status: "ACTIVE"}}
		add := func(project string, in keys.CreateInput) keySpec {
			s, rec := w.mint(t, o.rootKey, project, in)
			k := spec(s, rec)
			all = append(all, k)
			return k
		}
		aAdmin := add("a", keys.CreateInput{Name: "a admin"})
		add("a", keys.CreateInput{Name: "a live", Type: "live", Environment: "production", Permissions: []string{"READ"}})
		add("b", keys.CreateInput{Name: "b test", Type: "test", Environment: "staging", ExpiresIn: "90d"})
		scopedA := add("", keys.CreateInput{Name: "scoped a", Resources: []string{"a"}})
		add("", keys.CreateInput{Name: "scoped ab", Resources: []string{"a", "b"}})
		orgRO := add("", keys.CreateInput{Name: "org read-only", Permissions: []string{"READ"}})
		bRevoked := add("b", keys.CreateInput{Name: "b revoked"})
		if _, err := w.svc.Keys.RevokeKey(ctx, o.rootP, bRevoked.rec.ID); err != nil {
			t.Fatal(err)
		}
		all[len(all)-1].status = "REVOKED"
		s, rec := w.mintAt(t, -time.Hour, o.rootKey, "a", keys.CreateInput{Name: "a expired", ExpiresIn: "1m"})
		all = append(all, keySpec{secret: s, rec: rec, project: "a", status: "EXPIRED"})
		used := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
		if err := w.svc.Keys.RecordUsage(ctx, map[string]time.Time{aAdmin.rec.ID: used}); err != nil {
			t.Fatal(err)
		}
		all[1].lastUsed = &used
		// The stored records, as they are now (revoked, used).
		byID := map[string]keySpec{}
		for i := range all {
			all[i].rec = w.stored(t, o.id, all[i].rec.ID)
			byID[all[i].rec.ID] = all[i]
		}
		root := all[0]

		for _, caller := range []keySpec{root, aAdmin, scopedA, orgRO} {
			var want []string
			for _, k := range all {
				if sees(caller, k) {
					want = append(want, k.rec.ID)
				}
			}
			slices.Sort(want)
			got := w.listKeys(t, caller.secret, "")
			if !slices.Equal(ids(got), want) {
				t.Errorf("apiKeys for %q: %v, want %v", caller.rec.Name, names(got, byID), names(keyViews(want), byID))
			}
			// Oldest first.
			for i := 1; i < len(got); i++ {
				if got[i].CreatedAt.Before(*got[i-1].CreatedAt) {
					t.Errorf("apiKeys for %q not oldest first", caller.rec.Name)
				}
			}
			for _, k := range got {
				checkListed(t, k, byID[k.ID], o.owner)
			}
			// Of project a: the keys of project a, to every caller whose
			// scope covers it.
			var wantA []string
			for _, k := range all {
				if k.project == "a" {
					wantA = append(wantA, k.rec.ID)
				}
			}
			slices.Sort(wantA)
			if got := w.listKeys(t, caller.secret, "a"); !slices.Equal(ids(got), wantA) {
				t.Errorf("apiKeys(project: a) for %q: %v", caller.rec.Name, names(got, byID))
			}
		}
		// Projects outside the caller's scope are refused; a project the
		// organization does not have (another one does) is not found.
		for _, caller := range []keySpec{aAdmin, scopedA} {
			w.gql(t, caller.secret, `{ apiKeys(project: "b") { id } }`, nil).forbidden(t)
			w.gql(t, caller.secret, `{ apiKeys(project: "zeta") { id } }`, nil).forbidden(t)
		}
		r := w.gql(t, o.rootKey, `{ apiKeys(project: "zeta") { id } }`, nil).refused(t, http.StatusOK, "NOT_FOUND")
		if r.Errors[0].Message != `project "zeta" not found` {
			t.Fatalf("unknown project: %s", r.Body)
		}
		// The other organization sees its own keys only.
		for _, k := range w.listKeys(t, other.rootKey, "") {
			if _, mine := byID[k.ID]; mine || !strings.HasPrefix(k.Name, "globex") && k.Name != "bootstrap" {
				t.Errorf("Globex sees %+v", k)
			}
		}
		// Never a secret or a digest, whatever is asked (send checks every
		// response for every secret issued; this says it once more).
		r = w.gql(t, o.rootKey, `{ apiKeys { `+keyFields+` } }`, nil).ok(t)
		for _, k := range all {
			if strings.Contains(r.Body, k.secret) || strings.Contains(r.Body, apikey.DigestOf(k.secret).String()) ||
				strings.Contains(r.Body, k.secret[len(k.secret)-10:]) {
				t.Fatalf("apiKeys shows (part of) the secret of %q: %s", k.rec.Name, r.Body)
			}
		}
	})
}

// stored reads a key record directly from the store.
func (w *world) stored(t *testing.T, orgID, id string) *apikey.Record {
	t.Helper()
	var rec apikey.Record
	err := w.st.View(context.Background(), func(r store.Reader) error {
		b, err := r.Get("keys/"+orgID, id)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rec)
	})
	if err != nil {
		t.Fatalf("reading key %s: %v", id, err)
	}
	return &rec
}

func keyViews(idList []string) []keyView {
	out := make([]keyView, len(idList))
	for i, id := range idList {
		out[i].ID = id
	}
	return out
}

func names(keys []keyView, byID map[string]keySpec) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if s, ok := byID[k.ID]; ok {
			out[i] = s.rec.Name
		} else {
			out[i] = k.ID + " (" + k.Name + ")"
		}
	}
	return out
}

// checkListed compares a listed key with what was made.
func checkListed(t *testing.T, k keyView, want keySpec, owner identity.Member) {
	t.Helper()
	rec := want.rec
	kind := "FULL_ACCESS"
	switch {
	case len(rec.Resources) > 0:
		kind = "SCOPED"
	case !rec.Permissions.Has(apikey.Write):
		kind = "READ_ONLY"
	}
	var perms []string
	for _, p := range rec.Permissions.List() {
		perms = append(perms, string(p))
	}
	if k.Name != rec.Name || k.Type != strings.ToUpper(rec.Type.String()) || k.Kind != kind ||
		!slices.Equal(k.Permissions, perms) || str(k.Project) != strOr(rec.Project) ||
		str(k.Environment) != strOr(rec.Environment) || !slices.Equal(k.Resources, rec.Resources) ||
		k.Hint != apikey.Hint(want.secret) || k.Status != want.status ||
		!k.CreatedAt.Equal(rec.CreatedAt) || !sameTime(k.ExpiresAt, rec.ExpiresAt) ||
		!sameTime(k.RevokedAt, rec.RevokedAt) || !sameTime(k.RotatedAt, rec.RotatedAt) ||
		!sameTime(k.LastUsedAt, want.lastUsed) {
		t.Errorf("listed %+v\nmade %+v (status %s, last used %v)", k, rec, want.status, want.lastUsed)
	}
	if k.Owner == nil || k.Owner.ID != owner.ID || k.Owner.Email != owner.Email || k.Owner.Name != owner.Name || k.Owner.Role != string(owner.Role) {
		t.Errorf("key %q: owner %+v, want %+v", rec.Name, k.Owner, owner)
	}
}

func TestGraphQLProjects(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b", "c")
		other := w.newOrg(t, "Globex", "hank@globex.example", "Hank Scorpio", "zeta")
		if _, err := w.svc.Tenancy.CreateEnvironment(context.Background(), o.rootP, "b", tenancy.CreateEnvironmentInput{Slug: "qa", Name: "Quality"}); err != nil {
			t.Fatal(err)
		}
		aKey, _ := w.mint(t, o.rootKey, "a", keys.CreateInput{Permissions: []string{"READ"}})
		scoped, _ := w.mint(t, o.rootKey, "", keys.CreateInput{Resources: []string{"b", "c"}})
		type env struct{ ID, Name string }
		type project struct {
			ID, Name     string
			CreatedAt    time.Time
			Environments []struct {
				ID, Name  string
				CreatedAt time.Time
			}
		}
		list := func(key string) map[string][]env {
			var ps []project
			w.gql(t, key, `{ projects { id name createdAt environments { id name createdAt } } }`, nil).ok(t).field(t, "projects", &ps)
			out := map[string][]env{}
			for _, p := range ps {
				if p.Name != "Project "+p.ID || p.CreatedAt.IsZero() {
					t.Errorf("project %+v", p)
				}
				envs := []env{}
				for _, e := range p.Environments {
					if e.CreatedAt.IsZero() {
						t.Errorf("environment %+v", e)
					}
					envs = append(envs, env{e.ID, e.Name})
				}
				out[p.ID] = envs
			}
			return out
		}
		std := []env{{"development", "development"}, {"production", "production"}, {"staging", "staging"}}
		withQA := []env{{"development", "development"}, {"production", "production"}, {"qa", "Quality"}, {"staging", "staging"}}
		for _, c := range []struct {
			key  string
			want map[string][]env
		}{
			{o.rootKey, map[string][]env{"a": std, "b": withQA, "c": std}},
			{aKey, map[string][]env{"a": std}},
			{scoped, map[string][]env{"b": withQA, "c": std}},
			{other.rootKey, map[string][]env{"zeta": std}},
		} {
			if got := list(c.key); !equalJSON(got, c.want) {
				t.Errorf("projects for %s: %v, want %v", apikey.Hint(c.key), got, c.want)
			}
		}
	})
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestGraphQLKeyKinds checks the three kinds of key people talk about.
func TestGraphQLKeyKinds(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
		_, aKey := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "a key"})
		_, bKey := w.mint(t, o.rootKey, "b", keys.CreateInput{Name: "b key"})

		full := w.create(t, o.rootKey, input{"name": "full", "permissions": []string{"READ", "WRITE"}})
		readOnly := w.create(t, o.rootKey, input{"name": "read only", "permissions": []string{"READ"}})
		scoped := w.create(t, o.rootKey, input{"name": "scoped", "permissions": []string{"READ", "WRITE"}, "resources": []string{"a"}})
		for k, kind := range map[*keyView]string{&full: "FULL_ACCESS", &readOnly: "READ_ONLY", &scoped: "SCOPED"} {
			if k.Kind != kind {
				t.Errorf("%s: kind %s, want %s", k.Name, k.Kind, kind)
			}
		}
		queries := []string{fullViewer, `{ apiKeys { id } }`, `{ apiKeys(project: "a") { id } }`, `{ projects { id environments { id } } }`}

		// Full Access: everything.
		for _, q := range queries {
			w.gql(t, full.Key, q, nil).ok(t)
		}
		made := w.create(t, full.Key, input{"name": "by full", "permissions": []string{"READ"}, "project": "b"})
		w.gql(t, full.Key, rotateFull, map[string]any{"id": made.ID}).ok(t)
		w.gql(t, full.Key, revokeFull, map[string]any{"id": made.ID}).ok(t)

		// Read Only: queries work, every mutation is refused with 403 and
		// changes nothing.
		for _, q := range queries {
			w.gql(t, readOnly.Key, q, nil).ok(t)
		}
		before := w.keyState(t, o.id)
		w.gql(t, readOnly.Key, createFull, vars(input{"name": "x", "permissions": []string{"READ"}})).forbidden(t)
		w.gql(t, readOnly.Key, createFull, vars(input{"name": "x", "permissions": []string{"READ"}, "project": "a"})).forbidden(t)
		w.gql(t, readOnly.Key, rotateFull, map[string]any{"id": aKey.ID}).forbidden(t)
		w.gql(t, readOnly.Key, revokeFull, map[string]any{"id": aKey.ID}).forbidden(t)
		w.gql(t, readOnly.Key, revokeFull, map[string]any{"id": readOnly.ID}).forbidden(t)
		if !equalJSON(before, w.keyState(t, o.id)) {
			t.Fatal("a read-only key changed keys")
		}

		// Scoped to a: only a's keys and projects; nothing in b.
		var ps []struct{ ID string }
		w.gql(t, scoped.Key, `{ projects { id } }`, nil).ok(t).field(t, "projects", &ps)
		if len(ps) != 1 || ps[0].ID != "a" {
			t.Fatalf("scoped key sees projects %v", ps)
		}
		for _, k := range w.listKeys(t, scoped.Key, "") {
			if k.Project == nil && k.ID != scoped.ID || k.Project != nil && *k.Project != "a" {
				t.Errorf("scoped key sees %+v", k)
			}
		}
		before = w.keyState(t, o.id)
		w.gql(t, scoped.Key, `{ apiKeys(project: "b") { id } }`, nil).forbidden(t)
		w.gql(t, scoped.Key, createFull, vars(input{"name": "x", "permissions": []string{"READ"}, "project": "b"})).forbidden(t)
		w.gql(t, scoped.Key, createFull, vars(input{"name": "x", "permissions": []string{"READ"}, "resources": []string{"a", "b"}})).forbidden(t)
		w.gql(t, scoped.Key, createFull, vars(input{"name": "x", "permissions": []string{"READ"}})).forbidden(t)
		w.gql(t, scoped.Key, rotateFull, map[string]any{"id": bKey.ID}).forbidden(t)
		w.gql(t, scoped.Key, revokeFull, map[string]any{"id": bKey.ID}).forbidden(t)
		w.gql(t, scoped.Key, revokeFull, map[string]any{"id": full.ID}).forbidden(t)
		if !equalJSON(before, w.keyState(t, o.id)) {
			t.Fatal("a key scoped to a changed keys beyond a")
		}
		inA := w.create(t, scoped.Key, input{"name": "in a", "permissions": []string{"READ"}, "project": "a"})
		narrower := w.create(t, scoped.Key, input{"name": "narrower", "permissions": []string{"READ"}, "resources": []string{"a"}})
		if str(inA.Project) != "a" || narrower.Kind != "SCOPED" || !slices.Equal(narrower.Resources, []string{"a"}) {
			t.Fatalf("made by the scoped key: %+v %+v", inA, narrower)
		}
		w.gql(t, scoped.Key, rotateFull, map[string]any{"id": aKey.ID}).ok(t)
		w.gql(t, scoped.Key, revokeFull, map[string]any{"id": aKey.ID}).ok(t)

		// A live or test key is refused by the edge, and one that got past
		// it is still refused by the services; either way nothing changes.
		live := w.create(t, o.rootKey, input{"name": "live", "type": "LIVE", "permissions": []string{"READ", "WRITE"}, "project": "a", "environment": "production"})
		test := w.create(t, o.rootKey, input{"name": "test", "type": "TEST", "permissions": []string{"READ", "WRITE"}, "project": "a", "environment": "staging"})
		before = w.keyState(t, o.id)
		for _, k := range []keyView{live, test} {
			for _, gql := range []func(*testing.T, string, string, map[string]any) result{w.gql, w.gqlDirect} {
				gql(t, k.Key, viewerQuery, nil).forbidden(t)
				gql(t, k.Key, `{ apiKeys(project: "a") { id } }`, nil).forbidden(t)
				gql(t, k.Key, revokeFull, map[string]any{"id": k.ID}).forbidden(t)
			}
		}
		if !equalJSON(before, w.keyState(t, o.id)) {
			t.Fatal("a live or test key changed keys")
		}
	})
}

// TestGraphQLCreateAPIKey covers createAPIKey's defaults and input errors.
func TestGraphQLCreateAPIKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
		aKey, _ := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "a key"})

		// Defaults: an ADMIN key; organization-wide when an organization-
		// wide caller names no project; of the caller's project otherwise
		// only if named.
		k := w.create(t, o.rootKey, input{"name": "plain", "permissions": []string{"READ", "WRITE"}})
		if k.Type != "ADMIN" || k.Project != nil || k.Environment != nil || k.Resources != nil || k.ExpiresAt != nil || k.Kind != "FULL_ACCESS" {
			t.Fatalf("defaults: %+v", k)
		}
		if rec := w.record(t, k.Key); !rec.OrgWide() || rec.Type != apikey.Admin || rec.OwnerID != o.owner.ID {
			t.Fatalf("stored: %+v", rec)
		}
		k = w.create(t, aKey, input{"name": "in a", "permissions": []string{"READ"}, "project": "a", "expiresIn": "90m"})
		if str(k.Project) != "a" || k.Kind != "READ_ONLY" || !k.ExpiresAt.Equal(k.CreatedAt.Add(90*time.Minute)) {
			t.Fatalf("project key: %+v", k)
		}
		for _, typ := range []string{"LIVE", "TEST"} {
			k = w.create(t, aKey, input{"name": typ, "type": typ, "permissions": []string{"READ"}, "project": "a", "environment": "staging"})
			if k.Type != typ || str(k.Environment) != "staging" || !strings.HasPrefix(k.Key, "fb_"+strings.ToLower(typ)+"_") {
				t.Fatalf("%s key: %+v", typ, k)
			}
		}
		// An admin key may be limited to one environment of its project.
		k = w.create(t, aKey, input{"name": "env admin", "permissions": []string{"READ", "WRITE"}, "project": "a", "environment": "production"})
		if k.Type != "ADMIN" || str(k.Project) != "a" || str(k.Environment) != "production" || k.Kind != "FULL_ACCESS" {
			t.Fatalf("environment admin key: %+v", k)
		}
		if rec := w.record(t, k.Key); rec.Type != apikey.Admin || rec.Project != "a" || rec.Environment != "production" {
			t.Fatalf("stored: %+v", rec)
		}
		k = w.create(t, o.rootKey, input{"name": "scoped", "permissions": []string{"READ"}, "resources": []string{"b", "a"}})
		if k.Kind != "SCOPED" || !slices.Equal(k.Resources, []string{"a", "b"}) || k.Project != nil {
			t.Fatalf("scoped key: %+v", k)
		}

		// Refusals create nothing.
		before := w.keyState(t, o.id)
		bad := []struct {
			key     string
			in      input
			mention string
		}{
			{o.rootKey, input{"name": "x", "type": "LIVE", "permissions": []string{"READ"}, "project": "a"}, "environment is required"},
			{o.rootKey, input{"name": "x", "type": "TEST", "permissions": []string{"READ"}, "project": "a"}, "environment is required"},
			{o.rootKey, input{"name": "x", "type": "LIVE", "permissions": []string{"READ"}, "environment": "production"}, "project is required"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "environment": "production"}, "environment: an organization-wide key covers every project"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "project": "a", "environment": "moon"}, `project "a" has no environment "moon"`},
			{o.rootKey, input{"name": "x", "type": "LIVE", "permissions": []string{"READ"}, "project": "a", "environment": "moon"}, "moon"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "project": "a", "resources": []string{"a"}}, "resources"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "resources": []string{"a", "a"}}, "twice"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "resources": []string{"Not A Slug"}}, "resources"},
			{o.rootKey, input{"name": "x", "permissions": []string{}}, "permission"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ", "READ"}}, "twice"},
			{o.rootKey, input{"name": "", "permissions": []string{"READ"}}, "name"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "expiresIn": "30x"}, "expires"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "expiresIn": "30s"}, "between 1m and 365d"},
			{o.rootKey, input{"name": "x", "permissions": []string{"READ"}, "expiresIn": "366d"}, "between 1m and 365d"},
			{aKey, input{"name": "x", "type": "LIVE", "permissions": []string{"READ"}, "project": "a"}, "environment is required"},
		}
		for _, c := range bad {
			w.gql(t, c.key, createFull, vars(c.in)).badInput(t, c.mention)
		}
		// Projects are named within the caller's organization: one it
		// does not have is not found.
		w.gql(t, o.rootKey, createFull, vars(input{"name": "x", "permissions": []string{"READ"}, "project": "nope"})).refused(t, http.StatusOK, "NOT_FOUND")
		w.gql(t, o.rootKey, createFull, vars(input{"name": "x", "permissions": []string{"READ"}, "resources": []string{"nope"}})).refused(t, http.StatusOK, "NOT_FOUND")
		// Schema violations never reach the resolver.
		for _, in := range []input{
			{"name": "x"},
			{"permissions": []string{"READ"}},
			{"name": "x", "permissions": []string{"ADMIN"}},
			{"name": "x", "permissions": []string{"READ"}, "type": "ROOT"},
			{"name": "x", "permissions": []string{"READ"}, "owner": "mem_x"},
		} {
			w.gql(t, o.rootKey, createFull, vars(in)).refused(t, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED")
		}
		if !equalJSON(before, w.keyState(t, o.id)) {
			t.Fatal("a refused createAPIKey changed keys")
		}
	})
}

func TestGraphQLRotateAPIKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
		k := w.create(t, o.rootKey, input{"name": "ci", "permissions": []string{"READ", "WRITE"}, "project": "a"})

		// Without a grace period the old secret stops at once.
		var r1 keyView
		w.gql(t, o.rootKey, rotateFull, map[string]any{"id": k.ID}).ok(t).field(t, "rotateAPIKey", &r1)
		if r1.ID != k.ID || r1.Key == k.Key || r1.Name != "ci" || str(r1.Project) != "a" || r1.PreviousKeyValidUntil != nil ||
			!r1.CreatedAt.Equal(*k.CreatedAt) || r1.Hint != apikey.Hint(r1.Key) || !fullKey.MatchString(r1.Key) {
			t.Fatalf("rotated: %+v (was %+v)", r1, k)
		}
		if !w.stopsWorking(t, k.Key) || !w.works(t, r1.Key) {
			t.Fatal("after a rotation without grace period: old key works or new key does not")
		}
		// With one, both work until it ends.
		before := time.Now().UTC().Truncate(time.Second)
		var r2 keyView
		w.gql(t, o.rootKey, rotateFull, map[string]any{"id": k.ID, "grace": "1h"}).ok(t).field(t, "rotateAPIKey", &r2)
		if r2.ID != k.ID || r2.PreviousKeyValidUntil == nil || r2.PreviousKeyValidUntil.Before(before.Add(time.Hour)) ||
			r2.PreviousKeyValidUntil.After(time.Now().Add(time.Hour)) {
			t.Fatalf("rotated with grace: %+v", r2)
		}
		if !w.works(t, r1.Key) || !w.works(t, r2.Key) {
			t.Fatal("during the grace period both secrets should work")
		}
		listed := w.listKeys(t, o.rootKey, "a")
		if len(listed) != 1 || listed[0].RotatedAt == nil || listed[0].Hint != r2.Hint || listed[0].Status != "ACTIVE" {
			t.Fatalf("listed after rotation: %+v", listed)
		}
		// A rotation hands out a secret: never for a key the caller could
		// not create.
		short := w.create(t, o.rootKey, input{"name": "short", "permissions": []string{"READ", "WRITE"}, "project": "a", "expiresIn": "1h"})
		readOnly := w.create(t, o.rootKey, input{"name": "ro", "permissions": []string{"READ"}, "project": "a"})
		state := w.keyState(t, o.id)
		w.gql(t, short.Key, rotateFull, map[string]any{"id": k.ID}).forbidden(t)
		w.gql(t, readOnly.Key, rotateFull, map[string]any{"id": readOnly.ID}).forbidden(t)
		w.gql(t, o.rootKey, rotateFull, map[string]any{"id": k.ID, "grace": "8d"}).badInput(t, "7d")
		w.gql(t, o.rootKey, rotateFull, map[string]any{"id": k.ID, "grace": "soon"}).badInput(t, "grace_period")
		w.gql(t, o.rootKey, rotateFull, map[string]any{"id": "key_doesnotexist000000"}).forbidden(t)
		if !equalJSON(state, w.keyState(t, o.id)) {
			t.Fatal("a refused rotation changed keys")
		}
		if !w.works(t, r1.Key) || !w.works(t, r2.Key) {
			t.Fatal("a refused rotation changed secrets")
		}
		// The short-lived key may rotate keys that do not outlive it,
		// itself included.
		var self keyView
		w.gql(t, short.Key, rotateFull, map[string]any{"id": short.ID}).ok(t).field(t, "rotateAPIKey", &self)
		if !sameTime(self.ExpiresAt, short.ExpiresAt) || !w.works(t, self.Key) || !w.stopsWorking(t, short.Key) {
			t.Fatalf("self-rotation: %+v", self)
		}
		// A revoked key cannot be rotated back to life.
		w.gql(t, o.rootKey, revokeFull, map[string]any{"id": k.ID}).ok(t)
		w.gql(t, o.rootKey, rotateFull, map[string]any{"id": k.ID}).refused(t, http.StatusOK, "CONFLICT")
		if !w.stopsWorking(t, r1.Key) || !w.stopsWorking(t, r2.Key) {
			t.Fatal("a revoked key works")
		}
	})
}

func TestGraphQLRevokeAPIKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
		aKey, _ := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "a key"})
		scopedA, _ := w.mint(t, o.rootKey, "", keys.CreateInput{Name: "scoped a", Resources: []string{"a"}})
		events := make(chan store.Event, 64)
		unsubscribe := w.st.Subscribe(func(ev store.Event) {
			if ev.Topic == keys.Topic {
				events <- ev
			}
		})
		t.Cleanup(unsubscribe)

		k := w.create(t, o.rootKey, input{"name": "doomed", "permissions": []string{"READ"}, "project": "a", "expiresIn": "1h"})
		if !w.works(t, k.Key) {
			t.Fatal("new key")
		}
		var rev struct {
			ID        string
			RevokedAt time.Time
		}
		w.gql(t, aKey, revokeFull, map[string]any{"id": k.ID}).ok(t).field(t, "revokeAPIKey", &rev)
		if rev.ID != k.ID || rev.RevokedAt.IsZero() {
			t.Fatalf("revoked: %+v", rev)
		}
		// Every instance hears of it (the edge's caches listen on this).
		select {
		case ev := <-events:
			if string(ev.Payload) != k.ID {
				t.Fatalf("published %q, want %q", ev.Payload, k.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the revocation was not published")
		}
		if !w.stopsWorking(t, k.Key) {
			t.Fatal("revoked key works")
		}
		// Revoking again changes nothing and answers the same.
		var again struct {
			ID        string
			RevokedAt time.Time
		}
		w.gql(t, o.rootKey, revokeFull, map[string]any{"id": k.ID}).ok(t).field(t, "revokeAPIKey", &again)
		if !again.RevokedAt.Equal(rev.RevokedAt) {
			t.Fatalf("revoked again: %+v, first %+v", again, rev)
		}
		// Beyond the caller's scope: refused, nothing changes.
		orgWide := w.create(t, o.rootKey, input{"name": "org", "permissions": []string{"READ"}})
		inB := w.create(t, o.rootKey, input{"name": "in b", "permissions": []string{"READ", "WRITE"}, "project": "b"})
		state := w.keyState(t, o.id)
		for _, c := range []struct{ caller, id string }{
			{aKey, orgWide.ID}, {aKey, inB.ID}, {aKey, o.root.ID},
			{scopedA, orgWide.ID}, {scopedA, inB.ID}, {scopedA, o.root.ID},
		} {
			w.gql(t, c.caller, revokeFull, map[string]any{"id": c.id}).forbidden(t)
		}
		if !equalJSON(state, w.keyState(t, o.id)) {
			t.Fatal("a refused revocation changed keys")
		}
		select {
		case ev := <-events:
			t.Fatalf("a refused revocation published %q", ev.Payload)
		default:
		}
		// A key may revoke itself.
		w.gql(t, inB.Key, revokeFull, map[string]any{"id": inB.ID}).ok(t)
		if !w.stopsWorking(t, inB.Key) {
			t.Fatal("self-revoked key works")
		}
	})
}

// TestGraphQLOtherOrganization: key ids are global, so a caller can name
// another organization's key. Revoking or rotating it is FORBIDDEN, with
// an answer byte for byte the same as for an id that names no key at all,
// so that it tells nothing about the other organization.
func TestGraphQLOtherOrganization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		acme := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
		globex := w.newOrg(t, "Globex", "hank@globex.example", "Hank Scorpio", "a")
		_, theirs := w.mint(t, globex.rootKey, "a", keys.CreateInput{Name: "theirs"})
		_, mine := w.mint(t, acme.rootKey, "a", keys.CreateInput{Name: "mine"})
		missing := "key_" + strings.Repeat("Z", len(theirs.ID)-len("key_"))
		aKey, _ := w.mint(t, acme.rootKey, "a", keys.CreateInput{Name: "a"})
		acmeState, globexState := w.keyState(t, acme.id), w.keyState(t, globex.id)

		for _, q := range []string{revokeFull, rotateFull} {
			other := w.gql(t, acme.rootKey, q, map[string]any{"id": theirs.ID}).forbidden(t)
			none := w.gql(t, acme.rootKey, q, map[string]any{"id": missing}).forbidden(t)
			if other.Body != none.Body {
				t.Fatalf("another organization's key and a missing one are told apart:\n%s\n%s", other.Body, none.Body)
			}
			// The same for a key of the caller's organization outside its
			// scope.
			scoped := w.gql(t, aKey, q, map[string]any{"id": acme.root.ID}).forbidden(t)
			if scoped.Body != none.Body {
				t.Fatalf("out of scope and missing are told apart:\n%s\n%s", scoped.Body, none.Body)
			}
		}
		if !equalJSON(globexState, w.keyState(t, globex.id)) || !equalJSON(acmeState, w.keyState(t, acme.id)) {
			t.Fatal("keys changed")
		}
		for _, k := range w.listKeys(t, acme.rootKey, "") {
			if k.ID == theirs.ID {
				t.Fatal("Acme lists Globex's key")
			}
		}
		for _, k := range w.listKeys(t, globex.rootKey, "a") {
			if k.ID == mine.ID {
				t.Fatal("Globex lists Acme's key")
			}
		}
		// The same project slug in two organizations is two projects.
		w.create(t, globex.rootKey, input{"name": "g", "permissions": []string{"READ"}, "project": "a"})
		if got := w.listKeys(t, acme.rootKey, "a"); len(got) != 2 || !slices.Contains(ids(got), mine.ID) {
			t.Fatalf("Acme's project a: %v", ids(got))
		}
	})
}

// TestGraphQLFieldLevelDenial pins what a denial of one root field does.
// Every root field is non-null, so GraphQL's null propagation takes the
// whole data with it: an answer without data, only FORBIDDEN errors, is a
// refused operation, 403.
func TestGraphQLFieldLevelDenial(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")
	aKey, _ := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "a key"})

	r := w.gql(t, aKey, `{ viewer { id } apiKeys(project: "b") { id } }`, nil).forbidden(t)
	if len(r.Errors) != 1 || !equalJSON(r.Errors[0].Path, []any{"apiKeys"}) {
		t.Fatalf("one denied root field: %s", r.Body)
	}
	r = w.gql(t, aKey, `{ viewer { id } apiKeys(project: "a") { id } projects { id } }`, nil).ok(t)
	if len(r.Data) != 3 {
		t.Fatalf("allowed root fields: %s", r.Body)
	}
	// Two denials: both reported.
	r = w.gql(t, aKey, `{ x: apiKeys(project: "b") { id } y: viewer { id } z: apiKeys(project: "c") { id } }`, nil).forbidden(t)
	if len(r.Errors) != 2 {
		t.Fatalf("two denied root fields: %s", r.Body)
	}
	// A denial mixed with another error is not a refusal for lack of
	// permission alone: 200, no data, every error.
	_, revoked := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "revoked"})
	w.gql(t, o.rootKey, revokeFull, map[string]any{"id": revoked.ID}).ok(t)
	r = w.gql(t, o.rootKey, `mutation($r: ID!) {
  x: rotateAPIKey(id: $r) { id }
  y: revokeAPIKey(id: "key_nope") { id }
}`, map[string]any{"r": revoked.ID})
	if r.Status != http.StatusOK || r.Data != nil || len(r.Errors) != 2 || r.Errors[0].code() != "CONFLICT" || r.Errors[1].code() != "FORBIDDEN" {
		t.Fatalf("a denial and a conflict: %d %s", r.Status, r.Body)
	}

	// Mutation fields run one after the other, and a denied one does not
	// undo those before it. Their results are nullable so that the first
	// key below, which is made, still comes back with its secret (shown
	// only this once) while the second is refused: a 200 with both.
	before := len(w.listKeys(t, o.rootKey, "a"))
	r = w.gql(t, aKey, `mutation {
  first: createAPIKey(input: {name: "first", permissions: [READ], project: "a"}) { id key }
  second: createAPIKey(input: {name: "second", permissions: [READ], project: "b"}) { id }
}`, nil)
	if r.Status != http.StatusOK || len(r.Errors) != 1 || r.Errors[0].code() != "FORBIDDEN" ||
		!equalJSON(r.Errors[0].Path, []any{"second"}) || string(r.Data["second"]) != "null" ||
		!strings.Contains(string(r.Data["first"]), `"key":"fb_admin_`) {
		t.Fatalf("second mutation field denied: %d %s", r.Status, r.Body)
	}
	after := w.listKeys(t, o.rootKey, "a")
	if len(after) != before+1 || !slices.ContainsFunc(after, func(k keyView) bool { return k.Name == "first" }) {
		t.Fatalf("keys of a after the partly denied mutation: %+v", after)
	}
	for _, k := range w.listKeys(t, o.rootKey, "b") {
		if k.Name == "second" {
			t.Fatal("the denied mutation field made a key")
		}
	}
}

// TestGraphQLRequestErrors covers requests that are not valid GraphQL, or
// not readable at all.
func TestGraphQLRequestErrors(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	before := w.keyState(t, o.id)

	for _, c := range []struct {
		query   string
		vars    map[string]any
		code    string
		mention string
	}{
		{`{ nope }`, nil, "GRAPHQL_VALIDATION_FAILED", `Cannot query field "nope" on type "Query"`},
		{`{ viewer }`, nil, "GRAPHQL_VALIDATION_FAILED", "must have a selection of subfields"},
		{`{ viewer { key { secret } } }`, nil, "GRAPHQL_VALIDATION_FAILED", `"secret"`},
		{`{ apiKeys { key } }`, nil, "GRAPHQL_VALIDATION_FAILED", `Cannot query field "key" on type "APIKey"`},
		{`{ apiKeys(project: true) { id } }`, nil, "GRAPHQL_VALIDATION_FAILED", ""},
		{`mutation { revokeAPIKey { id } }`, nil, "GRAPHQL_VALIDATION_FAILED", `argument "id"`},
		{`mutation($id: ID!) { revokeAPIKey(id: $id) { id } }`, map[string]any{}, "GRAPHQL_VALIDATION_FAILED", "must be defined"},
		{`mutation($id: ID!) { revokeAPIKey(id: $id) { id } }`, map[string]any{"id": []int{1}}, "GRAPHQL_VALIDATION_FAILED", ""},
		{`mutation { createAPIKey(input: {name: "x", permissions: [ALL]}) { id } }`, nil, "GRAPHQL_VALIDATION_FAILED", "ALL"},
		{`subscription { viewer { id } }`, nil, "GRAPHQL_VALIDATION_FAILED", ""},
		{`{ viewer { id }`, nil, "GRAPHQL_PARSE_FAILED", ""},
		{`mutation { createAPIKey(input: {name: "x" permissions: [READ]) { id } }`, nil, "GRAPHQL_PARSE_FAILED", ""},
		{``, nil, "GRAPHQL_VALIDATION_FAILED", ""},
	} {
		r := w.gql(t, o.rootKey, c.query, c.vars).refused(t, http.StatusUnprocessableEntity, c.code)
		if !strings.Contains(r.Errors[0].Message, c.mention) {
			t.Errorf("%s: message %q does not mention %q", c.query, r.Errors[0].Message, c.mention)
		}
	}
	// Several operations need operationName, which picks one.
	two := `query A { viewer { id } } mutation B { createAPIKey(input: {name: "b", permissions: [READ]}) { id key } }`
	w.send(t, o.rootKey, request{body: `{"query":` + quote(two) + `}`}).refused(t, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED")
	w.send(t, o.rootKey, request{body: `{"query":` + quote(two) + `,"operationName":"C"}`}).refused(t, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED")
	if r := w.send(t, o.rootKey, request{body: `{"query":` + quote(two) + `,"operationName":"A"}`}).ok(t); len(r.Data) != 1 {
		t.Fatalf("operation A: %s", r.Body)
	}
	if !equalJSON(before, w.keyState(t, o.id)) {
		t.Fatal("an invalid request changed keys")
	}

	// Bodies that are not a JSON request: 400, in GraphQL's shape.
	const notJSON = `{"errors":[{"message":"the request body must be a JSON object such as {\"query\": \"{ viewer { id } }\"}","extensions":{"code":"BAD_USER_INPUT"}}]}`
	for _, c := range []request{
		{body: `{"query": "{ viewer { id } }"`},
		{body: `query { viewer { id } }`, contentType: "application/x-www-form-urlencoded"},
		{body: `query { viewer { id } }`, contentType: "application/graphql"},
		{body: `[{"query": "{ viewer { id } }"}]`},
		{body: `"{ viewer { id } }"`},
		{body: " "},
	} {
		r := w.send(t, o.rootKey, c)
		if r.Status != http.StatusBadRequest || r.Body != notJSON {
			t.Errorf("body %q (%s): %d %s", c.body, c.contentType, r.Status, r.Body)
		}
	}
	// A JSON object gqlgen cannot read: 400 with a code.
	w.send(t, o.rootKey, request{body: `{"query": 5}`}).refused(t, http.StatusBadRequest, "BAD_REQUEST")
	w.send(t, o.rootKey, request{body: `{"query": "{ viewer { id } }", "variables": [1]}`}).refused(t, http.StatusBadRequest, "BAD_REQUEST")
}

// TestGraphQLContentTypes: curl -d sends a JSON body as a form; it is a
// JSON request all the same.
func TestGraphQLContentTypes(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	body := `{"query":"{ viewer { id email } }"}`
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "text/plain", "-"} {
		r := w.send(t, o.rootKey, request{body: body, contentType: ct}).ok(t)
		var v struct{ ID string }
		r.field(t, "viewer", &v)
		if v.ID != o.owner.ID {
			t.Fatalf("%s: %s", ct, r.Body)
		}
	}
	// Mutations too (this is the curl example).
	r := w.send(t, o.rootKey, request{
		body:        `{"query":` + quote(createMutation) + `,"variables":` + createVariables + `}`,
		contentType: "application/x-www-form-urlencoded",
	}).ok(t)
	var k keyView
	r.field(t, "createAPIKey", &k)
	if k.Name != "CI/CD Pipeline" || !w.works(t, k.Key) {
		t.Fatalf("created with a form content type: %s", r.Body)
	}
}

// TestGraphQLGet: queries may come as GET; mutations may not, and are not
// run.
func TestGraphQLGet(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	remaining := -1 // X-RateLimit-Remaining of the last GET
	get := func(query string) (int, string) {
		req := httptest.NewRequest("GET", "https://flags.example.com/graphql?query="+url.QueryEscape(query), nil)
		req.Header.Set("Authorization", "Bearer "+o.rootKey)
		resp := w.serve(req)
		if resp.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET: Cache-Control %q", resp.Header().Get("Cache-Control"))
		}
		n, err := strconv.Atoi(resp.Header().Get("X-RateLimit-Remaining"))
		if err != nil {
			t.Fatalf("GET: X-RateLimit-Remaining %q", resp.Header().Get("X-RateLimit-Remaining"))
		}
		remaining = n
		return resp.Code, resp.Body.String()
	}
	if code, body := get(`{ viewer { id } }`); code != 200 || !strings.Contains(body, o.owner.ID) {
		t.Fatalf("GET query: %d %s", code, body)
	}
	before := w.keyState(t, o.id)
	code, body := get(`mutation { createAPIKey(input: {name: "x", permissions: [READ]}) { id key } }`)
	if code != http.StatusNotAcceptable || strings.Contains(body, "fb_admin_") {
		t.Fatalf("GET mutation: %d %s", code, body)
	}
	code, body = get(`mutation { revokeAPIKey(id: "` + o.root.ID + `") { id } }`)
	if code != http.StatusNotAcceptable {
		t.Fatalf("GET mutation: %d %s", code, body)
	}
	// Mutations that do not run cost nothing beyond the request, however
	// many there are.
	last := remaining
	code, body = get(`mutation {` + aliased(5, `revokeAPIKey(id: "`+o.root.ID+`") { id }`) + ` }`)
	if code != http.StatusNotAcceptable || remaining != last-1 {
		t.Fatalf("GET of five mutations: %d, remaining %d after %d: %s", code, remaining, last, body)
	}
	if !equalJSON(before, w.keyState(t, o.id)) || !w.works(t, o.rootKey) {
		t.Fatal("a mutation sent as GET ran")
	}
}

func TestGraphQLRequestSize(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	q := `{"query":"{ viewer { id } }"}`
	pad := func(n int) string { return q + strings.Repeat(" ", n-len(q)) }

	w.send(t, o.rootKey, request{body: pad(graphqlapi.MaxRequestBytes)}).ok(t)
	r := w.send(t, o.rootKey, request{body: pad(graphqlapi.MaxRequestBytes + 1)})
	want := `{"errors":[{"message":"request body is larger than 65536 bytes","extensions":{"code":"BAD_USER_INPUT"}}]}`
	if r.Status != http.StatusBadRequest || r.Body != want {
		t.Fatalf("oversized body: %d %s", r.Status, r.Body)
	}
	// Big variables count too, and nothing is made.
	before := w.keyState(t, o.id)
	r = w.gql(t, o.rootKey, createFull, vars(input{"name": strings.Repeat("n", graphqlapi.MaxRequestBytes), "permissions": []string{"READ"}}))
	if r.Status != http.StatusBadRequest || r.Body != want || !equalJSON(before, w.keyState(t, o.id)) {
		t.Fatalf("oversized variables: %d %s", r.Status, r.Body)
	}
}

// introspectionQuery is graphql-js's getIntrospectionQuery() with every
// option on, as GraphiQL and code generators send it.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    description
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}
fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  isOneOf
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}
fragment TypeRef on __Type {
  kind
  name
  ofType {
    kind
    name
    ofType {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
              }
            }
          }
        }
      }
    }
  }
}`

// nest returns an introspection query whose selections nest depth levels
// deep, through a fragment when viaFragment is set.
func nest(depth int, viaFragment bool) string {
	// __schema, types, fields, type: 4 levels, then ofType ... name.
	inner := strings.Repeat("ofType { ", depth-5) + "name" + strings.Repeat(" }", depth-5)
	if viaFragment {
		return `{ __schema { types { fields { type { ...T } } } } } fragment T on __Type { ` + inner + ` }`
	}
	return `{ __schema { types { fields { type { ` + inner + ` } } } } }`
}

func TestGraphQLDepthAndComplexity(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")

	// Introspection works, with every option graphql-js has.
	var schema struct {
		QueryType    struct{ Name string }
		MutationType struct{ Name string }
		Types        []struct {
			Name       string
			EnumValues []struct{ Name string }
		}
	}
	w.gql(t, o.rootKey, introspectionQuery, nil).ok(t).field(t, "__schema", &schema)
	if schema.QueryType.Name != "Query" || schema.MutationType.Name != "Mutation" {
		t.Fatalf("introspection: %+v", schema)
	}
	found := map[string][]string{}
	for _, ty := range schema.Types {
		var vals []string
		for _, v := range ty.EnumValues {
			vals = append(vals, v.Name)
		}
		found[ty.Name] = vals
	}
	for _, name := range []string{"Viewer", "APIKey", "CreatedAPIKey", "CreateAPIKeyInput", "Project", "Environment"} {
		if _, ok := found[name]; !ok {
			t.Errorf("introspection lacks %s", name)
		}
	}
	if !slices.Equal(found["KeyKind"], []string{"FULL_ACCESS", "READ_ONLY", "SCOPED"}) || !slices.Equal(found["Permission"], []string{"READ", "WRITE"}) {
		t.Errorf("enums: %v", found)
	}
	w.gql(t, o.rootKey, `{ __type(name: "APIKey") { fields { name type { kind ofType { name } } } } }`, nil).ok(t)

	// Depth: up to MaxDepth, however the nesting is written.
	for _, viaFragment := range []bool{false, true} {
		w.gql(t, o.rootKey, nest(graphqlapi.MaxDepth, viaFragment), nil).ok(t)
		r := w.gql(t, o.rootKey, nest(graphqlapi.MaxDepth+1, viaFragment), nil).refused(t, http.StatusUnprocessableEntity, "QUERY_TOO_DEEP")
		if !strings.Contains(r.Errors[0].Message, "at most 15") {
			t.Fatalf("too deep: %s", r.Body)
		}
	}
	// Complexity: each "aN: viewer { id }" costs 2.
	aliases := func(n int, field string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(strings.ReplaceAll(field, "$i", strconv.Itoa(i)))
		}
		return b.String()
	}
	r := w.gql(t, o.rootKey, `{ `+aliases(graphqlapi.MaxComplexity/2, " a$i: viewer { id }")+` }`, nil).ok(t)
	if len(r.Data) != graphqlapi.MaxComplexity/2 {
		t.Fatalf("%d viewers", len(r.Data))
	}
	r = w.gql(t, o.rootKey, `{ `+aliases(graphqlapi.MaxComplexity/2+1, " a$i: viewer { id }")+` }`, nil).
		refused(t, http.StatusUnprocessableEntity, "COMPLEXITY_LIMIT_EXCEEDED")
	if !strings.Contains(r.Errors[0].Message, "exceeds the limit of 500") {
		t.Fatalf("too complex: %s", r.Body)
	}
	// A refused operation runs nothing at all.
	before := w.keyState(t, o.id)
	w.gql(t, o.rootKey, `mutation { `+aliases(graphqlapi.MaxComplexity/2+1, ` k$i: createAPIKey(input: {name: "k", permissions: [READ]}) { id }`)+` }`, nil).
		refused(t, http.StatusUnprocessableEntity, "COMPLEXITY_LIMIT_EXCEEDED")
	w.gql(t, o.rootKey, `mutation { createAPIKey(input: {name: "deep", permissions: [READ]}) { id } } `, nil).ok(t)
	after := w.keyState(t, o.id)
	if len(after) != len(before)+2 {
		t.Fatalf("keys: %d before, %d after (want exactly the one allowed mutation)", len(before), len(after))
	}
}

// callerSpec describes a calling key of the escalation matrix.
type callerSpec struct {
	name      string
	project   string // "" for organization-wide
	perms     []string
	resources []string
	expiresIn time.Duration // 0 for none
	// direct sends the caller's requests to the GraphQL handler without
	// the edge, which refuses the caller outright.
	direct bool
}

// covers is the notion of a key's scope: its project (or every
// project, if organization-wide), narrowed to its resources if it lists
// any.
func (c callerSpec) covers(p string) bool {
	if c.project != "" && c.project != p {
		return false
	}
	return len(c.resources) == 0 || slices.Contains(c.resources, p)
}

// ask is one createAPIKey request of the matrix.
type ask struct {
	typ       string
	perms     []string
	expiresIn time.Duration
	project   string
	resources []string
	env       string
}

func (a ask) String() string {
	return fmt.Sprintf("type=%s perms=%v expiresIn=%v project=%q resources=%v environment=%q",
		a.typ, a.perms, a.expiresIn, a.project, a.resources, a.env)
}

// expect computes, from the rules alone, why a request must be refused:
// input errors (BAD_USER_INPUT) and privilege errors (FORBIDDEN). Both
// empty means it must succeed.
func expect(c callerSpec, a ask) (input, forbidden []string) {
	live := a.typ != "ADMIN"
	if live && a.project == "" {
		input = append(input, "a LIVE or TEST key needs a project")
	}
	if live && a.env == "" {
		input = append(input, "a LIVE or TEST key needs an environment")
	}
	// An admin key may be limited to one environment of its project; an
	// organization-wide key has none.
	if !live && a.env != "" && a.project == "" {
		input = append(input, "an organization-wide key has no environment")
	}
	if a.project != "" && len(a.resources) > 0 {
		input = append(input, "resources narrow organization-wide keys only")
	}

	if !slices.Contains(c.perms, "WRITE") {
		forbidden = append(forbidden, "the caller is read-only")
	}
	if a.project != "" && !c.covers(a.project) {
		forbidden = append(forbidden, "the project is outside the caller's scope")
	}
	if a.project == "" && c.project != "" {
		forbidden = append(forbidden, "a project key cannot make organization-wide keys")
	}
	for _, p := range a.perms {
		if !slices.Contains(c.perms, p) {
			forbidden = append(forbidden, "the caller lacks "+p)
		}
	}
	if c.expiresIn != 0 && (a.expiresIn == 0 || a.expiresIn > c.expiresIn) {
		forbidden = append(forbidden, "the key would outlive the caller")
	}
	if a.project == "" {
		for _, p := range a.resources {
			if !c.covers(p) {
				forbidden = append(forbidden, "resource "+p+" is outside the caller's scope")
			}
		}
		if len(c.resources) > 0 && len(a.resources) == 0 {
			forbidden = append(forbidden, "a Scoped caller cannot make an unscoped key")
		}
	}
	return input, forbidden
}

// recCovers is covers for a stored record.
func recCovers(r *apikey.Record, p string) bool {
	return callerSpec{project: r.Project, resources: r.Resources}.covers(p)
}

// within checks that key grants nothing caller lacks.
func within(t *testing.T, caller, key *apikey.Record) {
	t.Helper()
	for _, p := range key.Permissions.List() {
		if !caller.Permissions.Has(p) {
			t.Errorf("escalation: the new key has %s, the caller %v", p, caller.Permissions.List())
		}
	}
	if caller.ExpiresAt != nil && (key.ExpiresAt == nil || key.ExpiresAt.After(*caller.ExpiresAt)) {
		t.Errorf("escalation: the new key expires at %v, after the caller (%v)", key.ExpiresAt, caller.ExpiresAt)
	}
	// "later" stands for every project the organization will ever have.
	for _, p := range []string{"a", "b", "later"} {
		if recCovers(key, p) && !recCovers(caller, p) {
			t.Errorf("escalation: the new key covers project %s, the caller does not", p)
		}
	}
	if key.OrgWide() && !caller.OrgWide() {
		t.Error("escalation: a project key made an organization-wide key")
	}
	if caller.Environment != "" && key.Environment != caller.Environment {
		t.Errorf("escalation: a key of environment %q made a key of environment %q", caller.Environment, key.Environment)
	}
	if !caller.Type.Includes(key.Type) || key.OrgID != caller.OrgID || key.OwnerID != caller.OwnerID {
		t.Errorf("the new key (type %s, org %s, owner %s) vs the caller (type %s, org %s, owner %s)",
			key.Type, key.OrgID, key.OwnerID, caller.Type, caller.OrgID, caller.OwnerID)
	}
}

// TestGraphQLNoPrivilegeEscalation asks every caller for every kind of
// key, and checks each answer against rules computed here, independently
// of the implementation.
func TestGraphQLNoPrivilegeEscalation(t *testing.T) {
	t.Parallel()
	callers := []callerSpec{
		{name: "org-wide full", perms: []string{"READ", "WRITE"}},
		{name: "org-wide read-only", perms: []string{"READ"}},
		{name: "org-wide scoped to a", perms: []string{"READ", "WRITE"}, resources: []string{"a"}},
		{name: "project a full", project: "a", perms: []string{"READ", "WRITE"}},
		{name: "project a read-only", project: "a", perms: []string{"READ"}},
		{name: "project a expiring in 1h", project: "a", perms: []string{"READ", "WRITE"}, expiresIn: time.Hour},
		// Not one the edge lets through to /graphql (it needs READ), so
		// sent past it, but the only caller that can be refused for asking
		// a permission it lacks, and nothing else: every other caller
		// either has both or cannot create keys at all.
		{name: "org-wide write-only", perms: []string{"WRITE"}, direct: true},
	}
	var asks []ask
	for _, typ := range []string{"LIVE", "TEST", "ADMIN"} {
		for _, perms := range [][]string{{"READ"}, {"WRITE"}, {"READ", "WRITE"}} {
			for _, exp := range []time.Duration{0, 30 * time.Minute, 2 * time.Hour} {
				for _, project := range []string{"a", "b", ""} {
					for _, resources := range [][]string{nil, {"a"}, {"a", "b"}} {
						for _, env := range []string{"", "production"} {
							asks = append(asks, ask{typ, perms, exp, project, resources, env})
						}
					}
				}
			}
		}
	}
	forEachStore(t, func(t *testing.T, w *world) {
		// Every reason to refuse must have been met alone, not masked by
		// another: otherwise the matrix would not show it is enforced.
		var mu sync.Mutex
		alone := map[string]int{}
		t.Cleanup(func() {
			for _, reason := range []string{
				"a LIVE or TEST key needs a project", "a LIVE or TEST key needs an environment",
				"an organization-wide key has no environment", "resources narrow organization-wide keys only",
				"the caller is read-only", "the project is outside the caller's scope",
				"a project key cannot make organization-wide keys", "the caller lacks READ",
				"the key would outlive the caller", "resource b is outside the caller's scope",
				"a Scoped caller cannot make an unscoped key",
			} {
				if alone[reason] == 0 {
					t.Errorf("the matrix never refuses only because %s", reason)
				}
			}
		})
		for _, c := range callers {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				o := w.newOrg(t, c.name, "owner@example.com", "Olive Owner", "a", "b")
				secret, rec := o.rootKey, o.root
				if c.project != "" || len(c.perms) < 2 || c.resources != nil || c.expiresIn != 0 {
					in := keys.CreateInput{Name: c.name, Permissions: c.perms, Resources: c.resources}
					if c.expiresIn != 0 {
						in.ExpiresIn = fmt.Sprintf("%dm", int(c.expiresIn.Minutes()))
					}
					secret, rec = w.mint(t, o.rootKey, c.project, in)
				}
				if c.direct {
					// The edge refuses this caller before GraphQL, and
					// nothing is made.
					before := w.keyState(t, o.id)
					w.gql(t, secret, createFull, vars(input{"name": "x", "permissions": []string{"WRITE"}})).forbidden(t)
					if !equalJSON(before, w.keyState(t, o.id)) {
						t.Error("a caller the edge refuses made a key")
					}
				}
				var allowed, badInput, forbidden int
				for i, a := range asks {
					in := input{"name": fmt.Sprintf("m%d", i), "permissions": a.perms, "type": a.typ}
					if a.expiresIn != 0 {
						in["expiresIn"] = fmt.Sprintf("%dm", int(a.expiresIn.Minutes()))
					}
					if a.project != "" {
						in["project"] = a.project
					}
					if a.resources != nil {
						in["resources"] = a.resources
					}
					if a.env != "" {
						in["environment"] = a.env
					}
					wantInput, wantForbidden := expect(c, a)
					if reasons := append(slices.Clone(wantInput), wantForbidden...); len(reasons) == 1 {
						mu.Lock()
						alone[reasons[0]]++
						mu.Unlock()
					}
					before := w.keyState(t, o.id)
					start := time.Now().UTC().Truncate(time.Second)
					gql := w.gql
					if c.direct {
						gql = w.gqlDirect
					}
					r := gql(t, secret, createFull, vars(in))
					end := time.Now().UTC()
					after := w.keyState(t, o.id)

					if len(wantInput) == 0 && len(wantForbidden) == 0 {
						allowed++
						if r.Status != http.StatusOK || len(r.Errors) > 0 {
							t.Errorf("%v: refused (%d %s), want a key", a, r.Status, r.Body)
							continue
						}
						var k keyView
						r.field(t, "createAPIKey", &k)
						if len(after) != len(before)+2 {
							t.Errorf("%v: %d key documents before, %d after", a, len(before), len(after))
						}
						nk := w.record(t, k.Key)
						within(t, rec, nk)
						// And exactly what was asked for.
						wantPerms := apikey.Permissions(0)
						if ps, err := apikey.ParsePermissions(a.perms); err == nil {
							wantPerms = ps
						}
						kind := "FULL_ACCESS"
						switch {
						case len(a.resources) > 0:
							kind = "SCOPED"
						case !slices.Contains(a.perms, "WRITE"):
							kind = "READ_ONLY"
						}
						if nk.ID != k.ID || nk.Type.String() != strings.ToLower(a.typ) || k.Type != a.typ || k.Kind != kind ||
							nk.Permissions != wantPerms || nk.Project != a.project || str(k.Project) != strOr(a.project) ||
							nk.Environment != a.env || !slices.Equal(nk.Resources, a.resources) || !slices.Equal(k.Resources, a.resources) {
							t.Errorf("%v: made %+v (answered %+v)", a, nk, k)
						}
						switch {
						case a.expiresIn == 0 && (nk.ExpiresAt != nil || k.ExpiresAt != nil):
							t.Errorf("%v: expires at %v", a, nk.ExpiresAt)
						case a.expiresIn != 0 && (nk.ExpiresAt == nil || !sameTime(nk.ExpiresAt, k.ExpiresAt) ||
							nk.ExpiresAt.Before(start.Add(a.expiresIn)) || nk.ExpiresAt.After(end.Add(a.expiresIn))):
							t.Errorf("%v: expires at %v, answered %v", a, nk.ExpiresAt, k.ExpiresAt)
						}
						continue
					}
					if !equalJSON(before, after) {
						t.Errorf("%v: refused, but keys changed", a)
					}
					var code string
					if len(r.Errors) > 0 {
						code = r.Errors[0].code()
					}
					switch {
					case len(wantForbidden) == 0:
						badInput++
						if r.Status != http.StatusOK || r.Data != nil || code != "BAD_USER_INPUT" {
							t.Errorf("%v: %d %s, want BAD_USER_INPUT (%s)", a, r.Status, r.Body, strings.Join(wantInput, "; "))
						}
					case len(wantInput) == 0:
						forbidden++
						if r.Status != http.StatusForbidden || r.Data != nil || code != "FORBIDDEN" {
							t.Errorf("%v: %d %s, want FORBIDDEN (%s)", a, r.Status, r.Body, strings.Join(wantForbidden, "; "))
						}
					default:
						// Both wrong: either answer will do, as long as it
						// is a refusal.
						ok := r.Data == nil && (r.Status == http.StatusForbidden && code == "FORBIDDEN" ||
							r.Status == http.StatusOK && code == "BAD_USER_INPUT")
						if !ok {
							t.Errorf("%v: %d %s, want FORBIDDEN or BAD_USER_INPUT", a, r.Status, r.Body)
						}
					}
				}
				t.Logf("%d requests: %d allowed, %d input errors, %d forbidden, %d both", len(asks), allowed, badInput, forbidden,
					len(asks)-allowed-badInput-forbidden)
				if allowed == 0 && slices.Contains(c.perms, "WRITE") {
					t.Error("nothing allowed: the matrix tests nothing")
				}
			})
		}
	})
}

// aliased repeats one root field n times under the aliases f0, f1, ...
// ($i stands for the alias's number).
func aliased(n int, field string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " f%d: %s", i, strings.ReplaceAll(field, "$i", strconv.Itoa(i)))
	}
	return b.String()
}

// rateRemaining is a response's X-RateLimit-Remaining.
func rateRemaining(t *testing.T, r result) int {
	t.Helper()
	n, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
	if err != nil {
		t.Fatalf("X-RateLimit-Remaining %q: %d %s", r.Header.Get("X-RateLimit-Remaining"), r.Status, r.Body)
	}
	return n
}

// TestGraphQLMutationsAreCharged: aliases let one request carry many
// mutations, so each mutation counts against the key's rate limit (the
// edge counted the request once; the rest are charged before any runs).
// An operation the bucket cannot pay for in full is refused whole, with
// 429, and runs nothing.
func TestGraphQLMutationsAreCharged(t *testing.T) {
	t.Parallel()
	cfg := edge.DefaultConfig()
	// Ten an hour rather than a minute: nothing refills while the test
	// counts.
	cfg.Limits[apikey.Admin] = ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	w := fileWorldWith(t, testchain.Options{Config: &cfg})
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	create := `createAPIKey(input: {name: "k$i", permissions: [READ], project: "a"}) { id key }`

	// A query costs one.
	r := w.gql(t, o.rootKey, viewerQuery, nil).ok(t)
	if r.Header.Get("X-RateLimit-Limit") != "10" || rateRemaining(t, r) != 9 {
		t.Fatalf("after a query: %v", r.Header)
	}
	// Three aliased createAPIKey cost three, and make three keys.
	before := w.keyState(t, o.id)
	r = w.gql(t, o.rootKey, `mutation {`+aliased(3, create)+` }`, nil).ok(t)
	if len(r.Data) != 3 || rateRemaining(t, r) != 6 {
		t.Fatalf("three mutations: remaining %d, %s", rateRemaining(t, r), r.Body)
	}
	if after := w.keyState(t, o.id); len(after) != len(before)+3*2 {
		t.Fatalf("%d key documents before, %d after three creations", len(before), len(after))
	}
	var made keyView
	r.field(t, "f0", &made)

	// Seven more, with six left: refused whole, nothing made.
	before = w.keyState(t, o.id)
	r = w.gql(t, o.rootKey, `mutation {`+aliased(7, create)+` }`, nil).refused(t, http.StatusTooManyRequests, "RATE_LIMITED")
	wantRateLimited(t, r)
	if !equalJSON(before, w.keyState(t, o.id)) {
		t.Fatal("a refused operation made keys")
	}
	// The refusal spent only the request the edge counted.
	if r := w.gql(t, o.rootKey, viewerQuery, nil).ok(t); rateRemaining(t, r) != 4 {
		t.Fatalf("after the refusal: remaining %d, want 4", rateRemaining(t, r))
	}

	// Rotations the same: two aliased rotations cost two and both run...
	rotate := `rotateAPIKey(id: "` + made.ID + `") { id key }`
	r = w.gql(t, o.rootKey, `mutation {`+aliased(2, rotate)+` }`, nil).ok(t)
	var first, second keyView
	r.field(t, "f0", &first)
	r.field(t, "f1", &second)
	if rateRemaining(t, r) != 2 || first.Key == made.Key || second.Key == first.Key || first.ID != made.ID {
		t.Fatalf("two rotations: remaining %d, %s", rateRemaining(t, r), r.Body)
	}
	// ...and three, with two left, are refused: the key keeps its secret.
	before = w.keyState(t, o.id)
	r = w.gql(t, o.rootKey, `mutation {`+aliased(3, rotate)+` }`, nil).refused(t, http.StatusTooManyRequests, "RATE_LIMITED")
	wantRateLimited(t, r)
	if !equalJSON(before, w.keyState(t, o.id)) {
		t.Fatal("a refused operation rotated the key")
	}
	if !w.works(t, second.Key) {
		t.Fatal("the key's secret changed")
	}
	// The one request left pays for one mutation; then the edge refuses,
	// in GraphQL's shape.
	r = w.gql(t, o.rootKey, `mutation { `+strings.ReplaceAll(create, "$i", "last")+` }`, nil).ok(t)
	if rateRemaining(t, r) != 0 {
		t.Fatalf("remaining %d, want 0", rateRemaining(t, r))
	}
	r = w.gql(t, o.rootKey, viewerQuery, nil).refused(t, http.StatusTooManyRequests, "RATE_LIMITED")
	wantRateLimited(t, r)

	// Another key has its own bucket; a query with many fields costs one.
	other, _ := w.mint(t, o.rootKey, "", keys.CreateInput{Name: "other"})
	r = w.gql(t, other, `{`+aliased(20, "viewer { id }")+` }`, nil).ok(t)
	if rateRemaining(t, r) != 9 {
		t.Fatalf("a query of 20 fields: remaining %d, want 9", rateRemaining(t, r))
	}
}

// wantRateLimited checks a refusal for the rate limit: one error, its
// Retry-After, and no request left.
func wantRateLimited(t *testing.T, r result) {
	t.Helper()
	if len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0].Message, "Rate limit exceeded; retry in ") {
		t.Fatalf("rate-limit refusal: %s", r.Body)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if r.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("X-RateLimit-Remaining %q", r.Header.Get("X-RateLimit-Remaining"))
	}
}

// TestGraphQLIntrospectionIsCounted: an introspection selection fans out to
// every type of the schema, so it counts toward MaxComplexity like any
// field. A thousand aliased copies, from a key that may only read, are
// refused before anything runs instead of answering megabytes; the full
// introspection query GraphiQL and code generators send is still answered.
func TestGraphQLIntrospectionIsCounted(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	ro, _ := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "read only", Permissions: []string{"READ"}})

	one := w.gql(t, ro, `{ __schema { types { name } } }`, nil).ok(t)
	q := `{` + aliased(1000, "__schema { types { name } }") + ` }`
	body := `{"query":` + quote(q) + `}`
	if len(body) > graphqlapi.MaxRequestBytes {
		t.Fatalf("the request is %d bytes, over the request limit", len(body))
	}
	r := w.send(t, ro, request{body: body}).refused(t, http.StatusUnprocessableEntity, "COMPLEXITY_LIMIT_EXCEEDED")
	if len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0].Message, "operation has complexity ") ||
		!strings.HasSuffix(r.Errors[0].Message, "which exceeds the limit of 500") || len(r.Body) > 1024 {
		t.Fatalf("%d-byte request (one copy answers %d bytes): %s", len(body), len(one.Body), r.Body)
	}
	// As many copies as fit stay within the limit; one more does not.
	var schema struct{ Types []struct{ Name string } }
	one.field(t, "__schema", &schema)
	per := len(schema.Types) + 3 // __schema, types, name, and a field per type
	fit := graphqlapi.MaxComplexity / per
	w.gql(t, ro, `{`+aliased(fit, "__schema { types { name } }")+` }`, nil).ok(t)
	w.gql(t, ro, `{`+aliased(fit+1, "__schema { types { name } }")+` }`, nil).
		refused(t, http.StatusUnprocessableEntity, "COMPLEXITY_LIMIT_EXCEEDED")
	// __type counts the same way.
	w.gql(t, ro, `{`+aliased(1000, `__type(name: "APIKey") { name }`)+` }`, nil).
		refused(t, http.StatusUnprocessableEntity, "COMPLEXITY_LIMIT_EXCEEDED")

	// The standard introspection query is answered, to this key too.
	var full struct {
		QueryType struct{ Name string }
		Types     []struct{ Name string }
	}
	w.gql(t, ro, introspectionQuery, nil).ok(t).field(t, "__schema", &full)
	if full.QueryType.Name != "Query" || len(full.Types) != len(schema.Types) {
		t.Fatalf("introspection: %+v", full)
	}
}

package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

func TestBootstrap(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()

		// Before any organization exists, another key cannot be minted.
		_, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true})
		wantErr(t, err, http.StatusConflict, apierror.CodeConflict, "not bootstrapped")
		if ids := e.ids(t, "orgs"); len(ids) != 0 {
			t.Fatalf("orgs after a refused bootstrap: %q", ids)
		}

		first, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{OrgName: " Acme ", KeyName: "ops", OwnerEmail: "owner@example.com", OwnerName: "Owner"})
		if err != nil {
			t.Fatal(err)
		}
		if !first.Created || !strings.HasPrefix(first.Organization.ID, "org_") || first.Organization.Name != "Acme" ||
			!first.Organization.CreatedAt.Equal(t0) {
			t.Fatalf("organization = %+v created=%v", first.Organization, first.Created)
		}
		rec := first.Record
		if rec.OrgID != first.Organization.ID || !rec.OrgWide() || rec.Environment != "" || rec.Type != apikey.Admin ||
			rec.Permissions != apikey.AllPermissions || rec.ExpiresAt != nil || rec.RevokedAt != nil ||
			rec.Name != "ops" || !strings.HasPrefix(rec.ID, "key_") || !rec.CreatedAt.Equal(t0) {
			t.Fatalf("bootstrap key record = %+v", rec)
		}
		if typ, err := apikey.Parse(first.Key); err != nil || typ != apikey.Admin {
			t.Fatalf("bootstrap key %q: type %v, %v", first.Key, typ, err)
		}
		if rec.Digest != apikey.DigestOf(first.Key).String() || rec.Hint != apikey.Hint(first.Key) {
			t.Fatalf("record digest/hint %q %q do not match the key", rec.Digest, rec.Hint)
		}
		if got := e.lookup(t, first.Key); got == nil || got.ID != rec.ID {
			t.Fatalf("LookupKey(bootstrap key) = %+v", got)
		}
		orgID := first.Organization.ID
		if ids := e.ids(t, "orgs"); !slices.Equal(ids, []string{orgID}) {
			t.Fatalf("orgs = %q", ids)
		}
		if ids := e.ids(t, "keys/"+orgID); !slices.Equal(ids, []string{rec.ID}) {
			t.Fatalf("keys = %q", ids)
		}
		b, ok := e.doc(t, "key-digests", rec.Digest)
		if !ok {
			t.Fatal("digest not indexed")
		}
		if o, k := digestDoc(t, b); o != orgID || k != rec.ID {
			t.Fatalf("digest document = %s", b)
		}

		// A second plain bootstrap refuses and writes nothing.
		before := e.snap(t, append(keyCols(orgID), "orgs")...)
		_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{OwnerEmail: "owner@example.com", OwnerName: "Owner"})
		wantErr(t, err, http.StatusConflict, apierror.CodeConflict, orgID)
		if !before.equal(e.snap(t, append(keyCols(orgID), "orgs")...)) {
			t.Fatal("a refused bootstrap changed the store")
		}

		// NewKey mints another org-wide key for the same organization.
		e.clock.Advance(time.Minute)
		second, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true})
		if err != nil {
			t.Fatal(err)
		}
		if second.Created || second.Organization.ID != orgID || second.Record.OrgID != orgID || !second.Record.OrgWide() ||
			second.Record.Type != apikey.Admin || second.Record.ID == rec.ID || second.Key == first.Key ||
			second.Record.Name != "bootstrap" || !second.Record.CreatedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("NewKey result = %+v / %+v", second, second.Record)
		}
		if got := e.lookup(t, second.Key); got == nil || got.ID != second.Record.ID {
			t.Fatalf("LookupKey(second key) = %+v", got)
		}
		if got := e.lookup(t, first.Key); got == nil || got.ID != rec.ID {
			t.Fatal("the first key stopped working after NewKey")
		}
		if n := len(e.ids(t, "keys/"+orgID)); n != 2 {
			t.Fatalf("%d keys, want 2", n)
		}

		_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, NewOrg: true})
		wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "new_key", "new_org")

		// NewOrg makes a second, separate organization.
		other, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OrgName: "Other", OwnerEmail: "owner@example.com", OwnerName: "Owner"})
		if err != nil {
			t.Fatal(err)
		}
		if !other.Created || other.Organization.ID == orgID || other.Record.OrgID != other.Organization.ID {
			t.Fatalf("NewOrg result = %+v", other.Organization)
		}
		if ids := e.ids(t, "orgs"); len(ids) != 2 {
			t.Fatalf("orgs = %q, want 2", ids)
		}

		// With two organizations, NewKey must name one.
		_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true})
		wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "2 organizations")
		third, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OrgID: other.Organization.ID})
		if err != nil {
			t.Fatal(err)
		}
		if third.Record.OrgID != other.Organization.ID || third.Created {
			t.Fatalf("NewKey for the second org = %+v", third.Record)
		}
		_, err = e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OrgID: "org_nope"})
		wantErr(t, err, http.StatusNotFound, apierror.CodeNotFound, "org_nope")

		for in, why := range map[admin.BootstrapInput]string{
			{NewOrg: true, OrgName: "bad\x07name", OwnerEmail: "o@example.com", OwnerName: "O"}:            "control characters",
			{NewOrg: true, KeyName: strings.Repeat("k", 101), OwnerEmail: "o@example.com", OwnerName: "O"}: "at most 100",
			{NewOrg: true, OwnerName: "O"}:                               "owner_email is required",
			{NewOrg: true, OwnerEmail: "not-an-address", OwnerName: "O"}: "not an e-mail address",
			{NewOrg: true, OwnerEmail: "o@example.com"}:                  "owner_name is required",
		} {
			before := e.snap(t, "orgs")
			_, err := e.svc.Bootstrap(ctx, in)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, why)
			if !before.equal(e.snap(t, "orgs")) {
				t.Fatalf("Bootstrap(%+v) failed but created an organization", in)
			}
		}
	})
}

// Secrets are stored only as SHA-256 digests: no byte of any secret ever
// issued is in the backend, while every digest is.
func TestSecretsStoredOnlyAsDigests(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		secrets := []string{o.rootKey}
		for _, in := range []keys.CreateInput{
			{Type: "live", Environment: "production"},
			{Type: "test", Environment: "staging", Permissions: []string{"READ"}},
			{Type: "admin", ExpiresIn: "30d"},
		} {
			k := e.mint(t, o.root, "alpha", in)
			if k.Digest != apikey.DigestOf(k.Secret).String() {
				t.Fatalf("record digest %s is not the SHA-256 of the key", k.Digest)
			}
			secrets = append(secrets, k.Secret)
			// Rotate with a grace period: the old and the new secret are both
			// live, and neither may be stored.
			r, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: "1h"})
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, r.Secret)
		}
		raw := e.raw(t)
		for _, s := range secrets {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("the backend holds the secret %s", apikey.Hint(s))
			}
			// The random part alone must not be there either (e.g. stored
			// without its prefix).
			typ, _ := apikey.Parse(s)
			if bytes.Contains(raw, []byte(s[len(typ.Prefix()):])) {
				t.Errorf("the backend holds the random part of %s", apikey.Hint(s))
			}
			// Sanity: the dump is real, since it holds the digest.
			if !bytes.Contains(raw, []byte(apikey.DigestOf(s).String())) {
				t.Errorf("the backend dump lacks the digest of %s", apikey.Hint(s))
			}
		}

		// Lists and reads never carry a secret either.
		keys, err := e.svc.Keys.ListKeys(ctx, o.root, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(keys)
		for _, k := range keys {
			got, err := e.svc.Keys.GetKey(ctx, o.root, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			out = append(out, b...)
		}
		for _, s := range secrets {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("ListKeys/GetKey return the secret %s", apikey.Hint(s))
			}
		}
	})
}

func TestProjectsAndEnvironments(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t)

		p, created, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "web-app", Name: "  Web app "})
		if err != nil {
			t.Fatal(err)
		}
		if p.Slug != "web-app" || p.Name != "Web app" || !p.CreatedAt.Equal(t0) {
			t.Fatalf("project = %+v", p)
		}
		// The name defaults to the slug.
		p2, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "api2"})
		if err != nil || p2.Name != "api2" {
			t.Fatalf("project = %+v, %v", p2, err)
		}

		got, envs, err := e.svc.Tenancy.GetProject(ctx, o.root, "web-app")
		if err != nil {
			t.Fatal(err)
		}
		if got.Slug != p.Slug || got.Name != p.Name || !got.CreatedAt.Equal(p.CreatedAt) {
			t.Fatalf("GetProject = %+v, want %+v", got, p)
		}
		var slugs []string
		for _, env := range envs {
			slugs = append(slugs, env.Slug)
			if env.Name != env.Slug || !env.CreatedAt.Equal(t0) {
				t.Errorf("environment %+v", env)
			}
		}
		slices.Sort(slugs)
		if want := []string{"development", "production", "staging"}; !slices.Equal(slugs, want) {
			t.Fatalf("environments = %q, want %q", slugs, want)
		}
		// CreateProject answers with the environments it made, as GetProject
		// lists them.
		if len(created) != len(envs) {
			t.Fatalf("CreateProject returned environments %+v, GetProject lists %+v", created, envs)
		}
		for i := range envs {
			if created[i].Slug != envs[i].Slug || created[i].Name != envs[i].Name || !created[i].CreatedAt.Equal(envs[i].CreatedAt) {
				t.Fatalf("CreateProject returned environments %+v, GetProject lists %+v", created, envs)
			}
		}

		// Duplicates conflict and change nothing.
		before := e.snap(t, "projects/"+o.id, "environments/"+o.id+"/web-app")
		_, _, err = e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "web-app", Name: "Other"})
		wantErr(t, err, http.StatusConflict, apierror.CodeConflict, `"web-app"`)
		if !before.equal(e.snap(t, "projects/"+o.id, "environments/"+o.id+"/web-app")) {
			t.Fatal("a conflicting CreateProject changed the store")
		}

		for _, tc := range []struct {
			in   tenancy.CreateProjectInput
			want string
		}{
			{tenancy.CreateProjectInput{}, "slug is required"},
			{tenancy.CreateProjectInput{Slug: "Web"}, `slug "Web"`},
			{tenancy.CreateProjectInput{Slug: "-web"}, `slug "-web"`},
			{tenancy.CreateProjectInput{Slug: "web-"}, `slug "web-"`},
			{tenancy.CreateProjectInput{Slug: "we b"}, `slug "we b"`},
			{tenancy.CreateProjectInput{Slug: "web_app"}, `slug "web_app"`},
			{tenancy.CreateProjectInput{Slug: "café"}, "slug"},
			{tenancy.CreateProjectInput{Slug: strings.Repeat("a", 64)}, "slug must be at most 63 characters"},
			{tenancy.CreateProjectInput{Slug: "ok", Name: strings.Repeat("n", 101)}, "name must be at most 100 characters"},
			{tenancy.CreateProjectInput{Slug: "ok", Name: "a\nb"}, "name must not contain control characters"},
		} {
			before := e.snap(t, "projects/"+o.id)
			_, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tc.in)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, tc.want)
			if !before.equal(e.snap(t, "projects/"+o.id)) {
				t.Fatalf("CreateProject(%+v) failed but wrote", tc.in)
			}
		}
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: strings.Repeat("a", 63)}); err != nil {
			t.Fatalf("63-character slug: %v", err)
		}

		list, err := e.svc.Tenancy.ListProjects(ctx, o.root)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range list {
			names = append(names, p.Slug)
		}
		if want := []string{strings.Repeat("a", 63), "api2", "web-app"}; !slices.Equal(names, want) {
			t.Fatalf("ListProjects = %q, want %q", names, want)
		}

		_, _, err = e.svc.Tenancy.GetProject(ctx, o.root, "nope")
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))
		_, err = e.svc.Tenancy.ListEnvironments(ctx, o.root, "nope")
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))

		// Environments.
		e.clock.Advance(time.Hour)
		env, err := e.svc.Tenancy.CreateEnvironment(ctx, o.root, "web-app", tenancy.CreateEnvironmentInput{Slug: "qa", Name: "QA"})
		if err != nil {
			t.Fatal(err)
		}
		if env.Slug != "qa" || env.Name != "QA" || !env.CreatedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("environment = %+v", env)
		}
		envs, err = e.svc.Tenancy.ListEnvironments(ctx, o.root, "web-app")
		if err != nil || len(envs) != 4 || !slices.ContainsFunc(envs, func(x tenancy.Environment) bool {
			return x.Slug == "qa" && x.Name == "QA" && x.CreatedAt.Equal(env.CreatedAt)
		}) {
			t.Fatalf("ListEnvironments = %+v, %v", envs, err)
		}
		// Another project's environments are untouched.
		if envs, _ := e.svc.Tenancy.ListEnvironments(ctx, o.root, "api2"); len(envs) != 3 {
			t.Fatalf("api2 has %d environments, want 3", len(envs))
		}
		_, err = e.svc.Tenancy.CreateEnvironment(ctx, o.root, "web-app", tenancy.CreateEnvironmentInput{Slug: "production"})
		wantErr(t, err, http.StatusConflict, apierror.CodeConflict, `"production"`, `"web-app"`)
		_, err = e.svc.Tenancy.CreateEnvironment(ctx, o.root, "web-app", tenancy.CreateEnvironmentInput{Slug: "Prod"})
		wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "slug")
		_, err = e.svc.Tenancy.CreateEnvironment(ctx, o.root, "nope", tenancy.CreateEnvironmentInput{Slug: "qa"})
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))
		if _, ok := e.doc(t, "environments/"+o.id+"/nope", "qa"); ok {
			t.Fatal("CreateEnvironment on a missing project wrote the environment")
		}
	})
}

func TestCreateKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")

		k, err := e.svc.Keys.CreateKey(ctx, o.root, "alpha", keys.CreateInput{
			Name: "Production server", Type: "live", Environment: "production",
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k.ID, "key_") || k.OrgID != o.id || k.Project != "alpha" || k.Environment != "production" ||
			k.Type != apikey.Live || k.Permissions != apikey.AllPermissions || k.Name != "Production server" ||
			!k.CreatedAt.Equal(t0) || k.ExpiresAt != nil || k.RevokedAt != nil || k.RotatedAt != nil || k.LastUsedAt != nil {
			t.Fatalf("created key = %+v", k.Record)
		}
		if typ, err := apikey.Parse(k.Secret); err != nil || typ != apikey.Live || !strings.HasPrefix(k.Secret, "fb_live_") {
			t.Fatalf("secret %q: %v %v", k.Secret, typ, err)
		}
		if want := "fb_live_..." + k.Secret[len(k.Secret)-4:]; k.Hint != want {
			t.Fatalf("hint = %q, want %q", k.Hint, want)
		}
		if got := e.lookup(t, k.Secret); got == nil || got.ID != k.ID || got.Digest != apikey.DigestOf(k.Secret).String() {
			t.Fatalf("LookupKey = %+v", got)
		}
		stored, ok := e.doc(t, "keys/"+o.id, k.ID)
		if !ok {
			t.Fatal("key record not stored")
		}
		var rec apikey.Record
		if err := json.Unmarshal(stored, &rec); err != nil || rec.ID != k.ID || rec.Digest != k.Digest {
			t.Fatalf("stored record %s: %v", stored, err)
		}

		// Types, permissions and lifetimes.
		for _, tc := range []struct {
			in        keys.CreateInput
			typ       apikey.Type
			perms     apikey.Permissions
			expiresAt *time.Time
		}{
			{keys.CreateInput{Type: "test", Environment: "staging"}, apikey.Test, apikey.AllPermissions, nil},
			{keys.CreateInput{Type: "ADMIN"}, apikey.Admin, apikey.AllPermissions, nil},
			// Admin keys of one environment used to be refused; they are
			// accepted now.
			{keys.CreateInput{Type: "admin", Environment: "production"}, apikey.Admin, apikey.AllPermissions, nil},
			{keys.CreateInput{Type: "admin", Environment: "staging", Permissions: []string{"READ"}}, apikey.Admin, perms(t, "READ"), nil},
			{keys.CreateInput{Type: "live", Environment: "development", Permissions: []string{"READ"}}, apikey.Live, perms(t, "READ"), nil},
			{keys.CreateInput{Type: "admin", Permissions: []string{"write"}}, apikey.Admin, perms(t, "WRITE"), nil},
			{keys.CreateInput{Type: "admin", Permissions: []string{"WRITE", "READ"}}, apikey.Admin, apikey.AllPermissions, nil},
			{keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "30d"}, apikey.Live, apikey.AllPermissions, tp(t0.Add(30 * 24 * time.Hour))},
			{keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "2w"}, apikey.Live, apikey.AllPermissions, tp(t0.Add(14 * 24 * time.Hour))},
			{keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "1m"}, apikey.Live, apikey.AllPermissions, tp(t0.Add(time.Minute))},
			{keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "365d"}, apikey.Live, apikey.AllPermissions, tp(t0.Add(365 * 24 * time.Hour))},
			{keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "1h30m"}, apikey.Live, apikey.AllPermissions, tp(t0.Add(90 * time.Minute))},
		} {
			k := e.mint(t, o.root, "beta", tc.in)
			if k.Type != tc.typ || k.Permissions != tc.perms || !sameTime(k.ExpiresAt, tc.expiresAt) || k.Project != "beta" ||
				k.Environment != tc.in.Environment {
				t.Errorf("CreateKey(%+v) = type %v perms %v expires %s env %q", tc.in, k.Type, k.Permissions.List(), fmtTime(k.ExpiresAt), k.Environment)
			}
			if typ, _ := apikey.Parse(k.Secret); typ != tc.typ {
				t.Errorf("CreateKey(%+v): secret of type %v", tc.in, typ)
			}
		}

		// Every refusal names the problem and writes nothing.
		for _, tc := range []struct {
			project string
			in      keys.CreateInput
			status  int
			want    string
		}{
			{"alpha", keys.CreateInput{Type: "live", Environment: "production"}, 400, "name is required"},
			{"alpha", keys.CreateInput{Name: "   ", Type: "live", Environment: "production"}, 400, "name is required"},
			{"alpha", keys.CreateInput{Name: strings.Repeat("x", 101), Type: "live", Environment: "production"}, 400, "name must be at most 100"},
			{"alpha", keys.CreateInput{Name: "a\tb", Type: "live", Environment: "production"}, 400, "name must not contain control"},
			{"alpha", keys.CreateInput{Name: "n", Environment: "production"}, 400, "type is required"},
			{"alpha", keys.CreateInput{Name: "n", Type: "root", Environment: "production"}, 400, `type: unknown key type "root"`},
			{"alpha", keys.CreateInput{Name: "n", Type: "live"}, 400, "environment is required for live keys"},
			{"alpha", keys.CreateInput{Name: "n", Type: "test"}, 400, "environment is required for test keys"},
			// An admin key may name an environment (of its project only).
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", Environment: "qa"}, 400, `environment: project "alpha" has no environment "qa"`},
			{"", keys.CreateInput{Name: "n", Type: "admin", Environment: "production"}, 400,
				"environment: an organization-wide key covers every project; name the project of an environment key"},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", Environment: "Prod"}, 400, `environment "Prod"`},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", Resources: []string{"beta"}}, 400,
				`resources: a key of project "alpha" is already limited to it; resources narrow organization-wide keys`},
			{"alpha", keys.CreateInput{Name: "n", Type: "live", Environment: "qa"}, 400, `environment: project "alpha" has no environment "qa"`},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", Permissions: []string{}}, 400, "permissions: at least one permission"},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", Permissions: []string{"ADMIN"}}, 400, `permissions: unknown permission "ADMIN"`},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", Permissions: []string{"READ", "read"}}, 400, "permissions: permission"},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "59s"}, 400, "expires_in must be between 1m and 365d"},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "366d"}, 400, "expires_in must be between 1m and 365d"},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "8761h"}, 400, "expires_in must be between 1m and 365d"},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "53w"}, 400, "expires_in must be between 1m and 365d"},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "0d"}, 400, "expires_in: "},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "-1h"}, 400, "expires_in: "},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "soon"}, 400, "expires_in: "},
			{"alpha", keys.CreateInput{Name: "n", Type: "admin", ExpiresIn: "99999999999d"}, 400, "expires_in: "},
			{"nope", keys.CreateInput{Name: "n", Type: "live", Environment: "production"}, 404, `project "nope" not found`},
			{"nope", keys.CreateInput{Name: "n", Type: "admin"}, 404, `project "nope" not found`},
		} {
			before := e.snap(t, keyCols(o.id)...)
			_, err := e.svc.Keys.CreateKey(ctx, o.root, tc.project, tc.in)
			code := apierror.CodeInvalidRequest
			if tc.status == 404 {
				code = apierror.CodeNotFound
			}
			wantErr(t, err, tc.status, code, tc.want)
			if !before.equal(e.snap(t, keyCols(o.id)...)) {
				t.Fatalf("CreateKey(%s, %+v) failed but changed the key collections", tc.project, tc.in)
			}
		}
	})
}

// Expiry is enforced at the exact second, with the service's clock.
func TestKeyExpiry(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		k := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production", ExpiresIn: "30d"})
		end := t0.Add(30 * 24 * time.Hour)
		if !sameTime(k.ExpiresAt, &end) {
			t.Fatalf("expires_at = %s, want %s", fmtTime(k.ExpiresAt), end)
		}
		rec := e.lookup(t, k.Secret)
		if until, ok := rec.ValidUntil(k.Digest, end.Add(-time.Second)); !ok || !until.Equal(end) {
			t.Fatalf("ValidUntil one second before expiry = %v, %v; want %v, true", until, ok, end)
		}
		if rec.Status(end.Add(-time.Second)) != "active" || rec.Status(end) != "expired" {
			t.Fatalf("status around expiry: %s, %s", rec.Status(end.Add(-time.Second)), rec.Status(end))
		}
		if _, ok := rec.ValidUntil(k.Digest, end); ok {
			t.Fatal("the key still authenticates at its expiry time")
		}

		// An expired key cannot be rotated, but can be read and revoked.
		e.clock.Set(end)
		_, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{})
		wantErr(t, err, http.StatusConflict, apierror.CodeConflict, "expired")
		if got, err := e.svc.Keys.GetKey(ctx, o.root, k.ID); err != nil || got.Status(e.clock.Now()) != "expired" {
			t.Fatalf("GetKey of an expired key: %+v, %v", got, err)
		}
		if _, err := e.svc.Keys.RevokeKey(ctx, o.root, k.ID); err != nil {
			t.Fatal(err)
		}
	})
}

func TestListAndGetKeys(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		var want []string
		for i, in := range []keys.CreateInput{
			{Type: "admin"},
			{Type: "live", Environment: "production"},
			{Type: "test", Environment: "staging", Permissions: []string{"READ"}, ExpiresIn: "1h"},
		} {
			e.clock.Set(t0.Add(time.Duration(3-i) * time.Hour)) // created newest first
			want = append([]string{e.mint(t, o.root, "alpha", in).ID}, want...)
		}
		e.mint(t, o.root, "beta", keys.CreateInput{Type: "live", Environment: "production"})

		keys, err := e.svc.Keys.ListKeys(ctx, o.root, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, k.ID)
			if k.Project != "alpha" {
				t.Errorf("ListKeys(alpha) holds key %s of project %q", k.ID, k.Project)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ListKeys = %q, want oldest first %q", got, want)
		}
		// The bootstrap key is org-wide: in no project's list.
		if slices.Contains(got, o.root.ID) {
			t.Fatal("an org-wide key is listed under a project")
		}
		if keys, err := e.svc.Keys.ListKeys(ctx, o.root, "beta"); err != nil || len(keys) != 1 {
			t.Fatalf("ListKeys(beta) = %d keys, %v", len(keys), err)
		}
		_, err = e.svc.Keys.ListKeys(ctx, o.root, "nope")
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))

		k, err := e.svc.Keys.GetKey(ctx, o.root, want[0])
		if err != nil {
			t.Fatal(err)
		}
		if k.ID != want[0] || k.Type != apikey.Test || k.Environment != "staging" || k.Permissions != perms(t, "READ") {
			t.Fatalf("GetKey = %+v", k.Record)
		}
		_, err = e.svc.Keys.GetKey(ctx, o.root, "key_nope")
		wantExact(t, err, apierror.NotFound(`API key "key_nope" not found`))
	})
}

func TestRecordUsage(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		a := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
		b := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
		lastUsed := func(id string) *time.Time {
			t.Helper()
			k, err := e.svc.Keys.GetKey(ctx, o.root, id)
			if err != nil {
				t.Fatal(err)
			}
			return k.LastUsedAt
		}
		if lastUsed(a.ID) != nil {
			t.Fatal("a new key has a last use")
		}
		if err := e.svc.Keys.RecordUsage(ctx, nil); err != nil {
			t.Fatal(err)
		}

		t1, t2, t3 := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(3*time.Minute)
		steps := []struct {
			used  map[string]time.Time
			wantA *time.Time
			wantB *time.Time
		}{
			{map[string]time.Time{a.ID: t2}, &t2, nil},
			// An earlier report (a slower instance) does not go back in time.
			{map[string]time.Time{a.ID: t1, b.ID: t1}, &t2, &t1},
			{map[string]time.Time{a.ID: t2}, &t2, &t1},
			{map[string]time.Time{a.ID: t3, b.ID: t2}, &t3, &t2},
			// Other time zones compare by instant.
			{map[string]time.Time{b.ID: t1.In(time.FixedZone("X", 5*3600))}, &t3, &t2},
			{map[string]time.Time{b.ID: t3.In(time.FixedZone("Y", -7*3600))}, &t3, &t3},
		}
		for i, s := range steps {
			if err := e.svc.Keys.RecordUsage(ctx, s.used); err != nil {
				t.Fatal(err)
			}
			if got := lastUsed(a.ID); !sameTime(got, s.wantA) {
				t.Fatalf("step %d: a last used %s, want %s", i, fmtTime(got), fmtTime(s.wantA))
			}
			if got := lastUsed(b.ID); !sameTime(got, s.wantB) {
				t.Fatalf("step %d: b last used %s, want %s", i, fmtTime(got), fmtTime(s.wantB))
			}
		}
		keys, err := e.svc.Keys.ListKeys(ctx, o.root, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if !sameTime(k.LastUsedAt, &t3) {
				t.Errorf("ListKeys: %s last used %s, want %s", k.ID, fmtTime(k.LastUsedAt), t3)
			}
		}
	})
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		f := e.subscribe(t)

		t.Run("immediate", func(t *testing.T) {
			k := e.mint(t, o.root, "alpha", keys.CreateInput{
				Name: "srv", Type: "live", Environment: "production", Permissions: []string{"READ"}, ExpiresIn: "30d",
			})
			e.clock.Advance(time.Hour)
			r, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{})
			if err != nil {
				t.Fatal(err)
			}
			f.expect(t, k.ID)
			if r.Secret == k.Secret || r.ID != k.ID || r.Name != "srv" || r.Type != apikey.Live || r.Project != "alpha" ||
				r.Environment != "production" || r.Permissions != k.Permissions || !sameTime(r.ExpiresAt, k.ExpiresAt) ||
				!r.CreatedAt.Equal(k.CreatedAt) || !sameTime(r.RotatedAt, tp(e.clock.Now())) || r.PreviousDigest != "" ||
				r.Hint != apikey.Hint(r.Secret) || r.Digest != apikey.DigestOf(r.Secret).String() ||
				r.OwnerID != o.root.Member || r.PreviousOwnerID != "" {
				t.Fatalf("rotated key = %+v", r.Record)
			}
			if typ, _ := apikey.Parse(r.Secret); typ != apikey.Live {
				t.Fatalf("new secret of type %v", typ)
			}
			if got := e.lookup(t, k.Secret); got != nil {
				t.Fatalf("the old secret still finds %+v", got)
			}
			if _, ok := e.doc(t, "key-digests", k.Digest); ok {
				t.Fatal("the old digest is still indexed")
			}
			got := e.lookup(t, r.Secret)
			if got == nil || got.ID != k.ID {
				t.Fatalf("LookupKey(new secret) = %+v", got)
			}
			if _, ok := got.ValidUntil(k.Digest, e.clock.Now()); ok {
				t.Fatal("the old digest is still valid")
			}
		})

		t.Run("grace period", func(t *testing.T) {
			e.clock.Set(t0)
			k := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"})
			r, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: "1h"})
			if err != nil {
				t.Fatal(err)
			}
			f.expect(t, k.ID)
			end := t0.Add(time.Hour)
			if r.PreviousDigest != k.Digest || !sameTime(r.PreviousValidUntil, &end) || r.PreviousOwnerID != o.root.Member || r.OwnerID != o.root.Member {
				t.Fatalf("previous digest %q until %s, owned by %q (now %q)", r.PreviousDigest, fmtTime(r.PreviousValidUntil), r.PreviousOwnerID, r.OwnerID)
			}
			old := e.lookup(t, k.Secret)
			if old == nil || old.ID != k.ID {
				t.Fatalf("during the grace period LookupKey(old) = %+v", old)
			}
			for _, tc := range []struct {
				at     time.Time
				ok     bool
				wantTo time.Time
			}{
				{t0, true, end},
				{end.Add(-time.Second), true, end},
				{end, false, time.Time{}},
				{end.Add(time.Hour), false, time.Time{}},
			} {
				until, ok := old.ValidUntil(k.Digest, tc.at)
				if ok != tc.ok || !until.Equal(tc.wantTo) {
					t.Errorf("ValidUntil(old, %s) = %v, %v; want %v, %v", tc.at, until, ok, tc.wantTo, tc.ok)
				}
				// The new secret works throughout, with no limit.
				if until, ok := old.ValidUntil(r.Digest, tc.at); !ok || !until.IsZero() {
					t.Errorf("ValidUntil(new, %s) = %v, %v", tc.at, until, ok)
				}
			}

			// A second rotation ends the first grace period at once, even
			// with a grace period of its own.
			r2, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: "2d"})
			if err != nil {
				t.Fatal(err)
			}
			f.expect(t, k.ID)
			if got := e.lookup(t, k.Secret); got != nil {
				t.Fatal("the first secret survived a second rotation")
			}
			if got := e.lookup(t, r.Secret); got == nil {
				t.Fatal("the second secret lost its grace period")
			} else if until, ok := got.ValidUntil(r.Digest, t0); !ok || !until.Equal(t0.Add(48*time.Hour)) {
				t.Fatalf("second secret valid until %v, %v", until, ok)
			}
			if got := e.lookup(t, r2.Secret); got == nil || got.Digest != r2.Digest {
				t.Fatal("the third secret does not work")
			}

			// A rotation without grace during a grace period ends both old
			// secrets.
			r3, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{})
			if err != nil {
				t.Fatal(err)
			}
			f.expect(t, k.ID)
			for _, s := range []string{k.Secret, r.Secret, r2.Secret} {
				if e.lookup(t, s) != nil {
					t.Fatalf("secret %s still works after an immediate rotation", apikey.Hint(s))
				}
			}
			if ids := e.ids(t, "key-digests"); slices.Contains(ids, r.Digest) || slices.Contains(ids, r2.Digest) || !slices.Contains(ids, r3.Digest) {
				t.Fatalf("digest index after rotations = %q", ids)
			}
			// No old secret is left, so no previous owner either.
			if r3.PreviousDigest != "" || r3.PreviousValidUntil != nil || r3.PreviousOwnerID != "" {
				t.Fatalf("after an immediate rotation: previous %q until %s owned by %q", r3.PreviousDigest, fmtTime(r3.PreviousValidUntil), r3.PreviousOwnerID)
			}
		})

		t.Run("refusals", func(t *testing.T) {
			k := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
			for _, tc := range []struct {
				grace string
				want  string
			}{
				{"8d", "grace_period must be at most 7d"},
				{"169h", "grace_period must be at most 7d"},
				{"2w", "grace_period must be at most 7d"},
				{"0s", "grace_period: "},
				{"-1h", "grace_period: "},
				{"later", "grace_period: "},
			} {
				before := e.snap(t, keyCols(o.id)...)
				_, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: tc.grace})
				wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, tc.want)
				if !before.equal(e.snap(t, keyCols(o.id)...)) {
					t.Fatalf("refused rotation (%s) changed the store", tc.grace)
				}
			}
			if _, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: "7d"}); err != nil {
				t.Fatalf("grace period 7d: %v", err)
			}
			f.expect(t, k.ID)
			_, err := e.svc.Keys.RotateKey(ctx, o.root, "key_nope", keys.RotateInput{})
			wantExact(t, err, apierror.NotFound(`API key "key_nope" not found`))
			if _, err := e.svc.Keys.RevokeKey(ctx, o.root, k.ID); err != nil {
				t.Fatal(err)
			}
			f.expect(t, k.ID)
			_, err = e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{})
			wantErr(t, err, http.StatusConflict, apierror.CodeConflict, "revoked")
			f.expectQuiet(t, e, o, "alpha")
		})
	})
}

func TestRevokeKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		f := e.subscribe(t)
		k := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
		r, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		if err := e.svc.Keys.RecordUsage(ctx, map[string]time.Time{k.ID: t0}); err != nil {
			t.Fatal(err)
		}

		e.clock.Advance(time.Minute)
		revokedAt := e.clock.Now()
		got, err := e.svc.Keys.RevokeKey(ctx, o.root, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		if !sameTime(got.RevokedAt, &revokedAt) || got.ID != k.ID || !sameTime(got.LastUsedAt, &t0) {
			t.Fatalf("revoked key = %+v (last used %s)", got.Record, fmtTime(got.LastUsedAt))
		}
		// Both the current secret and the one in its grace period stop.
		for _, s := range []string{k.Secret, r.Secret} {
			if rec := e.lookup(t, s); rec != nil {
				t.Fatalf("LookupKey(%s) after revocation = %+v", apikey.Hint(s), rec)
			}
		}
		for _, d := range []string{k.Digest, r.Digest} {
			if _, ok := e.doc(t, "key-digests", d); ok {
				t.Fatalf("digest %s still indexed after revocation", d)
			}
		}
		if _, ok := got.ValidUntil(r.Digest, revokedAt); ok {
			t.Fatal("a revoked record still validates its secret")
		}
		if got.Status(revokedAt) != "revoked" {
			t.Fatalf("status %q", got.Status(revokedAt))
		}

		// Revoking again is idempotent: same time, nothing written or
		// published.
		e.clock.Advance(time.Hour)
		before := e.snap(t, keyCols(o.id)...)
		again, err := e.svc.Keys.RevokeKey(ctx, o.root, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !sameTime(again.RevokedAt, &revokedAt) {
			t.Fatalf("second revocation moved revoked_at to %s", fmtTime(again.RevokedAt))
		}
		if !before.equal(e.snap(t, keyCols(o.id)...)) {
			t.Fatal("a second revocation changed the store")
		}
		f.expectQuiet(t, e, o, "alpha")

		// The key stays listed, as revoked.
		listed, err := e.svc.Keys.ListKeys(ctx, o.root, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(listed, func(x keys.Key) bool { return x.ID == k.ID }); i < 0 || !sameTime(listed[i].RevokedAt, &revokedAt) {
			t.Fatal("revoked key not listed with its revocation time")
		}
		_, err = e.svc.Keys.RevokeKey(ctx, o.root, "key_nope")
		wantExact(t, err, apierror.NotFound(`API key "key_nope" not found`))
	})
}

func TestDeleteProject(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		var doomed []*keys.Created
		for _, in := range []keys.CreateInput{
			{Type: "live", Environment: "production"},
			{Type: "test", Environment: "staging"},
			{Type: "admin"},
		} {
			doomed = append(doomed, e.mint(t, o.root, "alpha", in))
		}
		// One of them mid-rotation: both its secrets must go.
		rot, err := e.svc.Keys.RotateKey(ctx, o.root, doomed[0].ID, keys.RotateInput{GracePeriod: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Tenancy.CreateEnvironment(ctx, o.root, "alpha", tenancy.CreateEnvironmentInput{Slug: "qa"}); err != nil {
			t.Fatal(err)
		}
		kept := e.mint(t, o.root, "beta", keys.CreateInput{Type: "live", Environment: "production"})
		used := map[string]time.Time{kept.ID: t0, o.root.ID: t0}
		for _, k := range doomed {
			used[k.ID] = t0
		}
		if err := e.svc.Keys.RecordUsage(ctx, used); err != nil {
			t.Fatal(err)
		}
		f := e.subscribe(t)

		// Refusals first: nothing happens.
		_, err = e.svc.Keys.CreateKey(ctx, o.root, "alpha", keys.CreateInput{Name: "x", Type: "live", Environment: "nope"})
		wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest)
		err = e.svc.DeleteProject(ctx, o.root, "nope")
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))

		if err := e.svc.DeleteProject(ctx, o.root, "alpha"); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range doomed {
			ids = append(ids, k.ID)
		}
		f.expect(t, ids...)

		_, _, err = e.svc.Tenancy.GetProject(ctx, o.root, "alpha")
		wantExact(t, err, apierror.NotFound(`project "alpha" not found`))
		if got := e.ids(t, "projects/"+o.id); !slices.Equal(got, []string{"beta"}) {
			t.Fatalf("projects after delete = %q", got)
		}
		if got := e.ids(t, "environments/"+o.id+"/alpha"); len(got) != 0 {
			t.Fatalf("environments left behind: %q", got)
		}
		if got := e.ids(t, "environments/"+o.id+"/beta"); len(got) != 3 {
			t.Fatalf("beta's environments = %q", got)
		}
		keyIDs := e.ids(t, "keys/"+o.id)
		useIDs := e.ids(t, "key-use")
		for _, k := range doomed {
			if slices.Contains(keyIDs, k.ID) || slices.Contains(useIDs, k.ID) {
				t.Errorf("key %s or its usage survived the project", k.ID)
			}
			if e.lookup(t, k.Secret) != nil {
				t.Errorf("the secret of deleted key %s still works", k.ID)
			}
			_, err := e.svc.Keys.GetKey(ctx, o.root, k.ID)
			wantErr(t, err, http.StatusNotFound, apierror.CodeNotFound)
		}
		if e.lookup(t, rot.Secret) != nil {
			t.Error("the rotated secret of a deleted key still works")
		}
		digests := e.ids(t, "key-digests")
		for _, d := range []string{doomed[0].Digest, rot.Digest, doomed[1].Digest, doomed[2].Digest} {
			if slices.Contains(digests, d) {
				t.Errorf("digest %s survived the project", d)
			}
		}
		// The rest of the organization is untouched.
		for _, s := range []string{kept.Secret, o.rootKey} {
			if e.lookup(t, s) == nil {
				t.Errorf("key %s lost with another project", apikey.Hint(s))
			}
		}
		if !slices.Contains(useIDs, kept.ID) || !slices.Contains(useIDs, o.root.ID) {
			t.Error("usage of other keys deleted")
		}
		f.expectQuiet(t, e, o, "beta")

		// The slug can be reused, starting afresh.
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
			t.Fatal(err)
		}
		if keys, err := e.svc.Keys.ListKeys(ctx, o.root, "alpha"); err != nil || len(keys) != 0 {
			t.Fatalf("recreated project has keys %v, %v", keys, err)
		}
		if envs, _ := e.svc.Tenancy.ListEnvironments(ctx, o.root, "alpha"); len(envs) != 3 {
			t.Fatalf("recreated project has %d environments", len(envs))
		}
	})
}

// A failure in the middle of any write leaves the store as it was and
// publishes nothing.
func TestNothingHalfWritten(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		k := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
		if err := e.svc.Keys.RecordUsage(ctx, map[string]time.Time{k.ID: t0}); err != nil {
			t.Fatal(err)
		}
		f := e.subscribe(t)
		all := append(keyCols(o.id), "orgs", "projects/"+o.id, "environments/"+o.id+"/alpha", "environments/"+o.id+"/beta")

		for _, tc := range []struct {
			name string
			fail func(string, string, string) error
			op   func(svc *admin.Service) error
		}{
			{"CreateKey fails indexing the digest", failOn("put", "key-digests"), func(svc *admin.Service) error {
				_, err := svc.Keys.CreateKey(ctx, o.root, "alpha", keys.CreateInput{Name: "n", Type: "admin"})
				return err
			}},
			{"CreateProject fails on its last environment", func(op, c, id string) error {
				if op == "put" && id == "development" {
					return errInjected
				}
				return nil
			}, func(svc *admin.Service) error {
				_, _, err := svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "beta"})
				return err
			}},
			{"RotateKey fails indexing the new digest", failOn("put", "key-digests"), func(svc *admin.Service) error {
				_, err := svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{})
				return err
			}},
			{"RotateKey with grace fails storing the record", failOn("put", "keys/"), func(svc *admin.Service) error {
				_, err := svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{GracePeriod: "1h"})
				return err
			}},
			{"RevokeKey fails storing the record", failOn("put", "keys/"), func(svc *admin.Service) error {
				_, err := svc.Keys.RevokeKey(ctx, o.root, k.ID)
				return err
			}},
			{"DeleteProject fails on the environments", failOn("delete-collection", "environments/"), func(svc *admin.Service) error {
				return svc.DeleteProject(ctx, o.root, "alpha")
			}},
			{"DeleteProject fails on the project", failOn("delete", "projects/"), func(svc *admin.Service) error {
				return svc.DeleteProject(ctx, o.root, "alpha")
			}},
			{"Bootstrap fails indexing the digest", failOn("put", "key-digests"), func(svc *admin.Service) error {
				_, err := svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner"})
				return err
			}},
			{"Bootstrap NewKey fails storing the record", failOn("put", "keys/"), func(svc *admin.Service) error {
				_, err := svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OrgID: o.id})
				return err
			}},
			{"RecordUsage fails on the second key", func(op, c, id string) error {
				if op == "put" && c == "key-use" && id == o.root.ID {
					return errInjected
				}
				return nil
			}, func(svc *admin.Service) error {
				return svc.Keys.RecordUsage(ctx, map[string]time.Time{k.ID: t0.Add(time.Hour), o.root.ID: t0.Add(time.Hour)})
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := e.snap(t, all...)
				orgs := e.ids(t, "orgs")
				err := tc.op(e.faulty(tc.fail))
				if !errors.Is(err, errInjected) {
					t.Fatalf("error = %v, want the injected failure", err)
				}
				if !before.equal(e.snap(t, all...)) {
					t.Fatal("the store changed")
				}
				if got := e.ids(t, "orgs"); !slices.Equal(got, orgs) {
					t.Fatalf("organizations changed: %q -> %q", orgs, got)
				}
				if e.lookup(t, k.Secret) == nil {
					t.Fatal("the key stopped working")
				}
				f.expectQuiet(t, e, o, "alpha")
			})
		}
	})
}

// caller is a key calling the services, described by what the rules look at.
type caller struct {
	name     string
	rec      *authz.Principal
	admin    bool
	orgWide  bool
	project  string
	perms    []string
	lifetime time.Duration // 0: does not expire
}

func (c caller) has(p string) bool { return slices.Contains(c.perms, p) }

// callers mints the calling keys of the authorization tests in project
// alpha of o, at the current clock time.
func (e *env) callers(t *testing.T, o *org) []caller {
	t.Helper()
	ro := *o.root.Key
	ro.Permissions = perms(t, "READ")
	mk := func(name, typ, environment string, ps []string, expires string, lifetime time.Duration) caller {
		k := e.mint(t, o.root, "alpha", keys.CreateInput{
			Name: name, Type: typ, Environment: environment, Permissions: ps, ExpiresIn: expires,
		})
		if ps == nil {
			ps = []string{"READ", "WRITE"}
		}
		return caller{name, as(k.Record), typ == "admin", false, "alpha", ps, lifetime}
	}
	return []caller{
		{"org-admin-rw", o.root, true, true, "", []string{"READ", "WRITE"}, 0},
		// Org-wide keys come only from Bootstrap, which makes them READ and
		// WRITE; a READ-only one is a record the edge could hand over.
		{"org-admin-ro", as(&ro), true, true, "", []string{"READ"}, 0},
		mk("proj-admin-rw", "admin", "", nil, "", 0),
		mk("proj-admin-ro", "admin", "", []string{"READ"}, "", 0),
		mk("proj-admin-rw-1h", "admin", "", nil, "1h", time.Hour),
		mk("proj-admin-wo", "admin", "", []string{"WRITE"}, "", 0),
		mk("live", "live", "production", nil, "", 0),
		mk("test", "test", "staging", nil, "", 0),
	}
}

// The exhaustive privilege-escalation table: every caller asks for every
// kind of key in its own and in another project. The verdict is computed
// from the product rules alone.
func TestCreateKeyPrivilegeEscalation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		callers := e.callers(t, o)

		lifetimes := []struct {
			name string
			in   string
			d    time.Duration
		}{{"none", "", 0}, {"30m", "30m", 30 * time.Minute}, {"2h", "2h", 2 * time.Hour}}
		permSets := [][]string{{"READ"}, {"WRITE"}, {"READ", "WRITE"}}
		n, allowed := 0, 0
		for _, c := range callers {
			for _, typ := range []string{"live", "test", "admin"} {
				for _, ps := range permSets {
					for _, lt := range lifetimes {
						for _, where := range []string{"own", "other"} {
							project := "alpha"
							if where == "other" {
								project = "beta"
							}
							// The rules, each giving the exact answer it refuses
							// with.
							var reasons []string
							if !c.admin {
								reasons = append(reasons, apierror.WrongKeyType.Message)
							}
							if !c.has("WRITE") {
								reasons = append(reasons, apierror.ReadOnlyKey.Message)
							}
							if !c.orgWide && project != c.project {
								reasons = append(reasons, fmt.Sprintf("This key belongs to project %q and cannot create keys in project %q", c.project, project))
							}
							for _, p := range ps {
								if !c.has(p) {
									reasons = append(reasons, fmt.Sprintf("This key cannot grant permissions it does not have (it has %v)", c.perms))
									break
								}
							}
							if c.lifetime > 0 && (lt.d == 0 || lt.d > c.lifetime) {
								reasons = append(reasons, fmt.Sprintf("This key expires at %s and cannot create a key that outlives it; set expires_in accordingly",
									t0.Add(c.lifetime).Format(time.RFC3339)))
							}

							environment := "production"
							if typ == "admin" {
								environment = ""
							}
							name := fmt.Sprintf("%s/%s/%s/%s/%s", c.name, typ, strings.Join(ps, "+"), lt.name, where)
							n++
							if len(reasons) == 0 {
								allowed++
							}
							t.Run(name, func(t *testing.T) {
								before := e.snap(t, keyCols(o.id)...)
								k, err := e.svc.Keys.CreateKey(ctx, c.rec, project, keys.CreateInput{
									Name: name, Type: typ, Environment: environment, Permissions: ps, ExpiresIn: lt.in,
								})
								if len(reasons) > 0 {
									wantErr(t, err, http.StatusForbidden, apierror.CodeForbidden)
									if msg := apiErr(t, err).Message; !slices.Contains(reasons, msg) {
										t.Fatalf("refused with %q, want one of %q", msg, reasons)
									}
									if !before.equal(e.snap(t, keyCols(o.id)...)) {
										t.Fatal("a refused key creation changed the store")
									}
									return
								}
								if err != nil {
									t.Fatalf("refused (%v), but the rules allow it", err)
								}
								var wantExp *time.Time
								if lt.d > 0 {
									wantExp = tp(t0.Add(lt.d))
								}
								if k.Type.String() != typ || k.Project != project || k.Environment != environment ||
									k.Permissions != perms(t, ps...) || !sameTime(k.ExpiresAt, wantExp) || k.OrgID != o.id {
									t.Fatalf("created %+v", k.Record)
								}
								if got := e.lookup(t, k.Secret); got == nil || got.ID != k.ID {
									t.Fatal("the new key does not work")
								}
								after := e.snap(t, keyCols(o.id)...)
								if len(after["keys/"+o.id]) != len(before["keys/"+o.id])+1 ||
									len(after["key-digests"]) != len(before["key-digests"])+1 {
									t.Fatal("creating one key did not add exactly one record and one digest")
								}
							})
						}
					}
				}
			}
		}
		// Guard the table itself: 8 callers x 3 x 3 x 3 x 2, with the
		// allowed ones counted by hand: org RW 54, project RW 27,
		// project RW 1h 9 (30m only), project WRITE-only 9.
		if n != 432 || allowed != 54+27+9+9 {
			t.Fatalf("table has %d cases, %d allowed; want 432 and 99", n, allowed)
		}
	})
}

// The lifetime bound is inclusive: a key expiring with its creator is fine,
// a second later is not.
func TestCreateKeyLifetimeBoundary(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		c := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin", ExpiresIn: "1h"})
		e.clock.Advance(10 * time.Minute) // 50 minutes left
		for _, tc := range []struct {
			in string
			ok bool
		}{{"50m", true}, {"3000s", true}, {"3001s", false}, {"51m", false}, {"1h", false}} {
			_, err := e.svc.Keys.CreateKey(ctx, as(c.Record), "alpha", keys.CreateInput{Name: tc.in, Type: "live", Environment: "production", ExpiresIn: tc.in})
			if tc.ok && err != nil {
				t.Errorf("expires_in %s: %v", tc.in, err)
			}
			if !tc.ok {
				wantErr(t, err, http.StatusForbidden, apierror.CodeForbidden, "outlives", t0.Add(time.Hour).Format(time.RFC3339))
			}
		}
	})
}

// Rotating a key hands out its new secret, so the same escalation rules
// apply: a caller may rotate only keys it could have created.
func TestRotateKeyPrivilegeEscalation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		callers := e.callers(t, o)
		f := e.subscribe(t)
		targets := []struct {
			name     string
			in       keys.CreateInput
			perms    []string
			lifetime time.Duration
		}{
			{"admin-rw", keys.CreateInput{Type: "admin"}, []string{"READ", "WRITE"}, 0},
			{"live-ro", keys.CreateInput{Type: "live", Environment: "production", Permissions: []string{"READ"}}, []string{"READ"}, 0},
			{"live-wo-30m", keys.CreateInput{Type: "live", Environment: "production", Permissions: []string{"WRITE"}, ExpiresIn: "30m"}, []string{"WRITE"}, 30 * time.Minute},
			{"test-rw-2h", keys.CreateInput{Type: "test", Environment: "staging", ExpiresIn: "2h"}, []string{"READ", "WRITE"}, 2 * time.Hour},
		}
		for _, c := range callers {
			for _, tg := range targets {
				for _, project := range []string{"alpha", "beta"} {
					var reasons []string
					if !c.admin {
						reasons = append(reasons, apierror.WrongKeyType.Message)
					}
					if !c.has("WRITE") {
						reasons = append(reasons, apierror.ReadOnlyKey.Message)
					}
					if !c.orgWide && project != c.project {
						reasons = append(reasons, fmt.Sprintf("This key belongs to project %q and cannot manage keys of project %q", c.project, project))
					}
					for _, p := range tg.perms {
						if !c.has(p) {
							reasons = append(reasons, fmt.Sprintf("This key cannot grant permissions it does not have (it has %v)", c.perms))
							break
						}
					}
					if c.lifetime > 0 && (tg.lifetime == 0 || tg.lifetime > c.lifetime) {
						reasons = append(reasons, fmt.Sprintf("This key expires at %s and cannot rotate a key that outlives it",
							t0.Add(c.lifetime).Format(time.RFC3339)))
					}
					t.Run(c.name+"/"+tg.name+"/"+project, func(t *testing.T) {
						tin := tg.in
						tin.Name = tg.name
						k := e.mint(t, o.root, project, tin)
						before := e.snap(t, keyCols(o.id)...)
						r, err := e.svc.Keys.RotateKey(ctx, c.rec, k.ID, keys.RotateInput{})
						if len(reasons) > 0 {
							wantErr(t, err, http.StatusForbidden, apierror.CodeForbidden)
							if msg := apiErr(t, err).Message; !slices.Contains(reasons, msg) {
								t.Fatalf("refused with %q, want one of %q", msg, reasons)
							}
							if !before.equal(e.snap(t, keyCols(o.id)...)) || e.lookup(t, k.Secret) == nil {
								t.Fatal("a refused rotation changed the key")
							}
							f.expectQuiet(t, e, o, "alpha")
							return
						}
						if err != nil {
							t.Fatalf("refused (%v), but the rules allow it", err)
						}
						f.expect(t, k.ID)
						if e.lookup(t, k.Secret) != nil || e.lookup(t, r.Secret) == nil {
							t.Fatal("rotation did not replace the secret")
						}
					})
				}
			}
		}

		// Any key may rotate itself.
		for _, c := range callers {
			if !c.admin || !c.has("WRITE") || c.orgWide {
				continue
			}
			if _, err := e.svc.Keys.RotateKey(ctx, c.rec, c.rec.ID, keys.RotateInput{}); err != nil {
				t.Errorf("%s rotating itself: %v", c.name, err)
			}
			f.expect(t, c.rec.ID)
		}
	})
}

// Who may call what, for every service operation.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		all := append([]caller{{name: "nil"}}, e.callers(t, o)...)
		// A second org-wide key, for the scope rules on org-wide keys.
		orgKey, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OrgID: o.id})
		if err != nil {
			t.Fatal(err)
		}
		freshKey := func(t *testing.T, project string) string {
			return e.mint(t, o.root, project, keys.CreateInput{Type: "live", Environment: "production"}).ID
		}
		renamed := keys.UpdateInput{Name: set("renamed")}
		seq := 0
		freshProject := func(t *testing.T) string {
			seq++
			slug := fmt.Sprintf("tmp%d", seq)
			if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: slug}); err != nil {
				t.Fatal(err)
			}
			return slug
		}

		type op struct {
			name    string
			write   bool
			orgOnly bool   // organization-wide callers only
			project string // the project it acts on ("" if none, "*" for a fresh one)
			orgKey  bool   // it acts on an organization-wide key
			keyOp   bool   // it names a key by id
			// rotates hands out a new secret for a READ+WRITE key that
			// never expires
			rotates bool
			do      func(t *testing.T, c *authz.Principal, project string) error
		}
		ops := []op{
			{name: "ListProjects", do: func(t *testing.T, c *authz.Principal, _ string) error {
				ps, err := e.svc.Tenancy.ListProjects(ctx, c)
				if err == nil && c != nil {
					var slugs []string
					for _, p := range ps {
						slugs = append(slugs, p.Slug)
					}
					want := []string{"alpha"}
					if c.Scope.OrgWide() {
						want = nil
						list, _ := e.svc.Tenancy.ListProjects(ctx, o.root)
						for _, p := range list {
							want = append(want, p.Slug)
						}
					}
					if !slices.Equal(slugs, want) {
						t.Errorf("ListProjects = %q, want %q", slugs, want)
					}
				}
				return err
			}},
			{name: "CreateProject", write: true, orgOnly: true, do: func(t *testing.T, c *authz.Principal, _ string) error {
				seq++
				_, _, err := e.svc.Tenancy.CreateProject(ctx, c, tenancy.CreateProjectInput{Slug: fmt.Sprintf("new%d", seq)})
				return err
			}},
			{name: "GetProject/own", project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, _, err := e.svc.Tenancy.GetProject(ctx, c, p)
				return err
			}},
			{name: "GetProject/other", project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, _, err := e.svc.Tenancy.GetProject(ctx, c, p)
				return err
			}},
			{name: "ListEnvironments/other", project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Tenancy.ListEnvironments(ctx, c, p)
				return err
			}},
			{name: "CreateEnvironment/own", write: true, project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				seq++
				_, err := e.svc.Tenancy.CreateEnvironment(ctx, c, p, tenancy.CreateEnvironmentInput{Slug: fmt.Sprintf("env%d", seq)})
				return err
			}},
			{name: "CreateEnvironment/other", write: true, project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				seq++
				_, err := e.svc.Tenancy.CreateEnvironment(ctx, c, p, tenancy.CreateEnvironmentInput{Slug: fmt.Sprintf("env%d", seq)})
				return err
			}},
			{name: "DeleteProject/other", write: true, project: "*", do: func(t *testing.T, c *authz.Principal, p string) error {
				return e.svc.DeleteProject(ctx, c, p)
			}},
			{name: "ListIdentities/other", project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Identities.ListIdentities(ctx, c, p)
				return err
			}},
			{name: "PutIdentity/own", write: true, project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, _, err := e.svc.Identities.PutIdentity(ctx, c, p, "acme", customers.PutInput{Quota: &ratelimit.Quota{Requests: 10, Period: ratelimit.Day}})
				return err
			}},
			{name: "PutIdentity/other", write: true, project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, _, err := e.svc.Identities.PutIdentity(ctx, c, p, "acme", customers.PutInput{Quota: &ratelimit.Quota{Requests: 10, Period: ratelimit.Day}})
				return err
			}},
			{name: "DeleteIdentity/own", write: true, project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				seq++
				slug := fmt.Sprintf("gone%d", seq)
				if _, _, err := e.svc.Identities.PutIdentity(ctx, o.root, p, slug, customers.PutInput{Quota: &ratelimit.Quota{Requests: 1, Period: ratelimit.Day}}); err != nil {
					t.Fatal(err)
				}
				return e.svc.Identities.DeleteIdentity(ctx, c, p, slug)
			}},
			{name: "ListKeys/own", project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.ListKeys(ctx, c, p)
				return err
			}},
			{name: "ListKeys/other", project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.ListKeys(ctx, c, p)
				return err
			}},
			{name: "CreateKey/other", write: true, project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.CreateKey(ctx, c, p, keys.CreateInput{Name: "n", Type: "live", Environment: "production", ExpiresIn: "10m"})
				return err
			}},
			{name: "GetKey/own", keyOp: true, project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.GetKey(ctx, c, freshKey(t, p))
				return err
			}},
			{name: "GetKey/other", keyOp: true, project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.GetKey(ctx, c, freshKey(t, p))
				return err
			}},
			{name: "GetKey/org-wide", keyOp: true, orgKey: true, do: func(t *testing.T, c *authz.Principal, _ string) error {
				_, err := e.svc.Keys.GetKey(ctx, c, orgKey.Record.ID)
				return err
			}},
			{name: "RotateKey/own", write: true, keyOp: true, rotates: true, project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.RotateKey(ctx, c, freshKey(t, p), keys.RotateInput{})
				return err
			}},
			{name: "RotateKey/other", write: true, keyOp: true, rotates: true, project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.RotateKey(ctx, c, freshKey(t, p), keys.RotateInput{})
				return err
			}},
			{name: "RotateKey/org-wide", write: true, keyOp: true, orgKey: true, rotates: true, do: func(t *testing.T, c *authz.Principal, _ string) error {
				_, err := e.svc.Keys.RotateKey(ctx, c, orgKey.Record.ID, keys.RotateInput{})
				return err
			}},
			{name: "UpdateKey/own", write: true, keyOp: true, project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.UpdateKey(ctx, c, freshKey(t, p), renamed)
				return err
			}},
			{name: "UpdateKey/other", write: true, keyOp: true, project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.UpdateKey(ctx, c, freshKey(t, p), renamed)
				return err
			}},
			{name: "UpdateKey/org-wide", write: true, keyOp: true, orgKey: true, do: func(t *testing.T, c *authz.Principal, _ string) error {
				_, err := e.svc.Keys.UpdateKey(ctx, c, orgKey.Record.ID, renamed)
				return err
			}},
			{name: "RevokeKey/own", write: true, keyOp: true, project: "alpha", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.RevokeKey(ctx, c, freshKey(t, p))
				return err
			}},
			{name: "RevokeKey/other", write: true, keyOp: true, project: "beta", do: func(t *testing.T, c *authz.Principal, p string) error {
				_, err := e.svc.Keys.RevokeKey(ctx, c, freshKey(t, p))
				return err
			}},
			{name: "RevokeKey/org-wide", write: true, keyOp: true, orgKey: true, do: func(t *testing.T, c *authz.Principal, _ string) error {
				k, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewKey: true, OrgID: o.id})
				if err != nil {
					t.Fatal(err)
				}
				_, err = e.svc.Keys.RevokeKey(ctx, c, k.Record.ID)
				return err
			}},
		}

		for _, c := range all {
			for _, op := range ops {
				t.Run(c.name+"/"+op.name, func(t *testing.T) {
					project := op.project
					if project == "*" {
						project = freshProject(t)
					}
					err := op.do(t, c.rec, project)
					switch {
					case c.rec == nil:
						wantExact(t, err, apierror.InvalidKey)
					case !c.admin:
						wantExact(t, err, apierror.WrongKeyType)
					case op.write && !c.has("WRITE"):
						wantExact(t, err, apierror.ReadOnlyKey)
						if !strings.Contains(apierror.ReadOnlyKey.Message, "read-only") {
							t.Fatal("the read-only message does not say so")
						}
					case !op.write && !c.has("READ"):
						wantErr(t, err, http.StatusForbidden, apierror.CodeForbidden, "READ")
					case op.orgOnly && !c.orgWide:
						wantExact(t, err, apierror.Forbidden(`This key belongs to project "alpha" and cannot create projects in the whole organization; use an organization-wide admin key`))
					case op.orgKey && !c.orgWide:
						wantExact(t, err, apierror.Forbidden(`This key belongs to project "alpha" and cannot manage keys of the whole organization; use an organization-wide admin key`))
					case !c.orgWide && op.project != "" && project != c.project:
						wantErr(t, err, http.StatusForbidden, apierror.CodeForbidden, `"alpha"`, fmt.Sprintf("%q", project))
					case op.rotates && !c.has("READ"):
						wantErr(t, err, http.StatusForbidden, apierror.CodeForbidden, "cannot grant permissions")
					case op.rotates && c.lifetime > 0:
						wantErr(t, err, http.StatusForbidden, apierror.CodeForbidden, "outlives")
					default:
						if err != nil {
							t.Fatalf("refused (%v), but the rules allow it", err)
						}
					}
				})
			}
		}
	})
}

// A key of another organization is indistinguishable from one that does
// not exist, and so is another organization's project.
func TestOtherOrganization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.newOrg(t, "alpha")
		b := e.newOrg(t, "alpha", "bonly")
		if a.id == b.id {
			t.Fatal("NewOrg reused the organization")
		}
		bKey := e.mint(t, b.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
		aProj := e.mint(t, a.root, "alpha", keys.CreateInput{Type: "admin"})
		f := e.subscribe(t)
		// key-digests and key-use are shared by all organizations; B's part
		// of them is checked through its keys' lookups below.
		before := e.snap(t, "keys/"+b.id, "projects/"+b.id, "environments/"+b.id+"/alpha")

		const missing = "key_0000000000missing"
		norm := func(err error, id string) apierror.Error {
			t.Helper()
			ae := *apiErr(t, err)
			ae.Message = strings.ReplaceAll(ae.Message, id, "ID")
			return ae
		}
		for _, c := range []*authz.Principal{a.root, as(aProj.Record)} {
			for name, op := range map[string]func(id string) error{
				"GetKey":    func(id string) error { _, err := e.svc.Keys.GetKey(ctx, c, id); return err },
				"RotateKey": func(id string) error { _, err := e.svc.Keys.RotateKey(ctx, c, id, keys.RotateInput{}); return err },
				"RevokeKey": func(id string) error { _, err := e.svc.Keys.RevokeKey(ctx, c, id); return err },
			} {
				for _, id := range []string{bKey.ID, b.root.ID} {
					got := norm(op(id), id)
					want := norm(op(missing), missing)
					if got != want || got.Status != http.StatusNotFound {
						t.Errorf("%s of another org's key = %+v, of a missing key = %+v", name, got, want)
					}
				}
			}
		}
		for name, op := range map[string]func(p string) error{
			"GetProject":       func(p string) error { _, _, err := e.svc.Tenancy.GetProject(ctx, a.root, p); return err },
			"ListEnvironments": func(p string) error { _, err := e.svc.Tenancy.ListEnvironments(ctx, a.root, p); return err },
			"CreateEnvironment": func(p string) error {
				_, err := e.svc.Tenancy.CreateEnvironment(ctx, a.root, p, tenancy.CreateEnvironmentInput{Slug: "qa"})
				return err
			},
			"ListKeys": func(p string) error { _, err := e.svc.Keys.ListKeys(ctx, a.root, p); return err },
			"CreateKey": func(p string) error {
				_, err := e.svc.Keys.CreateKey(ctx, a.root, p, keys.CreateInput{Name: "n", Type: "admin"})
				return err
			},
			"DeleteProject": func(p string) error { return e.svc.DeleteProject(ctx, a.root, p) },
		} {
			got, want := norm(op("bonly"), "bonly"), norm(op("zzz"), "zzz")
			if got != want || got.Status != http.StatusNotFound {
				t.Errorf("%s of another org's project = %+v, of a missing one = %+v", name, got, want)
			}
		}
		// Same slug, separate projects: A sees only its own keys.
		keys, err := e.svc.Keys.ListKeys(ctx, a.root, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.OrgID != a.id || k.ID == bKey.ID {
				t.Fatalf("org A lists key %+v", k.Record)
			}
		}
		if ps, _ := e.svc.Tenancy.ListProjects(ctx, a.root); len(ps) != 1 || ps[0].Slug != "alpha" {
			t.Fatalf("org A sees projects %+v", ps)
		}
		// Deleting A's alpha leaves B's alpha alone.
		if err := e.svc.DeleteProject(ctx, a.root, "alpha"); err != nil {
			t.Fatal(err)
		}
		f.expect(t, aProj.ID)
		if !before.equal(e.snap(t, "keys/"+b.id, "projects/"+b.id, "environments/"+b.id+"/alpha")) {
			t.Fatal("org B's keys or projects changed")
		}
		for _, s := range []string{bKey.Secret, b.rootKey} {
			if rec := e.lookup(t, s); rec == nil || rec.OrgID != b.id || rec.RevokedAt != nil {
				t.Fatalf("org B's key after org A's attempts: %+v", rec)
			}
		}
		if _, _, err := e.svc.Tenancy.GetProject(ctx, b.root, "alpha"); err != nil {
			t.Fatal(err)
		}
		f.expectQuiet(t, e, b, "bonly")
	})
}

// Concurrent writers (several instances on one Redis, or goroutines on one
// file store) lose nothing.
func TestConcurrentKeyCreation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		const workers, each = 4, 5
		var mu sync.Mutex
		var created []*keys.Created
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					in := keys.CreateInput{Name: fmt.Sprintf("w%d-%d", w, i), Type: "live", Environment: "production"}
					var k *keys.Created
					var err error
					for range 5 { // optimistic stores may give up under contention
						if k, err = e.svc.Keys.CreateKey(ctx, o.root, "alpha", in); !errors.Is(err, store.ErrConflict) {
							break
						}
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					created = append(created, k)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		keys, err := e.svc.Keys.ListKeys(ctx, o.root, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != workers*each || len(created) != workers*each {
			t.Fatalf("%d keys listed, %d created; want %d", len(keys), len(created), workers*each)
		}
		for _, k := range created {
			if got := e.lookup(t, k.Secret); got == nil || got.ID != k.ID {
				t.Fatalf("key %s lost", k.Name)
			}
		}
	})
}

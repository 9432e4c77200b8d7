package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
)

// overridesDoc has a flag of every variant type.
const overridesDoc = `{"flags":{
  "new-checkout": {"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"},
  "theme": {"state":"ENABLED","variants":{"light":"light","dark":"dark"},"defaultVariant":"light"},
  "price": {"state":"ENABLED","variants":{"low":9.5,"high":20},"defaultVariant":"low"},
  "layout": {"state":"ENABLED","variants":{"grid":{"cols":3},"list":{"cols":1}},"defaultVariant":"grid"},
  "off-flag": {"state":"DISABLED","variants":{"a":"a"},"defaultVariant":"a"}
}}`

// sessionFixture is an organization whose alpha/staging holds overridesDoc,
// with the keys the session tests use.
type sessionFixture struct {
	o                       *org
	test, live, readOnly    *authz.Principal
	prodTest, betaTest      *authz.Principal
	alphaAdmin, betaAdmin   *authz.Principal
	otherOrgTest, otherRoot *authz.Principal
}

func (e *env) sessionFixture(t *testing.T) *sessionFixture {
	t.Helper()
	ctx := context.Background()
	o := e.newOrg(t, "alpha", "beta")
	for _, pe := range [][2]string{{"alpha", "staging"}, {"alpha", "production"}, {"beta", "staging"}} {
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, pe[0], pe[1], []byte(overridesDoc), noPre); err != nil {
			t.Fatal(err)
		}
	}
	other := e.newOrg(t, "alpha")
	if _, err := e.svc.Flags.PutFlagSet(ctx, other.root, "alpha", "staging", []byte(overridesDoc), noPre); err != nil {
		t.Fatal(err)
	}
	return &sessionFixture{
		o:            o,
		test:         as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"}).Record),
		live:         as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "staging"}).Record),
		readOnly:     as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging", Permissions: []string{"READ"}}).Record),
		prodTest:     as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "production"}).Record),
		betaTest:     as(e.mint(t, o.root, "beta", keys.CreateInput{Type: "test", Environment: "staging"}).Record),
		alphaAdmin:   as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"}).Record),
		betaAdmin:    as(e.mint(t, o.root, "beta", keys.CreateInput{Type: "admin"}).Record),
		otherOrgTest: as(e.mint(t, other.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"}).Record),
		otherRoot:    other.root,
	}
}

func (e *env) session(t *testing.T, caller *authz.Principal, in flags.CreateSessionInput) *flags.TestingSession {
	t.Helper()
	ts, err := e.svc.Flags.CreateSession(context.Background(), caller, in)
	if err != nil {
		t.Fatalf("CreateSession(%+v): %v", in, err)
	}
	return ts
}

// sessCol is the collection of an organization's testing sessions.
func sessCol(orgID string) string { return "testing-sessions/" + orgID }

// sessionCols are the session collections of both of the fixture's
// organizations.
func (f *sessionFixture) sessionCols() []string {
	return []string{sessCol(f.o.id), sessCol(f.otherRoot.Org())}
}

// sessionIDs lists the stored sessions of some organizations, sorted.
func (e *env) sessionIDs(t *testing.T, orgIDs ...string) []string {
	t.Helper()
	var ids []string
	for _, o := range orgIDs {
		ids = append(ids, e.ids(t, sessCol(o))...)
	}
	slices.Sort(ids)
	return ids
}

// storedSession reads a session document of an organization directly.
func (e *env) storedSession(t *testing.T, orgID, id string) (*flags.TestingSession, bool) {
	t.Helper()
	b, ok := e.doc(t, sessCol(orgID), id)
	if !ok {
		return nil, false
	}
	var ts flags.TestingSession
	if err := json.Unmarshal(b, &ts); err != nil {
		t.Fatalf("stored session %s: %v", b, err)
	}
	return &ts, true
}

func overrides(kv ...string) flags.SetOverridesInput {
	in := flags.SetOverridesInput{Overrides: map[string]json.RawMessage{}}
	for i := 0; i < len(kv); i += 2 {
		in.Overrides[kv[i]] = json.RawMessage(kv[i+1])
	}
	return in
}

// overridesText renders a session's overrides as sorted key=value pairs.
func overridesText(m map[string]json.RawMessage) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+string(m[k]))
	}
	return strings.Join(parts, " ")
}

func sessionNotFound(id string) *apierror.Error {
	return apierror.New(404, apierror.CodeSessionNotFound, fmt.Sprintf("testing session %q not found or expired", id))
}

func TestCreateSession(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		f := e.sessionFixture(t)

		ts := e.session(t, f.test, flags.CreateSessionInput{})
		if !strings.HasPrefix(ts.ID, "ts_") || len(ts.ID) != len("ts_")+20 || ts.OrgID != f.o.id || ts.Project != "alpha" ||
			ts.Environment != "staging" || ts.CreatedBy != f.test.ID || !ts.CreatedAt.Equal(t0) ||
			!ts.ExpiresAt.Equal(t0.Add(time.Hour)) || len(ts.Overrides) != 0 || ts.Overrides == nil || ts.Revision != 0 {
			t.Fatalf("session = %+v", ts)
		}
		stored, ok := e.storedSession(t, f.o.id, ts.ID)
		if !ok || stored.ID != ts.ID || stored.OrgID != f.o.id || !stored.ExpiresAt.Equal(ts.ExpiresAt) {
			t.Fatalf("stored session = %+v", stored)
		}
		if again := e.session(t, f.test, flags.CreateSessionInput{}); again.ID == ts.ID {
			t.Fatal("two sessions share an id")
		}

		// TTLs between 1m and 24h.
		for ttl, d := range map[string]time.Duration{"1m": time.Minute, "30m": 30 * time.Minute, "24h": 24 * time.Hour, "1d": 24 * time.Hour, "2h30m": 150 * time.Minute} {
			if s := e.session(t, f.test, flags.CreateSessionInput{TTL: ttl}); !s.ExpiresAt.Equal(t0.Add(d)) {
				t.Errorf("ttl %s: expires %v, want %v", ttl, s.ExpiresAt, t0.Add(d))
			}
		}

		// Admin keys name where the session applies; test keys use their own
		// environment and may name it.
		for _, c := range []struct {
			caller        *authz.Principal
			in            flags.CreateSessionInput
			project, envi string
		}{
			{f.test, flags.CreateSessionInput{Project: "alpha", Environment: "staging"}, "alpha", "staging"},
			{f.alphaAdmin, flags.CreateSessionInput{Environment: "production"}, "alpha", "production"},
			{f.alphaAdmin, flags.CreateSessionInput{Project: "alpha", Environment: "staging"}, "alpha", "staging"},
			{f.o.root, flags.CreateSessionInput{Project: "beta", Environment: "staging"}, "beta", "staging"},
		} {
			if s := e.session(t, c.caller, c.in); s.Project != c.project || s.Environment != c.envi || s.CreatedBy != c.caller.ID {
				t.Errorf("CreateSession(%+v) by %s = %+v", c.in, c.caller.ID, s)
			}
		}

		before := e.snap(t, f.sessionCols()...)
		for _, c := range []struct {
			caller *authz.Principal
			in     flags.CreateSessionInput
			want   *apierror.Error
		}{
			{nil, flags.CreateSessionInput{}, apierror.InvalidKey},
			{f.live, flags.CreateSessionInput{}, apierror.WrongKeyType},
			{f.readOnly, flags.CreateSessionInput{}, apierror.ReadOnlyKey},
			{f.test, flags.CreateSessionInput{TTL: "59s"}, apierror.Invalid("ttl must be between 1m and 24h")},
			{f.test, flags.CreateSessionInput{TTL: "25h"}, apierror.Invalid("ttl must be between 1m and 24h")},
			{f.test, flags.CreateSessionInput{TTL: "24h1s"}, apierror.Invalid("ttl must be between 1m and 24h")},
			{f.test, flags.CreateSessionInput{Environment: "production"}, apierror.Forbidden(`This key belongs to environment "staging" and cannot open testing sessions in environment "production"`)},
			{f.test, flags.CreateSessionInput{Project: "beta"}, apierror.Forbidden(`This key belongs to project "alpha" and cannot open testing sessions in project "beta"`)},
			{f.alphaAdmin, flags.CreateSessionInput{}, apierror.Invalid("environment is required with a key that spans environments")},
			{f.alphaAdmin, flags.CreateSessionInput{Project: "beta", Environment: "staging"}, apierror.Forbidden(`This key belongs to project "alpha" and cannot open testing sessions in project "beta"`)},
			{f.o.root, flags.CreateSessionInput{Environment: "staging"}, apierror.Invalid("project is required with an organization-wide key")},
			{f.o.root, flags.CreateSessionInput{Project: "beta"}, apierror.Invalid("environment is required with a key that spans environments")},
			{f.alphaAdmin, flags.CreateSessionInput{Environment: "qa"}, apierror.NotFound(`project "alpha" has no environment "qa"`)},
			{f.o.root, flags.CreateSessionInput{Project: "gamma", Environment: "staging"}, apierror.NotFound(`project "gamma" not found`)},
			{f.otherRoot, flags.CreateSessionInput{Project: "beta", Environment: "staging"}, apierror.NotFound(`project "beta" not found`)},
		} {
			_, err := e.svc.Flags.CreateSession(ctx, c.caller, c.in)
			wantExact(t, err, c.want)
		}
		for _, ttl := range []string{"soon", "-1h", "0m"} {
			_, err := e.svc.Flags.CreateSession(ctx, f.test, flags.CreateSessionInput{TTL: ttl})
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, "ttl")
		}
		if !before.equal(e.snap(t, f.sessionCols()...)) {
			t.Fatal("a refused CreateSession stored a session")
		}
	})
}

func TestSetOverrides(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		f := e.sessionFixture(t)
		ts := e.session(t, f.test, flags.CreateSessionInput{})

		got, err := e.svc.Flags.SetOverrides(ctx, f.test, ts.ID, overrides("new-checkout", `false`, "theme", `"dark"`))
		if err != nil {
			t.Fatal(err)
		}
		if overridesText(got.Overrides) != `new-checkout=false theme="dark"` || got.Revision != 1 || got.ID != ts.ID {
			t.Fatalf("after SetOverrides: %s revision %d", overridesText(got.Overrides), got.Revision)
		}
		// Merged with what was there; a repeated flag takes the new value.
		got, err = e.svc.Flags.SetOverrides(ctx, f.test, ts.ID, overrides("price", `3`, "theme", `"light"`, "layout", `{"cols":2}`))
		if err != nil {
			t.Fatal(err)
		}
		want := `layout={"cols":2} new-checkout=false price=3 theme="light"`
		if overridesText(got.Overrides) != want || got.Revision != 2 {
			t.Fatalf("after merge: %s revision %d", overridesText(got.Overrides), got.Revision)
		}
		if s, _ := e.storedSession(t, f.o.id, ts.ID); overridesText(s.Overrides) != want || s.Revision != 2 {
			t.Fatalf("stored after merge: %s revision %d", overridesText(s.Overrides), s.Revision)
		}
		// Every type: numbers take any number, objects objects and arrays,
		// and a disabled flag may be pinned too.
		for _, kv := range [][2]string{{"price", `-1e3`}, {"layout", `[1,2]`}, {"new-checkout", `true`}, {"off-flag", `"z"`}} {
			if _, err := e.svc.Flags.SetOverrides(ctx, f.test, ts.ID, overrides(kv[0], kv[1])); err != nil {
				t.Errorf("override %s=%s: %v", kv[0], kv[1], err)
			}
		}
		// Other keys of the session's environment may manage it.
		if _, err := e.svc.Flags.SetOverrides(ctx, f.alphaAdmin, ts.ID, overrides("theme", `"dark"`)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Flags.SetOverrides(ctx, f.o.root, ts.ID, overrides()); err != nil {
			t.Fatal(err)
		}

		// Refusals name the flag and write nothing, even when other
		// overrides of the same call were fine.
		before := e.snap(t, f.sessionCols()...)
		for _, c := range []struct {
			in   flags.SetOverridesInput
			want *apierror.Error
		}{
			{overrides("new-checkout", `"yes"`), apierror.Invalid(`overrides: flag "new-checkout" takes boolean values, not a string`)},
			{overrides("new-checkout", `1`), apierror.Invalid(`overrides: flag "new-checkout" takes boolean values, not a number`)},
			{overrides("theme", `true`), apierror.Invalid(`overrides: flag "theme" takes string values, not a boolean`)},
			{overrides("price", `"3"`), apierror.Invalid(`overrides: flag "price" takes number values, not a string`)},
			{overrides("layout", `"grid"`), apierror.Invalid(`overrides: flag "layout" takes object values, not a string`)},
			{overrides("theme", `null`), apierror.Invalid(`overrides: flag "theme" needs a string value`)},
			{overrides("nope", `true`), apierror.Invalid(`overrides: flag "nope" does not exist in environment "staging"`)},
			{overrides("a-first", `1`, "theme", `"dark"`), apierror.Invalid(`overrides: flag "a-first" does not exist in environment "staging"`)},
			{overrides("theme", `"dark"`, "zzz", `1`), apierror.Invalid(`overrides: flag "zzz" does not exist in environment "staging"`)},
			{overrides("new-checkout", `true`, "price", `{}`), apierror.Invalid(`overrides: flag "price" takes number values, not an object`)},
			{flags.SetOverridesInput{}, apierror.Invalid("overrides is required (an object of flag keys and values)")},
		} {
			_, err := e.svc.Flags.SetOverrides(ctx, f.test, ts.ID, c.in)
			wantExact(t, err, c.want)
		}
		for _, c := range []struct {
			caller *authz.Principal
			want   *apierror.Error
		}{
			{nil, apierror.InvalidKey},
			{f.live, apierror.WrongKeyType},
			{f.readOnly, apierror.ReadOnlyKey},
			{f.prodTest, sessionNotFound(ts.ID)},
			{f.betaTest, sessionNotFound(ts.ID)},
			{f.betaAdmin, sessionNotFound(ts.ID)},
			{f.otherOrgTest, sessionNotFound(ts.ID)},
			{f.otherRoot, sessionNotFound(ts.ID)},
		} {
			_, err := e.svc.Flags.SetOverrides(ctx, c.caller, ts.ID, overrides("theme", `"dark"`))
			wantExact(t, err, c.want)
		}
		_, err = e.svc.Flags.SetOverrides(ctx, f.test, "ts_nope", overrides("theme", `"dark"`))
		wantExact(t, err, sessionNotFound("ts_nope"))
		if !before.equal(e.snap(t, f.sessionCols()...)) {
			t.Fatal("a refused SetOverrides changed a session")
		}

		// Overrides are checked against the session's own environment: a
		// flag only production has cannot be pinned in staging.
		if _, _, err := e.svc.Flags.PutFlag(ctx, f.o.root, "alpha", "production", "prod-only",
			[]byte(`{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a"}`), noPre); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Flags.SetOverrides(ctx, f.test, ts.ID, overrides("prod-only", `"a"`))
		wantExact(t, err, apierror.Invalid(`overrides: flag "prod-only" does not exist in environment "staging"`))
		prod := e.session(t, f.prodTest, flags.CreateSessionInput{})
		if _, err := e.svc.Flags.SetOverrides(ctx, f.prodTest, prod.ID, overrides("prod-only", `"b"`)); err != nil {
			t.Fatal(err)
		}
		// A session of an environment never written has no flags to pin.
		dev := e.session(t, f.alphaAdmin, flags.CreateSessionInput{Environment: "development"})
		_, err = e.svc.Flags.SetOverrides(ctx, f.alphaAdmin, dev.ID, overrides("theme", `"dark"`))
		wantExact(t, err, apierror.Invalid(`overrides: flag "theme" does not exist in environment "development"`))
	})
}

// A session pins at most flags.MaxOverrides flags.
func TestSetOverridesLimit(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		var b strings.Builder
		b.WriteString(`{"flags":{`)
		for i := range flags.MaxOverrides + 1 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"f%04d":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}`, i)
		}
		b.WriteString(`}}`)
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(b.String()), noPre); err != nil {
			t.Fatal(err)
		}
		ts := e.session(t, o.root, flags.CreateSessionInput{Project: "alpha", Environment: "staging"})
		all := overrides()
		for i := range flags.MaxOverrides {
			all.Overrides[fmt.Sprintf("f%04d", i)] = json.RawMessage(`true`)
		}
		if got, err := e.svc.Flags.SetOverrides(ctx, o.root, ts.ID, all); err != nil || len(got.Overrides) != flags.MaxOverrides {
			t.Fatalf("pinning %d flags: %v", flags.MaxOverrides, err)
		}
		before := e.snap(t, sessCol(o.id))
		_, err := e.svc.Flags.SetOverrides(ctx, o.root, ts.ID, overrides(fmt.Sprintf("f%04d", flags.MaxOverrides), `true`))
		wantExact(t, err, apierror.Invalid("overrides: a session may pin at most %d flags", flags.MaxOverrides))
		if !before.equal(e.snap(t, sessCol(o.id))) {
			t.Fatal("a refused SetOverrides changed the session")
		}
		// Re-pinning a flag already pinned is not one more.
		if _, err := e.svc.Flags.SetOverrides(ctx, o.root, ts.ID, overrides("f0000", `false`)); err != nil {
			t.Fatal(err)
		}
	})
}

// UseSession is what evaluations call: only test and admin keys of the
// session's project and environment see it.
func TestUseSession(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		f := e.sessionFixture(t)
		ts := e.session(t, f.test, flags.CreateSessionInput{})
		if _, err := e.svc.Flags.SetOverrides(ctx, f.test, ts.ID, overrides("theme", `"dark"`)); err != nil {
			t.Fatal(err)
		}
		other := e.session(t, f.test, flags.CreateSessionInput{})
		if _, err := e.svc.Flags.SetOverrides(ctx, f.test, other.ID, overrides("new-checkout", `true`)); err != nil {
			t.Fatal(err)
		}

		for _, c := range []struct {
			name             string
			caller           *authz.Principal
			project, envName string
		}{
			{"creator", f.test, "alpha", "staging"},
			{"read-only test key", f.readOnly, "alpha", "staging"},
			{"project admin", f.alphaAdmin, "alpha", "staging"},
			{"org admin", f.o.root, "alpha", "staging"},
		} {
			got, err := e.svc.Flags.UseSession(ctx, c.caller, ts.ID, refOf(c.caller, c.project, c.envName))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			// Two sessions of one environment never see each other's
			// overrides.
			if got.ID != ts.ID || overridesText(got.Overrides) != `theme="dark"` {
				t.Fatalf("%s: %+v", c.name, got)
			}
		}
		if got, err := e.svc.Flags.UseSession(ctx, f.test, other.ID, refOf(f.test, "alpha", "staging")); err != nil || overridesText(got.Overrides) != "new-checkout=true" {
			t.Fatalf("the other session: %+v %v", got, err)
		}

		for _, c := range []struct {
			name             string
			caller           *authz.Principal
			project, envName string
			want             *apierror.Error
		}{
			{"no key", nil, "alpha", "staging", apierror.InvalidKey},
			{"live key", f.live, "alpha", "staging", apierror.Forbidden("Live keys cannot use testing sessions")},
			{"other environment's key", f.prodTest, "alpha", "production", sessionNotFound(ts.ID)},
			{"other project's key", f.betaTest, "beta", "staging", sessionNotFound(ts.ID)},
			{"other project's admin", f.betaAdmin, "beta", "staging", sessionNotFound(ts.ID)},
			{"other organization's key", f.otherOrgTest, "alpha", "staging", sessionNotFound(ts.ID)},
			{"other organization's admin", f.otherRoot, "alpha", "staging", sessionNotFound(ts.ID)},
			{"admin evaluating another environment", f.alphaAdmin, "alpha", "production", sessionNotFound(ts.ID)},
			{"admin evaluating another project", f.o.root, "beta", "staging", sessionNotFound(ts.ID)},
		} {
			_, err := e.svc.Flags.UseSession(ctx, c.caller, ts.ID, refOf(c.caller, c.project, c.envName))
			if err == nil {
				t.Fatalf("%s: used the session", c.name)
			}
			if ae := apiErr(t, err); ae.Status != c.want.Status || ae.Code != c.want.Code || ae.Message != c.want.Message {
				t.Errorf("%s: %v, want %v", c.name, ae, c.want)
			}
		}
		_, err := e.svc.Flags.UseSession(ctx, f.test, "ts_nope", refOf(f.test, "alpha", "staging"))
		wantExact(t, err, sessionNotFound("ts_nope"))
		// Another organization's key cannot delete it either.
		wantExact(t, e.svc.Flags.DeleteSession(ctx, f.otherOrgTest, ts.ID), sessionNotFound(ts.ID))
		wantExact(t, e.svc.Flags.DeleteSession(ctx, f.prodTest, ts.ID), sessionNotFound(ts.ID))
		wantExact(t, e.svc.Flags.DeleteSession(ctx, f.live, ts.ID), apierror.WrongKeyType)
		wantExact(t, e.svc.Flags.DeleteSession(ctx, f.readOnly, ts.ID), apierror.ReadOnlyKey)
		if _, ok := e.storedSession(t, f.o.id, ts.ID); !ok {
			t.Fatal("a refused DeleteSession deleted the session")
		}
	})
}

func TestDeleteSession(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		f := e.sessionFixture(t)
		ts := e.session(t, f.test, flags.CreateSessionInput{})
		kept := e.session(t, f.test, flags.CreateSessionInput{})
		byAdmin := e.session(t, f.alphaAdmin, flags.CreateSessionInput{Environment: "staging"})

		if err := e.svc.Flags.DeleteSession(ctx, f.test, ts.ID); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.storedSession(t, f.o.id, ts.ID); ok {
			t.Fatal("the deleted session is still stored")
		}
		_, err := e.svc.Flags.UseSession(ctx, f.test, ts.ID, refOf(f.test, "alpha", "staging"))
		wantExact(t, err, sessionNotFound(ts.ID))
		_, err = e.svc.Flags.SetOverrides(ctx, f.test, ts.ID, overrides("theme", `"dark"`))
		wantExact(t, err, sessionNotFound(ts.ID))
		wantExact(t, e.svc.Flags.DeleteSession(ctx, f.test, ts.ID), sessionNotFound(ts.ID))
		if _, err := e.svc.Flags.UseSession(ctx, f.test, kept.ID, refOf(f.test, "alpha", "staging")); err != nil {
			t.Fatalf("another session went with it: %v", err)
		}
		// A test key of the environment may end a session an admin opened.
		if err := e.svc.Flags.DeleteSession(ctx, f.test, byAdmin.ID); err != nil {
			t.Fatal(err)
		}
		if ids := e.sessionIDs(t, f.o.id, f.otherRoot.Org()); !slices.Equal(ids, []string{kept.ID}) {
			t.Fatalf("sessions = %q", ids)
		}
	})
}

// An expired session stops applying at its expiry and SweepSessions deletes
// it; live sessions stay.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		f := e.sessionFixture(t)
		short := e.session(t, f.test, flags.CreateSessionInput{TTL: "1m"})
		long := e.session(t, f.test, flags.CreateSessionInput{TTL: "2h"})
		otherOrg := e.session(t, f.otherOrgTest, flags.CreateSessionInput{TTL: "1m"})

		if n, err := e.svc.Flags.SweepSessions(ctx); err != nil || n != 0 {
			t.Fatalf("SweepSessions before any expiry = %d, %v", n, err)
		}
		e.clock.Advance(time.Minute - time.Second)
		if _, err := e.svc.Flags.UseSession(ctx, f.test, short.ID, refOf(f.test, "alpha", "staging")); err != nil {
			t.Fatalf("a second before expiry: %v", err)
		}
		if _, err := e.svc.Flags.SetOverrides(ctx, f.test, short.ID, overrides("theme", `"dark"`)); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second) // exactly at expiry
		_, err := e.svc.Flags.UseSession(ctx, f.test, short.ID, refOf(f.test, "alpha", "staging"))
		wantExact(t, err, sessionNotFound(short.ID))
		_, err = e.svc.Flags.SetOverrides(ctx, f.test, short.ID, overrides("theme", `"light"`))
		wantExact(t, err, sessionNotFound(short.ID))
		wantExact(t, e.svc.Flags.DeleteSession(ctx, f.test, short.ID), sessionNotFound(short.ID))
		if _, err := e.svc.Flags.UseSession(ctx, f.test, long.ID, refOf(f.test, "alpha", "staging")); err != nil {
			t.Fatalf("the longer session: %v", err)
		}
		if _, ok := e.storedSession(t, f.o.id, short.ID); !ok {
			t.Fatal("expired session deleted before the sweep")
		}

		n, err := e.svc.Flags.SweepSessions(ctx)
		if err != nil || n != 2 {
			t.Fatalf("SweepSessions = %d, %v; want 2 (both organizations)", n, err)
		}
		if ids := e.sessionIDs(t, f.o.id, f.otherRoot.Org()); !slices.Equal(ids, []string{long.ID}) {
			t.Fatalf("sessions after sweep = %q, want only %s (not %s, %s)", ids, long.ID, short.ID, otherOrg.ID)
		}
		if n, err := e.svc.Flags.SweepSessions(ctx); err != nil || n != 0 {
			t.Fatalf("second SweepSessions = %d, %v", n, err)
		}
		e.clock.Advance(2 * time.Hour)
		if n, err := e.svc.Flags.SweepSessions(ctx); err != nil || n != 1 {
			t.Fatalf("final SweepSessions = %d, %v", n, err)
		}
		if ids := e.sessionIDs(t, f.o.id, f.otherRoot.Org()); len(ids) != 0 {
			t.Fatalf("sessions left: %q", ids)
		}
	})
}

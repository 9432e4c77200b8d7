package evaluation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/evaluator"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
)

// t0 is where every test's clock starts.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// gateStore wraps a store so that a test can hold one flag-set read in
// flight: the read has fetched the stored document, and waits for the test
// before handing it back. (It waits after its transaction ends: an open
// bbolt read transaction would block the very write the test makes
// meanwhile.) It also counts flag-set reads, which is how the tests see
// whether the registry loaded or served from its cache.
type gateStore struct {
	store.Store
	reads atomic.Int64
	mu    sync.Mutex
	next  *gate
}

type gate struct {
	entered chan struct{} // closed when the read holds the document
	release chan struct{} // closed by the test to let it return
}

// arm makes the next flag-set read wait at a new gate.
func (s *gateStore) arm() *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.next = g
	s.mu.Unlock()
	return g
}

func (s *gateStore) View(ctx context.Context, fn func(store.Reader) error) error {
	var flagSetRead bool
	err := s.Store.View(ctx, func(r store.Reader) error {
		return fn(gateReader{Reader: r, read: &flagSetRead})
	})
	if flagSetRead {
		s.reads.Add(1)
		s.mu.Lock()
		g := s.next
		s.next = nil
		s.mu.Unlock()
		if g != nil {
			close(g.entered)
			<-g.release
		}
	}
	return err
}

type gateReader struct {
	store.Reader
	read *bool
}

func (r gateReader) Get(collection, id string) ([]byte, error) {
	if strings.HasPrefix(collection, "flag-sets/") {
		*r.read = true
	}
	return r.Reader.Get(collection, id)
}

// fixture is an organization with projects alpha and beta over a file
// store. Writes go through svc; source reads through the gate, and is what
// registries under test load from.
type fixture struct {
	svc    *admin.Service
	source *admin.Service
	gs     *gateStore
	clock  *clock
	org    string
	// root is the principal of the organization's first admin key.
	root *authz.Principal
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st, st)
}

// newFixtureOn writes through st and reads through readSt (another
// connection to the same data, for tests of several instances).
func newFixtureOn(t *testing.T, st, readSt store.Store) *fixture {
	t.Helper()
	c := &clock{now: t0}
	svc := admin.New(st)
	svc.SetClock(c.Now)
	gs := &gateStore{Store: readSt}
	src := admin.New(gs)
	src.SetClock(c.Now)
	ctx := context.Background()
	boot, err := svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, source: src, gs: gs, clock: c, org: boot.Organization.ID, root: boot.Principal}
	for _, p := range []string{"alpha", "beta"} {
		if _, _, err := svc.Tenancy.CreateProject(ctx, f.root, tenancy.CreateProjectInput{Slug: p}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) ref(project, env string) flags.Ref {
	return flags.Ref{OrgID: f.org, Project: project, Environment: env}
}

// put replaces a flag set and returns its new version.
func (f *fixture) put(t *testing.T, ref flags.Ref, doc string) int64 {
	t.Helper()
	fs, err := f.svc.Flags.PutFlagSet(context.Background(), f.root, ref.Project, ref.Environment, []byte(doc), flags.Precondition{})
	if err != nil {
		t.Fatalf("PutFlagSet(%s): %v", ref, err)
	}
	return fs.Version
}

// key creates a key and returns its principal, as the edge would build it.
func (f *fixture) key(t *testing.T, project string, in keys.CreateInput) *authz.Principal {
	t.Helper()
	in.Name = "k-" + in.Type
	k, err := f.svc.Keys.CreateKey(context.Background(), f.root, project, in)
	if err != nil {
		t.Fatal(err)
	}
	return authz.ForKey(k.Record)
}

// numberDoc is a set whose flag "n" evaluates to n.
func numberDoc(n int) string {
	return fmt.Sprintf(`{"flags":{"n":{"state":"ENABLED","variants":{"v":%d},"defaultVariant":"v"}}}`, n)
}

// get is Registry.Get, failing the test on error.
func get(t *testing.T, reg *evaluation.Registry, ref flags.Ref) *evaluation.Compiled {
	t.Helper()
	c, err := reg.Get(context.Background(), ref)
	if err != nil {
		t.Fatalf("Get(%s): %v", ref, err)
	}
	if c.Ref != ref {
		t.Fatalf("Get(%s) returned the set of %s", ref, c.Ref)
	}
	return c
}

// wantSet checks a compiled set's version and the value of its flag "n"
// (-1: the set has no flags).
func wantSet(t *testing.T, c *evaluation.Compiled, version int64, n int) {
	t.Helper()
	if c.Version != version {
		t.Fatalf("version %d, want %d", c.Version, version)
	}
	if n < 0 {
		if c.Set.Len() != 0 {
			t.Fatalf("set has flags %q, want none", c.Set.Keys())
		}
		return
	}
	if r := c.Set.Evaluate("n", nil); r.Value != float64(n) {
		t.Fatalf("flag n = %+v, want %d", r, n)
	}
}

func (f *fixture) wantReads(t *testing.T, n int64) {
	t.Helper()
	if got := f.gs.reads.Load(); got != n {
		t.Fatalf("%d flag-set loads, want %d", got, n)
	}
}

func apiErr(t *testing.T, err error, status int, code, message string) {
	t.Helper()
	var ae *apierror.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v (%T), want %d %s %q", err, err, status, code, message)
	}
	if ae.Status != status || ae.Code != code || (message != "" && ae.Message != message) {
		t.Fatalf("error = %v, want %d %s %q", ae, status, code, message)
	}
}

func TestTarget(t *testing.T) {
	t.Parallel()
	const org = "org_1"
	key := func(rec apikey.Record) *authz.Principal {
		rec.OrgID, rec.Permissions = org, apikey.AllPermissions
		return authz.ForKey(&rec)
	}
	live := key(apikey.Record{ID: "key_live", Project: "alpha", Environment: "production", Type: apikey.Live})
	test := key(apikey.Record{ID: "key_test", Project: "alpha", Environment: "staging", Type: apikey.Test})
	projAdmin := key(apikey.Record{ID: "key_padm", Project: "alpha", Type: apikey.Admin})
	orgAdmin := key(apikey.Record{ID: "key_oadm", Type: apikey.Admin})
	// envAdmin is an admin key of alpha/staging only; scoped an
	// organization-wide admin key limited to project alpha.
	envAdmin := key(apikey.Record{ID: "key_eadm", Project: "alpha", Environment: "staging", Type: apikey.Admin})
	scoped := key(apikey.Record{ID: "key_sadm", Resources: []string{"alpha"}, Type: apikey.Admin})

	const (
		otherProject = `This key belongs to project "alpha" and cannot evaluate flags of project "beta"`
		needProject  = "an organization-wide key must name the project (FlagBridge-Project header)"
		// An environment-scoped admin key names none, so the message is
		// about keys spanning environments, not admin keys.
		needEnv     = "a key that spans environments must name the environment (FlagBridge-Environment header)"
		scopedOther = `This key is limited to projects [alpha] and cannot evaluate flags of project "beta"`
	)
	otherEnv := func(own, named string) string {
		return fmt.Sprintf("This key belongs to environment %q and cannot evaluate flags of environment %q", own, named)
	}
	for _, tc := range []struct {
		name          string
		caller        *authz.Principal
		project, env  string
		wantP, wantE  string
		status        int
		code, message string
	}{
		{"live own", live, "", "", "alpha", "production", 0, "", ""},
		{"live naming its own", live, "alpha", "production", "alpha", "production", 0, "", ""},
		{"live naming its project", live, "alpha", "", "alpha", "production", 0, "", ""},
		{"live naming its environment", live, "", "production", "alpha", "production", 0, "", ""},
		{"live other project", live, "beta", "", "", "", 403, apierror.CodeForbidden, otherProject},
		{"live other project same env", live, "beta", "production", "", "", 403, apierror.CodeForbidden, otherProject},
		{"live other environment", live, "", "staging", "", "", 403, apierror.CodeForbidden, otherEnv("production", "staging")},
		{"live own project other environment", live, "alpha", "development", "", "", 403, apierror.CodeForbidden, otherEnv("production", "development")},
		{"live both other", live, "beta", "staging", "", "", 403, apierror.CodeForbidden, otherProject},
		{"test own", test, "", "", "alpha", "staging", 0, "", ""},
		{"test other environment", test, "", "production", "", "", 403, apierror.CodeForbidden, otherEnv("staging", "production")},
		{"test other project", test, "beta", "staging", "", "", 403, apierror.CodeForbidden, otherProject},
		{"project admin without environment", projAdmin, "", "", "", "", 400, apierror.CodeInvalidRequest, needEnv},
		{"project admin naming its project only", projAdmin, "alpha", "", "", "", 400, apierror.CodeInvalidRequest, needEnv},
		{"project admin environment", projAdmin, "", "staging", "alpha", "staging", 0, "", ""},
		{"project admin both", projAdmin, "alpha", "development", "alpha", "development", 0, "", ""},
		{"project admin other project", projAdmin, "beta", "staging", "", "", 403, apierror.CodeForbidden, otherProject},
		{"org admin nothing", orgAdmin, "", "", "", "", 400, apierror.CodeInvalidRequest, needProject},
		{"org admin environment only", orgAdmin, "", "staging", "", "", 400, apierror.CodeInvalidRequest, needProject},
		{"org admin project only", orgAdmin, "beta", "", "", "", 400, apierror.CodeInvalidRequest, needEnv},
		{"org admin both", orgAdmin, "beta", "development", "beta", "development", 0, "", ""},
		// A Scoped organization-wide key evaluates only in its projects:
		// naming another one is refused, not served (it used to be).
		{"scoped own project", scoped, "alpha", "production", "alpha", "production", 0, "", ""},
		{"scoped other project", scoped, "beta", "production", "", "", 403, apierror.CodeForbidden, scopedOther},
		{"scoped other project staging", scoped, "beta", "staging", "", "", 403, apierror.CodeForbidden, scopedOther},
		{"scoped project it does not list", scoped, "gamma", "staging", "", "", 403, apierror.CodeForbidden,
			`This key is limited to projects [alpha] and cannot evaluate flags of project "gamma"`},
		{"scoped nothing", scoped, "", "", "", "", 400, apierror.CodeInvalidRequest, needProject},
		// An environment-scoped admin key evaluates in its environment,
		// without naming it, and nowhere else.
		{"environment admin own", envAdmin, "", "", "alpha", "staging", 0, "", ""},
		{"environment admin naming its own", envAdmin, "alpha", "staging", "alpha", "staging", 0, "", ""},
		{"environment admin other environment", envAdmin, "", "production", "", "", 403, apierror.CodeForbidden, otherEnv("staging", "production")},
		{"environment admin other project", envAdmin, "beta", "staging", "", "", 403, apierror.CodeForbidden, otherProject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := evaluation.Target(tc.caller, tc.project, tc.env)
			if tc.status != 0 {
				apiErr(t, err, tc.status, tc.code, tc.message)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := (flags.Ref{OrgID: org, Project: tc.wantP, Environment: tc.wantE}); ref != want {
				t.Fatalf("Target = %+v, want %+v", ref, want)
			}
		})
	}
}

// A set is compiled once and served from memory until its change event
// invalidates it; invalidating another environment does not drop it.
func TestRegistryInvalidate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := evaluation.NewRegistry(f.source.Flags, time.Hour)
	ref := f.ref("alpha", "staging")

	c := get(t, reg, ref)
	wantSet(t, c, 0, -1) // never written: empty at version 0
	f.wantReads(t, 1)
	if again := get(t, reg, ref); again != c {
		t.Fatal("a second Get compiled the set again")
	}
	f.wantReads(t, 1)

	if v := f.put(t, ref, numberDoc(1)); v != 1 {
		t.Fatalf("version %d", v)
	}
	wantSet(t, get(t, reg, ref), 0, -1) // cached: the write alone changes nothing here
	f.wantReads(t, 1)

	reg.Invalidate(ref.String())
	wantSet(t, get(t, reg, ref), 1, 1)
	f.wantReads(t, 2)

	// Events about other sets leave this one cached.
	f.put(t, f.ref("beta", "staging"), numberDoc(7))
	f.put(t, ref, numberDoc(2))
	for _, other := range []flags.Ref{f.ref("beta", "staging"), f.ref("alpha", "production"), {OrgID: "org_other", Project: "alpha", Environment: "staging"}} {
		reg.Invalidate(other.String())
	}
	wantSet(t, get(t, reg, ref), 1, 1)
	f.wantReads(t, 2)
	reg.Invalidate(ref.String())
	wantSet(t, get(t, reg, ref), 2, 2)
	f.wantReads(t, 3)
	// Environments and projects are cached apart.
	wantSet(t, get(t, reg, f.ref("beta", "staging")), 1, 7)
	wantSet(t, get(t, reg, f.ref("alpha", "production")), 0, -1)
}

func TestRegistryPurge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := evaluation.NewRegistry(f.source.Flags, time.Hour)
	a, b := f.ref("alpha", "staging"), f.ref("beta", "production")
	f.put(t, a, numberDoc(1))
	f.put(t, b, numberDoc(10))
	wantSet(t, get(t, reg, a), 1, 1)
	wantSet(t, get(t, reg, b), 1, 10)
	f.put(t, a, numberDoc(2))
	f.put(t, b, numberDoc(20))
	wantSet(t, get(t, reg, a), 1, 1)
	wantSet(t, get(t, reg, b), 1, 10)
	reg.Purge()
	wantSet(t, get(t, reg, a), 2, 2)
	wantSet(t, get(t, reg, b), 2, 20)
	f.wantReads(t, 4)
}

// Missing projects and environments are errors, and errors are not cached.
func TestRegistryErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := evaluation.NewRegistry(f.source.Flags, time.Hour)
	ctx := context.Background()
	_, err := reg.Get(ctx, f.ref("alpha", "qa"))
	apiErr(t, err, http.StatusNotFound, apierror.CodeNotFound, `project "alpha" has no environment "qa"`)
	_, err = reg.Get(ctx, f.ref("gamma", "production"))
	apiErr(t, err, http.StatusNotFound, apierror.CodeNotFound, `project "gamma" not found`)
	_, err = reg.Get(ctx, flags.Ref{OrgID: "org_other", Project: "alpha", Environment: "production"})
	apiErr(t, err, http.StatusNotFound, apierror.CodeNotFound, `project "alpha" not found`)

	if _, err := f.svc.Tenancy.CreateEnvironment(ctx, f.root, "alpha", tenancy.CreateEnvironmentInput{Slug: "qa"}); err != nil {
		t.Fatal(err)
	}
	wantSet(t, get(t, reg, f.ref("alpha", "qa")), 0, -1)

	// A deleted project's sets fail again once invalidated (DeleteProject
	// publishes an event per environment).
	ref := f.ref("beta", "staging")
	f.put(t, ref, numberDoc(3))
	wantSet(t, get(t, reg, ref), 1, 3)
	if err := f.svc.DeleteProject(ctx, f.root, "beta"); err != nil {
		t.Fatal(err)
	}
	reg.Invalidate(ref.String())
	_, err = reg.Get(ctx, ref)
	apiErr(t, err, http.StatusNotFound, apierror.CodeNotFound, `project "beta" not found`)
}

// A set is trusted for the TTL without an event, then loaded again; Sweep
// drops the sets nobody refreshed within the TTL and keeps the others.
func TestRegistryTTLAndSweep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := &clock{now: t0}
	reg := evaluation.NewRegistry(f.source.Flags, 30*time.Second)
	reg.SetClock(c.Now)
	a, b := f.ref("alpha", "staging"), f.ref("beta", "staging")

	wantSet(t, get(t, reg, a), 0, -1)
	f.put(t, a, numberDoc(1)) // no event: only the TTL brings it in
	c.Advance(30*time.Second - time.Nanosecond)
	wantSet(t, get(t, reg, a), 0, -1)
	f.wantReads(t, 1)
	c.Advance(time.Nanosecond)
	wantSet(t, get(t, reg, a), 1, 1)
	f.wantReads(t, 2)

	// The default TTL is 30 seconds.
	def := evaluation.NewRegistry(f.source.Flags, 0)
	dc := &clock{now: t0}
	def.SetClock(dc.Now)
	get(t, def, b)
	dc.Advance(29 * time.Second)
	get(t, def, b)
	f.wantReads(t, 3)
	dc.Advance(time.Second)
	get(t, def, b)
	f.wantReads(t, 4)

	// a was loaded at t0+30s; b now, 20s later.
	c.Advance(20 * time.Second)
	gone := weakGet(t, reg, a)
	kept := weakGet(t, reg, b)
	reads := f.gs.reads.Load()
	c.Advance(10 * time.Second) // a is 30s old, b 10s
	reg.Sweep()
	// b is still served from memory...
	get(t, reg, b)
	f.wantReads(t, reads)
	// ... and a was dropped: nothing references its compiled set any more.
	collected := func(p weak.Pointer[evaluation.Compiled]) bool {
		for range 5 {
			runtime.GC()
			if p.Value() == nil {
				return true
			}
		}
		return false
	}
	if !collected(gone) {
		t.Fatal("Sweep kept a set older than the TTL")
	}
	if collected(kept) {
		t.Fatal("Sweep dropped a set younger than the TTL")
	}
	runtime.KeepAlive(reg) // the registry itself must stay reachable to hold its sets
}

// weakGet loads ref and returns a weak pointer to the compiled set, keeping
// no strong reference.
func weakGet(t *testing.T, reg *evaluation.Registry, ref flags.Ref) weak.Pointer[evaluation.Compiled] {
	t.Helper()
	return weak.Make(get(t, reg, ref))
}

// An invalidation that arrives while a load is in flight (the load read the
// set before the write committed) must not leave the stale set in the
// registry, nor hand it to Gets that start after the invalidation.
func TestRegistryInvalidatedDuringSlowLoad(t *testing.T) {
	t.Parallel()
	type result struct {
		c   *evaluation.Compiled
		err error
	}
	start := func(reg *evaluation.Registry, ref flags.Ref) chan result {
		ch := make(chan result, 1)
		go func() {
			c, err := reg.Get(context.Background(), ref)
			ch <- result{c, err}
		}()
		return ch
	}
	wait := func(t *testing.T, ch chan result) *evaluation.Compiled {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.c
		case <-time.After(10 * time.Second):
			t.Fatal("Get did not return within 10s")
		}
		return nil
	}
	entered := func(t *testing.T, g *gate) {
		t.Helper()
		select {
		case <-g.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the load never read the flag set")
		}
	}

	for _, purge := range []bool{false, true} {
		name := "invalidate"
		if purge {
			name = "purge"
		}
		t.Run(name+"/stale set not cached", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			reg := evaluation.NewRegistry(f.source.Flags, time.Hour)
			ref := f.ref("alpha", "staging")
			f.put(t, ref, numberDoc(1))

			g := f.gs.arm()
			slow := start(reg, ref)
			entered(t, g) // the load holds version 1
			f.put(t, ref, numberDoc(2))
			if purge {
				reg.Purge()
			} else {
				reg.Invalidate(ref.String())
			}
			close(g.release)
			wantSet(t, wait(t, slow), 1, 1) // that request raced the write
			wantSet(t, get(t, reg, ref), 2, 2)
			f.wantReads(t, 2)
		})
		t.Run(name+"/stale load not shared", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			reg := evaluation.NewRegistry(f.source.Flags, time.Hour)
			ref := f.ref("alpha", "staging")
			f.put(t, ref, numberDoc(1))

			g := f.gs.arm()
			slow := start(reg, ref)
			entered(t, g)
			f.put(t, ref, numberDoc(2))
			if purge {
				reg.Purge()
			} else {
				reg.Invalidate(ref.String())
			}
			// A Get that starts after the invalidation must load anew, not
			// join the load still in flight. Release the slow load after a
			// while in any case, so a Get that joined it fails the test
			// rather than hanging.
			fresh := start(reg, ref)
			var c *evaluation.Compiled
			select {
			case r := <-fresh:
				if r.err != nil {
					t.Fatal(r.err)
				}
				c = r.c
			case <-time.After(2 * time.Second):
			}
			close(g.release)
			if c == nil {
				c = wait(t, fresh)
			}
			wantSet(t, c, 2, 2)
			wait(t, slow)
			wantSet(t, get(t, reg, ref), 2, 2)
		})
	}

	// Unrelated sets keep loading and caching normally meanwhile.
	t.Run("other sets unaffected", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		reg := evaluation.NewRegistry(f.source.Flags, time.Hour)
		a, b := f.ref("alpha", "staging"), f.ref("beta", "staging")
		f.put(t, a, numberDoc(1))
		f.put(t, b, numberDoc(5))
		g := f.gs.arm()
		slow := start(reg, a)
		entered(t, g)
		wantSet(t, get(t, reg, b), 1, 5)
		close(g.release)
		wantSet(t, wait(t, slow), 1, 1)
		reads := f.gs.reads.Load()
		wantSet(t, get(t, reg, a), 1, 1)
		wantSet(t, get(t, reg, b), 1, 5)
		f.wantReads(t, reads)
	})
}

// The registry follows the change feed as the server wires it: each write
// publishes "<org>/<project>/<env>", and invalidating on that payload makes
// the next Get see the write, on this instance and on another one sharing
// the store (two Redis connections stand for two instances).
func TestRegistryFollowsChangeFeed(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, f *fixture, sub store.Store) {
		ctx := context.Background()
		reg := evaluation.NewRegistry(f.source.Flags, time.Hour)
		events := make(chan string, 64)
		unsub := sub.Subscribe(func(ev store.Event) {
			switch {
			case ev.Resync:
				reg.Purge()
			case ev.Topic == flags.Topic:
				reg.Invalidate(string(ev.Payload))
				events <- string(ev.Payload)
			}
		})
		t.Cleanup(unsub)
		next := func(t *testing.T, want string) {
			t.Helper()
			select {
			case got := <-events:
				if got != want {
					t.Fatalf("event %q, want %q", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no event within 10s, want %q", want)
			}
		}
		ref := f.ref("alpha", "production")
		wantSet(t, get(t, reg, ref), 0, -1)

		f.put(t, ref, numberDoc(1))
		next(t, ref.String())
		wantSet(t, get(t, reg, ref), 1, 1)

		if _, _, err := f.svc.Flags.PutFlag(ctx, f.root, "alpha", "production", "m",
			[]byte(`{"state":"ENABLED","variants":{"x":"x"},"defaultVariant":"x"}`), flags.Precondition{}); err != nil {
			t.Fatal(err)
		}
		next(t, ref.String())
		if c := get(t, reg, ref); c.Version != 2 || !c.Set.Has("m") {
			t.Fatalf("after PutFlag: version %d, flags %q", c.Version, c.Set.Keys())
		}

		if _, err := f.svc.Flags.DeleteFlag(ctx, f.root, "alpha", "production", "n", flags.Precondition{}); err != nil {
			t.Fatal(err)
		}
		next(t, ref.String())
		if c := get(t, reg, ref); c.Version != 3 || c.Set.Has("n") {
			t.Fatalf("after DeleteFlag: version %d, flags %q", c.Version, c.Set.Keys())
		}

		if err := f.svc.DeleteProject(ctx, f.root, "alpha"); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for range 3 {
			select {
			case p := <-events:
				seen[p] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("DeleteProject published %v, want one event per environment", seen)
			}
		}
		for _, env := range tenancy.DefaultEnvironments {
			if !seen[f.ref("alpha", env).String()] {
				t.Fatalf("DeleteProject published %v, nothing for %s", seen, env)
			}
		}
		_, err := reg.Get(ctx, ref)
		apiErr(t, err, http.StatusNotFound, apierror.CodeNotFound, `project "alpha" not found`)
	}
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		run(t, f, f.gs.Store)
	})
	t.Run("redis two instances", func(t *testing.T) {
		t.Parallel()
		r := testenv.StartRedis(t)
		prefix := testenv.UniquePrefix(t)
		open := func() store.Store {
			st, err := store.OpenRedis(r.URL(), store.Options{KeyPrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
		writer, reader := open(), open()
		run(t, newFixtureOn(t, writer, reader), reader)
	})
}

const sessionDoc = `{
  "metadata": {"team": "payments"},
  "flags": {
    "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
      "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", null]}, "metadata": {"owner": "ana"}},
    "theme": {"state": "ENABLED", "variants": {"light": "light", "dark": "dark"}, "defaultVariant": "light"},
    "limit": {"state": "ENABLED", "variants": {"low": 10, "high": 100}, "defaultVariant": "low"}
  }
}`

// Begin resolves the caller's environment and session; Evaluate applies a
// session's overrides (reason OVERRIDE) and evaluates every other flag as
// usual.
func TestBeginAndOverrides(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	reg := evaluation.NewRegistry(f.svc.Flags, time.Hour)
	ev := evaluation.New(f.svc.Flags, reg)
	if ev.Registry() != reg {
		t.Fatal("Registry() is not the registry given to New")
	}
	staging := f.ref("alpha", "staging")
	f.put(t, staging, sessionDoc)
	f.put(t, f.ref("alpha", "production"), sessionDoc)
	f.put(t, f.ref("beta", "staging"), sessionDoc)

	test := f.key(t, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
	live := f.key(t, "alpha", keys.CreateInput{Type: "live", Environment: "staging"})
	prodTest := f.key(t, "alpha", keys.CreateInput{Type: "test", Environment: "production"})
	betaTest := f.key(t, "beta", keys.CreateInput{Type: "test", Environment: "staging"})
	alphaAdmin := f.key(t, "alpha", keys.CreateInput{Type: "admin"})

	one, err := f.svc.Flags.CreateSession(ctx, test, flags.CreateSessionInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Flags.SetOverrides(ctx, test, one.ID, flags.SetOverridesInput{Overrides: map[string]json.RawMessage{
		"new-checkout": []byte(`false`), "theme": []byte(`"dark"`),
	}}); err != nil {
		t.Fatal(err)
	}
	two, err := f.svc.Flags.CreateSession(ctx, test, flags.CreateSessionInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Flags.SetOverrides(ctx, test, two.ID, flags.SetOverridesInput{Overrides: map[string]json.RawMessage{
		"new-checkout": []byte(`true`), "limit": []byte(`42`),
	}}); err != nil {
		t.Fatal(err)
	}

	pro := map[string]any{"targetingKey": "user-42", "plan": "pro"}
	free := map[string]any{"targetingKey": "user-7", "plan": "free"}
	check := func(t *testing.T, e evaluation.Evaluation, flag string, ctx map[string]any, value any, reason evaluator.Reason, overridden bool) {
		t.Helper()
		o := e.Evaluate(flag, ctx)
		if o.Value != value || o.Reason != reason || o.Overridden != overridden || o.ErrorCode != "" || o.Flag != flag {
			t.Fatalf("Evaluate(%s) = %+v, want %v %s overridden=%v", flag, o, value, reason, overridden)
		}
		if overridden && o.Variant != "" {
			t.Fatalf("an overridden value names variant %q", o.Variant)
		}
	}

	// Without a session.
	plain, err := ev.Begin(ctx, test, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Session != nil || plain.Set.Ref != staging || plain.Set.Version != 1 {
		t.Fatalf("Begin = session %v, set %+v", plain.Session, plain.Set.Ref)
	}
	check(t, plain, "new-checkout", pro, true, evaluator.ReasonTargetingMatch, false)
	check(t, plain, "new-checkout", free, false, evaluator.ReasonDefault, false)
	check(t, plain, "theme", nil, "light", evaluator.ReasonStatic, false)
	if got := strings.Join(plain.Keys(), ","); got != "limit,new-checkout,theme" {
		t.Fatalf("Keys = %s", got)
	}

	// Session one pins new-checkout and theme; limit evaluates as usual.
	e1, err := ev.Begin(ctx, test, "", "", one.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e1.Session == nil || e1.Session.ID != one.ID {
		t.Fatalf("Begin with a session: %+v", e1.Session)
	}
	check(t, e1, "new-checkout", pro, false, evaluation.ReasonOverride, true)
	check(t, e1, "theme", nil, "dark", evaluation.ReasonOverride, true)
	check(t, e1, "limit", nil, 10.0, evaluator.ReasonStatic, false)
	// The flag's metadata stays with the pinned value.
	if md := e1.Evaluate("new-checkout", pro).Metadata; md["owner"] != "ana" || md["team"] != "payments" {
		t.Fatalf("metadata of an overridden flag: %v", md)
	}
	if o := e1.Evaluate("nope", nil); o.ErrorCode != evaluator.ErrFlagNotFound || o.Overridden {
		t.Fatalf("unknown flag in a session: %+v", o)
	}

	// Session two never sees session one's overrides, nor one two's.
	e2, err := ev.Begin(ctx, test, "", "", two.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, e2, "new-checkout", free, true, evaluation.ReasonOverride, true)
	check(t, e2, "theme", nil, "light", evaluator.ReasonStatic, false)
	check(t, e2, "limit", nil, 42.0, evaluation.ReasonOverride, true)
	check(t, e1, "limit", nil, 10.0, evaluator.ReasonStatic, false)

	// Other keys of the same environment may use the session (an admin key
	// naming it); keys of another environment or project cannot see it.
	ea, err := ev.Begin(ctx, alphaAdmin, "alpha", "staging", one.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, ea, "theme", nil, "dark", evaluation.ReasonOverride, true)
	notFound := fmt.Sprintf("testing session %q not found or expired", one.ID)
	for _, c := range []struct {
		name          string
		caller        *authz.Principal
		project, env  string
		status        int
		code, message string
	}{
		{"live key", live, "", "", 403, apierror.CodeForbidden, "Live keys cannot use testing sessions"},
		{"other environment", prodTest, "", "", 404, apierror.CodeSessionNotFound, notFound},
		{"other project", betaTest, "", "", 404, apierror.CodeSessionNotFound, notFound},
		{"admin in another environment", alphaAdmin, "", "production", 404, apierror.CodeSessionNotFound, notFound},
		{"other organization", f.otherOrgTestKey(t), "", "", 404, apierror.CodeSessionNotFound, notFound},
	} {
		_, err := ev.Begin(ctx, c.caller, c.project, c.env, one.ID)
		if err == nil {
			t.Fatalf("%s: Begin with the session succeeded", c.name)
		}
		apiErr(t, err, c.status, c.code, c.message)
	}
	_, err = ev.Begin(ctx, test, "", "", "ts_nope")
	apiErr(t, err, 404, apierror.CodeSessionNotFound, `testing session "ts_nope" not found or expired`)
	// The live key evaluates fine without a session.
	if e, err := ev.Begin(ctx, live, "", "", ""); err != nil || e.Set.Ref != staging {
		t.Fatalf("live Begin = %v", err)
	}
	_, err = ev.Begin(ctx, live, "beta", "", "")
	apiErr(t, err, 403, apierror.CodeForbidden, `This key belongs to project "alpha" and cannot evaluate flags of project "beta"`)

	// A pinned flag that is deleted from the set is not found, even in the
	// session.
	if _, err := f.svc.Flags.DeleteFlag(ctx, f.root, "alpha", "staging", "theme", flags.Precondition{}); err != nil {
		t.Fatal(err)
	}
	reg.Invalidate(staging.String())
	e1, err = ev.Begin(ctx, test, "", "", one.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o := e1.Evaluate("theme", nil); o.ErrorCode != evaluator.ErrFlagNotFound || o.Overridden || o.Value != nil {
		t.Fatalf("deleted pinned flag = %+v", o)
	}
	check(t, e1, "new-checkout", pro, false, evaluation.ReasonOverride, true)

	// A deleted session stops applying at once; an expired one too.
	if err := f.svc.Flags.DeleteSession(ctx, test, two.ID); err != nil {
		t.Fatal(err)
	}
	_, err = ev.Begin(ctx, test, "", "", two.ID)
	apiErr(t, err, 404, apierror.CodeSessionNotFound, "")
	f.clock.Advance(flags.DefaultSessionTTL)
	_, err = ev.Begin(ctx, test, "", "", one.ID)
	apiErr(t, err, 404, apierror.CodeSessionNotFound, notFound)
}

// A Scoped organization-wide key (resources [alpha]) evaluates alpha's
// flags and none of beta's: naming beta is refused before any flag set or
// testing session of beta is read, so neither beta's values nor the
// overrides of beta's own CI reach it. (It used to evaluate every project
// of its organization.)
func TestScopedKeyStaysInItsProjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ev := evaluation.New(f.svc.Flags, evaluation.NewRegistry(f.svc.Flags, time.Hour))
	for _, ref := range []flags.Ref{f.ref("alpha", "production"), f.ref("beta", "production"), f.ref("beta", "staging")} {
		f.put(t, ref, sessionDoc)
	}
	scoped := f.key(t, "", keys.CreateInput{Type: "admin", Resources: []string{"alpha"}})
	if scoped.Scope.Project != "" || !slices.Equal(scoped.Scope.Resources, []string{"alpha"}) {
		t.Fatalf("scoped key has scope %+v", scoped.Scope)
	}
	betaTest := f.key(t, "beta", keys.CreateInput{Type: "test", Environment: "staging"})
	ts, err := f.svc.Flags.CreateSession(ctx, betaTest, flags.CreateSessionInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Flags.SetOverrides(ctx, betaTest, ts.ID, flags.SetOverridesInput{Overrides: map[string]json.RawMessage{
		"theme": []byte(`"dark"`),
	}}); err != nil {
		t.Fatal(err)
	}

	// Its own project.
	e, err := ev.Begin(ctx, scoped, "alpha", "production", "")
	if err != nil {
		t.Fatal(err)
	}
	if e.Set.Ref != f.ref("alpha", "production") || e.Evaluate("theme", nil).Value != "light" {
		t.Fatalf("scoped key in alpha: %+v", e.Set.Ref)
	}
	// Another project, with or without the session of its CI.
	const refused = `This key is limited to projects [alpha] and cannot evaluate flags of project "beta"`
	for _, c := range []struct{ env, session string }{{"production", ""}, {"staging", ""}, {"staging", ts.ID}} {
		e, err := ev.Begin(ctx, scoped, "beta", c.env, c.session)
		if e.Set != nil {
			t.Fatalf("beta/%s session %q: Begin handed out an evaluation of %+v", c.env, c.session, e.Set.Ref)
		}
		apiErr(t, err, http.StatusForbidden, apierror.CodeForbidden, refused)
		_, err = evaluation.Target(scoped, "beta", c.env)
		apiErr(t, err, http.StatusForbidden, apierror.CodeForbidden, refused)
	}
	// beta's CI is unaffected.
	e, err = ev.Begin(ctx, betaTest, "", "", ts.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o := e.Evaluate("theme", nil); !o.Overridden || o.Value != "dark" {
		t.Fatalf("beta's own session: %+v", o)
	}
}

// otherOrgTestKey is a test key of another organization's alpha/staging.
func (f *fixture) otherOrgTestKey(t *testing.T) *authz.Principal {
	t.Helper()
	ctx := context.Background()
	other, err := f.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Tenancy.CreateProject(ctx, other.Principal, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
		t.Fatal(err)
	}
	k, err := f.svc.Keys.CreateKey(ctx, other.Principal, "alpha", keys.CreateInput{Name: "k", Type: "test", Environment: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	return authz.ForKey(k.Record)
}

// An override stops applying when the flag changes type under it, rather
// than handing out a value the flag can no longer have.
func TestOverrideDroppedWhenTheFlagChangesType(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ev := evaluation.New(f.svc.Flags, evaluation.NewRegistry(f.svc.Flags, time.Hour))
	ref := f.ref("alpha", "staging")
	f.put(t, ref, sessionDoc)
	test := f.key(t, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
	ts, err := f.svc.Flags.CreateSession(ctx, test, flags.CreateSessionInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Flags.SetOverrides(ctx, test, ts.ID, flags.SetOverridesInput{Overrides: map[string]json.RawMessage{
		"theme": []byte(`"dark"`),
	}}); err != nil {
		t.Fatal(err)
	}
	e, err := ev.Begin(ctx, test, "", "", ts.ID)
	if err != nil {
		t.Fatal(err)
	}
	if out := e.Evaluate("theme", nil); !out.Overridden || out.Value != "dark" {
		t.Fatalf("before the change: %+v", out)
	}
	f.put(t, ref, strings.Replace(sessionDoc, `"variants": {"light": "light", "dark": "dark"}, "defaultVariant": "light"`,
		`"variants": {"on": true, "off": false}, "defaultVariant": "on"`, 1))
	ev.Registry().Invalidate(ref.String())
	e, err = ev.Begin(ctx, test, "", "", ts.ID)
	if err != nil {
		t.Fatal(err)
	}
	if out := e.Evaluate("theme", nil); out.Overridden || out.Value != true || out.Reason != evaluator.ReasonStatic {
		t.Fatalf("after theme became a boolean flag: %+v", out)
	}
}

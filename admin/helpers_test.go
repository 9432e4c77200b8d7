package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
)

// t0 is where every test's clock starts: a whole second, so that the
// service's truncation to the second changes nothing.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)

// clock is a settable clock for Service.SetClock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one admin service over one real store, with what the tests need to
// look behind it.
type env struct {
	svc   *admin.Service
	st    store.Store
	clock *clock
	// raw returns every byte the backend holds (file contents, or every
	// field and value of every Redis hash).
	raw func(t *testing.T) []byte
}

// forEachStore runs fn on the file backend and on the Redis backend (a
// fresh redis-server with a unique key prefix), in parallel.
func forEachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		st, err := store.OpenFile(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, newEnv(st, func(t *testing.T) []byte {
			t.Helper()
			var all []byte
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, de := range entries {
				b, err := os.ReadFile(filepath.Join(dir, de.Name()))
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			return all
		}))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		r := testenv.StartRedis(t)
		st, err := store.OpenRedis(r.URL(), store.Options{KeyPrefix: testenv.UniquePrefix(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, newEnv(st, func(t *testing.T) []byte {
			t.Helper()
			ctx := context.Background()
			c := r.Client()
			keys, err := c.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, k := range keys {
				switch typ := c.Type(ctx, k).Val(); typ {
				case "hash":
					for f, v := range c.HGetAll(ctx, k).Val() {
						all = append(all, k+"\x00"+f+"\x00"+v+"\x00"...)
					}
				case "string":
					all = append(all, k+"\x00"+c.Get(ctx, k).Val()+"\x00"...)
				default:
					t.Fatalf("unexpected Redis key %s of type %s", k, typ)
				}
			}
			return all
		}))
	})
}

func newEnv(st store.Store, raw func(*testing.T) []byte) *env {
	c := &clock{now: t0}
	svc := admin.New(st)
	svc.SetClock(c.Now)
	return &env{svc: svc, st: st, clock: c, raw: raw}
}

// faulty returns another service over the same store and clock whose writes
// fail when fail returns an error, to check that nothing is half-written.
func (e *env) faulty(fail func(op, collection, id string) error) *admin.Service {
	svc := admin.New(faultStore{Store: e.st, fail: fail})
	svc.SetClock(e.clock.Now)
	return svc
}

type faultStore struct {
	store.Store
	fail func(op, collection, id string) error
}

func (f faultStore) Update(ctx context.Context, fn func(store.Writer) error) error {
	return f.Store.Update(ctx, func(w store.Writer) error { return fn(faultWriter{Writer: w, fail: f.fail}) })
}

type faultWriter struct {
	store.Writer
	fail func(op, collection, id string) error
}

func (w faultWriter) Put(collection, id string, value []byte) error {
	if err := w.fail("put", collection, id); err != nil {
		return err
	}
	return w.Writer.Put(collection, id, value)
}

func (w faultWriter) Delete(collection, id string) error {
	if err := w.fail("delete", collection, id); err != nil {
		return err
	}
	return w.Writer.Delete(collection, id)
}

func (w faultWriter) DeleteCollection(collection string) error {
	if err := w.fail("delete-collection", collection, "*"); err != nil {
		return err
	}
	return w.Writer.DeleteCollection(collection)
}

var errInjected = errors.New("injected storage failure")

// failOn fails the first write of kind op to a collection starting with
// prefix (every one, if the transaction is retried).
func failOn(op, prefix string) func(string, string, string) error {
	return func(o, c, _ string) error {
		if o == op && strings.HasPrefix(c, prefix) {
			return errInjected
		}
		return nil
	}
}

// snapshot is the content of some collections.
type snapshot map[string][]store.Item

// snap reads the given collections directly from the store.
func (e *env) snap(t *testing.T, collections ...string) snapshot {
	t.Helper()
	out := snapshot{}
	err := e.st.View(context.Background(), func(r store.Reader) error {
		for _, c := range collections {
			items, err := r.List(c)
			if err != nil {
				return err
			}
			out[c] = items
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s snapshot) equal(o snapshot) bool {
	if len(s) != len(o) {
		return false
	}
	for c, items := range s {
		other, ok := o[c]
		if !ok || len(items) != len(other) {
			return false
		}
		for i := range items {
			if items[i].ID != other[i].ID || string(items[i].Value) != string(other[i].Value) {
				return false
			}
		}
	}
	return true
}

// ids lists the document ids of a collection.
func (e *env) ids(t *testing.T, collection string) []string {
	t.Helper()
	var out []string
	for _, it := range e.snap(t, collection)[collection] {
		out = append(out, it.ID)
	}
	return out
}

// doc reads one document directly; ok is false if it does not exist.
func (e *env) doc(t *testing.T, collection, id string) (b []byte, ok bool) {
	t.Helper()
	err := e.st.View(context.Background(), func(r store.Reader) error {
		var err error
		b, err = r.Get(collection, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

// org is an organization with its org-wide admin key: root is the key's
// principal (root.Key its record), as the edge would hand it over.
type org struct {
	id      string
	root    *authz.Principal
	rootKey string
}

// as is the principal of a key record, nil for nil (no key at all).
func as(rec *apikey.Record) *authz.Principal {
	if rec == nil {
		return nil
	}
	return authz.ForKey(rec)
}

// newOrg creates an organization (NewOrg works on an empty store too) and
// the given projects.
func (e *env) newOrg(t *testing.T, projects ...string) *org {
	t.Helper()
	ctx := context.Background()
	res, err := e.svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "owner@example.com", OwnerName: "Owner"})
	if err != nil {
		t.Fatal(err)
	}
	o := &org{id: res.Organization.ID, root: res.Principal, rootKey: res.Key}
	for _, p := range projects {
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: p}); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// mint creates a key, failing the test on error.
func (e *env) mint(t *testing.T, caller *authz.Principal, project string, in keys.CreateInput) *keys.Created {
	t.Helper()
	if in.Name == "" {
		in.Name = "k-" + in.Type
	}
	k, err := e.svc.Keys.CreateKey(context.Background(), caller, project, in)
	if err != nil {
		t.Fatalf("CreateKey(%s, %+v): %v", project, in, err)
	}
	return k
}

func (e *env) lookup(t *testing.T, secret string) *apikey.Record {
	t.Helper()
	rec, err := e.svc.Keys.LookupKey(context.Background(), apikey.DigestOf(secret))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// keyCols are the collections that hold an organization's keys.
func keyCols(orgID string) []string {
	return []string{"keys/" + orgID, "key-digests", "key-use"}
}

// feed records the key ids published on keys.Topic.
type feed struct {
	ch chan store.Event
}

func (e *env) subscribe(t *testing.T) *feed {
	t.Helper()
	f := &feed{ch: make(chan store.Event, 4096)}
	unsub := e.st.Subscribe(func(ev store.Event) {
		// Flag-set and identity events are checked by their own tests.
		if ev.Topic != flags.Topic && ev.Topic != customers.Topic {
			f.ch <- ev
		}
	})
	t.Cleanup(unsub)
	return f
}

// next returns the payload of the next event, which must be on keys.Topic.
func (f *feed) next(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-f.ch:
		if ev.Resync || ev.Topic != keys.Topic {
			t.Fatalf("event %+v, want one on topic %q", ev, keys.Topic)
		}
		return string(ev.Payload)
	case <-time.After(10 * time.Second):
		t.Fatal("no event published within 10s")
	}
	return ""
}

// expect receives len(ids) events and checks they carry exactly ids, in any
// order.
func (f *feed) expect(t *testing.T, ids ...string) {
	t.Helper()
	var got []string
	for range ids {
		got = append(got, f.next(t))
	}
	want := slices.Clone(ids)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("published %q, want %q", got, want)
	}
}

// expectQuiet checks that nothing was published since the last event read:
// it revokes a fresh marker key (which publishes its id) and checks that the
// marker is the next event, since events arrive in publication order.
func (f *feed) expectQuiet(t *testing.T, e *env, o *org, project string) {
	t.Helper()
	marker := e.mint(t, o.root, project, keys.CreateInput{Name: "marker", Type: "admin"})
	if _, err := e.svc.Keys.RevokeKey(context.Background(), o.root, marker.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.next(t); got != marker.ID {
		t.Fatalf("published %q before the marker %q, want nothing", got, marker.ID)
	}
}

// apiErr returns err as an *apierror.Error, failing the test otherwise.
func apiErr(t *testing.T, err error) *apierror.Error {
	t.Helper()
	var ae *apierror.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v (%T), want an *apierror.Error", err, err)
	}
	return ae
}

// wantErr checks an API error's status and code, and that its message holds
// every one of parts.
func wantErr(t *testing.T, err error, status int, code string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d %s %q", status, code, parts)
	}
	ae := apiErr(t, err)
	if ae.Status != status || ae.Code != code {
		t.Fatalf("error = %v, want %d %s", ae, status, code)
	}
	for _, p := range parts {
		if !strings.Contains(ae.Message, p) {
			t.Fatalf("message %q does not mention %q", ae.Message, p)
		}
	}
}

// wantExact checks that err is exactly want (status, code and message).
func wantExact(t *testing.T, err error, want *apierror.Error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	ae := apiErr(t, err)
	if ae.Status != want.Status || ae.Code != want.Code || ae.Message != want.Message {
		t.Fatalf("error = %v, want %v", ae, want)
	}
}

func perms(t *testing.T, names ...string) apikey.Permissions {
	t.Helper()
	ps, err := apikey.ParsePermissions(names)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func tp(t time.Time) *time.Time { return &t }

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func fmtTime(p *time.Time) string {
	if p == nil {
		return "<nil>"
	}
	return p.Format(time.RFC3339)
}

// digestDoc decodes a key-digests document.
func digestDoc(t *testing.T, b []byte) (orgID, keyID string) {
	t.Helper()
	var d struct {
		OrgID string `json:"org_id"`
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decoding digest document %s: %v", b, err)
	}
	return d.OrgID, d.KeyID
}

// refOf names an environment of p's organization, as an evaluation by p
// would (no organization without a principal).
func refOf(p *authz.Principal, project, env string) flags.Ref {
	ref := flags.Ref{Project: project, Environment: env}
	if p != nil {
		ref.OrgID = p.Org()
	}
	return ref
}

// set is an UpdateInput member given as v.
func set[T any](v T) jsonbody.Optional[T] { return jsonbody.Optional[T]{Set: true, Value: &v} }

// null is an UpdateInput member given as null.
func null[T any]() jsonbody.Optional[T] { return jsonbody.Optional[T]{Set: true} }

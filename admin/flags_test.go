package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/evaluator"
	"github.com/flagbridge/flagbridge/store"
)

// checkoutDoc is a flag set with shared evaluators and set metadata, which
// writes of single flags must preserve.
const checkoutDoc = `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "$evaluators": {"isPro": {"==": [{"var": "plan"}, "pro"]}},
  "metadata": {"team": "payments"},
  "flags": {
    "new-checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"if": [{"$ref": "isPro"}, "on", null]},
      "metadata": {"owner": "ana"}
    },
    "theme": {"state": "ENABLED", "variants": {"light": "light", "dark": "dark"}, "defaultVariant": "light"}
  }
}`

const bannerDef = `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off","targeting":{"if":[{"$ref":"isPro"},"on","off"]}}`

// canonical is what the evaluator makes of a document: the form flag sets
// are stored and exported in.
func canonical(t *testing.T, doc string) string {
	t.Helper()
	fs, err := evaluator.Compile([]byte(doc))
	if err != nil {
		t.Fatalf("compiling %s: %v", doc, err)
	}
	return string(fs.Document())
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

var noPre = flags.Precondition{}

func ifMatch(v int64) flags.Precondition { return flags.Precondition{Version: v, Set: true} }

// flagFeed records what is published on flags.Topic and, for each
// event, the version a read made on receiving it saw: an event published
// before its commit would show the old version.
type flagFeed struct {
	ch chan flagEvent
}

type flagEvent struct {
	payload string
	version int64
	err     error
}

func (e *env) flagFeed(t *testing.T) *flagFeed {
	t.Helper()
	f := &flagFeed{ch: make(chan flagEvent, 1024)}
	unsub := e.st.Subscribe(func(ev store.Event) {
		if ev.Topic != flags.Topic {
			return
		}
		fe := flagEvent{payload: string(ev.Payload)}
		if p := strings.Split(fe.payload, "/"); len(p) == 3 {
			fs, err := e.svc.Flags.ReadFlagSet(context.Background(), flags.Ref{OrgID: p[0], Project: p[1], Environment: p[2]})
			if err != nil {
				fe.err = err
			} else {
				fe.version = fs.Version
			}
		}
		f.ch <- fe
	})
	t.Cleanup(unsub)
	return f
}

func (f *flagFeed) next(t *testing.T) flagEvent {
	t.Helper()
	select {
	case ev := <-f.ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no flag event published within 10s")
	}
	return flagEvent{}
}

// expect checks that the next event names ref and follows the commit of
// version: a read on receiving it sees that version (or a later one, when
// the test wrote again meanwhile).
func (f *flagFeed) expect(t *testing.T, ref flags.Ref, version int64) {
	t.Helper()
	ev := f.next(t)
	if ev.payload != ref.String() {
		t.Fatalf("published %q, want %q", ev.payload, ref.String())
	}
	if ev.err != nil || ev.version < version {
		t.Fatalf("on the event, the set read version %d (%v), want %d: published before the commit?", ev.version, ev.err, version)
	}
}

// expectQuiet checks that nothing was published since the last event read:
// it writes a marker set in a project of its own, whose event must be the
// next one.
func (f *flagFeed) expectQuiet(t *testing.T, e *env, o *org) {
	t.Helper()
	ctx := context.Background()
	_, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "zz-marker"})
	var ae *apierror.Error
	if err != nil && (!errors.As(err, &ae) || ae.Code != apierror.CodeConflict) {
		t.Fatal(err)
	}
	if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "zz-marker", "production", []byte(`{"flags":{}}`), noPre); err != nil {
		t.Fatal(err)
	}
	want := flags.Ref{OrgID: o.id, Project: "zz-marker", Environment: "production"}.String()
	if ev := f.next(t); ev.payload != want {
		t.Fatalf("published %q before the marker, want nothing", ev.payload)
	}
}

// flagSet reads a set through the service, failing the test on error.
func (e *env) flagSet(t *testing.T, o *org, project, env string) *flags.FlagSet {
	t.Helper()
	fs, err := e.svc.Flags.GetFlagSet(context.Background(), o.root, project, env)
	if err != nil {
		t.Fatalf("GetFlagSet(%s/%s): %v", project, env, err)
	}
	return fs
}

func (o *org) ref(project, env string) flags.Ref {
	return flags.Ref{OrgID: o.id, Project: project, Environment: env}
}

func flagCol(o *org, project string) string { return "flag-sets/" + o.id + "/" + project }

func TestFlagSetReadAndRoundTrip(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		feed := e.flagFeed(t)

		// Never written: an empty set at version 0, and nothing stored.
		fs := e.flagSet(t, o, "alpha", "staging")
		if fs.Version != 0 || string(fs.Document) != `{"flags":{}}` || !fs.UpdatedAt.IsZero() {
			t.Fatalf("unwritten set = %d %s %v", fs.Version, fs.Document, fs.UpdatedAt)
		}
		if ids := e.ids(t, flagCol(o, "alpha")); len(ids) != 0 {
			t.Fatalf("reading stored %q", ids)
		}
		_, err := e.svc.Flags.GetFlagSet(ctx, o.root, "nope", "staging")
		wantExact(t, err, apierror.NotFound(`project "nope" not found`))
		_, err = e.svc.Flags.GetFlagSet(ctx, o.root, "alpha", "qa")
		wantExact(t, err, apierror.NotFound(`project "alpha" has no environment "qa"`))
		_, err = e.svc.Flags.ReadFlagSet(ctx, o.ref("alpha", "qa"))
		wantExact(t, err, apierror.NotFound(`project "alpha" has no environment "qa"`))
		_, err = e.svc.Flags.ReadFlagSet(ctx, flags.Ref{OrgID: "org_nope", Project: "alpha", Environment: "staging"})
		wantExact(t, err, apierror.NotFound(`project "alpha" not found`))

		e.clock.Advance(time.Minute)
		w, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(checkoutDoc), noPre)
		if err != nil {
			t.Fatal(err)
		}
		if w.Version != 1 || !w.UpdatedAt.Equal(t0.Add(time.Minute)) || string(w.Document) != canonical(t, checkoutDoc) {
			t.Fatalf("PutFlagSet = %d %v %s", w.Version, w.UpdatedAt, w.Document)
		}
		feed.expect(t, o.ref("alpha", "staging"), 1)
		got := e.flagSet(t, o, "alpha", "staging")
		if got.Version != 1 || string(got.Document) != string(w.Document) || !got.UpdatedAt.Equal(w.UpdatedAt) {
			t.Fatalf("GetFlagSet after put = %d %s", got.Version, got.Document)
		}
		// Same content as written: $schema, $evaluators and metadata kept.
		if !sameJSON(t, got.Document, []byte(checkoutDoc)) {
			t.Fatalf("stored document %s differs from the one written", got.Document)
		}
		if r, err := e.svc.Flags.ReadFlagSet(ctx, o.ref("alpha", "staging")); err != nil || r.Version != 1 || string(r.Document) != string(got.Document) {
			t.Fatalf("ReadFlagSet = %+v, %v", r, err)
		}
		// Other environments and projects are untouched.
		for _, pe := range [][2]string{{"alpha", "production"}, {"beta", "staging"}} {
			if fs := e.flagSet(t, o, pe[0], pe[1]); fs.Version != 0 || string(fs.Document) != `{"flags":{}}` {
				t.Fatalf("%s/%s = %d %s", pe[0], pe[1], fs.Version, fs.Document)
			}
		}

		// Export round-trips: PUT of the GET output gives the same set.
		again, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", got.Document, noPre)
		if err != nil {
			t.Fatal(err)
		}
		if again.Version != 2 || string(again.Document) != string(got.Document) {
			t.Fatalf("round trip = %d %s\nwant %s", again.Version, again.Document, got.Document)
		}
		feed.expect(t, o.ref("alpha", "staging"), 2)

		// PUT replaces the whole set.
		w, err = e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging",
			[]byte(`{"flags":{"solo":{"state":"DISABLED","variants":{"a":1},"defaultVariant":"a"}}}`), noPre)
		if err != nil {
			t.Fatal(err)
		}
		if w.Version != 3 || string(w.Document) != `{"flags":{"solo":{"defaultVariant":"a","state":"DISABLED","variants":{"a":1}}}}` {
			t.Fatalf("replacing put = %d %s", w.Version, w.Document)
		}
		feed.expect(t, o.ref("alpha", "staging"), 3)
		// An empty set is a write like any other.
		if w, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(`{"flags":{}}`), noPre); err != nil || w.Version != 4 {
			t.Fatalf("empty put = %+v, %v", w, err)
		}
		feed.expect(t, o.ref("alpha", "staging"), 4)
		if ids := e.ids(t, flagCol(o, "alpha")); !slices.Equal(ids, []string{"staging"}) {
			t.Fatalf("stored sets %q", ids)
		}
		feed.expectQuiet(t, e, o)
	})
}

// Invalid definitions are refused whole with a 400 naming the flag and the
// problem: version, document and store unchanged, nothing published.
func TestPutFlagSetInvalid(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(checkoutDoc), noPre); err != nil {
			t.Fatal(err)
		}
		feed := e.flagFeed(t)
		before := e.snap(t, flagCol(o, "alpha"))
		prev := e.flagSet(t, o, "alpha", "staging")
		const on = `"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"`
		for _, tc := range []struct {
			name, doc string
			parts     []string
		}{
			{"mixed variant types", `{"flags":{"new-checkout":{"state":"ENABLED","variants":{"on":true,"off":"no"},"defaultVariant":"on"}}}`,
				[]string{`flag "new-checkout"`, `variants mix types`}},
			{"defaultVariant not a variant", `{"flags":{"theme":{"state":"ENABLED","variants":{"light":"l","dark":"d"},"defaultVariant":"blue"}}}`,
				[]string{`invalid flag definitions: flag "theme": defaultVariant "blue" is not one of its variants ("dark", "light")`}},
			{"unknown operator", `{"flags":{"new-checkout":{` + on + `,"targeting":{"frobnicate":[1,2]}}}}`,
				[]string{`flag "new-checkout"`, `unknown operator "frobnicate"`}},
			{"missing evaluator", `{"flags":{"new-checkout":{` + on + `,"targeting":{"if":[{"$ref":"isPro"},"on",null]}}}}`,
				[]string{`flag "new-checkout"`, `$ref "isPro" is not defined`}},
			{"targeting names no variant", `{"flags":{"new-checkout":{` + on + `,"targeting":{"if":[true,"maybe",null]}}}}`,
				[]string{`flag "new-checkout"`, `"maybe"`}},
			{"misspelt field", `{"flags":{"theme":{"state":"ENABLED","variants":{"a":"a"},"defaultVarient":"a"}}}`,
				[]string{`flag "theme"`, `unknown field "defaultVarient"`}},
			{"bad state", `{"flags":{"theme":{"state":"ON","variants":{"a":"a"},"defaultVariant":"a"}}}`,
				[]string{`flag "theme"`, `state must be "ENABLED" or "DISABLED"`}},
			{"second flag bad", `{"flags":{"a-good":{` + on + `},"z-bad":{"state":"ENABLED","variants":{},"defaultVariant":null}}}`,
				[]string{`flag "z-bad"`, `variants are empty`}},
			{"malformed JSON", `{"flags":{"theme":{`, []string{"invalid flag definitions: invalid JSON"}},
			{"trailing data", `{"flags":{}} {}`, []string{"invalid JSON"}},
			{"duplicate flag", `{"flags":{"theme":{` + on + `},"theme":{` + on + `}}}`, []string{`duplicate object key "theme"`}},
			{"not an object", `[]`, []string{"document must be a JSON object"}},
			{"no flags", `{}`, []string{`no "flags" object`}},
			{"unknown top-level field", `{"flags":{},"flagz":{}}`, []string{`unknown top-level field "flagz"`}},
			{"empty", ``, []string{"invalid JSON"}},
		} {
			_, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(tc.doc), noPre)
			if err == nil {
				t.Fatalf("%s: accepted %s", tc.name, tc.doc)
			}
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, tc.parts...)
			// The same document through a precondition that matches changes
			// nothing either.
			_, err = e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(tc.doc), ifMatch(prev.Version))
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, tc.parts...)
		}
		if !before.equal(e.snap(t, flagCol(o, "alpha"))) {
			t.Fatal("a refused PutFlagSet changed the store")
		}
		if fs := e.flagSet(t, o, "alpha", "staging"); fs.Version != prev.Version || string(fs.Document) != string(prev.Document) {
			t.Fatalf("after refusals: %d %s", fs.Version, fs.Document)
		}
		feed.expectQuiet(t, e, o)
	})
}

// PutFlag and DeleteFlag change one flag, compiled with the whole set; the
// other flags, $evaluators and metadata stay.
func TestPutAndDeleteFlag(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		feed := e.flagFeed(t)
		ref := o.ref("alpha", "staging")
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(checkoutDoc), noPre); err != nil {
			t.Fatal(err)
		}
		feed.expect(t, ref, 1)

		// Create: the new flag may use the set's evaluators.
		fs, created, err := e.svc.Flags.PutFlag(ctx, o.root, "alpha", "staging", "banner", []byte(bannerDef), noPre)
		if err != nil {
			t.Fatal(err)
		}
		if !created || fs.Version != 2 {
			t.Fatalf("PutFlag(new) = created %v version %d", created, fs.Version)
		}
		feed.expect(t, ref, 2)
		withBanner := strings.Replace(checkoutDoc, `"flags": {`, `"flags": {"banner": `+bannerDef+`,`, 1)
		if string(fs.Document) != canonical(t, withBanner) {
			t.Fatalf("document after PutFlag\n got %s\nwant %s", fs.Document, canonical(t, withBanner))
		}
		if got := e.flagSet(t, o, "alpha", "staging"); got.Version != 2 || string(got.Document) != string(fs.Document) {
			t.Fatalf("GetFlagSet after PutFlag = %d %s", got.Version, got.Document)
		}

		def, v, err := e.svc.Flags.GetFlag(ctx, o.root, "alpha", "staging", "banner")
		if err != nil || v != 2 || !sameJSON(t, def, []byte(bannerDef)) {
			t.Fatalf("GetFlag = %s %d %v", def, v, err)
		}
		def, v, err = e.svc.Flags.GetFlag(ctx, o.root, "alpha", "staging", "new-checkout")
		if err != nil || v != 2 || string(def) != `{"defaultVariant":"off","metadata":{"owner":"ana"},"state":"ENABLED","targeting":{"if":[{"$ref":"isPro"},"on",null]},"variants":{"off":false,"on":true}}` {
			t.Fatalf("GetFlag(new-checkout) = %s %d %v", def, v, err)
		}

		// Replace.
		e.clock.Advance(time.Hour)
		fs, created, err = e.svc.Flags.PutFlag(ctx, o.root, "alpha", "staging", "banner",
			[]byte(`{"state":"DISABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`), noPre)
		if err != nil || created || fs.Version != 3 || !fs.UpdatedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("PutFlag(existing) = created %v %+v %v", created, fs, err)
		}
		feed.expect(t, ref, 3)
		def, _, _ = e.svc.Flags.GetFlag(ctx, o.root, "alpha", "staging", "banner")
		if string(def) != `{"defaultVariant":"on","state":"DISABLED","variants":{"off":false,"on":true}}` {
			t.Fatalf("replaced flag = %s", def)
		}

		// Refusals: nothing written, nothing published.
		before := e.snap(t, flagCol(o, "alpha"))
		for _, tc := range []struct {
			key, def string
			parts    []string
		}{
			{"broken", `{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on","targeting":{"$ref":"missing"}}`,
				[]string{`flag "broken"`, `$ref "missing" is not defined`}},
			{"mixed", `{"state":"ENABLED","variants":{"a":1,"b":"2"},"defaultVariant":"a"}`, []string{`flag "mixed"`, "variants mix types"}},
			{"theme", `{"state":"ENABLED","variants":{"light":"l"},"defaultVariant":"dark"}`, []string{`flag "theme"`, `defaultVariant "dark"`}},
			{"op", `{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on","targeting":{"nope":[]}}`, []string{`flag "op"`, `unknown operator "nope"`}},
			{"arr", `[]`, []string{`flag "arr": the definition must be a JSON object`}},
			{"str", `"x"`, []string{`flag "str": the definition must be a JSON object`}},
			{"bad", `{"state":`, []string{`flag "bad": the definition must be a JSON object`}},
			{"empty", ``, []string{`flag "empty": the definition must be a JSON object`}},
			{"", `{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"}`, []string{"flag key is empty"}},
		} {
			_, _, err := e.svc.Flags.PutFlag(ctx, o.root, "alpha", "staging", tc.key, []byte(tc.def), noPre)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest, tc.parts...)
		}
		_, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "nope", noPre)
		wantExact(t, err, apierror.New(404, apierror.CodeFlagNotFound, `flag "nope" not found in environment "staging"`))
		_, _, err = e.svc.Flags.GetFlag(ctx, o.root, "alpha", "staging", "nope")
		wantExact(t, err, apierror.New(404, apierror.CodeFlagNotFound, `flag "nope" not found in environment "staging"`))
		_, _, err = e.svc.Flags.GetFlag(ctx, o.root, "alpha", "production", "banner")
		wantExact(t, err, apierror.New(404, apierror.CodeFlagNotFound, `flag "banner" not found in environment "production"`))
		_, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "production", "banner", noPre)
		wantExact(t, err, apierror.New(404, apierror.CodeFlagNotFound, `flag "banner" not found in environment "production"`))
		for _, op := range []func() error{
			func() error { _, _, err := e.svc.Flags.GetFlag(ctx, o.root, "alpha", "qa", "banner"); return err },
			func() error {
				_, _, err := e.svc.Flags.PutFlag(ctx, o.root, "alpha", "qa", "banner", []byte(bannerDef), noPre)
				return err
			},
			func() error {
				_, err := e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "qa", "banner", noPre)
				return err
			},
		} {
			wantExact(t, op(), apierror.NotFound(`project "alpha" has no environment "qa"`))
		}
		if !before.equal(e.snap(t, flagCol(o, "alpha"))) {
			t.Fatal("a refused flag write changed the store")
		}
		feed.expectQuiet(t, e, o)

		// Delete: the rest stays.
		fs, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "theme", noPre)
		if err != nil || fs.Version != 4 {
			t.Fatalf("DeleteFlag = %+v %v", fs, err)
		}
		feed.expect(t, ref, 4)
		want := `{"$evaluators":{"isPro":{"==":[{"var":"plan"},"pro"]}},"$schema":"https://flagd.dev/schema/v0/flags.json",` +
			`"flags":{"banner":{"defaultVariant":"on","state":"DISABLED","variants":{"off":false,"on":true}},` +
			`"new-checkout":{"defaultVariant":"off","metadata":{"owner":"ana"},"state":"ENABLED","targeting":{"if":[{"$ref":"isPro"},"on",null]},"variants":{"off":false,"on":true}}},` +
			`"metadata":{"team":"payments"}}`
		if got := e.flagSet(t, o, "alpha", "staging"); string(got.Document) != want || got.Version != 4 {
			t.Fatalf("after DeleteFlag: %d %s\nwant %s", got.Version, got.Document, want)
		}
		_, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "theme", noPre)
		wantErr(t, err, 404, apierror.CodeFlagNotFound, `"theme"`)

		// Deleting every flag leaves an empty set with its evaluators.
		for _, k := range []string{"banner", "new-checkout"} {
			if _, err := e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", k, noPre); err != nil {
				t.Fatal(err)
			}
		}
		feed.expect(t, ref, 5)
		feed.expect(t, ref, 6)
		if got := e.flagSet(t, o, "alpha", "staging"); got.Version != 6 ||
			string(got.Document) != `{"$evaluators":{"isPro":{"==":[{"var":"plan"},"pro"]}},"$schema":"https://flagd.dev/schema/v0/flags.json","flags":{},"metadata":{"team":"payments"}}` {
			t.Fatalf("emptied set = %d %s", got.Version, got.Document)
		}

		// PutFlag into an environment never written creates its set.
		fs, created, err = e.svc.Flags.PutFlag(ctx, o.root, "alpha", "development", "theme",
			[]byte(`{"state":"ENABLED","variants":{"x":"x"},"defaultVariant":"x"}`), noPre)
		if err != nil || !created || fs.Version != 1 || string(fs.Document) != `{"flags":{"theme":{"defaultVariant":"x","state":"ENABLED","variants":{"x":"x"}}}}` {
			t.Fatalf("PutFlag in a new environment = %v %+v %v", created, fs, err)
		}
		feed.expect(t, o.ref("alpha", "development"), 1)
		// A flag referencing an evaluator that only another environment has
		// is refused.
		_, _, err = e.svc.Flags.PutFlag(ctx, o.root, "alpha", "development", "banner", []byte(bannerDef), noPre)
		wantErr(t, err, 400, apierror.CodeInvalidRequest, `flag "banner"`, `$ref "isPro" is not defined`)
		feed.expectQuiet(t, e, o)
	})
}

// Every write increments the version by one; a write under a stale
// precondition is refused with 412 and writes nothing.
func TestFlagSetPreconditions(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		feed := e.flagFeed(t)
		ref := o.ref("alpha", "staging")
		// If-Match 0 holds for a set never written.
		if fs, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(checkoutDoc), ifMatch(0)); err != nil || fs.Version != 1 {
			t.Fatalf("PutFlagSet(If-Match 0) = %+v %v", fs, err)
		}
		feed.expect(t, ref, 1)

		before := e.snap(t, flagCol(o, "alpha"))
		stale := func(want int64) string {
			return fmt.Sprintf("the flag set is at version 1, not %d; fetch it again and retry", want)
		}
		for _, v := range []int64{0, 2, 7} {
			_, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(`{"flags":{}}`), ifMatch(v))
			wantExact(t, err, apierror.New(412, apierror.CodePreconditionFailed, stale(v)))
			_, _, err = e.svc.Flags.PutFlag(ctx, o.root, "alpha", "staging", "banner", []byte(bannerDef), ifMatch(v))
			wantExact(t, err, apierror.New(412, apierror.CodePreconditionFailed, stale(v)))
			_, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "theme", ifMatch(v))
			wantExact(t, err, apierror.New(412, apierror.CodePreconditionFailed, stale(v)))
			// The precondition is checked before the flag's existence.
			_, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "nope", ifMatch(v))
			wantErr(t, err, 412, apierror.CodePreconditionFailed)
		}
		if !before.equal(e.snap(t, flagCol(o, "alpha"))) {
			t.Fatal("a write with a stale precondition changed the store")
		}
		feed.expectQuiet(t, e, o)

		// Current preconditions succeed, each write adding exactly one.
		fs, _, err := e.svc.Flags.PutFlag(ctx, o.root, "alpha", "staging", "banner", []byte(bannerDef), ifMatch(1))
		if err != nil || fs.Version != 2 {
			t.Fatalf("PutFlag(If-Match 1) = %+v %v", fs, err)
		}
		feed.expect(t, ref, 2)
		if fs, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "banner", ifMatch(2)); err != nil || fs.Version != 3 {
			t.Fatalf("DeleteFlag(If-Match 2) = %+v %v", fs, err)
		}
		feed.expect(t, ref, 3)
		if fs, err = e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(checkoutDoc), ifMatch(3)); err != nil || fs.Version != 4 {
			t.Fatalf("PutFlagSet(If-Match 3) = %+v %v", fs, err)
		}
		feed.expect(t, ref, 4)
		_, err = e.svc.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "nope", ifMatch(4))
		wantErr(t, err, 404, apierror.CodeFlagNotFound)
		// Versions are per environment.
		if fs, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(checkoutDoc), ifMatch(0)); err != nil || fs.Version != 1 {
			t.Fatalf("PutFlagSet(production) = %+v %v", fs, err)
		}
		feed.expect(t, o.ref("alpha", "production"), 1)

		// Of writers racing with the same precondition, exactly one wins.
		const racers = 4
		var wg sync.WaitGroup
		results := make(chan error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				for range 5 {
					_, _, err = e.svc.Flags.PutFlag(ctx, o.root, "alpha", "staging", fmt.Sprintf("racer-%d", i),
						[]byte(`{"state":"ENABLED","variants":{"x":"x"},"defaultVariant":"x"}`), ifMatch(4))
					if !errors.Is(err, store.ErrConflict) {
						break
					}
				}
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		wins := 0
		for err := range results {
			if err == nil {
				wins++
				continue
			}
			wantErr(t, err, 412, apierror.CodePreconditionFailed, "at version 5, not 4")
		}
		if fs := e.flagSet(t, o, "alpha", "staging"); wins != 1 || fs.Version != 5 {
			t.Fatalf("%d racers won, version %d; want 1 and 5", wins, fs.Version)
		}

		// Writers without a precondition all land: no update is lost.
		const workers, each = 4, 3
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					var err error
					for range 5 {
						_, _, err = e.svc.Flags.PutFlag(ctx, o.root, "alpha", "staging", fmt.Sprintf("w%d-%d", w, i),
							[]byte(`{"state":"ENABLED","variants":{"x":"x"},"defaultVariant":"x"}`), noPre)
						if !errors.Is(err, store.ErrConflict) {
							break
						}
					}
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		fs = e.flagSet(t, o, "alpha", "staging")
		if fs.Version != 5+workers*each {
			t.Fatalf("version %d after %d writes from 5", fs.Version, workers*each)
		}
		for w := range workers {
			for i := range each {
				if _, _, err := e.svc.Flags.GetFlag(ctx, o.root, "alpha", "staging", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					t.Fatalf("flag w%d-%d lost: %v", w, i, err)
				}
			}
		}
	})
}

// Flag sets follow the admin authorization rules: READ to read, WRITE to
// write, admin keys only, project keys only on their project, another
// organization's projects invisible.
func TestFlagSetAuthorization(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(checkoutDoc), noPre); err != nil {
			t.Fatal(err)
		}
		live := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "staging"})
		test := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
		readOnly := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin", Permissions: []string{"READ"}})
		writeOnly := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin", Permissions: []string{"WRITE"}})
		betaAdmin := e.mint(t, o.root, "beta", keys.CreateInput{Type: "admin"})
		alphaAdmin := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"})
		other := e.newOrg(t)
		otherAlpha := e.newOrg(t, "alpha")
		feed := e.flagFeed(t)

		type op struct {
			name  string
			write bool
			run   func(c *authz.Principal) error
		}
		ops := []op{
			{"GetFlagSet", false, func(c *authz.Principal) error {
				_, err := e.svc.Flags.GetFlagSet(ctx, c, "alpha", "staging")
				return err
			}},
			{"GetFlag", false, func(c *authz.Principal) error {
				_, _, err := e.svc.Flags.GetFlag(ctx, c, "alpha", "staging", "theme")
				return err
			}},
			{"PutFlag", true, func(c *authz.Principal) error {
				_, _, err := e.svc.Flags.PutFlag(ctx, c, "alpha", "staging", "banner", []byte(bannerDef), noPre)
				return err
			}},
			{"DeleteFlag", true, func(c *authz.Principal) error {
				_, err := e.svc.Flags.DeleteFlag(ctx, c, "alpha", "staging", "theme", noPre)
				return err
			}},
			{"PutFlagSet", true, func(c *authz.Principal) error {
				_, err := e.svc.Flags.PutFlagSet(ctx, c, "alpha", "staging", []byte(`{"flags":{}}`), noPre)
				return err
			}},
		}
		lacksRead := apierror.Forbidden("This key lacks the READ permission")
		otherProject := apierror.Forbidden(`This key belongs to project "beta" and cannot access project "alpha"`)
		missing := apierror.NotFound(`project "alpha" not found`)
		before := e.snap(t, flagCol(o, "alpha"))
		for _, c := range []struct {
			name        string
			caller      *authz.Principal
			read, write *apierror.Error // nil: allowed (writes are not tried)
		}{
			{"no key", nil, apierror.InvalidKey, apierror.InvalidKey},
			{"live", as(live.Record), apierror.WrongKeyType, apierror.WrongKeyType},
			{"test", as(test.Record), apierror.WrongKeyType, apierror.WrongKeyType},
			{"read-only admin", as(readOnly.Record), nil, apierror.ReadOnlyKey},
			{"write-only admin", as(writeOnly.Record), lacksRead, nil},
			{"other project's admin", as(betaAdmin.Record), otherProject, otherProject},
			{"other organization", other.root, missing, missing},
		} {
			for _, op := range ops {
				want := c.read
				if op.write {
					want = c.write
				}
				if want == nil {
					if !op.write {
						if err := op.run(c.caller); err != nil {
							t.Errorf("%s %s: %v", c.name, op.name, err)
						}
					}
					continue
				}
				err := op.run(c.caller)
				if err == nil {
					t.Fatalf("%s %s: allowed", c.name, op.name)
				}
				if ae := apiErr(t, err); ae.Status != want.Status || ae.Code != want.Code || ae.Message != want.Message {
					t.Errorf("%s %s: %v, want %v", c.name, op.name, ae, want)
				}
			}
		}
		if !before.equal(e.snap(t, flagCol(o, "alpha"))) {
			t.Fatal("a refused caller changed the store")
		}
		feed.expectQuiet(t, e, o)

		// Another organization's own "alpha" is its own: empty, and writes
		// there leave ours alone.
		fs, err := e.svc.Flags.GetFlagSet(ctx, otherAlpha.root, "alpha", "staging")
		if err != nil || fs.Version != 0 || string(fs.Document) != `{"flags":{}}` {
			t.Fatalf("other organization's alpha = %+v %v", fs, err)
		}
		if _, err := e.svc.Flags.PutFlagSet(ctx, otherAlpha.root, "alpha", "staging", []byte(`{"flags":{}}`), noPre); err != nil {
			t.Fatal(err)
		}
		if ev := feed.next(t); ev.payload != otherAlpha.ref("alpha", "staging").String() {
			t.Fatalf("published %q", ev.payload)
		}
		if fs := e.flagSet(t, o, "alpha", "staging"); fs.Version != 1 || string(fs.Document) != canonical(t, checkoutDoc) {
			t.Fatalf("our alpha after theirs was written: %d %s", fs.Version, fs.Document)
		}

		// What the project's own admin keys may do.
		for _, op := range ops {
			if err := op.run(as(alphaAdmin.Record)); err != nil {
				t.Errorf("project admin %s: %v", op.name, err)
			}
		}
		if _, _, err := e.svc.Flags.PutFlag(ctx, as(writeOnly.Record), "alpha", "staging", "theme", []byte(`{"state":"ENABLED","variants":{"x":"x"},"defaultVariant":"x"}`), noPre); err != nil {
			t.Errorf("write-only admin PutFlag: %v", err)
		}
	})
}

// A failed commit writes nothing and publishes nothing.
func TestFlagWritesNothingHalfWritten(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(checkoutDoc), noPre); err != nil {
			t.Fatal(err)
		}
		feed := e.flagFeed(t)
		bad := e.faulty(failOn("put", "flag-sets/"))
		cols := []string{flagCol(o, "alpha")}
		before := e.snap(t, cols...)
		for name, op := range map[string]func() error{
			"PutFlagSet": func() error {
				_, err := bad.Flags.PutFlagSet(ctx, o.root, "alpha", "staging", []byte(`{"flags":{}}`), noPre)
				return err
			},
			"PutFlag": func() error {
				_, _, err := bad.Flags.PutFlag(ctx, o.root, "alpha", "staging", "banner", []byte(bannerDef), noPre)
				return err
			},
			"DeleteFlag": func() error {
				_, err := bad.Flags.DeleteFlag(ctx, o.root, "alpha", "staging", "theme", noPre)
				return err
			},
		} {
			if err := op(); !errors.Is(err, errInjected) {
				t.Fatalf("%s = %v, want the injected failure", name, err)
			}
		}
		if !before.equal(e.snap(t, cols...)) {
			t.Fatal("a failed flag write changed the store")
		}
		feed.expectQuiet(t, e, o)
	})
}

// DeleteProject takes the project's flag sets and testing sessions with it,
// announces each environment on TopicFlags, and leaves other projects be.
func TestDeleteProjectDropsFlagsAndSessions(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		if _, err := e.svc.Tenancy.CreateEnvironment(ctx, o.root, "alpha", tenancy.CreateEnvironmentInput{Slug: "qa"}); err != nil {
			t.Fatal(err)
		}
		for _, pe := range [][2]string{{"alpha", "staging"}, {"alpha", "qa"}, {"beta", "staging"}} {
			if _, err := e.svc.Flags.PutFlagSet(ctx, o.root, pe[0], pe[1], []byte(checkoutDoc), noPre); err != nil {
				t.Fatal(err)
			}
		}
		alphaTest := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "test", Environment: "staging"})
		betaTest := e.mint(t, o.root, "beta", keys.CreateInput{Type: "test", Environment: "staging"})
		doomed, err := e.svc.Flags.CreateSession(ctx, as(alphaTest.Record), flags.CreateSessionInput{})
		if err != nil {
			t.Fatal(err)
		}
		kept, err := e.svc.Flags.CreateSession(ctx, as(betaTest.Record), flags.CreateSessionInput{})
		if err != nil {
			t.Fatal(err)
		}
		// Another organization's project of the same slug keeps its set and
		// sessions.
		other := e.newOrg(t, "alpha")
		if _, err := e.svc.Flags.PutFlagSet(ctx, other.root, "alpha", "staging", []byte(checkoutDoc), noPre); err != nil {
			t.Fatal(err)
		}
		theirs, err := e.svc.Flags.CreateSession(ctx, other.root, flags.CreateSessionInput{Project: "alpha", Environment: "staging"})
		if err != nil {
			t.Fatal(err)
		}
		feed := e.flagFeed(t)

		// A failure half-way deletes nothing and announces nothing.
		bad := e.faulty(failOn("delete", "testing-sessions"))
		cols := []string{flagCol(o, "alpha"), flagCol(o, "beta"), "testing-sessions/" + o.id, "testing-sessions/" + other.id, "projects/" + o.id}
		before := e.snap(t, cols...)
		if err := bad.DeleteProject(ctx, o.root, "alpha"); !errors.Is(err, errInjected) {
			t.Fatalf("DeleteProject = %v, want the injected failure", err)
		}
		if !before.equal(e.snap(t, cols...)) {
			t.Fatal("a failed DeleteProject changed the store")
		}
		feed.expectQuiet(t, e, o)

		if err := e.svc.DeleteProject(ctx, o.root, "alpha"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for range 4 {
			ev := feed.next(t)
			got = append(got, ev.payload)
			wantErr(t, ev.err, 404, apierror.CodeNotFound, `project "alpha" not found`)
		}
		slices.Sort(got)
		var want []string
		for _, env := range []string{"development", "production", "qa", "staging"} {
			want = append(want, o.ref("alpha", env).String())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("DeleteProject published %q, want %q", got, want)
		}
		feed.expectQuiet(t, e, o)
		if ids := e.ids(t, flagCol(o, "alpha")); len(ids) != 0 {
			t.Fatalf("flag sets survived their project: %q", ids)
		}
		if ids := e.ids(t, "testing-sessions/"+o.id); !slices.Equal(ids, []string{kept.ID}) {
			t.Fatalf("sessions after DeleteProject = %q, want %q (not %s)", ids, kept.ID, doomed.ID)
		}
		if ids := e.ids(t, "testing-sessions/"+other.id); !slices.Equal(ids, []string{theirs.ID}) {
			t.Fatalf("the other organization's sessions after DeleteProject = %q, want %q", ids, theirs.ID)
		}
		if fs, err := e.svc.Flags.GetFlagSet(ctx, other.root, "alpha", "staging"); err != nil || fs.Version != 1 {
			t.Fatalf("the other organization's alpha/staging = %+v, %v", fs, err)
		}
		if fs := e.flagSet(t, o, "beta", "staging"); fs.Version != 1 {
			t.Fatalf("beta's set = %d", fs.Version)
		}
		if _, err := e.svc.Flags.UseSession(ctx, as(betaTest.Record), kept.ID, refOf(as(betaTest.Record), "beta", "staging")); err != nil {
			t.Fatalf("beta's session: %v", err)
		}

		// A project created again with the slug starts empty.
		if _, _, err := e.svc.Tenancy.CreateProject(ctx, o.root, tenancy.CreateProjectInput{Slug: "alpha"}); err != nil {
			t.Fatal(err)
		}
		if fs := e.flagSet(t, o, "alpha", "staging"); fs.Version != 0 || string(fs.Document) != `{"flags":{}}` {
			t.Fatalf("recreated project's set = %d %s", fs.Version, fs.Document)
		}
	})
}

package admin_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/evaluator"
)

// A document with targeting that the contexts below exercise: a rule on
// attributes, a fractional split and a semver comparison.
func historyDoc(threshold int, split int) string {
	return fmt.Sprintf(`{"flags":{
	"banner":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off",
		"targeting":{"if":[{">=":[{"var":"age"},%d]},"on","off"]}},
	"color":{"state":"ENABLED","variants":{"red":"red","blue":"blue"},"defaultVariant":"red",
		"targeting":{"fractional":[{"var":"targetingKey"},["red",%d],["blue",%d]]}},
	"new-api":{"state":"ENABLED","variants":{"yes":true,"no":false},"defaultVariant":"no",
		"targeting":{"if":[{"sem_ver":[{"var":"version"},">=","2.%d.0"]},"yes","no"]}}}}`, threshold, split, 100-split, threshold%10)
}

func randomContexts(n int) []map[string]any {
	rng := rand.New(rand.NewPCG(3, 4))
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{
			"targetingKey": fmt.Sprintf("user-%d", rng.IntN(1_000_000)),
			"age":          float64(rng.IntN(100)),
			"version":      fmt.Sprintf("%d.%d.%d", 1+rng.IntN(3), rng.IntN(10), rng.IntN(10)),
		}
	}
	return out
}

// normalized is a document as the evaluator writes it (stored documents
// escape <, > and & as JSON may).
func normalized(t *testing.T, doc []byte) []byte {
	t.Helper()
	fs, err := evaluator.Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	return fs.Document()
}

func answers(t *testing.T, doc []byte, ctxs []map[string]any) [][]evaluator.Result {
	t.Helper()
	fs, err := evaluator.Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]evaluator.Result, len(ctxs))
	for i, c := range ctxs {
		out[i] = fs.EvaluateAll(c, nil)
	}
	return out
}

// Every version is kept with its author; a diff names what changed per
// flag; a revert writes the old document as a new version, honours
// If-Match, and answers 1,000 random contexts exactly as the old version
// did.
func TestFlagHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		put := func(doc string) *flags.FlagSet {
			t.Helper()
			fs, err := e.svc.Flags.PutFlagSet(ctx, o.root, "alpha", "production", []byte(doc), flags.Precondition{})
			if err != nil {
				t.Fatal(err)
			}
			return fs
		}
		ctxs := randomContexts(1000)
		v1 := put(historyDoc(18, 50))
		old := answers(t, v1.Document, ctxs)
		put(historyDoc(30, 20))
		if _, _, err := e.svc.Flags.PutFlag(ctx, o.root, "alpha", "production", "extra",
			[]byte(`{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a"}`), flags.Precondition{}); err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(answers(t, e.flagSet(t, o, "alpha", "production").Document, ctxs), old) {
			t.Fatal("the later versions answer as the first: the test would prove nothing")
		}

		vs, err := e.svc.Flags.ListVersions(ctx, o.root, "alpha", "production", 0, 0)
		if err != nil || len(vs) != 3 || vs[0].Version != 3 || vs[2].Version != 1 || vs[0].Document != nil {
			t.Fatalf("versions: %+v %v", vs, err)
		}
		if vs[0].Author.Type != "api_key" || vs[0].Author.ID != o.root.ID {
			t.Fatalf("author: %+v", vs[0].Author)
		}
		if older, _ := e.svc.Flags.ListVersions(ctx, o.root, "alpha", "production", 3, 1); len(older) != 1 || older[0].Version != 2 {
			t.Fatalf("before 3, one: %+v", older)
		}

		d, err := e.svc.Flags.DiffVersions(ctx, o.root, "alpha", "production", 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := []flags.FlagChange{
			{Key: "banner", Change: "changed", Fields: []string{"targeting"}},
			{Key: "color", Change: "changed", Fields: []string{"targeting"}},
			{Key: "extra", Change: "added"},
			{Key: "new-api", Change: "changed", Fields: []string{"targeting"}},
		}
		if !reflect.DeepEqual(d.Flags, want) {
			t.Fatalf("diff 1..3: %+v", d.Flags)
		}
		if back, _ := e.svc.Flags.DiffVersions(ctx, o.root, "alpha", "production", 3, 2); !reflect.DeepEqual(back.Flags, []flags.FlagChange{{Key: "extra", Change: "removed"}}) {
			t.Fatalf("diff 3..2: %+v", back.Flags)
		}

		// If-Match against a version that is not the current one: refused.
		_, err = e.svc.Flags.Revert(ctx, o.root, "alpha", "production", 1, flags.Precondition{Version: 2, Set: true})
		var ae *apierror.Error
		if !errors.As(err, &ae) || ae.Status != 412 {
			t.Fatalf("revert with a stale If-Match: %v", err)
		}
		fs, err := e.svc.Flags.Revert(ctx, o.root, "alpha", "production", 1, flags.Precondition{Version: 3, Set: true})
		if err != nil || fs.Version != 4 {
			t.Fatalf("revert: %+v %v", fs, err)
		}
		if got := answers(t, e.flagSet(t, o, "alpha", "production").Document, ctxs); !reflect.DeepEqual(got, old) {
			t.Fatal("after the revert, the set answers otherwise than version 1 did")
		}
		v4, err := e.svc.Flags.GetVersion(ctx, o.root, "alpha", "production", 4)
		if err != nil || v4.RevertOf != 1 || string(normalized(t, v4.Document)) != string(normalized(t, v1.Document)) {
			t.Fatalf("version 4: %+v %v", v4, err)
		}
		entries := auditLog(t, e, o.root, audit.Query{Action: string(audit.FlagSetReverted)})
		if len(entries) != 1 || *entries[0].FlagSet != (audit.Versions{Before: 3, After: 4, RevertOf: 1}) {
			t.Fatalf("the revert's entry: %+v", entries)
		}
		for _, n := range []int64{0, 9} {
			if _, err := e.svc.Flags.GetVersion(ctx, o.root, "alpha", "production", n); !errors.As(err, &ae) || ae.Status != 404 {
				t.Fatalf("version %d: %v", n, err)
			}
			if _, err := e.svc.Flags.Revert(ctx, o.root, "alpha", "production", n, flags.Precondition{}); err == nil {
				t.Fatalf("revert to %d was accepted", n)
			}
		}
	})
}

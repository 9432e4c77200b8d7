package evaluator

import (
	"bytes"
	"testing"
)

// FuzzCompile checks that Compile never panics, whatever the input, and that
// any set it accepts evaluates without panicking and re-exports to a document
// that compiles to the same canonical form.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		sampleDoc,
		``,
		`{}`,
		`{"flags": {}}`,
		`{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}`,
		`{"flags": {"f": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "targeting": {"fractional": [{"var": "k"}, ["a", 1], [{"var": "v"}, {"var": "w"}]]}}}}`,
		`{"flags": {"f": {"state": "ENABLED", "variants": {"true": 1, "false": 0}, "targeting": {"sem_ver": [{"var": "v"}, "^", "1.2"]}}}}`,
		`{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"reduce": [{"var": "l"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}}}}`,
		`{"$evaluators": {"a": {"!": {"$ref": "b"}}, "b": {"!!": {"$ref": "a"}}}, "flags": {}}`,
		`{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"substr": [{"var": "s"}, -3, -1]}}}}`,
		`{"flags": {"f": {"state": "ENABLED", "variants": {"1": 1}, "targeting": {"cat": [{"var": "$flagd"}, [1, [2]], {"missing_some": [1, ["a", "b"]]}]}}}}`,
		`{"flags": {"a": {}, "a": {}}}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	contexts := []map[string]any{
		nil,
		{"targetingKey": "user-1", "k": "key", "v": "1.2.3", "s": "héllo", "l": []any{1.0, "2", nil}, "w": 3.0},
		{"targetingKey": 7.0, "v": 1.5, "l": map[string]any{"x": []any{}}, "w": -1.0, "a": ""},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := CompileWithOptions(data, Options{TolerateTargetingErrors: len(data)%2 == 0})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for _, key := range fs.Keys() {
			for _, ctx := range contexts {
				r := fs.Evaluate(key, ctx)
				_ = r.Typed(TypeString, "fallback")
			}
		}
		doc := fs.Document()
		again, err := CompileWithOptions(doc, Options{TolerateTargetingErrors: true})
		if err != nil {
			t.Fatalf("re-import of %s failed: %v", doc, err)
		}
		if !bytes.Equal(again.Document(), doc) {
			t.Fatalf("Document is not a fixed point:\n%s\n%s", doc, again.Document())
		}
	})
}

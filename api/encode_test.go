package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/evaluator"
)

// The hand-assembled answer must be exactly what encoding/json writes, for
// every kind of value, metadata and awkward key.
func TestAppendEvaluationMatchesEncodingJSON(t *testing.T) {
	keys := []string{"plain", "with space", `q"uote`, `back\slash`, "tab\there", "nl\nx", "ctl\x01x", "<html>&amp;",
		"ünïcödé", "emoji 🚩", "sep\u2028\u2029", "del\x7f"}
	values := []string{`true`, `false`, `0`, `-1.5`, `1e21`, `"s<&>"`, `"line\nbreak"`, `{"a":[1,2,{"b":null}]}`, `[]`}
	n := 0
	for _, k := range keys {
		for _, v := range values {
			doc := fmt.Sprintf(`{"metadata":{"team":%s},"flags":{%s:{"state":"ENABLED","variants":{%s:%s,"other":%s},"defaultVariant":%s,"metadata":{"k<":1.25,"b":true}}}}`,
				jsonString("w<e>b&"+k), jsonString(k), jsonString(k+"-v"), v, v, jsonString(k+"-v"))
			fs, err := evaluator.Compile([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			o := evaluation.Outcome{Result: fs.Evaluate(k, nil)}
			fast, ok := appendEvaluation(nil, o)
			if !ok {
				t.Fatalf("%q %s: fast path refused", k, v)
			}
			slow, _ := json.Marshal(viewOutcome(o))
			if string(fast) != string(slow) {
				t.Fatalf("%q %s:\nfast %s\nslow %s", k, v, fast, slow)
			}
			n++
		}
	}
	// Where it cannot, it says so and the caller encodes.
	fs, _ := evaluator.Compile([]byte(`{"flags":{"off":{"state":"DISABLED","variants":{"a":1},"defaultVariant":"a"}}}`))
	o := evaluation.Outcome{Result: fs.Evaluate("off", nil)}
	if fast, ok := appendEvaluation(nil, o); !ok || !strings.Contains(string(fast), `"value":null,"reason":"DISABLED"`) {
		t.Fatalf("disabled: %s %v", fast, ok)
	}
	if _, ok := appendEvaluation(nil, evaluation.Outcome{Result: fs.Evaluate("missing", nil)}); ok {
		t.Fatal("an error result took the fast path")
	}
	if _, ok := appendEvaluation(nil, evaluation.Outcome{Result: evaluator.Result{Flag: "x", Value: 1.0}, Overridden: true}); ok {
		t.Fatal("an override took the fast path")
	}
	t.Logf("%d answers compared", n)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

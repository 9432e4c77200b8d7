package api

import (
	"encoding/json"
	"fmt"
	"net/http"
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
	// Every reason a successful evaluation can have.
	fs, err := evaluator.Compile([]byte(`{"flags":{
		"t<>":{"state":"ENABLED","variants":{"a&b":"x","d":"y"},"defaultVariant":"d","targeting":{"if":[{"==":[{"var":"k"},1]},"a&b",null]}},
		"s":{"state":"ENABLED","variants":{"1":1,"2":2},"targeting":{"fractional":[["1",50],["2",50]]}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[evaluator.Reason]bool{}
	for _, ctx := range []map[string]any{nil, {"k": 1.0, "targetingKey": "u"}} {
		for _, k := range fs.Keys() {
			o := evaluation.Outcome{Result: fs.Evaluate(k, ctx)}
			fast, ok := appendEvaluation(nil, o)
			slow, _ := json.Marshal(viewOutcome(o))
			if !ok || string(fast) != string(slow) {
				t.Fatalf("%s %s: ok %v\nfast %s\nslow %s", k, o.Reason, ok, fast, slow)
			}
			reasons[o.Reason] = true
			n++
		}
	}
	if len(reasons) != 3 { // TARGETING_MATCH, DEFAULT, SPLIT
		t.Errorf("reasons covered: %v", reasons)
	}
	// Where it cannot, it says so and the caller encodes.
	fs, _ = evaluator.Compile([]byte(`{"flags":{"off":{"state":"DISABLED","variants":{"a":1},"defaultVariant":"a"}}}`))
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

// BenchmarkWriteEvaluation measures the hot path of POST /v1/evaluate after
// evaluation: assembling one answer (into a reused buffer, "append") and
// sending it with its headers ("write").
func BenchmarkWriteEvaluation(b *testing.B) {
	fs, err := evaluator.Compile([]byte(`{"metadata":{"team":"checkout"},"flags":{"new-checkout":{
		"state":"ENABLED","variants":{"on":{"color":"blue","steps":3},"off":{"color":"grey","steps":5}},"defaultVariant":"off",
		"targeting":{"if":[{"==":[{"var":"plan"},"pro"]},"on",null]},"metadata":{"owner":"payments"}}}}`))
	if err != nil {
		b.Fatal(err)
	}
	o := evaluation.Outcome{Result: fs.Evaluate("new-checkout", map[string]any{"plan": "pro"})}
	if o.Reason != evaluator.ReasonTargetingMatch {
		b.Fatalf("%+v", o)
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			var ok bool
			if buf, ok = appendEvaluation(buf[:0], o); !ok {
				b.Fatal("fast path refused")
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		w := &discardResponse{header: http.Header{}}
		for b.Loop() {
			// A request's own storage, as Evaluate allocates it.
			writeEvaluation(w, o, new(evalCall))
		}
	})
}

// discardResponse is an http.ResponseWriter that keeps nothing, so the
// benchmark measures the answer, not a recorder.
type discardResponse struct{ header http.Header }

func (d *discardResponse) Header() http.Header         { return d.header }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(int)             {}

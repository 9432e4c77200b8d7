package api

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/jsonbody"
)

// evalBodies are bodies of the three evaluation shapes that clients send,
// which the scanner must take itself.
var evalBodies = []string{
	`{"flag":"static-flag","context":{"targetingKey":"user-42"}}`,
	`{"flag":"targeted-flag","context":{"targetingKey":"user-42","plan":"pro","country":"DE","version":"2.3.1","a1":1,"a2":2.5,"a3":-3e2}}`,
	` { "flag" : "f" , "context" : { "nested" : { "list" : [ 1 , "x" , true , false , null , [ ] , { } ] } } } ` + "\n",
	`{"flag":"f"}`,
	`{"context":{"targetingKey":"user-1","email":"a@example.com","name":"Zoë"}}`,
	`{"flags":["a","b"],"context":{"targetingKey":"u"}}`,
	`{"flags":[],"context":null}`,
	`{}`,
}

// scanAll runs scanEvaluation and encoding/json (as decodeEvaluation's
// fallback runs it) on body for each request type, and fails if the
// scanner took a body with another outcome than encoding/json's. It
// returns how many types the scanner took.
func scanAll(t *testing.T, body []byte) int {
	t.Helper()
	took := 0
	check := func(fast, ref any) {
		target, _ := evalTargetOf(fast)
		if !scanEvaluation(body, target) {
			if !reflect.ValueOf(fast).Elem().IsZero() {
				t.Fatalf("%q: the scanner gave up after writing %+v", body, fast)
			}
			return
		}
		took++
		if err := jsonbody.Strict(body, ref); err != nil {
			t.Fatalf("%q: the scanner took it as %+v; encoding/json refuses it: %v", body, fast, err)
		}
		if !reflect.DeepEqual(fast, ref) {
			a, _ := json.Marshal(fast)
			b, _ := json.Marshal(ref)
			t.Fatalf("%q: the scanner read %s, encoding/json %s", body, a, b)
		}
	}
	check(&evaluateRequest{}, &evaluateRequest{})
	check(&batchRequest{}, &batchRequest{})
	check(&ofrepRequest{}, &ofrepRequest{})
	scanRaw(t, body)
	return took
}

// scanRaw checks the scanner's raw-context mode against its decoding one
// on body: it takes the same bodies, but for a top-level targetingKey that
// is not a string, which it leaves to the decoding path; and contextOf
// makes of the raw context what the decoding path and evaluationContext
// make of it.
func scanRaw(t *testing.T, body []byte) {
	t.Helper()
	var eager, lazy evaluateRequest
	eagerTook := scanEvaluation(body, evalTarget{flag: &eager.Flag, context: &eager.Context})
	var raw []byte
	lazyTook := scanEvaluation(body, evalTarget{flag: &lazy.Flag, context: &lazy.Context, rawContext: &raw})
	if lazy.Context != nil {
		t.Fatalf("%q: the raw mode decoded the context", body)
	}
	switch {
	case lazyTook && !eagerTook:
		t.Fatalf("%q: the raw mode took a body the decoding one refuses", body)
	case !lazyTook && eagerTook:
		if tk, ok := eager.Context["targetingKey"]; !ok || reflect.TypeOf(tk) == reflect.TypeFor[string]() {
			t.Fatalf("%q: the raw mode refused a body the decoding one takes", body)
		}
	case lazyTook:
		want, err := evaluationContext(eager.Context)
		if err != nil {
			t.Fatalf("%q: the raw mode took a context evaluationContext refuses: %v", body, err)
		}
		if got := contextOf(raw); lazy.Flag != eager.Flag || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: raw mode read %q %v, the decoding one %q %v", body, lazy.Flag, got, eager.Flag, want)
		}
	}
}

func TestScanEvaluationTakesTheCommonBodies(t *testing.T) {
	for _, body := range evalBodies {
		if scanAll(t, []byte(body)) == 0 {
			t.Errorf("%q: the scanner took it for no request type", body)
		}
	}
	// What it leaves to encoding/json, which answers (or refuses) them.
	for _, body := range []string{
		`{"flag":"a\"b"}`, `{"Flag":"f"}`, `{"flag":null}`, `{"flag":"f","extra":1}`,
		`{"context":{"a":1},"context":{"b":2}}`, `{"flag":"f"} x`, `{"flag":"f",}`, `{"n":01}`,
		`{"context":{"n":1e999}}`, "{\"flag\":\"\xff\"}", `[]`, `{"flags":[1]}`,
		`{"context":` + strings.Repeat(`{"a":`, maxScanDepth+1) + `1` + strings.Repeat(`}`, maxScanDepth+1) + `}`,
	} {
		if n := scanAll(t, []byte(body)); n != 0 {
			t.Errorf("%q: the scanner took it for %d request types", body, n)
		}
	}
}

// FuzzScanEvaluation: whatever the body, a body the scanner takes decodes
// to exactly what encoding/json makes of it, and one it gives up on is
// left untouched for encoding/json.
func FuzzScanEvaluation(f *testing.F) {
	for _, b := range evalBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"flag":"a\u00e9","context":{"k":"\ud83d\ude00"}}`))
	f.Add([]byte(`{"context":{"x":-0.0e+1,"y":[{"z":[]}]}}`))
	f.Add([]byte(`{"flag":"f","context":{"targetingKey":1,"n":{"targetingKey":2}}}`))
	f.Add([]byte(`{"context":{"targetingKey":"a","targetingKey":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		scanAll(t, body)
	})
}

// BenchmarkDecodeEvaluation measures decodeEvaluation on the load
// benchmark's (c) and (d) bodies, through the scanner and through
// encoding/json alone (the fallback, and what it replaced).
func BenchmarkDecodeEvaluation(b *testing.B) {
	for name, body := range map[string]string{"static": evalBodies[0], "targeting": evalBodies[1]} {
		for _, path := range []string{"scanner", "encoding-json"} {
			b.Run(name+"/"+path, func(b *testing.B) {
				r := httptest.NewRequest("POST", "/v1/evaluate", nil)
				r.ContentLength = int64(len(body))
				rd := strings.NewReader(body)
				b.ReportAllocs()
				for b.Loop() {
					rd.Reset(body)
					r.Body = io.NopCloser(rd)
					var in evaluateRequest
					var err error
					if path == "scanner" {
						err = decodeEvaluation(r, &in, false)
					} else {
						var raw []byte
						if raw, err = jsonbody.Read(r, MaxBodyBytes); err == nil {
							err = jsonbody.DecodeBytes(raw, &in, false, evaluationFieldErrors)
						}
					}
					if err != nil || in.Flag == "" {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

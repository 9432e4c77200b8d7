package evaluator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const sampleDoc = `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "metadata": {"team": "web", "version": 3},
  "$evaluators": {
    "is_staff": {"ends_with": [{"var": "email"}, "@example.com"]},
    "is_beta": {"or": [{"$ref": "is_staff"}, {"==": [{"var": "beta"}, true]}]}
  },
  "flags": {
    "static-bool": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
    "empty-targeting": {"state": "ENABLED", "variants": {"a": "A"}, "defaultVariant": "a", "targeting": {}},
    "color": {
      "state": "ENABLED",
      "variants": {"red": "#f00", "blue": "#00f"},
      "defaultVariant": "red",
      "targeting": {"if": [{"$ref": "is_beta"}, "blue", null]},
      "metadata": {"team": "design", "owner": "ann"}
    },
    "bool-rule": {
      "state": "ENABLED",
      "variants": {"true": "yes", "false": "no"},
      "defaultVariant": "false",
      "targeting": {"in": [{"var": "country"}, ["fr", "de"]]}
    },
    "numeric-rule": {
      "state": "ENABLED",
      "variants": {"1": 1, "2": 2.5},
      "defaultVariant": "1",
      "targeting": {"+": [{"var": "n"}, 1]}
    },
    "dynamic-name": {
      "state": "ENABLED",
      "variants": {"a": "A", "b": "B"},
      "defaultVariant": "a",
      "targeting": {"var": "pick"}
    },
    "off": {"state": "DISABLED", "variants": {"x": {"k": 1}}, "defaultVariant": "x"},
    "no-default": {"state": "ENABLED", "variants": {"s": 10, "b": 1000}, "targeting": {"if": [{"var": "big"}, "b"]}},
    "null-default": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": null},
    "objects": {"state": "ENABLED", "variants": {"list": [1, 2], "obj": {"a": {"b": true}}}, "defaultVariant": "obj"},
    "timed": {
      "state": "ENABLED",
      "variants": {"before": "before", "after": "after"},
      "defaultVariant": "before",
      "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, 1800000000]}, "after", "before"]}
    }
  }
}`

func mustCompile(t testing.TB, doc string, opts ...Options) *FlagSet {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	fs, err := CompileWithOptions([]byte(doc), o)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return fs
}

func TestEvaluateReasons(t *testing.T) {
	fs := mustCompile(t, sampleDoc, Options{Now: func() time.Time { return time.Unix(1900000000, 0) }})
	cases := []struct {
		flag    string
		ctx     map[string]any
		value   any
		variant string
		reason  Reason
		code    ErrorCode
	}{
		{"static-bool", nil, true, "on", ReasonStatic, ""},
		{"empty-targeting", nil, "A", "a", ReasonStatic, ""},
		{"color", map[string]any{"email": "bob@example.com"}, "#00f", "blue", ReasonTargetingMatch, ""},
		{"color", map[string]any{"beta": true}, "#00f", "blue", ReasonTargetingMatch, ""},
		{"color", map[string]any{"email": "bob@other.org"}, "#f00", "red", ReasonDefault, ""},
		{"color", nil, "#f00", "red", ReasonDefault, ""},
		{"bool-rule", map[string]any{"country": "fr"}, "yes", "true", ReasonTargetingMatch, ""},
		{"bool-rule", map[string]any{"country": "us"}, "no", "false", ReasonTargetingMatch, ""},
		{"numeric-rule", map[string]any{"n": 0.0}, 1.0, "1", ReasonTargetingMatch, ""},
		{"numeric-rule", map[string]any{"n": 5.0}, nil, "", ReasonError, ErrGeneral},
		{"dynamic-name", map[string]any{"pick": "b"}, "B", "b", ReasonTargetingMatch, ""},
		{"dynamic-name", map[string]any{"pick": "zzz"}, nil, "", ReasonError, ErrGeneral},
		{"dynamic-name", map[string]any{"pick": map[string]any{"a": 1.0}}, nil, "", ReasonError, ErrGeneral},
		{"dynamic-name", map[string]any{"pick": []any{"a"}}, nil, "", ReasonError, ErrGeneral},
		{"dynamic-name", map[string]any{}, "A", "a", ReasonDefault, ""},
		{"off", nil, nil, "", ReasonDisabled, ""},
		{"no-default", map[string]any{"big": true}, 1000.0, "b", ReasonTargetingMatch, ""},
		{"no-default", nil, nil, "", ReasonDefault, ""},
		{"null-default", nil, nil, "", ReasonDefault, ""},
		{"objects", nil, map[string]any{"a": map[string]any{"b": true}}, "obj", ReasonStatic, ""},
		{"timed", nil, "after", "after", ReasonTargetingMatch, ""},
		{"nope", nil, nil, "", ReasonError, ErrFlagNotFound},
	}
	for _, c := range cases {
		r := fs.Evaluate(c.flag, c.ctx)
		if !reflect.DeepEqual(r.Value, c.value) || r.Variant != c.variant || r.Reason != c.reason || r.ErrorCode != c.code || r.Flag != c.flag {
			t.Errorf("%s %v: got %+v, want value %#v variant %q reason %s code %q", c.flag, c.ctx, r, c.value, c.variant, c.reason, c.code)
		}
		if (r.ErrorCode != "") != (r.ErrorMessage != "") {
			t.Errorf("%s: error code %q with message %q", c.flag, r.ErrorCode, r.ErrorMessage)
		}
	}
	if msg := fs.Evaluate("dynamic-name", map[string]any{"pick": "zzz"}).ErrorMessage; !strings.Contains(msg, `variant "zzz"`) {
		t.Errorf("message should name the variant: %q", msg)
	}
}

func TestMetadataMerge(t *testing.T) {
	fs := mustCompile(t, sampleDoc)
	got := fs.Evaluate("color", nil).Metadata
	want := map[string]any{"team": "design", "owner": "ann", "version": 3.0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("color metadata: got %v, want %v", got, want)
	}
	if got := fs.Evaluate("static-bool", nil).Metadata; !reflect.DeepEqual(got, map[string]any{"team": "web", "version": 3.0}) {
		t.Errorf("set metadata only: got %v", got)
	}
	if got := fs.Evaluate("off", nil).Metadata; got["team"] != "web" {
		t.Errorf("disabled flags keep metadata: got %v", got)
	}
	if got := fs.Evaluate("nope", nil).Metadata; got != nil {
		t.Errorf("unknown flag: got %v", got)
	}
	bare := mustCompile(t, `{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}`)
	if got := bare.Evaluate("f", nil).Metadata; got != nil {
		t.Errorf("no metadata: got %v", got)
	}
}

func TestAccessors(t *testing.T) {
	fs := mustCompile(t, sampleDoc)
	keys := fs.Keys()
	want := []string{"bool-rule", "color", "dynamic-name", "empty-targeting", "no-default", "null-default", "numeric-rule", "objects", "off", "static-bool", "timed"}
	if !reflect.DeepEqual(keys, want) || fs.Len() != len(want) {
		t.Fatalf("keys: got %v", keys)
	}
	keys[0] = "mutated"
	if fs.Keys()[0] != "bool-rule" {
		t.Error("Keys must return a copy")
	}
	if !fs.Has("color") || fs.Has("nope") {
		t.Error("Has")
	}
	for key, want := range map[string]Type{"static-bool": TypeBool, "color": TypeString, "numeric-rule": TypeNumber, "objects": TypeObject, "off": TypeObject} {
		if got, ok := fs.VariantType(key); !ok || got != want {
			t.Errorf("VariantType(%s) = %s, %v; want %s", key, got, ok, want)
		}
	}
	if _, ok := fs.VariantType("nope"); ok {
		t.Error("VariantType of unknown flag")
	}
	v, ok := fs.Variants("color")
	if !ok || !reflect.DeepEqual(v, map[string]any{"red": "#f00", "blue": "#00f"}) {
		t.Errorf("Variants: %v", v)
	}
	v["red"] = "changed"
	if fs.Evaluate("color", nil).Value != "#f00" {
		t.Error("Variants must return a copy")
	}
	raw, ok := fs.Flag("color")
	wantRaw := `{"defaultVariant":"red","metadata":{"owner":"ann","team":"design"},"state":"ENABLED","targeting":{"if":[{"$ref":"is_beta"},"blue",null]},"variants":{"blue":"#00f","red":"#f00"}}`
	if !ok || string(raw) != wantRaw {
		t.Errorf("Flag: got %s", raw)
	}
	if _, ok := fs.Flag("nope"); ok {
		t.Error("Flag of unknown key")
	}
	if !strings.Contains(string(fs.Document()), `"<`) && !strings.Contains(string(fs.Document()), `">=":`) {
		t.Errorf("Document must not HTML-escape operators: %s", fs.Document())
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	fs := mustCompile(t, sampleDoc)
	doc := fs.Document()
	again := mustCompile(t, string(doc))
	if !bytes.Equal(again.Document(), doc) {
		t.Fatalf("Document is not a fixed point:\n%s\n%s", doc, again.Document())
	}
	ctxs := []map[string]any{nil, {"email": "a@example.com"}, {"country": "de", "n": 0.0, "pick": "b", "big": true}}
	for _, key := range fs.Keys() {
		for _, ctx := range ctxs {
			a, b := fs.Evaluate(key, ctx), again.Evaluate(key, ctx)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s %v: %+v vs %+v", key, ctx, a, b)
			}
		}
	}
	for _, w := range []string{`"$schema"`, `"$evaluators"`, `"is_beta"`, `"metadata"`} {
		if !strings.Contains(string(doc), w) {
			t.Errorf("Document lacks %s", w)
		}
	}
}

func TestDefinitionErrors(t *testing.T) {
	flag := func(def string) string { return `{"flags": {"f": ` + def + `}}` }
	cases := []struct {
		doc  string
		want string // the first problem, exactly
	}{
		{`{"flags": {"f": {"state": "ENABLED",}}}`, `invalid JSON at offset 36: invalid character '}' looking for beginning of object key string`},
		{`{"flags": {`, `invalid JSON: unexpected end of input`},
		{``, `invalid JSON: unexpected end of input`},
		{`{"flags": {}} x`, `invalid JSON: unexpected data after the top-level value`},
		{`{"flags": {"a": {}, "a": {}}}`, `invalid JSON at offset 20: duplicate object key "a"`},
		{`[]`, `document must be a JSON object with a "flags" object`},
		{`{}`, `document has no "flags" object`},
		{`{"flags": []}`, `"flags" must be a JSON object`},
		{`{"flags": {}, "flagz": {}}`, `unknown top-level field "flagz"`},
		{`{"flags": {}, "$schema": 1}`, `"$schema" must be a string`},
		{`{"flags": {}, "metadata": {"a": [1]}}`, `flag-set metadata: value of "a" must be a boolean, string or number, not [1]`},
		{`{"flags": {}, "$evaluators": []}`, `"$evaluators" must be a JSON object`},
		{`{"flags": {"": {"state": "ENABLED", "variants": {"a": 1}}}}`, `a flag key must not be empty`},
		{flag(`[]`), `flag "f": definition must be a JSON object`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "defaultVarient": "a"}`), `flag "f": unknown field "defaultVarient" (a flag has state, variants, defaultVariant, targeting and metadata)`},
		{flag(`{"state": "ON", "variants": {"a": 1}}`), `flag "f": state must be "ENABLED" or "DISABLED", not "ON"`},
		{flag(`{"variants": {"a": 1}}`), `flag "f": state is missing (it must be "ENABLED" or "DISABLED")`},
		{flag(`{"state": true, "variants": {"a": 1}}`), `flag "f": state must be the string "ENABLED" or "DISABLED", not true`},
		{flag(`{"state": "ENABLED"}`), `flag "f": variants are missing (a flag needs at least one)`},
		{flag(`{"state": "ENABLED", "variants": {}}`), `flag "f": variants are empty (a flag needs at least one)`},
		{flag(`{"state": "ENABLED", "variants": [1]}`), `flag "f": variants must be a JSON object mapping variant names to values`},
		{flag(`{"state": "ENABLED", "variants": {"a": null}}`), `flag "f": variant "a" is null (variant values are booleans, strings, numbers or objects)`},
		{flag(`{"state": "ENABLED", "variants": {"on": true, "count": 1}}`), `flag "f": variants mix types: "count" is a number but "on" is a boolean (all variants of a flag must have one type)`},
		{flag(`{"state": "ENABLED", "variants": {"a": {}, "b": "s"}}`), `flag "f": variants mix types: "a" is an object but "b" is a string (all variants of a flag must have one type)`},
		{`{"flags": {"new-checkout": {"state": "ENABLED", "variants": {"green": 1, "red": 2}, "defaultVariant": "blue"}}}`, `flag "new-checkout": defaultVariant "blue" is not one of its variants ("green", "red")`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": 1}`), `flag "f": defaultVariant must be a variant name (a string) or null, not 1`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "metadata": {"x": {}}}`), `flag "f": metadata: value of "x" must be a boolean, string or number, not {}`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "metadata": 3}`), `flag "f": metadata: must be a JSON object`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": "a"}`), `flag "f": targeting: targeting must be a JSON object (a JsonLogic rule)`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"foo": [1]}}`), `flag "f": targeting: unknown operator "foo"`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"if": [{"$ref": "missing"}, "a"]}}`), `flag "f": targeting: $ref "missing" is not defined`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"if": [{"$ref": "x", "y": 1}, "a"]}}`), `flag "f": targeting: a {"$ref": ...} object may hold no other key`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"if": [{"$ref": 1}, "a"]}}`), `flag "f": targeting: "$ref" must name an evaluator with a string`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"var": true}}`), `flag "f": targeting: "var": path must be a string or a number`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"if": [true, "b", "a"]}}`), `flag "f": targeting: can return variant "b", which is not one of its variants ("a")`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"if": [true, [1], "a"]}}`), `flag "f": targeting: can return [1], which cannot name a variant`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"in": ["x", "y"]}}`), ``}, // no literal result: fine
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"if": [true, true]}}`), `flag "f": targeting: can return variant "true", which is not one of its variants ("a")`},
		{flag(`{"state": "ENABLED", "variants": {"a": 1}, "targeting": {"fractional": [["a", 1], ["c", 1]]}}`), `flag "f": targeting: can return variant "c", which is not one of its variants ("a")`},
		{`{"flags": {}, "$evaluators": {"e": {"foo": 1}}}`, `$evaluators "e": unknown operator "foo"`},
		{`{"flags": {}, "$evaluators": {"e": "str"}}`, `$evaluators "e": an evaluator must be a JSON object holding exactly one operation`},
		{`{"flags": {}, "$evaluators": {"a": {"!": {"$ref": "b"}}, "b": {"!": {"$ref": "a"}}}}`, `$evaluators "a": $ref cycle: "a" → "b" → "a"`},
		{`{"flags": {}, "$evaluators": {"self": {"!": {"$ref": "self"}}}}`, `$evaluators "self": $ref cycle: "self" → "self"`},
		{`{"flags": {}, "$evaluators": {"a": {"!": {"$ref": "b"}}, "b": {"var": {"$ref": "c"}}, "c": {"bad": 1}}}`, `$evaluators "a": $ref "b" is invalid: $ref "c" is invalid: unknown operator "bad"`},
	}
	for _, c := range cases {
		_, err := Compile([]byte(c.doc))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", c.doc, err)
			}
			continue
		}
		var de *DefinitionError
		if !errors.As(err, &de) {
			t.Errorf("%s: got %v (%T), want a *DefinitionError", c.doc, err, err)
			continue
		}
		if de.Error() != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.doc, de.Error(), c.want)
		}
	}
}

func TestDefinitionErrorDetails(t *testing.T) {
	doc := `{"flags": {
		"b": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "y"},
		"a": {"state": "NOPE", "variants": {"x": 1}},
		"ok": {"state": "ENABLED", "variants": {"x": 1}}
	}}`
	_, err := Compile([]byte(doc))
	var des DefinitionErrors
	if !errors.As(err, &des) || len(des) != 2 {
		t.Fatalf("got %v", err)
	}
	if des[0].Flag != "a" || des[1].Flag != "b" || des[0].Offset != -1 {
		t.Errorf("problems must be in flag order: %+v %+v", des[0], des[1])
	}
	if !strings.HasSuffix(err.Error(), "(and 1 more problem)") || !strings.HasPrefix(err.Error(), `flag "a": state must be`) {
		t.Errorf("message: %s", err)
	}
	_, err = Compile([]byte(`{"flags": {"a": {}, "b": {}, "c": {}}}`))
	if !strings.Contains(err.Error(), "more problems)") {
		t.Errorf("message: %s", err)
	}
	_, err = Compile([]byte(`{"flags": 1x}`))
	var de *DefinitionError
	if !errors.As(err, &de) || de.Offset != 11 || de.Flag != "" {
		t.Errorf("syntax error offset: %+v", de)
	}
	if err.Error() != de.Error() {
		t.Errorf("a single problem is the whole message: %q", err)
	}
}

func TestRefResolution(t *testing.T) {
	doc := `{
	  "$evaluators": {
	    "adult": {">=": [{"var": "age"}, 18]},
	    "adult_in_fr": {"and": [{"$ref": "adult"}, {"$ref": "in_fr"}]},
	    "in_fr": {"==": [{"var": "country"}, "fr"]},
	    "unused": {"!": [true]}
	  },
	  "flags": {
	    "f": {"state": "ENABLED", "variants": {"yes": true, "no": false}, "defaultVariant": "no",
	          "targeting": {"if": [{"$ref": "adult_in_fr"}, "yes", {"$ref":"adult"}, "no", null]}},
	    "g": {"state": "ENABLED", "variants": {"yes": true, "no": false}, "defaultVariant": "no",
	          "targeting": {"if": [{"$ref": "adult"}, "yes"]}}
	  }
	}`
	fs := mustCompile(t, doc)
	for _, c := range []struct {
		ctx  map[string]any
		want string
	}{
		{map[string]any{"age": 30.0, "country": "fr"}, "yes"},
		{map[string]any{"age": 30.0, "country": "de"}, "no"},
		{map[string]any{"age": 10.0, "country": "fr"}, "no"},
	} {
		if got := fs.Evaluate("f", c.ctx).Variant; got != c.want {
			t.Errorf("%v: got %s, want %s", c.ctx, got, c.want)
		}
	}
	if fs.Evaluate("g", map[string]any{"age": 18.0}).Variant != "yes" {
		t.Error("shared evaluator in a second flag")
	}
	// Referencing an evaluator deep in a rule counts its depth.
	deep := `{"!": ` + strings.Repeat(`{"!": `, 40) + `true` + strings.Repeat(`}`, 40) + `}`
	doc = `{"$evaluators": {"deep": ` + deep + `}, "flags": {"f": {"state": "ENABLED", "variants": {"a": 1},
		"targeting": ` + strings.Repeat(`{"!": `, 30) + `{"$ref": "deep"}` + strings.Repeat(`}`, 30) + `}}}`
	if _, err := Compile([]byte(doc)); err == nil || !strings.Contains(err.Error(), "deeper than 64") {
		t.Errorf("deep $ref: got %v", err)
	}
	// Chains of pure aliases are bounded too.
	var b strings.Builder
	b.WriteString(`{"flags": {}, "$evaluators": {`)
	for i := range 100 {
		fmt.Fprintf(&b, `"e%d": {"$ref": "e%d"}, `, i, i+1)
	}
	b.WriteString(`"e100": {"!": true}}}`)
	if _, err := Compile([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "chain deeper than 64") {
		t.Errorf("alias chain: got %v", err)
	}
}

func TestSizeBounds(t *testing.T) {
	rule := func(depth int) string {
		return strings.Repeat(`{"!": `, depth-1) + `{"var": "x"}` + strings.Repeat(`}`, depth-1)
	}
	ok := `{"flags": {"f": {"state": "ENABLED", "variants": {"true": 1, "false": 2}, "targeting": ` + rule(MaxRuleDepth-1) + `}}}`
	if _, err := Compile([]byte(ok)); err != nil {
		t.Errorf("depth %d must compile: %v", MaxRuleDepth-1, err)
	}
	tooDeep := `{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": ` + rule(MaxRuleDepth+1) + `}}}`
	if _, err := Compile([]byte(tooDeep)); err == nil || !strings.Contains(err.Error(), `flag "f": targeting: rule nests deeper than 64 levels`) {
		t.Errorf("too deep: got %v", err)
	}
	nested := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	if _, err := Compile([]byte(nested)); err == nil || !strings.Contains(err.Error(), "JSON nesting deeper than 256") {
		t.Errorf("deep JSON: got %v", err)
	}
	big := make([]byte, MaxDocumentSize+1)
	if _, err := Compile(big); err == nil || !strings.Contains(err.Error(), "more than the limit") {
		t.Errorf("big document: got %v", err)
	}
}

func TestTolerateTargetingErrors(t *testing.T) {
	doc := `{"$evaluators": {"broken": {"nope": 1}}, "flags": {
		"bad-ref": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a", "targeting": {"if": [{"$ref": "missing"}, "a"]}},
		"bad-op": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a", "targeting": {"nope": []}},
		"uses-broken": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a", "targeting": {"$ref": "broken"}},
		"good": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a"}
	}}`
	if _, err := Compile([]byte(doc)); err == nil {
		t.Fatal("strict mode must refuse")
	}
	fs := mustCompile(t, doc, Options{TolerateTargetingErrors: true})
	for _, key := range []string{"bad-ref", "bad-op", "uses-broken"} {
		r := fs.Evaluate(key, nil)
		if r.Reason != ReasonError || r.ErrorCode != ErrParse || r.Value != nil || !strings.HasPrefix(r.ErrorMessage, "targeting: ") {
			t.Errorf("%s: got %+v", key, r)
		}
	}
	if r := fs.Evaluate("good", nil); r.Value != "a" {
		t.Errorf("good: %+v", r)
	}
	var got []string
	for _, w := range fs.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{
		`$evaluators "broken": unknown operator "nope"`,
		`flag "bad-op": targeting: unknown operator "nope"`,
		`flag "bad-ref": targeting: $ref "missing" is not defined`,
		`flag "uses-broken": targeting: $ref "broken" is invalid: unknown operator "nope"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	// Structural problems are refused even in tolerant mode.
	if _, err := CompileWithOptions([]byte(`{"flags": {"f": {"state": "x", "variants": {"a": 1}}}}`), Options{TolerateTargetingErrors: true}); err == nil {
		t.Error("tolerant mode must still refuse a bad state")
	}
}

func TestWarnings(t *testing.T) {
	doc := `{"$evaluators": {"e": {"sem_ver": [{"var": "v"}, "=="]}}, "flags": {"f": {"state": "ENABLED", "variants": {"a": 1, "true": 2, "false": 3}, "defaultVariant": "a",
		"targeting": {"or": [
			{"sem_ver": [{"var": "v"}, "===", "1.0.0"]},
			{"sem_ver": [{"var": "v"}, "=", "x.y"]},
			{"starts_with": ["abc"]},
			{"upper": []},
			{"fractional": [["a", 0]]},
			{"fractional": [{"var": "k"}, ["a", 1.5]]},
			{"fractional": [true]}
		]}}}}`
	fs := mustCompile(t, doc)
	var got []string
	for _, w := range fs.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{
		`$evaluators "e": sem_ver takes 3 arguments (version, operator, target), got 2: it always yields null`,
		`flag "f": targeting: sem_ver operator "===" is not one of =, !=, <, <=, >, >=, ^, ~: it always yields null`,
		`flag "f": targeting: sem_ver target "x.y" is not a semantic version: it always yields null`,
		`flag "f": targeting: starts_with takes 2 arguments, got 1: it always yields null`,
		`flag "f": targeting: upper takes 1 argument, got 0: it always yields null`,
		`flag "f": targeting: fractional weights are all zero: it yields null`,
		`flag "f": targeting: fractional weight 1.5 is not a whole number between 0 and 2147483647: it always yields null`,
		`flag "f": targeting: fractional's first argument true is neither a bucketing key nor a bucket: it always yields null`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	// Every operand yields null (or false), so "or" returns the last: null.
	if r := fs.Evaluate("f", map[string]any{"v": "1.0.0", "targetingKey": "t"}); r.Reason != ReasonDefault || r.Variant != "a" {
		t.Errorf("got %+v", r)
	}
}

func TestTyped(t *testing.T) {
	fs := mustCompile(t, `{"flags": {
		"b": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"},
		"s": {"state": "ENABLED", "variants": {"x": "str"}, "defaultVariant": "x"},
		"i": {"state": "ENABLED", "variants": {"x": 10}, "defaultVariant": "x"},
		"f": {"state": "ENABLED", "variants": {"x": 0.5}, "defaultVariant": "x"},
		"o": {"state": "ENABLED", "variants": {"x": {"k": 1}}, "defaultVariant": "x"},
		"a": {"state": "ENABLED", "variants": {"x": [1]}, "defaultVariant": "x"},
		"d": {"state": "DISABLED", "variants": {"x": 1}, "defaultVariant": "x"},
		"n": {"state": "ENABLED", "variants": {"x": 1}}
	}}`)
	cases := []struct {
		flag     string
		typ      Type
		fallback any
		value    any
		reason   Reason
		code     ErrorCode
	}{
		{"b", TypeBool, false, true, ReasonStatic, ""},
		{"s", TypeString, "fb", "str", ReasonStatic, ""},
		{"i", TypeInteger, int64(1), int64(10), ReasonStatic, ""},
		{"i", TypeFloat, 1.0, 10.0, ReasonStatic, ""},
		{"i", TypeNumber, 1.0, 10.0, ReasonStatic, ""},
		{"f", TypeFloat, 1.0, 0.5, ReasonStatic, ""},
		{"f", TypeInteger, int64(1), int64(1), ReasonError, ErrTypeMismatch},
		{"o", TypeObject, nil, map[string]any{"k": 1.0}, ReasonStatic, ""},
		{"a", TypeObject, nil, []any{1.0}, ReasonStatic, ""},
		{"s", TypeInteger, int64(13), int64(13), ReasonError, ErrTypeMismatch},
		{"b", TypeString, "fb", "fb", ReasonError, ErrTypeMismatch},
		{"d", TypeInteger, int64(7), int64(7), ReasonDisabled, ""},
		{"n", TypeInteger, int64(7), int64(7), ReasonDefault, ""},
		{"missing", TypeBool, true, true, ReasonError, ErrFlagNotFound},
	}
	for _, c := range cases {
		r := fs.Evaluate(c.flag, nil).Typed(c.typ, c.fallback)
		if !reflect.DeepEqual(r.Value, c.value) || r.Reason != c.reason || r.ErrorCode != c.code {
			t.Errorf("%s as %s: got %+v, want %#v %s %q", c.flag, c.typ, r, c.value, c.reason, c.code)
		}
		if c.code == ErrTypeMismatch && (r.Variant != "" || r.ErrorMessage == "") {
			t.Errorf("%s: mismatch must clear the variant and explain: %+v", c.flag, r)
		}
	}
	if v, code := fs.Evaluate("i", nil).As(TypeInteger); v != int64(10) || code != "" {
		t.Errorf("As: %v %s", v, code)
	}
	if v, code := fs.Evaluate("d", nil).As(TypeInteger); v != nil || code != "" {
		t.Errorf("As on disabled: %v %s", v, code)
	}
	if _, code := fs.Evaluate("zz", nil).As(TypeBool); code != ErrFlagNotFound {
		t.Errorf("As on missing: %s", code)
	}
	if _, code := fs.Evaluate("s", nil).As(TypeBool); code != ErrTypeMismatch {
		t.Errorf("As mismatch: %s", code)
	}
	for _, c := range []struct {
		t  Type
		v  any
		ok bool
	}{
		{TypeBool, true, true}, {TypeBool, "true", false}, {TypeString, "", true}, {TypeNumber, 3, true},
		{TypeNumber, "3", false}, {TypeInteger, 3.5, false}, {TypeInteger, 1e300, false}, {TypeObject, []any{}, true},
		{TypeObject, map[string]any{}, true}, {TypeObject, nil, false}, {Type("weird"), 1, false},
	} {
		if got := c.t.Accepts(c.v); got != c.ok {
			t.Errorf("%s.Accepts(%#v) = %v", c.t, c.v, got)
		}
	}
}

func TestEvaluateAll(t *testing.T) {
	fs := mustCompile(t, sampleDoc)
	buf := make([]Result, 0, fs.Len())
	all := fs.EvaluateAll(map[string]any{"email": "x@example.com"}, buf)
	if len(all) != fs.Len() {
		t.Fatalf("got %d results", len(all))
	}
	for i, key := range fs.Keys() {
		if all[i].Flag != key {
			t.Errorf("result %d is %s, want %s", i, all[i].Flag, key)
		}
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	fs := mustCompile(t, sampleDoc)
	want := map[string]Result{}
	ctx := map[string]any{"email": "x@example.com", "country": "de", "targetingKey": "u1"}
	for _, k := range fs.Keys() {
		want[k] = fs.Evaluate(k, ctx)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := fs.keys[(g+i)%len(fs.keys)]
				if got := fs.Evaluate(k, ctx); !reflect.DeepEqual(got, want[k]) {
					t.Errorf("%s: %+v vs %+v", k, got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestNilAndGoTypedContext(t *testing.T) {
	fs := mustCompile(t, `{"flags": {"f": {"state": "ENABLED", "variants": {"hi": 1, "lo": 2}, "defaultVariant": "lo",
		"targeting": {"if": [{">": [{"var": "n"}, 10]}, "hi", "lo"]}}}}`)
	for _, n := range []any{11, int64(11), uint16(11), float32(11.5)} {
		if got := fs.Evaluate("f", map[string]any{"n": n}).Variant; got != "hi" {
			t.Errorf("%T: got %s", n, got)
		}
	}
	if got := fs.Evaluate("f", nil).Variant; got != "lo" {
		t.Errorf("nil ctx: got %s", got)
	}
	if got := fs.Evaluate("f", map[string]any{"n": struct{}{}}).Variant; got != "lo" {
		t.Errorf("opaque value: got %s", got)
	}
}

func TestWorkBounds(t *testing.T) {
	// Evaluators that each use the next one twice: tiny document, but 2^40
	// operations once expanded. Refused at compile time.
	var b strings.Builder
	b.WriteString(`{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"$ref": "e0"}}}, "$evaluators": {`)
	for i := range 40 {
		fmt.Fprintf(&b, `"e%d": {"+": [{"$ref": "e%d"}, {"$ref": "e%d"}]}, `, i, i+1, i+1)
	}
	b.WriteString(`"e40": {"var": "x"}}}`)
	_, err := Compile([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than 65536 operations once its $refs are expanded") {
		t.Errorf("exponential $refs: got %v", err)
	}

	// Nested iteration: a few hundred bytes of rule, 200^3 element visits.
	// Bounded at run time.
	lit := make([]string, 200)
	for i := range lit {
		lit[i] = fmt.Sprint(i)
	}
	arr := "[" + strings.Join(lit, ",") + "]"
	doc := `{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
		"targeting": {"if": [{"some": [` + arr + `, {"some": [` + arr + `, {"some": [` + arr + `, {"==": [{"var": ""}, -1]}]}]}]}, "a", null]}}}}`
	fs := mustCompile(t, doc)
	start := time.Now()
	r := fs.Evaluate("f", nil)
	if r.ErrorCode != ErrGeneral || !strings.Contains(r.ErrorMessage, "evaluation budget") {
		t.Errorf("nested iteration: got %+v", r)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("budget took %v to stop the evaluation", d)
	}
	// Two levels (40,000 visits) are well within budget.
	doc = `{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
		"targeting": {"if": [{"some": [` + arr + `, {"some": [` + arr + `, {"==": [{"var": ""}, -1]}]}]}, "a", null]}}}}`
	if r := mustCompile(t, doc).Evaluate("f", nil); r.Reason != ReasonDefault {
		t.Errorf("small nested iteration: got %+v", r)
	}
	xs := make([]any, 40)
	for i := range xs {
		xs[i] = float64(i)
	}

	// A string that doubles at each step is capped.
	doc = `{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
		"targeting": {"if": [{"reduce": [{"var": "xs"}, {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "ab"]}, "a"]}}}}`
	fs = mustCompile(t, doc)
	if r := fs.Evaluate("f", map[string]any{"xs": xs[:40]}); r.ErrorCode != ErrGeneral {
		t.Errorf("doubling string: got %+v", r)
	}
	if r := fs.Evaluate("f", map[string]any{"xs": xs[:3]}); r.Variant != "a" {
		t.Errorf("short doubling: got %+v", r)
	}
	// So is an array that doubles.
	doc = `{"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
		"targeting": {"if": [{"reduce": [{"var": "xs"}, {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]}, "a"]}}}}`
	fs = mustCompile(t, doc)
	if r := fs.Evaluate("f", map[string]any{"xs": xs[:40]}); r.ErrorCode != ErrGeneral {
		t.Errorf("doubling array: got %+v", r)
	}
}

func TestTolerateUnknownResultVariant(t *testing.T) {
	doc := `{"flags": {"f": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a",
		"targeting": {"if": [{"var": "x"}, "missing", "a"]}}}}`
	if _, err := Compile([]byte(doc)); err == nil {
		t.Fatal("strict mode refuses a literal result that names no variant")
	}
	fs := mustCompile(t, doc, Options{TolerateTargetingErrors: true})
	if r := fs.Evaluate("f", map[string]any{"x": true}); r.ErrorCode != ErrGeneral {
		t.Errorf("reaching the literal: got %+v", r)
	}
	if r := fs.Evaluate("f", nil); r.Variant != "a" || r.Reason != ReasonTargetingMatch {
		t.Errorf("not reaching it: got %+v", r)
	}
	if w := fs.Warnings(); len(w) != 1 || !strings.Contains(w[0].Error(), `can return variant "missing"`) {
		t.Errorf("warnings: %v", w)
	}
}

// The encodings a Result carries must be what encoding/json makes of the
// fields they stand for, whatever the reason, so an API can write them as is.
func TestResultEncodings(t *testing.T) {
	doc := `{"metadata": {"team": "<web>"}, "flags": {
	  "static <&>": {"state": "ENABLED", "variants": {"on\u2028": true, "off": false}, "defaultVariant": "on\u2028"},
	  "targeted": {"state": "ENABLED", "variants": {"a\"b": "x", "d": "y"}, "defaultVariant": "d",
	    "targeting": {"if": [{"==": [{"var": "k"}, 1]}, "a\"b", null]}},
	  "split": {"state": "ENABLED", "variants": {"1": 1, "2": 2}, "targeting": {"fractional": [["1", 50], ["2", 50]]}},
	  "off": {"state": "DISABLED", "variants": {"a": 1}, "defaultVariant": "a"}
	}}`
	fs := mustCompile(t, doc)
	ctxs := []map[string]any{nil, {"k": 1.0, "targetingKey": "u1"}, {"targetingKey": "u2"}}
	reasons := map[Reason]bool{}
	for _, ctx := range ctxs {
		for _, r := range fs.EvaluateAll(ctx, nil) {
			reasons[r.Reason] = true
			checkEncoding(t, r.Flag+" FlagJSON", r.FlagJSON, r.Flag)
			if r.Variant == "" {
				if r.VariantJSON != nil {
					t.Errorf("%s: VariantJSON %s without a variant", r.Flag, r.VariantJSON)
				}
			} else {
				checkEncoding(t, r.Flag+" VariantJSON", r.VariantJSON, r.Variant)
			}
			if r.Value != nil {
				checkEncoding(t, r.Flag+" ValueJSON", r.ValueJSON, r.Value)
			}
			checkEncoding(t, r.Flag+" MetadataJSON", r.MetadataJSON, r.Metadata)
		}
	}
	for _, want := range []Reason{ReasonStatic, ReasonTargetingMatch, ReasonDefault, ReasonSplit, ReasonDisabled} {
		if !reasons[want] {
			t.Errorf("no result with reason %s", want)
		}
	}
	if r := fs.Evaluate("missing", nil); r.FlagJSON != nil {
		t.Errorf("a missing flag has FlagJSON %s", r.FlagJSON)
	}
	// A fallback replaces value and variant: their encodings go with them.
	r := fs.Evaluate("targeted", map[string]any{"k": 1.0}).Typed(TypeBool, true)
	if r.Variant != "" || r.VariantJSON != nil || r.ValueJSON != nil {
		t.Errorf("Typed fallback kept stale encodings: %+v", r)
	}
}

func checkEncoding(t *testing.T, what string, got []byte, v any) {
	t.Helper()
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		if got != nil {
			t.Errorf("%s: %s for no metadata", what, got)
		}
		return
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %s, want %s", what, got, want)
	}
}

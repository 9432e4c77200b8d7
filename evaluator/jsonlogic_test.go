package evaluator

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// applyRule compiles one JsonLogic rule and evaluates it against ctx (JSON),
// returning the raw result. It bypasses variant resolution so each operator
// can be checked on its own.
func applyRule(t *testing.T, rule, ctx string) any {
	t.Helper()
	raw, derr := decodeDocument([]byte(rule))
	if derr != nil {
		t.Fatalf("rule %s: %v", rule, derr)
	}
	n, err := newRuleCompiler(nil).compile(raw, 0)
	if err != nil {
		t.Fatalf("compile %s: %v", rule, err)
	}
	var data map[string]any
	if ctx != "" {
		if err := json.Unmarshal([]byte(ctx), &data); err != nil {
			t.Fatalf("ctx %s: %v", ctx, err)
		}
	}
	e := env{data: data, ctx: data, flagKey: "the-flag", keyAny: "the-flag", root: true,
		now: func() time.Time { return time.Unix(1700000000, 0) }}
	return e.eval(n)
}

type ruleCase struct {
	rule string
	ctx  string
	want any
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		got := applyRule(t, c.rule, c.ctx)
		if !sameValue(got, c.want) {
			t.Errorf("%s with %s: got %#v, want %#v", c.rule, c.ctx, got, c.want)
		}
	}
}

// sameValue compares results, treating NaN as equal to NaN.
func sameValue(a, b any) bool {
	fa, aNum := a.(float64)
	fb, bNum := b.(float64)
	if aNum && bNum && math.IsNaN(fa) && math.IsNaN(fb) {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestVar(t *testing.T) {
	const ctx = `{"a": 1, "s": "x", "user": {"name": "ann", "tags": ["t0", "t1"], "nil": null},
		"list": [10, {"deep": true}], "empty": "", "zero": 0, "f": false, "dotted.key": 5}`
	runRuleCases(t, []ruleCase{
		{`{"var": "a"}`, ctx, 1.0},
		{`{"var": ["a"]}`, ctx, 1.0},
		{`{"var": "user.name"}`, ctx, "ann"},
		{`{"var": "user.tags.1"}`, ctx, "t1"},
		{`{"var": "list.1.deep"}`, ctx, true},
		{`{"var": 0}`, `{"0": "by number"}`, "by number"},
		{`{"var": "list.0"}`, ctx, 10.0},
		{`{"var": "list.2"}`, ctx, nil},
		{`{"var": "list.x"}`, ctx, nil},
		{`{"var": "list.-1"}`, ctx, nil},
		{`{"var": "user.name.first"}`, ctx, nil},
		{`{"var": "nope"}`, ctx, nil},
		{`{"var": ["nope", "dflt"]}`, ctx, "dflt"},
		{`{"var": ["user.nil", "dflt"]}`, ctx, "dflt"}, // null present: default (flagd)
		{`{"var": ["empty", "dflt"]}`, ctx, ""},        // "" is a value
		{`{"var": ["zero", 7]}`, ctx, 0.0},
		{`{"var": ["f", true]}`, ctx, false},
		{`{"var": ["nope", {"cat": ["a", "b"]}]}`, ctx, "ab"},
		{`{"var": "user..name"}`, ctx, "ann"}, // empty segments skipped (flagd)
		{`{"var": "dotted.key"}`, ctx, nil},   // dots always split
		{`{"var": {"cat": ["us", "er.name"]}}`, ctx, "ann"},
		{`{"var": [{"cat": ["no", "pe"]}, "d"]}`, ctx, "d"},
		{`{"var": {"var": "s"}}`, `{"s": "t", "t": "indirect"}`, "indirect"},
		{`{"var": "a"}`, ``, nil},
		// Computed paths.
		{`{"var": {"+": [0, 1]}}`, `{"1": "one"}`, "one"},
		{`{"var": {"cat": ["list.", 1, ".deep"]}}`, ctx, true},
		{`{"var": {"cat": ["list.", 9]}}`, ctx, nil},
		{`{"var": {"cat": ["list.x"]}}`, ctx, nil},
		{`{"var": {"cat": ["s.x"]}}`, ctx, nil},
		{`{"var": [{"cat": ["user.nil"]}, "d"]}`, ctx, "d"},
		{`{"var": {"cat": ["user", "..", "name"]}}`, ctx, "ann"},
		{`{"var": {"cat": ["$flagd.", "timestamp"]}}`, ``, 1700000000.0},
		{`{"var": [{"cat": ["$flagd.", "nope"]}, 1]}`, ``, 1.0},
		{`{"var": [{"!!": [1]}, "bool path"]}`, ctx, "bool path"},
		{`{"map": [[{"a": 1, "b": 2}], {"var": {"cat": ["b"]}}]}`, ``, []any{2.0}},
	})
	if got := applyRule(t, `{"var": {"cat": ["$flag", "d"]}}`, ``); !reflect.DeepEqual(got, map[string]any{"flagKey": "the-flag", "timestamp": 1700000000.0}) {
		t.Errorf(`computed "$flagd": got %#v`, got)
	}
	if got := applyRule(t, `{"var": {"var": "none"}}`, `{"k": 1}`); !reflect.DeepEqual(got, map[string]any{"k": 1.0}) {
		t.Errorf(`computed null path: got %#v`, got)
	}
	whole := applyRule(t, `{"var": ""}`, `{"k": 1}`)
	if m, ok := whole.(map[string]any); !ok || m["k"] != 1.0 {
		t.Errorf(`{"var": ""}: got %#v, want the whole context`, whole)
	}
	if got := applyRule(t, `{"var": []}`, `{"k": 1}`); !reflect.DeepEqual(got, map[string]any{"k": 1.0}) {
		t.Errorf(`{"var": []}: got %#v`, got)
	}
}

func TestVarFlagdProperties(t *testing.T) {
	// $flagd is injected by the evaluator and overrides a caller's "$flagd".
	const ctx = `{"$flagd": {"flagKey": "spoofed"}}`
	runRuleCases(t, []ruleCase{
		{`{"var": "$flagd.flagKey"}`, ctx, "the-flag"},
		{`{"var": "$flagd.timestamp"}`, ctx, 1700000000.0},
		{`{"var": ["$flagd.other", "d"]}`, ctx, "d"},
		{`{"var": {"cat": ["$flagd", ".flagKey"]}}`, ctx, "the-flag"},
		{`{"cat": [{"var": "$flagd.flagKey"}, "-", {"var": "$flagd.timestamp"}]}`, ctx, "the-flag-1700000000"},
		// Inside map, var reads the element: no $flagd there.
		{`{"map": [[1], {"var": "$flagd.flagKey"}]}`, ctx, []any{nil}},
	})
	got := applyRule(t, `{"var": "$flagd"}`, ctx)
	want := map[string]any{"flagKey": "the-flag", "timestamp": 1700000000.0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf(`{"var": "$flagd"}: got %#v, want %#v`, got, want)
	}
}

func TestMissing(t *testing.T) {
	const ctx = `{"a": 1, "b": "", "c": null, "d": {"e": 0}}`
	runRuleCases(t, []ruleCase{
		{`{"missing": ["a", "b", "c", "x", "d.e", "d.f"]}`, ctx, []any{"b", "c", "x", "d.f"}},
		{`{"missing": "x"}`, ctx, []any{"x"}},
		{`{"missing": "a"}`, ctx, []any{}},
		{`{"missing": {"merge": [["a", "x"], "y"]}}`, ctx, []any{"x", "y"}},
		{`{"missing": []}`, ctx, []any{}},
		{`{"missing_some": [1, ["a", "x"]]}`, ctx, []any{}},
		{`{"missing_some": [2, ["a", "x", "y"]]}`, ctx, []any{"x", "y"}},
		{`{"missing_some": [0, ["x"]]}`, ctx, []any{}},
		{`{"if": [{"missing": ["a"]}, "incomplete", "complete"]}`, ctx, "complete"},
	})
}

func TestIf(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{`{"if": [true, "yes", "no"]}`, ``, "yes"},
		{`{"if": [false, "yes", "no"]}`, ``, "no"},
		{`{"if": [false, "yes"]}`, ``, nil},
		{`{"if": [false, "a", false, "b", "c"]}`, ``, "c"},
		{`{"if": [false, "a", true, "b", "c"]}`, ``, "b"},
		{`{"if": [false, "a", 0, "b"]}`, ``, nil},
		{`{"if": ["only"]}`, ``, "only"},
		{`{"if": []}`, ``, nil},
		{`{"?:": [1, "t", "f"]}`, ``, "t"},
		{`{"if": [[], "t", "f"]}`, ``, "f"},
		{`{"if": [[0], "t", "f"]}`, ``, "t"},
		{`{"if": [{}, "t", "f"]}`, ``, "f"},
		{`{"if": ["0", "t", "f"]}`, ``, "t"},
		// Branches are lazy: the untaken one is not evaluated.
		{`{"if": [true, "ok", {"var": "x.y.z"}]}`, ``, "ok"},
	})
}

func TestTruthiness(t *testing.T) {
	for v, want := range map[string]bool{
		`0`: false, `1`: true, `-1`: true, `""`: false, `"0"`: true, `"a"`: true, `null`: false,
		`true`: true, `false`: false, `[]`: false, `[0]`: true, `{"a": 1, "b": 2}`: true,
	} {
		got := applyRule(t, `{"!!": [`+v+`]}`, ``)
		if got != want {
			t.Errorf("!!%s: got %v, want %v", v, got, want)
		}
		if got := applyRule(t, `{"!": [`+v+`]}`, ``); got != !want {
			t.Errorf("!%s: got %v", v, got)
		}
	}
	if truthy(math.NaN()) {
		t.Error("NaN is falsy")
	}
	if truthy(map[string]any{}) {
		t.Error("an empty object is falsy (flagd)")
	}
	runRuleCases(t, []ruleCase{
		{`{"!": true}`, ``, false},
		{`{"!": [[]]}`, ``, true},
		{`{"!": []}`, ``, true},
	})
}

func TestEquality(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{`{"==": [1, 1]}`, ``, true},
		{`{"==": [1, "1"]}`, ``, true},
		{`{"==": ["1.0", 1]}`, ``, true},
		{`{"==": [0, ""]}`, ``, true},
		{`{"==": [0, " "]}`, ``, true},
		{`{"==": [1, "x"]}`, ``, false},
		{`{"==": [true, 1]}`, ``, true},
		{`{"==": [true, "1"]}`, ``, true},
		{`{"==": [false, 0]}`, ``, true},
		{`{"==": [false, ""]}`, ``, true},
		{`{"==": [true, "true"]}`, ``, false},
		{`{"==": [null, null]}`, ``, true},
		{`{"==": [null, 0]}`, ``, false},
		{`{"==": [null, false]}`, ``, false},
		{`{"==": [null, ""]}`, ``, false},
		{`{"==": ["a", "a"]}`, ``, true},
		{`{"==": ["a", "A"]}`, ``, false},
		{`{"==": [[1], 1]}`, ``, true},
		{`{"==": [[1, 2], "1,2"]}`, ``, true},
		{`{"==": [[], false]}`, ``, true},
		{`{"==": [[1], [1]]}`, ``, false},
		{`{"==": [{"var": "n"}, 5]}`, `{"n": 5}`, true},
		{`{"==": [{"var": "missing"}, null]}`, `{}`, true},
		{`{"==": [null]}`, ``, true},
		{`{"==": [1]}`, ``, false},
		{`{"!=": [1, "1"]}`, ``, false},
		{`{"!=": [1, 2]}`, ``, true},
		{`{"===": [1, 1]}`, ``, true},
		{`{"===": [1, "1"]}`, ``, false},
		{`{"===": [true, 1]}`, ``, false},
		{`{"===": [null, null]}`, ``, true},
		{`{"===": ["a", "a"]}`, ``, true},
		{`{"===": [[], []]}`, ``, false},
		{`{"===": [1]}`, ``, false},
		{`{"!==": [1, "1"]}`, ``, true},
		{`{"!==": [1, 1]}`, ``, false},
	})
	// Go numbers of any type compare as numbers (contexts built in Go).
	if !looseEquals(int64(3), 3.0) || !strictEquals(3, uint8(3)) || strictEquals(3, "3") {
		t.Error("Go number types must compare as JSON numbers")
	}
}

func TestComparison(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{`{"<": [1, 2]}`, ``, true},
		{`{"<": [2, 1]}`, ``, false},
		{`{"<": [1, 1]}`, ``, false},
		{`{"<=": [1, 1]}`, ``, true},
		{`{">": [2, 1]}`, ``, true},
		{`{">=": [1, 1]}`, ``, true},
		{`{">=": [0, 1]}`, ``, false},
		{`{"<": ["a", "b"]}`, ``, true},
		{`{"<": ["B", "a"]}`, ``, true},  // code point order
		{`{"<": ["10", "9"]}`, ``, true}, // two strings: lexical
		{`{"<": ["10", 9]}`, ``, false},  // mixed: numeric
		{`{"<": [9, "10"]}`, ``, true},
		{`{"<": ["x", 1]}`, ``, false}, // NaN: every comparison false
		{`{">=": ["x", 1]}`, ``, false},
		{`{"<": [null, 1]}`, ``, true}, // null is 0
		{`{">=": [null, 0]}`, ``, true},
		{`{"<": [false, true]}`, ``, true},
		{`{"<": [[2], 3]}`, ``, true},
		{`{"<": [1]}`, ``, false},
		{`{"<": [1, 2, 3]}`, ``, true},
		{`{"<": [1, 1, 3]}`, ``, false},
		{`{"<": [1, 4, 3]}`, ``, false},
		{`{"<=": [1, 1, 3]}`, ``, true},
		{`{"<=": [1, 3, 3]}`, ``, true},
		{`{"<=": [1, 4, 3]}`, ``, false},
		{`{">": [3, 2, 1]}`, ``, true},
		{`{">": [3, 3, 1]}`, ``, false},
		{`{">=": [3, 3, 3]}`, ``, true},
		{`{"<": [0, {"var": "age"}, 18]}`, `{"age": 12}`, true},
		{`{"<": [0, {"var": "age"}, 18]}`, `{"age": 18}`, false},
		{`{">": [{"var": "n"}, 2]}`, `{"n": "3"}`, true},
	})
}

func TestArithmetic(t *testing.T) {
	tenth, fifth := 0.1, 0.2 // float64 arithmetic, as at run time
	runRuleCases(t, []ruleCase{
		{`{"+": [1, 2, 3]}`, ``, 6.0},
		{`{"+": ["1", 2]}`, ``, 3.0},
		{`{"+": []}`, ``, 0.0},
		{`{"+": "3.5"}`, ``, 3.5},
		{`{"+": [1, "x"]}`, ``, math.NaN()},
		{`{"-": [5, 2]}`, ``, 3.0},
		{`{"-": [5, 2, 1]}`, ``, 2.0},
		{`{"-": 2}`, ``, -2.0},
		{`{"-": []}`, ``, nil},
		{`{"*": [2, 3, 4]}`, ``, 24.0},
		{`{"*": []}`, ``, nil},
		{`{"/": [6, 4]}`, ``, 1.5},
		{`{"/": [1, 0]}`, ``, math.Inf(1)},
		{`{"/": [1]}`, ``, nil},
		{`{"%": [7, 3]}`, ``, 1.0},
		{`{"%": [-7, 3]}`, ``, -1.0},
		{`{"%": [7]}`, ``, nil},
		{`{"max": [1, 3, 2]}`, ``, 3.0},
		{`{"min": [1, 3, -2]}`, ``, -2.0},
		{`{"max": ["4", 3]}`, ``, 4.0},
		{`{"max": []}`, ``, nil},
		{`{"min": [1, "x"]}`, ``, math.NaN()},
		{`{"+": [{"var": "a"}, {"var": "b"}]}`, `{"a": 0.1, "b": 0.2}`, tenth + fifth},
		{`{"+": [true, null]}`, ``, 1.0},
	})
}

func TestStrings(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{`{"cat": ["a", 1, true, null, 2.5]}`, ``, "a1true2.5"},
		{`{"cat": "solo"}`, ``, "solo"},
		{`{"cat": []}`, ``, ""},
		{`{"cat": [[1, [2, null]], "|", {"a": 1, "b": 2}]}`, ``, "1,2,|[object Object]"},
		{`{"cat": [1e21, " ", 1e-7, " ", 0.000001, " ", -0]}`, ``, "1e+21 1e-7 0.000001 0"},
		{`{"substr": ["jsonlogic", 4]}`, ``, "logic"},
		{`{"substr": ["jsonlogic", -5]}`, ``, "logic"},
		{`{"substr": ["jsonlogic", 1, 3]}`, ``, "son"},
		{`{"substr": ["jsonlogic", 4, -2]}`, ``, "log"},
		{`{"substr": ["jsonlogic", 20]}`, ``, ""},
		{`{"substr": ["jsonlogic", 0, -20]}`, ``, ""},
		{`{"substr": ["héllo", 1, 3]}`, ``, "éll"},
		{`{"substr": [12345, 1, 2]}`, ``, "23"},
		{`{"in": ["Spring", "Springfield"]}`, ``, true},
		{`{"in": ["x", "Springfield"]}`, ``, false},
		{`{"in": [1, "a1b"]}`, ``, true},
		{`{"in": ["a", ["a", "b"]]}`, ``, true},
		{`{"in": ["c", ["a", "b"]]}`, ``, false},
		{`{"in": [1, [1, 2]]}`, ``, true},
		{`{"in": ["1", [1, 2]]}`, ``, false}, // strict membership
		{`{"in": ["a", null]}`, ``, false},
		{`{"in": ["a"]}`, ``, false},
		{`{"in": [{"var": "c"}, ["us", "ca"]]}`, `{"c": "ca"}`, true},
		{`{"in": [{"var": "c"}, {"var": "list"}]}`, `{"c": "b", "list": ["a", "b"]}`, true},
		{`{"starts_with": [{"var": "id"}, "abc"]}`, `{"id": "abcdef"}`, true},
		{`{"starts_with": [{"var": "id"}, "abc"]}`, `{"id": "xabc"}`, false},
		{`{"ends_with": [{"var": "id"}, "xyz"]}`, `{"id": "uvwxyz"}`, true},
		{`{"ends_with": [{"var": "id"}, "xyz"]}`, `{"id": "xyzu"}`, false},
		// flagd: null (so the default variant), not false, on bad input.
		{`{"starts_with": [{"var": "id"}, "abc"]}`, `{"id": 123}`, nil},
		{`{"ends_with": [{"var": "id"}, "abc"]}`, `{}`, nil},
		{`{"starts_with": ["abc"]}`, ``, nil},
		{`{"ends_with": ["a", "b", "c"]}`, ``, nil},
		{`{"lower": "MiXeD É"}`, ``, "mixed É"},
		{`{"upper": ["MiXeD é"]}`, ``, "MIXED é"},
		{`{"lower": [1]}`, ``, nil},
		{`{"lower": ["a", "b"]}`, ``, nil},
	})
	// A string haystack of more than eight literals uses a set.
	big := `["a","b","c","d","e","f","g","h","i","j"]`
	runRuleCases(t, []ruleCase{
		{`{"in": ["j", ` + big + `]}`, ``, true},
		{`{"in": ["z", ` + big + `]}`, ``, false},
		{`{"in": [1, ` + big + `]}`, ``, false},
		{`{"in": [1, [0,2,3,4,5,6,7,8,9,1]]}`, ``, true},
	})
}

func TestArrays(t *testing.T) {
	const ctx = `{"nums": [1, 2, 3, 4], "users": [{"age": 20}, {"age": 15}]}`
	runRuleCases(t, []ruleCase{
		{`{"merge": [[1, 2], [3], 4, [[5]]]}`, ``, []any{1.0, 2.0, 3.0, 4.0, []any{5.0}}},
		{`{"merge": []}`, ``, []any{}},
		{`{"map": [{"var": "nums"}, {"*": [{"var": ""}, 2]}]}`, ctx, []any{2.0, 4.0, 6.0, 8.0}},
		{`{"map": [{"var": "none"}, {"var": ""}]}`, ctx, []any{}},
		{`{"filter": [{"var": "nums"}, {"%": [{"var": ""}, 2]}]}`, ctx, []any{1.0, 3.0}},
		{`{"filter": ["notarray", true]}`, ctx, []any{}},
		{`{"reduce": [{"var": "nums"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}`, ctx, 10.0},
		{`{"reduce": [{"var": "nums"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}]}`, ctx, 10.0},
		{`{"reduce": [{"var": "none"}, {"var": "current"}, 42]}`, ctx, 42.0},
		{`{"all": [{"var": "nums"}, {">": [{"var": ""}, 0]}]}`, ctx, true},
		{`{"all": [{"var": "nums"}, {">": [{"var": ""}, 1]}]}`, ctx, false},
		{`{"all": [[], true]}`, ctx, false},
		{`{"some": [{"var": "users"}, {"<": [{"var": "age"}, 18]}]}`, ctx, true},
		{`{"some": [[], true]}`, ctx, false},
		{`{"none": [{"var": "users"}, {">": [{"var": "age"}, 30]}]}`, ctx, true},
		{`{"none": [{"var": "users"}, {">": [{"var": "age"}, 18]}]}`, ctx, false},
		{`{"none": ["x", true]}`, ctx, true},
		{`{"map": [[1, 2]]}`, ctx, []any{nil, nil}},
		{`{"log": "hello"}`, ``, "hello"},
		{`{"log": []}`, ``, nil},
		{`[1, {"var": "nums.0"}]`, ctx, []any{1.0, 1.0}},
		{`{"a": 1, "b": {"var": "x"}}`, ``, map[string]any{"a": 1.0, "b": map[string]any{"var": "x"}}},
		{`{}`, ``, map[string]any{}},
	})
}

func TestAndOr(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{`{"and": [true, "a", 3]}`, ``, 3.0},
		{`{"and": [true, "", 3]}`, ``, ""},
		{`{"and": [0, {"var": "x.y.z"}]}`, ``, 0.0},
		{`{"and": []}`, ``, nil},
		{`{"or": [false, 0, "a"]}`, ``, "a"},
		{`{"or": [false, 0]}`, ``, 0.0},
		{`{"or": [1, {"var": "never"}]}`, ``, 1.0},
		{`{"or": []}`, ``, nil},
	})
}

func TestSemVerOperator(t *testing.T) {
	type c struct {
		version any
		op      string
		target  string
		want    any
	}
	cases := []c{
		{"2.0.0", "=", "2.0.0", true},
		{"v2.0.0", "=", "2.0.0", true},
		{"V2.0.0", "=", "v2.0.0", true},
		{"2.0", "=", "2.0.0", true},
		{"2", "=", "2.0.0", true},
		{"2.0.0+build.5", "=", "2.0.0", true},
		{"2.1.0", ">", "2.0.0", true},
		{"2.0.0", ">", "2.0.0", false},
		{"2.0.0", ">=", "2.0.0", true},
		{"1.9.9", "<", "2.0.0", true},
		{"2.0.0", "<=", "2.0.0", true},
		{"2.0.1", "!=", "2.0.0", true},
		{"2.0.0-alpha", "<", "2.0.0", true},
		{"2.0.0-alpha", "<", "2.0.0-alpha.1", true},
		{"2.0.0-alpha.1", "<", "2.0.0-alpha.beta", true},
		{"2.0.0-alpha.beta", "<", "2.0.0-beta", true},
		{"2.0.0-beta.2", "<", "2.0.0-beta.11", true},
		{"2.0.0-beta.11", "<", "2.0.0-rc.1", true},
		{"10.0.0", ">", "9.99.99", true},
		{"123456789012345678901234567890.0.0", ">", "123456789012345678901234567889.9.9", true},
		{"3.0.1", "~", "3.0.0", true},
		{"3.1.0", "~", "3.0.0", false},
		{"3.1.0", "^", "3.0.0", true},
		{"4.0.0", "^", "3.0.0", false},
		{"1.0", "^", "1", true},
		{"3.0.0-rc.1", "^", "3.2.0", true}, // same major, whatever the order (flagd)
		{"1", "~", "1.0.5", true},          // short forms have minor 0
		{"1.2", "~", "1.2.9-rc.1", true},
		{"1.0.0", "=", "v1.0.0+meta", true},
		{1.0, "=", "1.0.0", true},
		{1.2, ">", "1.1", true},
		{int64(2), ">", "1.1", true},
		// Invalid input: null, which makes flagd use the default variant.
		{"2.0.0.0", "=", "2.0.0", nil},
		{"not-a-version", "=", "1.0.0", nil},
		{"01.0.0", "=", "1.0.0", nil},
		{"1.0-alpha", "=", "1.0.0", nil},
		{"1.0.0-", "=", "1.0.0", nil},
		{"1.0.0-01", "=", "1.0.0", nil},
		{"1.0.0+", "=", "1.0.0", nil},
		{"", "=", "1.0.0", nil},
		{"v", "=", "1.0.0", nil},
		{true, "=", "1.0.0", nil},
		{nil, "=", "1.0.0", nil},
		{"1.0.0", "===", "1.0.0", nil},
		{"1.0.0", "=", "x", nil},
	}
	for _, tc := range cases {
		v, _ := json.Marshal(tc.version)
		rule := `{"sem_ver": [{"var": "v"}, "` + tc.op + `", "` + tc.target + `"]}`
		got := applyRule(t, rule, `{"v": `+string(v)+`}`)
		if intVal, isInt := tc.version.(int64); isInt { // check Go ints too
			e := env{data: map[string]any{"v": intVal}, root: true}
			raw, _ := decodeDocument([]byte(rule))
			n, _ := newRuleCompiler(nil).compile(raw, 0)
			got = e.eval(n)
		}
		if got != tc.want {
			t.Errorf("sem_ver %v %s %s: got %v, want %v", tc.version, tc.op, tc.target, got, tc.want)
		}
	}
	// Operator and target computed at run time.
	runRuleCases(t, []ruleCase{
		{`{"sem_ver": [{"var": "v"}, {"var": "op"}, {"var": "t"}]}`, `{"v": "1.2.3", "op": ">=", "t": "1.2"}`, true},
		{`{"sem_ver": [{"var": "v"}, {"var": "op"}, {"var": "t"}]}`, `{"v": "1.2.3", "op": "?", "t": "1.2"}`, nil},
		{`{"sem_ver": [{"var": "v"}, {"var": "op"}, {"var": "t"}]}`, `{"v": "1.2.3", "op": ">=", "t": "1.2.x"}`, nil},
		{`{"sem_ver": [{"var": "v"}, {"var": "op"}, {"var": "t"}]}`, `{"v": "1.2.3", "op": "~", "t": 1.2}`, true},
		{`{"sem_ver": [{"var": "v"}, "="]}`, `{"v": "1.0.0"}`, nil},
	})
}

func TestJSNumberFormatting(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0", 1: "1", -1: "-1", 1.5: "1.5", 100: "100", 0.1: "0.1", 1e21: "1e+21", 1.5e-7: "1.5e-7",
		1e20: "100000000000000000000", 1e-6: "0.000001", 123456789.125: "123456789.125", 1e300: "1e+300",
		math.Inf(1): "Infinity", math.Inf(-1): "-Infinity",
	} {
		if got := jsString(f); got != want {
			t.Errorf("jsString(%v): got %q, want %q", f, got, want)
		}
	}
	if jsString(math.NaN()) != "NaN" {
		t.Error("NaN")
	}
}

func TestParseJSNumber(t *testing.T) {
	for s, want := range map[string]float64{
		"": 0, "  ": 0, "42": 42, " 42 ": 42, "-1.5": -1.5, "+3": 3, ".5": 0.5, "5.": 5, "1e3": 1000,
		"1E-2": 0.01, "0x1F": 31, "0b101": 5, "0o17": 15, "Infinity": math.Inf(1), "-Infinity": math.Inf(-1),
		"1e999": math.Inf(1),
	} {
		if got := parseJSNumber(s); got != want {
			t.Errorf("parseJSNumber(%q): got %v, want %v", s, got, want)
		}
	}
	for _, s := range []string{"x", "1x", "inf", "NaN", "1_000", "0x", "--1", "1e", ".", "-0x10", "0x1_0"} {
		if got := parseJSNumber(s); !math.IsNaN(got) {
			t.Errorf("parseJSNumber(%q): got %v, want NaN", s, got)
		}
	}
}

func TestUnknownOperator(t *testing.T) {
	raw, _ := decodeDocument([]byte(`{"if": [{"foo": [1]}, "a"]}`))
	_, err := newRuleCompiler(nil).compile(raw, 0)
	if err == nil || !strings.Contains(err.Error(), `unknown operator "foo"`) {
		t.Fatalf("got %v", err)
	}
}

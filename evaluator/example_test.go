package evaluator_test

import (
	"errors"
	"fmt"

	"github.com/flagbridge/flagbridge/evaluator"
)

func Example() {
	fs, err := evaluator.Compile([]byte(`{
	  "$evaluators": {"is_staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
	  "flags": {
	    "new-checkout": {
	      "state": "ENABLED",
	      "variants": {"on": true, "off": false},
	      "defaultVariant": "off",
	      "targeting": {"if": [{"$ref": "is_staff"}, "on", {"fractional": [["on", 10], ["off", 90]]}]}
	    }
	  }
	}`))
	if err != nil {
		panic(err)
	}
	r := fs.Evaluate("new-checkout", map[string]any{"targetingKey": "u-1", "email": "ann@example.com"})
	fmt.Println(r.Value, r.Variant, r.Reason)

	on, code := fs.Evaluate("new-checkout", map[string]any{"targetingKey": "u-1"}).As(evaluator.TypeBool)
	fmt.Println(on, code == "")
	// Output:
	// true on TARGETING_MATCH
	// false true
}

func ExampleCompile_errors() {
	_, err := evaluator.Compile([]byte(`{"flags": {"new-checkout": {
	  "state": "ENABLED", "variants": {"green": 1, "red": 2}, "defaultVariant": "blue"}}}`))
	var de *evaluator.DefinitionError
	if errors.As(err, &de) {
		fmt.Printf("flag %s: %s\n", de.Flag, de.Problem)
	}
	// Output:
	// flag new-checkout: defaultVariant "blue" is not one of its variants ("green", "red")
}

func ExampleResult_Typed() {
	fs, _ := evaluator.Compile([]byte(`{"flags": {"limit": {"state": "ENABLED", "variants": {"low": "ten"}, "defaultVariant": "low"}}}`))
	r := fs.Evaluate("limit", nil).Typed(evaluator.TypeInteger, int64(5))
	fmt.Println(r.Value, r.Reason, r.ErrorCode)
	// Output:
	// 5 ERROR TYPE_MISMATCH
}

package jsonbody_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/flagbridge/flagbridge/internal/jsonbody"
)

func TestOptional(t *testing.T) {
	type item struct {
		N int `json:"n"`
	}
	type body struct {
		S     jsonbody.Optional[string] `json:"s"`
		Items jsonbody.Optional[[]item] `json:"items"`
	}
	for _, tc := range []struct {
		in           string
		set, null    bool
		value        string
		items, empty bool
	}{
		{in: `{}`},
		{in: `{"s":null}`, set: true, null: true},
		{in: `{"s":""}`, set: true, value: ""},
		{in: `{"s":"x","items":[]}`, set: true, value: "x", items: true, empty: true},
		{in: `{"items":[{"n":1}]}`, items: true},
	} {
		var b body
		if err := jsonbody.Strict([]byte(tc.in), &b); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if b.S.Set != tc.set || b.S.Null() != tc.null || (tc.set && !tc.null && (b.S.Value == nil || *b.S.Value != tc.value)) {
			t.Errorf("%s: s = %+v", tc.in, b.S)
		}
		if b.Items.Set != tc.items || (tc.items && (b.Items.Value == nil || (len(*b.Items.Value) == 0) != tc.empty)) {
			t.Errorf("%s: items = %+v", tc.in, b.Items)
		}
	}
	// Inside a value, decoding is as strict as around it, and a type error
	// names its whole path.
	var b body
	err := jsonbody.Strict([]byte(`{"items":[{"n":"one"}]}`), &b)
	var typ *json.UnmarshalTypeError
	if !errors.As(err, &typ) || typ.Field != "items.n" {
		t.Fatalf("type error %v (field %q), want one on items.n", err, fieldOf(typ))
	}
	if err := jsonbody.Strict([]byte(`{"items":[{"n":1,"m":2}]}`), &b); err == nil {
		t.Fatal("an unknown field inside a value was accepted")
	}
}

func fieldOf(e *json.UnmarshalTypeError) string {
	if e == nil {
		return ""
	}
	return e.Field
}

package evaluator

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// This file holds JsonLogic's value semantics. JsonLogic is defined by its
// JavaScript reference implementation (json-logic-js), so truthiness,
// equality, ordering and number/string conversion follow JavaScript's rules,
// restricted to JSON values. Where flagd's Go JsonLogic library is known to
// differ and flagd users could observe it, flagd wins; those places say so.

// numberValue returns v as a float64 if it is any Go number (contexts built
// in Go rather than decoded from JSON may hold ints), or a json.Number.
func numberValue(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float32:
		return float64(n), true
	case int32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// truthy is JsonLogic truthiness: false, null, 0, NaN, "" and [] are false.
// An empty object is false as well, as in flagd's JsonLogic library
// (JavaScript would call it true); everything else is true.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0 && !math.IsNaN(x)
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	if f, ok := numberValue(v); ok {
		return f != 0 && !math.IsNaN(f)
	}
	return true
}

// toNumber is JavaScript's Number(v): null → 0, booleans → 0/1, strings are
// parsed (blank → 0, garbage → NaN), arrays go through their string form,
// objects are NaN.
func toNumber(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case nil:
		return 0
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		return parseJSNumber(x)
	case []any:
		return parseJSNumber(jsString(x))
	case map[string]any:
		return math.NaN()
	}
	if f, ok := numberValue(v); ok {
		return f
	}
	return math.NaN()
}

// parseJSNumber converts a string the way JavaScript's Number() does for the
// forms that matter in targeting: optional whitespace, decimal literals with
// optional exponent, Infinity, and 0x/0o/0b integers. Anything else is NaN
// (strconv alone would also accept "inf", "nan" and "1_000").
func parseJSNumber(s string) float64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	switch s {
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			u, err := strconv.ParseUint(s[2:], base, 64)
			if err != nil || strings.ContainsRune(s[2:], '_') {
				return math.NaN()
			}
			return float64(u)
		}
	}
	if !isDecimalLiteral(s) {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && f == 0 { // ErrRange still yields ±Inf or 0, like JavaScript
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return math.NaN()
		}
	}
	return f
}

// isDecimalLiteral matches [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?
func isDecimalLiteral(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// maxStringDepth bounds the recursion of jsString over nested arrays that
// come from the evaluation context (which Compile's depth bounds don't cover).
const maxStringDepth = MaxRuleDepth

// jsString is JavaScript's String(v) for JSON values: null → "null", numbers
// in JavaScript's shortest form, arrays joined with "," (null elements empty),
// objects "[object Object]".
func jsString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return string(appendJSString(nil, v, 0, true))
}

// appendJSString appends String(v) to dst. nullWord selects how null is
// written: "null" for String(null), "" inside Array.prototype.join.
func appendJSString(dst []byte, v any, depth int, nullWord bool) []byte {
	switch x := v.(type) {
	case string:
		return append(dst, x...)
	case nil:
		if nullWord {
			return append(dst, "null"...)
		}
		return dst
	case bool:
		return strconv.AppendBool(dst, x)
	case float64:
		return appendJSNumber(dst, x)
	case []any:
		if depth >= maxStringDepth {
			return dst
		}
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSString(dst, e, depth+1, false)
		}
		return dst
	case map[string]any:
		return append(dst, "[object Object]"...)
	}
	if f, ok := numberValue(v); ok {
		return appendJSNumber(dst, f)
	}
	return append(dst, "[object Object]"...)
}

// appendJSNumber formats f like JavaScript's Number.prototype.toString (and
// like encoding/json, which flagd uses to turn a rule result into a variant
// name): plain decimals between 1e-6 and 1e21, exponent form outside.
func appendJSNumber(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case f == 0:
		return append(dst, '0') // also -0, as in JavaScript
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
	// Go writes e-07 / e+21; JavaScript writes e-7 / e+21.
	n := len(dst)
	for i := start; i < n; i++ {
		if dst[i] == 'e' && i+3 < n && dst[i+2] == '0' {
			copy(dst[i+2:], dst[i+3:])
			dst = dst[:n-1]
			break
		}
	}
	return dst
}

// kind classifies values for strict equality: JSON's types, with every Go
// number type counted as "number".
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
	kindOther
)

func kindOf(v any) kind {
	switch v.(type) {
	case nil:
		return kindNull
	case bool:
		return kindBool
	case float64:
		return kindNumber
	case string:
		return kindString
	case []any:
		return kindArray
	case map[string]any:
		return kindObject
	}
	if _, ok := numberValue(v); ok {
		return kindNumber
	}
	return kindOther
}

// strictEquals is JavaScript's ===: same type and same value. Arrays and
// objects are never equal (JavaScript compares them by identity and every
// evaluation produces distinct ones).
func strictEquals(a, b any) bool {
	ka, kb := kindOf(a), kindOf(b)
	if ka != kb {
		return false
	}
	switch ka {
	case kindNull:
		return true
	case kindBool:
		return a.(bool) == b.(bool)
	case kindNumber:
		x, _ := numberValue(a)
		y, _ := numberValue(b)
		return x == y
	case kindString:
		return a.(string) == b.(string)
	}
	return false
}

// looseEquals is JavaScript's == restricted to JSON values: null equals only
// null; booleans compare as numbers; a string and a number compare as
// numbers; an array or object compares with a primitive through its string
// form; two arrays or objects are never equal.
func looseEquals(a, b any) bool {
	for range 3 { // each step converts one side to a primitive or a number
		ka, kb := kindOf(a), kindOf(b)
		if ka == kb {
			if ka == kindArray || ka == kindObject || ka == kindOther {
				return false
			}
			return strictEquals(a, b)
		}
		switch {
		case ka == kindNull || kb == kindNull || ka == kindOther || kb == kindOther:
			return false
		case ka == kindBool:
			a = toNumber(a)
		case kb == kindBool:
			b = toNumber(b)
		case ka == kindNumber && kb == kindString:
			x, _ := numberValue(a)
			return x == parseJSNumber(b.(string))
		case ka == kindString && kb == kindNumber:
			y, _ := numberValue(b)
			return parseJSNumber(a.(string)) == y
		case ka == kindArray || ka == kindObject:
			a = jsString(a)
		case kb == kindArray || kb == kindObject:
			b = jsString(b)
		}
	}
	return false
}

// compare orders a and b with JavaScript's relational rules: two strings
// compare as strings (by code point), anything else as numbers. ok is false
// when the comparison is undefined (a NaN side), which makes <, <=, > and >=
// all false, as in JavaScript.
func compare(a, b any) (c int, ok bool) {
	if sa, isStr := a.(string); isStr {
		if sb, isStr := b.(string); isStr {
			return strings.Compare(sa, sb), true
		}
	}
	// Arrays and objects become strings first, which may make both strings.
	switch a.(type) {
	case []any, map[string]any:
		a = jsString(a)
	}
	switch b.(type) {
	case []any, map[string]any:
		b = jsString(b)
	}
	if sa, isStr := a.(string); isStr {
		if sb, isStr := b.(string); isStr {
			return strings.Compare(sa, sb), true
		}
	}
	x, y := toNumber(a), toNumber(b)
	switch {
	case math.IsNaN(x) || math.IsNaN(y):
		return 0, false
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

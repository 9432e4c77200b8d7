package evaluator

import "math"

// Reason says why an evaluation produced its value. The values are the
// OpenFeature resolution reasons, spelled as OpenFeature and flagd spell them,
// so they can be passed through to SDKs and OFREP responses unchanged.
type Reason string

// Resolution reasons.
const (
	// ReasonStatic: the flag has no targeting; its default variant was used.
	ReasonStatic Reason = "STATIC"
	// ReasonDefault: the targeting rule returned null (no rule matched), so
	// the default variant was used; or the flag has no default variant and
	// the caller's fallback applies (then Result.Value is nil).
	ReasonDefault Reason = "DEFAULT"
	// ReasonTargetingMatch: the targeting rule named the variant.
	ReasonTargetingMatch Reason = "TARGETING_MATCH"
	// ReasonSplit: the variant came straight out of a fractional split.
	ReasonSplit Reason = "SPLIT"
	// ReasonDisabled: the flag is DISABLED; the caller's fallback applies
	// and Result.Value is nil.
	ReasonDisabled Reason = "DISABLED"
	// ReasonError: evaluation failed; see Result.ErrorCode.
	ReasonError Reason = "ERROR"
)

// ErrorCode classifies a failed evaluation, using the OpenFeature codes.
type ErrorCode string

// Error codes. The empty ErrorCode means "no error".
const (
	// ErrFlagNotFound: no flag with that key in the set.
	ErrFlagNotFound ErrorCode = "FLAG_NOT_FOUND"
	// ErrTypeMismatch: the value is not of the type the caller asked for
	// (only produced by Result.As and Result.Typed).
	ErrTypeMismatch ErrorCode = "TYPE_MISMATCH"
	// ErrParse: the flag's targeting could not be compiled (only possible for
	// sets compiled with Options.TolerateTargetingErrors), which is what flagd
	// reports for, e.g., a $ref to an evaluator that does not exist.
	ErrParse ErrorCode = "PARSE_ERROR"
	// ErrTargetingKeyMissing is defined for callers that require a targeting
	// key. The engine itself never returns it: like flagd, a fractional split
	// without a targeting key yields null and so the default variant.
	ErrTargetingKeyMissing ErrorCode = "TARGETING_KEY_MISSING"
	// ErrInvalidContext is defined for callers that validate contexts before
	// evaluating (for example an API layer refusing a non-object context).
	// The engine itself never returns it.
	ErrInvalidContext ErrorCode = "INVALID_CONTEXT"
	// ErrGeneral: any other failure, notably a targeting rule that resolved
	// to a variant name the flag does not have (as flagd's providers do).
	ErrGeneral ErrorCode = "GENERAL"
)

// Type is the type of a flag's variant values, or the type a caller asks a
// value to have.
type Type string

// Variant types (what VariantType reports) and the two OpenFeature number
// flavours a caller may request (TypeInteger, TypeFloat).
const (
	TypeBool   Type = "boolean"
	TypeString Type = "string"
	TypeNumber Type = "number"
	// TypeObject covers JSON objects and arrays: OpenFeature's "object"
	// (structure) flag type accepts both.
	TypeObject Type = "object"
	// TypeInteger requests a number that must be whole; As returns int64.
	TypeInteger Type = "integer"
	// TypeFloat requests any number; As returns float64. Same as TypeNumber.
	TypeFloat Type = "float"
)

// Accepts reports whether v (a JSON-decoded value: bool, string, float64 or
// another Go number, map[string]any, []any) is a valid value for a flag whose
// variants have type t. It lets callers such as testing-session overrides
// check a replacement value against VariantType before using it.
func (t Type) Accepts(v any) bool {
	_, ok := convert(v, t)
	return ok
}

// Result is the outcome of evaluating one flag.
//
// Value and Metadata are shared with the FlagSet (no copy is made per
// evaluation, which is what keeps evaluation allocation-free): callers must
// treat them as read-only.
type Result struct {
	// Flag is the key that was evaluated.
	Flag string
	// Value is the resolved variant's value (bool, string, float64,
	// map[string]any or []any), or nil when the caller's fallback applies:
	// the flag is disabled, has no default variant, or evaluation failed.
	Value any
	// Variant is the resolved variant's name, or "" when Value is nil.
	Variant string
	// Reason says why Value was chosen.
	Reason Reason
	// ErrorCode is set when Reason is ReasonError.
	ErrorCode ErrorCode
	// ErrorMessage explains ErrorCode for humans and logs.
	ErrorMessage string
	// Metadata is the flag-set metadata overlaid by the flag's own metadata
	// (nil when both are empty or the flag does not exist).
	Metadata map[string]any
	// ValueJSON and MetadataJSON are Value and Metadata as encoding/json
	// encodes them, computed when the set was compiled, so that an API can
	// write an answer without encoding anything per request. Nil when
	// there is no value (or no metadata). Shared: read only.
	ValueJSON, MetadataJSON []byte
	// FlagJSON and VariantJSON are Flag and Variant as encoding/json
	// encodes them (as JSON strings), also computed at compile time for
	// the same reason. FlagJSON is nil when the flag does not exist,
	// VariantJSON when Variant is "". They describe Flag and Variant as
	// Evaluate set them: code that changes either must update or clear
	// the matching encoding. Shared: read only.
	FlagJSON, VariantJSON []byte
}

// As returns the value converted to the requested type the way OpenFeature
// SDKs do: bool, string, float64 (TypeFloat, TypeNumber), int64 (TypeInteger,
// whole numbers only) or the object (TypeObject: map[string]any or []any).
//
// It returns the result's own ErrorCode when evaluation failed, ErrTypeMismatch
// when the value has another type, and (nil, "") when there is no value and
// the caller's fallback applies (disabled flag, no default variant).
func (r Result) As(t Type) (any, ErrorCode) {
	if r.ErrorCode != "" {
		return nil, r.ErrorCode
	}
	if r.Value == nil {
		return nil, ""
	}
	v, ok := convert(r.Value, t)
	if !ok {
		return nil, ErrTypeMismatch
	}
	return v, ""
}

// Typed applies OpenFeature SDK semantics for a typed evaluation with a
// fallback value: on error, type mismatch, a disabled flag or a missing
// default variant, Value becomes fallback; otherwise Value is converted as by
// As. A type mismatch turns the result into Reason ERROR / TYPE_MISMATCH with
// Variant cleared, as the SDKs report it.
func (r Result) Typed(t Type, fallback any) Result {
	// The fallback replaces the value and the variant, so their compiled
	// encodings no longer describe them. A converted value keeps its
	// encoding: conversion changes only its Go type, not its JSON.
	if r.ErrorCode != "" || r.Value == nil {
		r.Value, r.ValueJSON = fallback, nil
		r.Variant, r.VariantJSON = "", nil
		return r
	}
	v, ok := convert(r.Value, t)
	if !ok {
		r.Value, r.ValueJSON = fallback, nil
		r.Variant, r.VariantJSON = "", nil
		r.Reason = ReasonError
		r.ErrorCode = ErrTypeMismatch
		r.ErrorMessage = "flag " + quote(r.Flag) + " has a value of type " + string(typeOf(r.Value)) + ", not " + string(t)
		return r
	}
	r.Value = v
	return r
}

// convert checks v against t and returns it in the Go type that t maps to.
func convert(v any, t Type) (any, bool) {
	switch t {
	case TypeBool:
		b, ok := v.(bool)
		return b, ok
	case TypeString:
		s, ok := v.(string)
		return s, ok
	case TypeNumber, TypeFloat:
		f, ok := numberValue(v)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		return f, true
	case TypeInteger:
		f, ok := numberValue(v)
		// Whole numbers only: silently truncating 0.5 to 0 would hide a
		// misconfigured flag; 2^63 is the first float64 out of int64 range.
		if !ok || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
			return nil, false
		}
		return int64(f), true
	case TypeObject:
		switch v.(type) {
		case map[string]any, []any:
			return v, true
		}
		return nil, false
	}
	return nil, false
}

// typeOf names the variant type of a JSON-decoded value ("" if it has none).
func typeOf(v any) Type {
	switch v.(type) {
	case bool:
		return TypeBool
	case string:
		return TypeString
	case map[string]any, []any:
		return TypeObject
	}
	if _, ok := numberValue(v); ok {
		return TypeNumber
	}
	return ""
}

// Package jsonbody reads JSON request bodies, strictly and once, for every
// front door: one JSON object, no unknown field, nothing after it, within a
// size bound, with an error that names the problem.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/flagbridge/flagbridge/apierror"
)

// Decode reads a JSON object body of at most limit bytes into dst, refusing
// unknown fields, wrong types, trailing data and larger bodies with a
// message that names the problem. An empty body is allowed only if
// optional.
func Decode(r *http.Request, dst any, limit int64, optional bool) error {
	return DecodeWith(r, dst, limit, optional, nil)
}

// DecodeWith is Decode where a field of the wrong type gets the answer
// fieldErrors gives for it, if any.
func DecodeWith(r *http.Request, dst any, limit int64, optional bool, fieldErrors map[string]*apierror.Error) error {
	body, err := Read(r, limit)
	if err != nil {
		return err
	}
	return DecodeBytes(body, dst, optional, fieldErrors)
}

// DecodeBytes is DecodeWith for a body already read (by Read).
func DecodeBytes(body []byte, dst any, optional bool, fieldErrors map[string]*apierror.Error) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return apierror.Invalid("request body is required (a JSON object)")
	}
	err := Strict(body, dst)
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if e, ok := fieldErrors[typ.Field]; ok {
			return e
		}
	}
	if err != nil {
		var ae *apierror.Error
		if !errors.As(err, &ae) {
			return apierror.Invalid("%s", describeJSONError(err))
		}
	}
	return err
}

// Read reads a request body of at most limit bytes.
func Read(r *http.Request, limit int64) ([]byte, error) {
	return ReadInto(r, limit, nil)
}

// ReadInto is Read into buf's array when the body announces a length that
// fits in it, for a handler that allocates buf with the rest of its
// request's state.
func ReadInto(r *http.Request, limit int64, buf []byte) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= limit {
		// The usual case: buf, or one allocation of the announced size,
		// instead of io.ReadAll's growing buffer.
		var body []byte
		if n <= int64(cap(buf)) {
			body = buf[:n]
		} else {
			body = make([]byte, n)
		}
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, apierror.Invalid("could not read the request body: %v", err)
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, apierror.Invalid("could not read the request body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, apierror.Invalid("request body is larger than %d bytes", limit)
	}
	return body, nil
}

// Strict decodes one JSON value into dst, refusing unknown fields and
// trailing data. A decoding error is returned as encoding/json gave it (the
// caller may answer for a field), trailing data as an *apierror.Error.
func Strict(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err // described by the caller, which may answer for a field
	}
	// dec.More is not enough: it reports false for a stray '}' or ']', so
	// `{"name":"x"}}` would pass. Only the end of the body may follow.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apierror.Invalid("request body has data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("request body must be a JSON object, not %s", typ.Value)
		}
		return fmt.Sprintf("%s must be %s, not %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of body"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return "invalid JSON: " + strings.TrimPrefix(msg, "json: ")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	case "int", "int64", "uint8", "float64":
		return "a number"
	}
	return kind
}

// Optional is a member of a JSON object that may be absent, null or a value:
// what a PATCH body needs to tell "leave it" from "clear it", which a
// pointer cannot (encoding/json leaves it nil for both).
type Optional[T any] struct {
	// Set is whether the member was there, null included.
	Set bool
	// Value is the member's value, nil if it was null or absent.
	Value *T
}

// Null reports whether the member was there and null.
func (o Optional[T]) Null() bool { return o.Set && o.Value == nil }

// UnmarshalJSON records the member, decoding a value as strictly as the
// body around it. encoding/json calls it for null too, which is the point.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set, o.Value = true, nil
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var v T
	// A type error keeps its path: encoding/json prefixes this member's
	// name to the field Strict reports.
	if err := Strict(b, &v); err != nil {
		return err
	}
	o.Value = &v
	return nil
}

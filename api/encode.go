package api

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/evaluation"
)

// appendEvaluation appends the native answer for one successful evaluation
// to dst, byte for byte what encoding/json makes of viewOutcome(o), but
// from the JSON the evaluator encoded when the flag set was compiled: the
// hot path encodes nothing. ok is false when it cannot (an error result,
// an override, a key that is not valid UTF-8); the caller then encodes.
func appendEvaluation(dst []byte, o evaluation.Outcome) (_ []byte, ok bool) {
	if o.ErrorCode != "" || o.Overridden || (o.Value != nil && o.ValueJSON == nil) ||
		(len(o.Metadata) > 0 && o.MetadataJSON == nil) || !utf8.ValidString(o.Flag) || !utf8.ValidString(o.Variant) {
		return dst, false
	}
	dst = append(dst, `{"flag":`...)
	dst = appendJSONString(dst, o.Flag)
	dst = append(dst, `,"value":`...)
	if o.Value == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, o.ValueJSON...)
	}
	if o.Variant != "" {
		dst = append(dst, `,"variant":`...)
		dst = appendJSONString(dst, o.Variant)
	}
	dst = append(dst, `,"reason":`...)
	dst = appendJSONString(dst, string(o.Reason))
	if len(o.MetadataJSON) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, o.MetadataJSON...)
	}
	return append(dst, '}'), true
}

// appendJSONString appends s as encoding/json encodes a valid UTF-8 string
// (with its default HTML escaping).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// writeEvaluation sends one evaluation's native answer, without encoding
// when it can.
func writeEvaluation(w http.ResponseWriter, o evaluation.Outcome) {
	buf := make([]byte, 0, 96+len(o.Flag)+len(o.ValueJSON)+len(o.MetadataJSON))
	body, ok := appendEvaluation(buf, o)
	if !ok {
		var err error
		if body, err = json.Marshal(viewOutcome(o)); err != nil {
			apierror.Write(w, apierror.Internal)
			return
		}
	}
	apierror.WriteJSONBody(w, http.StatusOK, append(body, '\n'))
}

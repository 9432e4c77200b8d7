package api

import (
	"encoding/json"
	"net/http"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/evaluator"
)

// reasonJSON holds the reasons a successful, not overridden evaluation can
// have, each encoded once by encoding/json; any other reason makes
// appendEvaluation refuse, and the caller encodes.
var reasonJSON = func() map[evaluator.Reason][]byte {
	m := map[evaluator.Reason][]byte{}
	for _, r := range []evaluator.Reason{evaluator.ReasonStatic, evaluator.ReasonDefault,
		evaluator.ReasonTargetingMatch, evaluator.ReasonSplit, evaluator.ReasonDisabled} {
		m[r], _ = json.Marshal(string(r))
	}
	return m
}()

// appendEvaluation appends the native answer for one successful evaluation
// to dst, byte for byte what encoding/json makes of viewOutcome(o), by
// concatenating the pieces encoding/json encoded when the flag set was
// compiled (flag key, value, variant name, metadata) and the reason: the
// hot path encodes nothing. ok is false when it cannot (an error result,
// an override, a piece without its encoding); the caller then encodes.
func appendEvaluation(dst []byte, o evaluation.Outcome) (_ []byte, ok bool) {
	reason, known := reasonJSON[o.Reason]
	if o.ErrorCode != "" || o.Overridden || !known || o.FlagJSON == nil ||
		(o.Value != nil && o.ValueJSON == nil) || (o.Variant != "" && o.VariantJSON == nil) ||
		(len(o.Metadata) > 0 && o.MetadataJSON == nil) {
		return dst, false
	}
	dst = append(dst, `{"flag":`...)
	dst = append(dst, o.FlagJSON...)
	dst = append(dst, `,"value":`...)
	if o.Value == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, o.ValueJSON...)
	}
	if o.Variant != "" {
		dst = append(dst, `,"variant":`...)
		dst = append(dst, o.VariantJSON...)
	}
	dst = append(dst, `,"reason":`...)
	dst = append(dst, reason...)
	if len(o.MetadataJSON) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, o.MetadataJSON...)
	}
	return append(dst, '}'), true
}

// writeEvaluation sends one evaluation's native answer, without encoding
// when it can, in c's storage.
func writeEvaluation(w http.ResponseWriter, o evaluation.Outcome, c *evalCall) {
	body, ok := appendEvaluation(c.answer[:0], o)
	if !ok {
		var err error
		if body, err = json.Marshal(viewOutcome(o)); err != nil {
			apierror.Write(w, apierror.Internal)
			return
		}
	}
	apierror.WriteJSONBodyIn(w, http.StatusOK, append(body, '\n'), &c.headers)
}

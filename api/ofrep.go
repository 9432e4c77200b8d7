package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/evaluator"
	"github.com/flagbridge/flagbridge/streams"
)

// The OpenFeature Remote Evaluation Protocol (OFREP) endpoints. Their
// bodies and error codes are OFREP's, not FlagBridge's native ones; the
// edge's own answers (401, 403, 429) are the same as everywhere.

// ofrepRequest is the body of both OFREP evaluation endpoints.
type ofrepRequest struct {
	Context map[string]any `json:"context,omitempty"`
}

// ofrepResult is one flag in OFREP's shape: a success (Value absent when
// the code default applies) or a failure (ErrorCode set). Key is empty
// only in the failure of a whole bulk request, which OFREP answers with
// errorCode and errorDetails alone.
type ofrepResult struct {
	Key          string         `json:"key,omitempty"`
	Value        any            `json:"value,omitempty"`
	Reason       string         `json:"reason,omitempty"`
	Variant      string         `json:"variant,omitempty"`
	Metadata     map[string]any `json:"metadata,omitempty"`
	ErrorCode    string         `json:"errorCode,omitempty"`
	ErrorDetails string         `json:"errorDetails,omitempty"`
}

// ofrepOutcome renders an outcome. Value is an interface, so omitempty
// leaves out only a missing value (the code default), never false, 0 or "".
func ofrepOutcome(o evaluation.Outcome) ofrepResult {
	if o.ErrorCode != "" {
		return ofrepResult{Key: o.Flag, ErrorCode: string(o.ErrorCode), ErrorDetails: o.ErrorMessage}
	}
	res := ofrepResult{Key: o.Flag, Value: o.Value, Reason: string(o.Reason), Variant: o.Variant, Metadata: o.Metadata}
	if o.Overridden {
		// OFREP's reasons are a closed list: a pinned value is STATIC, and
		// the metadata says where it came from.
		res.Reason = string(evaluator.ReasonStatic)
		md := make(map[string]any, len(o.Metadata)+1)
		for k, v := range o.Metadata {
			md[k] = v
		}
		md["flagbridgeOverride"] = true
		res.Metadata = md
	}
	return res
}

// ofrepFail answers an OFREP request that cannot be evaluated, mapping
// FlagBridge errors onto OFREP's codes.
func (h *Handler) ofrepFail(w http.ResponseWriter, r *http.Request, key string, err error) {
	var ae *apierror.Error
	if !errors.As(err, &ae) {
		h.log.Error("storage failure", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		apierror.Write(w, apierror.StorageDown)
		return
	}
	switch {
	case ae.Status == http.StatusForbidden || ae.Status == http.StatusUnauthorized:
		apierror.Write(w, ae)
		return
	case ae.Code == apierror.CodeInvalidContext:
		writeOFREP(w, http.StatusBadRequest, ofrepResult{Key: key, ErrorCode: string(evaluator.ErrInvalidContext), ErrorDetails: ae.Message})
	case ae.Code == apierror.CodeInvalidRequest:
		writeOFREP(w, http.StatusBadRequest, ofrepResult{Key: key, ErrorCode: string(evaluator.ErrParse), ErrorDetails: ae.Message})
	case ae.Status >= 500:
		writeOFREP(w, ae.Status, ofrepResult{ErrorDetails: ae.Message})
	default:
		// A missing environment or testing session: the request cannot be
		// evaluated as asked, which OFREP calls GENERAL.
		writeOFREP(w, http.StatusBadRequest, ofrepResult{Key: key, ErrorCode: string(evaluator.ErrGeneral), ErrorDetails: ae.Message})
	}
}

func writeOFREP(w http.ResponseWriter, status int, v any) {
	apierror.WriteJSON(w, status, v)
}

// OFREPEvaluate serves POST /ofrep/v1/evaluate/flags/{key}.
func (h *Handler) OFREPEvaluate(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	key := r.PathValue("key")
	c := new(evalCall)
	if err := c.decode(r, &c.ofrep, true); err != nil {
		h.ofrepFail(w, r, key, err)
		return nil
	}
	if err := c.checkContext(c.ofrep.Context); err != nil {
		h.ofrepFail(w, r, key, err)
		return nil
	}
	if err := c.begin(h, r, p); err != nil {
		h.ofrepFail(w, r, key, err)
		return nil
	}
	out := c.ev.Evaluate(key, c.contextFor(key))
	c.setVersion(w)
	switch out.ErrorCode {
	case "":
		writeOFREP(w, http.StatusOK, ofrepOutcome(out))
	case evaluator.ErrFlagNotFound:
		writeOFREP(w, http.StatusNotFound, ofrepOutcome(out))
	default:
		writeOFREP(w, http.StatusBadRequest, ofrepOutcome(out))
	}
	return nil
}

// ofrepBulk is the answer of the bulk endpoint.
type ofrepBulk struct {
	Flags    []ofrepResult  `json:"flags"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// OFREPEvaluateAll serves POST /ofrep/v1/evaluate/flags: every flag (a
// client key's client-visible ones). Its ETag is the digest of the answer
// itself (but for its eventStreams, whose token is new each time), which
// holds the flag-set version and depends on the whole context and the
// session's overrides: a changed context or set can never be answered 304
// by mistake, even by rules that read the clock. A refetch an event
// stream asked for (flagConfigEtag) is answered from that version or a
// newer one.
func (h *Handler) OFREPEvaluateAll(w http.ResponseWriter, r *http.Request, a *edge.Admission) error {
	p := a.Principal
	var in ofrepRequest
	if err := decodeEvaluation(r, &in, true); err != nil {
		h.ofrepFail(w, r, "", err)
		return nil
	}
	ctx, err := evaluationContext(in.Context)
	if err != nil {
		h.ofrepFail(w, r, "", err)
		return nil
	}
	ev, err := h.eval.BeginAtLeast(r.Context(), p, r.Header.Get(HeaderProject), r.Header.Get(HeaderEnvironment),
		r.Header.Get(HeaderSession), streams.ParseETag(r.URL.Query().Get("flagConfigEtag")))
	if err != nil {
		h.ofrepFail(w, r, "", err)
		return nil
	}
	keys := ev.Keys()
	out := ofrepBulk{Flags: make([]ofrepResult, len(keys)), Metadata: map[string]any{"version": ev.Set.Version}}
	if ev.Session != nil {
		out.Metadata["flagbridgeSession"] = ev.Session.ID
	}
	for i, k := range keys {
		out.Flags[i] = ofrepOutcome(ev.Evaluate(k, ctx))
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	if s := h.eventStreams(r, a, &ev); s != nil {
		// Spliced in after the ETag is taken: {"flags":...,"eventStreams":[...]}.
		body = append(append(body[:len(body)-1], `,"eventStreams":`...), s...)
		body = append(body, '}')
	}
	setVersion(w, &ev)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// etagMatches implements If-None-Match's weak comparison for one ETag.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, candidate := range strings.Split(header, ",") {
		c := strings.TrimSpace(candidate)
		if c == "*" || strings.TrimPrefix(c, "W/") == etag {
			return true
		}
	}
	return false
}

// ofrepConfiguration describes FlagBridge to OFREP providers that ask.
// OFREPConfiguration serves GET /ofrep/v1/configuration.
func (h *Handler) OFREPConfiguration(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	apierror.WriteJSON(w, http.StatusOK, map[string]any{
		"name": "FlagBridge",
		"capabilities": map[string]any{
			"cacheInvalidation": map[string]any{
				"polling": map[string]any{"enabled": true, "minPollingIntervalMs": 1000},
			},
			"flagEvaluation": map[string]any{
				"supportedTypes": []string{"int", "float", "string", "boolean", "object"},
			},
		},
	})
	return nil
}

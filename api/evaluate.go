package api

import (
	"net/http"
	"strconv"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/evaluator"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
)

// Request headers of the evaluation endpoints (native and OFREP), in Go's
// canonical form (FlagBridge-Session on the wire, where case does not
// matter), since http.Header.Get allocates for any other form.
const (
	// HeaderSession names a testing session whose overrides apply.
	HeaderSession = "Flagbridge-Session"
	// HeaderProject and HeaderEnvironment say where an admin key evaluates;
	// live and test keys evaluate in their own environment.
	HeaderProject     = "Flagbridge-Project"
	HeaderEnvironment = "Flagbridge-Environment"
)

// MaxBatchFlags bounds the flags one batch request may name.
const MaxBatchFlags = 1000

// evaluateRequest is the body of POST /v1/evaluate.
type evaluateRequest struct {
	Flag    string         `json:"flag"`
	Context map[string]any `json:"context,omitempty"`
}

// batchRequest is the body of POST /v1/evaluate/batch.
type batchRequest struct {
	Flags   []string       `json:"flags,omitempty"`
	Context map[string]any `json:"context,omitempty"`
}

// evaluationView is one flag's result on the native API.
type evaluationView struct {
	Flag         string         `json:"flag"`
	Value        any            `json:"value"`
	Variant      string         `json:"variant,omitempty"`
	Reason       string         `json:"reason"`
	ErrorCode    string         `json:"error_code,omitempty"`
	ErrorMessage string         `json:"error_message,omitempty"`
	Metadata     map[string]any `json:"metadata,omitempty"`
}

func viewOutcome(o evaluation.Outcome) evaluationView {
	return evaluationView{
		Flag: o.Flag, Value: o.Value, Variant: o.Variant, Reason: string(o.Reason),
		ErrorCode: string(o.ErrorCode), ErrorMessage: o.ErrorMessage, Metadata: o.Metadata,
	}
}

// errContextNotObject is the answer to a context that is not a JSON
// object; decodeEvaluation reports it while decoding the body, so that the
// context is parsed once.
var errContextNotObject = invalidContext("context must be a JSON object")

// evaluationFieldErrors are the answers to members of the wrong type that
// are not INVALID_REQUEST.
var evaluationFieldErrors = map[string]*apierror.Error{"context": errContextNotObject}

// decodeEvaluation decodes an evaluation request's body (dst is an
// *evaluateRequest, *batchRequest or *ofrepRequest), reporting a context of
// the wrong type as INVALID_CONTEXT: by scanEvaluation when it can, else by
// encoding/json, which gives every error.
func decodeEvaluation(r *http.Request, dst any, optional bool) error {
	body, err := jsonbody.Read(r, MaxBodyBytes)
	if err != nil {
		return err
	}
	_, err = decodeEvaluationBody(body, dst, optional, nil)
	return err
}

// decodeEvaluationBody is decodeEvaluation for a body already read, which
// must not change afterwards: strings decoded from it may view it. If
// rawContext is not nil and the scanner reads the body, the context is
// left raw in it (see evalTarget.rawContext) and lazy is true.
func decodeEvaluationBody(body []byte, dst any, optional bool, rawContext *[]byte) (lazy bool, err error) {
	if t, ok := evalTargetOf(dst); ok {
		t.rawContext = rawContext
		if scanEvaluation(body, t) {
			return rawContext != nil, nil
		}
	}
	return false, jsonbody.DecodeBytes(body, dst, optional, evaluationFieldErrors)
}

// evaluationContext checks a decoded context: absent or null is empty, and
// a targetingKey that is not a string is INVALID_CONTEXT.
func evaluationContext(ctx map[string]any) (map[string]any, error) {
	if ctx == nil {
		return map[string]any{}, nil
	}
	if tk, ok := ctx["targetingKey"]; ok {
		if _, isString := tk.(string); !isString {
			return nil, invalidContext("context.targetingKey must be a string")
		}
	}
	return ctx, nil
}

func invalidContext(msg string) *apierror.Error {
	return apierror.New(http.StatusBadRequest, apierror.CodeInvalidContext, msg)
}

// begin prepares a request's evaluations from its headers.
func (h *Handler) begin(r *http.Request, p *authz.Principal) (evaluation.Evaluation, error) {
	return h.eval.Begin(r.Context(), p,
		r.Header.Get(HeaderProject), r.Header.Get(HeaderEnvironment), r.Header.Get(HeaderSession))
}

// Evaluate serves POST /v1/evaluate.
func (h *Handler) Evaluate(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	c := new(evalCall)
	in := &c.native
	if err := c.decode(r, in, false); err != nil {
		return err
	}
	if in.Flag == "" {
		return apierror.Invalid("flag is required")
	}
	if err := c.checkContext(in.Context); err != nil {
		return err
	}
	if err := c.begin(h, r, p); err != nil {
		return err
	}
	out := c.ev.Evaluate(in.Flag, c.contextFor(in.Flag))
	if out.ErrorCode == evaluator.ErrFlagNotFound {
		return apierror.New(http.StatusNotFound, apierror.CodeFlagNotFound,
			"flag "+quote(in.Flag)+" not found in environment "+quote(c.ev.Set.Ref.Environment))
	}
	c.setVersion(w)
	writeEvaluation(w, out, c)
	return nil
}

// batchView is the answer of POST /v1/evaluate/batch: every result comes
// from the same version of the flag set.
type batchView struct {
	Project     string           `json:"project"`
	Environment string           `json:"environment"`
	Version     int64            `json:"version"`
	Session     string           `json:"session,omitempty"`
	Results     []evaluationView `json:"results"`
}

// EvaluateBatch serves POST /v1/evaluate/batch.
func (h *Handler) EvaluateBatch(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in batchRequest
	if err := decodeEvaluation(r, &in, true); err != nil {
		return err
	}
	if len(in.Flags) > MaxBatchFlags {
		return apierror.Invalid("flags: at most %d flags per batch (got %d)", MaxBatchFlags, len(in.Flags))
	}
	ctx, err := evaluationContext(in.Context)
	if err != nil {
		return err
	}
	ev, err := h.begin(r, p)
	if err != nil {
		return err
	}
	keys := in.Flags
	if keys == nil {
		keys = ev.Keys()
	}
	out := batchView{
		Project: ev.Set.Ref.Project, Environment: ev.Set.Ref.Environment, Version: ev.Set.Version,
		Results: make([]evaluationView, len(keys)),
	}
	if ev.Session != nil {
		out.Session = ev.Session.ID
	}
	for i, k := range keys {
		out.Results[i] = viewOutcome(ev.Evaluate(k, ctx))
	}
	setVersion(w, &ev)
	apierror.WriteJSON(w, http.StatusOK, out)
	return nil
}

func quote(s string) string { return strconv.Quote(s) }

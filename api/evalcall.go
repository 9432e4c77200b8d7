package api

import (
	"net/http"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
)

// evalCall is the state of one single-flag evaluation request, allocated
// in one piece, since these requests are the hot path: the body when it
// fits (nearly all do), the answer, the answer's header values, the
// decoded request and the evaluation. Strings decoded from the body view
// it (see scanEvaluation), so no part of it ever serves another request.
//
// The context is decoded only if the flag reads it (see
// evalTarget.rawContext): a flag without targeting, most of them, is
// evaluated without building it.
type evalCall struct {
	body    [evalCallBody]byte
	answer  [evalCallAnswer]byte
	headers apierror.HeaderValues
	version [1]string
	ev      evaluation.Evaluation
	native  evaluateRequest
	ofrep   ofrepRequest

	// lazy says the scanner read the body and left its context raw, in
	// rawContext; otherwise ctx is the context, decoded and checked.
	lazy       bool
	rawContext []byte
	ctx        map[string]any
}

// The inline sizes: an evaluation body is a flag name and a context of a
// few attributes, its answer a value, a variant, a reason and metadata.
// Larger ones take an allocation of their own.
const (
	evalCallBody   = 512
	evalCallAnswer = 256
)

// decode reads and decodes r's body into dst, which is c.native or c.ofrep.
func (c *evalCall) decode(r *http.Request, dst any, optional bool) error {
	body, err := jsonbody.ReadInto(r, MaxBodyBytes, c.body[:0])
	if err != nil {
		return err
	}
	c.lazy, err = decodeEvaluationBody(body, dst, optional, &c.rawContext)
	return err
}

// checkContext checks the context encoding/json decoded, if it did, as
// evaluationContext does; the scanner checked one it left raw.
func (c *evalCall) checkContext(decoded map[string]any) (err error) {
	if !c.lazy {
		c.ctx, err = evaluationContext(decoded)
	}
	return err
}

// contextFor is the context to evaluate flag with, decoded now if the
// flag reads it, or nil if it does not and the scanner left it raw.
func (c *evalCall) contextFor(flag string) map[string]any {
	switch {
	case !c.lazy:
		return c.ctx
	case c.ev.ReadsContext(flag):
		return contextOf(c.rawContext)
	}
	return nil
}

// begin prepares c's evaluation from r's headers.
func (c *evalCall) begin(h *Handler, r *http.Request, p *authz.Principal) (err error) {
	c.ev, err = h.begin(r, p)
	return err
}

// setVersion sets the answer's flag-set version header.
func (c *evalCall) setVersion(w http.ResponseWriter) {
	c.version[0] = c.ev.Set.VersionText
	w.Header()[HeaderFlagSetVersion] = c.version[:]
}

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
type evalCall struct {
	body    [evalCallBody]byte
	answer  [evalCallAnswer]byte
	headers apierror.HeaderValues
	version [1]string
	ev      evaluation.Evaluation
	native  evaluateRequest
	ofrep   ofrepRequest
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
	return decodeEvaluationBody(body, dst, optional)
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

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
)

// The fuzz targets of this file decode request bodies exactly as the
// handlers do, one target per request type, and check what any body must
// give: no panic; a refusal that is an *apierror.Error with status 400, a
// known code and a message; and, for an accepted body, JSON whose decoded
// value encodes to a body that decodes again to the same value.
//
// Run one with, for example:
//
//	go test -run '^$' -fuzz '^FuzzDecodeCreateKey$' -fuzztime 30s ./api

// commonSeeds are bodies every decoder must survive.
var commonSeeds = []string{
	``,
	` `,
	`{}`,
	`null`,
	`[]`,
	`"x"`,
	`1e999`,
	`{`,
	`{}}`,
	`{} {}`,
	`{"unknown":1}`,
	`{"a":1,"a":2}`,
	"{\"\xff\":1}",
	`{"name":"\ud800"}`,
	`{"name":"caf\u00e9"}`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
}

// evaluationCodes and adminCodes are the codes a refused body may carry.
var (
	evaluationCodes = []string{apierror.CodeInvalidRequest, apierror.CodeInvalidContext}
	adminCodes      = []string{apierror.CodeInvalidRequest}
)

// fuzzDecoder fuzzes the decoding of request type T: decode reads the body
// into a T, then check (if any) runs the handler's own checks of the
// decoded value that precede any storage access. The body's length is
// announced in Content-Length or not (a chunked upload), which takes
// different paths.
func fuzzDecoder[T any](f *testing.F, optional bool, codes []string, seeds []string,
	decode func(r *http.Request, dst any, optional bool) error, check func(*T) error) {
	for _, s := range append(seeds, commonSeeds...) {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(seeds[0]), true)
	f.Fuzz(func(t *testing.T, body []byte, unknownLength bool) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		if unknownLength {
			r.ContentLength = -1
		}
		var dst T
		err := decode(r, &dst, optional)
		if err == nil && check != nil {
			err = check(&dst)
		}
		if err != nil {
			requireBadRequest(t, err, codes)
			return
		}
		if len(body) > MaxBodyBytes {
			t.Fatalf("accepted a body of %d bytes", len(body))
		}
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) == 0 {
			if !optional {
				t.Fatal("accepted an empty body where one is required")
			}
			return
		}
		// One JSON value and nothing after it: an object, or null (which
		// encoding/json, and so the API, reads as an empty object).
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
		if trimmed[0] != '{' && !bytes.Equal(trimmed, []byte("null")) {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		// What was read encodes, and decodes again to the same value.
		first, err := json.Marshal(&dst)
		if err != nil {
			t.Fatalf("the decoded value of %q does not encode: %v", body, err)
		}
		var again T
		if err := jsonbody.Strict(first, &again); err != nil {
			t.Fatalf("%q decoded and re-encoded to %s, which does not decode: %v", body, first, err)
		}
		second, _ := json.Marshal(&again)
		if !bytes.Equal(first, second) {
			t.Fatalf("%q: the decoded value changes on a round trip:\n%s\n%s", body, first, second)
		}
	})
}

// requireBadRequest fails unless err is a 400 *apierror.Error with one of
// codes and a message fit for a JSON error body.
func requireBadRequest(t *testing.T, err error, codes []string) {
	t.Helper()
	var ae *apierror.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %T %v is not an *apierror.Error", err, err)
	}
	if ae.Status != http.StatusBadRequest || !slices.Contains(codes, ae.Code) {
		t.Fatalf("error %d %s, want 400 with one of %v", ae.Status, ae.Code, codes)
	}
	if ae.Message == "" || !utf8.ValidString(ae.Message) {
		t.Fatalf("error message %q is empty or not UTF-8", ae.Message)
	}
}

// checkContext is what the evaluation handlers check of a decoded
// context before evaluating.
func checkContext(ctx map[string]any) error {
	_, err := evaluationContext(ctx)
	return err
}

func FuzzDecodeEvaluate(f *testing.F) {
	fuzzDecoder(f, false, evaluationCodes, []string{
		`{"flag":"new-checkout","context":{"targetingKey":"user-42","plan":"pro"}}`,
		`{"flag":"f"}`,
		`{"flag":"f","context":null}`,
		`{"flag":"f","context":[]}`,
		`{"flag":"f","context":{"targetingKey":7}}`,
		`{"flag":1}`,
		`{"flag":"f","context":{"n":1e308,"m":-0,"l":[1,"2",null,{"x":true}]}}`,
	}, decodeEvaluation, func(in *evaluateRequest) error { return checkContext(in.Context) })
}

func FuzzDecodeBatch(f *testing.F) {
	fuzzDecoder(f, true, evaluationCodes, []string{
		`{"flags":["a","b"],"context":{"targetingKey":"u"}}`,
		`{"flags":[]}`,
		`{"flags":null}`,
		`{"flags":"a"}`,
		`{"flags":[1]}`,
		`{"context":{"targetingKey":null}}`,
	}, decodeEvaluation, func(in *batchRequest) error { return checkContext(in.Context) })
}

func FuzzDecodeOFREP(f *testing.F) {
	fuzzDecoder(f, true, evaluationCodes, []string{
		`{"context":{"targetingKey":"user-1","email":"a@example.com"}}`,
		`{"context":{}}`,
		`{"context":"x"}`,
		`{"context":{"targetingKey":["x"]}}`,
	}, decodeEvaluation, func(in *ofrepRequest) error { return checkContext(in.Context) })
}

func FuzzDecodeCreateProject(f *testing.F) {
	fuzzDecoder[tenancy.CreateProjectInput](f, false, adminCodes, []string{
		`{"slug":"my-app","name":"My App"}`,
		`{"slug":1}`,
		`{"slug":"a","name":"b","extra":true}`,
	}, decodeJSON, nil)
}

func FuzzDecodeCreateEnvironment(f *testing.F) {
	fuzzDecoder[tenancy.CreateEnvironmentInput](f, false, adminCodes, []string{
		`{"slug":"qa","name":"QA"}`,
		`{"slug":"qa","name":null}`,
	}, decodeJSON, nil)
}

func FuzzDecodeCreateKey(f *testing.F) {
	fuzzDecoder[keys.CreateInput](f, false, adminCodes, []string{
		`{"name":"Production server","type":"live","environment":"production"}`,
		`{"name":"ci","type":"test","environment":"staging","permissions":["READ"],"expires_in":"30d"}`,
		`{"name":"x","type":"admin","resources":["a","b"]}`,
		`{"name":"x","permissions":"READ"}`,
		`{"name":"x","permissions":[null]}`,
	}, decodeJSON, nil)
}

func FuzzDecodeRotateKey(f *testing.F) {
	fuzzDecoder[keys.RotateInput](f, true, adminCodes, []string{
		`{"grace_period":"1h"}`,
		`{"grace_period":3600}`,
	}, decodeJSON, nil)
}

func FuzzDecodeCreateSession(f *testing.F) {
	fuzzDecoder[flags.CreateSessionInput](f, true, adminCodes, []string{
		`{"ttl":"1h","project":"shop","environment":"staging"}`,
		`{"ttl":""}`,
	}, decodeJSON, nil)
}

func FuzzDecodeSetOverrides(f *testing.F) {
	fuzzDecoder[flags.SetOverridesInput](f, false, adminCodes, []string{
		`{"overrides":{"new-checkout":true,"theme":"dark","limit":3,"cfg":{"a":[1,2]}}}`,
		`{"overrides":{"f":null}}`,
		`{"overrides":[]}`,
		`{"overrides":{"f": 1 }}`,
	}, decodeJSON, nil)
}

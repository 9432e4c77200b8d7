package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
)

// problem is what a refusal of the shared decoder says: each message names
// what is wrong with the body, and nothing else.
var problem = regexp.MustCompile(`^(request body is required \(a JSON object\)` +
	`|request body is larger than 16384 bytes` +
	`|request body has data after the JSON object` +
	`|request body must be a JSON object, not .+` +
	`|malformed JSON at byte \d+: .+` +
	`|malformed JSON: unexpected end of body` +
	`|unknown field ".*"` +
	`|[A-Za-z_.]+ must be .+, not .+` +
	`|invalid JSON: .+)$`)

// FuzzDecode decodes one body, as the dashboard does (internal/jsonbody at
// the dashboard's limit of 16 KiB, a body required), into each of the
// bodies the dashboard's routes read: logging in, looking up and accepting
// an invitation, and inviting a member (which the page sends to the REST
// API). It checks what any body must give: no panic; a refusal that is a
// 400 INVALID_REQUEST naming the problem; and, for an accepted body, one
// JSON value and nothing after it, at most 16 KiB.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"email":"owner@example.com","password":"correct horse battery"}`,
		`{"password":"0123456789"}`,
		`{"token":"KZ5q0bFpTB1y6P3m9r1n2W8e4Xc7Va0hJdLsQgYtUiO","password":"0123456789"}`,
		`{"token":"KZ5q0bFpTB1y6P3m9r1n2W8e4Xc7Va0hJdLsQgYtUiO"}`,
		`{"email":"new@example.com","name":"New Person","role":"ADMIN"}`,
		`{}`, ``, `null`, `[]`, `{"email":1}`, `{"unknown":true}`,
		`{"email":"a"} {"email":"b"}`, `{"email":"a"}x`, `{"email":"a"}}`,
		`{"email":"` + strings.Repeat("a", 17<<10) + `"}`,
		`{"email":"` + strings.Repeat("a", maxBodyBytes-len(`{"email":""}`)) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var login struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		var lookup inviteToken
		var accept struct {
			Token    string `json:"token"`
			Password string `json:"password"`
		}
		var invite identity.InviteInput
		for _, dst := range []any{&login, &lookup, &accept, &invite} {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			err := jsonbody.Decode(r, dst, maxBodyBytes, false)
			if err != nil {
				var ae *apierror.Error
				if !errors.As(err, &ae) {
					t.Fatalf("error %T %v is not an *apierror.Error", err, err)
				}
				if ae.Status != http.StatusBadRequest || ae.Code != apierror.CodeInvalidRequest ||
					!utf8.ValidString(ae.Message) || !problem.MatchString(ae.Message) {
					t.Fatalf("body %q into %T: error %d %s %q", body, dst, ae.Status, ae.Code, ae.Message)
				}
				continue
			}
			if len(body) > maxBodyBytes {
				t.Fatalf("accepted %d bytes", len(body))
			}
			if !json.Valid(body) {
				t.Fatalf("accepted %q into %T: not one JSON value", body, dst)
			}
		}
	})
}

package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
)

// FuzzDecode decodes one body as each of the dashboard's own request types
// (log in, accept an invitation, invite a member) and checks what any body
// must give: no panic; a refusal that is a 400 INVALID_REQUEST naming the
// problem; and, for an accepted body, one JSON value and nothing after it,
// at most 16 KiB.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"email":"owner@example.com","password":"correct horse battery"}`,
		`{"password":"0123456789"}`,
		`{"email":"new@example.com","name":"New Person","role":"ADMIN"}`,
		`{}`, ``, `null`, `[]`, `{"email":1}`, `{"unknown":true}`,
		`{"email":"a"} {"email":"b"}`, `{"email":"a"}x`, `{"email":"a"}}`,
		`{"email":"` + strings.Repeat("a", 17<<10) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var login struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		var accept struct {
			Password string `json:"password"`
		}
		var invite admin.InviteInput
		for _, dst := range []any{&login, &accept, &invite} {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			err := decode(r, dst)
			if err != nil {
				var ae *apierror.Error
				if !errors.As(err, &ae) {
					t.Fatalf("error %T %v is not an *apierror.Error", err, err)
				}
				if ae.Status != http.StatusBadRequest || ae.Code != apierror.CodeInvalidRequest ||
					!strings.HasPrefix(ae.Message, "invalid request body") || !utf8.ValidString(ae.Message) {
					t.Fatalf("error %d %s %q", ae.Status, ae.Code, ae.Message)
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

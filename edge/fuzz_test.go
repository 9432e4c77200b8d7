package edge

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/flagbridge/flagbridge/apikey"
)

// bearerSyntax is the reference the parser is checked against: the scheme
// in any case, one space, and an RFC 6750 b64token with nothing after it.
var bearerSyntax = regexp.MustCompile(`^(?i:bearer) ([A-Za-z0-9\-._~+/=]+)$`)

// tokenSyntax is a bare token, as X-API-Key carries it.
var tokenSyntax = regexp.MustCompile(`^[A-Za-z0-9\-._~+/=]+$`)

// FuzzCredentials checks Credentials and BearerToken against a reference
// reading of the rules, whatever headers a request carries: Authorization
// and X-API-Key, each absent, once or twice. They never panic, they fail
// only with "no credentials" or "malformed", and what they extract is what
// the reference extracts.
func FuzzCredentials(f *testing.F) {
	key := "fb_live_0123456789ABCDEFGHIJabcdefghij" + "Zz0aB1"
	for _, s := range []struct {
		auth, auth2, apiKey, apiKey2 string
		present                      uint8
	}{
		{auth: "Bearer " + key, present: 1},
		{auth: "bEaReR " + key, present: 1},
		{auth: "Bearer  " + key, present: 1},
		{auth: "Bearer " + key + " ", present: 1},
		{auth: "Bearer", present: 1},
		{auth: "Bearer ", present: 1},
		{auth: "", present: 1},
		{auth: "Basic dXNlcjpwYXNz", present: 1},
		{auth: "Bearer a,b", present: 1},
		{auth: "Bearer \x00", present: 1},
		{auth: "Bearer " + key, auth2: "Bearer " + key, present: 3},
		{apiKey: key, present: 4},
		{apiKey: "", present: 4},
		{apiKey: key + "\t", present: 4},
		{apiKey: key, apiKey2: key, present: 12},
		{auth: "Bearer " + key, apiKey: key, present: 5},
		{present: 0},
	} {
		f.Add(s.auth, s.auth2, s.apiKey, s.apiKey2, s.present)
	}
	f.Fuzz(func(t *testing.T, auth, auth2, apiKey, apiKey2 string, present uint8) {
		h := http.Header{}
		if present&1 != 0 {
			h["Authorization"] = []string{auth}
			if present&2 != 0 {
				h["Authorization"] = append(h["Authorization"], auth2)
			}
		}
		if present&4 != 0 {
			h["X-Api-Key"] = []string{apiKey}
			if present&8 != 0 {
				h["X-Api-Key"] = append(h["X-Api-Key"], apiKey2)
			}
		}
		token, err := Credentials(h)
		want, wantErr := referenceCredentials(h)
		if err != wantErr || token != want {
			t.Fatalf("Credentials(%q) = %q, %v; want %q, %v", h, token, err, want, wantErr)
		}
		if err == nil {
			// Whatever a request presents, the key parser copes with it.
			_, _ = apikey.Parse(token)
		}
		if vals := h["Authorization"]; vals != nil {
			token, err := BearerToken(vals)
			want, wantErr := referenceBearer(vals)
			if err != wantErr || token != want {
				t.Fatalf("BearerToken(%q) = %q, %v; want %q, %v", vals, token, err, want, wantErr)
			}
		}
	})
}

func referenceCredentials(h http.Header) (string, error) {
	auth, apiKey := h["Authorization"], h["X-Api-Key"]
	switch {
	case auth != nil && apiKey != nil:
		return "", errBadCredentials
	case apiKey != nil:
		switch {
		case len(apiKey) != 1:
			return "", errBadCredentials
		case apiKey[0] == "":
			return "", errNoCredentials
		case !tokenSyntax.MatchString(apiKey[0]):
			return "", errBadCredentials
		}
		return apiKey[0], nil
	}
	return referenceBearer(auth)
}

func referenceBearer(values []string) (string, error) {
	switch {
	case len(values) == 0 || len(values) == 1 && values[0] == "":
		return "", errNoCredentials
	case len(values) > 1:
		return "", errBadCredentials
	}
	m := bearerSyntax.FindStringSubmatch(values[0])
	if m == nil {
		return "", errBadCredentials
	}
	return m[1], nil
}

package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/store"
)

// Embedded files have no modification time; their content digest is the
// ETag, so a revalidation is a 304 instead of the whole file again.
func TestStaticFilesRevalidate(t *testing.T) {
	t.Parallel()
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	chain := testchain.New(st, testchain.Options{})
	t.Cleanup(chain.Close)
	get := func(path, inm string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "https://"+host+path, nil)
		if inm != "" {
			r.Header.Set("If-None-Match", inm)
		}
		w := httptest.NewRecorder()
		chain.ServeHTTP(w, r)
		checkSecurityHeaders(t, req{method: "GET", path: path}, w.Header())
		return w
	}
	for _, path := range []string{"/dashboard/", "/dashboard/assets/app.js", "/dashboard/assets/app.css"} {
		first := get(path, "")
		etag := first.Header().Get("ETag")
		if first.Code != http.StatusOK || etag == "" {
			t.Fatalf("%s: %d, ETag %q", path, first.Code, etag)
		}
		if again := get(path, etag); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Fatalf("%s revalidated: %d with %d bytes", path, again.Code, again.Body.Len())
		}
		if other := get(path, `"something-else"`); other.Code != http.StatusOK {
			t.Fatalf("%s with a stale ETag: %d", path, other.Code)
		}
	}
}

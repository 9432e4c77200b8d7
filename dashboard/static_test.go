package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flagbridge/flagbridge/dashboard"
)

// Embedded files have no modification time; their content digest is the
// ETag, so a revalidation is a 304 instead of the whole file again.
func TestStaticFilesRevalidate(t *testing.T) {
	h := dashboard.New(dashboard.Config{})
	get := func(path, inm string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if inm != "" {
			r.Header.Set("If-None-Match", inm)
		}
		w := httptest.NewRecorder()
		h.Serve(w, r, "192.0.2.1")
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

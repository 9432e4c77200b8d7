package testchain_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/store"
)

// TestChainServesTheAPI sends a few requests through the chain: the guard
// admits and refuses, the router answers.
func TestChainServesTheAPI(t *testing.T) {
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := testchain.New(st, testchain.Options{})
	defer c.Close()
	ctx := context.Background()
	boot, err := c.Admin.Bootstrap(ctx, admin.BootstrapInput{OwnerEmail: "o@example.com", OwnerName: "O"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Admin.Tenancy.CreateProject(ctx, boot.Principal, tenancy.CreateProjectInput{Slug: "app"}); err != nil {
		t.Fatal(err)
	}
	live, err := c.Admin.Keys.CreateKey(ctx, boot.Principal, "app", keys.CreateInput{Name: "l", Type: "live", Environment: "production"})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, url, key, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, url, strings.NewReader(body))
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		method, url, key, body string
		status                 int
	}{
		{"GET", "https://x/v1/projects", boot.Key, "", 200},
		{"GET", "http://x/v1/projects", boot.Key, "", 403},
		{"GET", "https://x/v1/projects", "", "", 401},
		{"GET", "https://x/v1/projects", live.Secret, "", 403},
		{"POST", "https://x/v1/evaluate", live.Secret, `{"flag":"nope"}`, 404},
		{"GET", "https://x/v1/nope", boot.Key, "", 404},
		{"PUT", "https://x/v1/projects", boot.Key, "", 405},
		{"GET", "https://x/dashboard/", "", "", 200},
		{"GET", "https://x/dashboard/api/session", "", "", 204},
		{"GET", "https://x/dashboard/api/v1/projects", "", "", 401},
	} {
		if w := do(tc.method, tc.url, tc.key, tc.body); w.Code != tc.status {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.url, w.Code, tc.status, w.Body)
		}
	}
	if w := do("GET", "https://x/v1/projects", boot.Key, ""); w.Header().Get("X-Ratelimit-Limit") != "500" {
		t.Errorf("rate headers: %v", w.Header())
	}
	_ = http.StatusOK
}

package integration

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestCaddyfileExample runs the shipped Caddyfile.example as the README's
// quick start does, on its fixed ports 8443, 8080 and 2019.
func TestCaddyfileExample(t *testing.T) {
	t.Parallel()
	for _, port := range []string{"8443", "8080", "2019"} {
		if l, err := net.Listen("tcp", "127.0.0.1:"+port); err != nil {
			t.Fatalf("port %s is taken, and Caddyfile.example needs it: %v", port, err)
		} else {
			l.Close()
		}
	}
	c := testenv.NewCaddy(t, testenv.CaddyOptions{
		File:      filepath.Join(testenv.ProjectRoot(t), "Caddyfile.example"),
		HTTPSPort: 8443, HTTPPort: 8080, AdminPort: 2019,
	}).Start()
	admin := bootstrap(t, c)

	r := mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"my-app","name":"My App"}`), 201)
	for _, env := range []string{"production", "staging", "development"} {
		if !strings.Contains(r.Body, `"slug":"`+env+`"`) {
			t.Fatalf("environment %s missing: %s", env, r.Body)
		}
	}
	r = mustStatus(t, call(t, c, "POST", "/v1/projects/my-app/api-keys", admin,
		`{"name":"Production server","type":"live","environment":"production"}`), 201)
	live := r.JSON(t)["key"].(string)
	if !strings.HasPrefix(live, "fb_live_") {
		t.Fatalf("key %q", live)
	}
	list := mustStatus(t, call(t, c, "GET", "/v1/projects/my-app/api-keys", admin, ""), 200)
	if strings.Contains(list.Body, live) || !strings.Contains(list.Body, live[len(live)-4:]) {
		t.Fatalf("list shows the secret or no hint: %s", list.Body)
	}
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res := send(t, plain, "GET", "http://localhost:8080/v1/projects", admin, "")
	if res.Status != 403 || res.Body != bodyHTTPS {
		t.Fatalf("plain HTTP: %d %s", res.Status, res.Body)
	}
	// The example binds neither 80 nor 443 and never redirects.
	if !strings.Contains(c.Output(), "automatic HTTP->HTTPS redirects are disabled") {
		t.Fatalf("redirects are not disabled:\n%s", c.Output())
	}
	for _, port := range []string{"80", "443"} {
		if conn, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			conn.Close()
			t.Errorf("something listens on port %s while the example runs", port)
		}
	}
}

package caddymodule

import (
	"context"
	"crypto/tls"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestArrivedOverHTTPS(t *testing.T) {
	cases := []struct {
		name    string
		tls     bool
		trusted bool
		proto   []string
		want    bool
	}{
		{"TLS", true, false, nil, true},
		{"plain", false, false, nil, false},
		{"untrusted client claiming https", false, false, []string{"https"}, false},
		{"trusted proxy, https", false, true, []string{"https"}, true},
		{"trusted proxy, HTTPS", false, true, []string{"HTTPS"}, true},
		{"trusted proxy, list", false, true, []string{"https, http"}, true},
		{"trusted proxy, list nearest http", false, true, []string{"http, https"}, false},
		{"trusted proxy, http", false, true, []string{"http"}, false},
		{"trusted proxy, no header", false, true, nil, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/v1/projects", nil)
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		for _, p := range c.proto {
			r.Header.Add("X-Forwarded-Proto", p)
		}
		vars := map[string]any{caddyhttp.TrustedProxyVarKey: c.trusted}
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
		if got := arrivedOverHTTPS(r); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

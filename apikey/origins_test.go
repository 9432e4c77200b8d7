package apikey

import "testing"

func TestCleanOrigin(t *testing.T) {
	good := map[string]string{
		"https://app.example.com":      "https://app.example.com",
		"HTTPS://App.Example.COM/":     "https://app.example.com",
		"https://app.example.com:443":  "https://app.example.com",
		"https://app.example.com:8443": "https://app.example.com:8443",
		"http://localhost:5173":        "http://localhost:5173",
		"http://127.0.0.1":             "http://127.0.0.1",
		"http://[::1]:3000":            "http://[::1]:3000",
		"https://[2001:db8::1]":        "https://[2001:db8::1]",
		"http://dev.localhost:80":      "http://dev.localhost",
		" https://app.example.com ":    "https://app.example.com",
	}
	for in, want := range good {
		got, err := CleanOrigin(in)
		if err != nil || got != want {
			t.Errorf("CleanOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "app.example.com", "http://app.example.com", "ftp://app.example.com",
		"https://app.example.com/path", "https://app.example.com?x=1", "https://u:p@app.example.com",
		"https://*.example.com", "*", "null", "https://app.example.com#f", "https://",
	} {
		if got, err := CleanOrigin(bad); err == nil {
			t.Errorf("CleanOrigin(%q) = %q, accepted", bad, got)
		}
	}
}

func TestCleanOrigins(t *testing.T) {
	if _, err := CleanOrigins(nil); err == nil {
		t.Fatal("no origins accepted")
	}
	if _, err := CleanOrigins([]string{"https://a.example", "https://A.example/"}); err == nil {
		t.Fatal("a repeated origin accepted")
	}
	many := make([]string, MaxAllowedOrigins+1)
	for i := range many {
		many[i] = "https://a" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".example"
	}
	if _, err := CleanOrigins(many); err == nil {
		t.Fatal("too many origins accepted")
	}
	got, err := CleanOrigins([]string{"https://b.example", "http://localhost:8080"})
	if err != nil || len(got) != 2 || got[0] != "https://b.example" {
		t.Fatalf("%v %v", got, err)
	}
	r := &Record{AllowedOrigins: got}
	if !r.AllowsOrigin("https://b.example") || r.AllowsOrigin("https://evil.example") || r.AllowsOrigin("") {
		t.Fatal("AllowsOrigin")
	}
}

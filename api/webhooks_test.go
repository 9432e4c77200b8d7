package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/flagbridge/flagbridge/admin/keys"
)

// Creating a webhook answers its secret once; bad targets and events are
// refused by name; a key of one environment may not manage them.
func TestWebhooksHTTP(t *testing.T) {
	s := newServer(t)
	res := s.do(t, s.root, "POST", "/v1/projects/alpha/webhooks", `{"url":"https://hooks.example.com/flags","events":["flag_set.updated","api_key.*"]}`)
	created := res.json(t)
	secret, _ := created["secret"].(string)
	if res.code != 201 || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create: %d %s", res.code, res.body)
	}
	s.secrets = append(s.secrets, secret)
	list := s.do(t, s.root, "GET", "/v1/projects/alpha/webhooks", "")
	if strings.Contains(list.body, secret) || strings.Contains(list.body, `"secret"`) || !strings.Contains(list.body, created["id"].(string)) {
		t.Fatalf("list: %s", list.body)
	}
	for body, want := range map[string]string{
		`{"url":"http://hooks.example.com/x","events":["*"]}`:  "over https only",
		`{"url":"https://10.0.0.8/x","events":["*"]}`:          "10.0.0.8 is not a public address",
		`{"url":"https://hooks.example.com/x","events":[]}`:    "events is required",
		`{"url":"https://hooks.example.com/x","events":["x"]}`: `no event \"x\"`,
		`{"events":["*"]}`: "url is required",
	} {
		if res := s.do(t, s.root, "POST", "/v1/projects/alpha/webhooks", body); res.code != 400 || !strings.Contains(res.body, want) {
			t.Errorf("%s: %d %s, want 400 with %s", body, res.code, res.body, want)
		}
	}
	env := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin", Environment: "production"})
	if res := s.do(t, env, "GET", "/v1/projects/alpha/webhooks", ""); res.code != 403 {
		t.Errorf("an environment's key reads the project's webhooks: %d %s", res.code, res.body)
	}
	if res := s.do(t, s.root, "DELETE", "/v1/projects/beta/webhooks/"+created["id"].(string), ""); res.code != 404 {
		t.Errorf("deleting alpha's webhook through beta: %d %s", res.code, res.body)
	}
}

// On the embedded store too, a change reaches a webhook once, signed.
func TestWebhookDeliveryEmbeddedStore(t *testing.T) {
	s := newServer(t)
	s.svc.Audit.AllowInsecureWebhooks = true // a loopback receiver
	got := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	defer srv.Close()
	res := s.do(t, s.root, "POST", "/v1/projects/alpha/webhooks", `{"url":"`+srv.URL+`","events":["flag.*"]}`)
	secret, _ := res.json(t)["secret"].(string)
	s.secrets = append(s.secrets, secret)
	if res := s.do(t, s.root, "PUT", "/v1/projects/alpha/environments/production/flags/f", `{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a"}`); res.code != 201 {
		t.Fatal(res.body)
	}
	select {
	case r := <-got:
		body := <-bodies
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, r.Header); err != nil {
			t.Fatalf("signature: %v (%v)", err, r.Header)
		}
		if !strings.Contains(string(body), `"type":"flag.updated"`) || !strings.Contains(string(body), `"flag_set":{"project":"alpha","environment":"production","version":1}`) {
			t.Fatalf("payload %s", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5 s")
	}
	select {
	case r := <-got:
		t.Fatalf("a second delivery: %v", r.Header)
	case <-time.After(1500 * time.Millisecond):
	}
}

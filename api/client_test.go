package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/api"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/store"
)

// clientDoc has flags a page may read (client-visible) and flags only
// servers may: one visible by its own metadata, one by the set's that it
// does not override, one that opts out of the set's, and server-only ones.
const clientDoc = `{
  "metadata": {"team": "web"},
  "flags": {
    "banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
      "metadata": {"flagbridge.client": true}},
    "theme": {"state": "ENABLED", "variants": {"light": "light", "dark": "dark"}, "defaultVariant": "dark",
      "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "light", null]}, "metadata": {"flagbridge.client": true}},
    "pricing-experiment": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a"},
    "internal-kill-switch": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
      "metadata": {"flagbridge.client": false}}
  }
}`

const pageOrigin = "https://app.example.com"

func clientKey(t *testing.T, s *evalServer, origins ...string) *key {
	t.Helper()
	return s.mint(t, s.root, "alpha", keys.CreateInput{Type: "client", Environment: "production", AllowedOrigins: origins})
}

func TestClientKeyCreation(t *testing.T) {
	s := newEvalServer(t)
	// Made over REST: READ only by default, origins cleaned, shown back.
	res := s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys",
		`{"name":"web","type":"client","environment":"production","allowed_origins":["HTTPS://App.Example.com/","http://localhost:5173"]}`)
	if res.code != 201 {
		t.Fatalf("create = %d %s", res.code, res.body)
	}
	m := res.json(t)
	secret, _ := m["key"].(string)
	if !strings.HasPrefix(secret, "fb_client_") || m["type"] != "client" ||
		fmt.Sprint(m["permissions"]) != "[READ]" || fmt.Sprint(m["allowed_origins"]) != "[https://app.example.com http://localhost:5173]" {
		t.Fatalf("created %s", res.body)
	}
	if typ, err := apikey.Parse(secret); err != nil || typ != apikey.Client {
		t.Fatalf("Parse(%q) = %v %v", secret, typ, err)
	}
	id, _ := m["id"].(string)

	for body, msg := range map[string]string{
		`{"name":"n","type":"client","environment":"production"}`:                                                                               "allowed_origins: a client key needs at least one allowed origin, such as https://app.example.com",
		`{"name":"n","type":"client","environment":"production","allowed_origins":["http://app.example.com"]}`:                                  `allowed_origins: "http://app.example.com": a page served over plain http can be altered on its way, so only https origins are allowed (and http on localhost, for development)`,
		`{"name":"n","type":"client","environment":"production","allowed_origins":["https://*.example.com"]}`:                                   `allowed_origins: "https://*.example.com": wildcards are not allowed; list each origin`,
		`{"name":"n","type":"client","environment":"production","allowed_origins":["https://a.example/x"]}`:                                     `allowed_origins: "https://a.example/x" is not an origin: an origin is a scheme and a host (and port), with no path, query or user`,
		`{"name":"n","type":"client","allowed_origins":["https://a.example"]}`:                                                                  "environment is required for client keys",
		`{"name":"n","type":"client","environment":"production","permissions":["READ","WRITE"],"allowed_origins":["https://a.example"]}`:        "permissions: client keys are READ only",
		`{"name":"n","type":"client","environment":"production","allowed_origins":["https://a.example"],"quota":{"requests":5,"period":"day"}}`: "client keys are public, so they take no limits, quota or identity of their own (anyone could spend them); their limit counts per key and client address (rate_limit client)",
		`{"name":"n","type":"client","environment":"production","allowed_origins":["https://a.example"],"identity":"acme"}`:                     "client keys are public, so they take no limits, quota or identity of their own (anyone could spend them); their limit counts per key and client address (rate_limit client)",
		`{"name":"n","type":"live","environment":"production","allowed_origins":["https://a.example"]}`:                                         "allowed_origins: only client keys have origins; live keys are secret and not for browsers",
	} {
		before := s.snapshot(t)
		wantBody(t, s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys", body), 400, errorBody("INVALID_REQUEST", msg))
		if s.snapshot(t) != before {
			t.Fatalf("a refused key was written: %s", body)
		}
	}

	// Its origins change with PATCH, never to none; limits never.
	res = s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, `{"allowed_origins":["https://shop.example.com"]}`)
	if res.code != 200 || fmt.Sprint(res.json(t)["allowed_origins"]) != "[https://shop.example.com]" {
		t.Fatalf("PATCH = %d %s", res.code, res.body)
	}
	wantBody(t, s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, `{"allowed_origins":null}`), 400,
		errorBody("INVALID_REQUEST", "allowed_origins cannot be null: a client key always has an origin"))
	wantBody(t, s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, `{"allowed_origins":[]}`), 400,
		errorBody("INVALID_REQUEST", "allowed_origins: a client key needs at least one allowed origin, such as https://app.example.com"))
	wantBody(t, s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, `{"limits":[{"name":"burst","requests":10,"window":"1s"}]}`), 400,
		errorBody("INVALID_REQUEST", "client keys are public, so they take no limits, quota or identity of their own (anyone could spend them); their limit counts per key and client address (rate_limit client)"))
	wantBody(t, s.do(t, s.root, "PATCH", "/v1/api-keys/"+s.live.ID, `{"allowed_origins":["https://a.example"]}`), 400,
		errorBody("INVALID_REQUEST", "allowed_origins: only client keys have origins; live keys are secret and not for browsers"))
}

// A client key evaluates over OFREP and does nothing else: not the native
// endpoints, not testing sessions, not the admin API.
func TestClientKeyOnlyEvaluatesOverOFREP(t *testing.T) {
	s := newEvalServer(t)
	s.putFlags(t, "alpha", "production", clientDoc)
	c := clientKey(t, s, pageOrigin)
	wantBody(t, s.ofrepFlag(t, c, "banner", `{}`), 200, `{"key":"banner","value":true,"reason":"STATIC","variant":"on","metadata":{"flagbridge.client":true,"team":"web"}}`+"\n")
	wrongType := errorBody("FORBIDDEN", "This key type does not have access to this endpoint")
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/v1/evaluate", evalBody("banner", "")},
		{"POST", "/v1/evaluate/batch", `{}`},
		{"POST", "/v1/testing/sessions", ``},
		{"GET", "/v1/projects", ``},
		{"GET", "/v1/projects/alpha/api-keys", ``},
	} {
		res := s.send(c, rt.method, rt.path, rt.body)
		if res.code != 403 || res.body != wrongType {
			t.Errorf("%s %s = %d %s, want 403 %s", rt.method, rt.path, res.code, res.body, wrongType)
		}
	}
	// Naming a testing session is refused too.
	id := s.session(t, s.projAdmin, `{"environment":"production"}`)
	wantBody(t, s.ofrepFlag(t, c, "banner", `{}`, api.HeaderSession, id), 403,
		errorBody("FORBIDDEN", "Client keys cannot use testing sessions; use a test key"))
	// And its scope is its environment's.
	wantBody(t, s.ofrepFlag(t, c, "banner", `{}`, api.HeaderEnvironment, "staging"), 403,
		errorBody("FORBIDDEN", `This key belongs to environment "production" and cannot evaluate flags of environment "staging"`))
}

func TestClientKeyCORS(t *testing.T) {
	ds := &deadlineStore{}
	base := newServerWith(t, func(st store.Store) store.Store { ds.Store = st; return ds })
	s := &evalServer{server: base}
	s.putFlags(t, "alpha", "production", clientDoc)
	c := clientKey(t, s, pageOrigin, "http://localhost:5173")
	live := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})

	// The preflight: no key, no storage, the route's methods for a
	// well-formed origin, whatever it is (the request that follows is what
	// the key's origins decide).
	ds.take()
	for _, path := range []string{"/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/banner"} {
		for _, origin := range []string{pageOrigin, "https://other.example"} {
			res := s.sendFrom(nil, origin, "", "OPTIONS", path, "",
				"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type")
			h := res.header
			if res.code != 204 || res.body != "" || h.Get("Access-Control-Allow-Origin") != origin ||
				h.Get("Access-Control-Allow-Methods") != "POST" || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
				h.Get("Access-Control-Allow-Credentials") != "" || h.Get("Access-Control-Max-Age") != "7200" ||
				!strings.Contains(h.Get("Vary"), "Origin") {
				t.Errorf("preflight of %s from %s = %d %v %q", path, origin, res.code, h, res.body)
			}
		}
	}
	if calls := ds.take(); len(calls) != 0 {
		t.Errorf("preflights made %d storage calls", len(calls))
	}
	// A malformed origin, or a method the path lacks: no CORS headers.
	for _, tc := range [][2]string{{"null", "POST"}, {"http://app.example.com", "POST"}, {pageOrigin, "DELETE"}} {
		res := s.sendFrom(nil, tc[0], "", "OPTIONS", "/ofrep/v1/evaluate/flags", "", "Access-Control-Request-Method", tc[1])
		if res.code != 204 || res.header.Get("Access-Control-Allow-Origin") != "" || res.header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight from %s for %s = %d %v", tc[0], tc[1], res.code, res.header)
		}
	}
	// Other routes have no preflight: OPTIONS there needs a key like any
	// request.
	if res := s.sendFrom(nil, pageOrigin, "", "OPTIONS", "/v1/evaluate", "", "Access-Control-Request-Method", "POST"); res.code != 401 ||
		res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of /v1/evaluate = %d %v", res.code, res.header)
	}

	// The request: an allowed origin is named, with the headers a provider
	// reads; the answer is the same as without an origin.
	for _, origin := range []string{pageOrigin, "http://localhost:5173"} {
		res := s.sendFrom(c, origin, "", "POST", "/ofrep/v1/evaluate/flags", `{"context":{}}`)
		h := res.header
		if res.code != 200 || h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Credentials") != "" ||
			!strings.Contains(h.Get("Access-Control-Expose-Headers"), "ETag") || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "X-RateLimit-Remaining") ||
			h.Get("Vary") != "Origin" || h.Get("ETag") == "" {
			t.Errorf("bulk from %s = %d %v %s", origin, res.code, h, res.body)
		}
	}
	noOrigin := s.sendFrom(c, "", "", "POST", "/ofrep/v1/evaluate/flags/banner", `{}`)
	if noOrigin.code != 200 || noOrigin.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("without an origin = %d %v", noOrigin.code, noOrigin.header)
	}
	// Another origin is refused, and told nothing it could read (that it
	// spends nothing is TestClientKeyLimitPerAddress's).
	refused := s.sendFrom(c, "https://evil.example", "", "POST", "/ofrep/v1/evaluate/flags/banner", `{}`)
	wantBody(t, refused, 403, errorBody("FORBIDDEN", `This client key does not allow requests from origin "https://evil.example"; add it to the key's allowed_origins`))
	if refused.header.Get("Access-Control-Allow-Origin") != "" || refused.header.Get("X-RateLimit-Remaining") != "" {
		t.Errorf("refused origin got %v", refused.header)
	}
	// A secret key from a page: served (a server may send Origin too), but
	// no page can read the answer.
	if res := s.sendFrom(live, pageOrigin, "", "POST", "/ofrep/v1/evaluate/flags/banner", `{}`); res.code != 200 ||
		res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("live key from a page = %d %v", res.code, res.header)
	}
	// A bad key from an allowed page: 401, unreadable.
	forged, _ := apikey.Generate(apikey.Client)
	if res := s.sendFrom(&key{Secret: forged}, pageOrigin, "", "POST", "/ofrep/v1/evaluate/flags", `{}`); res.code != 401 ||
		res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("forged client key = %d %v", res.code, res.header)
	}
}

// A client key's limit counts per key and client address: one visitor
// cannot spend every other's share, and a page of an origin the key does
// not allow spends nothing.
func TestClientKeyLimitPerAddress(t *testing.T) {
	base := newServer(t)
	cfg := edge.DefaultConfig()
	for _, typ := range apikey.Types {
		cfg.Limits[typ] = ratelimit.PerMinute(1_000_000)
	}
	cfg.Limits[apikey.Client] = ratelimit.PerMinute(3)
	// A chain of its own over the same store, with that limit.
	chain := testchain.New(base.st, testchain.Options{Config: &cfg})
	t.Cleanup(chain.Close)
	s := &evalServer{server: &server{chain: chain, svc: chain.Admin, st: base.st, orgID: base.orgID, root: base.root}}
	s.putFlags(t, "alpha", "production", clientDoc)
	c := clientKey(t, s, pageOrigin)
	for range 5 {
		if res := s.sendFrom(c, "https://evil.example", "198.51.100.7:4000", "POST", "/ofrep/v1/evaluate/flags/banner", `{}`); res.code != 403 {
			t.Fatalf("another origin = %d %s", res.code, res.body)
		}
	}
	for i := range 3 {
		res := s.sendFrom(c, pageOrigin, "198.51.100.7:4000", "POST", "/ofrep/v1/evaluate/flags/banner", `{}`)
		if res.code != 200 || res.header.Get("X-RateLimit-Limit") != "3" || res.header.Get("X-RateLimit-Remaining") != fmt.Sprint(2-i) {
			t.Fatalf("request %d = %d %v", i, res.code, res.header)
		}
	}
	res := s.sendFrom(c, pageOrigin, "198.51.100.7:4001", "POST", "/ofrep/v1/evaluate/flags/banner", `{}`)
	if res.code != 429 || res.header.Get("Access-Control-Allow-Origin") != pageOrigin || res.header.Get("Retry-After") == "" {
		t.Fatalf("fourth from one address = %d %v %s", res.code, res.header, res.body)
	}
	// Another address has its own three.
	if res := s.sendFrom(c, pageOrigin, "203.0.113.9:4000", "POST", "/ofrep/v1/evaluate/flags/banner", `{}`); res.code != 200 ||
		res.header.Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("another address = %d %v", res.code, res.header)
	}
}

// A client key sees only the flags marked client-visible: the bulk answer
// holds no other, and a single evaluation of one answers exactly what a
// flag that does not exist gets. Checked over random flag sets.
func TestClientKeysSeeOnlyClientFlags(t *testing.T) {
	s := newEvalServer(t)
	c := clientKey(t, s, pageOrigin)
	rng := rand.New(rand.NewPCG(11, 12))
	for round := range 40 {
		doc, visible := randomClientDoc(rng)
		s.putFlags(t, "alpha", "production", doc)
		res := s.ofrepBulk(t, c, `{"context":{"targetingKey":"u","plan":"pro"}}`)
		if res.code != 200 {
			t.Fatalf("round %d: bulk = %d %s", round, res.code, res.body)
		}
		var bulk struct {
			Flags []struct {
				Key string `json:"key"`
			} `json:"flags"`
		}
		if err := json.Unmarshal([]byte(res.body), &bulk); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range bulk.Flags {
			got = append(got, f.Key)
		}
		want := slices.Sorted(slices.Values(visible))
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: bulk for a client key has %v, want %v\n%s", round, got, want, doc)
		}
		// Every flag of the set, and one it lacks: a hidden flag answers as
		// the missing one does; a live key sees them all.
		var all map[string]map[string]json.RawMessage
		if err := json.Unmarshal([]byte(doc), &all); err != nil {
			t.Fatal(err)
		}
		for name := range all["flags"] {
			got := s.ofrepFlag(t, c, name, `{}`)
			if slices.Contains(visible, name) {
				if got.code != 200 {
					t.Fatalf("round %d: visible %s = %d %s", round, name, got.code, got.body)
				}
				continue
			}
			want := `{"key":"` + name + `","errorCode":"FLAG_NOT_FOUND","errorDetails":"flag \"` + name + `\" not found"}` + "\n"
			if got.code != 404 || got.body != want {
				t.Fatalf("round %d: hidden %s = %d %s, want 404 %s", round, name, got.code, got.body, want)
			}
			if res := s.ofrepFlag(t, s.live, name, `{}`); res.code != 200 {
				t.Fatalf("round %d: live key on %s = %d %s", round, name, res.code, res.body)
			}
		}
	}
}

// randomClientDoc builds a flag set whose flags are client-visible or not
// by their own metadata, the set's, or neither, and the flags a client key
// may see.
func randomClientDoc(rng *rand.Rand) (string, []string) {
	setLevel := rng.IntN(3) // 0: no set metadata, 1: set says true, 2: set says false
	var flags []string
	var visible []string
	for i := range 1 + rng.IntN(8) {
		name := fmt.Sprintf("f%d-%d", i, rng.IntN(1000))
		own := rng.IntN(4) // 0: no metadata, 1: true, 2: false, 3: other metadata only
		md := ""
		switch own {
		case 1:
			md = `,"metadata":{"flagbridge.client":true}`
		case 2:
			md = `,"metadata":{"flagbridge.client":false}`
		case 3:
			md = `,"metadata":{"owner":"x"}`
		}
		state := "ENABLED"
		if rng.IntN(5) == 0 {
			state = "DISABLED"
		}
		targeting := ""
		if rng.IntN(2) == 0 {
			targeting = `,"targeting":{"if":[{"==":[{"var":"plan"},"pro"]},"on",null]}`
		}
		flags = append(flags, fmt.Sprintf(`%q:{"state":%q,"variants":{"on":true,"off":false},"defaultVariant":"off"%s%s}`, name, state, targeting, md))
		if own == 1 || (own != 2 && setLevel == 1) {
			visible = append(visible, name)
		}
	}
	set := ""
	switch setLevel {
	case 1:
		set = `"metadata":{"flagbridge.client":true},`
	case 2:
		set = `"metadata":{"flagbridge.client":false},`
	}
	return "{" + set + `"flags":{` + strings.Join(flags, ",") + "}}", visible
}

// flagbridge.client must be a boolean, so that "true" in quotes is not
// silently server-only.
func TestClientVisibleMustBeBoolean(t *testing.T) {
	s := newEvalServer(t)
	_, err := s.svc.Flags.PutFlagSet(context.Background(), s.root.P, "alpha", "production",
		[]byte(`{"flags":{"banner":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on","metadata":{"flagbridge.client":"true"}}}}`), flags.Precondition{})
	if err == nil || !strings.Contains(err.Error(), `flag "banner": metadata "flagbridge.client" must be true or false (from the flag or the flag set's metadata), not true`) {
		t.Fatalf("PutFlagSet = %v", err)
	}
	if res := s.ofrepFlag(t, s.live, "theme", `{}`); res.code != 200 {
		t.Fatalf("the old set is gone: %d %s", res.code, res.body)
	}
}

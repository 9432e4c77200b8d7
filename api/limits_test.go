package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// record is the stored record the secret authenticates as, read behind
// the API.
func (s *server) record(t *testing.T, secret string) *apikey.Record {
	t.Helper()
	rec, err := s.svc.Keys.LookupKey(context.Background(), apikey.DigestOf(secret))
	if err != nil || rec == nil {
		t.Fatalf("LookupKey: %+v %v", rec, err)
	}
	return rec
}

func TestKeyLimitsEndpoints(t *testing.T) {
	s := newServer(t)
	res := s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys", `{"name":"Acme server","type":"live","environment":"production",
		"limits":[{"name":"burst","requests":100,"window":"1s"},{"name":"sustained","requests":10000,"window":"60s","shadow":true}],
		"quota":{"requests":1000000,"period":"month"},"identity":"acme"}`)
	if res.code != http.StatusCreated {
		t.Fatalf("create = %d %s", res.code, res.body)
	}
	m := res.json(t)
	id, _ := m["id"].(string)
	secret, _ := m["key"].(string)
	s.secrets = append(s.secrets, secret)
	// "60s" comes back as "1m": the shortest form of the same window.
	wantLimits := `[{"name":"burst","requests":100,"window":"1s"},{"name":"sustained","requests":10000,"window":"1m","shadow":true}]`
	wantQuota := `{"requests":1000000,"period":"month"}`
	shown := func(t *testing.T, m map[string]any, limits, quota, identity string) {
		t.Helper()
		for field, want := range map[string]string{"limits": limits, "quota": quota, "identity": identity} {
			v, ok := m[field]
			var w any
			if want != "" {
				if err := json.Unmarshal([]byte(want), &w); err != nil {
					t.Fatal(err)
				}
			}
			switch {
			case want == "" && ok:
				t.Fatalf("%s shown as %v, want it left out", field, v)
			case want != "" && !jsonEqual(v, w):
				b, _ := json.Marshal(v)
				t.Fatalf("%s = %s, want %s", field, b, want)
			}
		}
	}
	shown(t, m, wantLimits, wantQuota, `"acme"`)
	rec := s.record(t, secret)
	if want := []ratelimit.NamedLimit{
		{Name: "burst", Requests: 100, Window: ratelimit.Window(time.Second)},
		{Name: "sustained", Requests: 10000, Window: ratelimit.Window(time.Minute), Shadow: true},
	}; !reflect.DeepEqual(rec.Limits, want) || rec.Quota == nil || *rec.Quota != (ratelimit.Quota{Requests: 1000000, Period: ratelimit.Month}) || rec.Identity != "acme" {
		t.Fatalf("stored %+v %+v %q", rec.Limits, rec.Quota, rec.Identity)
	}
	shown(t, s.do(t, s.root, "GET", "/v1/api-keys/"+id, "").json(t), wantLimits, wantQuota, `"acme"`)
	var list struct{ Data []map[string]any }
	if err := json.Unmarshal([]byte(s.do(t, s.root, "GET", "/v1/projects/alpha/api-keys", "").body), &list); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list.Data, func(k map[string]any) bool { return k["id"] == id })
	if i < 0 {
		t.Fatalf("not listed: %v", list.Data)
	}
	shown(t, list.Data[i], wantLimits, wantQuota, `"acme"`)

	// PATCH: the members given change, the others stay.
	res = s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, `{"name":"Acme API","limits":[{"name":"per-second","requests":5,"window":"1s"},{"name":"per-minute","requests":200,"window":"1m"}]}`)
	if res.code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", res.code, res.body)
	}
	pm := res.json(t)
	if pm["name"] != "Acme API" || pm["id"] != id || pm["status"] != "active" || pm["hint"] != m["hint"] {
		t.Fatalf("PATCH answered %s", res.body)
	}
	if _, ok := pm["key"]; ok {
		t.Fatal("PATCH answered a key")
	}
	wantLimits = `[{"name":"per-second","requests":5,"window":"1s"},{"name":"per-minute","requests":200,"window":"1m"}]`
	shown(t, pm, wantLimits, wantQuota, `"acme"`)
	if got := s.do(t, s.root, "GET", "/v1/api-keys/"+id, "").json(t); !jsonEqual(got, pm) {
		t.Fatalf("GET after PATCH = %v, PATCH answered %v", got, pm)
	}
	if rec := s.record(t, secret); rec.Name != "Acme API" || len(rec.Limits) != 2 || rec.Limits[1].Window != ratelimit.Window(time.Minute) {
		t.Fatalf("stored after PATCH: %+v", rec)
	}

	// Bad input: 400 naming the field, nothing written.
	before := s.snapshot(t)
	for _, tc := range []struct{ body, message string }{
		{`{}`, "nothing to change: give at least one of name, limits, quota, identity and allowed_origins"},
		{``, "request body is required (a JSON object)"},
		{`{"nmae":"x"}`, `unknown field "nmae"`},
		{`{"name":null}`, "name cannot be null: a key always has a name"},
		{`{"name":7}`, "name must be a string, not number"},
		{`{"identity":5}`, "identity must be a string, not number"},
		{`{"identity":"Acme Inc"}`, `identity "Acme Inc" must be lower-case letters, digits and hyphens, not starting or ending with a hyphen`},
		{`{"identity":""}`, "identity must not be empty; null removes it"},
		{`{"limits":{}}`, "limits must be an array, not object"},
		{`{"limits":[]}`, "limits must hold 1 to 4 limits, not 0"},
		{`{"limits":[{"name":"a","requests":"ten","window":"1s"}]}`, "limits.requests must be a number, not string"},
		{`{"limits":[{"name":"a","requests":1,"window":"1s","burst":5}]}`, `unknown field "burst"`},
		{`{"limits":[{"name":"a","requests":1,"window":"1s"},{"name":"b","requests":1,"window":"25h"}]}`, "limits[1].window must be between 1s and 24h, not 25h"},
		{`{"limits":[{"name":"a","requests":1,"window":"fortnight"}]}`, `limits[0].window must be a duration such as "1s" or "10m", not "fortnight"`},
		{`{"limits":[{"name":"a","requests":0,"window":"1s"}]}`, "limits[0].requests must be at least 1, not 0"},
		{`{"limits":[{"name":"Per Second","requests":1,"window":"1s"}]}`, `limits[0].name "Per Second" must be lower-case letters, digits and hyphens, not starting or ending with a hyphen`},
		{`{"limits":[{"name":"a","requests":1,"window":"1s"},{"name":"a","requests":2,"window":"1m"}]}`, `limits[1].name "a" is already the name of limits[0]`},
		{`{"quota":{"requests":10,"period":"week"}}`, `quota.period must be "day" or "month", not "week"`},
		{`{"quota":{"requests":0,"period":"day"}}`, "quota.requests must be at least 1, not 0"},
		{`{"quota":{"requests":10,"period":"day","rollover":true}}`, `unknown field "rollover"`},
		{`{"name":"ok","quota":{"requests":10,"period":"week"}}`, `quota.period must be "day" or "month", not "week"`},
	} {
		res := s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, tc.body)
		wantBody(t, res, http.StatusBadRequest, errorBody("INVALID_REQUEST", tc.message))
		if s.snapshot(t) != before {
			t.Fatalf("PATCH %s was refused but changed the store", tc.body)
		}
	}
	// Creation refuses the same, naming the same fields.
	for _, tc := range []struct{ extra, message string }{
		{`"limits":[{"name":"a","requests":1,"window":"1s"},{"name":"b","requests":1,"window":"25h"}]`, "limits[1].window must be between 1s and 24h, not 25h"},
		{`"limits":[{"name":"a","requests":1,"window":"1 minute"}]`, `limits[0].window must be a duration such as "1s" or "10m", not "1 minute"`},
		{`"limits":[{"name":"_a","requests":1,"window":"1s"}]`, `limits[0].name "_a" must be lower-case letters`},
		{`"quota":{"requests":-1,"period":"day"}`, "quota.requests must be at least 1, not -1"},
		{`"quota":{"requests":1,"period":"year"}`, `quota.period must be "day" or "month", not "year"`},
		{`"identity":"-acme"`, `identity "-acme" must be lower-case letters`},
		{`"identity":["acme"]`, "identity must be a string, not array"},
	} {
		res := s.do(t, s.root, "POST", "/v1/projects/alpha/api-keys", `{"name":"n","type":"live","environment":"production",`+tc.extra+`}`)
		if res.code != http.StatusBadRequest || !strings.HasPrefix(res.json(t)["message"].(string), tc.message) {
			t.Errorf("create with %s = %d %s, want 400 %q", tc.extra, res.code, res.body, tc.message)
		}
		if s.snapshot(t) != before {
			t.Fatalf("create with %s was refused but wrote", tc.extra)
		}
	}

	// Null clears: limits back to the type's default, no quota, no
	// identity; the view leaves them out again.
	res = s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, `{"limits":null,"quota":null,"identity":null}`)
	if res.code != http.StatusOK {
		t.Fatalf("PATCH nulls = %d %s", res.code, res.body)
	}
	cm := res.json(t)
	shown(t, cm, "", "", "")
	if got := keysOf(cm); !slices.Equal(got, keyFields) {
		t.Fatalf("cleared key fields %q", got)
	}
	if rec := s.record(t, secret); rec.Limits != nil || rec.Quota != nil || rec.Identity != "" || rec.Name != "Acme API" {
		t.Fatalf("stored after clearing: %+v", rec)
	}

	// A revoked key cannot be updated, as it cannot be rotated.
	if res := s.do(t, s.root, "DELETE", "/v1/api-keys/"+id, ""); res.code != http.StatusOK {
		t.Fatalf("revoke = %d %s", res.code, res.body)
	}
	before = s.snapshot(t)
	wantBody(t, s.do(t, s.root, "PATCH", "/v1/api-keys/"+id, `{"identity":"acme"}`), http.StatusConflict,
		errorBody("CONFLICT", fmt.Sprintf("API key %q is revoked and cannot be updated", id)))
	wantBody(t, s.do(t, s.root, "PATCH", "/v1/api-keys/key_nope", `{"identity":"acme"}`), http.StatusNotFound,
		errorBody("NOT_FOUND", `API key "key_nope" not found`))
	if s.snapshot(t) != before {
		t.Fatal("a refused PATCH changed the store")
	}
}

// Who may PATCH a key is who may rotate or revoke it.
func TestKeyUpdateAuthorizationHTTP(t *testing.T) {
	s := newServer(t)
	ro := s.mint(t, s.root, "", keys.CreateInput{Name: "read-only", Type: "admin", Permissions: []string{"READ"}})
	alphaAdmin := s.mint(t, s.root, "alpha", keys.CreateInput{Name: "alpha admin", Type: "admin"})
	prodAdmin := s.mint(t, s.root, "alpha", keys.CreateInput{Name: "production admin", Type: "admin", Environment: "production"})
	inAlpha := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	inStaging := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "staging"})
	inBeta := s.mint(t, s.root, "beta", keys.CreateInput{Type: "live", Environment: "production"})
	body := `{"limits":[{"name":"burst","requests":10,"window":"1s"}]}`

	before := s.snapshot(t)
	for _, tc := range []struct {
		caller  *key
		target  *key
		code    int
		message string
	}{
		{ro, inAlpha, 403, "This key is read-only and cannot make changes"},
		{alphaAdmin, inBeta, 403, `This key belongs to project "alpha" and cannot manage keys of project "beta"`},
		{prodAdmin, inStaging, 403, `This key belongs to environment "production" and cannot manage keys of environment "staging"`},
		{alphaAdmin, s.root, 403, `This key belongs to project "alpha" and cannot manage keys of the whole organization; use an organization-wide admin key`},
	} {
		// The same answer as a rotation: the same rule decides.
		rot := s.do(t, tc.caller, "POST", "/v1/api-keys/"+tc.target.ID+"/rotate", "")
		res := s.do(t, tc.caller, "PATCH", "/v1/api-keys/"+tc.target.ID, body)
		if res.code != tc.code || rot.code != tc.code || res.body != rot.body {
			t.Errorf("PATCH %s as %s = %d %s; rotation %d %s", tc.target.Name, tc.caller.Name, res.code, res.body, rot.code, rot.body)
		}
		if !strings.Contains(res.body, `"FORBIDDEN"`) || res.json(t)["message"] != tc.message {
			t.Errorf("PATCH %s as %s = %s, want %q", tc.target.Name, tc.caller.Name, res.body, tc.message)
		}
	}
	if s.snapshot(t) != before {
		t.Fatal("a refused PATCH changed the store")
	}
	// In their scope they may.
	for _, c := range []struct{ caller, target *key }{{alphaAdmin, inStaging}, {prodAdmin, inAlpha}} {
		if res := s.do(t, c.caller, "PATCH", "/v1/api-keys/"+c.target.ID, body); res.code != http.StatusOK {
			t.Errorf("PATCH %s as %s = %d %s", c.target.Name, c.caller.Name, res.code, res.body)
		}
	}
}

// A PATCH reaches the key caches as a rotation does: the next request with
// the key sees the new record, on an instance that had it cached.
func TestKeyUpdateReachesTheCache(t *testing.T) {
	s := newServer(t)
	k := s.mint(t, s.root, "alpha", keys.CreateInput{Name: "before", Type: "admin"})
	viewer := func() string {
		res := s.do(t, k, "POST", "/graphql", `{"query":"{ viewer { key { name } } }"}`)
		var body struct {
			Data struct {
				Viewer struct{ Key struct{ Name string } }
			}
		}
		if err := json.Unmarshal([]byte(res.body), &body); err != nil || res.code != 200 {
			t.Fatalf("viewer = %d %s", res.code, res.body)
		}
		return body.Data.Viewer.Key.Name
	}
	if got := viewer(); got != "before" {
		t.Fatalf("viewer's key name %q", got)
	}
	if res := s.do(t, s.root, "PATCH", "/v1/api-keys/"+k.ID, `{"name":"after"}`); res.code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", res.code, res.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for viewer() != "after" {
		if time.Now().After(deadline) {
			t.Fatal("the edge still holds the key record from before the PATCH")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// usageBucket is one bucket of a key's usage, as the API shows it.
type usageBucket struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Requests  int64     `json:"requests"`
	Window    string    `json:"window"`
	Period    string    `json:"period"`
	Remaining int64     `json:"remaining"`
	ResetAt   time.Time `json:"reset_at"`
	Shadow    bool      `json:"shadow"`
	Near      bool      `json:"near"`
}

type usageKey struct {
	ID    string        `json:"id"`
	Usage []usageBucket `json:"usage"`
}

func (s *server) usageList(t *testing.T, query string) []usageKey {
	t.Helper()
	res := s.do(t, s.root, "GET", "/v1/projects/alpha/api-keys"+query, "")
	if res.code != http.StatusOK {
		t.Fatalf("list%s = %d %s", query, res.code, res.body)
	}
	var list struct{ Data []usageKey }
	if err := json.Unmarshal([]byte(res.body), &list); err != nil {
		t.Fatal(err)
	}
	return list.Data
}

func ids(ks []usageKey) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.ID
	}
	slices.Sort(out)
	return out
}

// spendN sends n evaluations as k, each spending one request of every
// bucket it has.
func (s *server) spendN(t *testing.T, k *key, n int) {
	t.Helper()
	for i := range n {
		if res := s.send(k, "POST", "/v1/evaluate", evalBody("theme", "")); res.code == http.StatusTooManyRequests {
			t.Fatalf("request %d of %d refused: %s", i+1, n, res.body)
		}
	}
}

func TestKeyUsageAndNearLimit(t *testing.T) {
	s := newServer(t)
	tight := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production",
		Limits: []keys.LimitInput{{Name: "burst", Requests: 5, Window: "1m"}, {Name: "hourly", Requests: 100, Window: "1h", Shadow: true}},
		Quota:  &ratelimit.Quota{Requests: 50, Period: ratelimit.Day}})
	plain := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	if res := s.do(t, s.root, "PUT", "/v1/projects/alpha/identities/acme", `{"limits":[{"name":"pool","requests":10,"window":"1h"}]}`); res.code != http.StatusOK && res.code != http.StatusCreated {
		t.Fatalf("PUT identity = %d %s", res.code, res.body)
	}
	member := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production", Identity: "acme"})
	other := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production", Identity: "acme"})

	// Nothing spent yet: no key is near its limits.
	if near := s.usageList(t, "?near_limit=true"); len(near) != 0 {
		t.Fatalf("near_limit before any request: %v", ids(near))
	}
	s.spendN(t, tight, 4)  // 4 of its burst of 5: 80% spent
	s.spendN(t, plain, 3)  // 3 of the type's 1,000,000 a minute (back within 180us)
	s.spendN(t, member, 5) // 5 + 4 of the identity's pool of 10: 90%
	s.spendN(t, other, 4)

	near := s.usageList(t, "?near_limit=true")
	if got, want := ids(near), ids([]usageKey{{ID: tight.ID}, {ID: member.ID}, {ID: other.ID}}); !slices.Equal(got, want) {
		t.Fatalf("near_limit lists %v, want %v (the key past 80%% of its burst and the two of the identity past 80%% of its pool)", got, want)
	}
	byID := map[string][]usageBucket{}
	for _, k := range s.usageList(t, "?usage=true") {
		byID[k.ID] = k.Usage
	}
	if len(byID) != 4 {
		t.Fatalf("usage=true listed %d keys, want the project's 4", len(byID))
	}
	now := time.Now()
	u := byID[tight.ID]
	if len(u) != 3 {
		t.Fatalf("usage of the key with two limits and a quota: %+v", u)
	}
	burst, hourly, quota := u[0], u[1], u[2]
	if burst.Name != "burst" || burst.Kind != "key" || burst.Requests != 5 || burst.Window != "1m" || burst.Remaining != 1 || !burst.Near {
		t.Fatalf("burst usage %+v, want 1 of 5 a minute left", burst)
	}
	if d := burst.ResetAt.Sub(now); d < 40*time.Second || d > 49*time.Second {
		t.Fatalf("burst resets in %v, want about 48s (4 requests of 12s each)", d)
	}
	if hourly.Name != "hourly" || !hourly.Shadow || hourly.Remaining != 96 || hourly.Near {
		t.Fatalf("shadow limit usage %+v, want 96 of 100 left", hourly)
	}
	_, end := ratelimit.Day.Bounds(now)
	if quota.Name != "quota" || quota.Period != "day" || quota.Requests != 50 || quota.Remaining != 46 || quota.Near || quota.Window != "" || !quota.ResetAt.Equal(end) {
		t.Fatalf("quota usage %+v, want 46 of 50 left until %v", quota, end)
	}
	if p := byID[plain.ID]; len(p) != 1 || p[0].Name != "live" || p[0].Requests != 1_000_000 || p[0].Remaining < 1_000_000-3 || p[0].Window != "1m" {
		t.Fatalf("usage of a key on its type's default limit: %+v", p)
	}
	for _, id := range []string{member.ID, other.ID} {
		m := byID[id]
		i := slices.IndexFunc(m, func(b usageBucket) bool { return b.Kind == "identity" })
		if i < 0 || m[i].Name != "identity-pool" || m[i].Requests != 10 || m[i].Remaining != 1 {
			t.Fatalf("usage of a key of the identity: %+v, want the shared pool with 1 of 10 left", m)
		}
	}

	// Reading usage spends nothing: the key still has exactly one request
	// of its burst, however often it is read.
	for range 3 {
		res := s.do(t, s.root, "GET", "/v1/api-keys/"+tight.ID+"?usage=true", "")
		var one usageKey
		if err := json.Unmarshal([]byte(res.body), &one); err != nil || res.code != 200 || len(one.Usage) != 3 || one.Usage[0].Remaining != 1 {
			t.Fatalf("GET ?usage=true = %d %s", res.code, res.body)
		}
	}
	s.spendN(t, tight, 1)
	if res := s.send(tight, "POST", "/v1/evaluate", evalBody("theme", "")); res.code != http.StatusTooManyRequests {
		t.Fatalf("sixth request of a burst of 5: %d, want 429", res.code)
	}
	// Without the parameters, no usage is read or shown.
	for _, k := range s.usageList(t, "") {
		if k.Usage != nil {
			t.Fatalf("usage shown unasked: %+v", k)
		}
	}
	for path, param := range map[string]string{
		"/v1/projects/alpha/api-keys?near_limit=yes": "near_limit",
		"/v1/projects/alpha/api-keys?usage=1":        "usage",
		"/v1/api-keys/" + tight.ID + "?usage=maybe":  "usage",
	} {
		res := s.do(t, s.root, "GET", path, "")
		m := res.json(t)
		if msg, _ := m["message"].(string); res.code != http.StatusBadRequest || m["error"] != "INVALID_REQUEST" || !strings.HasPrefix(msg, param+":") {
			t.Fatalf("GET %s = %d %s, want 400 INVALID_REQUEST naming %s", path, res.code, res.body, param)
		}
	}
}

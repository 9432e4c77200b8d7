package graphqlapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/ratelimit"
)

const (
	limitFields  = `limits { name requests window shadow } quota { requests period } identity`
	createLimits = `mutation($input: CreateAPIKeyInput!) { createAPIKey(input: $input) { id key name ` + limitFields + ` } }`
	updateFull   = `mutation($id: ID!, $input: UpdateAPIKeyInput!) { updateAPIKey(id: $id, input: $input) {
  id name status owner { id email } ` + limitFields + ` } }`
)

// limitsView is a key's limits, quota and identity as GraphQL shows them.
type limitsView struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Owner  *struct {
		ID, Email string
	} `json:"owner"`
	Limits []struct {
		Name     string `json:"name"`
		Requests int    `json:"requests"`
		Window   string `json:"window"`
		Shadow   bool   `json:"shadow"`
	} `json:"limits"`
	Quota *struct {
		Requests int64  `json:"requests"`
		Period   string `json:"period"`
	} `json:"quota"`
	Identity *string `json:"identity"`
}

func (w *world) update(t *testing.T, key, id string, in map[string]any) limitsView {
	t.Helper()
	var v limitsView
	w.gql(t, key, updateFull, map[string]any{"id": id, "input": in}).ok(t).field(t, "updateAPIKey", &v)
	return v
}

func TestGraphQLKeyLimits(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a", "b")

		// createAPIKey takes them, stores them and shows them; windows
		// come back in their shortest form.
		var c limitsView
		w.gql(t, o.rootKey, createLimits, vars(input{
			"name": "acme", "permissions": []string{"READ"}, "type": "LIVE", "project": "a", "environment": "production",
			"limits": []any{
				map[string]any{"name": "burst", "requests": 100, "window": "1s"},
				map[string]any{"name": "sustained", "requests": 6000, "window": "60s", "shadow": true},
			},
			"quota":    map[string]any{"requests": 1000000, "period": "MONTH"},
			"identity": "acme-corp",
		})).ok(t).field(t, "createAPIKey", &c)
		if len(c.Limits) != 2 || c.Limits[0].Window != "1s" || c.Limits[1].Window != "1m" || !c.Limits[1].Shadow || c.Limits[0].Shadow ||
			c.Quota == nil || c.Quota.Requests != 1000000 || c.Quota.Period != "MONTH" || str(c.Identity) != "acme-corp" {
			t.Fatalf("created %+v", c)
		}
		w.issued(c.Key)
		rec := w.record(t, c.Key)
		if want := []ratelimit.NamedLimit{
			{Name: "burst", Requests: 100, Window: ratelimit.Window(time.Second)},
			{Name: "sustained", Requests: 6000, Window: ratelimit.Window(time.Minute), Shadow: true},
		}; !reflect.DeepEqual(rec.Limits, want) || *rec.Quota != (ratelimit.Quota{Requests: 1000000, Period: ratelimit.Month}) || rec.Identity != "acme-corp" {
			t.Fatalf("stored %+v %+v %q", rec.Limits, rec.Quota, rec.Identity)
		}
		var listed []limitsView
		w.gql(t, o.rootKey, `query { apiKeys(project: "a") { id `+limitFields+` } }`, nil).ok(t).field(t, "apiKeys", &listed)
		if len(listed) != 1 || listed[0].ID != c.ID || len(listed[0].Limits) != 2 || listed[0].Quota == nil || str(listed[0].Identity) != "acme-corp" {
			t.Fatalf("listed %+v", listed)
		}
		// A key without them shows null for all three.
		plain := w.create(t, o.rootKey, input{"name": "plain", "permissions": []string{"READ"}, "project": "a"})
		w.gql(t, o.rootKey, `query { apiKeys(project: "a") { id `+limitFields+` } }`, nil).ok(t).field(t, "apiKeys", &listed)
		for _, k := range listed {
			if k.ID == plain.ID && (k.Limits != nil || k.Quota != nil || k.Identity != nil) {
				t.Fatalf("a plain key shows %+v", k)
			}
		}

		// updateAPIKey: what is given changes, what is omitted stays.
		u := w.update(t, o.rootKey, c.ID, map[string]any{
			"name":   "acme api",
			"limits": []any{map[string]any{"name": "per-second", "requests": 5, "window": "1s"}},
		})
		if u.ID != c.ID || u.Name != "acme api" || u.Status != "ACTIVE" || u.Owner == nil || u.Owner.ID != o.owner.ID ||
			len(u.Limits) != 1 || u.Limits[0].Name != "per-second" || u.Quota == nil || str(u.Identity) != "acme-corp" {
			t.Fatalf("updated %+v", u)
		}
		if rec := w.record(t, c.Key); rec.Name != "acme api" || len(rec.Limits) != 1 || rec.Quota == nil || rec.Identity != "acme-corp" {
			t.Fatalf("stored after the update: %+v", rec)
		}
		// Null clears: in variables, and written in the document.
		u = w.update(t, o.rootKey, c.ID, map[string]any{"quota": nil})
		if u.Quota != nil || len(u.Limits) != 1 || str(u.Identity) != "acme-corp" {
			t.Fatalf("after quota: null %+v", u)
		}
		var cleared limitsView
		w.gql(t, o.rootKey, `mutation($id: ID!) { updateAPIKey(id: $id, input: {limits: null, identity: null}) { id name `+limitFields+` } }`,
			map[string]any{"id": c.ID}).ok(t).field(t, "updateAPIKey", &cleared)
		if cleared.Limits != nil || cleared.Quota != nil || cleared.Identity != nil || cleared.Name != "acme api" {
			t.Fatalf("after limits and identity: null %+v", cleared)
		}
		if rec := w.record(t, c.Key); rec.Limits != nil || rec.Quota != nil || rec.Identity != "" {
			t.Fatalf("stored after clearing: %+v", rec)
		}

		// Bad input: BAD_USER_INPUT naming the field, nothing written.
		w.update(t, o.rootKey, c.ID, map[string]any{"identity": "acme-corp"})
		before := w.keyState(t, o.id)
		lim := func(name string, n int, window string) map[string]any {
			return map[string]any{"name": name, "requests": n, "window": window}
		}
		for _, tc := range []struct {
			in   map[string]any
			want string
		}{
			{map[string]any{}, "nothing to change"},
			{map[string]any{"name": nil}, "name cannot be null"},
			{map[string]any{"limits": []any{}}, "limits must hold 1 to 4 limits, not 0"},
			{map[string]any{"limits": []any{lim("a", 1, "1s"), lim("b", 1, "25h")}}, "limits[1].window must be between 1s and 24h, not 25h"},
			{map[string]any{"limits": []any{lim("a", 1, "soon")}}, `limits[0].window must be a duration`},
			{map[string]any{"limits": []any{lim("a", 0, "1s")}}, "limits[0].requests must be at least 1, not 0"},
			{map[string]any{"limits": []any{lim("A", 1, "1s")}}, `limits[0].name "A" must be lower-case letters`},
			{map[string]any{"limits": []any{lim("a", 1, "1s"), lim("a", 1, "1m")}}, `limits[1].name "a" is already the name of limits[0]`},
			{map[string]any{"quota": map[string]any{"requests": 0, "period": "DAY"}}, "quota.requests must be at least 1, not 0"},
			{map[string]any{"identity": "Acme Corp"}, `identity "Acme Corp" must be lower-case letters`},
			{map[string]any{"identity": ""}, "identity must not be empty"},
			{map[string]any{"name": "ok", "identity": "-x"}, "identity"},
		} {
			w.gql(t, o.rootKey, updateFull, map[string]any{"id": c.ID, "input": tc.in}).badInput(t, tc.want)
		}
		for _, tc := range []struct {
			in   input
			want string
		}{
			{input{"limits": []any{lim("a", 1, "90m"), lim("b", 1, "25h")}}, "limits[1].window must be between 1s and 24h, not 25h"},
			{input{"quota": map[string]any{"requests": -5, "period": "MONTH"}}, "quota.requests must be at least 1, not -5"},
			{input{"identity": "no spaces"}, `identity "no spaces" must be lower-case letters`},
		} {
			tc.in["name"], tc.in["permissions"] = "x", []string{"READ"}
			w.gql(t, o.rootKey, createLimits, vars(tc.in)).badInput(t, tc.want)
		}
		// What the schema refuses never reaches the resolver.
		for _, in := range []map[string]any{
			{"quota": map[string]any{"requests": 5, "period": "WEEK"}},
			{"limits": []any{map[string]any{"name": "a", "requests": 1}}},
			{"secret": "x"},
		} {
			w.gql(t, o.rootKey, updateFull, map[string]any{"id": c.ID, "input": in}).refused(t, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED")
		}
		if !equalJSON(before, w.keyState(t, o.id)) {
			t.Fatal("a refused mutation changed keys")
		}

		// Who may update a key is who may rotate it.
		readOnly, _ := w.mint(t, o.rootKey, "", keys.CreateInput{Name: "read only", Permissions: []string{"READ"}})
		aAdmin, _ := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "a admin"})
		inB := w.create(t, o.rootKey, input{"name": "in b", "permissions": []string{"READ"}, "project": "b"})
		before = w.keyState(t, o.id)
		w.gql(t, readOnly, updateFull, map[string]any{"id": c.ID, "input": map[string]any{"identity": "x"}}).forbidden(t)
		w.gql(t, aAdmin, updateFull, map[string]any{"id": inB.ID, "input": map[string]any{"identity": "x"}}).forbidden(t)
		w.gql(t, aAdmin, updateFull, map[string]any{"id": o.root.ID, "input": map[string]any{"identity": "x"}}).forbidden(t)
		w.gql(t, o.rootKey, updateFull, map[string]any{"id": "key_doesnotexist000000", "input": map[string]any{"identity": "x"}}).forbidden(t)
		if !equalJSON(before, w.keyState(t, o.id)) {
			t.Fatal("a refused update changed keys")
		}
		if got := w.update(t, aAdmin, c.ID, map[string]any{"identity": "globex"}); str(got.Identity) != "globex" {
			t.Fatalf("the project's admin key updated %+v", got)
		}
		// A revoked key cannot be updated.
		w.gql(t, o.rootKey, revokeFull, map[string]any{"id": inB.ID}).ok(t)
		w.gql(t, o.rootKey, updateFull, map[string]any{"id": inB.ID, "input": map[string]any{"identity": "x"}}).refused(t, http.StatusOK, "CONFLICT")
		if rec, _ := w.svc.Keys.LookupKey(context.Background(), apikey.DigestOf(inB.Key)); rec != nil {
			t.Fatal("the revoked key's secret is indexed again")
		}
	})
}

// An update reaches the edge's cached key record, as a rotation does: the
// viewer's key, which comes from that record, shows it.
func TestGraphQLUpdateReachesTheCache(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, w *world) {
		o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
		k, rec := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "before"})
		name := func() string {
			var v struct{ Key struct{ Name string } }
			w.gql(t, k, `{ viewer { key { name } } }`, nil).ok(t).field(t, "viewer", &v)
			return v.Key.Name
		}
		if got := name(); got != "before" {
			t.Fatalf("viewer's key %q", got)
		}
		w.update(t, o.rootKey, rec.ID, map[string]any{"name": "after"})
		deadline := time.Now().Add(10 * time.Second)
		for name() != "after" {
			if time.Now().After(deadline) {
				t.Fatal("the edge still holds the record from before the update")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// Each updateAPIKey of a request is charged, as every mutation is.
func TestGraphQLUpdatesAreCharged(t *testing.T) {
	t.Parallel()
	cfg := edge.DefaultConfig()
	cfg.Limits[apikey.Admin] = ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	w := fileWorldWith(t, testchain.Options{Config: &cfg})
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	_, rec := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "target"})
	update := `updateAPIKey(id: "` + rec.ID + `", input: {identity: "n$i"}) { id identity }`
	r := w.gql(t, o.rootKey, `mutation {`+aliased(3, update)+` }`, nil).ok(t)
	if len(r.Data) != 3 || rateRemaining(t, r) != 7 {
		t.Fatalf("three updates: remaining %d, %s", rateRemaining(t, r), r.Body)
	}
	before := w.keyState(t, o.id)
	r = w.gql(t, o.rootKey, `mutation {`+aliased(8, update)+` }`, nil).refused(t, http.StatusTooManyRequests, "RATE_LIMITED")
	wantRateLimited(t, r)
	if !equalJSON(before, w.keyState(t, o.id)) || !strings.Contains(before["keys/"+rec.ID], `"identity":"n2"`) {
		t.Fatalf("a refused operation updated the key: %s", before["keys/"+rec.ID])
	}
}

// TestGraphQLMutationsChargeTheQuota: a key's quota pays for mutations as
// its rate limit does; an operation it cannot pay for is refused whole,
// 429 with QUOTA_EXCEEDED, and nothing runs.
func TestGraphQLMutationsChargeTheQuota(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	metered, _ := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "metered", Type: "admin", Quota: &ratelimit.Quota{Requests: 2, Period: ratelimit.Day}})
	var ids []string
	for range 3 {
		_, rec := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "victim", Type: "live", Environment: "production"})
		ids = append(ids, rec.ID)
	}
	// Three revocations cost three: the request the edge counted, then two
	// more, of which the quota of 2 has one left.
	r := w.gql(t, metered, `mutation { a: revokeAPIKey(id: "`+ids[0]+`") { id } b: revokeAPIKey(id: "`+ids[1]+`") { id } c: revokeAPIKey(id: "`+ids[2]+`") { id } }`, nil).
		refused(t, http.StatusTooManyRequests, "QUOTA_EXCEEDED")
	if r.Header.Get("X-Quota-Remaining") != "1" {
		t.Fatalf("quota headers of the refusal: %v, want 1 left (only the edge's request spent)", r.Header)
	}
	for _, id := range ids {
		if rec, err := w.svc.Keys.GetKey(context.Background(), o.rootP, id); err != nil || rec.RevokedAt != nil {
			t.Fatalf("key %s after the refused operation: %+v, %v", id, rec, err)
		}
	}
}

// TestGraphQLKeyUsage: apiKeys and updateAPIKey show what a key's buckets
// hold when usage is selected, read without spending, and nearLimit lists
// only the keys with a bucket 80% spent.
func TestGraphQLKeyUsage(t *testing.T) {
	t.Parallel()
	w := fileWorld(t)
	o := w.newOrg(t, "Acme", "owner@example.com", "Olive Owner", "a")
	tightKey, tight := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "tight", Type: "live", Environment: "production",
		Limits: []keys.LimitInput{{Name: "hourly", Requests: 5, Window: "1h"}}, Quota: &ratelimit.Quota{Requests: 100, Period: ratelimit.Day}})
	_, roomy := w.mint(t, o.rootKey, "a", keys.CreateInput{Name: "roomy", Type: "live", Environment: "production"})
	for range 4 {
		r := httptest.NewRequest("POST", "https://flagbridge.test/v1/evaluate", strings.NewReader(`{"flag":"x"}`))
		r.Header.Set("Authorization", "Bearer "+tightKey)
		r.Header.Set("Content-Type", "application/json")
		if rec := w.serve(r); rec.Code == http.StatusTooManyRequests {
			t.Fatalf("evaluation refused: %s", rec.Body)
		}
	}
	type bucket struct {
		Name      string    `json:"name"`
		Kind      string    `json:"kind"`
		Requests  int       `json:"requests"`
		Window    *string   `json:"window"`
		Period    *string   `json:"period"`
		Remaining int       `json:"remaining"`
		ResetAt   time.Time `json:"resetAt"`
		Shadow    bool      `json:"shadow"`
		Near      bool      `json:"near"`
	}
	type keyUsage struct {
		ID    string   `json:"id"`
		Usage []bucket `json:"usage"`
	}
	const fields = `id usage { name kind requests window period remaining resetAt shadow near }`
	list := func(args string) map[string][]bucket {
		t.Helper()
		var ks []keyUsage
		w.gql(t, o.rootKey, `{ apiKeys(project: "a"`+args+`) { `+fields+` } }`, nil).ok(t).field(t, "apiKeys", &ks)
		out := map[string][]bucket{}
		for _, k := range ks {
			out[k.ID] = k.Usage
		}
		return out
	}
	for range 2 { // reading twice: nothing spent by the first
		all := list("")
		u := all[tight.ID]
		if len(u) != 2 || u[0].Name != "hourly" || u[0].Kind != "KEY" || u[0].Requests != 5 || u[0].Remaining != 1 || u[0].Window == nil || *u[0].Window != "1h" || u[0].Period != nil || !u[0].Near {
			t.Fatalf("tight key's usage %+v, want 1 of 5 an hour left first", u)
		}
		if q := u[1]; q.Name != "quota" || q.Period == nil || *q.Period != "DAY" || q.Remaining != 96 || q.Window != nil || q.Near {
			t.Fatalf("tight key's quota usage %+v, want 96 of 100 a day left", q)
		}
		if r := all[roomy.ID]; len(r) != 1 || r[0].Name != "live" || r[0].Requests != 10000 {
			t.Fatalf("roomy key's usage %+v, want its type's default limit", r)
		}
	}
	near := list(", nearLimit: true")
	if _, ok := near[tight.ID]; !ok || len(near) != 1 {
		t.Fatalf("nearLimit lists %v, want the tight key alone", near)
	}
	// updateAPIKey shows the usage under the new limits: one of a new
	// name is a fresh bucket (the README's way to reset one).
	var updated keyUsage
	w.gql(t, o.rootKey, `mutation($id: ID!) { updateAPIKey(id: $id, input: {limits: [{name: "hourly-v2", requests: 50, window: "1h"}]}) { `+fields+` } }`,
		map[string]any{"id": tight.ID}).ok(t).field(t, "updateAPIKey", &updated)
	if len(updated.Usage) != 2 || updated.Usage[0].Requests != 50 || updated.Usage[0].Remaining != 50 || updated.Usage[1].Remaining != 96 {
		t.Fatalf("updateAPIKey's usage %+v, want a fresh limit of 50 and the quota's 96 left", updated.Usage)
	}
	if got := list(", nearLimit: true"); len(got) != 0 {
		t.Fatalf("after raising the limit, nearLimit lists %v", got)
	}
}

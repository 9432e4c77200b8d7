package admin_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/ratelimit"
)

func limit(name string, n int, w time.Duration) ratelimit.NamedLimit {
	return ratelimit.NamedLimit{Name: name, Requests: n, Window: ratelimit.Window(w)}
}

// The input cases every front door refuses, each naming its field: a
// limit's name goes through the slug check, its window through
// ratelimit.Window's syntax, the rest through ratelimit.CheckLimits.
var badLimits = []struct {
	name   string
	limits []keys.LimitInput
	quota  *ratelimit.Quota
	want   string // the start of the message
}{
	{"no limits", []keys.LimitInput{}, nil, "limits must hold 1 to 4 limits, not 0"},
	{"five limits", []keys.LimitInput{
		{Name: "a", Requests: 1, Window: "1s"}, {Name: "b", Requests: 1, Window: "1s"}, {Name: "c", Requests: 1, Window: "1s"},
		{Name: "d", Requests: 1, Window: "1s"}, {Name: "e", Requests: 1, Window: "1s"},
	}, nil, "limits must hold 1 to 4 limits, not 5"},
	{"zero requests", []keys.LimitInput{{Name: "a", Requests: 10, Window: "1s"}, {Name: "b", Window: "1m"}}, nil, "limits[1].requests must be at least 1, not 0"},
	{"window too long", []keys.LimitInput{{Name: "a", Requests: 10, Window: "1s"}, {Name: "b", Requests: 1, Window: "25h"}}, nil,
		"limits[1].window must be between 1s and 24h, not 25h"},
	{"window too short", []keys.LimitInput{{Name: "a", Requests: 1, Window: "500ms"}}, nil, "limits[0].window must be between 1s and 24h, not 500ms"},
	{"window not a duration", []keys.LimitInput{{Name: "a", Requests: 1, Window: "soon"}}, nil, `limits[0].window must be a duration such as "1s" or "10m", not "soon"`},
	{"window missing", []keys.LimitInput{{Name: "a", Requests: 1}}, nil, `limits[0].window must be a duration`},
	{"same name twice", []keys.LimitInput{{Name: "a", Requests: 1, Window: "1s"}, {Name: "a", Requests: 5, Window: "1m"}}, nil,
		`limits[1].name "a" is already the name of limits[0]`},
	{"name not a slug", []keys.LimitInput{{Name: "Burst!", Requests: 1, Window: "1s"}}, nil, `limits[0].name "Burst!" must be lower-case letters`},
	{"name missing", []keys.LimitInput{{Requests: 1, Window: "1s"}}, nil, "limits[0].name is required"},
	{"quota of zero", nil, &ratelimit.Quota{Period: ratelimit.Day}, "quota.requests must be at least 1, not 0"},
	{"quota per week", nil, &ratelimit.Quota{Requests: 10, Period: "week"}, `quota.period must be "day" or "month", not "week"`},
}

func TestCreateKeyWithLimits(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")

		k := e.mint(t, o.root, "alpha", keys.CreateInput{
			Type: "live", Environment: "production", Identity: "acme-corp",
			Limits: []keys.LimitInput{
				{Name: "burst", Requests: 100, Window: "1s"},
				{Name: "sustained", Requests: 10000, Window: "1m0s", Shadow: true},
			},
			Quota: &ratelimit.Quota{Requests: 1_000_000, Period: ratelimit.Month},
		})
		want := []ratelimit.NamedLimit{limit("burst", 100, time.Second), limit("sustained", 10000, time.Minute)}
		want[1].Shadow = true
		stored := e.lookup(t, k.Secret)
		if !reflect.DeepEqual(stored.Limits, want) || !reflect.DeepEqual(stored.Quota, &ratelimit.Quota{Requests: 1_000_000, Period: ratelimit.Month}) ||
			stored.Identity != "acme-corp" {
			t.Fatalf("stored %+v, quota %+v, identity %q", stored.Limits, stored.Quota, stored.Identity)
		}
		if !reflect.DeepEqual(k.Limits, stored.Limits) || k.Identity != stored.Identity {
			t.Fatalf("answered %+v, stored %+v", k.Record, stored)
		}
		// The stored document writes the windows as they are shown.
		b, _ := e.doc(t, "keys/"+o.id, k.ID)
		if !strings.Contains(string(b), `"limits":[{"name":"burst","requests":100,"window":"1s"},{"name":"sustained","requests":10000,"window":"1m","shadow":true}]`) {
			t.Fatalf("stored document %s", b)
		}
		// Without them a key carries none: its type's default applies.
		plain := e.lookup(t, e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"}).Secret)
		if plain.Limits != nil || plain.Quota != nil || plain.Identity != "" {
			t.Fatalf("a plain key has %+v %+v %q", plain.Limits, plain.Quota, plain.Identity)
		}

		refusals := []struct {
			name string
			in   keys.CreateInput
			want string
		}{
			{"identity", keys.CreateInput{Identity: "Acme Corp"}, `identity "Acme Corp" must be lower-case letters`},
		}
		for _, tc := range badLimits {
			refusals = append(refusals, struct {
				name string
				in   keys.CreateInput
				want string
			}{tc.name, keys.CreateInput{Limits: tc.limits, Quota: tc.quota}, tc.want})
		}
		for _, tc := range refusals {
			in := tc.in
			in.Name, in.Type, in.Environment = "n", "live", "production"
			before := e.snap(t, keyCols(o.id)...)
			_, err := e.svc.Keys.CreateKey(ctx, o.root, "alpha", in)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest)
			if msg := apiErr(t, err).Message; !strings.HasPrefix(msg, tc.want) {
				t.Errorf("%s: message %q, want it to start with %q", tc.name, msg, tc.want)
			}
			if !before.equal(e.snap(t, keyCols(o.id)...)) {
				t.Fatalf("%s: a refused key was written", tc.name)
			}
		}
	})
}

func TestUpdateKey(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha", "beta")
		f := e.subscribe(t)
		k := e.mint(t, o.root, "alpha", keys.CreateInput{Name: "srv", Type: "live", Environment: "production"})
		if err := e.svc.Keys.RecordUsage(ctx, map[string]time.Time{k.ID: t0}); err != nil {
			t.Fatal(err)
		}

		// Limits, quota and identity at once: stored, answered, published,
		// and the secret still works.
		e.clock.Advance(time.Minute)
		u, err := e.svc.Keys.UpdateKey(ctx, o.root, k.ID, keys.UpdateInput{
			Limits:   set([]keys.LimitInput{{Name: "burst", Requests: 50, Window: "1s"}, {Name: "daily", Requests: 20000, Window: "24h"}}),
			Quota:    set(ratelimit.Quota{Requests: 5000, Period: ratelimit.Day}),
			Identity: set("acme"),
		})
		if err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		want := []ratelimit.NamedLimit{limit("burst", 50, time.Second), limit("daily", 20000, 24*time.Hour)}
		got := e.lookup(t, k.Secret)
		if got == nil || !reflect.DeepEqual(got.Limits, want) || got.Quota == nil || *got.Quota != (ratelimit.Quota{Requests: 5000, Period: ratelimit.Day}) ||
			got.Identity != "acme" || got.Name != "srv" {
			t.Fatalf("after the update the secret finds %+v", got)
		}
		if !reflect.DeepEqual(u.Record, got) || !sameTime(u.LastUsedAt, &t0) {
			t.Fatalf("answered %+v (last used %s), stored %+v", u.Record, fmtTime(u.LastUsedAt), got)
		}
		// Nothing else of the key changed: not its secret, digest, times
		// or owner.
		rest := *got
		rest.Limits, rest.Quota, rest.Identity = nil, nil, ""
		if !reflect.DeepEqual(&rest, k.Record) {
			t.Fatalf("the update changed more than it was asked:\n%+v\n%+v", rest, *k.Record)
		}

		// An absent member stays as it is.
		if _, err := e.svc.Keys.UpdateKey(ctx, o.root, k.ID, keys.UpdateInput{Name: set("  server  ")}); err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		got = e.lookup(t, k.Secret)
		if got.Name != "server" || !reflect.DeepEqual(got.Limits, want) || got.Quota == nil || got.Identity != "acme" {
			t.Fatalf("a rename changed more: %+v", got)
		}

		// Null clears, one member at a time.
		if _, err := e.svc.Keys.UpdateKey(ctx, o.root, k.ID, keys.UpdateInput{Quota: null[ratelimit.Quota]()}); err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		if got = e.lookup(t, k.Secret); got.Quota != nil || got.Limits == nil || got.Identity != "acme" {
			t.Fatalf("after clearing the quota: %+v", got)
		}
		if _, err := e.svc.Keys.UpdateKey(ctx, o.root, k.ID, keys.UpdateInput{Limits: null[[]keys.LimitInput](), Identity: null[string]()}); err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		if got = e.lookup(t, k.Secret); got.Limits != nil || got.Quota != nil || got.Identity != "" || got.Name != "server" {
			t.Fatalf("after clearing limits and identity: %+v", got)
		}
		b, _ := e.doc(t, "keys/"+o.id, k.ID)
		for _, field := range []string{`"limits"`, `"quota"`, `"identity"`} {
			if strings.Contains(string(b), field) {
				t.Fatalf("cleared, the document still holds %s: %s", field, b)
			}
		}

		// Refusals name the field and write nothing.
		one := []ratelimit.NamedLimit{limit("one", 1, time.Second)}
		if _, err := e.svc.Keys.UpdateKey(ctx, o.root, k.ID, keys.UpdateInput{
			Identity: set("acme"), Limits: set([]keys.LimitInput{{Name: "one", Requests: 1, Window: "1s"}}),
		}); err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		refusals := []struct {
			name string
			in   keys.UpdateInput
			want string
		}{
			{"nothing", keys.UpdateInput{}, "nothing to change"},
			{"null name", keys.UpdateInput{Name: null[string]()}, "name cannot be null"},
			{"empty name", keys.UpdateInput{Name: set(" ")}, "name is required"},
			{"empty identity", keys.UpdateInput{Identity: set("")}, "identity must not be empty"},
			{"bad identity", keys.UpdateInput{Identity: set("ACME")}, `identity "ACME" must be lower-case letters`},
			{"bad identity with good limits", keys.UpdateInput{Limits: set([]keys.LimitInput{{Name: "x", Requests: 1, Window: "1s"}}), Identity: set("a b")}, "identity"},
		}
		for _, tc := range badLimits {
			in := keys.UpdateInput{Name: set("would be renamed")}
			if tc.limits != nil {
				in.Limits = set(tc.limits)
			}
			if tc.quota != nil {
				in.Quota = set(*tc.quota)
			}
			refusals = append(refusals, struct {
				name string
				in   keys.UpdateInput
				want string
			}{tc.name, in, tc.want})
		}
		before := e.snap(t, keyCols(o.id)...)
		for _, tc := range refusals {
			_, err := e.svc.Keys.UpdateKey(ctx, o.root, k.ID, tc.in)
			wantErr(t, err, http.StatusBadRequest, apierror.CodeInvalidRequest)
			if msg := apiErr(t, err).Message; !strings.HasPrefix(msg, tc.want) {
				t.Errorf("%s: message %q, want it to start with %q", tc.name, msg, tc.want)
			}
		}
		if !before.equal(e.snap(t, keyCols(o.id)...)) {
			t.Fatal("a refused update changed the store")
		}
		if got := e.lookup(t, k.Secret); got.Name != "server" || got.Identity != "acme" || !reflect.DeepEqual(got.Limits, one) {
			t.Fatalf("after the refusals: %+v", got)
		}

		// Beyond the caller's scope: 403, and another organization's key
		// or none at all: 404.
		projectAdmin := as(e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin"}).Record)
		inBeta := e.mint(t, o.root, "beta", keys.CreateInput{Type: "live", Environment: "production"})
		f.expectQuiet(t, e, o, "alpha")
		_, err = e.svc.Keys.UpdateKey(ctx, projectAdmin, inBeta.ID, keys.UpdateInput{Identity: set("x")})
		wantExact(t, err, apierror.Forbidden(`This key belongs to project "alpha" and cannot manage keys of project "beta"`))
		_, err = e.svc.Keys.UpdateKey(ctx, o.root, "key_nope", keys.UpdateInput{Identity: set("x")})
		wantExact(t, err, apierror.NotFound(`API key "key_nope" not found`))
		ro := *o.root.Key
		ro.Permissions = perms(t, "READ")
		_, err = e.svc.Keys.UpdateKey(ctx, as(&ro), k.ID, keys.UpdateInput{Identity: set("x")})
		wantExact(t, err, apierror.ReadOnlyKey)
		// A project admin updates its project's keys.
		if _, err := e.svc.Keys.UpdateKey(ctx, projectAdmin, k.ID, keys.UpdateInput{Identity: set("globex")}); err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)

		// Revoked or expired: 409, like a rotation.
		if _, err := e.svc.Keys.RevokeKey(ctx, o.root, inBeta.ID); err != nil {
			t.Fatal(err)
		}
		f.expect(t, inBeta.ID)
		short := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "admin", ExpiresIn: "1h"})
		e.clock.Advance(2 * time.Hour)
		before = e.snap(t, keyCols(o.id)...)
		_, err = e.svc.Keys.UpdateKey(ctx, o.root, inBeta.ID, keys.UpdateInput{Identity: set("x")})
		wantExact(t, err, apierror.Conflict("API key %q is revoked and cannot be updated", inBeta.ID))
		_, err = e.svc.Keys.UpdateKey(ctx, o.root, short.ID, keys.UpdateInput{Identity: set("x")})
		wantExact(t, err, apierror.Conflict("API key %q has expired and cannot be updated", short.ID))
		if !before.equal(e.snap(t, keyCols(o.id)...)) {
			t.Fatal("a refused update changed the store")
		}
		f.expectQuiet(t, e, o, "alpha")

		// A rotation keeps what an update set.
		r, err := e.svc.Keys.RotateKey(ctx, o.root, k.ID, keys.RotateInput{})
		if err != nil {
			t.Fatal(err)
		}
		f.expect(t, k.ID)
		if got := e.lookup(t, r.Secret); got.Identity != "globex" || !reflect.DeepEqual(got.Limits, one) {
			t.Fatalf("rotated: %+v", got)
		}
	})
}

// TestLimitedKeysCannotEscapeTheirLimits: a key with limits or a quota of
// its own can neither lift them (its own, or another key's it could then
// use) nor hand out a key or a new secret without them; it can still do
// the rest of what its type allows. A key without limits, and a member,
// can set them.
func TestLimitedKeysCannotEscapeTheirLimits(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.newOrg(t, "alpha")
		for _, spec := range []keys.CreateInput{
			{Type: "admin", Limits: []keys.LimitInput{{Name: "slow", Requests: 10, Window: "1m"}}},
			{Type: "admin", Quota: &ratelimit.Quota{Requests: 100, Period: ratelimit.Day}},
		} {
			limited := e.mint(t, o.root, "alpha", spec)
			p := as(limited.Record)
			other := e.mint(t, o.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
			forbidden := func(what string, err error) {
				t.Helper()
				var ae *apierror.Error
				if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || !strings.Contains(ae.Message, "has rate limits of its own") {
					t.Errorf("%s by a limited key: %v, want 403 naming its limits", what, err)
				}
			}
			_, err := e.svc.Keys.UpdateKey(ctx, p, limited.ID, keys.UpdateInput{Limits: null[[]keys.LimitInput](), Quota: null[ratelimit.Quota]()})
			forbidden("lifting its own limits", err)
			_, err = e.svc.Keys.UpdateKey(ctx, p, other.ID, keys.UpdateInput{Identity: set("acme")})
			forbidden("moving another key into an identity", err)
			_, err = e.svc.Keys.CreateKey(ctx, p, "alpha", keys.CreateInput{Name: "unlimited", Type: "admin"})
			forbidden("creating a key", err)
			_, err = e.svc.Keys.RotateKey(ctx, p, other.ID, keys.RotateInput{})
			forbidden("rotating another key", err)
			if got := e.lookup(t, limited.Secret); got.Limits == nil && got.Quota == nil {
				t.Fatalf("the limited key lost its limits: %+v", got)
			}
			// Renaming changes no limit, and listing is what its type does.
			if _, err := e.svc.Keys.UpdateKey(ctx, p, other.ID, keys.UpdateInput{Name: set("renamed")}); err != nil {
				t.Errorf("renaming a key by a limited key: %v", err)
			}
			if _, err := e.svc.Keys.ListKeys(ctx, p, "alpha"); err != nil {
				t.Errorf("listing keys by a limited key: %v", err)
			}
		}
	})
}

package integration

import (
	"context"
	"reflect"
	"testing"

	"github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/flagbridge/flagbridge/internal/testenv"
)

// TestOpenFeatureClient points OpenFeature's own OFREP provider at a running
// FlagBridge and evaluates every type of flag through the Go SDK.
func TestOpenFeatureClient(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	admin := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", admin, `{"slug":"shop"}`), 201)
	mustStatus(t, call(t, c, "PUT", "/v1/projects/shop/environments/production/flags", admin, testFlags("shop-theme")), 200)
	_, live := createKey(t, c, admin, "shop", `{"name":"sdk","type":"live","environment":"production"}`)
	_, test := createKey(t, c, admin, "shop", `{"name":"ci","type":"test","environment":"production"}`)
	session := mustStatus(t, call(t, c, "POST", "/v1/testing/sessions", test, ""), 201).JSON(t)["id"].(string)
	mustStatus(t, call(t, c, "POST", "/v1/testing/sessions/"+session+"/overrides", test,
		`{"overrides":{"new-checkout":true,"max-items":30}}`), 200)

	ctx := context.Background()
	provider := func(opts ...ofrep.Option) *openfeature.Client {
		domain := t.Name() + string(rune('a'+len(opts)))
		opts = append(opts, ofrep.WithClient(c.Client()))
		if err := openfeature.SetNamedProviderAndWait(domain, ofrep.NewProvider(c.URL(""), opts...)); err != nil {
			t.Fatal(err)
		}
		return openfeature.NewClient(domain)
	}
	client := provider(ofrep.WithBearerToken(live))
	pro := openfeature.NewEvaluationContext("user-42", map[string]any{"plan": "pro"})

	b, err := client.BooleanValueDetails(ctx, "new-checkout", false, pro)
	if err != nil || !b.Value || b.Reason != openfeature.TargetingMatchReason || b.Variant != "on" {
		t.Fatalf("boolean: %+v %v", b, err)
	}
	if owner, _ := b.FlagMetadata.GetString("owner"); owner != "payments" {
		t.Fatalf("metadata: %v", b.FlagMetadata)
	}
	s, err := client.StringValueDetails(ctx, "theme", "none", pro)
	if err != nil || s.Value != "shop-theme" || s.Reason != openfeature.StaticReason {
		t.Fatalf("string: %+v %v", s, err)
	}
	i, err := client.IntValueDetails(ctx, "max-items", 0, pro)
	if err != nil || i.Value != 3 {
		t.Fatalf("integer: %+v %v", i, err)
	}
	f, err := client.FloatValueDetails(ctx, "ratio", 0, pro)
	if err != nil || f.Value != 0.75 {
		t.Fatalf("float: %+v %v", f, err)
	}
	o, err := client.ObjectValueDetails(ctx, "banner", nil, pro)
	if err != nil || !reflect.DeepEqual(o.Value, map[string]any{"text": "hi", "color": "blue"}) {
		t.Fatalf("object: %+v %v", o, err)
	}
	// An unknown flag: the SDK's default and FLAG_NOT_FOUND.
	u, err := client.BooleanValueDetails(ctx, "no-such-flag", true, pro)
	if err == nil || !u.Value || u.ErrorCode != openfeature.FlagNotFoundCode {
		t.Fatalf("unknown flag: %+v %v", u, err)
	}
	// A type the flag does not have: the default and TYPE_MISMATCH.
	m, err := client.StringValueDetails(ctx, "max-items", "fallback", pro)
	if err == nil || m.Value != "fallback" || m.ErrorCode != openfeature.TypeMismatchCode {
		t.Fatalf("type mismatch: %+v %v", m, err)
	}

	// A CI run: the test key, X-API-Key, and the testing session's header.
	ci := provider(ofrep.WithApiKeyAuth(test), ofrep.WithHeader("FlagBridge-Session", session))
	free := openfeature.NewEvaluationContext("user-7", map[string]any{"plan": "free"})
	ob, err := ci.BooleanValueDetails(ctx, "new-checkout", false, free)
	if err != nil || !ob.Value || ob.Reason != openfeature.StaticReason {
		t.Fatalf("overridden boolean: %+v %v", ob, err)
	}
	if overridden, _ := ob.FlagMetadata.GetBool("flagbridgeOverride"); !overridden {
		t.Fatalf("override not reported in metadata: %v", ob.FlagMetadata)
	}
	oi, err := ci.IntValueDetails(ctx, "max-items", 0, free)
	if err != nil || oi.Value != 30 {
		t.Fatalf("overridden integer: %+v %v", oi, err)
	}
	// The same flag without the session is untouched.
	pb, _ := client.BooleanValueDetails(ctx, "new-checkout", true, free)
	if pb.Value {
		t.Fatalf("production evaluation was overridden: %+v", pb)
	}
}

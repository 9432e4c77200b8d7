package evaluator

import (
	"fmt"
	"strings"
	"testing"
)

// The benchmarks mirror the ones flagd publishes for its evaluator (static
// flag, targeting over a context, fractional split) plus a 100-flag batch.

const benchDoc = `{
  "$evaluators": {
    "is_internal": {"ends_with": [{"var": "email"}, "@example.com"]}
  },
  "flags": {
    "static": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
    "targeted": {
      "state": "ENABLED",
      "variants": {"gold": "gold", "silver": "silver", "bronze": "bronze"},
      "defaultVariant": "bronze",
      "targeting": {
        "if": [
          {"and": [
            {"in": [{"var": "country"}, ["us", "ca", "gb", "de", "fr", "es", "it", "nl", "se", "no", "dk", "fi"]]},
            {">=": [{"var": "age"}, 18]},
            {"==": [{"var": "plan"}, "pro"]},
            {"sem_ver": [{"var": "appVersion"}, ">=", "2.3.0"]}
          ]}, "gold",
          {"or": [
            {"$ref": "is_internal"},
            {"starts_with": [{"var": "device.os"}, "ios"]},
            {"<": [0, {"var": "seats"}, 50]}
          ]}, "silver",
          null
        ]
      }
    },
    "split": {
      "state": "ENABLED",
      "variants": {"clubs": "clubs", "diamonds": "diamonds", "hearts": "hearts", "spades": "spades"},
      "defaultVariant": "clubs",
      "targeting": {"fractional": [["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]]}
    },
    "split-cat-key": {
      "state": "ENABLED",
      "variants": {"clubs": "clubs", "diamonds": "diamonds", "hearts": "hearts", "spades": "spades"},
      "defaultVariant": "clubs",
      "targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]}, ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]]}
    }
  }
}`

// benchCtx is a 10-attribute context.
func benchCtx() map[string]any {
	return map[string]any{
		"targetingKey": "5c3d8535-f81a-4478-a6d3-afaa4d51199e",
		"email":        "jane@customer.org",
		"country":      "se",
		"age":          34.0,
		"plan":         "pro",
		"appVersion":   "2.4.1",
		"device":       map[string]any{"os": "android", "model": "pixel"},
		"seats":        12.0,
		"user":         map[string]any{"name": "jane"},
		"locale":       "sv-SE",
	}
}

func benchmarkFlag(b *testing.B, key, wantVariant string, wantReason Reason) {
	fs := mustCompile(b, benchDoc)
	ctx := benchCtx()
	if r := fs.Evaluate(key, ctx); r.Variant != wantVariant || r.Reason != wantReason {
		b.Fatalf("%s: %+v", key, r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		fs.Evaluate(key, ctx)
	}
}

func BenchmarkEvaluateStatic(b *testing.B) {
	benchmarkFlag(b, "static", "on", ReasonStatic)
}

func BenchmarkEvaluateTargeting(b *testing.B) {
	benchmarkFlag(b, "targeted", "gold", ReasonTargetingMatch)
}

func BenchmarkEvaluateFractional(b *testing.B) {
	benchmarkFlag(b, "split", "hearts", ReasonSplit)
}

func BenchmarkEvaluateFractionalCatKey(b *testing.B) {
	benchmarkFlag(b, "split-cat-key", "hearts", ReasonSplit)
}

// batchDoc builds 100 flags: a mix of static flags, targeted flags and
// fractional splits, as a bulk evaluation (OFREP / flagd ResolveAll) sees.
func batchDoc() string {
	var b strings.Builder
	b.WriteString(`{"flags": {`)
	for i := range 100 {
		if i > 0 {
			b.WriteString(",")
		}
		switch i % 4 {
		case 0, 1:
			fmt.Fprintf(&b, `"flag-%03d": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}`, i)
		case 2:
			fmt.Fprintf(&b, `"flag-%03d": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
				"targeting": {"if": [{"and": [{"==": [{"var": "plan"}, "pro"]}, {">": [{"var": "age"}, %d]}]}, "on", "off"]}}`, i, i%50)
		case 3:
			fmt.Fprintf(&b, `"flag-%03d": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
				"targeting": {"fractional": [["on", %d], ["off", %d]]}}`, i, i, 100-i)
		}
	}
	b.WriteString(`}}`)
	return b.String()
}

func BenchmarkEvaluateBatch100(b *testing.B) {
	fs := mustCompile(b, batchDoc())
	ctx := benchCtx()
	dst := make([]Result, 0, fs.Len())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst = fs.EvaluateAll(ctx, dst[:0])
	}
	if len(dst) != 100 {
		b.Fatal(len(dst))
	}
}

func BenchmarkEvaluateParallel(b *testing.B) {
	fs := mustCompile(b, benchDoc)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := benchCtx()
		for pb.Next() {
			fs.Evaluate("targeted", ctx)
		}
	})
}

func BenchmarkCompile(b *testing.B) {
	doc := []byte(batchDoc())
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Compile(doc); err != nil {
			b.Fatal(err)
		}
	}
}

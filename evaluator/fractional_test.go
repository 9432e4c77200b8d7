package evaluator

import (
	"fmt"
	"math"
	"testing"

	"github.com/twmb/murmur3"
)

// flagd buckets with github.com/twmb/murmur3, and so does this package:
// pin that the hash is MurmurHash3 x86_32, bit for bit, on published vectors
// and on the keys the flagd testbed uses to reach the bucket boundaries.
func TestMurmur3Vectors(t *testing.T) {
	// Published MurmurHash3 x86_32 vectors (seed 0 and the common test seed
	// 0x9747b28c), cross-checked against an independent implementation.
	cases := []struct {
		in   string
		seed uint32
		want uint32
	}{
		{"", 0, 0},
		{"", 1, 0x514e28b7},
		{"", 0xffffffff, 0x81f16f39},
		{"\x00\x00\x00\x00", 0, 0x2362f9de},
		{"a", 0, 0x3c2569b2},
		{"ab", 0, 0x9bbfd75f},
		{"abc", 0, 0xb3dd93fa},
		{"abcd", 0, 0x43ed676a},
		{"hello", 0, 0x248bfa47},
		{"Hello, world!", 0, 0xc0363e43},
		{"Hello, world!", 0x9747b28c, 0x24884cba},
		{"The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723},
		{"The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd},
		{"aaaa", 0x9747b28c, 0x5a97808a},
		{"日本語テキスト", 0, 0xe6c8b62d},
		// flagd-testbed's edge-case keys, chosen to hash to the boundaries.
		{"ejOoVL", 0, 0x00000000},
		{"bY9fO-", 0, 0x00000001},
		{"SI7p-", 0, 0x7fffffff},
		{"6LvT0", 0, 0x80000000},
		{"ceQdGm", 0, 0xffffffff},
	}
	for _, c := range cases {
		if got := murmur3.SeedSum32(c.seed, []byte(c.in)); got != c.want {
			t.Errorf("murmur3.SeedSum32(%#x, %q) = %#08x, want %#08x", c.seed, c.in, got, c.want)
		}
		if c.seed == 0 && murmur3.StringSum32(c.in) != c.want {
			t.Errorf("murmur3.StringSum32(%q) != murmur3.SeedSum32(0, %q)", c.in, c.in)
		}
	}
	long := string(make([]byte, 1000)) // longer than the stack buffer
	if bucketHash(long[:600], long[600:]) != murmur3.StringSum32(long) || bucketHash("ab", "c") != 0xb3dd93fa {
		t.Error("bucketHash must hash the concatenation")
	}
}

// fracFlags builds a one-flag set whose targeting is the given rule.
func fracFlags(t *testing.T, variants, rule string) *FlagSet {
	t.Helper()
	doc := fmt.Sprintf(`{"flags": {"f": {"state": "ENABLED", "variants": %s, "defaultVariant": "d", "targeting": %s}}}`, variants, rule)
	fs, err := Compile([]byte(doc))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return fs
}

func TestFractionalDistribution(t *testing.T) {
	fs := fracFlags(t, `{"a": "a", "b": "b", "c": "c", "d": "d"}`,
		`{"fractional": [["a", 10], ["b", 20], ["c", 70]]}`)
	const n = 10000
	counts := map[string]int{}
	for i := range n {
		r := fs.Evaluate("f", map[string]any{"targetingKey": fmt.Sprintf("user-%d", i)})
		if r.Reason != ReasonSplit {
			t.Fatalf("reason %s, want SPLIT", r.Reason)
		}
		counts[r.Variant]++
	}
	for v, weight := range map[string]float64{"a": 0.10, "b": 0.20, "c": 0.70} {
		got := float64(counts[v]) / n
		if math.Abs(got-weight) > 0.02 {
			t.Errorf("variant %s: %.3f of keys, want %.2f±0.02 (%v)", v, got, weight, counts)
		}
	}
	// Stable per key: the same key always lands in the same bucket.
	for i := range 100 {
		ctx := map[string]any{"targetingKey": fmt.Sprintf("user-%d", i)}
		first := fs.Evaluate("f", ctx).Variant
		for range 3 {
			if again := fs.Evaluate("f", ctx).Variant; again != first {
				t.Fatalf("key %d moved from %s to %s", i, first, again)
			}
		}
	}
}

func TestFractionalBucketing(t *testing.T) {
	// The bucket is (hash * total) >> 32 against cumulative weights; the
	// boundary hashes of the testbed make the edges visible.
	fs := fracFlags(t, `{"lower": "lower", "upper": "upper", "d": "d"}`,
		`{"fractional": [{"var": "targetingKey"}, ["lower", 50], ["upper", 50]]}`)
	for key, want := range map[string]string{"ejOoVL": "lower", "bY9fO-": "lower", "SI7p-": "lower", "6LvT0": "upper", "ceQdGm": "upper"} {
		if got := fs.Evaluate("f", map[string]any{"targetingKey": key}).Variant; got != want {
			t.Errorf("key %s: got %s, want %s", key, got, want)
		}
	}
	// Manual check of the formula for one key and uneven weights.
	fs = fracFlags(t, `{"x": "x", "y": "y", "z": "z", "d": "d"}`, `{"fractional": ["seed", ["x", 1], ["y", 2], ["z", 3]]}`)
	point := (uint64(murmur3.StringSum32("seed")) * 6) >> 32
	want := "z"
	switch {
	case point < 1:
		want = "x"
	case point < 3:
		want = "y"
	}
	if got := fs.Evaluate("f", nil).Variant; got != want {
		t.Errorf("literal key: got %s, want %s (point %d)", got, want, point)
	}
}

func TestFractionalKeys(t *testing.T) {
	variants := `{"one": "one", "two": "two", "d": "d"}`
	// Default key: $flagd.flagKey + targetingKey, the same as spelling it out.
	implicit := fracFlags(t, variants, `{"fractional": [["one", 50], ["two", 50]]}`)
	explicit := fracFlags(t, variants, `{"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, ["one", 50], ["two", 50]]}`)
	for i := range 200 {
		ctx := map[string]any{"targetingKey": fmt.Sprint("k", i)}
		if a, b := implicit.Evaluate("f", ctx).Variant, explicit.Evaluate("f", ctx).Variant; a != b {
			t.Fatalf("key k%d: implicit %s, explicit %s", i, a, b)
		}
	}
	cases := []struct {
		rule   string
		ctx    map[string]any
		want   string
		reason Reason
	}{
		// No targeting key and no bucketing key: null, so the default.
		{`{"fractional": [["one", 50], ["two", 50]]}`, nil, "d", ReasonDefault},
		{`{"fractional": [["one", 50], ["two", 50]]}`, map[string]any{"targetingKey": 5.0}, "d", ReasonDefault},
		// A key expression yielding null falls back to the targeting key.
		{`{"fractional": [{"var": "nope"}, ["one", 1]]}`, map[string]any{"targetingKey": "t"}, "one", ReasonSplit},
		{`{"fractional": [{"var": "nope"}, ["one", 1]]}`, nil, "d", ReasonDefault},
		// A key expression yielding a number is not a key: null.
		{`{"fractional": [{"var": "n"}, ["one", 1]]}`, map[string]any{"n": 3.0, "targetingKey": "t"}, "d", ReasonDefault},
		// A first argument computing an array is a bucket (flagd).
		{`{"fractional": [{"var": "b"}, ["two", 0]]}`, map[string]any{"b": []any{"one", 1.0}, "targetingKey": "t"}, "one", ReasonSplit},
		// Shorthand: weight 1.
		{`{"fractional": [["one"], ["two", 0]]}`, map[string]any{"targetingKey": "t"}, "one", ReasonSplit},
		{`{"fractional": [["one", null], ["two", 0]]}`, map[string]any{"targetingKey": "t"}, "one", ReasonSplit},
		// Single bucket.
		{`{"fractional": [["two", 1]]}`, map[string]any{"targetingKey": "t"}, "two", ReasonSplit},
		// Negative weights count as zero.
		{`{"fractional": [{"var": "targetingKey"}, ["one", -50], ["two", 100]]}`, map[string]any{"targetingKey": "t"}, "two", ReasonSplit},
		// All-zero weights, fractional weights, too large totals: null.
		{`{"fractional": [{"var": "targetingKey"}, ["one", 0], ["two", 0]]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, ["one", 0.5], ["two", 1]]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, ["one", 2147483647], ["two", 1]]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, ["one", 2147483648]]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, ["one", "50"]]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, "one"]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, []]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": []}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [7, ["one", 1]]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		// Computed variants and weights.
		{`{"fractional": [{"var": "targetingKey"}, [{"var": "v"}, 1]]}`, map[string]any{"targetingKey": "t", "v": "two"}, "two", ReasonSplit},
		{`{"fractional": [{"var": "targetingKey"}, ["one", {"var": "w"}], ["two", 1]]}`, map[string]any{"targetingKey": "t", "w": 0.0}, "two", ReasonSplit},
		{`{"fractional": [{"var": "targetingKey"}, [{"var": "v"}, 1]]}`, map[string]any{"targetingKey": "t"}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, [{"var": "v"}, 1]]}`, map[string]any{"targetingKey": "t", "v": []any{}}, "d", ReasonDefault},
		{`{"fractional": [{"var": "targetingKey"}, {"var": "bucket"}]}`, map[string]any{"targetingKey": "t", "bucket": []any{"two", 3.0}}, "two", ReasonSplit},
		{`{"fractional": [{"var": "targetingKey"}, {"var": "bucket"}]}`, map[string]any{"targetingKey": "t", "bucket": "two"}, "d", ReasonDefault},
		// A fractional inside a condition: the if picks, TARGETING_MATCH.
		{`{"if": [{"fractional": [[false, 0], [true, 1]]}, "one", "two"]}`, map[string]any{"targetingKey": "t"}, "one", ReasonTargetingMatch},
		// Through an if branch it is still the split that decided.
		{`{"if": [true, {"fractional": [["two", 1]]}, "one"]}`, map[string]any{"targetingKey": "t"}, "two", ReasonSplit},
	}
	for _, c := range cases {
		fs, err := CompileWithOptions([]byte(fmt.Sprintf(`{"flags": {"f": {"state": "ENABLED", "variants": %s, "defaultVariant": "d", "targeting": %s}}}`, variants, c.rule)), Options{})
		if err != nil {
			t.Errorf("%s: compile: %v", c.rule, err)
			continue
		}
		r := fs.Evaluate("f", c.ctx)
		if r.Variant != c.want || r.Reason != c.reason {
			t.Errorf("%s with %v: got %s/%s (%s), want %s/%s", c.rule, c.ctx, r.Variant, r.Reason, r.ErrorMessage, c.want, c.reason)
		}
	}
}

func TestFractionalManyBuckets(t *testing.T) {
	// More buckets than the slow path's stack buffers, with computed weights.
	variants := `{"d": "d"`
	buckets := ""
	for i := range 20 {
		variants += fmt.Sprintf(`, "v%d": "v%d"`, i, i)
		buckets += fmt.Sprintf(`, ["v%d", {"+": [1, 0]}]`, i)
	}
	fs := fracFlags(t, variants+"}", `{"fractional": [{"var": "targetingKey"}`+buckets+`]}`)
	seen := map[string]bool{}
	for i := range 2000 {
		r := fs.Evaluate("f", map[string]any{"targetingKey": fmt.Sprint(i)})
		if r.ErrorCode != "" || r.Reason != ReasonSplit {
			t.Fatalf("got %+v", r)
		}
		seen[r.Variant] = true
	}
	if len(seen) != 20 {
		t.Errorf("only %d of 20 buckets used", len(seen))
	}
}

package apikey

import (
	"strings"
	"testing"
	"time"
)

func TestGenerateParseRoundTrip(t *testing.T) {
	for _, typ := range Types {
		seen := map[string]bool{}
		for i := 0; i < 200; i++ {
			k, err := Generate(typ)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(k, typ.Prefix()) || len(k) != len(typ.Prefix())+randomLen+checksumLen {
				t.Fatalf("bad shape %q", k)
			}
			got, err := Parse(k)
			if err != nil || got != typ {
				t.Fatalf("Parse(%q) = %v, %v", k, got, err)
			}
			if seen[k] {
				t.Fatalf("duplicate key %q", k)
			}
			seen[k] = true
		}
	}
}

func TestParseRefusesMalformedAndForged(t *testing.T) {
	good, _ := Generate(Live)
	body := good[len(prefixLive):]
	flipLast := func(s string) string {
		c := s[len(s)-1]
		r := byte('A')
		if c == 'A' {
			r = 'B'
		}
		return s[:len(s)-1] + string(r)
	}
	flipRandom := func(s string) string {
		i := len(prefixLive) + 3
		r := byte('x')
		if s[i] == 'x' {
			r = 'y'
		}
		return s[:i] + string(r) + s[i+1:]
	}
	cases := map[string]string{
		"empty":              "",
		"prefix only":        prefixLive,
		"unknown prefix":     "fb_prod_" + body,
		"other prefix":       "sk_live_" + body,
		"upper-case prefix":  "FB_LIVE_" + body,
		"truncated":          good[:len(good)-1],
		"extended":           good + "a",
		"bad checksum":       flipLast(good),
		"changed random":     flipRandom(good),
		"swapped type":       prefixAdmin + body, // checksum covers the prefix
		"non-base62":         good[:len(good)-8] + "-" + good[len(good)-7:],
		"space inside":       good[:20] + " " + good[21:],
		"unicode":            good[:len(good)-2] + "é",
		"checksum overflows": prefixLive + body[:randomLen] + "zzzzzz",
	}
	for name, k := range cases {
		if _, err := Parse(k); err != ErrMalformed {
			t.Errorf("%s: Parse(%q) err = %v, want ErrMalformed", name, k, err)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	k, _ := Generate(Admin)
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(k); _ = DigestOf(k) }); n != 0 {
		t.Fatalf("Parse+DigestOf allocate %v times", n)
	}
}

func TestDigestAndHint(t *testing.T) {
	k, _ := Generate(Test)
	if DigestOf(k) != DigestOf(k) || len(DigestOf(k).String()) != 64 {
		t.Fatal("digest not stable")
	}
	k2, _ := Generate(Test)
	if DigestOf(k) == DigestOf(k2) {
		t.Fatal("different keys, same digest")
	}
	h := Hint(k)
	if h != "fb_test_..."+k[len(k)-4:] {
		t.Fatalf("Hint = %q", h)
	}
	if strings.Contains(h, k[len(prefixTest):len(k)-4]) {
		t.Fatal("hint reveals the secret")
	}
	if Hint("garbage") != "" {
		t.Fatal("hint of garbage")
	}
}

func TestTypes(t *testing.T) {
	if !Admin.Includes(Test) || !Test.Includes(Live) || Live.Includes(Test) || Test.Includes(Admin) {
		t.Fatal("capability order")
	}
	// A client key, though numbered last, is the least capable.
	for i, a := range Types {
		for j, b := range Types {
			if a.Includes(b) != (i >= j) {
				t.Errorf("%s.Includes(%s) = %v", a, b, a.Includes(b))
			}
		}
		if Type(0).Includes(a) || Type(99).Includes(a) || !a.Includes(0) {
			t.Errorf("unknown types and %s", a)
		}
	}
	for _, typ := range Types {
		got, err := ParseType(strings.ToUpper(typ.String()))
		if err != nil || got != typ {
			t.Fatalf("ParseType(%s) = %v %v", typ, got, err)
		}
	}
	if _, err := ParseType("root"); err == nil {
		t.Fatal("ParseType accepted root")
	}
}

func TestPermissions(t *testing.T) {
	ps, err := ParsePermissions([]string{"READ"})
	if err != nil || !ps.Has(Read) || ps.Has(Write) {
		t.Fatalf("READ: %v %v", ps, err)
	}
	if !AllPermissions.Contains(ps) || ps.Contains(AllPermissions) {
		t.Fatal("Contains")
	}
	for _, bad := range [][]string{nil, {}, {"ADMIN"}, {"READ", "READ"}} {
		if _, err := ParsePermissions(bad); err == nil {
			t.Errorf("ParsePermissions(%v) accepted", bad)
		}
	}
	b, _ := AllPermissions.MarshalJSON()
	if string(b) != `["READ","WRITE"]` {
		t.Fatalf("json %s", b)
	}
	var back Permissions
	if err := back.UnmarshalJSON(b); err != nil || back != AllPermissions {
		t.Fatal("json round trip")
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute,
		"2w": 14 * 24 * time.Hour, "1h30m": 90 * time.Minute,
	}
	for s, want := range good {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "0d", "-1h", "d", "1.5d", "abc", "99999999999d", "0s"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) accepted", s)
		}
	}
}

func TestRecordValidUntil(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour)
	grace := now.Add(10 * time.Minute)
	r := &Record{Digest: "new", PreviousDigest: "old", PreviousValidUntil: &grace, ExpiresAt: &exp}

	if until, ok := r.ValidUntil("new", now); !ok || !until.Equal(exp) {
		t.Fatalf("current secret: %v %v", until, ok)
	}
	if until, ok := r.ValidUntil("old", now); !ok || !until.Equal(grace) {
		t.Fatalf("previous secret in grace: %v %v", until, ok)
	}
	if _, ok := r.ValidUntil("old", grace); ok {
		t.Fatal("previous secret after grace")
	}
	if _, ok := r.ValidUntil("other", now); ok {
		t.Fatal("unknown digest")
	}
	if _, ok := r.ValidUntil("", now); ok {
		t.Fatal("empty digest")
	}
	if _, ok := r.ValidUntil("new", exp); ok || r.Status(exp) != "expired" {
		t.Fatal("expired key")
	}
	r.RevokedAt = &now
	if _, ok := r.ValidUntil("new", now); ok || r.Status(now) != "revoked" {
		t.Fatal("revoked key")
	}
}

package edge

import (
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// ClientKey names the bucket of a client address: an IPv4 address as it
// is, an IPv6 address by its /64 (one customer line), an IPv4-mapped IPv6
// address as the IPv4 address it is, and anything else unchanged.
func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                     "192.0.2.1",
		"203.0.113.255":                 "203.0.113.255",
		"2001:db8:1:2:3:4:5:6":          "2001:db8:1:2::/64",
		"2001:db8:1:2::1":               "2001:db8:1:2::/64",
		"2001:0db8:0001:0002:ffff::":    "2001:db8:1:2::/64",
		"2001:db8:1:3::1":               "2001:db8:1:3::/64",
		"::1":                           "::/64",
		"fe80::1%eth0":                  "fe80::/64",
		"::ffff:192.0.2.1":              "192.0.2.1",
		"::ffff:c000:0201":              "192.0.2.1",
		"garbage":                       "garbage",
		"":                              "",
		"192.0.2.1:8080":                "192.0.2.1:8080",
		"[2001:db8::1]:443":             "[2001:db8::1]:443",
		"2001:db8::/64":                 "2001:db8::/64",
		"999.0.0.1":                     "999.0.0.1",
		"2001:db8:1:2:3:4:5:6:7":        "2001:db8:1:2:3:4:5:6:7",
		"ip:2001:db8:1:2::1 (injected)": "ip:2001:db8:1:2::1 (injected)",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// Failed authentications from two addresses of one IPv6 /64 spend from one
// bucket, and the block that follows covers the whole /64; another /64 and
// IPv4 addresses have their own, and an IPv4-mapped address shares its
// IPv4 address's.
func TestFailedAuthenticationIsLimitedPerIPv6Network(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Unauthenticated = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	f := newFixture(t, cfg)
	from := func(ip string) Request { return Request{HTTPS: true, ClientIP: ip} }
	fail := func(ip string, status int, remaining string) {
		t.Helper()
		res := f.do("GET", "/v1/projects", "Bearer nope", from(ip), Policy{})
		wantRate(t, "bad key from "+ip, res, status, "3", remaining)
	}
	fail("2001:db8:1:2::1", 401, "2")
	fail("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 401, "1")
	fail("2001:db8:1:2::1", 401, "0")
	res := f.do("GET", "/v1/projects", "Bearer nope", from("2001:db8:1:2::ffff"), Policy{})
	if res.status != 429 || res.header.Get("Retry-After") == "" {
		t.Fatalf("a third address of the /64: %d %v", res.status, res.header)
	}
	// Blocked: a forged key from anywhere in the /64 costs no lookup.
	lookups := f.source.n.Load()
	if res := f.do("GET", "/v1/projects", bearer(forgedKey(t)), from("2001:db8:1:2::7"), Policy{}); res.status != 429 {
		t.Fatalf("forged key from the blocked /64: %d", res.status)
	}
	if f.source.n.Load() != lookups {
		t.Fatal("a blocked /64 still cost a key lookup")
	}
	// The next /64 is another customer.
	fail("2001:db8:1:3::1", 401, "2")
	// IPv4, and IPv4 mapped into IPv6, are one address each.
	fail("203.0.113.7", 401, "2")
	fail("::ffff:203.0.113.7", 401, "1")
	// Neighbouring IPv4 addresses are not grouped.
	fail("203.0.113.8", 401, "2")
}

// forgedKey is a well-formed admin key (valid checksum) that no record has.
func forgedKey(t *testing.T) string {
	t.Helper()
	k, err := apikey.Generate(apikey.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

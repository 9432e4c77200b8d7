package audit

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Deliveries reach public addresses only: not the loopback, private,
// shared, link-local (cloud metadata) or unspecified ones, in IPv4 or
// IPv6, mapped or not; webhook_allow_insecure lifts that, for development.
func TestWebhookTargets(t *testing.T) {
	for addr, public := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1:248:1893:25c8:1946": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "100.64.0.1": false, "0.0.0.0": false, "::": false,
		"fd00::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "0.1.2.3": false, "224.0.0.1": false,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("%s: public %v, want %v", addr, got, public)
		}
	}
	for raw, want := range map[string]string{
		"https://hooks.example.com/flags":   "",
		"http://hooks.example.com/flags":    "over https only",
		"https://127.0.0.1/x":               "127.0.0.1 is not a public address",
		"https://[::1]/x":                   "::1 is not a public address",
		"https://169.254.169.254/latest":    "169.254.169.254 is not a public address",
		"https://localhost:8443/x":          "localhost is not a public host name",
		"https://metadata.google.internal/": "is not a public host name",
		"https://user:pw@hooks.example.com": "credentials in the URL",
		"ftp://hooks.example.com":           "is not an http(s) URL",
		"hooks.example.com/x":               "is not an absolute URL",
		"":                                  "url is required",
	} {
		_, err := checkWebhookURL(raw, false)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", raw, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want %q", raw, err, want)
		}
	}
	if _, err := checkWebhookURL("http://127.0.0.1:9999/x", true); err != nil {
		t.Errorf("with webhook_allow_insecure: %v", err)
	}
	d := NewDispatcher(&Service{}, nil)
	if err := d.control("tcp4", "127.0.0.1:443", nil); err == nil {
		t.Error("the dialer connects to the loopback address")
	}
	if err := d.control("tcp4", "93.184.216.34:443", nil); err != nil {
		t.Errorf("the dialer refuses a public address: %v", err)
	}
}

func TestWebhookEventsAndBackoff(t *testing.T) {
	for _, c := range []struct {
		events []string
		action Action
		want   bool
	}{
		{[]string{"*"}, KeyRevoked, true},
		{[]string{"api_key.*"}, KeyRevoked, true},
		{[]string{"api_key.*"}, FlagSetUpdated, false},
		{[]string{"flag_set.updated"}, FlagSetUpdated, true},
		{[]string{"flag_set.updated"}, FlagSetReverted, false},
	} {
		if got := eventMatches(c.events, c.action); got != c.want {
			t.Errorf("%v on %s: %v", c.events, c.action, got)
		}
	}
	if _, err := checkEvents([]string{"flag_set.exploded"}); err == nil {
		t.Error("an unknown event was accepted")
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if Backoff(40) != time.Hour {
		t.Errorf("Backoff(40) = %v", Backoff(40))
	}
}

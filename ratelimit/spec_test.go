package ratelimit_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/ratelimit"
)

func TestWindowJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{`"1s"`, time.Second, `"1s"`},
		{`"90s"`, 90 * time.Second, `"90s"`},
		{`"1m0s"`, time.Minute, `"1m"`},
		{`"24h"`, 24 * time.Hour, `"24h"`},
		{`"1500ms"`, 1500 * time.Millisecond, `"1.5s"`},
	} {
		var w ratelimit.Window
		if err := json.Unmarshal([]byte(tc.in), &w); err != nil || time.Duration(w) != tc.want {
			t.Errorf("%s: got %v, %v; want %v", tc.in, time.Duration(w), err, tc.want)
			continue
		}
		if b, _ := json.Marshal(w); string(b) != tc.out {
			t.Errorf("%s: marshalled as %s, want %s", tc.in, b, tc.out)
		}
	}
	for _, bad := range []string{`"soon"`, `60`, `""`} {
		var w ratelimit.Window
		if err := json.Unmarshal([]byte(bad), &w); err == nil {
			t.Errorf("%s: accepted as %v", bad, time.Duration(w))
		}
	}
}

func TestCheckLimits(t *testing.T) {
	ok := ratelimit.NamedLimit{Name: "burst", Requests: 100, Window: ratelimit.Window(time.Second)}
	lim := func(name string, n int, w time.Duration) ratelimit.NamedLimit {
		return ratelimit.NamedLimit{Name: name, Requests: n, Window: ratelimit.Window(w)}
	}
	for _, tc := range []struct {
		name   string
		limits []ratelimit.NamedLimit
		quota  *ratelimit.Quota
		field  string // "" when valid
	}{
		{"NotGiven", nil, nil, ""},
		{"Two", []ratelimit.NamedLimit{ok, lim("sustained", 10000, time.Minute)}, &ratelimit.Quota{Requests: 1e5, Period: ratelimit.Month}, ""},
		{"Edges", []ratelimit.NamedLimit{lim("a", 1, time.Second), lim("b", 1, 24*time.Hour)}, nil, ""},
		{"Empty", []ratelimit.NamedLimit{}, nil, "limits"},
		{"Five", []ratelimit.NamedLimit{lim("a", 1, time.Second), lim("b", 1, time.Second), lim("c", 1, time.Second), lim("d", 1, time.Second), lim("e", 1, time.Second)}, nil, "limits"},
		{"ZeroRequests", []ratelimit.NamedLimit{ok, lim("b", 0, time.Second)}, nil, "limits[1].requests"},
		{"ShortWindow", []ratelimit.NamedLimit{lim("a", 1, 999*time.Millisecond)}, nil, "limits[0].window"},
		{"LongWindow", []ratelimit.NamedLimit{ok, lim("b", 1, 25*time.Hour)}, nil, "limits[1].window"},
		{"SubMillisecond", []ratelimit.NamedLimit{lim("a", 1, time.Second+time.Microsecond)}, nil, "limits[0].window"},
		{"TooFine", []ratelimit.NamedLimit{lim("a", 2_000_000_000, time.Second)}, nil, "limits[0].requests"},
		{"SameName", []ratelimit.NamedLimit{ok, lim("burst", 5, time.Minute)}, nil, "limits[1].name"},
		{"ZeroQuota", nil, &ratelimit.Quota{Period: ratelimit.Day}, "quota.requests"},
		{"UnknownPeriod", nil, &ratelimit.Quota{Requests: 5, Period: "week"}, "quota.period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ratelimit.CheckLimits(tc.limits, tc.quota)
			var se *ratelimit.SpecError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && !errors.As(err, &se):
				t.Fatalf("got %v, want a SpecError on %s", err, tc.field)
			case tc.field != "" && se.Field != tc.field:
				t.Fatalf("error on %s (%v), want on %s", se.Field, err, tc.field)
			}
		})
	}
}

func TestPeriodBounds(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 0, time.FixedZone("east", 3600))
	// 22:59:59 UTC on the 31st.
	if s, e := ratelimit.Day.Bounds(at); !s.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) || !e.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day: %v to %v", s, e)
	}
	if s, e := ratelimit.Month.Bounds(time.Date(2027, 2, 28, 12, 0, 0, 0, time.UTC)); !s.Equal(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)) || !e.Equal(time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("month: %v to %v", s, e)
	}
}

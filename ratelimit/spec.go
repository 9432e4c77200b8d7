package ratelimit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/flagbridge/flagbridge/internal/slug"
)

// Bounds of the limits a key or an identity may carry: the one place they
// are written.
const (
	// MaxNamedLimits is the most named limits one key or identity holds.
	MaxNamedLimits = 4
	// MinWindow and MaxWindow bound a named limit's window.
	MinWindow = time.Second
	MaxWindow = 24 * time.Hour
)

// Window is a named limit's window. It is written in JSON as a duration
// ("1s", "10m", "24h") and shown in the shortest such form.
type Window time.Duration

// MarshalJSON writes w as "90s", "10m" or "24h": whole hours, minutes or
// seconds in the largest unit that divides it, else Go's duration syntax.
func (w Window) MarshalJSON() ([]byte, error) { return json.Marshal(w.String()) }

// String renders w as MarshalJSON does, without the quotes.
func (w Window) String() string {
	d := time.Duration(w)
	switch {
	case d > 0 && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d > 0 && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d > 0 && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// UnmarshalJSON reads a duration string such as "1m".
func (w *Window) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration such as \"1m\"")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"1m\"", s)
	}
	*w = Window(d)
	return nil
}

// NamedLimit is one named rate limit of a key or an identity: Requests per
// Window, with bursts of up to Requests (see the package semantics). A
// Shadow limit is checked and reported but never refuses.
type NamedLimit struct {
	Name     string `json:"name"`
	Requests int    `json:"requests"`
	Window   Window `json:"window"`
	Shadow   bool   `json:"shadow,omitempty"`
}

// Limit returns the GCRA limit l stands for.
func (l NamedLimit) Limit() Limit {
	return Limit{Rate: l.Requests, Period: time.Duration(l.Window), Burst: l.Requests}
}

// Period is a quota's calendar period, in UTC.
type Period string

// The periods a quota may count over.
const (
	Day   Period = "day"
	Month Period = "month"
)

// Bounds returns the start and end (exclusive) of the period that holds t,
// in UTC.
func (p Period) Bounds(t time.Time) (start, end time.Time) {
	t = t.UTC()
	switch p {
	case Month:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	default:
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	}
}

// Quota is a number of requests per calendar period (UTC). Past it,
// requests are refused until the period ends.
type Quota struct {
	Requests int64  `json:"requests"`
	Period   Period `json:"period"`
}

// SpecError is a named limit or quota out of bounds: Field names it as the
// API's JSON does ("limits[1].window", "quota.period").
type SpecError struct {
	Field, Problem string
}

func (e *SpecError) Error() string { return e.Field + " " + e.Problem }

// CheckLimits checks limits and quota as a key or an identity carries them
// (field is the JSON name of the list, "limits"; the quota's is "quota").
// It returns nil or a *SpecError for the first problem: a count of limits
// outside 1 to MaxNamedLimits (an empty, non-nil list included; nil means
// "not given"), a request count below 1, a window outside MinWindow to
// MaxWindow or not a whole number of milliseconds, two limits of one name,
// a name that is not a slug (see package slug), a quota below 1 or of an
// unknown period.
func CheckLimits(limits []NamedLimit, quota *Quota) error {
	if limits != nil && (len(limits) < 1 || len(limits) > MaxNamedLimits) {
		return &SpecError{"limits", fmt.Sprintf("must hold 1 to %d limits, not %d", MaxNamedLimits, len(limits))}
	}
	for i, l := range limits {
		field := fmt.Sprintf("limits[%d]", i)
		if l.Requests < 1 {
			return &SpecError{field + ".requests", fmt.Sprintf("must be at least 1, not %d", l.Requests)}
		}
		d := time.Duration(l.Window)
		if d < MinWindow || d > MaxWindow {
			return &SpecError{field + ".window", fmt.Sprintf("must be between %s and %s, not %s", Window(MinWindow), Window(MaxWindow), l.Window)}
		}
		if d%time.Millisecond != 0 {
			return &SpecError{field + ".window", fmt.Sprintf("must be a whole number of milliseconds, not %s", l.Window)}
		}
		if _, _, err := l.Limit().gcra(); err != nil {
			return &SpecError{field + ".requests", fmt.Sprintf("%d in %s is more than one request a nanosecond", l.Requests, l.Window)}
		}
		if err := slug.Check(l.Name); err != nil {
			return &SpecError{field + ".name", err.Error()}
		}
		for j := range i {
			if limits[j].Name == l.Name {
				return &SpecError{field + ".name", fmt.Sprintf("%q is already the name of limits[%d]", l.Name, j)}
			}
		}
	}
	if quota != nil {
		if quota.Requests < 1 {
			return &SpecError{"quota.requests", fmt.Sprintf("must be at least 1, not %d", quota.Requests)}
		}
		if quota.Period != Day && quota.Period != Month {
			return &SpecError{"quota.period", fmt.Sprintf("must be %q or %q, not %q", Day, Month, quota.Period)}
		}
	}
	return nil
}

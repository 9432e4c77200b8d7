package audit

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
)

// queryParams are the parameters of GET /v1/audit-log.
var queryParams = []string{"project", "environment", "action", "actor", "since", "until", "cursor", "limit"}

// ParseQuery reads a listing's filters from URL parameters: project,
// environment, action, actor, since and until (RFC 3339 times, or a
// duration back from now such as 24h or 7d), cursor and limit. An unknown
// or repeated parameter is refused, so that a typo never widens a filter.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	var q Query
	for name, vals := range v {
		if !slices.Contains(queryParams, name) {
			return q, apierror.Invalid("unknown parameter %q; the audit log takes %s", name, strings.Join(queryParams, ", "))
		}
		if len(vals) > 1 {
			return q, apierror.Invalid("%s: give it once", name)
		}
	}
	q.Project, q.Environment = v.Get("project"), v.Get("environment")
	q.Action, q.Actor, q.Cursor = v.Get("action"), v.Get("actor"), v.Get("cursor")
	var err error
	if q.Since, err = ParseTime("since", v.Get("since"), now); err != nil {
		return q, err
	}
	if q.Until, err = ParseTime("until", v.Get("until"), now); err != nil {
		return q, err
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 {
			return q, apierror.Invalid("limit: %q is not a whole number between 1 and %d", s, MaxLimit)
		}
	}
	return q.check()
}

// ParseTime reads a filter's time: an RFC 3339 time, or a duration back
// from now (24h, 7d); zero for "".
func ParseTime(field, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := apikey.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, apierror.Invalid("%s: %q is neither an RFC 3339 time (2026-12-01T00:00:00Z) nor a duration back from now (24h, 7d)", field, s)
}

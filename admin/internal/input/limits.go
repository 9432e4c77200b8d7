package input

import (
	"errors"
	"strconv"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// LimitInput is a named rate limit as callers write it:
// {"name":"burst","requests":100,"window":"1s"}. Keys and identities take
// the same shape.
type LimitInput struct {
	Name     string `json:"name"`
	Requests int    `json:"requests"`
	// Window is a duration such as "1s", "10m" or "24h". It is a string
	// here, not a ratelimit.Window, so that a bad one is refused naming
	// its place in the list (encoding/json does not say where an
	// unmarshaler's error came from).
	Window string `json:"window"`
	// Shadow limits are checked and reported but never refuse.
	Shadow bool `json:"shadow,omitempty"`
}

// Limits checks the limits and quota a caller gives a key or an identity
// (by ratelimit.CheckLimits, the one place their bounds are written) and
// returns the limits as they are stored: nil limits stay nil (not given).
// Every refusal names the field, as the API's JSON spells it.
func Limits(in []LimitInput, quota *ratelimit.Quota) ([]ratelimit.NamedLimit, error) {
	var limits []ratelimit.NamedLimit
	if in != nil {
		limits = make([]ratelimit.NamedLimit, len(in))
	}
	for i, l := range in {
		var w ratelimit.Window
		// Through Window's own decoding, so that both front doors accept
		// exactly the windows a key's JSON holds.
		if err := w.UnmarshalJSON(strconv.AppendQuote(nil, l.Window)); err != nil {
			return nil, apierror.Invalid("limits[%d].window must be a duration such as \"1s\" or \"10m\", not %q", i, l.Window)
		}
		limits[i] = ratelimit.NamedLimit{Name: l.Name, Requests: l.Requests, Window: w, Shadow: l.Shadow}
	}
	if err := ratelimit.CheckLimits(limits, quota); err != nil {
		// A SpecError reads "limits[1].window must be ...": the field first.
		var se *ratelimit.SpecError
		if errors.As(err, &se) {
			return nil, apierror.Invalid("%s %s", se.Field, se.Problem)
		}
		return nil, apierror.Invalid("%v", err)
	}
	return limits, nil
}

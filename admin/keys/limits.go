package keys

import "github.com/flagbridge/flagbridge/admin/internal/input"

// LimitInput is a named rate limit as callers write it:
// {"name":"burst","requests":100,"window":"1s"}. Identities take the same
// shape, so the type (and its check, input.Limits) lives in one place.
type LimitInput = input.LimitInput

// Package slug holds the one rule for the identifiers FlagBridge puts in
// URLs and storage keys (projects, environments, limit names,
// identities): lower-case letters, digits and inner hyphens, at most 63
// characters.
package slug

import "fmt"

// MaxLen is the longest slug.
const MaxLen = 63

// Check returns nil if s is a slug, or what is wrong with it, in words
// that follow the field's name ("is required", "must be ...").
func Check(s string) error {
	if s == "" {
		return fmt.Errorf("is required")
	}
	if len(s) > MaxLen {
		return fmt.Errorf("must be at most %d characters", MaxLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%q must be lower-case letters, digits and hyphens, not starting or ending with a hyphen", s)
		}
	}
	return nil
}

// Package input checks the identifiers and names people give the admin
// services, so that every noun refuses bad input with the same words.
package input

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/internal/slug"
)

// Slug checks a project or environment identifier: it appears in URLs, so
// it is kept to lower-case letters, digits and inner hyphens (package
// slug holds the rule).
func Slug(field, s string) error {
	if err := slug.Check(s); err != nil {
		return apierror.Invalid("%s %v", field, err)
	}
	return nil
}

// Name trims a display name and checks it; an empty name takes def, or is
// refused if required.
func Name(field, s, def string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		if required {
			return "", apierror.Invalid("%s is required", field)
		}
		return def, nil
	}
	if !utf8.ValidString(s) {
		return "", apierror.Invalid("%s must be valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > 100 {
		return "", apierror.Invalid("%s must be at most 100 characters", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", apierror.Invalid("%s must not contain control characters", field)
		}
	}
	return s, nil
}

// Email checks an e-mail address loosely (something@domain, no spaces) and
// returns it trimmed; its lower-cased form is its identity.
func Email(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", apierror.Invalid("%s is required", field)
	}
	at := strings.LastIndexByte(s, '@')
	if len(s) > 254 || at < 1 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n<>,;\"") || !strings.Contains(s[at:], ".") {
		return "", apierror.Invalid("%s %q is not an e-mail address", field, s)
	}
	return s, nil
}

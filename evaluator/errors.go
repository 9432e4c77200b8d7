package evaluator

import (
	"strconv"
	"strings"
)

// DefinitionError is one problem found in a flag definition document.
//
// Compile reports problems as DefinitionErrors; errors.As(err, &de) with a
// *DefinitionError yields the first one.
type DefinitionError struct {
	// Flag is the key of the flag the problem is in, or "" for a problem of
	// the document itself (JSON syntax, $evaluators, flag-set metadata).
	Flag string
	// Problem describes what is wrong, without the flag prefix.
	Problem string
	// Offset is the byte offset in the document for JSON syntax errors, and
	// -1 when the problem is not tied to a position.
	Offset int64
}

// Error formats the problem as `flag "key": problem`, or just the problem.
func (e *DefinitionError) Error() string {
	if e.Flag == "" {
		return e.Problem
	}
	return "flag " + quote(e.Flag) + ": " + e.Problem
}

// DefinitionErrors is the error Compile returns: every problem found, ordered
// by flag key (document-level problems first), never empty.
type DefinitionErrors []*DefinitionError

// Error reports the first problem precisely and counts the rest, so a short
// log line still names the flag and the problem to fix first.
func (es DefinitionErrors) Error() string {
	switch len(es) {
	case 0:
		return "invalid flag definition"
	case 1:
		return es[0].Error()
	}
	var b strings.Builder
	b.WriteString(es[0].Error())
	b.WriteString(" (and ")
	b.WriteString(strconv.Itoa(len(es) - 1))
	if len(es) == 2 {
		b.WriteString(" more problem)")
	} else {
		b.WriteString(" more problems)")
	}
	return b.String()
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es DefinitionErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// quote renders s as a JSON/Go string literal for messages.
func quote(s string) string { return strconv.Quote(s) }

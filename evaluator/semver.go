package evaluator

import "golang.org/x/mod/semver"

// Versions are parsed and ordered by golang.org/x/mod/semver, the package
// flagd's sem_ver uses, so that both agree on what is a version and on
// precedence (including arbitrarily long numbers and pre-release rules).
// That package only accepts versions spelled with a leading "v", so
// operands are normalized to that spelling first (flagd adds the "v" too).

// appendSemver appends operand v to dst spelled as golang.org/x/mod/semver
// expects: a leading "v", then the version as given. A "v" or "V" already
// there is kept as one "v", like the evaluator always accepted; numbers are
// accepted and stringified as JavaScript does, so a context value 1.2 is
// version "1.2". It reports false for any other operand type; whether the
// text is a valid version is left to semver.IsValid.
//
// It appends to a caller's buffer instead of returning "v"+s so that
// evaluating a sem_ver rule against a context string does not allocate.
func appendSemver(dst []byte, v any) ([]byte, bool) {
	dst = append(dst, 'v')
	if s, ok := v.(string); ok {
		if s != "" && (s[0] == 'v' || s[0] == 'V') {
			s = s[1:]
		}
		return append(dst, s...), true
	}
	f, ok := numberValue(v)
	if !ok {
		return dst, false
	}
	return appendJSNumber(dst, f), true
}

// semverOperand normalizes a literal sem_ver operand once, at compile time:
// the "v"-prefixed version and whether it is a valid one.
func semverOperand(v any) (string, bool) {
	b, ok := appendSemver(nil, v)
	if !ok {
		return "", false
	}
	s := string(b)
	return s, semver.IsValid(s)
}

// semverOp is a sem_ver comparison operator.
type semverOp uint8

const (
	semBad semverOp = iota
	semEq
	semNe
	semLt
	semLe
	semGt
	semGe
	semCaret // same major version (flagd's "^")
	semTilde // same major and minor version (flagd's "~")
)

func parseSemverOp(v any) semverOp {
	s, _ := v.(string)
	switch s {
	case "=":
		return semEq
	case "!=":
		return semNe
	case "<":
		return semLt
	case "<=":
		return semLe
	case ">":
		return semGt
	case ">=":
		return semGe
	case "^":
		return semCaret
	case "~":
		return semTilde
	}
	return semBad
}

// semverCompare applies op to two valid versions in semver's "v" spelling.
// Like flagd, "^" means "same major version" and "~" means "same major and
// minor version"; neither also requires the version to be at least the
// target (unlike npm ranges).
func semverCompare(actual string, op semverOp, target string) bool {
	switch op {
	case semEq:
		return semver.Compare(actual, target) == 0
	case semNe:
		return semver.Compare(actual, target) != 0
	case semLt:
		return semver.Compare(actual, target) < 0
	case semLe:
		return semver.Compare(actual, target) <= 0
	case semGt:
		return semver.Compare(actual, target) > 0
	case semGe:
		return semver.Compare(actual, target) >= 0
	case semCaret:
		// Major returns "v" and the major number, which has no leading
		// zeros: equal strings are equal numbers.
		return semver.Major(actual) == semver.Major(target)
	case semTilde:
		return semver.MajorMinor(actual) == semver.MajorMinor(target)
	}
	return false
}

package evaluator

import "strings"

// semVersion is a parsed semantic version. The numeric parts are kept as
// decimal strings without leading zeros, so arbitrarily large numbers compare
// correctly (by length, then lexically) without overflow.
type semVersion struct {
	major, minor, patch string
	pre                 []string // dot-separated pre-release identifiers
}

// parseSemVer parses a version the way flagd's sem_ver does: an optional "v"
// or "V" prefix, then MAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]] with the
// rules of golang.org/x/mod/semver (which flagd uses): missing MINOR/PATCH
// count as 0 but then no pre-release or build may follow, numbers have no
// leading zeros, identifiers are [0-9A-Za-z-], numeric pre-release
// identifiers have no leading zeros. Build metadata is validated and ignored.
//
// Numbers are accepted too (flagd stringifies numeric context values), so a
// context value 1.2 is version "1.2".
func parseSemVer(v any) (semVersion, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	default:
		f, ok := numberValue(v)
		if !ok {
			return semVersion{}, false
		}
		s = string(appendJSNumber(nil, f))
	}
	if len(s) > 0 && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	var ver semVersion
	var ok bool
	if ver.major, s, ok = semNumber(s); !ok {
		return semVersion{}, false
	}
	if s == "" {
		ver.minor, ver.patch = "0", "0"
		return ver, true
	}
	if s[0] != '.' {
		return semVersion{}, false
	}
	if ver.minor, s, ok = semNumber(s[1:]); !ok {
		return semVersion{}, false
	}
	if s == "" {
		ver.patch = "0"
		return ver, true
	}
	if s[0] != '.' {
		return semVersion{}, false
	}
	if ver.patch, s, ok = semNumber(s[1:]); !ok {
		return semVersion{}, false
	}
	if s != "" && s[0] == '-' {
		end := strings.IndexByte(s, '+')
		if end < 0 {
			end = len(s)
		}
		ids := strings.Split(s[1:end], ".")
		for _, id := range ids {
			if !semIdent(id) || (isDigits(id) && len(id) > 1 && id[0] == '0') {
				return semVersion{}, false
			}
		}
		ver.pre = ids
		s = s[end:]
	}
	if s != "" && s[0] == '+' {
		for _, id := range strings.Split(s[1:], ".") {
			if !semIdent(id) {
				return semVersion{}, false
			}
		}
		s = ""
	}
	if s != "" {
		return semVersion{}, false
	}
	return ver, true
}

// semNumber reads a decimal number without leading zeros from the front of s.
func semNumber(s string) (num, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && s[0] == '0') {
		return "", s, false
	}
	return s[:i], s[i:], true
}

func semIdent(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// cmpNum compares two decimal strings without leading zeros.
func cmpNum(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// compareSemVer orders versions by SemVer 2.0.0 precedence.
func compareSemVer(a, b semVersion) int {
	if c := cmpNum(a.major, b.major); c != 0 {
		return c
	}
	if c := cmpNum(a.minor, b.minor); c != 0 {
		return c
	}
	if c := cmpNum(a.patch, b.patch); c != 0 {
		return c
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1 // a release ranks above its pre-releases
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		xn, yn := isDigits(x), isDigits(y)
		var c int
		switch {
		case xn && yn:
			c = cmpNum(x, y)
		case xn:
			c = -1 // numeric identifiers rank below alphanumeric ones
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
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

// semverCompare applies op. Like flagd, "^" means "same major version" and
// "~" means "same major and minor version"; neither also requires the
// version to be at least the target (unlike npm ranges).
func semverCompare(actual semVersion, op semverOp, target semVersion) bool {
	switch op {
	case semEq:
		return compareSemVer(actual, target) == 0
	case semNe:
		return compareSemVer(actual, target) != 0
	case semLt:
		return compareSemVer(actual, target) < 0
	case semLe:
		return compareSemVer(actual, target) <= 0
	case semGt:
		return compareSemVer(actual, target) > 0
	case semGe:
		return compareSemVer(actual, target) >= 0
	case semCaret:
		return actual.major == target.major
	case semTilde:
		return actual.major == target.major && actual.minor == target.minor
	}
	return false
}

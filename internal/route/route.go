// Package route matches URL paths against patterns such as
// "/v1/projects/{project}/api-keys". It is shared by the edge's scope table
// and the API's router so that both read a path the same way.
//
// Matching is exact and segment by segment: a {name} segment matches one
// non-empty segment, everything else must be equal. There is no prefix
// matching, no cleaning and no trailing-slash folding, so a path that is not
// in canonical form matches nothing; for the scope table that means "admin
// only", the safe default.
package route

import "strings"

// Pattern is a compiled path pattern.
type Pattern struct {
	raw      string
	segments []segment
}

type segment struct {
	literal string
	param   string // non-empty for a {name} segment
}

// Compile parses a pattern. It panics on a malformed pattern, since
// patterns are constants written by the programmer.
func Compile(pattern string) Pattern {
	if !strings.HasPrefix(pattern, "/") {
		panic("route: pattern must start with /: " + pattern)
	}
	p := Pattern{raw: pattern}
	for _, s := range strings.Split(pattern[1:], "/") {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name := s[1 : len(s)-1]
			if name == "" {
				panic("route: empty parameter name in " + pattern)
			}
			p.segments = append(p.segments, segment{param: name})
			continue
		}
		if strings.ContainsAny(s, "{}") || s == "" {
			panic("route: malformed segment in " + pattern)
		}
		p.segments = append(p.segments, segment{literal: s})
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether path matches the pattern, without allocating.
func (p Pattern) Match(path string) bool {
	return p.walk(path, nil)
}

// Params matches path and calls set for each parameter with its value.
func (p Pattern) Params(path string, set func(name, value string)) bool {
	return p.walk(path, set)
}

func (p Pattern) walk(path string, set func(name, value string)) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	rest := path[1:]
	for i, seg := range p.segments {
		var part string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			if i == len(p.segments)-1 {
				return false
			}
			part, rest = rest[:j], rest[j+1:]
		} else {
			if i != len(p.segments)-1 {
				return false
			}
			part, rest = rest, ""
		}
		if seg.param != "" {
			if part == "" {
				return false
			}
			if set != nil {
				set(seg.param, part)
			}
			continue
		}
		if part != seg.literal {
			return false
		}
	}
	return true
}

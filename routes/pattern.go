package routes

import "strings"

// pattern is a compiled path pattern such as
// "/v1/projects/{project}/api-keys".
//
// Matching is exact and segment by segment: a {name} segment matches one
// non-empty segment, a final {name...} segment the non-empty rest of the
// path, and everything else must be equal. There is no prefix matching, no
// cleaning and no trailing-slash folding (a pattern ending in "/" matches
// only paths that do), so a path that is not in canonical form matches
// nothing; at the edge that means the safe default of its family.
type pattern struct {
	raw      string
	segments []segment
}

type segment struct {
	literal string
	param   string // non-empty for a {name} or {name...} segment
	rest    bool   // {name...}: the rest of the path
}

// compile parses a pattern. It panics on a malformed pattern, since
// patterns are constants written by the programmer.
func compile(raw string) pattern {
	if !strings.HasPrefix(raw, "/") {
		panic("routes: pattern must start with /: " + raw)
	}
	p := pattern{raw: raw}
	parts := strings.Split(raw[1:], "/")
	for i, s := range parts {
		last := i == len(parts)-1
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name := s[1 : len(s)-1]
			rest := strings.HasSuffix(name, "...")
			name = strings.TrimSuffix(name, "...")
			if name == "" || strings.ContainsAny(name, "{}.") || rest && !last {
				panic("routes: malformed parameter in " + raw)
			}
			p.segments = append(p.segments, segment{param: name, rest: rest})
			continue
		}
		if strings.ContainsAny(s, "{}") || s == "" && !last {
			panic("routes: malformed segment in " + raw)
		}
		p.segments = append(p.segments, segment{literal: s})
	}
	return p
}

// String returns the pattern as written.
func (p pattern) String() string { return p.raw }

// match reports whether path matches the pattern, without allocating.
func (p pattern) match(path string) bool {
	return p.walk(path, nil)
}

// params matches path and calls set for each parameter with its value.
func (p pattern) params(path string, set func(name, value string)) bool {
	return p.walk(path, set)
}

func (p pattern) walk(path string, set func(name, value string)) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	rest := path[1:]
	for i, seg := range p.segments {
		if seg.rest {
			if rest == "" {
				return false
			}
			if set != nil {
				set(seg.param, rest)
			}
			return true
		}
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

package api

import (
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// The evaluation endpoints' bodies are small, hot and of three fixed
// shapes. scanEvaluation reads the common case of them without
// encoding/json's reflection and buffering; anything it is not sure of
// (escapes, a member it does not expect, null where a string goes, bad
// JSON) it leaves to encoding/json, which then decides, errors included.
// So the answers are encoding/json's by construction, and
// FuzzScanEvaluation checks that the values are too.

// evalTarget says where scanEvaluation puts each member a body may have:
// nil for a member that body's type does not have.
type evalTarget struct {
	flag    *string
	flags   *[]string
	context *map[string]any
	// rawContext, if set, takes the context instead of context: its JSON
	// text, checked as the decoding would check it but not decoded, for a
	// caller that decodes it (with contextOf) only if a flag reads it.
	// Most flags do not, and the decoded context is most of what an
	// evaluation allocates. A targetingKey that is not a string, which
	// needs decoding to answer, makes the scan give up.
	rawContext *[]byte
}

// evalTargetOf is the target of the evaluation request types, false for
// any other.
func evalTargetOf(dst any) (evalTarget, bool) {
	switch in := dst.(type) {
	case *evaluateRequest:
		return evalTarget{flag: &in.Flag, context: &in.Context}, true
	case *batchRequest:
		return evalTarget{flags: &in.Flags, context: &in.Context}, true
	case *ofrepRequest:
		return evalTarget{context: &in.Context}, true
	}
	return evalTarget{}, false
}

// maxScanDepth bounds the nesting scanEvaluation follows itself; deeper
// bodies go to encoding/json, which has its own (larger) bound.
const maxScanDepth = 32

// scanEvaluation decodes body into t, as encoding/json with unknown
// members refused would, and reports whether it could. On false nothing
// was written to t. The strings it decodes view body rather than copy it
// (one allocation per string less on every request), so body must never
// change afterwards.
func scanEvaluation(body []byte, t evalTarget) bool {
	s := scanner{b: body}
	var (
		flag     string
		flags    []string
		ctx      map[string]any
		raw      []byte
		seenFlag bool
		seenList bool
		seenCtx  bool
	)
	s.ws()
	if !s.eat('{') {
		return false
	}
	s.ws()
	if !s.eat('}') {
		for {
			key, ok := s.plainString()
			if !ok {
				return false
			}
			s.ws()
			if !s.eat(':') {
				return false
			}
			s.ws()
			switch {
			case key == "flag" && t.flag != nil:
				// null would leave the field as it was: encoding/json's.
				if flag, ok = s.plainString(); !ok {
					return false
				}
				seenFlag = true
			case key == "flags" && t.flags != nil:
				if flags, ok = s.stringList(); !ok {
					return false
				}
				seenList = true
			case key == "context" && t.context != nil && !seenCtx:
				// A second context would merge into the first in
				// encoding/json: left to it.
				if s.null() {
					ctx = nil
				} else if s.peek() == '{' {
					start := s.i
					v, ok := s.value(0, t.rawContext == nil)
					if !ok {
						return false
					}
					if t.rawContext != nil {
						raw = s.b[start:s.i]
					} else {
						ctx = v.(map[string]any)
					}
				} else {
					return false
				}
				seenCtx = true
			default:
				return false
			}
			s.ws()
			if s.eat('}') {
				break
			}
			if !s.eat(',') {
				return false
			}
			s.ws()
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return false
	}
	if seenFlag {
		*t.flag = flag
	}
	if seenList {
		*t.flags = flags
	}
	if seenCtx {
		if t.rawContext != nil {
			*t.rawContext = raw
		} else {
			*t.context = ctx
		}
	}
	return true
}

// contextOf decodes a context scanEvaluation left raw: absent or null is
// empty, as evaluationContext has it.
func contextOf(raw []byte) map[string]any {
	if raw == nil {
		return map[string]any{}
	}
	s := scanner{b: raw}
	v, _ := s.value(0, true) // scanned before: it decodes
	return v.(map[string]any)
}

// scanner walks a JSON text; every method leaves i unspecified when it
// fails, since the scan is then abandoned.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

func (s *scanner) null() bool { return s.literal("null") }

// plainString reads a string without escapes, of valid UTF-8 (which
// encoding/json keeps as it is); an escape or anything else fails.
func (s *scanner) plainString() (string, bool) {
	if !s.eat('"') {
		return "", false
	}
	start, ascii := s.i, true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			if len(raw) == 0 {
				return "", true
			}
			// A view, not a copy: the body is never written again.
			return unsafe.String(&raw[0], len(raw)), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		s.i++
	}
	return "", false
}

// stringList reads null (a nil list) or an array of plain strings.
func (s *scanner) stringList() ([]string, bool) {
	if s.null() {
		return nil, true
	}
	if !s.eat('[') {
		return nil, false
	}
	out := []string{}
	s.ws()
	if s.eat(']') {
		return out, true
	}
	for {
		v, ok := s.plainString()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		s.ws()
		if s.eat(']') {
			return out, true
		}
		if !s.eat(',') {
			return nil, false
		}
		s.ws()
	}
}

// value reads any JSON value as encoding/json decodes it into an
// interface{}: map[string]any, []any, string, float64, bool or nil. With
// build false it only checks the value, which it accepts exactly when it
// would decode it, and returns nil; and a targetingKey member of the
// outermost object must then be a string.
func (s *scanner) value(depth int, build bool) (any, bool) {
	switch c := s.peek(); {
	case c == '{':
		if depth >= maxScanDepth {
			return nil, false
		}
		s.i++
		var m map[string]any
		if build {
			m = map[string]any{}
		}
		s.ws()
		if s.eat('}') {
			return m, true
		}
		for {
			k, ok := s.plainString()
			if !ok {
				return nil, false
			}
			s.ws()
			if !s.eat(':') {
				return nil, false
			}
			s.ws()
			if !build && depth == 0 && k == "targetingKey" && s.peek() != '"' {
				return nil, false
			}
			v, ok := s.value(depth+1, build)
			if !ok {
				return nil, false
			}
			if build {
				m[k] = v // a repeated name: the last one, as encoding/json
			}
			s.ws()
			if s.eat('}') {
				return m, true
			}
			if !s.eat(',') {
				return nil, false
			}
			s.ws()
		}
	case c == '[':
		if depth >= maxScanDepth {
			return nil, false
		}
		s.i++
		var a []any
		if build {
			a = []any{}
		}
		s.ws()
		if s.eat(']') {
			return a, true
		}
		for {
			v, ok := s.value(depth+1, build)
			if !ok {
				return nil, false
			}
			if build {
				a = append(a, v)
			}
			s.ws()
			if s.eat(']') {
				return a, true
			}
			if !s.eat(',') {
				return nil, false
			}
			s.ws()
		}
	case c == '"':
		v, ok := s.plainString()
		if !build {
			return nil, ok
		}
		return v, ok
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		f, ok := s.number()
		if !build || !ok {
			return nil, ok
		}
		return f, true
	}
	return nil, false
}

// number reads a JSON number (RFC 8259's grammar, which strconv's is
// wider than) as a float64.
func (s *scanner) number() (float64, bool) {
	start := s.i
	s.eat('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return 0, false
	}
	if s.eat('.') {
		if !s.digits() {
			return 0, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return 0, false
		}
	}
	// A view: a copy would escape into ParseFloat's error, an allocation.
	f, err := strconv.ParseFloat(unsafe.String(&s.b[start], s.i-start), 64)
	if err != nil {
		return 0, false // out of range: encoding/json's error
	}
	return f, true
}

// digits reads one or more decimal digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

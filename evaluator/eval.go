package evaluator

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/murmur3"
	"golang.org/x/mod/semver"
)

// env is one evaluation scope: the root context, or an element inside map,
// filter, reduce, all, some or none (where "var" reads the element, as in
// JsonLogic). It also carries what flagd injects under "$flagd".
//
// env is passed by pointer down the recursive eval but holds no pointer to
// other evaluation state, so the Go compiler can keep it on the stack:
// evaluating a typical rule then allocates nothing.
type env struct {
	data    any            // the scope "var" reads
	ctx     map[string]any // the caller's context (for targetingKey)
	flagKey string
	keyAny  any // flagKey, boxed once at compile time
	now     func() time.Time
	ts      float64
	tsSet   bool
	root    bool
	steps   int  // work done so far, against MaxEvalSteps
	aborted bool // the budget ran out: every further eval yields null
}

// charge adds n steps of work and reports whether the budget still holds.
func (e *env) charge(n int) bool {
	e.steps += n
	if e.steps > MaxEvalSteps {
		e.aborted = true
	}
	return !e.aborted
}

// timestamp is $flagd.timestamp, read from the clock at most once per scope
// (and only if the rule asks for it).
func (e *env) timestamp() float64 {
	if !e.tsSet {
		e.ts = float64(e.now().Unix())
		e.tsSet = true
	}
	return e.ts
}

// flagdObject is the value of {"var": "$flagd"}.
func (e *env) flagdObject() map[string]any {
	return map[string]any{"flagKey": e.flagKey, "timestamp": e.timestamp()}
}

// evalTop evaluates a rule's root and reports whether the result came
// directly out of a fractional split (through if/?: branches), which makes
// the resolution reason SPLIT rather than TARGETING_MATCH.
func (e *env) evalTop(n *node) (any, bool) {
	for n.op == opIf {
		next := e.ifBranch(n)
		if next == nil {
			return nil, false
		}
		n = next
	}
	v := e.eval(n)
	return v, n.op == opFractional
}

// ifBranch picks the branch of an if/?: node; nil when no branch applies.
func (e *env) ifBranch(n *node) *node {
	args := n.args
	i := 0
	for ; i+1 < len(args); i += 2 {
		if truthy(e.eval(args[i])) {
			return args[i+1]
		}
	}
	if i < len(args) {
		return args[i]
	}
	return nil
}

// arg evaluates the i-th argument, or yields null when it is absent.
func (e *env) arg(n *node, i int) any {
	if i < len(n.args) {
		return e.eval(n.args[i])
	}
	return nil
}

// eval evaluates one node. Semantics follow JsonLogic's reference
// implementation (see coerce.go) and flagd's custom operators.
func (e *env) eval(n *node) any {
	if !e.charge(1) {
		return nil
	}
	switch n.op {
	case opLiteral:
		return n.val
	case opArray:
		out := make([]any, len(n.args))
		for i, a := range n.args {
			out[i] = e.eval(a)
		}
		return out
	case opVar:
		return e.evalVar(n)
	case opVarDynamic:
		v, ok := e.lookup(e.eval(n.args[0]))
		if !ok {
			return e.arg(n, 1)
		}
		return v
	case opMissing:
		return e.missing(n)
	case opMissingSome:
		return e.missingSome(n)
	case opIf:
		if b := e.ifBranch(n); b != nil {
			return e.eval(b)
		}
		return nil
	case opEq, opNe:
		var eq bool
		if len(n.args) < 2 {
			eq = e.arg(n, 0) == nil // x == undefined holds only for null
		} else {
			eq = looseEquals(e.eval(n.args[0]), e.eval(n.args[1]))
		}
		return eq == (n.op == opEq)
	case opStrictEq, opStrictNe:
		eq := len(n.args) >= 2 && strictEquals(e.eval(n.args[0]), e.eval(n.args[1]))
		return eq == (n.op == opStrictEq)
	case opNot:
		return !truthy(e.arg(n, 0))
	case opNotNot:
		return truthy(e.arg(n, 0))
	case opOr:
		var v any
		for _, a := range n.args {
			if v = e.eval(a); truthy(v) {
				return v
			}
		}
		return v
	case opAnd:
		var v any
		for _, a := range n.args {
			if v = e.eval(a); !truthy(v) {
				return v
			}
		}
		return v
	case opLt, opLe, opGt, opGe:
		return e.relational(n)
	case opMax, opMin:
		if len(n.args) == 0 {
			return nil
		}
		best := toNumber(e.eval(n.args[0]))
		for _, a := range n.args[1:] {
			x := toNumber(e.eval(a))
			switch {
			case math.IsNaN(x) || math.IsNaN(best):
				best = math.NaN()
			case n.op == opMax && x > best, n.op == opMin && x < best:
				best = x
			}
		}
		return best
	case opAdd:
		sum := 0.0
		for _, a := range n.args {
			sum += toNumber(e.eval(a))
		}
		return sum
	case opMul:
		if len(n.args) == 0 {
			return nil
		}
		prod := 1.0
		for _, a := range n.args {
			prod *= toNumber(e.eval(a))
		}
		return prod
	case opSub:
		switch len(n.args) {
		case 0:
			return nil
		case 1:
			return -toNumber(e.eval(n.args[0]))
		}
		acc := toNumber(e.eval(n.args[0]))
		for _, a := range n.args[1:] {
			acc -= toNumber(e.eval(a))
		}
		return acc
	case opDiv:
		if len(n.args) < 2 {
			return nil
		}
		acc := toNumber(e.eval(n.args[0]))
		for _, a := range n.args[1:] {
			acc /= toNumber(e.eval(a))
		}
		return acc
	case opMod:
		if len(n.args) < 2 {
			return nil
		}
		return math.Mod(toNumber(e.eval(n.args[0])), toNumber(e.eval(n.args[1])))
	case opCat:
		return e.cat(n)
	case opSubstr:
		return e.substr(n)
	case opIn:
		return e.in(n)
	case opMerge:
		out := []any{}
		for _, a := range n.args {
			v := e.eval(a)
			if arr, ok := v.([]any); ok {
				if len(out)+len(arr) > MaxValueLen || !e.charge(len(arr)/16) {
					e.aborted = true
					return nil
				}
				out = append(out, arr...)
			} else {
				out = append(out, v)
			}
		}
		return out
	case opMap, opFilter, opReduce, opAll, opSome, opNone:
		return e.iterate(n)
	case opLog:
		return e.arg(n, 0)
	case opFractional:
		return e.fractional(n.frac)
	case opSemVer:
		return e.semver(n)
	case opStartsWith, opEndsWith:
		if len(n.args) != 2 {
			return nil
		}
		s, ok1 := e.eval(n.args[0]).(string)
		affix, ok2 := e.eval(n.args[1]).(string)
		if !ok1 || !ok2 {
			return nil // null, not false: flagd then picks the default variant
		}
		if n.op == opStartsWith {
			return strings.HasPrefix(s, affix)
		}
		return strings.HasSuffix(s, affix)
	case opLower, opUpper:
		if len(n.args) != 1 {
			return nil
		}
		s, ok := e.eval(n.args[0]).(string)
		if !ok {
			return nil
		}
		return asciiCase(s, n.op == opUpper)
	}
	return nil
}

// evalVar reads a var with a compile-time path.
func (e *env) evalVar(n *node) any {
	if n.flagd != flagdNone && e.root {
		switch n.flagd {
		case flagdFlagKey:
			return e.keyAny
		case flagdTimestamp:
			return e.timestamp()
		case flagdObject:
			return e.flagdObject()
		}
		return e.arg(n, 1) // some other $flagd property: never present
	}
	cur := e.data
	for _, seg := range n.path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[seg.key]
		case []any:
			if seg.idx < 0 || seg.idx >= len(c) {
				cur = nil
			} else {
				cur = c[seg.idx]
			}
		default:
			cur = nil
		}
		if cur == nil {
			break
		}
	}
	if cur == nil && len(n.args) > 1 {
		return e.eval(n.args[1])
	}
	return cur
}

// lookup reads a var whose path was computed: null or "" is the whole scope,
// numbers are array indexes, strings are dotted paths.
func (e *env) lookup(path any) (any, bool) {
	var p string
	switch x := path.(type) {
	case nil:
		return e.data, true
	case string:
		p = x
	default:
		if _, ok := numberValue(path); !ok {
			return nil, false
		}
		p = jsString(path)
	}
	if p == "" {
		return e.data, true
	}
	if e.root && (p == "$flagd" || strings.HasPrefix(p, "$flagd.")) {
		switch flagdPropOf(splitPath(p)) {
		case flagdFlagKey:
			return e.keyAny, true
		case flagdTimestamp:
			return e.timestamp(), true
		case flagdObject:
			return e.flagdObject(), true
		}
		return nil, false
	}
	cur := e.data
	for p != "" {
		var seg string
		if i := strings.IndexByte(p, '.'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			seg, p = p, ""
		}
		if seg == "" {
			continue
		}
		switch c := cur.(type) {
		case map[string]any:
			cur = c[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
		if cur == nil {
			return nil, false
		}
	}
	return cur, true
}

// missing returns the keys (from the arguments, or from an array first
// argument) whose value is null, absent or "".
func (e *env) missing(n *node) any {
	var keys []any
	if len(n.args) > 0 {
		first := e.eval(n.args[0])
		if arr, ok := first.([]any); ok {
			keys = arr
		} else {
			keys = make([]any, len(n.args))
			keys[0] = first
			for i := 1; i < len(n.args); i++ {
				keys[i] = e.eval(n.args[i])
			}
		}
	}
	return e.missingKeys(keys)
}

func (e *env) missingKeys(keys []any) []any {
	out := []any{}
	for _, k := range keys {
		v, ok := e.lookup(k)
		if !ok || v == nil || v == "" {
			out = append(out, k)
		}
	}
	return out
}

// missingSome returns [] when at least need of the keys are present, else
// the missing ones.
func (e *env) missingSome(n *node) any {
	need := toNumber(e.arg(n, 0))
	keys, _ := e.arg(n, 1).([]any)
	miss := e.missingKeys(keys)
	if float64(len(keys)-len(miss)) >= need {
		return []any{}
	}
	return miss
}

// relational implements <, <=, > and >= including the three-argument
// "between" forms (a < b < c); a missing operand compares as undefined.
func (e *env) relational(n *node) any {
	if len(n.args) < 2 {
		return false
	}
	a, b := e.eval(n.args[0]), e.eval(n.args[1])
	if !holds(n.op, a, b) {
		return false
	}
	if len(n.args) > 2 {
		return holds(n.op, b, e.eval(n.args[2]))
	}
	return true
}

func holds(op opcode, a, b any) bool {
	c, ok := compare(a, b)
	if !ok {
		return false
	}
	switch op {
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	case opGt:
		return c > 0
	}
	return c >= 0
}

// cat concatenates the string forms of its arguments (null as "").
func (e *env) cat(n *node) any {
	if len(n.args) == 1 {
		if s, ok := e.eval(n.args[0]).(string); ok {
			return s
		}
	}
	var buf [128]byte
	b := buf[:0]
	for _, a := range n.args {
		b = appendJSString(b, e.eval(a), 0, false)
		if len(b) > MaxValueLen {
			e.aborted = true
			return nil
		}
	}
	if !e.charge(len(b) / 64) {
		return nil
	}
	return string(b)
}

// substr is JavaScript's String(s).substr(start, length), where a negative
// length drops that many characters from the end (JsonLogic's extension).
func (e *env) substr(n *node) any {
	s := jsString(e.arg(n, 0))
	start := toInteger(toNumber(e.arg(n, 1)))
	size := utf8.RuneCountInString(s)
	if start < 0 {
		start = max(size+start, 0)
	}
	start = min(start, size)
	length := size - start
	if len(n.args) > 2 {
		l := toInteger(toNumber(e.eval(n.args[2])))
		if l < 0 {
			length = max(length+l, 0)
		} else {
			length = min(l, length)
		}
	}
	if size == len(s) { // ASCII: byte offsets are character offsets
		return s[start : start+length]
	}
	r := []rune(s)
	return string(r[start : start+length])
}

// toInteger truncates like JavaScript's ToIntegerOrInfinity, clamped to int.
func toInteger(f float64) int {
	switch {
	case math.IsNaN(f):
		return 0
	case f > math.MaxInt32:
		return math.MaxInt32
	case f < math.MinInt32:
		return math.MinInt32
	}
	return int(f)
}

// in tests substring containment (string haystack) or strict membership
// (array haystack); any other haystack contains nothing.
func (e *env) in(n *node) any {
	if len(n.args) < 2 {
		return false
	}
	needle := e.eval(n.args[0])
	if n.set != nil {
		s, ok := needle.(string)
		if !ok {
			return false
		}
		_, found := n.set[s]
		return found
	}
	switch hay := e.eval(n.args[1]).(type) {
	case string:
		if s, ok := needle.(string); ok {
			return strings.Contains(hay, s)
		}
		return strings.Contains(hay, jsString(needle))
	case []any:
		if s, ok := needle.(string); ok {
			for _, h := range hay {
				if hs, ok := h.(string); ok && hs == s {
					return true
				}
			}
			return false
		}
		for _, h := range hay {
			if strictEquals(needle, h) {
				return true
			}
		}
	}
	return false
}

// iterate implements the array operators, whose second argument is
// evaluated once per element with the element as the scope.
func (e *env) iterate(n *node) any {
	arr, isArr := e.arg(n, 0).([]any)
	var logic *node
	if len(n.args) > 1 {
		logic = n.args[1]
	}
	child := *e
	child.root = false
	// The child scope counts its steps; they flow back to e when done.
	defer func() { e.steps, e.aborted = child.steps, child.aborted }()
	apply := func(data any) any {
		if logic == nil || child.aborted {
			return nil
		}
		child.data = data
		return child.eval(logic)
	}
	switch n.op {
	case opMap:
		out := make([]any, 0, len(arr))
		for _, el := range arr {
			out = append(out, apply(el))
		}
		return out
	case opFilter:
		out := []any{}
		for _, el := range arr {
			if truthy(apply(el)) {
				out = append(out, el)
			}
		}
		return out
	case opReduce:
		acc := e.arg(n, 2)
		if !isArr {
			return acc
		}
		for _, el := range arr {
			acc = apply(map[string]any{"current": el, "accumulator": acc})
		}
		return acc
	case opAll:
		if len(arr) == 0 {
			return false
		}
		for _, el := range arr {
			if !truthy(apply(el)) {
				return false
			}
		}
		return true
	case opSome, opNone:
		found := false
		for _, el := range arr {
			if truthy(apply(el)) {
				found = true
				break
			}
		}
		return found == (n.op == opSome)
	}
	return nil
}

// semver implements flagd's sem_ver: [version, operator, target]. Anything
// malformed yields null (so the default variant), as in flagd.
func (e *env) semver(n *node) any {
	spec := n.sem
	if len(n.args) != 3 {
		return nil
	}
	// The operand is spelled in a stack buffer; string(b) does not escape,
	// so for a usual version (up to 32 bytes) no string is allocated either.
	var buf [64]byte
	b, ok := appendSemver(buf[:0], e.eval(n.args[0]))
	if !ok {
		return nil
	}
	actual := string(b)
	if !semver.IsValid(actual) {
		return nil
	}
	op := spec.op
	if !spec.opConst {
		op = parseSemverOp(e.eval(n.args[1]))
	}
	if op == semBad {
		return nil
	}
	if spec.targetSet {
		if !spec.targetOK {
			return nil
		}
		return semverCompare(actual, op, spec.target)
	}
	var tbuf [64]byte
	tb, ok := appendSemver(tbuf[:0], e.eval(n.args[2]))
	if !ok {
		return nil
	}
	target := string(tb)
	if !semver.IsValid(target) {
		return nil
	}
	return semverCompare(actual, op, target)
}

// fractional implements flagd's current (v2) fractional bucketing: the
// 32-bit MurmurHash3 of the bucketing key is scaled onto [0, totalWeight)
// with integer arithmetic, (hash * total) >> 32, and the bucket whose
// cumulative weight range holds that point wins. Invalid input yields null.
func (e *env) fractional(spec *fracSpec) any {
	if spec.alwaysNil {
		return nil
	}
	var extra []any // a computed first argument that turned out to be a bucket
	var hash uint32
	keyed := false
	switch {
	case spec.keyConst:
		hash, keyed = spec.keyHash, true
	case spec.keyNode != nil && spec.keyNode.op == opCat:
		// The usual bucketing key, {"cat": [...]}, is built and hashed in a
		// stack buffer instead of materializing the string.
		var buf [256]byte
		b := buf[:0]
		for _, a := range spec.keyNode.args {
			b = appendJSString(b, e.eval(a), 0, false)
		}
		hash, keyed = murmur3.Sum32(b), true
	case spec.keyNode != nil:
		switch k := e.eval(spec.keyNode).(type) {
		case string:
			hash, keyed = murmur3.StringSum32(k), true
		case nil:
		case []any:
			extra = k
		default:
			return nil
		}
	}
	if !keyed {
		tk, ok := e.ctx["targetingKey"].(string)
		if !ok {
			return nil // no bucketing key and no targeting key
		}
		hash = bucketHash(e.flagKey, tk)
	}
	if spec.constant && extra == nil {
		if spec.total == 0 || spec.total > math.MaxInt32 {
			return nil
		}
		point := (uint64(hash) * spec.total) >> 32
		for i, end := range spec.cum {
			if point < end {
				return spec.buckets[i].variant.val
			}
		}
		return nil
	}
	return e.fractionalSlow(spec, hash, extra)
}

// fractionalSlow handles buckets with computed variants or weights.
func (e *env) fractionalSlow(spec *fracSpec, hash uint32, extra []any) any {
	n := len(spec.buckets)
	if extra != nil {
		n++
	}
	var vbuf [8]any
	var wbuf [8]uint64
	variants, weights := vbuf[:0], wbuf[:0]
	if n > len(vbuf) {
		variants, weights = make([]any, 0, n), make([]uint64, 0, n)
	}
	add := func(variant, weight any, hasWeight bool) bool {
		v, ok := fracVariant(variant)
		if !ok {
			return false
		}
		w := uint64(1)
		if hasWeight {
			if w, ok = fracWeight(weight); !ok {
				return false
			}
		}
		variants = append(variants, v)
		weights = append(weights, w)
		return true
	}
	addArray := func(arr []any) bool {
		if len(arr) == 0 {
			return false
		}
		if len(arr) == 1 {
			return add(arr[0], nil, false)
		}
		return add(arr[0], arr[1], true)
	}
	if extra != nil && !addArray(extra) {
		return nil
	}
	for _, b := range spec.buckets {
		var ok bool
		switch {
		case b.whole != nil:
			arr, isArr := e.eval(b.whole).([]any)
			ok = isArr && addArray(arr)
		case b.weight == nil:
			ok = add(e.eval(b.variant), nil, false)
		default:
			ok = add(e.eval(b.variant), e.eval(b.weight), true)
		}
		if !ok {
			return nil
		}
	}
	var total uint64
	for _, w := range weights {
		total += w
	}
	if total == 0 || total > math.MaxInt32 {
		return nil
	}
	point := (uint64(hash) * total) >> 32
	var end uint64
	for i, w := range weights {
		end += w
		if point < end {
			return variants[i]
		}
	}
	return nil
}

// bucketHash is the MurmurHash3 x86_32 hash (seed 0) of a+b: flagd's
// default bucketing key is flagKey+targetingKey. The key is assembled in a
// stack buffer rather than as a string, since murmur3.Sum32 does not keep
// its input: hashing a key of up to 256 bytes allocates nothing.
func bucketHash(a, b string) uint32 {
	var buf [256]byte
	return murmur3.Sum32(append(append(buf[:0], a...), b...))
}

// asciiCase maps ASCII letters only, like flagd's lower/upper, so results
// don't depend on Unicode case tables; it returns s itself when unchanged.
func asciiCase(s string, upper bool) string {
	from, to := byte('A'), byte('a')
	if upper {
		from, to = 'a', 'A'
	}
	i := 0
	for i < len(s) && !(s[i] >= from && s[i] <= from+25) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if b[i] >= from && b[i] <= from+25 {
			b[i] = b[i] - from + to
		}
	}
	return string(b)
}

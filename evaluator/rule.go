package evaluator

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/murmur3"
)

// opcode identifies what a compiled rule node does. Rules are compiled into
// a tree of *node interpreted by one switch (env.eval): a concrete, non-
// interface call graph lets the Go compiler keep the evaluation state on the
// stack, which is what makes evaluation allocation-free for typical rules.
type opcode uint8

const (
	opLiteral    opcode = iota
	opArray             // array literal with computed elements
	opVar               // var with a path known at compile time
	opVarDynamic        // var whose path is computed
	opMissing
	opMissingSome
	opIf
	opEq
	opStrictEq
	opNe
	opStrictNe
	opNot
	opNotNot
	opOr
	opAnd
	opLt
	opLe
	opGt
	opGe
	opMax
	opMin
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opCat
	opSubstr
	opIn
	opMerge
	opMap
	opFilter
	opReduce
	opAll
	opSome
	opNone
	opLog
	opFractional
	opSemVer
	opStartsWith
	opEndsWith
	opLower
	opUpper
)

// operators maps every operator name a targeting rule may use to its opcode:
// JsonLogic's standard set plus flagd's custom operators (fractional,
// sem_ver, starts_with, ends_with, lower, upper).
var operators = map[string]opcode{
	"var":          opVar,
	"missing":      opMissing,
	"missing_some": opMissingSome,
	"if":           opIf,
	"?:":           opIf,
	"==":           opEq,
	"===":          opStrictEq,
	"!=":           opNe,
	"!==":          opStrictNe,
	"!":            opNot,
	"!!":           opNotNot,
	"or":           opOr,
	"and":          opAnd,
	"<":            opLt,
	"<=":           opLe,
	">":            opGt,
	">=":           opGe,
	"max":          opMax,
	"min":          opMin,
	"+":            opAdd,
	"-":            opSub,
	"*":            opMul,
	"/":            opDiv,
	"%":            opMod,
	"cat":          opCat,
	"substr":       opSubstr,
	"in":           opIn,
	"merge":        opMerge,
	"map":          opMap,
	"filter":       opFilter,
	"reduce":       opReduce,
	"all":          opAll,
	"some":         opSome,
	"none":         opNone,
	"log":          opLog,
	"fractional":   opFractional,
	"sem_ver":      opSemVer,
	"starts_with":  opStartsWith,
	"ends_with":    opEndsWith,
	"lower":        opLower,
	"upper":        opUpper,
}

// node is one compiled piece of a targeting rule. Nodes are immutable after
// compilation and may be shared (a $ref'd evaluator is compiled once).
type node struct {
	op     opcode
	args   []*node
	val    any                 // opLiteral: the value
	path   []pathSeg           // opVar: the path; nil means the whole scope
	flagd  flagdProp           // opVar: a $flagd.* property instead of a context path
	set    map[string]struct{} // opIn: haystack of string literals, for large lists
	frac   *fracSpec           // opFractional
	sem    *semverSpec         // opSemVer
	name   string              // operator name as written, for messages
	height int                 // nesting height of this subtree (a literal is 1)
	size   int                 // nodes in this subtree, shared ones counted per use
}

// pathSeg is one segment of a dotted var path, with its array index
// precomputed (-1 when the segment is not a valid index).
type pathSeg struct {
	key string
	idx int
}

// flagdProp selects the properties flagd injects under "$flagd".
type flagdProp uint8

const (
	flagdNone      flagdProp = iota
	flagdObject              // "$flagd": both properties
	flagdFlagKey             // "$flagd.flagKey"
	flagdTimestamp           // "$flagd.timestamp"
	flagdUnknown             // any other "$flagd..." path: never present
)

// semverSpec holds the sem_ver operands that were literals, parsed once.
type semverSpec struct {
	op        semverOp
	opConst   bool
	target    string // "v"-prefixed, see appendSemver
	targetOK  bool
	targetSet bool
}

func literal(v any) *node { return &node{op: opLiteral, val: v, height: 1, size: 1} }

// ruleCompiler compiles targeting rules of one document, resolving $refs
// against its $evaluators (each compiled once, cycles refused).
type ruleCompiler struct {
	evaluators map[string]any
	compiled   map[string]*node
	failed     map[string]error
	stack      []string // $ref names being compiled, for cycle messages
	warnings   []string // non-fatal findings for the rule being compiled
}

func newRuleCompiler(evaluators map[string]any) *ruleCompiler {
	return &ruleCompiler{
		evaluators: evaluators,
		compiled:   map[string]*node{},
		failed:     map[string]error{},
	}
}

var (
	errTooDeep = fmt.Errorf("rule nests deeper than %d levels", MaxRuleDepth)
	errTooBig  = fmt.Errorf("rule has more than %d operations once its $refs are expanded", MaxRuleNodes)
)

func (c *ruleCompiler) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// compileRule compiles a whole targeting rule.
func (c *ruleCompiler) compileRule(raw any) (*node, error) {
	if _, ok := raw.(map[string]any); !ok {
		return nil, errors.New("targeting must be a JSON object (a JsonLogic rule)")
	}
	return c.compile(raw, 0)
}

// compile compiles a JsonLogic value found depth levels below the rule root.
func (c *ruleCompiler) compile(raw any, depth int) (*node, error) {
	switch x := raw.(type) {
	case []any:
		if depth >= MaxRuleDepth {
			return nil, errTooDeep
		}
		args, allLiteral, height, size, err := c.compileList(x, depth+1)
		if err != nil {
			return nil, err
		}
		if allLiteral {
			// The literal array is the raw one: its elements are its values.
			return &node{op: opLiteral, val: x, height: height + 1, size: 1}, nil
		}
		return &node{op: opArray, args: args, height: height + 1, size: size + 1}, nil
	case map[string]any:
		if len(x) != 1 {
			if _, isRef := x["$ref"]; isRef {
				return nil, errors.New(`a {"$ref": ...} object may hold no other key`)
			}
			// JsonLogic treats objects that are not a single operation as data.
			return literal(x), nil
		}
		for name, argRaw := range x {
			if name == "$ref" {
				return c.compileRef(argRaw, depth)
			}
			if depth >= MaxRuleDepth {
				return nil, errTooDeep
			}
			op, ok := operators[name]
			if !ok {
				return nil, fmt.Errorf("unknown operator %s", quote(name))
			}
			// JsonLogic: a non-array argument is a single argument.
			list, isList := argRaw.([]any)
			if !isList {
				list = []any{argRaw}
			}
			args, _, height, size, err := c.compileList(list, depth+1)
			if err != nil {
				return nil, err
			}
			n := &node{op: op, args: args, name: name, height: height + 1, size: size + 1}
			if err := c.specialize(n); err != nil {
				return nil, fmt.Errorf("%s: %w", quote(name), err)
			}
			return n, nil
		}
	}
	return literal(raw), nil // string, number, bool, null
}

func (c *ruleCompiler) compileList(list []any, depth int) (args []*node, allLiteral bool, height, size int, err error) {
	args = make([]*node, len(list))
	allLiteral = true
	for i, r := range list {
		n, err := c.compile(r, depth)
		if err != nil {
			return nil, false, 0, 0, err
		}
		args[i] = n
		if n.op != opLiteral {
			allLiteral = false
		}
		height = max(height, n.height)
		// Shared $ref nodes are counted at each use, which is what evaluation
		// costs: a few evaluators referencing each other twice over would
		// otherwise make a small document take exponential time.
		size += n.size
		if size > MaxRuleNodes {
			return nil, false, 0, 0, errTooBig
		}
	}
	return args, allLiteral, height, size, nil
}

// compileRef resolves {"$ref": name} to the named evaluator's compiled rule.
func (c *ruleCompiler) compileRef(nameRaw any, depth int) (*node, error) {
	name, ok := nameRaw.(string)
	if !ok {
		return nil, errors.New(`"$ref" must name an evaluator with a string`)
	}
	n, err := c.evaluator(name)
	if err != nil {
		var cycle *refCycleError
		switch {
		case errors.As(err, &cycle):
			return nil, err
		case errors.Is(err, errNotDefined):
			return nil, fmt.Errorf("$ref %s is not defined", quote(name))
		}
		return nil, fmt.Errorf("$ref %s is invalid: %w", quote(name), err)
	}
	if depth+n.height > MaxRuleDepth {
		return nil, errTooDeep
	}
	return n, nil
}

var errNotDefined = errors.New("not defined")

// refCycleError reports evaluators that reference each other in a loop.
type refCycleError struct{ chain []string }

func (e *refCycleError) Error() string {
	quoted := make([]string, len(e.chain))
	for i, s := range e.chain {
		quoted[i] = quote(s)
	}
	return "$ref cycle: " + strings.Join(quoted, " → ")
}

// evaluator compiles (once) the shared rule called name in $evaluators. Its
// errors describe the evaluator's own problem; compileRef adds the context.
func (c *ruleCompiler) evaluator(name string) (*node, error) {
	if n, ok := c.compiled[name]; ok {
		return n, nil
	}
	if err, ok := c.failed[name]; ok {
		return nil, err
	}
	for i, s := range c.stack {
		if s == name {
			return nil, &refCycleError{chain: append(append([]string{}, c.stack[i:]...), name)}
		}
	}
	raw, ok := c.evaluators[name]
	if !ok {
		return nil, errNotDefined
	}
	if len(c.stack) >= MaxRuleDepth {
		return nil, fmt.Errorf("$ref chain deeper than %d evaluators", MaxRuleDepth)
	}
	if obj, ok := raw.(map[string]any); !ok || len(obj) != 1 {
		err := errors.New("an evaluator must be a JSON object holding exactly one operation")
		c.failed[name] = err
		return nil, err
	}
	c.stack = append(c.stack, name)
	n, err := c.compile(raw, 0)
	c.stack = c.stack[:len(c.stack)-1]
	if err != nil {
		// A cycle is reported where it closes, with its chain; it is not this
		// evaluator's own failure, so it is not cached as one.
		var cycle *refCycleError
		if !errors.As(err, &cycle) {
			c.failed[name] = err
		}
		return nil, err
	}
	c.compiled[name] = n
	return n, nil
}

// specialize precomputes what the literal arguments of n allow, and records
// warnings for operator uses that flagd resolves to null at run time.
func (c *ruleCompiler) specialize(n *node) error {
	switch n.op {
	case opVar:
		if len(n.args) == 0 {
			return nil // whole scope
		}
		p := n.args[0]
		if p.op != opLiteral {
			n.op = opVarDynamic
			return nil
		}
		switch p.val.(type) {
		case nil:
			return nil
		case string, float64:
		default:
			return errors.New("path must be a string or a number")
		}
		s := jsString(p.val)
		if s == "" {
			return nil
		}
		n.path = splitPath(s)
		n.flagd = flagdPropOf(n.path)
	case opIn:
		if len(n.args) == 2 && n.args[1].op == opLiteral {
			if hay, ok := n.args[1].val.([]any); ok && len(hay) > 8 {
				set := make(map[string]struct{}, len(hay))
				for _, h := range hay {
					s, ok := h.(string)
					if !ok {
						return nil // mixed haystack: keep the linear scan
					}
					set[s] = struct{}{}
				}
				n.set = set
			}
		}
	case opSemVer:
		spec := &semverSpec{}
		n.sem = spec
		if len(n.args) != 3 {
			c.warn("sem_ver takes 3 arguments (version, operator, target), got %d: it always yields null", len(n.args))
			return nil
		}
		if a := n.args[1]; a.op == opLiteral {
			spec.op, spec.opConst = parseSemverOp(a.val), true
			if spec.op == semBad {
				c.warn("sem_ver operator %s is not one of =, !=, <, <=, >, >=, ^, ~: it always yields null", jsonText(a.val))
			}
		}
		if a := n.args[2]; a.op == opLiteral {
			spec.target, spec.targetOK = semverOperand(a.val)
			spec.targetSet = true
			if !spec.targetOK {
				c.warn("sem_ver target %s is not a semantic version: it always yields null", jsonText(a.val))
			}
		}
	case opStartsWith, opEndsWith:
		if len(n.args) != 2 {
			c.warn("%s takes 2 arguments, got %d: it always yields null", n.name, len(n.args))
		}
	case opLower, opUpper:
		if len(n.args) != 1 {
			c.warn("%s takes 1 argument, got %d: it always yields null", n.name, len(n.args))
		}
	case opFractional:
		return c.specializeFractional(n)
	}
	return nil
}

// splitPath splits a dotted var path, skipping empty segments as flagd's
// JsonLogic library does ("a..b" is "a.b").
func splitPath(s string) []pathSeg {
	var segs []pathSeg
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			continue
		}
		idx := -1
		if i, err := strconv.Atoi(part); err == nil && i >= 0 && strconv.Itoa(i) == part {
			idx = i
		}
		segs = append(segs, pathSeg{key: part, idx: idx})
	}
	return segs
}

func flagdPropOf(path []pathSeg) flagdProp {
	if len(path) == 0 || path[0].key != "$flagd" {
		return flagdNone
	}
	switch {
	case len(path) == 1:
		return flagdObject
	case len(path) == 2 && path[1].key == "flagKey":
		return flagdFlagKey
	case len(path) == 2 && path[1].key == "timestamp":
		return flagdTimestamp
	}
	return flagdUnknown
}

// fracSpec is a compiled fractional operation.
//
// flagd's rules: the first argument is the bucketing key if it evaluates to a
// string; if it evaluates to null it is dropped and the key is flagKey +
// targetingKey; otherwise it is the first bucket. Each bucket is
// [variant, weight?] with an integer weight (default 1, negative counts as 0);
// the variant may be a string, bool, number or null and may be computed.
type fracSpec struct {
	keyNode   *node // evaluated first; nil when the key is literal or the default
	keyHash   uint32
	keyConst  bool // keyHash is the hash of a literal key
	buckets   []fracBucket
	constant  bool     // every bucket variant and weight is a literal: use cum/total
	cum       []uint64 // cumulative weights
	total     uint64
	alwaysNil bool // literal arguments that can never form a valid split
}

// fracBucket is one bucket: either its two parts, or an expression that must
// produce the [variant, weight] array at run time.
type fracBucket struct {
	variant *node
	weight  *node // nil: weight 1
	whole   *node // non-nil: computed bucket
}

func (c *ruleCompiler) specializeFractional(n *node) error {
	spec := &fracSpec{}
	n.frac = spec
	args := n.args
	if len(args) == 0 {
		spec.alwaysNil = true
		c.warn("fractional has no buckets: it always yields null")
		return nil
	}
	first := args[0]
	switch {
	case first.op == opLiteral:
		switch v := first.val.(type) {
		case string:
			spec.keyConst = true
			spec.keyHash = murmur3.StringSum32(v)
			args = args[1:]
		case nil:
			args = args[1:]
		case []any:
			// a literal bucket: default key
		default:
			spec.alwaysNil = true
			c.warn("fractional's first argument %s is neither a bucketing key nor a bucket: it always yields null", jsonText(v))
			return nil
		}
	case first.op == opArray:
		// a computed bucket: default key
	default:
		spec.keyNode = first // decided at run time
		args = args[1:]
	}
	if len(args) == 0 && spec.keyNode == nil {
		spec.alwaysNil = true
		c.warn("fractional has no buckets: it always yields null")
		return nil
	}
	spec.constant = true
	for _, a := range args {
		var b fracBucket
		switch {
		case a.op == opLiteral:
			arr, ok := a.val.([]any)
			if !ok || len(arr) == 0 {
				spec.alwaysNil = true
				c.warn("fractional bucket %s is not a [variant, weight] array: it always yields null", jsonText(a.val))
				return nil
			}
			b.variant = literal(arr[0])
			if len(arr) > 1 {
				b.weight = literal(arr[1])
			}
		case a.op == opArray:
			if len(a.args) == 0 {
				spec.alwaysNil = true
				c.warn("fractional bucket [] is empty: it always yields null")
				return nil
			}
			b.variant = a.args[0]
			if len(a.args) > 1 {
				b.weight = a.args[1]
			}
		default:
			b.whole = a
		}
		if b.whole != nil || b.variant.op != opLiteral || (b.weight != nil && b.weight.op != opLiteral) {
			spec.constant = false
		}
		if b.variant != nil && b.variant.op == opLiteral {
			if _, ok := fracVariant(b.variant.val); !ok {
				spec.alwaysNil = true
				c.warn("fractional bucket variant %s is not a string, bool, number or null: it always yields null", jsonText(b.variant.val))
				return nil
			}
		}
		if b.weight != nil && b.weight.op == opLiteral {
			if _, ok := fracWeight(b.weight.val); !ok {
				spec.alwaysNil = true
				c.warn("fractional weight %s is not a whole number between 0 and %d: it always yields null", jsonText(b.weight.val), math.MaxInt32)
				return nil
			}
		}
		spec.buckets = append(spec.buckets, b)
	}
	if spec.constant {
		spec.cum = make([]uint64, len(spec.buckets))
		for i, b := range spec.buckets {
			w := uint64(1)
			if b.weight != nil {
				w, _ = fracWeight(b.weight.val)
			}
			spec.total += w
			spec.cum[i] = spec.total
		}
		// Checked again at run time, where a computed first argument may
		// still contribute a bucket; only warn here.
		switch {
		case spec.total == 0:
			c.warn("fractional weights are all zero: it yields null")
		case spec.total > math.MaxInt32:
			c.warn("fractional weights add up to more than %d: it yields null", math.MaxInt32)
		}
	}
	return nil
}

// fracVariant checks a bucket's variant: string, bool, number or null.
func fracVariant(v any) (any, bool) {
	switch v.(type) {
	case nil, string, bool, float64:
		return v, true
	}
	if f, ok := numberValue(v); ok {
		return f, true
	}
	return nil, false
}

// fracWeight checks a bucket's weight: null counts as 1 and a negative
// number as 0 (as flagd does); other numbers must be whole and at most
// MaxInt32.
func fracWeight(v any) (uint64, bool) {
	if v == nil {
		return 1, true
	}
	f, ok := numberValue(v)
	if !ok || math.IsNaN(f) || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, false
	}
	if f < 0 {
		return 0, true
	}
	return uint64(f), true
}

// resultLiterals collects the literal values a rule can return as its
// result (through if/?: branches and fractional buckets), so Compile can
// check that each names a variant of the flag.
func resultLiterals(n *node, out []any) []any {
	switch n.op {
	case opLiteral:
		if n.val != nil {
			out = append(out, n.val)
		}
	case opIf:
		for i := 1; i < len(n.args); i += 2 {
			out = resultLiterals(n.args[i], out)
		}
		if len(n.args)%2 == 1 {
			out = resultLiterals(n.args[len(n.args)-1], out)
		}
	case opFractional:
		if n.frac != nil && !n.frac.alwaysNil {
			for _, b := range n.frac.buckets {
				if b.variant != nil && b.variant.op == opLiteral && b.variant.val != nil {
					out = append(out, b.variant.val)
				}
			}
		}
	}
	return out
}

// variantName is the variant a targeting result names, as flagd derives it
// from the result's JSON text: strings as themselves, booleans as "true" /
// "false", numbers in JSON form. Arrays and objects name no variant.
func variantName(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	if f, ok := numberValue(v); ok {
		return string(appendJSNumber(nil, f)), true
	}
	return "", false
}

// jsonText renders a literal for messages.
func jsonText(v any) string { return string(marshalCanonical(v)) }

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

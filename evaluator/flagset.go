package evaluator

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Options adjusts how CompileWithOptions treats a document.
type Options struct {
	// TolerateTargetingErrors keeps flags whose targeting rule cannot be
	// compiled (unknown operator, undefined or cyclic $ref, too deep, ...)
	// instead of refusing the whole document. Such a flag evaluates to
	// Reason ERROR with ErrorCode PARSE_ERROR, and the problem is reported by
	// FlagSet.Warnings. This is how flagd behaves (it loads the document and
	// fails those evaluations), and what the flagd evaluator conformance
	// suite expects for a $ref to an evaluator that does not exist.
	// Structural problems (bad JSON, state, variants, defaultVariant,
	// metadata) are refused in either mode.
	TolerateTargetingErrors bool
	// Now is the clock read for $flagd.timestamp; nil means time.Now.
	Now func() time.Time
}

// FlagSet is a compiled flag document. It is immutable after Compile and
// safe for concurrent use by any number of goroutines.
type FlagSet struct {
	flags    map[string]*flag
	keys     []string
	doc      []byte
	warnings []*DefinitionError
	now      func() time.Time
}

// flag is one compiled flag.
type flag struct {
	key            string
	keyAny         any // key boxed once, for {"var": "$flagd.flagKey"}
	disabled       bool
	variants       map[string]any
	vtype          Type
	defaultVariant string
	hasDefault     bool
	defaultValue   any
	// keyJSON, variantJSON and metadataJSON are the key, the variants'
	// names and values, and the metadata as encoding/json encodes them
	// (see Result.ValueJSON and Result.FlagJSON).
	keyJSON      []byte
	variantJSON  map[string]variantJSON
	defaultJSON  variantJSON
	metadataJSON []byte
	rule         *node  // nil: no targeting
	ruleErr      string // tolerated targeting problem: evaluations fail with PARSE_ERROR
	metadata     map[string]any
	raw          json.RawMessage
}

// Compile parses, validates and compiles a flagd flag-definition document
// (schema v0). It returns either a complete FlagSet or an error, never a
// partly applied set. The error is a DefinitionErrors listing every problem
// found, the first being the first in flag-key order.
func Compile(data []byte) (*FlagSet, error) {
	return CompileWithOptions(data, Options{})
}

// documentFields are the top-level fields of a flagd document.
var documentFields = map[string]bool{"$schema": true, "flags": true, "$evaluators": true, "metadata": true}

// flagFields are the fields of one flag. Unknown fields are refused so that
// a typo such as "defaultVarient" cannot silently change behaviour.
var flagFields = map[string]bool{"state": true, "variants": true, "defaultVariant": true, "targeting": true, "metadata": true}

// CompileWithOptions is Compile with options.
func CompileWithOptions(data []byte, opts Options) (*FlagSet, error) {
	if len(data) > MaxDocumentSize {
		return nil, DefinitionErrors{{Problem: fmt.Sprintf("document is %d bytes, more than the limit of %d", len(data), MaxDocumentSize), Offset: -1}}
	}
	rawDoc, derr := decodeDocument(data)
	if derr != nil {
		return nil, DefinitionErrors{derr}
	}
	var problems, warnings DefinitionErrors
	docProblem := func(format string, args ...any) {
		problems = append(problems, &DefinitionError{Problem: fmt.Sprintf(format, args...), Offset: -1})
	}
	doc, ok := rawDoc.(map[string]any)
	if !ok {
		docProblem(`document must be a JSON object with a "flags" object`)
		return nil, problems
	}
	for _, k := range sortedKeys(doc) {
		if !documentFields[k] {
			docProblem("unknown top-level field %s", quote(k))
		}
	}
	if s, present := doc["$schema"]; present {
		if _, ok := s.(string); !ok {
			docProblem(`"$schema" must be a string`)
		}
	}
	setMeta, problem := checkMetadata(doc["metadata"])
	if problem != "" {
		docProblem("flag-set metadata: %s", problem)
	}
	evaluators := map[string]any{}
	if ev, present := doc["$evaluators"]; present && ev != nil {
		if evaluators, ok = ev.(map[string]any); !ok {
			docProblem(`"$evaluators" must be a JSON object`)
			evaluators = map[string]any{}
		}
	}
	flagsRaw, ok := doc["flags"].(map[string]any)
	if !ok {
		if _, present := doc["flags"]; present {
			docProblem(`"flags" must be a JSON object`)
		} else {
			docProblem(`document has no "flags" object`)
		}
		flagsRaw = nil
	}

	rc := newRuleCompiler(evaluators)
	// Compile every shared evaluator on its own first, so a broken one is
	// reported once under its own name even if no flag uses it yet.
	for _, name := range sortedKeys(evaluators) {
		_, err := rc.evaluator(name)
		for _, w := range rc.warnings {
			warnings = append(warnings, &DefinitionError{Problem: fmt.Sprintf("$evaluators %s: %s", quote(name), w), Offset: -1})
		}
		rc.warnings = nil
		if err != nil {
			p := &DefinitionError{Problem: fmt.Sprintf("$evaluators %s: %v", quote(name), err), Offset: -1}
			if opts.TolerateTargetingErrors {
				warnings = append(warnings, p)
			} else {
				problems = append(problems, p)
			}
		}
	}

	fs := &FlagSet{flags: make(map[string]*flag, len(flagsRaw)), now: opts.Now}
	if fs.now == nil {
		fs.now = time.Now
	}
	for _, key := range sortedKeys(flagsRaw) {
		f, flagProblems, flagWarnings := compileFlag(key, flagsRaw[key], setMeta, rc, opts)
		problems = append(problems, flagProblems...)
		warnings = append(warnings, flagWarnings...)
		if f != nil {
			fs.flags[key] = f
			fs.keys = append(fs.keys, key)
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	fs.doc = marshalCanonical(doc)
	fs.warnings = warnings
	return fs, nil
}

// compileFlag validates and compiles one flag definition.
func compileFlag(key string, raw any, setMeta map[string]any, rc *ruleCompiler, opts Options) (*flag, DefinitionErrors, DefinitionErrors) {
	var problems, warnings DefinitionErrors
	bad := func(format string, args ...any) {
		problems = append(problems, &DefinitionError{Flag: key, Problem: fmt.Sprintf(format, args...), Offset: -1})
	}
	if key == "" {
		bad("a flag key must not be empty")
	}
	def, ok := raw.(map[string]any)
	if !ok {
		bad("definition must be a JSON object")
		return nil, problems, nil
	}
	for _, field := range sortedKeys(def) {
		if !flagFields[field] {
			bad("unknown field %s (a flag has state, variants, defaultVariant, targeting and metadata)", quote(field))
		}
	}
	f := &flag{key: key, keyAny: key}

	switch state := def["state"].(type) {
	case string:
		switch state {
		case "ENABLED":
		case "DISABLED":
			f.disabled = true
		default:
			bad(`state must be "ENABLED" or "DISABLED", not %s`, quote(state))
		}
	case nil:
		bad(`state is missing (it must be "ENABLED" or "DISABLED")`)
	default:
		bad(`state must be the string "ENABLED" or "DISABLED", not %s`, jsonText(state))
	}

	variants, ok := def["variants"].(map[string]any)
	switch {
	case !ok && def["variants"] == nil:
		bad("variants are missing (a flag needs at least one)")
	case !ok:
		bad("variants must be a JSON object mapping variant names to values")
	case len(variants) == 0:
		bad("variants are empty (a flag needs at least one)")
	default:
		names := sortedKeys(variants)
		var firstName string
		for _, name := range names {
			t := typeOf(variants[name])
			if t == "" {
				bad("variant %s is null (variant values are booleans, strings, numbers or objects)", quote(name))
				continue
			}
			if f.vtype == "" {
				f.vtype, firstName = t, name
			} else if t != f.vtype {
				bad("variants mix types: %s is %s but %s is %s (all variants of a flag must have one type)", quote(firstName), article(f.vtype), quote(name), article(t))
				break
			}
		}
		f.variants = variants
	}

	switch dv := def["defaultVariant"].(type) {
	case nil:
		// No default variant: evaluations that would use it return no value
		// and the caller's fallback applies.
	case string:
		if _, ok := variants[dv]; !ok && variants != nil {
			bad("defaultVariant %s is not one of its variants (%s)", quote(dv), quotedList(sortedKeys(variants)))
		}
		f.defaultVariant, f.hasDefault, f.defaultValue = dv, true, variants[dv]
	default:
		bad("defaultVariant must be a variant name (a string) or null, not %s", jsonText(dv))
	}

	meta, problem := checkMetadata(def["metadata"])
	if problem != "" {
		bad("metadata: %s", problem)
	}
	f.metadata = mergeMetadata(setMeta, meta)
	f.encode()

	if t, present := def["targeting"]; present && t != nil {
		if obj, isObj := t.(map[string]any); !isObj || len(obj) > 0 {
			rule, err := rc.compileRule(t)
			for _, w := range rc.warnings {
				warnings = append(warnings, &DefinitionError{Flag: key, Problem: "targeting: " + w, Offset: -1})
			}
			rc.warnings = nil
			if err == nil && variants != nil {
				if rerr := checkResults(rule, variants); rerr != nil {
					if !opts.TolerateTargetingErrors {
						bad("targeting: %v", rerr)
					}
					// flagd keeps such a rule and fails only the evaluations
					// that reach the literal (GENERAL); so does tolerant mode.
					warnings = append(warnings, &DefinitionError{Flag: key, Problem: "targeting: " + rerr.Error(), Offset: -1})
				}
			}
			switch {
			case err == nil:
				f.rule = rule
			case opts.TolerateTargetingErrors:
				f.ruleErr = "targeting: " + err.Error()
				warnings = append(warnings, &DefinitionError{Flag: key, Problem: f.ruleErr, Offset: -1})
			default:
				bad("targeting: %v", err)
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems, warnings
	}
	f.raw = marshalCanonical(def)
	return f, nil, warnings
}

// checkResults refuses a rule that can return a literal naming no variant of
// the flag: flagd accepts such a rule and fails the evaluations that reach
// the literal, but it is always a mistake (typically a typo).
func checkResults(rule *node, variants map[string]any) error {
	for _, lit := range resultLiterals(rule, nil) {
		name, ok := variantName(lit)
		if !ok {
			return fmt.Errorf("can return %s, which cannot name a variant", jsonText(lit))
		}
		if _, ok := variants[name]; !ok {
			return fmt.Errorf("can return variant %s, which is not one of its variants (%s)", quote(name), quotedList(sortedKeys(variants)))
		}
	}
	return nil
}

// checkMetadata validates a metadata object: string keys to boolean, string
// or number values, as flagd's schema requires.
func checkMetadata(raw any) (map[string]any, string) {
	if raw == nil {
		return nil, ""
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, "must be a JSON object"
	}
	for _, k := range sortedKeys(m) {
		switch m[k].(type) {
		case bool, string, float64:
		default:
			return nil, fmt.Sprintf("value of %s must be a boolean, string or number, not %s", quote(k), jsonText(m[k]))
		}
	}
	return m, ""
}

// mergeMetadata overlays the flag's metadata on the flag set's; the result
// is computed once here and shared read-only by every evaluation.
func mergeMetadata(set, own map[string]any) map[string]any {
	if len(set) == 0 && len(own) == 0 {
		return nil
	}
	out := make(map[string]any, len(set)+len(own))
	maps.Copy(out, set)
	maps.Copy(out, own)
	return out
}

func article(t Type) string {
	if t == TypeObject {
		return "an object"
	}
	return "a " + string(t)
}

func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

// Evaluate resolves flagKey for the evaluation context ctx (a JSON-decoded
// object: numbers float64, nested maps and slices; it is only read, never
// modified, and may be nil). The targeting key, if any, is ctx["targetingKey"].
//
// Evaluate never fails in the Go sense: problems are reported in the Result
// (Reason ERROR and an ErrorCode).
func (fs *FlagSet) Evaluate(flagKey string, ctx map[string]any) Result {
	f, ok := fs.flags[flagKey]
	if !ok {
		return NotFound(flagKey)
	}
	r := Result{Flag: flagKey, Metadata: f.metadata, MetadataJSON: f.metadataJSON, FlagJSON: f.keyJSON}
	switch {
	case f.disabled:
		r.Reason = ReasonDisabled
		return r
	case f.ruleErr != "":
		r.Reason, r.ErrorCode, r.ErrorMessage = ReasonError, ErrParse, f.ruleErr
		return r
	case f.rule == nil:
		return f.useDefault(r, ReasonStatic)
	}
	e := env{data: ctx, ctx: ctx, flagKey: flagKey, keyAny: f.keyAny, now: fs.now, root: true}
	v, split := e.evalTop(f.rule)
	if e.aborted {
		r.Reason, r.ErrorCode = ReasonError, ErrGeneral
		r.ErrorMessage = "targeting of flag " + quote(flagKey) + " exceeded the evaluation budget (MaxEvalSteps or MaxValueLen)"
		return r
	}

	var val any
	var name string
	switch x := v.(type) {
	case nil:
		return f.useDefault(r, ReasonDefault)
	case string:
		name = x
		val, ok = f.variants[x]
	case bool:
		name = "false"
		if x {
			name = "true"
		}
		val, ok = f.variants[name]
	default:
		num, isNum := numberValue(v)
		if !isNum {
			r.Reason, r.ErrorCode = ReasonError, ErrGeneral
			r.ErrorMessage = "targeting of flag " + quote(flagKey) + " returned " + string(typeOf(v)) + " " + jsonText(v) + ", which cannot name a variant"
			return r
		}
		var buf [32]byte
		b := appendJSNumber(buf[:0], num)
		val, ok = f.variants[string(b)]
		name = string(b)
	}
	if !ok {
		r.Reason, r.ErrorCode = ReasonError, ErrGeneral
		r.ErrorMessage = "targeting of flag " + quote(flagKey) + " returned variant " + quote(name) + ", which the flag does not define"
		return r
	}
	enc := f.variantJSON[name]
	r.Value, r.ValueJSON, r.Variant, r.VariantJSON, r.Reason = val, enc.value, name, enc.name, ReasonTargetingMatch
	if split {
		r.Reason = ReasonSplit
	}
	return r
}

// useDefault resolves to the default variant, or, when the flag has none,
// to no value with reason DEFAULT so the caller's fallback applies (as the
// flagd conformance suite expects for a null or absent defaultVariant).
func (f *flag) useDefault(r Result, reason Reason) Result {
	if !f.hasDefault {
		r.Reason = ReasonDefault
		return r
	}
	r.Value, r.ValueJSON, r.Variant, r.VariantJSON, r.Reason = f.defaultValue, f.defaultJSON.value, f.defaultVariant, f.defaultJSON.name, reason
	return r
}

// variantJSON is one variant's name and value as encoding/json encodes
// them, kept together so that Evaluate finds both with one map lookup.
type variantJSON struct {
	name, value []byte
}

// encode computes the flag's JSON encodings once, at compile time.
// Strings cannot fail to encode; a value that did would be left nil, and
// the API then encodes the answer itself.
func (f *flag) encode() {
	f.keyJSON, _ = json.Marshal(f.key)
	f.variantJSON = make(map[string]variantJSON, len(f.variants))
	for name, v := range f.variants {
		var enc variantJSON
		enc.name, _ = json.Marshal(name)
		if b, err := json.Marshal(v); err == nil {
			enc.value = b
		}
		f.variantJSON[name] = enc
	}
	if f.hasDefault {
		f.defaultJSON = f.variantJSON[f.defaultVariant]
	}
	if len(f.metadata) > 0 {
		if b, err := json.Marshal(f.metadata); err == nil {
			f.metadataJSON = b
		}
	}
}

// NotFound is the result of evaluating a flag the set does not have.
func NotFound(flagKey string) Result {
	return Result{Flag: flagKey, Reason: ReasonError, ErrorCode: ErrFlagNotFound,
		ErrorMessage: "flag " + quote(flagKey) + " not found"}
}

// EvaluateAll evaluates every flag (disabled ones included, with Reason
// DISABLED, so callers decide whether to list them) in key order, appending
// the results to dst and returning the extended slice. Passing a reused dst
// makes a bulk evaluation allocation-free for static flags.
func (fs *FlagSet) EvaluateAll(ctx map[string]any, dst []Result) []Result {
	for _, k := range fs.keys {
		dst = append(dst, fs.Evaluate(k, ctx))
	}
	return dst
}

// Keys returns the flag keys in sorted order (a fresh slice).
func (fs *FlagSet) Keys() []string {
	return append([]string(nil), fs.keys...)
}

// Len returns the number of flags.
func (fs *FlagSet) Len() int { return len(fs.keys) }

// Has reports whether the set defines flagKey.
func (fs *FlagSet) Has(flagKey string) bool {
	_, ok := fs.flags[flagKey]
	return ok
}

// ReadsContext reports whether evaluating flagKey reads the evaluation
// context: only a flag with targeting does. For any other (no targeting,
// disabled, missing, a rule that failed to compile) the context can be
// left undecoded and Evaluate given nil, with the same result.
func (fs *FlagSet) ReadsContext(flagKey string) bool {
	f, ok := fs.flags[flagKey]
	return ok && !f.disabled && f.ruleErr == "" && f.rule != nil
}

// Metadata returns the flag's metadata, the flag set's overlaid by its
// own (shared with the set: read it, never change it), and false if there
// is no such flag.
func (fs *FlagSet) Metadata(flagKey string) (map[string]any, bool) {
	f, ok := fs.flags[flagKey]
	if !ok {
		return nil, false
	}
	return f.metadata, true
}

// VariantType returns the type shared by the flag's variants (TypeBool,
// TypeString, TypeNumber or TypeObject), and false if there is no such flag.
func (fs *FlagSet) VariantType(flagKey string) (Type, bool) {
	f, ok := fs.flags[flagKey]
	if !ok {
		return "", false
	}
	return f.vtype, true
}

// Variants returns a copy of the flag's variants (name → value; object
// values are shared and must not be modified), and false if there is no such
// flag.
func (fs *FlagSet) Variants(flagKey string) (map[string]any, bool) {
	f, ok := fs.flags[flagKey]
	if !ok {
		return nil, false
	}
	return maps.Clone(f.variants), true
}

// Flag returns the flag's definition as stored, in canonical JSON (compact,
// keys sorted, $refs as written), for export; false if there is no such
// flag. The returned slice is the caller's.
func (fs *FlagSet) Flag(flagKey string) (json.RawMessage, bool) {
	f, ok := fs.flags[flagKey]
	if !ok {
		return nil, false
	}
	return append(json.RawMessage(nil), f.raw...), true
}

// Document returns the whole set as canonical flagd JSON (compact, keys
// sorted, $evaluators and metadata included). Compile(fs.Document())
// yields an equivalent set. The returned slice is the caller's.
func (fs *FlagSet) Document() []byte {
	return append([]byte(nil), fs.doc...)
}

// Warnings returns the non-fatal findings of Compile, by flag key:
// operator uses that always yield null in flagd (a sem_ver operator that
// does not exist, fractional weights that are all zero, ...) and, with
// Options.TolerateTargetingErrors, the targeting problems that were
// tolerated. The slice is the caller's.
func (fs *FlagSet) Warnings() []*DefinitionError {
	return append([]*DefinitionError(nil), fs.warnings...)
}

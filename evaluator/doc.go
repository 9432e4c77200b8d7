// Package evaluator is FlagBridge's flag evaluation engine: a flagd-compatible
// evaluator that compiles a flag document once and then evaluates flags
// without parsing JSON and, for typical rules, without allocating.
//
// # Document format
//
// Documents use flagd's flag-definition format (schema v0):
//
//	{
//	  "$schema": "https://flagd.dev/schema/v0/flags.json",
//	  "metadata": {"team": "checkout"},
//	  "$evaluators": {
//	    "is_staff": {"ends_with": [{"var": "email"}, "@example.com"]}
//	  },
//	  "flags": {
//	    "new-checkout": {
//	      "state": "ENABLED",
//	      "variants": {"on": true, "off": false},
//	      "defaultVariant": "off",
//	      "targeting": {"if": [{"$ref": "is_staff"}, "on"]},
//	      "metadata": {"owner": "payments"}
//	    }
//	  }
//	}
//
// A flag has a state ("ENABLED" or "DISABLED"), variants (name → value; all
// values of one flag share one type: boolean, string, number, or object,
// where arrays count as objects), an optional defaultVariant (a variant
// name; null or absent means "no default": the caller's fallback applies), an
// optional targeting rule (JsonLogic; absent or {} means none) and optional
// metadata (name → boolean, string or number). Document-level metadata is
// merged under each flag's own. $evaluators holds shared rules that any
// targeting rule (or other evaluator) can include with {"$ref": "name"}.
//
// # Compilation
//
// Compile validates the whole document and compiles every targeting rule
// into a tree of typed nodes; it returns a complete FlagSet or an error,
// never a partly applied set. It refuses, with a DefinitionError naming the
// flag and the problem: invalid JSON (with its byte offset) and duplicate
// object keys; unknown fields (a typo would otherwise silently change
// behaviour); bad state; missing, empty, null or mixed-type variants; a
// defaultVariant that is not a variant; non-scalar metadata; unknown
// operators; $refs that are undefined, cyclic or not alone in their object;
// rules that can return a literal naming no variant of the flag; and input
// over the size bounds (MaxDocumentSize, MaxJSONDepth, MaxRuleDepth), so
// hostile input cannot exhaust memory or the stack.
//
// flagd itself loads documents with broken targeting and fails the affected
// evaluations instead. Options.TolerateTargetingErrors gives that behaviour
// (those flags evaluate to PARSE_ERROR); the flagd conformance suite needs it.
// Operator uses that flagd resolves to null at run time (a sem_ver operator
// that does not exist, all-zero fractional weights, wrong argument counts for
// the string operators) are accepted, as in flagd, and listed by
// FlagSet.Warnings.
//
// # Evaluation
//
// FlagSet.Evaluate resolves a flag for a context (a JSON-decoded object; its
// "targetingKey" entry is the targeting key):
//
//   - unknown key: Reason ERROR, ErrorCode FLAG_NOT_FOUND;
//   - DISABLED flag: Reason DISABLED and no value (the caller's fallback);
//   - no targeting: the default variant, Reason STATIC;
//   - targeting returning null (no rule matched): the default variant,
//     Reason DEFAULT;
//   - targeting returning a string: that variant, Reason TARGETING_MATCH, or
//     SPLIT when the value came straight out of a fractional split; a
//     boolean names the variant "true" or "false" and a number its JSON
//     form, as in flagd;
//   - a returned name the flag does not define: Reason ERROR, ErrorCode
//     GENERAL (as flagd's providers report it);
//   - no default variant where one is needed: no value, Reason DEFAULT.
//
// Result.As and Result.Typed convert values the way OpenFeature SDKs do,
// including TYPE_MISMATCH and the integer/float distinction.
//
// # JsonLogic
//
// The standard operators behave as in JsonLogic's reference implementation
// (json-logic-js), with JavaScript's coercions restricted to JSON values:
// var (dotted paths, array indexes, default value), missing, missing_some,
// if and ?:, ==, ===, !=, !==, !, !!, or, and (returning the deciding
// operand), <, <=, >, >= (with the three-argument "between" form), max, min,
// +, -, *, /, %, cat, substr, in (substring or array membership), merge,
// map, filter, reduce, all, some, none and log (which returns its argument
// and logs nothing). Where flagd's JsonLogic library is known to differ in a
// way flagd users can observe, flagd's behaviour is used: a var whose value
// is null yields its default, empty path segments are skipped, an empty
// object is falsy, and > and >= accept the between form too.
//
// flagd's operators are supported: fractional (current bucketing: MurmurHash3
// x86_32 of the bucketing key — the first argument if it is a string, else
// $flagd.flagKey + targetingKey — scaled onto the integer weights with
// (hash × total) >> 32; variants and weights may be computed; invalid input
// yields null), sem_ver (=, !=, <, <=, >, >=, ^ same major, ~ same minor;
// optional v/V prefix, partial versions, numbers accepted; build metadata
// ignored), starts_with, ends_with, and the ASCII-only lower and upper. The
// context gains $flagd.flagKey and $flagd.timestamp (Unix seconds). Hashing
// and version precedence come from the libraries flagd itself uses
// (github.com/twmb/murmur3, golang.org/x/mod/semver), so buckets and
// comparisons agree with flagd's bit for bit.
//
// # Cost
//
// Evaluation does no JSON parsing: rules are trees of typed nodes, literal
// arguments are prepared at compile time (sem_ver targets, fractional
// weights, string sets for large "in" lists, the hash of a literal bucketing
// key), and the evaluation state lives on the stack, so static flags and
// typical rules evaluate without allocating. Work per evaluation is bounded
// (MaxEvalSteps, MaxValueLen): a rule iterating over large arrays or
// building ever larger strings fails with GENERAL instead of running away.
//
// # Concurrency and sharing
//
// A FlagSet is immutable: any number of goroutines may evaluate it at once.
// Result.Value and Result.Metadata are shared with the set and must not be
// modified.
package evaluator

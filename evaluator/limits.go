package evaluator

// Bounds applied by Compile and Evaluate, so that hostile input can neither
// blow the stack nor make compilation or evaluation run away in time or
// memory.
const (
	// MaxDocumentSize is the largest flag document Compile accepts, in bytes.
	MaxDocumentSize = 4 << 20
	// MaxJSONDepth bounds the nesting of arrays and objects anywhere in the
	// document; it leaves room for MaxRuleDepth operators below the three
	// levels (document, flags, flag) above a targeting rule.
	MaxJSONDepth = 256
	// MaxRuleDepth bounds the nesting of operators (and array literals) in a
	// compiled targeting rule, counted after $ref expansion. Evaluation
	// recursion is bounded by it.
	MaxRuleDepth = 64
	// MaxRuleNodes bounds the size of a compiled targeting rule, counting a
	// $ref'd evaluator once per reference, so evaluation work per rule node
	// stays proportional to what the document spells out.
	MaxRuleNodes = 1 << 16
	// MaxEvalSteps bounds the work of one evaluation: rule nodes evaluated,
	// counting every element visited by map, filter, reduce, all, some and
	// none (whose arrays may come from the context) plus the size of strings
	// and arrays built by cat and merge. An evaluation over budget fails with
	// ErrorCode GENERAL instead of running away.
	MaxEvalSteps = 1 << 20
	// MaxValueLen bounds the length of a string built by cat and of an array
	// built by merge during an evaluation.
	MaxValueLen = 1 << 20
)

package evaluator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cucumber/godog"
)

// The flagd evaluator conformance suite (open-feature/flagd-testbed, folder
// evaluator/) is third-party data and is not part of this repository: the
// test reads it from the folder named by FLAGD_TESTBED_DIR, which must be the
// flagd-testbed folder, the one holding evaluator/gherkin and
// evaluator/flags/testkit-flags.json.
//
// Scenarios tagged @fractional-v1 are excluded: they pin the legacy
// bucketing flagd no longer uses (abs(hash)/MaxInt32*100); this package
// implements the current one, which the @fractional-v2 scenarios check.
const testbedEnv = "FLAGD_TESTBED_DIR"

// testbedDir returns the testbed folder, skipping the test when it is not
// configured.
func testbedDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(testbedEnv)
	if dir == "" {
		t.Skip(testbedEnv + " is not set: point it at the flagd-testbed folder (the one containing evaluator/) to run the flagd conformance suite")
	}
	if _, err := os.Stat(filepath.Join(dir, "evaluator", "flags", "testkit-flags.json")); err != nil {
		t.Fatalf("%s=%s does not hold evaluator/flags/testkit-flags.json: %v", testbedEnv, dir, err)
	}
	return dir
}

func TestFlagdConformance(t *testing.T) {
	dir := testbedDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "evaluator", "flags", "testkit-flags.json"))
	if err != nil {
		t.Fatal(err)
	}
	// flagd loads the testkit and fails only the evaluations of the flag whose
	// $ref names no evaluator (PARSE_ERROR); strict Compile refuses such a
	// document instead, so the suite runs in the tolerant, flagd-like mode.
	fs, err := CompileWithOptions(data, Options{TolerateTargetingErrors: true})
	if err != nil {
		t.Fatalf("compile testkit flags: %v", err)
	}

	suite := godog.TestSuite{
		Name: "flagd-evaluator",
		ScenarioInitializer: func(sc *godog.ScenarioContext) {
			(&conformanceScenario{flags: fs}).register(sc)
		},
		Options: &godog.Options{
			Format:    "progress",
			NoColors:  true,
			Paths:     []string{filepath.Join(dir, "evaluator", "gherkin")},
			Tags:      "~@fractional-v1",
			Strict:    true, // undefined or pending steps fail the run
			Randomize: 0,
			TestingT:  t,
		},
	}
	if status := suite.Run(); status != 0 {
		t.Fatalf("flagd conformance suite failed (status %d)", status)
	}
}

// TestTestkitStrictCompile pins why the suite compiles the testkit in the
// tolerant mode: in strict mode exactly one problem is found, the $ref to an
// evaluator that does not exist, which one scenario expects to fail at
// evaluation time with PARSE_ERROR.
func TestTestkitStrictCompile(t *testing.T) {
	dir := testbedDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "evaluator", "flags", "testkit-flags.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(data)
	var des DefinitionErrors
	if !errors.As(err, &des) || len(des) != 1 {
		t.Fatalf("strict compile of the testkit: got %v, want exactly one problem", err)
	}
	want := `flag "ref-to-nonexistent-evaluator-flag": targeting: $ref "nonexistent_evaluator" is not defined`
	if des[0].Error() != want {
		t.Fatalf("got %q, want %q", des[0].Error(), want)
	}
}

// conformanceScenario plays the part of an OpenFeature SDK over the engine:
// a typed evaluation with a fallback value, through Result.Typed.
type conformanceScenario struct {
	flags    *FlagSet
	flagType string
	key      string
	fallback any
	ctx      map[string]any
	result   Result
}

func (s *conformanceScenario) register(sc *godog.ScenarioContext) {
	sc.Step(`^an evaluator$`, func() error { return nil })
	sc.Step(`^a (Boolean|String|Integer|Float|Object)-flag with key "([^"]*)" and a fallback value "(.*)"$`, s.flag)
	sc.Step(`^a context containing a targeting key with value "([^"]*)"$`, s.targetingKey)
	sc.Step(`^a context containing a key "([^"]*)", with type "([^"]*)" and with value "(.*)"$`, s.contextKey)
	sc.Step(`^a context containing a nested property with outer key "([^"]*)" and inner key "([^"]*)", with value "(.*)"$`, s.nested)
	sc.Step(`^the flag was evaluated with details$`, s.evaluate)
	sc.Step(`^the resolved details value should be "(.*)"$`, s.valueShouldBe)
	sc.Step(`^the reason should be "([^"]*)"$`, s.reasonShouldBe)
	sc.Step(`^the error-code should be "([^"]*)"$`, s.errorCodeShouldBe)
	sc.Step(`^the variant should be "([^"]*)"$`, s.variantShouldBe)
	sc.Step(`^the resolved metadata should contain$`, s.metadataShouldContain)
	sc.Step(`^the resolved metadata is empty$`, s.metadataIsEmpty)
}

// requestType maps the suite's flag types to the type requested from As.
var requestType = map[string]Type{
	"Boolean": TypeBool, "String": TypeString, "Integer": TypeInteger, "Float": TypeFloat, "Object": TypeObject,
}

func (s *conformanceScenario) flag(flagType, key, fallback string) error {
	v, err := parseTyped(flagType, fallback)
	if err != nil {
		return fmt.Errorf("fallback value: %w", err)
	}
	s.flagType, s.key, s.fallback, s.ctx = flagType, key, v, map[string]any{}
	return nil
}

func (s *conformanceScenario) targetingKey(v string) error {
	s.ctx["targetingKey"] = v
	return nil
}

func (s *conformanceScenario) contextKey(key, typ, value string) error {
	v, err := parseTyped(typ, value)
	if err != nil {
		return err
	}
	s.ctx[key] = v
	return nil
}

func (s *conformanceScenario) nested(outer, inner, value string) error {
	m, ok := s.ctx[outer].(map[string]any)
	if !ok {
		m = map[string]any{}
		s.ctx[outer] = m
	}
	m[inner] = value
	return nil
}

func (s *conformanceScenario) evaluate() error {
	t, ok := requestType[s.flagType]
	if !ok {
		return fmt.Errorf("unknown flag type %q", s.flagType)
	}
	s.result = s.flags.Evaluate(s.key, s.ctx).Typed(t, s.fallback)
	return nil
}

func (s *conformanceScenario) valueShouldBe(expected string) error {
	want, err := parseTyped(s.flagType, expected)
	if err != nil {
		return fmt.Errorf("expected value: %w", err)
	}
	if !reflect.DeepEqual(s.result.Value, want) {
		return fmt.Errorf("value: got %#v, want %#v (result %+v)", s.result.Value, want, s.result)
	}
	return nil
}

func (s *conformanceScenario) reasonShouldBe(want string) error {
	if string(s.result.Reason) != want {
		return fmt.Errorf("reason: got %q, want %q (result %+v)", s.result.Reason, want, s.result)
	}
	return nil
}

func (s *conformanceScenario) errorCodeShouldBe(want string) error {
	if string(s.result.ErrorCode) != want {
		return fmt.Errorf("error code: got %q, want %q (result %+v)", s.result.ErrorCode, want, s.result)
	}
	return nil
}

func (s *conformanceScenario) variantShouldBe(want string) error {
	if s.result.Variant != want {
		return fmt.Errorf("variant: got %q, want %q", s.result.Variant, want)
	}
	return nil
}

func (s *conformanceScenario) metadataShouldContain(table *godog.Table) error {
	if len(table.Rows) < 2 {
		return errors.New("metadata table has no rows")
	}
	col := map[string]int{}
	for i, c := range table.Rows[0].Cells {
		col[c.Value] = i
	}
	for _, name := range []string{"key", "metadata_type", "value"} {
		if _, ok := col[name]; !ok {
			return fmt.Errorf("metadata table lacks column %q", name)
		}
	}
	for _, row := range table.Rows[1:] {
		key := row.Cells[col["key"]].Value
		typ := row.Cells[col["metadata_type"]].Value
		got, ok := s.result.Metadata[key]
		if !ok {
			return fmt.Errorf("metadata %q missing from %v", key, s.result.Metadata)
		}
		want, err := parseTyped(typ, row.Cells[col["value"]].Value)
		if err != nil {
			return err
		}
		// Metadata numbers are JSON numbers (float64) whatever their type.
		if i, isInt := want.(int64); isInt {
			want = float64(i)
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("metadata %q: got %#v, want %#v", key, got, want)
		}
	}
	return nil
}

func (s *conformanceScenario) metadataIsEmpty() error {
	if len(s.result.Metadata) != 0 {
		return fmt.Errorf("metadata: got %v, want none", s.result.Metadata)
	}
	return nil
}

// parseTyped reads a value written in the suite: Integer as int64 (what an
// SDK's integer evaluation returns), Float as float64, Object as JSON whose
// quotes the tables escape as \".
func parseTyped(typ, s string) (any, error) {
	switch typ {
	case "Boolean":
		return strconv.ParseBool(s)
	case "String":
		return s, nil
	case "Integer":
		return strconv.ParseInt(s, 10, 64)
	case "Float":
		return strconv.ParseFloat(s, 64)
	case "Object":
		var v any
		if err := json.Unmarshal([]byte(strings.ReplaceAll(s, `\"`, `"`)), &v); err != nil {
			return nil, fmt.Errorf("object %q: %w", s, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

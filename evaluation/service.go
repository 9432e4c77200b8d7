package evaluation

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/evaluator"
)

// ReasonOverride is the reason of a value pinned by a testing session, on
// the native API. OFREP's reasons are a closed list, so there it is STATIC
// with metadata saying so (see the api package).
const ReasonOverride evaluator.Reason = "OVERRIDE"

// Service evaluates flags for authenticated callers.
type Service struct {
	admin *admin.Service
	sets  *Registry
}

// New returns a service reading flag sets and sessions through svc and
// keeping compiled sets in sets.
func New(svc *admin.Service, sets *Registry) *Service {
	return &Service{admin: svc, sets: sets}
}

// Registry returns the service's compiled-set registry.
func (s *Service) Registry() *Registry { return s.sets }

// Target resolves the environment a caller evaluates in: a live or test
// key's own; for an admin key, the project and environment the request
// names (FlagBridge-Project, FlagBridge-Environment), within its scope. A
// live or test key naming another one is refused, not silently ignored.
func Target(caller *apikey.Record, project, env string) (admin.FlagSetRef, error) {
	ref := admin.FlagSetRef{OrgID: caller.OrgID, Project: caller.Project, Environment: caller.Environment}
	if project != "" && project != ref.Project {
		if ref.Project != "" {
			return ref, apierror.Forbidden("This key belongs to project %q and cannot evaluate flags of project %q", ref.Project, project)
		}
		ref.Project = project
	}
	if env != "" && env != ref.Environment {
		if ref.Environment != "" {
			return ref, apierror.Forbidden("This key belongs to environment %q and cannot evaluate flags of environment %q", ref.Environment, env)
		}
		ref.Environment = env
	}
	switch {
	case ref.Project == "":
		return ref, apierror.Invalid("an organization-wide key must name the project (FlagBridge-Project header)")
	case ref.Environment == "":
		return ref, apierror.Invalid("an admin key must name the environment (FlagBridge-Environment header)")
	}
	return ref, nil
}

// Evaluation is one request's view: a compiled set and, if the request
// names a testing session, its overrides.
type Evaluation struct {
	Set *Compiled
	// Session is the testing session applied, or nil.
	Session   *admin.TestingSession
	overrides map[string]any
}

// Begin prepares the evaluations of one request.
func (s *Service) Begin(ctx context.Context, caller *apikey.Record, project, env, sessionID string) (*Evaluation, error) {
	ref, err := Target(caller, project, env)
	if err != nil {
		return nil, err
	}
	e := &Evaluation{}
	if sessionID != "" {
		ts, err := s.admin.UseSession(ctx, caller, sessionID, ref.Project, ref.Environment)
		if err != nil {
			return nil, err
		}
		e.Session = ts
		e.overrides = make(map[string]any, len(ts.Overrides))
		for k, raw := range ts.Overrides {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("decoding override %q of session %s: %w", k, ts.ID, err)
			}
			e.overrides[k] = v
		}
	}
	e.Set, err = s.sets.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Outcome is one flag's evaluation.
type Outcome struct {
	evaluator.Result
	// Overridden is set when a testing session pinned the value.
	Overridden bool
}

// Evaluate evaluates one flag. A flag a session overrides takes the pinned
// value, with reason OVERRIDE (disabled or not), as long as the flag exists
// and the value fits it.
func (e *Evaluation) Evaluate(flag string, ctx map[string]any) Outcome {
	res := e.Set.Set.Evaluate(flag, ctx)
	// An override applies while the flag exists and the pinned value still
	// fits its variants (the flag may have changed type since).
	if v, ok := e.overrides[flag]; ok && res.ErrorCode != evaluator.ErrFlagNotFound && e.fits(flag, v) {
		return Outcome{Result: evaluator.Result{
			Flag: flag, Value: v, Reason: ReasonOverride, Metadata: res.Metadata,
		}, Overridden: true}
	}
	return Outcome{Result: res}
}

func (e *Evaluation) fits(flag string, v any) bool {
	t, ok := e.Set.Set.VariantType(flag)
	return ok && t.Accepts(v)
}

// Keys returns every flag of the set, in order.
func (e *Evaluation) Keys() []string { return e.Set.Set.Keys() }

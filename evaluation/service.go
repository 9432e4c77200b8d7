package evaluation

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/evaluator"
)

// ReasonOverride is the reason of a value pinned by a testing session, on
// the native API. OFREP's reasons are a closed list, so there it is STATIC
// with metadata saying so (see the api package).
const ReasonOverride evaluator.Reason = "OVERRIDE"

// Service evaluates flags for authenticated callers.
type Service struct {
	flags *flags.Service
	sets  *Registry
}

// New returns a service reading testing sessions through fl and keeping
// compiled flag sets in sets.
func New(fl *flags.Service, sets *Registry) *Service {
	return &Service{flags: fl, sets: sets}
}

// Registry returns the service's compiled-set registry.
func (s *Service) Registry() *Registry { return s.sets }

// Target resolves the environment a caller evaluates in: its own project
// and environment, unless the request names others (FlagBridge-Project,
// FlagBridge-Environment), which the caller's scope must then cover. A key
// naming one outside its scope is refused, not silently sent to its own.
func Target(p *authz.Principal, project, env string) (flags.Ref, error) {
	place := p.Place(project, env)
	ref := flags.Ref{OrgID: place.Org, Project: place.Project, Environment: place.Environment}
	// Client keys are the least that evaluates; the route table keeps them
	// to OFREP.
	if err := authz.Permits(p, authz.Need{Type: apikey.Client, Permission: apikey.Read}); err != nil {
		return ref, err
	}
	switch {
	case ref.Project == "":
		return ref, apierror.Invalid("an organization-wide key must name the project (FlagBridge-Project header)")
	case ref.Environment == "":
		return ref, apierror.Invalid("a key that spans environments must name the environment (FlagBridge-Environment header)")
	}
	if err := authz.Permits(p, authz.Need{Type: apikey.Client, Permission: apikey.Read,
		Target: ref.Scope(), Action: "evaluate flags of"}); err != nil {
		return ref, err
	}
	return ref, nil
}

// Evaluation is one request's view: a compiled set and, if the request
// names a testing session, its overrides.
type Evaluation struct {
	Set *Compiled
	// Session is the testing session applied, or nil.
	Session   *flags.TestingSession
	overrides map[string]any
	// clientOnly, for a client key, hides every flag not marked
	// client-visible: to that key it does not exist.
	clientOnly bool
}

// Begin prepares the evaluations of one request. It returns a value, which
// the caller keeps with the rest of its request: an Evaluation of its own
// would be one more allocation per request.
func (s *Service) Begin(ctx context.Context, p *authz.Principal, project, env, sessionID string) (Evaluation, error) {
	return s.BeginAtLeast(ctx, p, project, env, sessionID, 0)
}

// BeginAtLeast is Begin from flag-set version minVersion or a newer one
// (0: any): a refetch an event stream asked for is read-your-writes (see
// Registry.AtLeast).
func (s *Service) BeginAtLeast(ctx context.Context, p *authz.Principal, project, env, sessionID string, minVersion int64) (Evaluation, error) {
	ref, err := Target(p, project, env)
	if err != nil {
		return Evaluation{}, err
	}
	e := Evaluation{clientOnly: p.Type == apikey.Client}
	if sessionID != "" {
		if e.clientOnly {
			return Evaluation{}, errClientSession
		}
		ts, err := s.flags.UseSession(ctx, p, sessionID, ref)
		if err != nil {
			return Evaluation{}, err
		}
		e.Session = ts
		e.overrides = make(map[string]any, len(ts.Overrides))
		for k, raw := range ts.Overrides {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return Evaluation{}, fmt.Errorf("decoding override %q of session %s: %w", k, ts.ID, err)
			}
			e.overrides[k] = v
		}
	}
	e.Set, err = s.sets.AtLeast(ctx, ref, minVersion)
	if err != nil {
		return Evaluation{}, err
	}
	return e, nil
}

// errClientSession refuses a testing session to a client key: sessions are
// for CI, whose test keys are secret.
var errClientSession = apierror.Forbidden("Client keys cannot use testing sessions; use a test key")

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
	if e.clientOnly && !e.Set.ClientVisible(flag) {
		// Exactly what a flag that does not exist gets.
		return Outcome{Result: evaluator.NotFound(flag)}
	}
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

// Keys returns every flag of the set the caller may evaluate, in order.
func (e *Evaluation) Keys() []string {
	if e.clientOnly {
		return append([]string(nil), e.Set.clientKeys...)
	}
	return e.Set.Set.Keys()
}

// ReadsContext reports whether evaluating flag reads the context.
func (e *Evaluation) ReadsContext(flag string) bool {
	return (!e.clientOnly || e.Set.ClientVisible(flag)) && e.Set.Set.ReadsContext(flag)
}

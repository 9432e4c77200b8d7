package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// colSessions holds every testing session by id. Ids are random and checked
// against the caller's organization, project and environment on every use.
const colSessions = "testing-sessions"

// Bounds on a testing session's life.
const (
	DefaultSessionTTL = time.Hour
	MinSessionTTL     = time.Minute
	MaxSessionTTL     = 24 * time.Hour
	// MaxOverrides bounds the flags one session may pin.
	MaxOverrides = 1000
)

// TestingSession pins flag values for the evaluations that name it (a CI
// run), in one project and environment, without touching what anyone else
// sees.
type TestingSession struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	Project     string    `json:"project"`
	Environment string    `json:"environment"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Overrides maps flag keys to the JSON value they evaluate to.
	Overrides map[string]json.RawMessage `json:"overrides"`
	// Revision counts override changes, so caches of evaluation results
	// (OFREP ETags) change with them.
	Revision int64 `json:"revision"`
}

// CreateSessionInput is the body of POST /v1/testing/sessions.
type CreateSessionInput struct {
	TTL string `json:"ttl,omitempty"`
	// Project and Environment are for admin keys, which are not bound to
	// one environment; test keys use their own.
	Project     string `json:"project,omitempty"`
	Environment string `json:"environment,omitempty"`
}

// SetOverridesInput is the body of POST /v1/testing/sessions/{id}/overrides.
type SetOverridesInput struct {
	Overrides map[string]json.RawMessage `json:"overrides"`
}

// authorizeSessions checks that caller may manage testing sessions: a test
// or admin key, with WRITE for changes.
func authorizeSessions(caller *apikey.Record, need access) error {
	if caller == nil {
		return apierror.InvalidKey
	}
	if !caller.Type.Includes(apikey.Test) {
		return apierror.WrongKeyType
	}
	if need == writeAccess && !caller.Permissions.Has(apikey.Write) {
		return readOnly(caller)
	}
	if need == readAccess && !caller.Permissions.Has(apikey.Read) {
		return apierror.Forbidden("This key lacks the READ permission")
	}
	return nil
}

// sessionTarget decides the project and environment a new session is for:
// the key's own for test keys, the request's (within the key's scope) for
// admin keys.
func sessionTarget(caller *apikey.Record, in CreateSessionInput) (project, env string, err error) {
	project, env = caller.Project, caller.Environment
	if in.Project != "" {
		if !caller.OrgWide() && in.Project != caller.Project {
			return "", "", apierror.Forbidden("This key belongs to project %q and cannot open sessions in project %q", caller.Project, in.Project)
		}
		project = in.Project
	}
	if in.Environment != "" {
		if caller.Environment != "" && in.Environment != caller.Environment {
			return "", "", apierror.Forbidden("This key belongs to environment %q and cannot open sessions in environment %q", caller.Environment, in.Environment)
		}
		env = in.Environment
	}
	switch {
	case project == "":
		return "", "", apierror.Invalid("project is required with an organization-wide key")
	case env == "":
		return "", "", apierror.Invalid("environment is required with an admin key")
	}
	return project, env, nil
}

// CreateSession opens a testing session.
func (s *Service) CreateSession(ctx context.Context, caller *apikey.Record, in CreateSessionInput) (*TestingSession, error) {
	if err := authorizeSessions(caller, writeAccess); err != nil {
		return nil, err
	}
	ttl := DefaultSessionTTL
	if in.TTL != "" {
		d, err := apikey.ParseDuration(in.TTL)
		if err != nil {
			return nil, apierror.Invalid("ttl: %v", err)
		}
		if d < MinSessionTTL || d > MaxSessionTTL {
			return nil, apierror.Invalid("ttl must be between 1m and 24h")
		}
		ttl = d
	}
	project, env, err := sessionTarget(caller, in)
	if err != nil {
		return nil, err
	}
	var out *TestingSession
	err = s.update(ctx, func(tx store.Writer) error {
		if _, err := flagSetScope(tx, caller, project, env); err != nil {
			return err
		}
		id, err := apikey.NewID("ts")
		if err != nil {
			return err
		}
		now := s.timestamp()
		out = &TestingSession{
			ID: id, OrgID: caller.OrgID, Project: project, Environment: env,
			CreatedBy: caller.ID, CreatedAt: now, ExpiresAt: now.Add(ttl),
			Overrides: map[string]json.RawMessage{},
		}
		return putJSON(tx, colSessions, id, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sessionFor reads a session the caller can see. A session of another
// organization, project or environment, or an expired one, is reported as
// not found: sessions are invisible outside their scope.
func (s *Service) sessionFor(r store.Reader, caller *apikey.Record, id string) (*TestingSession, error) {
	var ts TestingSession
	found, err := getJSON(r, colSessions, id, &ts)
	if err != nil {
		return nil, err
	}
	visible := found && ts.OrgID == caller.OrgID &&
		(caller.OrgWide() || ts.Project == caller.Project) &&
		(caller.Environment == "" || ts.Environment == caller.Environment) &&
		s.now().Before(ts.ExpiresAt)
	if !visible {
		return nil, apierror.New(404, apierror.CodeSessionNotFound, "testing session "+quote(id)+" not found or expired")
	}
	return &ts, nil
}

// SetOverrides pins flag values in a session. Every flag must exist in the
// session's environment and every value must fit the flag's variants; the
// new overrides are merged into the session's.
func (s *Service) SetOverrides(ctx context.Context, caller *apikey.Record, id string, in SetOverridesInput) (*TestingSession, error) {
	if err := authorizeSessions(caller, writeAccess); err != nil {
		return nil, err
	}
	if in.Overrides == nil {
		return nil, apierror.Invalid("overrides is required (an object of flag keys and values)")
	}
	var out *TestingSession
	err := s.update(ctx, func(tx store.Writer) error {
		ts, err := s.sessionFor(tx, caller, id)
		if err != nil {
			return err
		}
		fs, err := readFlagSet(tx, FlagSetRef{ts.OrgID, ts.Project, ts.Environment})
		if err != nil {
			return err
		}
		compiled, err := compileFlags(fs.Document)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(in.Overrides))
		for k := range in.Overrides {
			keys = append(keys, k)
		}
		sort.Strings(keys) // report the first bad flag deterministically
		for _, k := range keys {
			raw := in.Overrides[k]
			t, ok := compiled.VariantType(k)
			if !ok {
				return apierror.Invalid("overrides: flag %q does not exist in environment %q", k, ts.Environment)
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil || v == nil {
				return apierror.Invalid("overrides: flag %q needs a %s value", k, t)
			}
			if !t.Accepts(v) {
				return apierror.Invalid("overrides: flag %q takes %s values, not %s", k, t, jsonKind(raw))
			}
			ts.Overrides[k] = raw
		}
		if len(ts.Overrides) > MaxOverrides {
			return apierror.Invalid("overrides: a session may pin at most %d flags", MaxOverrides)
		}
		ts.Revision++
		out = ts
		return putJSON(tx, colSessions, ts.ID, ts)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteSession ends a session at once.
func (s *Service) DeleteSession(ctx context.Context, caller *apikey.Record, id string) error {
	if err := authorizeSessions(caller, writeAccess); err != nil {
		return err
	}
	return s.update(ctx, func(tx store.Writer) error {
		if _, err := s.sessionFor(tx, caller, id); err != nil {
			return err
		}
		return tx.Delete(colSessions, id)
	})
}

// UseSession returns the session an evaluation names, for a caller
// evaluating in project and env. Live keys may never use one: production
// traffic is never overridden.
func (s *Service) UseSession(ctx context.Context, caller *apikey.Record, id, project, env string) (*TestingSession, error) {
	if caller != nil && !caller.Type.Includes(apikey.Test) {
		return nil, apierror.Forbidden("Live keys cannot use testing sessions")
	}
	if err := authorizeSessions(caller, readAccess); err != nil {
		return nil, err
	}
	var out *TestingSession
	err := s.view(ctx, func(r store.Reader) error {
		ts, err := s.sessionFor(r, caller, id)
		if err != nil {
			return err
		}
		if ts.Project != project || ts.Environment != env {
			return apierror.New(404, apierror.CodeSessionNotFound, "testing session "+quote(id)+" not found or expired")
		}
		out = ts
		return nil
	})
	return out, err
}

// SweepSessions deletes expired sessions and returns how many.
func (s *Service) SweepSessions(ctx context.Context) (int, error) {
	n := 0
	err := s.update(ctx, func(tx store.Writer) error {
		n = 0
		all, err := listJSON[TestingSession](tx, colSessions)
		if err != nil {
			return err
		}
		now := s.now()
		for _, ts := range all {
			if !now.Before(ts.ExpiresAt) {
				if err := tx.Delete(colSessions, ts.ID); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

func deleteProjectSessions(tx store.Writer, org, project string) error {
	all, err := listJSON[TestingSession](tx, colSessions)
	if err != nil {
		return err
	}
	for _, ts := range all {
		if ts.OrgID == org && ts.Project == project {
			if err := tx.Delete(colSessions, ts.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonKind names the JSON type of a raw value, for error messages.
func jsonKind(raw json.RawMessage) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "a number"
}

func quote(s string) string { return strconv.Quote(s) }

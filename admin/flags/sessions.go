package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Bounds on testing sessions.
const (
	DefaultSessionTTL = time.Hour
	MinSessionTTL     = time.Minute
	MaxSessionTTL     = 24 * time.Hour
	// MaxOverrides bounds the flags one session may pin.
	MaxOverrides = 1000
	// MaxSessionsPerOrg bounds the testing sessions an organization may
	// have open at once (expired ones included until the sweep, within a
	// minute), so that no tenant can fill the store; it is far more than
	// the jobs a CI fleet runs at once.
	MaxSessionsPerOrg = 1000
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

// Ref is the flag set the session applies to.
func (ts *TestingSession) Ref() Ref { return Ref{ts.OrgID, ts.Project, ts.Environment} }

// CreateSessionInput is the body of POST /v1/testing/sessions.
type CreateSessionInput struct {
	TTL string `json:"ttl,omitempty"`
	// Project and Environment default to the key's own; a key that spans
	// several names the one the session is for.
	Project     string `json:"project,omitempty"`
	Environment string `json:"environment,omitempty"`
}

// SetOverridesInput is the body of POST /v1/testing/sessions/{id}/overrides.
type SetOverridesInput struct {
	Overrides map[string]json.RawMessage `json:"overrides"`
}

// onSession is the need of changing (WRITE) or using (READ) the testing
// sessions of an environment: a test or admin key covering it.
func onSession(ref Ref, perm apikey.Permission, action string) authz.Need {
	return authz.Need{Type: apikey.Test, Permission: perm, Target: ref.Scope(), Action: action}
}

// CreateSession opens a testing session in the caller's own environment,
// or the one it names within its scope.
func (s *Service) CreateSession(ctx context.Context, p *authz.Principal, in CreateSessionInput) (*TestingSession, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Test, Permission: apikey.Write}); err != nil {
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
	place := p.Place(in.Project, in.Environment)
	ref := Ref{OrgID: place.Org, Project: place.Project, Environment: place.Environment}
	switch {
	case ref.Project == "":
		return nil, apierror.Invalid("project is required with an organization-wide key")
	case ref.Environment == "":
		return nil, apierror.Invalid("environment is required with a key that spans environments")
	}
	if err := authz.Permits(p, onSession(ref, apikey.Write, "open testing sessions in")); err != nil {
		return nil, err
	}
	// Counted outside the transaction: reading the collection in it would
	// make concurrent CI jobs of one organization conflict with each
	// other's sessions. The bound is thus approximate under races, which is
	// all a bound against filling the store needs.
	var open int
	if err := s.env.View(ctx, func(r store.Reader) error {
		items, err := r.List(colSessions(ref.OrgID))
		open = len(items)
		return err
	}); err != nil {
		return nil, err
	}
	if open >= MaxSessionsPerOrg {
		return nil, apierror.Conflict("the organization has %d open testing sessions, the most it may have; end some (DELETE /v1/testing/sessions/{id}) or let them expire", open)
	}
	var out *TestingSession
	err := s.env.Update(ctx, func(tx store.Writer) error {
		if err := tenancy.EnvironmentExists(tx, ref.OrgID, ref.Project, ref.Environment); err != nil {
			return err
		}
		id, err := apikey.NewID("ts")
		if err != nil {
			return err
		}
		now := s.env.Timestamp()
		out = &TestingSession{
			ID: id, OrgID: ref.OrgID, Project: ref.Project, Environment: ref.Environment,
			CreatedBy: p.ID, CreatedAt: now, ExpiresAt: now.Add(ttl),
			Overrides: map[string]json.RawMessage{},
		}
		if err := docs.Put(tx, colSessions(ref.OrgID), id, out); err != nil {
			return err
		}
		return s.record(ctx, tx, p, audit.SessionCreated, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sessionNotFound answers every session the caller may not see.
func sessionNotFound(id string) error {
	return apierror.New(404, apierror.CodeSessionNotFound, "testing session "+strconv.Quote(id)+" not found or expired")
}

// sessionFor reads a session of the caller's organization that the caller
// may act on as need asks. A session outside the caller's scope, or an
// expired one, is reported as not found: sessions are invisible outside
// their environment.
func (s *Service) sessionFor(r store.Reader, p *authz.Principal, id string, perm apikey.Permission) (*TestingSession, error) {
	var ts TestingSession
	found, err := docs.Get(r, colSessions(p.Org()), id, &ts)
	if err != nil {
		return nil, err
	}
	if !found || !s.env.Now().Before(ts.ExpiresAt) || !authz.Allows(p, onSession(ts.Ref(), perm, "")) {
		return nil, sessionNotFound(id)
	}
	return &ts, nil
}

// SetOverrides pins flag values in a session. Every flag must exist in the
// session's environment and every value must fit the flag's variants; the
// new overrides are merged into the session's.
func (s *Service) SetOverrides(ctx context.Context, p *authz.Principal, id string, in SetOverridesInput) (*TestingSession, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Test, Permission: apikey.Write}); err != nil {
		return nil, err
	}
	if in.Overrides == nil {
		return nil, apierror.Invalid("overrides is required (an object of flag keys and values)")
	}
	var out *TestingSession
	err := s.env.Update(ctx, func(tx store.Writer) error {
		ts, err := s.sessionFor(tx, p, id, apikey.Write)
		if err != nil {
			return err
		}
		fs, err := readFlagSet(tx, ts.Ref())
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
		tx.Publish(SessionTopic, []byte(SessionEvent(ts.OrgID, ts.ID)))
		if err := docs.Put(tx, colSessions(ts.OrgID), ts.ID, ts); err != nil {
			return err
		}
		return s.record(ctx, tx, p, audit.SessionOverridesSet, ts)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteSession ends a session at once.
func (s *Service) DeleteSession(ctx context.Context, p *authz.Principal, id string) error {
	if err := authz.Permits(p, authz.Need{Type: apikey.Test, Permission: apikey.Write}); err != nil {
		return err
	}
	return s.env.Update(ctx, func(tx store.Writer) error {
		ts, err := s.sessionFor(tx, p, id, apikey.Write)
		if err != nil {
			return err
		}
		tx.Publish(SessionTopic, []byte(SessionEvent(ts.OrgID, ts.ID)))
		if err := tx.Delete(colSessions(ts.OrgID), id); err != nil {
			return err
		}
		return s.record(ctx, tx, p, audit.SessionDeleted, ts)
	})
}

// record writes the audit entry of a change to session ts by p, in tx.
func (s *Service) record(ctx context.Context, tx store.Writer, p *authz.Principal, a audit.Action, ts *TestingSession) error {
	return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Org: ts.OrgID, Project: ts.Project, Environment: ts.Environment,
		Action: a, Target: audit.Target{Type: "testing_session", ID: ts.ID}})
}

// UseSession returns the session an evaluation in ref names. Live keys may
// never use one: production traffic is never overridden.
func (s *Service) UseSession(ctx context.Context, p *authz.Principal, id string, ref Ref) (*TestingSession, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Test, Permission: apikey.Read, TypeDenial: "Live keys cannot use testing sessions"}); err != nil {
		return nil, err
	}
	var out *TestingSession
	err := s.env.View(ctx, func(r store.Reader) error {
		ts, err := s.sessionFor(r, p, id, apikey.Read)
		if err != nil {
			return err
		}
		if ts.Ref() != ref {
			return sessionNotFound(id)
		}
		out = ts
		return nil
	})
	return out, err
}

// SessionRevision returns the revision of session id of org, for the
// event streams that watch it (which authenticated when they connected);
// ok false if it no longer exists or has expired.
func (s *Service) SessionRevision(ctx context.Context, org, id string) (rev int64, ok bool, err error) {
	err = s.env.View(ctx, func(r store.Reader) error {
		var ts TestingSession
		found, err := docs.Get(r, colSessions(org), id, &ts)
		if err != nil || !found || !s.env.Now().Before(ts.ExpiresAt) {
			return err
		}
		rev, ok = ts.Revision, true
		return nil
	})
	return rev, ok, err
}

// SweepSessions deletes expired sessions, organization by organization,
// and returns how many.
func (s *Service) SweepSessions(ctx context.Context) (int, error) {
	var orgs []tenancy.Organization
	if err := s.env.View(ctx, func(r store.Reader) error {
		var err error
		orgs, err = tenancy.Organizations(r)
		return err
	}); err != nil {
		return 0, err
	}
	total := 0
	now := s.env.Now()
	for _, org := range orgs {
		n := 0
		err := s.env.Update(ctx, func(tx store.Writer) error {
			n = 0
			all, err := docs.List[TestingSession](tx, colSessions(org.ID))
			if err != nil {
				return err
			}
			for _, ts := range all {
				if !now.Before(ts.ExpiresAt) {
					if err := tx.Delete(colSessions(org.ID), ts.ID); err != nil {
						return err
					}
					n++
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	err := s.env.Update(ctx, func(tx store.Writer) error { return tx.DeleteCollection(colLegacySessions) })
	return total, err
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

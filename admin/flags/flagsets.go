// Package flags holds each environment's flag set (a flagd document with a
// version) and the testing sessions that pin flag values for one CI run.
package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/evaluator"
	"github.com/flagbridge/flagbridge/store"
)

// FlagSet is the flag set of one environment: a flagd document and the
// version that every write increments.
type FlagSet struct {
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
	// Document is the set in flagd's flag-definition format, as compiled
	// and normalized by the evaluator.
	Document json.RawMessage `json:"document"`
}

// emptyFlagSet is what an environment holds before its first write.
var emptyFlagSet = []byte(`{"flags":{}}`)

// Ref names a flag set: an environment of a project of an organization.
type Ref struct {
	OrgID, Project, Environment string
}

// String is the change-feed payload naming the set.
func (r Ref) String() string { return r.OrgID + "/" + r.Project + "/" + r.Environment }

// ParseRef reads what Ref.String writes.
func ParseRef(s string) (Ref, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Ref{}, fmt.Errorf("flags: %q is not an org/project/environment reference", s)
	}
	return Ref{OrgID: parts[0], Project: parts[1], Environment: parts[2]}, nil
}

// Scope is the environment the set belongs to.
func (r Ref) Scope() authz.Scope { return authz.Environment(r.OrgID, r.Project, r.Environment) }

// Service manages flag sets and testing sessions.
type Service struct {
	env *docs.Env
}

// New returns the service over env.
func New(env *docs.Env) *Service { return &Service{env: env} }

// onFlags is the need of reading or writing an environment's flags.
func onFlags(ref Ref, perm apikey.Permission) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: perm, Target: ref.Scope()}
}

// ReadFlagSet returns the stored flag set of an environment, for the
// evaluation side, which has authorized the caller for ref already; an
// environment never written holds an empty set at version 0, and a missing
// project or environment is NOT_FOUND.
func (s *Service) ReadFlagSet(ctx context.Context, ref Ref) (*FlagSet, error) {
	var out *FlagSet
	err := s.env.View(ctx, func(r store.Reader) error {
		if err := tenancy.EnvironmentExists(r, ref.OrgID, ref.Project, ref.Environment); err != nil {
			return err
		}
		var err error
		out, err = readFlagSet(r, ref)
		return err
	})
	return out, err
}

func readFlagSet(r store.Reader, ref Ref) (*FlagSet, error) {
	var fs FlagSet
	found, err := docs.Get(r, colFlagSets(ref.OrgID, ref.Project), ref.Environment, &fs)
	if err != nil {
		return nil, err
	}
	if !found {
		return &FlagSet{Document: emptyFlagSet}, nil
	}
	return &fs, nil
}

// GetFlagSet returns an environment's flag set.
func (s *Service) GetFlagSet(ctx context.Context, p *authz.Principal, project, env string) (*FlagSet, error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Read)); err != nil {
		return nil, err
	}
	return s.ReadFlagSet(ctx, ref)
}

// Precondition is an optional If-Match: the version the caller last saw.
// A write against another version is refused with 412, so that two people
// editing the same set cannot overwrite each other unknowingly.
type Precondition struct {
	Version int64
	Set     bool
}

func versionMismatch(want, have int64) error {
	return apierror.New(412, apierror.CodePreconditionFailed,
		fmt.Sprintf("the flag set is at version %d, not %d; fetch it again and retry", have, want))
}

// PutFlagSet replaces an environment's whole flag set with a flagd document.
// An invalid document is refused whole, with the evaluator's message naming
// the flag and the problem; nothing is half-applied.
func (s *Service) PutFlagSet(ctx context.Context, p *authz.Principal, project, env string, doc []byte, pre Precondition) (*FlagSet, error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Write)); err != nil {
		return nil, err
	}
	compiled, err := compileFlags(doc)
	if err != nil {
		return nil, err
	}
	return s.writeFlagSet(ctx, p, ref, pre, audit.Change{Action: audit.FlagSetUpdated,
		Target: audit.Target{Type: "flag_set", ID: ref.Environment}}, func(store.Reader, *FlagSet) ([]byte, error) {
		return compiled.Document(), nil
	})
}

// GetFlag returns one flag's definition and the version of its set.
func (s *Service) GetFlag(ctx context.Context, p *authz.Principal, project, env, key string) (json.RawMessage, int64, error) {
	fs, err := s.GetFlagSet(ctx, p, project, env)
	if err != nil {
		return nil, 0, err
	}
	flags, err := flagsOf(fs.Document)
	if err != nil {
		return nil, 0, err
	}
	def, ok := flags[key]
	if !ok {
		return nil, 0, flagNotFound(key, env)
	}
	return def, fs.Version, nil
}

// PutFlag creates or replaces one flag. The whole set is compiled with the
// change, so a flag that breaks the set (a $ref to a missing evaluator, say)
// is refused. created reports whether the flag is new.
func (s *Service) PutFlag(ctx context.Context, p *authz.Principal, project, env, key string, def json.RawMessage, pre Precondition) (fs *FlagSet, created bool, err error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Write)); err != nil {
		return nil, false, err
	}
	if key == "" {
		return nil, false, apierror.Invalid("flag key is empty")
	}
	if !json.Valid(def) || len(bytes.TrimSpace(def)) == 0 || bytes.TrimSpace(def)[0] != '{' {
		return nil, false, apierror.Invalid("flag %q: the definition must be a JSON object", key)
	}
	fs, err = s.writeFlagSet(ctx, p, ref, pre, audit.Change{Action: audit.FlagUpdated,
		Target: audit.Target{Type: "flag", ID: key}}, func(_ store.Reader, cur *FlagSet) ([]byte, error) {
		return editFlags(cur.Document, func(flags map[string]json.RawMessage) error {
			_, exists := flags[key]
			created = !exists
			flags[key] = def
			return nil
		})
	})
	return fs, created, err
}

// DeleteFlag removes one flag.
func (s *Service) DeleteFlag(ctx context.Context, p *authz.Principal, project, env, key string, pre Precondition) (*FlagSet, error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Write)); err != nil {
		return nil, err
	}
	return s.writeFlagSet(ctx, p, ref, pre, audit.Change{Action: audit.FlagDeleted,
		Target: audit.Target{Type: "flag", ID: key}}, func(_ store.Reader, cur *FlagSet) ([]byte, error) {
		return editFlags(cur.Document, func(flags map[string]json.RawMessage) error {
			if _, ok := flags[key]; !ok {
				return flagNotFound(key, env)
			}
			delete(flags, key)
			return nil
		})
	})
}

// writeFlagSet is the one write path of flag sets, for a caller already
// authorized for ref: in a transaction, check that the environment exists
// and the precondition, build the new document from the current one,
// compile it, bump the version, keep the version in the history,
// announce the change and record it (c, with the place and the versions
// filled in) in the audit log.
func (s *Service) writeFlagSet(ctx context.Context, p *authz.Principal, ref Ref, pre Precondition, c audit.Change,
	build func(tx store.Reader, cur *FlagSet) ([]byte, error)) (*FlagSet, error) {
	var out *FlagSet
	err := s.env.Update(ctx, func(tx store.Writer) error {
		if err := tenancy.EnvironmentExists(tx, ref.OrgID, ref.Project, ref.Environment); err != nil {
			return err
		}
		cur, err := readFlagSet(tx, ref)
		if err != nil {
			return err
		}
		if pre.Set && pre.Version != cur.Version {
			return versionMismatch(pre.Version, cur.Version)
		}
		doc, err := build(tx, cur)
		if err != nil {
			return err
		}
		compiled, err := compileFlags(doc)
		if err != nil {
			return err
		}
		out = &FlagSet{Version: cur.Version + 1, UpdatedAt: s.env.Timestamp(), Document: compiled.Document()}
		if err := docs.Put(tx, colFlagSets(ref.OrgID, ref.Project), ref.Environment, out); err != nil {
			return err
		}
		var revertOf int64
		if c.FlagSet != nil {
			revertOf = c.FlagSet.RevertOf
		}
		if err := keepVersion(tx, ref, p, out, revertOf); err != nil {
			return err
		}
		tx.Publish(Topic, []byte(ref.String()))
		c.Project, c.Environment = ref.Project, ref.Environment
		c.FlagSet = &audit.Versions{Before: cur.Version, After: out.Version, RevertOf: revertOf}
		return audit.Record(ctx, tx, p, s.env.Now(), c)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteProject removes, inside a transaction, the flag sets and testing
// sessions of a project being deleted, and tells every instance to drop
// the sets of its environments.
func (s *Service) DeleteProject(tx store.Writer, org, slug string, envs []tenancy.Environment) error {
	for _, e := range envs {
		tx.Publish(Topic, []byte(Ref{org, slug, e.Slug}.String()))
		if err := tx.DeleteCollection(colVersions(Ref{org, slug, e.Slug})); err != nil {
			return err
		}
	}
	if err := tx.DeleteCollection(colFlagSets(org, slug)); err != nil {
		return err
	}
	all, err := docs.List[TestingSession](tx, colSessions(org))
	if err != nil {
		return err
	}
	for _, ts := range all {
		if ts.Project == slug {
			if err := tx.Delete(colSessions(org), ts.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// compileFlags validates a document with the evaluator, turning its
// definition errors into 400s that name the flag and the problem, and
// FlagBridge's own metadata (ClientVisibleKey) too.
func compileFlags(doc []byte) (*evaluator.FlagSet, error) {
	fs, err := evaluator.Compile(doc)
	if err != nil {
		// Compile fails only on the document itself, so every error is the
		// caller's, and its message names the flag and the problem.
		return nil, apierror.Invalid("invalid flag definitions: %v", err)
	}
	for _, k := range fs.Keys() {
		md, _ := fs.Metadata(k)
		if v, set := md[ClientVisibleKey]; set {
			if _, ok := v.(bool); !ok {
				return nil, apierror.Invalid("invalid flag definitions: flag %q: metadata %q must be true or false (from the flag or the flag set's metadata), not %v", k, ClientVisibleKey, v)
			}
		}
	}
	return fs, nil
}

// ClientVisibleKey is the metadata entry that makes a flag evaluable with
// a client key, which browsers and apps carry: "flagbridge.client": true,
// in the flag's metadata or, for every flag without its own, the flag
// set's. It lives in the metadata so that the document stays valid flagd.
const ClientVisibleKey = "flagbridge.client"

// ClientVisible reports whether a flag with metadata md (the set's overlaid
// by the flag's) may be evaluated with a client key: only if it says so.
func ClientVisible(md map[string]any) bool {
	v, _ := md[ClientVisibleKey].(bool)
	return v
}

// flagsOf returns the "flags" object of a stored (valid) document.
func flagsOf(doc []byte) (map[string]json.RawMessage, error) {
	var top struct {
		Flags map[string]json.RawMessage `json:"flags"`
	}
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("decoding a stored flag set: %w", err)
	}
	return top.Flags, nil
}

// editFlags applies edit to the "flags" object of a document, keeping the
// rest ($evaluators, metadata) as it is.
func editFlags(doc []byte, edit func(map[string]json.RawMessage) error) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("decoding a stored flag set: %w", err)
	}
	flags := map[string]json.RawMessage{}
	if raw, ok := top["flags"]; ok {
		if err := json.Unmarshal(raw, &flags); err != nil {
			return nil, fmt.Errorf("decoding a stored flag set: %w", err)
		}
	}
	if err := edit(flags); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(flags)
	if err != nil {
		return nil, err
	}
	top["flags"] = raw
	return json.Marshal(top)
}

func flagNotFound(key, env string) error {
	return apierror.New(404, apierror.CodeFlagNotFound, "flag "+strconv.Quote(key)+" not found in environment "+strconv.Quote(env))
}

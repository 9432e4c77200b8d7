package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Version is one kept version of a flag set: its document, when it was
// written and by whom.
type Version struct {
	Version   int64       `json:"version"`
	UpdatedAt time.Time   `json:"updated_at"`
	Author    audit.Actor `json:"author"`
	// RevertOf is the version this one restored, for a revert.
	RevertOf int64 `json:"revert_of,omitempty"`
	// Document is the flagd document (left out of listings).
	Document json.RawMessage `json:"document,omitempty"`
}

// versionID is a version's document id: zero-padded, so that ids sort as
// versions do.
func versionID(v int64) string { return fmt.Sprintf("%020d", v) }

// keepVersion writes fs as a kept version of ref, by p (restoring version
// revertOf, if not 0), inside the transaction that writes it.
func keepVersion(tx store.Writer, ref Ref, p *authz.Principal, fs *FlagSet, revertOf int64) error {
	return docs.Put(tx, colVersions(ref), versionID(fs.Version), Version{
		Version: fs.Version, UpdatedAt: fs.UpdatedAt, Author: audit.ActorOf(p), RevertOf: revertOf, Document: fs.Document,
	})
}

// MaxVersionsListed bounds a listing of versions.
const MaxVersionsListed = 1000

// ListVersions returns, newest first, up to limit kept versions of an
// environment's flag set older than before (0: from the newest), without
// their documents. Versions written before FlagBridge kept them are not
// listed, but for the current one.
func (s *Service) ListVersions(ctx context.Context, p *authz.Principal, project, env string, before int64, limit int) ([]Version, error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Read)); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > MaxVersionsListed {
		return nil, apierror.Invalid("limit must be between 1 and %d, not %d", MaxVersionsListed, limit)
	}
	var out []Version
	err := s.env.View(ctx, func(r store.Reader) error {
		if err := tenancy.EnvironmentExists(r, ref.OrgID, ref.Project, ref.Environment); err != nil {
			return err
		}
		cur, err := readFlagSet(r, ref)
		if err != nil {
			return err
		}
		items, err := r.List(colVersions(ref))
		if err != nil {
			return err
		}
		if cur.Version > 0 && (len(items) == 0 || items[len(items)-1].ID != versionID(cur.Version)) {
			// The current version predates the history.
			if before == 0 || cur.Version < before {
				out = append(out, Version{Version: cur.Version, UpdatedAt: cur.UpdatedAt})
			}
		}
		for i := len(items) - 1; i >= 0 && len(out) < limit; i-- {
			var v Version
			if err := docs.Decode(items[i], &v); err != nil {
				return fmt.Errorf("decoding flag set version %s: %w", items[i].ID, err)
			}
			if before != 0 && v.Version >= before {
				continue
			}
			v.Document = nil
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// GetVersion returns version n of an environment's flag set, with its
// document.
func (s *Service) GetVersion(ctx context.Context, p *authz.Principal, project, env string, n int64) (*Version, error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Read)); err != nil {
		return nil, err
	}
	var out *Version
	err := s.env.View(ctx, func(r store.Reader) error {
		var err error
		out, err = readVersion(r, ref, n)
		return err
	})
	return out, err
}

// readVersion reads version n of ref's set in r (a transaction's reader
// for a revert).
func readVersion(r store.Reader, ref Ref, n int64) (*Version, error) {
	if err := tenancy.EnvironmentExists(r, ref.OrgID, ref.Project, ref.Environment); err != nil {
		return nil, err
	}
	cur, err := readFlagSet(r, ref)
	if err != nil {
		return nil, err
	}
	var v Version
	found, err := docs.Get(r, colVersions(ref), versionID(n), &v)
	switch {
	case err != nil:
		return nil, err
	case found:
		return &v, nil
	case n == cur.Version && n > 0:
		// Written before the history: the set itself holds it.
		return &Version{Version: n, UpdatedAt: cur.UpdatedAt, Document: cur.Document}, nil
	case n < 1 || n > cur.Version:
		return nil, apierror.NotFound("the flag set of %s/%s has no version %d (its versions run from 1 to %d)", ref.Project, ref.Environment, n, cur.Version)
	}
	return nil, apierror.NotFound("version %d of the flag set of %s/%s was written before FlagBridge kept versions", n, ref.Project, ref.Environment)
}

// FlagChange is how one flag differs between two versions.
type FlagChange struct {
	Key string `json:"key"`
	// Change is "added", "removed" or "changed".
	Change string `json:"change"`
	// Fields are, for a changed flag, the fields of its definition that
	// differ (state, variants, defaultVariant, targeting, metadata...).
	Fields []string `json:"fields,omitempty"`
}

// Diff is what changed from one version to another: per flag, and the
// set's own fields ($evaluators, metadata) that differ.
type Diff struct {
	From      int64        `json:"from"`
	To        int64        `json:"to"`
	Flags     []FlagChange `json:"flags"`
	SetFields []string     `json:"set_fields,omitempty"`
}

// DiffVersions compares versions from and to of an environment's flag
// set.
func (s *Service) DiffVersions(ctx context.Context, p *authz.Principal, project, env string, from, to int64) (*Diff, error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Read)); err != nil {
		return nil, err
	}
	var a, b *Version
	err := s.env.View(ctx, func(r store.Reader) error {
		var err error
		if a, err = readVersion(r, ref, from); err != nil {
			return err
		}
		b, err = readVersion(r, ref, to)
		return err
	})
	if err != nil {
		return nil, err
	}
	return diffDocuments(from, to, a.Document, b.Document)
}

// diffDocuments compares two flagd documents by their top-level fields
// and their flags' fields, as JSON values (key order and spacing aside).
func diffDocuments(from, to int64, a, b json.RawMessage) (*Diff, error) {
	var da, db map[string]json.RawMessage
	if err := json.Unmarshal(a, &da); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &db); err != nil {
		return nil, err
	}
	d := &Diff{From: from, To: to, Flags: []FlagChange{}}
	d.SetFields = changedFields(da, db, "flags")
	fa, fb := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	if err := unmarshalIf(da["flags"], &fa); err != nil {
		return nil, err
	}
	if err := unmarshalIf(db["flags"], &fb); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(fa)+len(fb))
	for k := range fa {
		keys = append(keys, k)
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		x, inA := fa[k]
		y, inB := fb[k]
		switch {
		case !inA:
			d.Flags = append(d.Flags, FlagChange{Key: k, Change: "added"})
		case !inB:
			d.Flags = append(d.Flags, FlagChange{Key: k, Change: "removed"})
		default:
			var ma, mb map[string]json.RawMessage
			if err := json.Unmarshal(x, &ma); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(y, &mb); err != nil {
				return nil, err
			}
			if fields := changedFields(ma, mb, ""); len(fields) > 0 {
				d.Flags = append(d.Flags, FlagChange{Key: k, Change: "changed", Fields: fields})
			}
		}
	}
	return d, nil
}

func unmarshalIf(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// changedFields are the fields of a and b (but skip) whose values differ,
// sorted.
func changedFields(a, b map[string]json.RawMessage, skip string) []string {
	var out []string
	for k, x := range a {
		if k != skip && !sameJSON(x, b[k]) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && k != skip {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// sameJSON reports whether two JSON values are equal as values.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x) // maps marshal with sorted keys
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// Revert writes version n's document as a new version of an
// environment's flag set (honouring pre, an If-Match), so that the
// history stays whole: a revert is itself a version.
func (s *Service) Revert(ctx context.Context, p *authz.Principal, project, env string, n int64, pre Precondition) (*FlagSet, error) {
	ref := Ref{p.Org(), project, env}
	if err := authz.Permits(p, onFlags(ref, apikey.Write)); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, apierror.Invalid("version must be a version of the set, 1 or more")
	}
	return s.writeFlagSet(ctx, p, ref, pre, audit.Change{Action: audit.FlagSetReverted,
		Target: audit.Target{Type: "flag_set", ID: ref.Environment}, FlagSet: &audit.Versions{RevertOf: n}},
		func(tx store.Reader, _ *FlagSet) ([]byte, error) {
			v, err := readVersion(tx, ref, n)
			if err != nil {
				return nil, err
			}
			return v.Document, nil
		})
}

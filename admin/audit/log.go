package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// DefaultRetention is how long entries are kept unless audit_retention
// says otherwise.
const DefaultRetention = 90 * 24 * time.Hour

// Page sizes of List.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Query selects entries: every field set narrows it.
type Query struct {
	Project, Environment string
	// Action is an action's name, or a noun and ".*" for all of its
	// actions ("api_key.*").
	Action string
	// Actor is the id of a key or a member.
	Actor string
	// Since and Until bound the entries' times (Since included, Until
	// not); zero for no bound.
	Since, Until time.Time
	// Cursor continues a listing: the entries older than the one it names
	// (a Page's Next).
	Cursor string
	// Limit is the page size (DefaultLimit if 0, at most MaxLimit).
	Limit int
}

// Page is one page of a listing, newest first. Next, if not empty, is the
// Cursor of the next page.
type Page struct {
	Entries []Entry `json:"entries"`
	Next    string  `json:"next_cursor,omitempty"`
}

// Service reads the audit log, keeps it to its retention, and manages the
// webhooks that receive it.
type Service struct {
	env *docs.Env
	// projectExists fails with NOT_FOUND unless the project exists (the
	// tenancy's rule, which imports this package).
	projectExists func(r store.Reader, org, project string) error
	// Retention is how long entries are kept (DefaultRetention if 0).
	Retention time.Duration
	// AllowInsecureWebhooks admits http URLs and private, loopback and
	// link-local addresses as webhook targets (webhook_allow_insecure:
	// development and tests only).
	AllowInsecureWebhooks bool
}

// New returns the audit log's service over env; projectExists is the
// tenancy's check that a project exists.
func New(env *docs.Env, projectExists func(r store.Reader, org, project string) error) *Service {
	return &Service{env: env, projectExists: projectExists}
}

func (s *Service) retention() time.Duration {
	if s.Retention <= 0 {
		return DefaultRetention
	}
	return s.Retention
}

// check validates q and returns it with its defaults.
func (q Query) check() (Query, error) {
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		return q, apierror.Invalid("limit must be between 1 and %d, not %d", MaxLimit, q.Limit)
	}
	if q.Environment != "" && q.Project == "" {
		return q, apierror.Invalid("environment: name the project of the environment too")
	}
	if q.Action != "" && !knownAction(q.Action) {
		return q, apierror.Invalid("action: no action %q; use one of %s, or a noun and .* (api_key.*)", q.Action, actionList())
	}
	if q.Cursor != "" {
		if _, ok := idTime(q.Cursor); !ok {
			return q, apierror.Invalid("cursor: %q is not a cursor of this log", q.Cursor)
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, apierror.Invalid("since must be before until")
	}
	return q, nil
}

// matchesAction reports whether an action pattern (a filter's, a
// webhook's event) takes a: its name, its noun and ".*", or "*" where
// allowed (webhooks).
func matchesAction(pattern string, a Action) bool {
	if noun, ok := strings.CutSuffix(pattern, ".*"); ok {
		return strings.HasPrefix(string(a), noun+".")
	}
	return pattern == "*" || pattern == string(a)
}

// knownAction reports whether a pattern (but "*") takes any action.
func knownAction(pattern string) bool {
	return pattern != "*" && slices.ContainsFunc(Actions, func(a Action) bool { return matchesAction(pattern, a) })
}

func actionList() string {
	s := make([]string, len(Actions))
	for i, a := range Actions {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

func (q *Query) matches(e *Entry) bool {
	switch {
	case q.Project != "" && e.Project != q.Project:
		return false
	case q.Environment != "" && e.Environment != q.Environment:
		return false
	case q.Actor != "" && e.Actor.ID != q.Actor:
		return false
	case !q.Since.IsZero() && e.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && !e.Time.Before(q.Until):
		return false
	}
	return q.Action == "" || matchesAction(q.Action, e.Action)
}

// authorize refuses a reader who may not read the part q names; a reader
// may always list, and sees only what its scope covers.
func authorize(p *authz.Principal, q *Query) error {
	n := authz.Need{Type: apikey.Admin, Permission: apikey.Read, Action: "read the audit log of", Partial: true}
	switch {
	case q.Environment != "":
		n.Target = authz.Environment(p.Org(), q.Project, q.Environment)
	case q.Project != "":
		n.Target = authz.Project(p.Org(), q.Project)
	}
	return authz.Permits(p, n)
}

// List returns a page of the entries q selects that p's scope covers,
// newest first.
func (s *Service) List(ctx context.Context, p *authz.Principal, q Query) (*Page, error) {
	q, err := q.check()
	if err != nil {
		return nil, err
	}
	if err := authorize(p, &q); err != nil {
		return nil, err
	}
	page := &Page{Entries: []Entry{}}
	err = s.each(ctx, p, q, func(e *Entry) bool {
		if len(page.Entries) == q.Limit {
			page.Next = page.Entries[len(page.Entries)-1].ID
			return false
		}
		page.Entries = append(page.Entries, *e)
		return true
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// Export calls fn with every entry q selects that p's scope covers, newest
// first, ignoring q's limit (for NDJSON exports). It stops at fn's first
// error.
func (s *Service) Export(ctx context.Context, p *authz.Principal, q Query, fn func(*Entry) error) error {
	q.Limit = MaxLimit // checked, then unused
	q, err := q.check()
	if err != nil {
		return err
	}
	if err := authorize(p, &q); err != nil {
		return err
	}
	var ferr error
	err = s.each(ctx, p, q, func(e *Entry) bool {
		ferr = fn(e)
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// each calls fn with the entries q selects that p may read, newest first,
// day by day, until fn returns false.
func (s *Service) each(ctx context.Context, p *authz.Principal, q Query, fn func(*Entry) bool) error {
	org := p.Org()
	oldest := s.env.Now().Add(-s.retention())
	if q.Since.Before(oldest) {
		q.Since = oldest
	}
	until := q.Until
	if q.Cursor != "" {
		t, _ := idTime(q.Cursor)
		if until.IsZero() || t.Before(until) {
			until = t.Add(time.Nanosecond)
		}
	}
	return s.env.View(ctx, func(r store.Reader) error {
		days, err := r.List(colDays(org))
		if err != nil {
			return err
		}
		for i := len(days) - 1; i >= 0; i-- {
			day := days[i].ID
			if !until.IsZero() && day > dayOf(until) {
				continue
			}
			if day < dayOf(q.Since) {
				return nil
			}
			items, err := r.List(colEntries(org, day))
			if err != nil {
				return err
			}
			for j := len(items) - 1; j >= 0; j-- {
				if q.Cursor != "" && items[j].ID >= q.Cursor {
					continue
				}
				var e Entry
				if err := json.Unmarshal(items[j].Value, &e); err != nil {
					return fmt.Errorf("decoding audit entry %s: %w", items[j].ID, err)
				}
				if !q.matches(&e) || !visibleTo(p, &e) {
					continue
				}
				if !fn(&e) {
					return nil
				}
			}
		}
		return nil
	})
}

// RecordFailure writes the entry of an attempt that changed nothing (a
// failed login), in a transaction of its own.
func RecordFailure(ctx context.Context, env *docs.Env, c Change, reason string) error {
	e := entryOf(ctx, nil, env.Now(), c)
	e.Outcome, e.Reason = Failure, reason
	return env.Update(ctx, func(tx store.Writer) error { return put(tx, e) })
}

// Sweep deletes, for every organization in orgs, the days of entries past
// the retention and the deliveries of its webhooks made before it (but
// those still pending), and returns how many days it deleted.
func (s *Service) Sweep(ctx context.Context, orgs []string) (int, error) {
	oldest := s.env.Now().Add(-s.retention())
	cutoff := dayOf(oldest)
	n := 0
	for _, org := range orgs {
		if err := s.sweepDeliveries(ctx, org, oldest); err != nil {
			return n, err
		}
		var old []string
		if err := s.env.View(ctx, func(r store.Reader) error {
			days, err := r.List(colDays(org))
			for _, d := range days {
				if d.ID < cutoff {
					old = append(old, d.ID)
				}
			}
			return err
		}); err != nil {
			return n, err
		}
		for _, day := range old {
			if err := s.env.Update(ctx, func(tx store.Writer) error {
				if err := tx.DeleteCollection(colEntries(org, day)); err != nil {
					return err
				}
				return tx.Delete(colDays(org), day)
			}); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// sweepDeliveries deletes the deliveries of org's webhooks made before
// oldest that are no longer pending.
func (s *Service) sweepDeliveries(ctx context.Context, org string, oldest time.Time) error {
	var hooks []storedWebhook
	if err := s.env.View(ctx, func(r store.Reader) error {
		var err error
		hooks, err = docs.List[storedWebhook](r, colWebhooks(org))
		return err
	}); err != nil {
		return err
	}
	for _, h := range hooks {
		err := s.env.Update(ctx, func(tx store.Writer) error {
			ds, err := docs.List[Delivery](tx, colDeliveries(org, h.ID))
			if err != nil {
				return err
			}
			for _, d := range ds {
				if d.Status != DeliveryPending && d.CreatedAt.Before(oldest) {
					if err := tx.Delete(colDeliveries(org, h.ID), d.ID); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

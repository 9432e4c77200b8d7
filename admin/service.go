package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/flagbridge/flagbridge/store"
)

// TopicKeys is the change-feed topic on which a changed key's id is
// published (revocation, rotation, deletion).
const TopicKeys = "keys"

// Collections of the storage layout documented in the package comment.
const (
	colOrgs    = "orgs"
	colDigests = "key-digests"
	colKeyUse  = "key-use"
)

func colProjects(org string) string           { return "projects/" + org }
func colEnvironments(org, proj string) string { return "environments/" + org + "/" + proj }
func colKeys(org string) string               { return "keys/" + org }

// Service is the administration backend.
type Service struct {
	store store.Store
	now   func() time.Time
}

// New returns a service over st.
func New(st store.Store) *Service {
	return &Service{store: st, now: time.Now}
}

// SetClock replaces the service's clock, for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Store returns the underlying store.
func (s *Service) Store() store.Store { return s.store }

// timestamp is the service's notion of now, in UTC to the second: times are
// shown to people and compared across instances, and sub-second precision
// would only suggest an accuracy the clocks do not have.
func (s *Service) timestamp() time.Time { return s.now().UTC().Truncate(time.Second) }

// getJSON reads one document into v; found is false if it does not exist.
func getJSON(r store.Reader, collection, id string, v any) (found bool, err error) {
	b, err := r.Get(collection, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decoding %s/%s: %w", collection, id, err)
	}
	return true, nil
}

// putJSON writes v as one document.
func putJSON(w store.Writer, collection, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.Put(collection, id, b)
}

// listJSON decodes every document of a collection.
func listJSON[T any](r store.Reader, collection string) ([]T, error) {
	items, err := r.List(collection)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		var v T
		if err := json.Unmarshal(it.Value, &v); err != nil {
			return nil, fmt.Errorf("decoding %s/%s: %w", collection, it.ID, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// view and update run fn against the store; their only job is to keep the
// call sites short.
func (s *Service) view(ctx context.Context, fn func(store.Reader) error) error {
	return s.store.View(ctx, fn)
}

func (s *Service) update(ctx context.Context, fn func(store.Writer) error) error {
	return s.store.Update(ctx, fn)
}

func sortBy[T any](xs []T, less func(a, b *T) bool) {
	sort.SliceStable(xs, func(i, j int) bool { return less(&xs[i], &xs[j]) })
}

// decodeItem decodes one listed document.
func decodeItem(it store.Item, v any) error { return json.Unmarshal(it.Value, v) }

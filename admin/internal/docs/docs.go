// Package docs reads and writes the JSON documents of the admin services:
// the few helpers every noun (tenancy, keys, customers, flags, identity)
// shares over package store.
package docs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/flagbridge/flagbridge/store"
)

// Get reads one document into v; found is false if it does not exist.
func Get(r store.Reader, collection, id string, v any) (found bool, err error) {
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

// Put writes v as one document.
func Put(w store.Writer, collection, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.Put(collection, id, b)
}

// List decodes every document of a collection, in id order.
func List[T any](r store.Reader, collection string) ([]T, error) {
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

// Decode decodes one listed document.
func Decode(it store.Item, v any) error { return json.Unmarshal(it.Value, v) }

// SortBy sorts xs stably by less.
func SortBy[T any](xs []T, less func(a, b *T) bool) {
	sort.SliceStable(xs, func(i, j int) bool { return less(&xs[i], &xs[j]) })
}

// Env is what every admin service runs on: the store, and a clock that the
// tests can set for all of them at once.
type Env struct {
	Store store.Store
	Now   func() time.Time
}

// Timestamp is the services' notion of now, in UTC to the second: times are
// shown to people and compared across instances, and sub-second precision
// would only suggest an accuracy the clocks do not have.
func (e *Env) Timestamp() time.Time { return e.Now().UTC().Truncate(time.Second) }

// View runs fn with read-only access to the store.
func (e *Env) View(ctx context.Context, fn func(store.Reader) error) error {
	return e.Store.View(ctx, fn)
}

// Update runs fn in a read-write transaction.
func (e *Env) Update(ctx context.Context, fn func(store.Writer) error) error {
	return e.Store.Update(ctx, fn)
}

// Package store is FlagBridge's storage layer: a small transactional document
// store with a change feed, and its two backends.
//
// Everything FlagBridge persists (organizations, projects, environments, API
// key records, flag sets) is a JSON document with an id inside a named
// collection. The backends only implement these primitives; the rules about
// what is stored where live once, above this package, in admin/.
//
//   - file://<dir> ([OpenFile]): the embedded default, a bbolt database in
//     <dir>. Every Update is one fsynced bbolt transaction, so a crash leaves
//     either all of a change or none of it. One process at a time.
//   - redis:// and rediss:// ([OpenRedis]): a go-redis UniversalClient, so a
//     single server, Sentinel (?master_name=) and Cluster (?cluster=true) all
//     work. A collection is one Redis hash; every hash of a deployment shares
//     one hash tag, so an Update is one optimistic WATCH/MULTI/EXEC
//     transaction even on Cluster. Many instances can share it.
//
// Changes are announced with [Writer.Publish]: the message is delivered to
// every subscriber of every instance sharing the store, after the change
// commits (on Redis, PUBLISH runs inside the same MULTI).
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// ErrNotFound is returned by [Reader.Get] for a document that does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned by Update when a transaction kept losing to
// concurrent writers and gave up.
var ErrConflict = errors.New("store: too much contention, transaction abandoned")

// Store is a transactional document store with a change feed.
type Store interface {
	// View runs fn, once, with read-only access. Each read is atomic, but
	// on Redis two reads may see different moments; when several documents
	// must agree, read them in Update, whose commit fails (and retries) if
	// any of them changed.
	View(ctx context.Context, fn func(Reader) error) error
	// Update runs fn in a read-write transaction and commits what it wrote
	// if it returns nil; nothing is written if it returns an error. fn may
	// run more than once (optimistic backends retry on conflict), so it
	// must not have effects outside the transaction.
	Update(ctx context.Context, fn func(Writer) error) error
	// Subscribe calls fn for every message published through any instance
	// sharing the store, until the returned function is called. fn runs on
	// one goroutine per subscription, in publication order, and must not
	// block for long.
	Subscribe(fn func(Event)) (unsubscribe func())
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store. It must be called once.
	Close() error
}

// Reader reads documents.
type Reader interface {
	// Get returns the document id of collection, or ErrNotFound.
	Get(collection, id string) ([]byte, error)
	// List returns every document of collection ordered by id. A collection
	// that was never written is empty, not an error.
	List(collection string) ([]Item, error)
}

// Writer reads and writes documents inside a transaction. Reads see the
// transaction's own earlier writes.
type Writer interface {
	Reader
	// Put creates or replaces a document.
	Put(collection, id string, value []byte) error
	// Delete removes a document; deleting a missing one is not an error.
	Delete(collection, id string) error
	// DeleteCollection removes every document of a collection.
	DeleteCollection(collection string) error
	// Publish queues a message to every subscriber, sent only if the
	// transaction commits. Topics starting with "store:" are the store's
	// own.
	Publish(topic string, payload []byte)
}

// Item is one document of a collection.
type Item struct {
	ID    string
	Value []byte
}

// Event is a message from the change feed.
type Event struct {
	Topic   string
	Payload []byte
	// Resync is set, with no topic, when messages may have been missed
	// (the connection to the feed was lost and restored): subscribers must
	// drop whatever they cache.
	Resync bool
	// Published is when the transaction that sent the message committed,
	// by the publishing instance's clock, so that a subscriber can tell how
	// long the message took to reach it. It is zero when unknown: for a
	// Resync, and for messages from instances that predate it.
	Published time.Time
}

// Options tune a store.
type Options struct {
	// Timeout bounds each storage operation (and each Redis network read or
	// write). Zero means DefaultTimeout.
	Timeout time.Duration
	// KeyPrefix namespaces every Redis key ("fb" if empty), so that several
	// deployments can share one Redis. It becomes the hash tag.
	KeyPrefix string
}

// DefaultTimeout is the bound of each storage operation when Options names
// none; the edge's storage_timeout defaults to it too.
const DefaultTimeout = 500 * time.Millisecond

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// Open opens the store a storage URL names: file://<dir>, redis://... or
// rediss://....
func Open(rawURL string, opts Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not err itself: a url.Error quotes the URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("storage URL %s: %v", Redact(rawURL), err)
	}
	switch u.Scheme {
	case "file":
		dir, err := FileDir(rawURL)
		if err != nil {
			return nil, err
		}
		return OpenFile(dir, opts)
	case "redis", "rediss":
		return OpenRedis(rawURL, opts)
	}
	return nil, fmt.Errorf("storage URL %q: unsupported scheme (want file://, redis:// or rediss://)", Redact(rawURL))
}

// FileDir returns the directory a file:// URL names. Both file:///abs/path and
// the relative file://./data are accepted.
func FileDir(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "file" {
		return "", fmt.Errorf("storage URL %q: want file://<dir>", rawURL)
	}
	dir := u.Host + u.Path
	if u.Opaque != "" {
		dir = u.Opaque
	}
	if dir == "" {
		return "", fmt.Errorf("storage URL %q: no directory", rawURL)
	}
	return dir, nil
}

// Redact returns a storage URL with any password replaced, for logs and
// error messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable storage URL)"
	}
	return u.Redacted()
}

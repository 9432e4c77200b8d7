package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned (wrapped) by [OpenFile] when another process holds
// the database: with the file backend, that means a FlagBridge server is
// running on the same directory.
var ErrLocked = errors.New("store: the file store is in use by another process")

// fileName is the database file inside the directory of a file:// store.
const fileName = "flagbridge.db"

// lockTimeout is how long OpenFile waits for the database lock. Short, so
// that a command started next to a running server fails fast with ErrLocked
// instead of hanging.
const lockTimeout = time.Second

// FileStore is the embedded backend: a bbolt database in which every
// collection is a top-level bucket. Each Update is one fsynced bbolt
// transaction. It is used by one process at a time; its change feed is
// in-process.
type FileStore struct {
	db     *bolt.DB
	closed atomic.Bool
	// writeMu is held across a write transaction and the delivery of its
	// messages, so that subscribers see messages in commit order. bbolt
	// serializes writers anyway, so it costs no concurrency.
	writeMu sync.Mutex
	feed    feed
}

var _ Store = (*FileStore)(nil)

// OpenFile opens, creating it if needed, the file store in dir. If another
// process has it open, the error wraps [ErrLocked]. opts is accepted for
// symmetry with [OpenRedis]: a local file has no timeouts or key prefix.
func OpenFile(dir string, opts Options) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, fileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (%s is locked; is a FlagBridge server running on it?)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	return &FileStore{db: db}, nil
}

// View runs fn in a bbolt read transaction.
func (s *FileStore) View(ctx context.Context, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		return fn(&fileTx{tx: tx})
	})
}

// Update runs fn in a bbolt write transaction, committed (and fsynced) if fn
// returns nil; the messages it published are then delivered.
func (s *FileStore) Update(ctx context.Context, fn func(Writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var w *fileTx
	err := s.db.Update(func(tx *bolt.Tx) error {
		w = &fileTx{tx: tx}
		if err := fn(w); err != nil {
			return err
		}
		// Cancelled while fn ran: the caller has given up, so do not commit
		// a change it will report as failed.
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	published := time.Now()
	for _, ev := range w.events {
		ev.Published = published
		s.feed.send(ev)
	}
	return nil
}

// Subscribe calls fn for every message published after it returns, until
// the returned function is called.
func (s *FileStore) Subscribe(fn func(Event)) func() {
	_, unsubscribe := s.feed.subscribe(fn)
	return unsubscribe
}

// Ping reports whether the store is open.
func (s *FileStore) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errors.New("store: file store is closed")
	}
	return ctx.Err()
}

// Close stops the subscribers and closes the database, releasing its lock.
// Calling it again does nothing.
func (s *FileStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.feed.close()
	return s.db.Close()
}

// fileTx implements Writer (and Reader) over a bbolt transaction, which
// already sees its own writes.
type fileTx struct {
	tx     *bolt.Tx
	events []Event
}

func (t *fileTx) Get(collection, id string) ([]byte, error) {
	if err := checkNames(collection, id); err != nil {
		return nil, err
	}
	b := t.tx.Bucket([]byte(collection))
	if b == nil {
		return nil, ErrNotFound
	}
	// A cursor tells a missing key from an empty value, which b.Get cannot.
	k, v := b.Cursor().Seek([]byte(id))
	if k == nil || string(k) != id {
		return nil, ErrNotFound
	}
	// bbolt memory is only valid during the transaction.
	return append([]byte{}, v...), nil
}

func (t *fileTx) List(collection string) ([]Item, error) {
	if err := checkNames(collection, "-"); err != nil {
		return nil, err
	}
	b := t.tx.Bucket([]byte(collection))
	if b == nil {
		return []Item{}, nil
	}
	items := []Item{}
	// The cursor walks keys in byte order, which is the id order List
	// promises (Go compares strings bytewise too).
	err := b.ForEach(func(k, v []byte) error {
		items = append(items, Item{ID: string(k), Value: append([]byte{}, v...)})
		return nil
	})
	return items, err
}

func (t *fileTx) Put(collection, id string, value []byte) error {
	if err := checkNames(collection, id); err != nil {
		return err
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(collection))
	if err != nil {
		return err
	}
	// bbolt keeps a reference to value until commit: copy it so the caller
	// may reuse its slice.
	return b.Put([]byte(id), append([]byte{}, value...))
}

func (t *fileTx) Delete(collection, id string) error {
	if err := checkNames(collection, id); err != nil {
		return err
	}
	b := t.tx.Bucket([]byte(collection))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(id))
}

func (t *fileTx) DeleteCollection(collection string) error {
	if err := checkNames(collection, "-"); err != nil {
		return err
	}
	err := t.tx.DeleteBucket([]byte(collection))
	if errors.Is(err, berrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

func (t *fileTx) Publish(topic string, payload []byte) {
	t.events = append(t.events, Event{Topic: topic, Payload: append([]byte(nil), payload...)})
}

// checkNames rejects the empty collection names and ids that bbolt cannot
// store, so that both backends accept the same names.
func checkNames(collection, id string) error {
	if collection == "" {
		return errors.New("store: empty collection name")
	}
	if id == "" {
		return errors.New("store: empty document id")
	}
	return nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// maxAttempts bounds the optimistic retries of one Update.
	maxAttempts = 20
	// healthInterval is how long the change feed may stay silent before it
	// pings Redis; a ping left unanswered for as long again means the
	// connection is dead without the kernel having noticed (half-open TCP).
	healthInterval = 10 * time.Second
	// Backoff of the change feed's reconnection attempts.
	minFeedBackoff = 50 * time.Millisecond
	maxFeedBackoff = time.Second
)

// RedisStore is the shared backend. Every collection is one Redis hash at
// key {<prefix>}:c:<collection> (field = id, value = document). The braces
// make the prefix a Cluster hash tag: all keys of a deployment live in one
// slot, so that every Update is a single WATCH/MULTI/EXEC transaction, on
// Cluster too. The change feed is the Pub/Sub channel <prefix>:events.
type RedisStore struct {
	client  redis.UniversalClient
	prefix  string
	channel string
	// txKey is the key passed to Watch. It is never written: its only job is
	// to route the transaction to the node owning the store's slot.
	txKey   string
	timeout time.Duration
	feed    feed

	loopCtx  context.Context
	stopLoop context.CancelFunc
	loopDone chan struct{}

	mu          sync.Mutex
	closed      bool
	loopStarted bool
	ps          *redis.PubSub // the receive loop's current subscription
	// live is set while the feed's subscription is confirmed; liveCh is
	// closed when it becomes so.
	live   bool
	liveCh chan struct{}
	// everLive is set after the first confirmation: any later one is a
	// reconnection, after which every subscriber needs a Resync.
	everLive bool
	// pending holds the subscribers whose Subscribe gave up waiting for the
	// feed: they owe a Resync when it comes up.
	pending map[*subscriber]struct{}
}

var _ Store = (*RedisStore)(nil)

// OpenRedis returns a store on the Redis a redis:// or rediss:// URL names.
// It makes no network call: an unreachable Redis shows in the first
// operation (or [RedisStore.Ping]), not here.
//
// With ?master_name= the URL names Sentinels (redis.ParseFailoverURL); with
// ?cluster=true or several addresses (&addr=host:port) it names Cluster nodes
// (redis.ParseClusterURL); otherwise one server (redis.ParseURL). The other
// query parameters are go-redis's. Unless the URL sets them, the timeouts
// derive from opts.Timeout, max_retries is 1 and context deadlines are
// honoured, so that an unreachable Redis fails operations quickly.
func OpenRedis(rawURL string, opts Options) (*RedisStore, error) {
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = "fb"
	}
	if strings.ContainsAny(prefix, "{}") {
		// A brace would end the hash tag early and scatter the keys.
		return nil, fmt.Errorf("store: key prefix %q must not contain braces", prefix)
	}
	client, err := newRedisClient(rawURL, opts.timeout())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &RedisStore{
		client:   client,
		prefix:   prefix,
		channel:  prefix + ":events",
		txKey:    "{" + prefix + "}:tx",
		timeout:  opts.timeout(),
		loopCtx:  ctx,
		stopLoop: cancel,
		loopDone: make(chan struct{}),
		liveCh:   make(chan struct{}),
		pending:  make(map[*subscriber]struct{}),
	}, nil
}

func newRedisClient(rawURL string, timeout time.Duration) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, password included
		}
		return nil, urlError(rawURL, err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, urlError(rawURL, errors.New("want redis:// or rediss://"))
	}
	q := u.Query()
	cluster := len(q["addr"]) > 0
	if q.Has("cluster") {
		// Ours, not go-redis's: its parsers reject unknown parameters.
		b, err := strconv.ParseBool(q.Get("cluster"))
		if err != nil {
			return nil, urlError(rawURL, fmt.Errorf("cluster=%q: want true or false", q.Get("cluster")))
		}
		cluster = cluster || b
		q.Del("cluster")
		u.RawQuery = q.Encode()
		rawURL = u.String()
	}
	// Defaults unless the URL sets them: bounded timeouts, one retry, one
	// reconnection attempt per dial (go-redis otherwise dials five times,
	// 100ms apart, before an operation may fail), and a client name that
	// shows FlagBridge's connections in CLIENT LIST.
	d := func(dial, read, write, pool *time.Duration, retries, dialRetries *int, ctxTimeout *bool, name *string) {
		set := func(name string, f func()) {
			if !q.Has(name) {
				f()
			}
		}
		set("dial_timeout", func() { *dial = 2 * timeout })
		set("read_timeout", func() { *read = timeout })
		set("write_timeout", func() { *write = timeout })
		set("pool_timeout", func() { *pool = 2 * timeout })
		set("max_retries", func() { *retries = 1 })
		set("context_timeout_enabled", func() { *ctxTimeout = true })
		set("dialer_retries", func() { *dialRetries = 1 })
		set("client_name", func() { *name = "flagbridge" })
	}
	switch {
	case q.Has("master_name"):
		if cluster {
			return nil, urlError(rawURL, errors.New("master_name (Sentinel) and cluster cannot be combined"))
		}
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, urlError(rawURL, err)
		}
		d(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries, &o.ContextTimeoutEnabled, &o.ClientName)
		return redis.NewFailoverClient(o), nil
	case cluster:
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, urlError(rawURL, err)
		}
		d(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries, &o.ContextTimeoutEnabled, &o.ClientName)
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, urlError(rawURL, err)
		}
		d(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries, &o.ContextTimeoutEnabled, &o.ClientName)
		return redis.NewClient(o), nil
	}
}

// urlError reports a bad storage URL without its password, which may also
// appear inside err (go-redis's parse errors can quote the URL).
func urlError(rawURL string, err error) error {
	msg := err.Error()
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				if pw := rest[c+1 : at]; pw != "" {
					msg = strings.ReplaceAll(msg, pw, "xxxxx")
					if dec, err := url.PathUnescape(pw); err == nil && dec != "" {
						msg = strings.ReplaceAll(msg, dec, "xxxxx")
					}
				}
			}
		}
	}
	return fmt.Errorf("storage URL %s: %s", Redact(rawURL), msg)
}

// Client returns the underlying go-redis client, for features that share
// the connection pool (the rate limiter). It must not be closed.
func (s *RedisStore) Client() redis.UniversalClient { return s.client }

// Prefix returns the key prefix, which is also the hash tag of every key of
// the store.
func (s *RedisStore) Prefix() string { return s.prefix }

func (s *RedisStore) hashKey(collection string) string {
	return "{" + s.prefix + "}:c:" + collection
}

// View runs fn over plain HGET/HGETALL reads. Each read is atomic, but two
// reads (of different collections) may observe different moments: unlike
// Update, View never runs fn twice, so it cannot validate and retry.
func (s *RedisStore) View(ctx context.Context, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn(&redisView{s: s, ctx: ctx})
}

type redisView struct {
	s   *RedisStore
	ctx context.Context
}

func (v *redisView) Get(collection, id string) ([]byte, error) {
	if err := checkNames(collection, id); err != nil {
		return nil, err
	}
	return hget(v.ctx, v.s.client, v.s.hashKey(collection), id)
}

func (v *redisView) List(collection string) ([]Item, error) {
	if err := checkNames(collection, "-"); err != nil {
		return nil, err
	}
	m, err := hgetall(v.ctx, v.s.client, v.s.hashKey(collection))
	if err != nil {
		return nil, err
	}
	return sortedItems(m), nil
}

// hashReader is what reads need from a client or a transaction.
type hashReader interface {
	HGet(ctx context.Context, key, field string) *redis.StringCmd
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
}

func hget(ctx context.Context, r hashReader, key, id string) ([]byte, error) {
	v, err := r.HGet(ctx, key, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: redis HGET: %w", err)
	}
	return v, nil
}

func hgetall(ctx context.Context, r hashReader, key string) (map[string][]byte, error) {
	m, err := r.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("store: redis HGETALL: %w", err)
	}
	docs := make(map[string][]byte, len(m))
	for id, v := range m {
		docs[id] = []byte(v)
	}
	return docs, nil
}

func sortedItems(docs map[string][]byte) []Item {
	items := make([]Item, 0, len(docs))
	for id, v := range docs {
		items = append(items, Item{ID: id, Value: v})
	}
	slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.ID, b.ID) })
	return items
}

// Update runs fn as an optimistic transaction: reads WATCH their hash,
// writes are buffered and applied with the published messages in one
// MULTI/EXEC. When a watched hash changed meanwhile, fn runs again from
// scratch, up to maxAttempts times, after which Update returns ErrConflict.
func (s *RedisStore) Update(ctx context.Context, fn func(Writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		var fnErr, readErr error
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			w := &redisTx{s: s, ctx: ctx, tx: tx, watched: map[string]bool{}, colls: map[string]*overlay{}}
			if fnErr = fn(w); fnErr != nil {
				return fnErr
			}
			if readErr = w.err; readErr != nil {
				return readErr
			}
			return w.commit()
		}, s.txKey)
		switch {
		case fnErr != nil:
			return fnErr // unchanged, for the caller's errors.Is
		case readErr != nil:
			return readErr
		case err == nil:
			return nil
		case !errors.Is(err, redis.TxFailedErr):
			return fmt.Errorf("store: redis update: %w", err)
		case attempt == maxAttempts:
			return ErrConflict
		}
		// Jittered, growing backoff so that contending writers spread out
		// instead of colliding again in lockstep.
		d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

// redisTx is one attempt of an Update.
type redisTx struct {
	s       *RedisStore
	ctx     context.Context
	tx      *redis.Tx
	watched map[string]bool
	colls   map[string]*overlay
	msgs    []string
	// err is the first failed Redis call: the attempt must not commit even
	// if fn ignored it.
	err error
}

// overlay holds the writes of one collection buffered by a transaction.
type overlay struct {
	// cleared: DeleteCollection ran; earlier contents are gone.
	cleared bool
	// docs maps id to its new value, or to nil for a deletion.
	docs map[string][]byte
}

func (w *redisTx) overlay(collection string) *overlay {
	o := w.colls[collection]
	if o == nil {
		o = &overlay{docs: map[string][]byte{}}
		w.colls[collection] = o
	}
	return o
}

// watch WATCHes key before its first read, so that EXEC fails if it
// changes between that read and the commit.
func (w *redisTx) watch(key string) error {
	if w.watched[key] {
		return nil
	}
	if err := w.tx.Watch(w.ctx, key).Err(); err != nil {
		return w.fail(fmt.Errorf("store: redis WATCH: %w", err))
	}
	w.watched[key] = true
	return nil
}

func (w *redisTx) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

func (w *redisTx) Get(collection, id string) ([]byte, error) {
	if err := checkNames(collection, id); err != nil {
		return nil, err
	}
	if o := w.colls[collection]; o != nil {
		if v, ok := o.docs[id]; ok {
			if v == nil {
				return nil, ErrNotFound
			}
			return append([]byte{}, v...), nil
		}
		if o.cleared {
			return nil, ErrNotFound
		}
	}
	key := w.s.hashKey(collection)
	if err := w.watch(key); err != nil {
		return nil, err
	}
	v, err := hget(w.ctx, w.tx, key, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		w.fail(err)
	}
	return v, err
}

func (w *redisTx) List(collection string) ([]Item, error) {
	if err := checkNames(collection, "-"); err != nil {
		return nil, err
	}
	docs := map[string][]byte{}
	o := w.colls[collection]
	if o == nil || !o.cleared {
		key := w.s.hashKey(collection)
		if err := w.watch(key); err != nil {
			return nil, err
		}
		var err error
		if docs, err = hgetall(w.ctx, w.tx, key); err != nil {
			return nil, w.fail(err)
		}
	}
	if o != nil {
		for id, v := range o.docs {
			if v == nil {
				delete(docs, id)
			} else {
				docs[id] = append([]byte{}, v...)
			}
		}
	}
	return sortedItems(docs), nil
}

func (w *redisTx) Put(collection, id string, value []byte) error {
	if err := checkNames(collection, id); err != nil {
		return err
	}
	// Never nil: nil marks a deletion in the overlay.
	w.overlay(collection).docs[id] = append([]byte{}, value...)
	return nil
}

func (w *redisTx) Delete(collection, id string) error {
	if err := checkNames(collection, id); err != nil {
		return err
	}
	w.overlay(collection).docs[id] = nil
	return nil
}

func (w *redisTx) DeleteCollection(collection string) error {
	if err := checkNames(collection, "-"); err != nil {
		return err
	}
	o := w.overlay(collection)
	o.cleared = true
	clear(o.docs)
	return nil
}

func (w *redisTx) Publish(topic string, payload []byte) {
	w.msgs = append(w.msgs, encodeEvent(topic, payload))
}

// commit applies the buffered writes and messages in one MULTI/EXEC, which
// fails with TxFailedErr if a watched hash changed.
func (w *redisTx) commit() error {
	if len(w.colls) == 0 && len(w.msgs) == 0 {
		if len(w.watched) > 1 {
			// Read-only, over several hashes: an empty EXEC still checks the
			// WATCHes, so the reads were one consistent state.
			_, err := w.tx.TxPipelined(w.ctx, func(p redis.Pipeliner) error {
				p.Ping(w.ctx)
				return nil
			})
			return err
		}
		return nil
	}
	_, err := w.tx.TxPipelined(w.ctx, func(p redis.Pipeliner) error {
		for collection, o := range w.colls {
			key := w.s.hashKey(collection)
			if o.cleared {
				p.Del(w.ctx, key)
			}
			var set []any
			var del []string
			for id, v := range o.docs {
				switch {
				case v != nil:
					set = append(set, id, v)
				case !o.cleared:
					del = append(del, id)
				}
			}
			if len(del) > 0 {
				p.HDel(w.ctx, key, del...)
			}
			if len(set) > 0 {
				p.HSet(w.ctx, key, set...)
			}
		}
		// Inside the MULTI: the message goes out exactly when the change
		// commits, right after the clock frame that stamps it.
		if len(w.msgs) > 0 {
			p.Publish(w.ctx, w.s.channel, encodeClock(time.Now(), len(w.msgs)))
		}
		for _, m := range w.msgs {
			p.Publish(w.ctx, w.s.channel, m)
		}
		return nil
	})
	return err
}

// clockTopic is the topic of the frame that carries a transaction's commit
// time, for Event.Published. commit publishes it, as "<Unix nanoseconds>
// <n>", just before the transaction's n messages and in the same MULTI, so
// that every subscriber receives it right before them; the receive loop
// stamps those n messages with it and delivers the frame itself to no one.
// Instances that predate it deliver it as an event of a topic nobody
// listens to; their own messages come without one and keep a zero
// Published. Writers must not publish on it.
const clockTopic = "store:clock"

func encodeClock(at time.Time, n int) string {
	return encodeEvent(clockTopic, []byte(strconv.FormatInt(at.UnixNano(), 10)+" "+strconv.Itoa(n)))
}

// decodeClock reads a clock frame's payload.
func decodeClock(payload []byte) (at time.Time, n int, ok bool) {
	ns, count, found := strings.Cut(string(payload), " ")
	if !found {
		return time.Time{}, 0, false
	}
	t, err1 := strconv.ParseInt(ns, 10, 64)
	n, err2 := strconv.Atoi(count)
	if err1 != nil || err2 != nil || n < 0 {
		return time.Time{}, 0, false
	}
	return time.Unix(0, t), n, true
}

// clock is what the receive loop knows of the messages to come: the next
// left ones were committed at at.
type clock struct {
	at   time.Time
	left int
}

// encodeEvent frames a message as "<len(topic)>:<topic><payload>", which
// needs no escaping whatever the topic holds.
func encodeEvent(topic string, payload []byte) string {
	return strconv.Itoa(len(topic)) + ":" + topic + string(payload)
}

func decodeEvent(msg string) (Event, bool) {
	i := strings.IndexByte(msg, ':')
	if i < 0 {
		return Event{}, false
	}
	n, err := strconv.Atoi(msg[:i])
	rest := msg[i+1:]
	if err != nil || n < 0 || n > len(rest) {
		return Event{}, false
	}
	return Event{Topic: rest[:n], Payload: []byte(rest[n:])}, true
}

// Subscribe calls fn for every message published on the store's channel by
// any instance. The first call starts the store's receive loop and waits
// (up to twice the timeout) until Redis confirms the subscription, so that
// messages published after Subscribe returns are delivered; if Redis does
// not confirm in time, fn gets a Resync once it does.
func (s *RedisStore) Subscribe(fn func(Event)) func() {
	sub, unsubscribe := s.feed.subscribe(fn)
	if sub == nil {
		return unsubscribe
	}
	s.mu.Lock()
	if !s.loopStarted && !s.closed {
		s.loopStarted = true
		go s.receiveLoop()
	}
	live, liveCh := s.live, s.liveCh
	s.mu.Unlock()
	if !live {
		t := time.NewTimer(2 * s.timeout)
		select {
		case <-liveCh:
		case <-t.C:
		case <-s.loopCtx.Done():
		}
		t.Stop()
	}
	s.mu.Lock()
	if !s.live && !s.closed {
		s.pending[sub] = struct{}{}
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.pending, sub)
		s.mu.Unlock()
		unsubscribe()
	}
}

// receiveLoop owns the store's Pub/Sub subscription. It uses Receive rather
// than Channel because it must see every subscription confirmation: each
// one after the first means the connection was re-established and messages
// may have been lost. On any error it drops the subscription and starts a
// new one after a backoff, so a down Redis costs a dial per backoff period,
// never a hot loop.
func (s *RedisStore) receiveLoop() {
	defer close(s.loopDone)
	ctx := s.loopCtx
	backoff := minFeedBackoff
	var ps *redis.PubSub
	defer func() {
		if ps != nil {
			_ = ps.Close()
		}
	}()
	pinged := false
	var stamp clock
	for {
		if ps == nil {
			if ps = s.newPubSub(ctx); ps == nil {
				return // closed
			}
			pinged = false
			// A clock frame received on the lost connection stamps nothing
			// that arrives on the new one.
			stamp = clock{}
		}
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				// Quiet, but maybe dead: a ping's answer will tell.
				if ps.Ping(ctx) == nil {
					pinged = true
					continue
				}
			}
			s.setLive(false)
			s.dropPubSub(ps)
			ps = nil
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxFeedBackoff)
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				backoff = minFeedBackoff
				s.confirmed()
			}
		case *redis.Message:
			ev, ok := decodeEvent(m.Payload)
			if !ok {
				continue
			}
			if ev.Topic == clockTopic {
				at, n, ok := decodeClock(ev.Payload)
				if !ok {
					n = 0
				}
				stamp = clock{at: at, left: n}
				continue
			}
			if stamp.left > 0 {
				ev.Published = stamp.at
				stamp.left--
			}
			s.feed.send(ev)
		}
	}
}

// newPubSub starts a subscription, or returns nil if the store is closed.
func (s *RedisStore) newPubSub(ctx context.Context) *redis.PubSub {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	ps := s.client.Subscribe(ctx) // no channel yet: no network call under the lock
	s.ps = ps
	s.mu.Unlock()
	// An error here (Redis down) is seen again by the next Receive, which
	// also retries the subscription.
	_ = ps.Subscribe(ctx, s.channel)
	return ps
}

func (s *RedisStore) dropPubSub(ps *redis.PubSub) {
	s.mu.Lock()
	if s.ps == ps {
		s.ps = nil
	}
	s.mu.Unlock()
	_ = ps.Close()
}

func (s *RedisStore) setLive(live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live && !live {
		s.live = false
		s.liveCh = make(chan struct{})
	}
}

// confirmed handles a subscription confirmation from Redis.
func (s *RedisStore) confirmed() {
	s.mu.Lock()
	reconnected := s.everLive
	s.everLive = true
	if !s.live {
		s.live = true
		close(s.liveCh)
	}
	pending := s.pending
	s.pending = make(map[*subscriber]struct{})
	s.mu.Unlock()
	if reconnected {
		s.feed.send(Event{Resync: true})
		return
	}
	for sub := range pending {
		sub.push(Event{Resync: true})
	}
}

// Ping sends PING, bounded by the store's timeout.
func (s *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.client.Ping(ctx).Err()
}

// Close stops the receive loop and the subscribers, then closes the client.
// Calling it again does nothing.
func (s *RedisStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started, ps := s.loopStarted, s.ps
	s.mu.Unlock()
	s.stopLoop()
	if ps != nil {
		_ = ps.Close() // unblocks the loop's Receive
	}
	if started {
		<-s.loopDone
	}
	s.feed.close()
	return s.client.Close()
}

// sleepCtx sleeps for d, or reports false if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package streams

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
)

// Heartbeat is how often an idle stream gets a comment line, so that
// proxies and load balancers do not close it as idle (most wait 60 s).
const Heartbeat = 30 * time.Second

// InactivityDelay is what the bulk answer tells providers (OFREP's
// inactivityDelaySec): after this long hidden, a page closes its stream
// and evaluates again when it is shown.
const InactivityDelay = 120 * time.Second

// Retry is the reconnection delay a stream tells EventSource (its
// "retry:" field): how long a browser waits before connecting again after
// the stream drops, with Last-Event-ID. Browsers default to 3-5 s; one
// second brings a restarted instance's streams back within a second of it
// taking connections, and a client of an instance that stays down tries
// once a second (behind a load balancer it gets an error answer instead,
// and the web provider backs off from 1 s to 60 s).
const Retry = time.Second

// MaxStreamsPerClient bounds the streams one key may hold open from one
// client address on one instance. A page or an SDK needs one, but one
// address may be a whole office behind one NAT, every browser of which
// carries the same client key; without a bound, the connections a key's
// rate limit admits could pile up into memory (an idle stream holds about
// 35 KiB with its goroutine: 35 MB at the bound).
const MaxStreamsPerClient = 1000

// HubConfig is what a Hub asks of the instance it runs in.
type HubConfig struct {
	// Version returns the current version of a flag set ("org/project/env"),
	// as the instance serves it.
	Version func(ctx context.Context, ref string) (int64, error)
	// Validate says until when a key's secret (by digest) authenticates:
	// ok false if no longer (revoked, rotated past its grace period,
	// expired), zero time for no limit. It reads the key afresh.
	Validate func(ctx context.Context, d apikey.Digest) (until time.Time, ok bool, err error)
	// Revision returns a testing session's revision ("org/id"); ok false
	// if it no longer exists.
	Revision func(ctx context.Context, session string) (rev int64, ok bool, err error)
	// Timeout bounds each of those calls (default 5 s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Hub is one instance's open streams, by the flag set they watch and the
// key they belong to. Its one goroutine (Run) ends streams whose key
// expires and sends heartbeats: a stream costs no timer of its own.
type Hub struct {
	cfg HubConfig

	mu        sync.Mutex
	byRef     map[string]map[*Stream]struct{}
	byKey     map[string]map[*Stream]struct{} // by key id
	bySession map[string]map[*Stream]struct{} // by "org/id"
	byClient  map[string]int                  // open streams by key id and client address
	n         int
}

// Stream is one open event stream. Its owner (the HTTP handler) waits on
// Signal and then asks Next what to do.
type Stream struct {
	ref     string
	session string
	keyID   string
	client  string
	digest  apikey.Digest

	// signal carries at most one pending signal, and pending says what it
	// is for: a burst of changes is one refetch, and one channel (not one
	// per kind of signal) is what an idle stream holds.
	signal chan struct{}

	mu         sync.Mutex
	pending    Pending
	latest     Position
	validUntil time.Time
}

// Pending is what a stream's owner is to do after a Signal.
type Pending struct {
	// Ended: the hub ended the stream (its key no longer authenticates,
	// or the instance stops); the owner returns.
	Ended bool
	// Refetch: the flag set or the session changed to Latest, which the
	// client has not seen; the owner sends Latest's event.
	Refetch bool
	// Beat: the owner sends a heartbeat (unless it sends an event).
	Beat bool
	// Latest is the newest position the stream was told of.
	Latest Position
}

// Position is what a stream's client has seen: the flag set's version
// and, for a stream of a testing session, the session's revision. Each
// only grows.
type Position struct {
	Version, Revision int64
}

// ID is the position as an event id: "<version>", or
// "<version>.<revision>" with a session.
func (p Position) ID(session bool) string {
	if !session {
		return strconv.FormatInt(p.Version, 10)
	}
	return strconv.FormatInt(p.Version, 10) + "." + strconv.FormatInt(p.Revision, 10)
}

// Event is the refetchEvaluation event for position p, as sent.
func (p Position) Event(session bool) []byte {
	b := make([]byte, 0, 96)
	b = append(b, "id: "...)
	b = append(b, p.ID(session)...)
	b = append(b, "\ndata: {\"type\":\"refetchEvaluation\",\"etag\":"...)
	b = strconv.AppendQuote(b, ETag(p.Version))
	return append(b, "}\n\n"...)
}

// ParsePosition reads an event id (Last-Event-ID); ok false for anything
// else.
func ParsePosition(s string) (Position, bool) {
	v, r, hasRev := strings.Cut(strings.TrimSpace(s), ".")
	var p Position
	var err error
	if p.Version, err = strconv.ParseInt(v, 10, 64); err != nil || p.Version < 0 {
		return Position{}, false
	}
	if hasRev {
		if p.Revision, err = strconv.ParseInt(r, 10, 64); err != nil || p.Revision < 0 {
			return Position{}, false
		}
	}
	return p, true
}

// NewHub returns a hub; call Run to start its sweeps.
func NewHub(cfg HubConfig) *Hub {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Hub{cfg: cfg, byRef: map[string]map[*Stream]struct{}{}, byKey: map[string]map[*Stream]struct{}{},
		bySession: map[string]map[*Stream]struct{}{}, byClient: map[string]int{}}
}

// Open registers a stream of key keyID from client address client,
// authenticated by the secret with digest d, watching ref and, if not "",
// testing session ("org/id"), whose client has seen seen; the secret
// authenticates until validUntil (zero: no limit). It returns nil when the
// key holds MaxStreamsPerClient streams from that address already.
func (h *Hub) Open(ref, session, keyID, client string, d apikey.Digest, seen Position, validUntil time.Time) *Stream {
	s := &Stream{ref: ref, session: session, keyID: keyID, client: keyID + "@" + client, digest: d, latest: seen, validUntil: validUntil,
		signal: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.byClient[s.client] >= MaxStreamsPerClient {
		h.mu.Unlock()
		return nil
	}
	h.byClient[s.client]++
	add(h.byRef, ref, s)
	add(h.byKey, keyID, s)
	if session != "" {
		add(h.bySession, session, s)
	}
	h.n++
	h.mu.Unlock()
	return s
}

func add[K comparable](m map[K]map[*Stream]struct{}, k K, s *Stream) {
	set := m[k]
	if set == nil {
		set = map[*Stream]struct{}{}
		m[k] = set
	}
	set[s] = struct{}{}
}

func remove[K comparable](m map[K]map[*Stream]struct{}, k K, s *Stream) {
	if set := m[k]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// Close unregisters s (its handler returned).
func (h *Hub) Close(s *Stream) {
	h.mu.Lock()
	if _, ok := h.byRef[s.ref][s]; ok {
		remove(h.byRef, s.ref, s)
		remove(h.byKey, s.keyID, s)
		if h.byClient[s.client]--; h.byClient[s.client] <= 0 {
			delete(h.byClient, s.client)
		}
		if s.session != "" {
			remove(h.bySession, s.session, s)
		}
		h.n--
	}
	h.mu.Unlock()
	s.end()
}

// Len is the number of open streams.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Signal is signalled when the stream has something to do: Next says
// what. A signal may find nothing to do (Next returns the zero Pending
// but for Latest).
func (s *Stream) Signal() <-chan struct{} { return s.signal }

// Next returns what is pending and clears it.
func (s *Stream) Next() Pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending
	p.Latest = s.latest
	s.pending = Pending{Ended: p.Ended} // an end stays
	return p
}

// Latest is the newest position the stream was told of.
func (s *Stream) Latest() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// HasSession reports whether the stream watches a testing session.
func (s *Stream) HasSession() bool { return s.session != "" }

// Notify tells s of p, waking it if either part is newer than what it
// knows.
func (s *Stream) Notify(p Position) {
	s.mu.Lock()
	newer := p.Version > s.latest.Version || p.Revision > s.latest.Revision
	s.latest.Version = max(s.latest.Version, p.Version)
	s.latest.Revision = max(s.latest.Revision, p.Revision)
	if newer {
		s.pending.Refetch = true
	}
	s.mu.Unlock()
	if newer {
		s.wake()
	}
}

// beat asks for a heartbeat. The caller holds s.mu.
func (s *Stream) beat() {
	s.pending.Beat = true
	s.wake()
}

func (s *Stream) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *Stream) end() {
	s.mu.Lock()
	s.pending.Ended = true
	s.mu.Unlock()
	s.wake()
}

// streamsOf returns a copy of the streams of a set of m.
func streamsOf[K comparable](h *Hub, m map[K]map[*Stream]struct{}, k K) []*Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Stream, 0, len(m[k]))
	for s := range m[k] {
		out = append(out, s)
	}
	return out
}

// FlagsChanged tells the streams watching ref of its new version. The
// change feed calls it, after the instance dropped its compiled set, so
// the version read here is the new one (read once for every stream).
func (h *Hub) FlagsChanged(ref string) {
	ss := streamsOf(h, h.byRef, ref)
	if len(ss) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
		defer cancel()
		v, err := h.cfg.Version(ctx, ref)
		for _, s := range ss {
			if err != nil {
				// The set cannot be read: a refetch will say so, or
				// find it.
				v = s.Latest().Version + 1
			}
			s.Notify(Position{Version: v})
		}
	}()
}

// SessionChanged tells the streams of a testing session ("org/id") of its
// new revision; a session that ended gets one more, so that its streams
// refetch (and learn that it ended).
func (h *Hub) SessionChanged(session string) {
	ss := streamsOf(h, h.bySession, session)
	if len(ss) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
		defer cancel()
		rev, ok, err := int64(0), false, error(nil)
		if h.cfg.Revision != nil {
			rev, ok, err = h.cfg.Revision(ctx, session)
		}
		for _, s := range ss {
			r := rev
			if err != nil || !ok {
				r = s.Latest().Revision + 1
			}
			s.Notify(Position{Revision: r})
		}
	}()
}

// KeyChanged re-checks the streams of a key the change feed names (a
// revocation, rotation, update): those whose secret no longer
// authenticates end, on every instance, as soon as the event arrives.
func (h *Hub) KeyChanged(keyID string) {
	ss := streamsOf(h, h.byKey, keyID)
	if len(ss) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
		defer cancel()
		// One lookup per secret: after a rotation with a grace period a
		// key's streams may hold either.
		checked := map[apikey.Digest]bool{}
		for _, s := range ss {
			if checked[s.digest] {
				continue
			}
			checked[s.digest] = true
			until, ok, err := h.cfg.Validate(ctx, s.digest)
			if err != nil {
				// Unknown: keep them; the next event or the sweep decides.
				continue
			}
			for _, t := range ss {
				if t.digest != s.digest {
					continue
				}
				if !ok {
					h.Close(t)
					continue
				}
				t.mu.Lock()
				t.validUntil = until
				t.mu.Unlock()
			}
		}
	}()
}

// Resync re-checks every stream's key and tells every stream to refetch:
// the feed may have missed events.
func (h *Hub) Resync() {
	h.mu.Lock()
	refs := make([]string, 0, len(h.byRef))
	for ref := range h.byRef {
		refs = append(refs, ref)
	}
	ids := make([]string, 0, len(h.byKey))
	for id := range h.byKey {
		ids = append(ids, id)
	}
	sessions := make([]string, 0, len(h.bySession))
	for id := range h.bySession {
		sessions = append(sessions, id)
	}
	h.mu.Unlock()
	for _, ref := range refs {
		h.FlagsChanged(ref)
	}
	for _, id := range sessions {
		h.SessionChanged(id)
	}
	for _, id := range ids {
		h.KeyChanged(id)
	}
}

// CloseAll ends every stream: the instance stops.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	var all []*Stream
	for _, set := range h.byRef {
		for s := range set {
			all = append(all, s)
		}
	}
	h.mu.Unlock()
	for _, s := range all {
		h.Close(s)
	}
}

// Run sweeps until ctx ends: every second it ends the streams whose key
// expired, and every Heartbeat it signals each stream to send one.
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastBeat := h.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			h.CloseAll()
			return
		case <-tick.C:
		}
		now := h.cfg.Now()
		beat := now.Sub(lastBeat) >= Heartbeat
		if beat {
			lastBeat = now
		}
		var expired []*Stream
		h.mu.Lock()
		for _, set := range h.byRef {
			for s := range set {
				s.mu.Lock()
				gone := !s.validUntil.IsZero() && !now.Before(s.validUntil)
				if !gone && beat {
					s.beat()
				}
				s.mu.Unlock()
				if gone {
					expired = append(expired, s)
				}
			}
		}
		h.mu.Unlock()
		for _, s := range expired {
			h.Close(s)
		}
	}
}

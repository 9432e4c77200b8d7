package store

import "sync"

// queueLimit bounds the events waiting for one slow subscriber. Beyond it the
// queue is replaced by a single Resync: the subscriber loses the backlog but
// knows it did, and memory stays bounded whatever a stuck callback does.
const queueLimit = 10000

// feed fans events out to in-process subscribers. Each subscriber has its own
// goroutine and queue, so a slow callback never blocks the publisher (a
// committing transaction or the Redis receive loop) nor other subscribers.
type feed struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	wg     sync.WaitGroup
}

type subscriber struct {
	fn     func(Event)
	mu     sync.Mutex
	cond   sync.Cond
	queue  []Event
	closed bool
}

// subscribe registers fn. It returns nil and a no-op if the feed is closed.
func (f *feed) subscribe(fn func(Event)) (*subscriber, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, func() {}
	}
	s := &subscriber{fn: fn}
	s.cond.L = &s.mu
	if f.subs == nil {
		f.subs = make(map[*subscriber]struct{})
	}
	f.subs[s] = struct{}{}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		s.run()
	}()
	var once sync.Once
	return s, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, s)
			f.mu.Unlock()
			s.close()
		})
	}
}

// send queues ev for every current subscriber.
func (f *feed) send(ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		s.push(ev)
	}
}

// close stops every subscriber and waits for their goroutines, so that a
// closed store leaves nothing running. It must not be called from inside a
// subscriber's callback.
func (f *feed) close() {
	f.mu.Lock()
	f.closed = true
	subs := f.subs
	f.subs = nil
	f.mu.Unlock()
	for s := range subs {
		s.close()
	}
	f.wg.Wait()
}

func (s *subscriber) push(ev Event) {
	// Each subscriber gets its own copy of the payload, so that one callback
	// mutating it cannot corrupt what another sees.
	if ev.Payload != nil {
		ev.Payload = append([]byte(nil), ev.Payload...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.queue) >= queueLimit {
		s.queue = append(s.queue[:0:0], Event{Resync: true})
	}
	s.queue = append(s.queue, ev)
	s.cond.Signal()
}

func (s *subscriber) close() {
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	s.cond.Signal()
}

func (s *subscriber) run() {
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		// Checked under the lock before every call: once unsubscribe returns,
		// no new callback starts.
		if s.closed {
			s.mu.Unlock()
			return
		}
		ev := s.queue[0]
		s.queue[0] = Event{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.fn(ev)
	}
}

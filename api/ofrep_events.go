package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/streams"
)

// errTooManyStreams refuses a stream past streams.MaxStreamsPerClient.
var errTooManyStreams = apierror.New(http.StatusTooManyRequests, apierror.CodeRateLimited,
	fmt.Sprintf("This key has %d event streams open from this address already; close one first", streams.MaxStreamsPerClient))

// preamble opens every stream: a comment, and the reconnection delay.
var preamble = fmt.Appendf(nil, ": flagbridge event stream\nretry: %d\n\n", streams.Retry.Milliseconds())

// heartbeat is a stream's idle comment line.
var heartbeat = []byte(": heartbeat\n\n")

// errNoStreams answers a stream when the instance serves none.
var errNoStreams = apierror.New(http.StatusNotFound, apierror.CodeNotFound, "This server serves no event streams")

// eventStream is one entry of a bulk answer's eventStreams (OFREP 0.3.0).
type eventStream struct {
	Type               string `json:"type"`
	URL                string `json:"url"`
	InactivityDelaySec int    `json:"inactivityDelaySec"`
}

// eventStreams is the JSON of a bulk answer's eventStreams for the caller,
// nil when it gets none: streams are off, or the token secret cannot be
// read (the provider then polls, as it would without streams).
func (h *Handler) eventStreams(r *http.Request, a *edge.Admission, ev *evaluation.Evaluation) []byte {
	if h.tokens == nil || a.Entry == nil {
		return nil
	}
	ref := ev.Set.Ref
	claims := streams.Claims{Digest: a.Digest, Project: ref.Project, Environment: ref.Environment, Version: ev.Set.Version}
	if ev.Session != nil {
		claims.Session, claims.Revision = ev.Session.ID, ev.Session.Revision
	}
	token, err := h.tokens.Mint(r.Context(), claims)
	if err != nil {
		h.log.Warn("no event stream for a bulk evaluation", zap.Error(err))
		return nil
	}
	u := "https://" + r.Host + routes.ByName(routes.OFREPEvents).Path() + "?" + edge.StreamTokenParam + "=" + token
	b, _ := json.Marshal([]eventStream{{Type: "sse", URL: u, InactivityDelaySec: int(streams.InactivityDelay.Seconds())}})
	return b
}

// OFREPEvents serves GET /ofrep/v1/events: the event stream a bulk
// answer named. It sends a refetchEvaluation event whenever the flag set
// the token names changes, or the testing session it names (id: the new
// version, with the session's revision after a dot, so that Last-Event-ID
// resumes without a gap; etag: the version, which the refetch sends back
// as flagConfigEtag), one at once if the set changed since the version the
// client last saw, a comment line as heartbeat, and ends when the key no
// longer authenticates or the client leaves.
func (h *Handler) OFREPEvents(w http.ResponseWriter, r *http.Request, a *edge.Admission) error {
	if h.hub == nil || a.Stream == nil {
		return errNoStreams
	}
	c := a.Stream
	// The key must still reach what its token names, and it (and the
	// session) must exist; refusals are the bulk evaluation's.
	ev, err := h.eval.Begin(r.Context(), a.Principal, c.Project, c.Environment, c.Session)
	if err != nil {
		h.ofrepFail(w, r, "", err)
		return nil
	}
	seen := streams.Position{Version: c.Version, Revision: c.Revision}
	if p, ok := streams.ParsePosition(r.Header.Get("Last-Event-ID")); ok {
		seen = p
	}
	now := streams.Position{Version: ev.Set.Version}
	var session string
	if ev.Session != nil {
		session, now.Revision = flags.SessionEvent(ev.Session.OrgID, ev.Session.ID), ev.Session.Revision
	}
	s := h.hub.Open(ev.Set.Ref.String(), session, a.Entry.Key.ID, edge.ClientKey(a.ClientIP), a.Digest, seen, a.Entry.ValidUntil())
	if s == nil {
		return errTooManyStreams
	}
	defer h.hub.Close(s)
	// A change that arrived between the answer that minted the token (or
	// the last event) and now.
	s.Notify(now)

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // proxies that buffer would hold the events
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := w.Write(preamble); err != nil {
		return nil
	}
	if rc.Flush() != nil {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.Signal():
		}
		var err error
		switch p := s.Next(); {
		case p.Ended:
			return nil
		case p.Refetch:
			_, err = w.Write(p.Latest.Event(s.HasSession()))
		case p.Beat:
			_, err = w.Write(heartbeat)
		default:
			continue
		}
		if err != nil || rc.Flush() != nil {
			return nil
		}
	}
}

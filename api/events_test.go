package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/api"
	"github.com/flagbridge/flagbridge/streams"
)

// eventClient reads an event stream over a real server, line by line.
type eventClient struct {
	t      *testing.T
	resp   *http.Response
	lines  chan string
	cancel context.CancelFunc
}

// streamURL is the event stream a bulk answer names, on srv.
func streamURL(t *testing.T, srv *httptest.Server, bulk response) string {
	t.Helper()
	var got struct {
		EventStreams []struct{ URL string } `json:"eventStreams"`
	}
	if err := json.Unmarshal([]byte(bulk.body), &got); err != nil || len(got.EventStreams) != 1 {
		t.Fatalf("bulk answer without one event stream: %v %s", err, bulk.body)
	}
	u, err := url.Parse(got.EventStreams[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(srv.URL)
	u.Scheme, u.Host = base.Scheme, base.Host
	return u.String()
}

// connect opens a stream; header pairs are added to the request.
func connect(t *testing.T, srv *httptest.Server, u string, header ...string) *eventClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &eventClient{t: t, resp: resp, lines: make(chan string, 64), cancel: cancel}
	t.Cleanup(c.close)
	if resp.StatusCode != 200 {
		return c
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

func (c *eventClient) close() { c.cancel(); c.resp.Body.Close() }

// event waits up to d for the next event and returns its id and data; ok
// false if the stream ended or nothing came.
func (c *eventClient) event(d time.Duration) (id, data string, ok bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case line, open := <-c.lines:
			if !open {
				return "", "", false
			}
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && data != "":
				return id, data, true
			}
		case <-deadline:
			return "", "", false
		}
	}
}

// ended reports whether the stream ends within d.
func (c *eventClient) ended(d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case _, open := <-c.lines:
			if !open {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func TestEventStream(t *testing.T) {
	s := newEvalServer(t)
	srv := httptest.NewTLSServer(s.chain)
	t.Cleanup(srv.Close)
	live := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	u := streamURL(t, srv, s.ofrepBulk(t, live, `{}`))
	if strings.Contains(u, live.Secret) {
		t.Fatal("the stream URL holds the key")
	}

	c := connect(t, srv, u)
	if c.resp.StatusCode != 200 || c.resp.Header.Get("Content-Type") != "text/event-stream" ||
		c.resp.Header.Get("Cache-Control") != "no-store" || c.resp.Header.Get("X-RateLimit-Limit") == "" {
		t.Fatalf("connect = %d %v", c.resp.StatusCode, c.resp.Header)
	}
	// Nothing changed since the answer that minted the token: no event.
	if id, data, ok := c.event(300 * time.Millisecond); ok {
		t.Fatalf("an event with nothing changed: %s %s", id, data)
	}

	// A flag write reaches the stream, named by its version.
	start := time.Now()
	v := s.putFlags(t, "alpha", "production", stagingDoc)
	id, data, ok := c.event(time.Second)
	if !ok || id != itoa(v) || data != `{"type":"refetchEvaluation","etag":"\"`+itoa(v)+`\""}` {
		t.Fatalf("after a write: %q %q %v", id, data, ok)
	}
	t.Logf("write to event: %v", time.Since(start))
	// The refetch with the event's etag is answered from that version.
	refetch := s.ofrep(t, live, "POST", "/ofrep/v1/evaluate/flags?flagConfigEtag="+url.QueryEscape(`"`+itoa(v)+`"`), `{}`)
	if refetch.code != 200 || !strings.Contains(refetch.body, `"metadata":{"version":`+itoa(v)+`}`) {
		t.Fatalf("refetch = %d %s", refetch.code, refetch.body)
	}

	// Resuming with Last-Event-ID after a change made while away: the
	// change is sent at once.
	c.close()
	v2 := s.putFlags(t, "alpha", "production", evalDoc)
	back := connect(t, srv, u, "Last-Event-ID", itoa(v))
	if id, _, ok := back.event(time.Second); !ok || id != itoa(v2) {
		t.Fatalf("resumed from %d after %d was written: %q %v", v, v2, id, ok)
	}
	// Another environment's writes do not reach it.
	s.putFlags(t, "alpha", "staging", stagingDoc)
	if id, data, ok := back.event(300 * time.Millisecond); ok {
		t.Fatalf("another environment's write reached the stream: %s %s", id, data)
	}

	// Revoking the key ends its streams within a second.
	if _, err := s.svc.Keys.RevokeKey(context.Background(), s.root.P, live.ID); err != nil {
		t.Fatal(err)
	}
	if !back.ended(time.Second) {
		t.Fatal("the revoked key's stream is still open after 1 s")
	}
	// And its token opens no more.
	if again := connect(t, srv, u); again.resp.StatusCode != 401 {
		t.Fatalf("reconnecting with a revoked key's token = %d", again.resp.StatusCode)
	}
}

func TestEventStreamRefusesBadTokens(t *testing.T) {
	s := newEvalServer(t)
	srv := httptest.NewTLSServer(s.chain)
	t.Cleanup(srv.Close)
	u := streamURL(t, srv, s.ofrepBulk(t, s.live, `{}`))
	parsed, _ := url.Parse(u)
	token := parsed.Query().Get("token")
	body, sig, _ := strings.Cut(token, ".")
	flipped := []byte(body)
	flipped[len(flipped)-2] ^= 1
	for name, tok := range map[string]string{
		"none":     "",
		"garbage":  "abc",
		"tampered": string(flipped) + "." + sig,
		"unsigned": body + ".",
		"the key":  s.live.Secret,
	} {
		parsed.RawQuery = url.Values{"token": {tok}}.Encode()
		c := connect(t, srv, parsed.String())
		var b strings.Builder
		sc := bufio.NewScanner(c.resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		if c.resp.StatusCode != 401 || b.String() != errorBody("UNAUTHORIZED", "Invalid or expired stream token; evaluate again for a new event stream URL") {
			t.Errorf("%s token: %d %s", name, c.resp.StatusCode, b.String())
		}
	}
}

// A client key's stream from a page of an allowed origin names it; from
// another origin it is refused.
func TestEventStreamCORS(t *testing.T) {
	s := newEvalServer(t)
	srv := httptest.NewTLSServer(s.chain)
	t.Cleanup(srv.Close)
	s.putFlags(t, "alpha", "production", clientDoc)
	c := clientKey(t, s, pageOrigin)
	u := streamURL(t, srv, s.sendFrom(c, pageOrigin, "", "POST", "/ofrep/v1/evaluate/flags", `{}`))
	ok := connect(t, srv, u, "Origin", pageOrigin)
	if ok.resp.StatusCode != 200 || ok.resp.Header.Get("Access-Control-Allow-Origin") != pageOrigin {
		t.Fatalf("stream from the page = %d %v", ok.resp.StatusCode, ok.resp.Header)
	}
	other := connect(t, srv, u, "Origin", "https://evil.example")
	if other.resp.StatusCode != 403 || other.resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("stream from another origin = %d %v", other.resp.StatusCode, other.resp.Header)
	}
	// The preflight-free GET of EventSource needs none, but a preflight of
	// the route is answered like the others'.
	pre := s.sendFrom(nil, pageOrigin, "", "OPTIONS", "/ofrep/v1/events", "", "Access-Control-Request-Method", "GET")
	if pre.code != 204 || pre.header.Get("Access-Control-Allow-Methods") != "GET" {
		t.Fatalf("preflight = %d %v", pre.code, pre.header)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// A stream of a bulk evaluation that named a testing session also gets
// the session's changes: CI sees its own overrides pushed, and the end of
// its session.
func TestEventStreamOfATestingSession(t *testing.T) {
	s := newEvalServer(t)
	srv := httptest.NewTLSServer(s.chain)
	t.Cleanup(srv.Close)
	id := s.session(t, s.test, "")
	u := streamURL(t, srv, s.ofrepBulk(t, s.test, `{}`, api.HeaderSession, id))
	c := connect(t, srv, u)
	if c.resp.StatusCode != 200 {
		t.Fatalf("connect = %d", c.resp.StatusCode)
	}
	if res := s.override(t, s.test, id, `{"theme":"dark"}`); res.code != 200 {
		t.Fatalf("overrides = %d %s", res.code, res.body)
	}
	eid, data, ok := c.event(time.Second)
	if !ok || !strings.HasSuffix(eid, ".1") || !strings.Contains(data, "refetchEvaluation") {
		t.Fatalf("after the overrides: %q %q %v", eid, data, ok)
	}
	// Another session's changes do not reach it.
	other := s.session(t, s.test, "")
	s.override(t, s.test, other, `{"theme":"dark"}`)
	if eid, _, ok := c.event(300 * time.Millisecond); ok {
		t.Fatalf("another session's change reached the stream: %s", eid)
	}
	// Ending the session: one more refetch, which then learns it ended.
	if res := s.native(t, s.test, "DELETE", "/v1/testing/sessions/"+id, ""); res.code != 204 {
		t.Fatalf("delete = %d %s", res.code, res.body)
	}
	if eid2, _, ok := c.event(time.Second); !ok || eid2 == eid {
		t.Fatalf("after the session ended: %q %v", eid2, ok)
	}
	// A reconnection now is refused as the bulk evaluation would be.
	if again := connect(t, srv, u); again.resp.StatusCode != 400 {
		t.Fatalf("reconnecting to an ended session's stream = %d", again.resp.StatusCode)
	}
}

// A key holds at most streams.MaxStreamsPerClient streams from one client
// address: its rate limit alone would let connections pile up.
func TestEventStreamsPerClientBound(t *testing.T) {
	s := newEvalServer(t)
	// Over HTTP/2, as browsers connect: a thousand streams on a few
	// connections.
	srv := httptest.NewUnstartedServer(s.chain)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u := streamURL(t, srv, s.ofrepBulk(t, s.live, `{}`))
	var open []*eventClient
	for range streams.MaxStreamsPerClient {
		c := connect(t, srv, u)
		if c.resp.StatusCode != 200 {
			t.Fatalf("stream %d = %d", len(open), c.resp.StatusCode)
		}
		open = append(open, c)
	}
	over := connect(t, srv, u)
	b, _ := io.ReadAll(over.resp.Body)
	if over.resp.StatusCode != 429 || string(b) != errorBody("RATE_LIMITED", "This key has 1000 event streams open from this address already; close one first") {
		t.Fatalf("one more = %d %s", over.resp.StatusCode, b)
	}
	// Closing one frees its place (once the server sees it go).
	open[0].close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c := connect(t, srv, u)
		if c.resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing one: %d", c.resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

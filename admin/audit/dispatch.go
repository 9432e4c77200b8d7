package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// Dispatcher sends an instance's share of the pending deliveries: every
// instance runs one, each claims a delivery through the store before
// sending it, so that one change reaches one endpoint once however many
// instances there are. A claim lasts claimFor; an instance that dies
// mid-send leaves the delivery to another after it (with the same
// webhook-id, by which a receiver tells a repeat).
type Dispatcher struct {
	svc      *Service
	client   *http.Client
	instance string
	log      *zap.Logger
	wake     chan struct{}

	mu       sync.Mutex
	inFlight map[string]bool
}

// Dispatch tuning.
const (
	// claimFor is how long a claim keeps other instances off a delivery:
	// longer than an attempt can take.
	claimFor = 30 * time.Second
	// attemptTimeout bounds one attempt, connection and answer.
	attemptTimeout = 10 * time.Second
	// pollEvery is how often pending deliveries are looked for without a
	// change-feed nudge (retries fall due this way).
	pollEvery = time.Second
	// maxConcurrent bounds an instance's attempts in flight.
	maxConcurrent = 16
	// maxBackoff caps the wait between attempts.
	maxBackoff = time.Hour
)

// Backoff is the wait after the n-th failed attempt (n from 1): 1 s,
// 2 s, 4 s... doubling up to an hour, so that an endpoint down for a
// minute gets its deliveries a few seconds after it is back, and one down
// for a day is tried every hour until RetryFor.
func Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 13 {
		return maxBackoff
	}
	return min(time.Duration(1<<(n-1))*time.Second, maxBackoff)
}

// NewDispatcher returns the dispatcher of an instance over svc's store.
func NewDispatcher(svc *Service, log *zap.Logger) *Dispatcher {
	if log == nil {
		log = zap.NewNop()
	}
	id, _ := apikey.NewID("inst")
	d := &Dispatcher{svc: svc, instance: id, log: log, wake: make(chan struct{}, 1), inFlight: map[string]bool{}}
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: d.control}
	d.client = &http.Client{
		Timeout: attemptTimeout,
		Transport: &http.Transport{
			DialContext: dialer.DialContext, TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true,
		},
		// A redirect is an answer, not a 2xx: following it could lead
		// into the internal network.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d
}

// errNotPublic refuses a connection to an address deliveries may not reach.
var errNotPublic = errors.New("the address is not public (webhook_allow_insecure admits it, for development)")

// control refuses, at connect time (after DNS, so that a name resolving
// to an internal address is caught too), addresses that are not public.
func (d *Dispatcher) control(_, address string, _ syscall.RawConn) error {
	if d.svc.AllowInsecureWebhooks {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !publicIP(ip) {
		return errNotPublic
	}
	return nil
}

// Wake makes the dispatcher look for pending deliveries now (a change
// feed event on WebhookTopic).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	sem := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.wake:
		}
		due, err := d.due(ctx)
		if err != nil {
			d.log.Warn("could not read pending webhook deliveries", zap.Error(err))
			continue
		}
		for _, id := range due {
			d.mu.Lock()
			busy := d.inFlight[id]
			if !busy {
				d.inFlight[id] = true
			}
			d.mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				defer func() { d.mu.Lock(); delete(d.inFlight, id); d.mu.Unlock() }()
				d.attempt(ctx, id)
			}()
		}
	}
}

// due lists the pending deliveries whose time has come.
func (d *Dispatcher) due(ctx context.Context) ([]string, error) {
	now := d.svc.env.Now()
	var out []string
	err := d.svc.env.View(ctx, func(r store.Reader) error {
		items, err := r.List(colPending)
		for _, it := range items {
			var p pendingItem
			if docs.Decode(it, &p) == nil && !now.Before(p.Due) {
				out = append(out, it.ID)
			}
		}
		return err
	})
	return out, err
}

// attempt claims one pending delivery and, if this instance won it,
// sends it and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, pending string) {
	parts := strings.SplitN(pending, "/", 3)
	if len(parts) != 3 {
		return
	}
	org, hook, id := parts[0], parts[1], parts[2]
	var del Delivery
	var h storedWebhook
	claimed := false
	err := d.svc.env.Update(ctx, func(tx store.Writer) error {
		claimed = false
		now := d.svc.env.Now().UTC()
		found, err := docs.Get(tx, colDeliveries(org, hook), id, &del)
		if err != nil {
			return err
		}
		hfound, err := docs.Get(tx, colWebhooks(org), hook, &h)
		if err != nil {
			return err
		}
		if !found || !hfound || del.Status != DeliveryPending {
			// Deleted, or done: nothing is pending any more.
			return tx.Delete(colPending, pending)
		}
		if del.NextAttemptAt != nil && now.Before(*del.NextAttemptAt) {
			return nil // another instance rescheduled it
		}
		if del.ClaimedUntil != nil && now.Before(*del.ClaimedUntil) {
			return nil // another instance is sending it
		}
		until := now.Add(claimFor)
		del.ClaimedBy, del.ClaimedUntil = d.instance, &until
		claimed = true
		return docs.Put(tx, colDeliveries(org, hook), id, del)
	})
	if err != nil || !claimed {
		if err != nil {
			d.log.Warn("could not claim a webhook delivery", zap.String("delivery", id), zap.Error(err))
		}
		return
	}
	at := d.svc.env.Now().UTC()
	status, sendErr := d.send(ctx, &h, &del, at)
	took := d.svc.env.Now().Sub(at)
	err = d.svc.env.Update(context.WithoutCancel(ctx), func(tx store.Writer) error {
		var cur Delivery
		found, err := docs.Get(tx, colDeliveries(org, hook), id, &cur)
		if err != nil || !found {
			return err
		}
		if cur.ClaimedBy != d.instance {
			return nil // claimed by another after ours lapsed: theirs stands
		}
		a := Attempt{At: at, Status: status, DurationMS: took.Milliseconds()}
		if sendErr != nil {
			a.Error = sendErr.Error()
		}
		cur.Attempts = append(cur.Attempts, a)
		if len(cur.Attempts) > maxAttemptsKept {
			cur.Attempts = cur.Attempts[len(cur.Attempts)-maxAttemptsKept:]
		}
		cur.ClaimedBy, cur.ClaimedUntil = "", nil
		now := d.svc.env.Now().UTC()
		failures := 0
		for _, x := range cur.Attempts {
			if x.Status < 200 || x.Status > 299 {
				failures++
			}
		}
		switch {
		case sendErr == nil && status >= 200 && status <= 299:
			cur.Status, cur.NextAttemptAt = DeliveryDelivered, nil
		case !now.Before(cur.RetryUntil):
			cur.Status, cur.NextAttemptAt = DeliveryFailed, nil
		default:
			next := now.Add(Backoff(failures))
			cur.NextAttemptAt = &next
			if err := docs.Put(tx, colDeliveries(org, hook), id, cur); err != nil {
				return err
			}
			return docs.Put(tx, colPending, pending, pendingItem{Due: next})
		}
		if err := docs.Put(tx, colDeliveries(org, hook), id, cur); err != nil {
			return err
		}
		return tx.Delete(colPending, pending)
	})
	if err != nil {
		d.log.Warn("could not record a webhook delivery's attempt", zap.String("delivery", id), zap.Error(err))
	}
}

// send posts a delivery, signed as Standard Webhooks specifies, and
// returns the answer's status.
func (d *Dispatcher) send(ctx context.Context, h *storedWebhook, del *Delivery, at time.Time) (int, error) {
	ts := strconv.FormatInt(at.Unix(), 10)
	sig, err := Sign(h.Secret, del.ID, at, del.Payload)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(del.Payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "FlagBridge-Webhooks/1")
	req.Header.Set(standardwebhooks.HeaderWebhookID, del.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, ts)
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("posting to the endpoint: %w", unwrapURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// unwrapURLError drops url.Error's quoting of the URL, which the log of
// the delivery names already.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// Sign is a delivery's webhook-signature for a timestamp, as Standard
// Webhooks defines it ("v1," and the base64 HMAC-SHA256 of
// "<id>.<timestamp>.<body>" keyed by the secret), by the specification's
// own library.
func Sign(secret, id string, at time.Time, body []byte) (string, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return wh.Sign(id, at, body)
}

package audit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Webhooks: a project's endpoints that receive its audit entries as
// signed deliveries (Standard Webhooks). A delivery is written with the
// entry, in the change's transaction (an outbox), so that a change and its
// deliveries commit together; instances then claim each through the store
// and send it once.

// Webhook is an endpoint of a project.
type Webhook struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	URL     string `json:"url"`
	// Events are action names, a noun and ".*", or "*" for every action.
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// storedWebhook is a webhook with its signing secret, as stored.
type storedWebhook struct {
	Webhook
	Secret string `json:"secret"`
}

// CreatedWebhook is a new webhook and its signing secret, shown once.
type CreatedWebhook struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookInput is the body of POST /v1/projects/{p}/webhooks.
type WebhookInput struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// MaxWebhooksPerProject bounds a project's webhooks: each is a delivery
// written with every change of the project.
const MaxWebhooksPerProject = 20

// secretPrefix starts a signing secret, as Standard Webhooks' libraries
// expect: the rest is the HMAC key, base64.
const secretPrefix = "whsec_"

// Deliveries: a message of an entry to one webhook, and its attempts.
type Delivery struct {
	ID        string    `json:"id"`
	Webhook   string    `json:"webhook"`
	Event     Action    `json:"event"`
	Entry     string    `json:"entry"`
	CreatedAt time.Time `json:"created_at"`
	// RetryUntil is when a delivery without a 2xx answer fails: RetryFor
	// after it was made, or replayed.
	RetryUntil time.Time `json:"retry_until"`
	// Status is "pending" (to be sent, or sent again), "delivered" or
	// "failed" (no 2xx by RetryUntil).
	Status        string     `json:"status"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	Attempts      []Attempt  `json:"attempts"`
	// Payload is the body, the same on every attempt.
	Payload json.RawMessage `json:"payload"`

	// The claim of the instance sending it: no other sends it until
	// ClaimedUntil.
	ClaimedBy    string     `json:"claimed_by,omitempty"`
	ClaimedUntil *time.Time `json:"claimed_until,omitempty"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	At time.Time `json:"at"`
	// Status is the answer's status, 0 if there was none (Error says why).
	Status     int    `json:"status"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// RetryFor is how long a delivery is retried before it is failed.
const RetryFor = 24 * time.Hour

// maxAttemptsKept bounds a delivery's attempt log.
const maxAttemptsKept = 20

// WebhookTopic is published with an enqueued delivery, so that every
// instance's dispatcher looks for work at once.
const WebhookTopic = "webhooks"

// pendingItem is a delivery waiting in colPending.
type pendingItem struct {
	Due time.Time `json:"due"`
}

func pendingID(org, webhook, delivery string) string { return org + "/" + webhook + "/" + delivery }

// eventMatches reports whether a webhook subscribed to events wants a.
func eventMatches(events []string, a Action) bool {
	return slices.ContainsFunc(events, func(e string) bool { return matchesAction(e, a) })
}

// payload is a delivery's body: the event, the entry, and for a flag
// change the set's new version.
type payload struct {
	Type      Action        `json:"type"`
	Timestamp time.Time     `json:"timestamp"`
	Data      payloadDetail `json:"data"`
}

type payloadDetail struct {
	Entry   *Entry       `json:"entry"`
	FlagSet *flagSetNote `json:"flag_set,omitempty"`
}

type flagSetNote struct {
	Project     string `json:"project"`
	Environment string `json:"environment"`
	Version     int64  `json:"version"`
}

// enqueue writes, inside the entry's transaction, a delivery of e to every
// webhook of its project that subscribed to its action.
func enqueue(tx store.Writer, e *Entry) error {
	// Changes to webhooks themselves are not delivered: a replay would
	// otherwise beget deliveries.
	if e.Project == "" || strings.HasPrefix(string(e.Action), "webhook.") {
		return nil
	}
	hooks, err := docs.List[storedWebhook](tx, colWebhooks(e.Organization))
	if err != nil {
		return err
	}
	queued := false
	for _, h := range hooks {
		if h.Project != e.Project || !eventMatches(h.Events, e.Action) {
			continue
		}
		p := payload{Type: e.Action, Timestamp: e.Time, Data: payloadDetail{Entry: e}}
		if v := e.FlagSet; v != nil {
			p.Data.FlagSet = &flagSetNote{Project: e.Project, Environment: e.Environment, Version: v.After}
		}
		body, err := json.Marshal(p)
		if err != nil {
			return err
		}
		id, err := apikey.NewID("msg")
		if err != nil {
			return err
		}
		due := e.Time
		d := Delivery{ID: id, Webhook: h.ID, Event: e.Action, Entry: e.ID, CreatedAt: e.Time, RetryUntil: e.Time.Add(RetryFor),
			Status: DeliveryPending, NextAttemptAt: &due, Attempts: []Attempt{}, Payload: body}
		if err := docs.Put(tx, colDeliveries(e.Organization, h.ID), id, d); err != nil {
			return err
		}
		if err := docs.Put(tx, colPending, pendingID(e.Organization, h.ID, id), pendingItem{Due: due}); err != nil {
			return err
		}
		queued = true
	}
	if queued {
		tx.Publish(WebhookTopic, []byte(e.Organization))
	}
	return nil
}

// checkWebhookURL refuses what is not an https URL of a public address,
// unless allowInsecure (development and tests) admits http and private,
// loopback and link-local addresses.
func checkWebhookURL(raw string, allowInsecure bool) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case raw == "":
		return "", apierror.Invalid("url is required: the https URL deliveries are posted to")
	case err != nil || u.Host == "" || u.Opaque != "":
		return "", apierror.Invalid("url: %q is not an absolute URL", raw)
	case u.User != nil:
		return "", apierror.Invalid("url: credentials in the URL would be stored and sent in clear; verify the signature instead")
	case u.Fragment != "":
		return "", apierror.Invalid("url: a fragment is never sent; leave it out")
	case u.Scheme == "http" && !allowInsecure:
		return "", apierror.Invalid("url: deliveries go over https only (webhook_allow_insecure admits http, for development)")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", apierror.Invalid("url: %q is not an http(s) URL", raw)
	case len(raw) > 2048:
		return "", apierror.Invalid("url: at most 2048 characters")
	}
	if !allowInsecure {
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil && !publicAddr(ip) {
			return "", apierror.Invalid("url: %s is not a public address (webhook_allow_insecure admits private and loopback addresses, for development)", host)
		}
		if h := strings.ToLower(host); h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".internal") || strings.HasSuffix(h, ".local") {
			return "", apierror.Invalid("url: %s is not a public host name", host)
		}
	}
	return u.String(), nil
}

// cgnat is the shared address space (RFC 6598), private in practice.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// publicAddr reports whether ip is a public unicast address: deliveries
// never reach the loopback, private, link-local (cloud metadata), shared
// or unspecified addresses of the network FlagBridge runs in.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip) &&
		!(ip.Is4() && ip.As4()[0] == 0) && !ip.IsLoopback() && !ip.IsLinkLocalUnicast()
}

// publicIP is publicAddr for a net.IP.
func publicIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && publicAddr(a)
}

// checkEvents validates a webhook's events: known action names, nouns
// with ".*", or "*".
func checkEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, apierror.Invalid(`events is required: action names such as "flag_set.updated", a noun and .* ("api_key.*"), or "*" for all`)
	}
	var out []string
	for _, e := range events {
		e = strings.TrimSpace(e)
		if e != "*" && !knownAction(e) {
			return nil, apierror.Invalid("events: no event %q; use action names (%s), a noun and .*, or *", e, actionList())
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// managingWebhooks is the need of changing a project's webhooks: a
// principal covering the whole project, with WRITE.
func managingWebhooks(org, project string) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Project(org, project), Action: "manage the webhooks of"}
}

func readingWebhooks(org, project string) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: authz.Project(org, project), Action: "read the webhooks of"}
}

func errNoWebhook(id string) error { return apierror.NotFound("webhook %q not found", id) }

// CreateWebhook adds a webhook to a project; its signing secret is in the
// answer, and nowhere else, ever.
func (s *Service) CreateWebhook(ctx context.Context, p *authz.Principal, project string, in WebhookInput) (*CreatedWebhook, error) {
	if err := authz.Permits(p, managingWebhooks(p.Org(), project)); err != nil {
		return nil, err
	}
	u, err := checkWebhookURL(in.URL, s.AllowInsecureWebhooks)
	if err != nil {
		return nil, err
	}
	events, err := checkEvents(in.Events)
	if err != nil {
		return nil, err
	}
	secret, err := newSecret()
	if err != nil {
		return nil, err
	}
	id, err := apikey.NewID("wh")
	if err != nil {
		return nil, err
	}
	h := storedWebhook{Webhook: Webhook{ID: id, Project: project, URL: u, Events: events, CreatedAt: s.env.Timestamp()}, Secret: secret}
	err = s.env.Update(ctx, func(tx store.Writer) error {
		if err := s.projectExists(tx, p.Org(), project); err != nil {
			return err
		}
		all, err := docs.List[storedWebhook](tx, colWebhooks(p.Org()))
		if err != nil {
			return err
		}
		n := 0
		for _, w := range all {
			if w.Project == project {
				n++
			}
		}
		if n >= MaxWebhooksPerProject {
			return apierror.Conflict("project %q has %d webhooks, the most it may have", project, n)
		}
		if err := docs.Put(tx, colWebhooks(p.Org()), id, h); err != nil {
			return err
		}
		return Record(ctx, tx, p, s.env.Now(), Change{Project: project, Action: WebhookCreated, Target: Target{Type: "webhook", ID: id}})
	})
	if err != nil {
		return nil, err
	}
	return &CreatedWebhook{Webhook: h.Webhook, Secret: secret}, nil
}

// ListWebhooks returns a project's webhooks, without their secrets.
func (s *Service) ListWebhooks(ctx context.Context, p *authz.Principal, project string) ([]Webhook, error) {
	if err := authz.Permits(p, readingWebhooks(p.Org(), project)); err != nil {
		return nil, err
	}
	out := []Webhook{}
	err := s.env.View(ctx, func(r store.Reader) error {
		if err := s.projectExists(r, p.Org(), project); err != nil {
			return err
		}
		all, err := docs.List[storedWebhook](r, colWebhooks(p.Org()))
		for _, w := range all {
			if w.Project == project {
				out = append(out, w.Webhook)
			}
		}
		return err
	})
	return out, err
}

// webhookIn reads a webhook of project in r, or NOT_FOUND.
func webhookIn(r store.Reader, org, project, id string) (*storedWebhook, error) {
	var h storedWebhook
	found, err := docs.Get(r, colWebhooks(org), id, &h)
	if err != nil {
		return nil, err
	}
	if !found || h.Project != project {
		return nil, errNoWebhook(id)
	}
	return &h, nil
}

// DeleteWebhook removes a webhook, its deliveries and what it had pending.
func (s *Service) DeleteWebhook(ctx context.Context, p *authz.Principal, project, id string) error {
	if err := authz.Permits(p, managingWebhooks(p.Org(), project)); err != nil {
		return err
	}
	return s.env.Update(ctx, func(tx store.Writer) error {
		if _, err := webhookIn(tx, p.Org(), project, id); err != nil {
			return err
		}
		if err := deleteWebhook(tx, p.Org(), id); err != nil {
			return err
		}
		return Record(ctx, tx, p, s.env.Now(), Change{Project: project, Action: WebhookDeleted, Target: Target{Type: "webhook", ID: id}})
	})
}

func deleteWebhook(tx store.Writer, org, id string) error {
	ds, err := tx.List(colDeliveries(org, id))
	if err != nil {
		return err
	}
	for _, d := range ds {
		if err := tx.Delete(colPending, pendingID(org, id, d.ID)); err != nil {
			return err
		}
	}
	if err := tx.DeleteCollection(colDeliveries(org, id)); err != nil {
		return err
	}
	return tx.Delete(colWebhooks(org), id)
}

// DeleteProject removes, inside a transaction, the webhooks of a project
// being deleted, so that a project made later with its slug inherits none.
func (s *Service) DeleteProject(tx store.Writer, org, project string) error {
	all, err := docs.List[storedWebhook](tx, colWebhooks(org))
	if err != nil {
		return err
	}
	for _, h := range all {
		if h.Project == project {
			if err := deleteWebhook(tx, org, h.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListDeliveries returns a webhook's deliveries, newest first, with their
// attempts (at most limit, 1 to 1000, default 100).
func (s *Service) ListDeliveries(ctx context.Context, p *authz.Principal, project, id string, limit int) ([]Delivery, error) {
	if err := authz.Permits(p, readingWebhooks(p.Org(), project)); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > MaxLimit {
		return nil, apierror.Invalid("limit must be between 1 and %d, not %d", MaxLimit, limit)
	}
	var out []Delivery
	err := s.env.View(ctx, func(r store.Reader) error {
		if _, err := webhookIn(r, p.Org(), project, id); err != nil {
			return err
		}
		all, err := docs.List[Delivery](r, colDeliveries(p.Org(), id))
		if err != nil {
			return err
		}
		slices.SortFunc(all, func(a, b Delivery) int { return b.CreatedAt.Compare(a.CreatedAt) })
		out = all[:min(limit, len(all))]
		for i := range out {
			out[i].ClaimedBy, out[i].ClaimedUntil = "", nil
		}
		return nil
	})
	return out, err
}

// ReplayDelivery sends a delivery again (with its id, so that a receiver
// that has it can tell), now and with retries as a new one.
func (s *Service) ReplayDelivery(ctx context.Context, p *authz.Principal, project, id, delivery string) (*Delivery, error) {
	if err := authz.Permits(p, managingWebhooks(p.Org(), project)); err != nil {
		return nil, err
	}
	var out Delivery
	err := s.env.Update(ctx, func(tx store.Writer) error {
		if _, err := webhookIn(tx, p.Org(), project, id); err != nil {
			return err
		}
		found, err := docs.Get(tx, colDeliveries(p.Org(), id), delivery, &out)
		if err != nil {
			return err
		}
		if !found {
			return apierror.NotFound("delivery %q of webhook %q not found", delivery, id)
		}
		now := s.env.Now().UTC()
		// Retried for RetryFor from now, as a new delivery would be.
		out.Status, out.NextAttemptAt, out.RetryUntil = DeliveryPending, &now, now.Add(RetryFor)
		out.ClaimedBy, out.ClaimedUntil = "", nil
		if err := docs.Put(tx, colDeliveries(p.Org(), id), delivery, out); err != nil {
			return err
		}
		if err := docs.Put(tx, colPending, pendingID(p.Org(), id, delivery), pendingItem{Due: now}); err != nil {
			return err
		}
		tx.Publish(WebhookTopic, []byte(p.Org()))
		return Record(ctx, tx, p, now, Change{Project: project, Action: DeliveryReplayed, Target: Target{Type: "webhook_delivery", ID: delivery}})
	})
	if err != nil {
		return nil, err
	}
	out.ClaimedBy, out.ClaimedUntil = "", nil
	return &out, nil
}

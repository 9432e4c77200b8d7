// Package audit is the audit log: who changed what, when and from where.
//
// Every service that changes state writes its entry with [Record] inside
// the transaction of the change itself, so that a change never commits
// without its entry and an entry never exists without its change. Entries
// are kept per organization and day, and the log is read newest first,
// filtered, a page at a time, with only what the reader's scope covers.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Action names what an entry records, as "<noun>.<verb>".
type Action string

// The actions. Their names are part of the API (filters, webhooks' event
// names): add, never rename.
const (
	OrganizationBootstrapped Action = "organization.bootstrapped"
	ProjectCreated           Action = "project.created"
	ProjectDeleted           Action = "project.deleted"
	EnvironmentCreated       Action = "environment.created"
	KeyCreated               Action = "api_key.created"
	KeyUpdated               Action = "api_key.updated"
	KeyRotated               Action = "api_key.rotated"
	KeyRevoked               Action = "api_key.revoked"
	IdentityPut              Action = "identity.updated"
	IdentityDeleted          Action = "identity.deleted"
	FlagSetUpdated           Action = "flag_set.updated"
	FlagSetReverted          Action = "flag_set.reverted"
	FlagUpdated              Action = "flag.updated"
	FlagDeleted              Action = "flag.deleted"
	SessionCreated           Action = "testing_session.created"
	SessionOverridesSet      Action = "testing_session.overrides_set"
	SessionDeleted           Action = "testing_session.deleted"
	MemberInvited            Action = "member.invited"
	InvitationAccepted       Action = "member.joined"
	MemberRemoved            Action = "member.removed"
	PasswordSet              Action = "member.password_set"
	LoginSucceeded           Action = "dashboard.login"
	LoginFailed              Action = "dashboard.login_failed"
	LoggedOut                Action = "dashboard.logout"
	WebhookCreated           Action = "webhook.created"
	WebhookDeleted           Action = "webhook.deleted"
	DeliveryReplayed         Action = "webhook.delivery_replayed"
)

// Actions is every action, for validating filters and listing them.
var Actions = []Action{
	OrganizationBootstrapped, ProjectCreated, ProjectDeleted, EnvironmentCreated,
	KeyCreated, KeyUpdated, KeyRotated, KeyRevoked, IdentityPut, IdentityDeleted,
	FlagSetUpdated, FlagSetReverted, FlagUpdated, FlagDeleted, SessionCreated, SessionOverridesSet, SessionDeleted,
	MemberInvited, InvitationAccepted, MemberRemoved, PasswordSet, LoginSucceeded, LoginFailed, LoggedOut,
	WebhookCreated, WebhookDeleted, DeliveryReplayed,
}

// Outcomes of an entry. A change is recorded with its commit, so it
// succeeded; only a login attempt records a failure.
const (
	Success = "success"
	Failure = "failure"
)

// Entry is one record of the log.
type Entry struct {
	ID           string    `json:"id"`
	Time         time.Time `json:"time"`
	Organization string    `json:"organization"`
	Project      string    `json:"project,omitempty"`
	Environment  string    `json:"environment,omitempty"`
	// Resources are the projects an organization-wide change was narrowed
	// to (a Scoped key's), so that a reader scoped to them sees it.
	Resources []string `json:"resources,omitempty"`
	Action    Action   `json:"action"`
	Target    Target   `json:"target"`
	Actor     Actor    `json:"actor"`
	// ClientAddress and RequestID are those of the request that made the
	// change (none for the command line).
	ClientAddress string `json:"client_address,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
	Outcome       string `json:"outcome"`
	// Reason says why a login failed, in words that do not tell an
	// attacker which part was wrong.
	Reason string `json:"reason,omitempty"`
	// FlagSet holds the versions of the flag set before and after a flag
	// change.
	FlagSet *Versions `json:"flag_set,omitempty"`
}

// Target is what an entry's action acted on.
type Target struct {
	// Type is the noun: "organization", "project", "environment",
	// "api_key", "identity", "flag_set", "flag", "testing_session",
	// "member", "invitation", "account".
	Type string `json:"type"`
	// ID is its id or slug (a flag's key, an environment's slug).
	ID string `json:"id"`
}

// Actor is who made the change: an API key (by id and type, never its
// secret or digest), a member logged in to the dashboard, or the system
// (the command line's bootstrap).
type Actor struct {
	Type    string `json:"type"` // "api_key", "member" or "system"
	ID      string `json:"id,omitempty"`
	KeyType string `json:"key_type,omitempty"`
	// Member is the member a key belongs to, if known.
	Member string `json:"member,omitempty"`
}

// Versions are a flag set's versions around a change.
type Versions struct {
	Before int64 `json:"before"`
	After  int64 `json:"after"`
	// RevertOf is the version a revert restored.
	RevertOf int64 `json:"revert_of,omitempty"`
}

// ActorOf is the actor of principal p; the system for none.
func ActorOf(p *authz.Principal) Actor {
	switch {
	case p == nil:
		return Actor{Type: "system"}
	case p.Kind == authz.MemberPrincipal:
		return Actor{Type: "member", ID: p.ID}
	}
	return Actor{Type: "api_key", ID: p.ID, KeyType: p.Type.String(), Member: p.Member}
}

// Origin is where a request came from, as the front door saw it.
type Origin struct {
	ClientAddress string
	RequestID     string
}

type originKey struct{}

// WithOrigin returns ctx carrying o, for the entries the request's changes
// write.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginOf is the origin ctx carries; the zero Origin if none.
func OriginOf(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

// NewRequestID returns a random request id ("req_" and 20 hex digits).
func NewRequestID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// Change is what a service knows of the change it records; Record adds
// the time, the actor and the origin.
type Change struct {
	Project, Environment string
	Resources            []string
	Action               Action
	Target               Target
	FlagSet              *Versions
	// Org is the organization, when p is nil or not of it (bootstrap,
	// login, accepting an invitation).
	Org string
	// Actor, if set, replaces the one p gives (a member who just logged
	// in or joined).
	Actor *Actor
}

// Record writes c's entry inside tx, the transaction of the change, by p
// (nil for the system) at now. The entry commits with the change or not
// at all.
func Record(ctx context.Context, tx store.Writer, p *authz.Principal, now time.Time, c Change) error {
	e := entryOf(ctx, p, now, c)
	e.Outcome = Success
	return put(tx, e)
}

func entryOf(ctx context.Context, p *authz.Principal, now time.Time, c Change) Entry {
	o := OriginOf(ctx)
	org := c.Org
	if org == "" {
		org = p.Org()
	}
	actor := ActorOf(p)
	if c.Actor != nil {
		actor = *c.Actor
	}
	now = now.UTC()
	return Entry{
		ID: newID(now), Time: now, Organization: org,
		Project: c.Project, Environment: c.Environment, Resources: c.Resources,
		Action: c.Action, Target: c.Target, Actor: actor,
		ClientAddress: o.ClientAddress, RequestID: o.RequestID, FlagSet: c.FlagSet,
	}
}

func put(tx store.Writer, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	day := dayOf(e.Time)
	if err := tx.Put(colEntries(e.Organization, day), e.ID, b); err != nil {
		return err
	}
	// Written blind (no read), so that concurrent changes do not conflict
	// over the index.
	if err := tx.Put(colDays(e.Organization), day, []byte("{}")); err != nil {
		return err
	}
	return enqueue(tx, &e)
}

// idTimeWidth is the width of an id's time part: nanoseconds since the
// epoch in base 36, zero-padded, so that ids sort as their times do.
const idTimeWidth = 13

// lastIDNanos is the time part of this process's latest id.
var lastIDNanos atomic.Int64

// newID is "aud_", the time, and 8 random hex digits (entries of two
// instances in one nanosecond stay apart). Within a process the time part
// only grows, so that the entries of one transaction (a member removed
// after their keys were revoked) list in the order they were written.
func newID(t time.Time) string {
	n := t.UnixNano()
	for {
		last := lastIDNanos.Load()
		if n <= last {
			n = last + 1
		}
		if lastIDNanos.CompareAndSwap(last, n) {
			break
		}
		n = t.UnixNano()
	}
	ts := strconv.FormatInt(n, 36)
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "aud_" + strings.Repeat("0", max(idTimeWidth-len(ts), 0)) + ts + hex.EncodeToString(b[:])
}

// idTime is the time an id holds; ok false for what is not an entry's id.
func idTime(id string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(id, "aud_")
	if !ok || len(rest) != idTimeWidth+8 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(rest[:idTimeWidth], 36, 64)
	if err != nil {
		return time.Time{}, false
	}
	if _, err := hex.DecodeString(rest[idTimeWidth:]); err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n).UTC(), true
}

// place is the part of the organization an entry is about, which a
// reader's scope must cover.
func (e *Entry) place() authz.Scope {
	return authz.Scope{Org: e.Organization, Project: e.Project, Environment: e.Environment, Resources: e.Resources}
}

// visibleTo reports whether p may read e.
func visibleTo(p *authz.Principal, e *Entry) bool {
	return authz.Allows(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read, Target: e.place()})
}

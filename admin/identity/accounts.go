package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Account is a person's credentials and memberships.
type Account struct {
	Email        string      `json:"email"`
	PasswordHash string      `json:"password_hash,omitempty"`
	Memberships  []memberRef `json:"memberships"`
	UpdatedAt    time.Time   `json:"updated_at"`
}

// Login-session lifetimes and bounds.
const (
	// SessionIdleTimeout ends a session nobody used for this long.
	SessionIdleTimeout = 30 * time.Minute
	// SessionMaxAge ends every session this long after login.
	SessionMaxAge = 12 * time.Hour
	// sessionTouchEvery bounds how often use of a session is written back.
	sessionTouchEvery = time.Minute
	// MaxSessionsPerMember bounds a member's open login sessions: logging
	// in once more ends the oldest.
	MaxSessionsPerMember = 10
)

// LoginSession is a logged-in member, stored server-side so that any
// instance serves it and logging out ends it everywhere.
type LoginSession struct {
	OrgID     string    `json:"org_id"`
	MemberID  string    `json:"member_id"`
	CSRF      string    `json:"csrf"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
}

// newToken returns a random URL-safe token and the hex SHA-256 under which
// it is stored: a stolen database yields no usable session or invitation.
func newToken() (token, digest string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, tokenDigest(token), nil
}

func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// addMembership records that an address is a member of an organization.
func addMembership(tx store.Writer, email string, ref memberRef, now time.Time) error {
	key := strings.ToLower(email)
	var acct Account
	if _, err := docs.Get(tx, colAccounts, key, &acct); err != nil {
		return err
	}
	acct.Email = email
	acct.Memberships = append(acct.Memberships, ref)
	acct.UpdatedAt = now
	return docs.Put(tx, colAccounts, key, acct)
}

// removeMembership forgets one membership of an address.
func removeMembership(tx store.Writer, email string, ref memberRef, now time.Time) error {
	key := strings.ToLower(email)
	var acct Account
	found, err := docs.Get(tx, colAccounts, key, &acct)
	if err != nil || !found {
		return err
	}
	kept := acct.Memberships[:0]
	for _, m := range acct.Memberships {
		if m != ref {
			kept = append(kept, m)
		}
	}
	acct.Memberships = kept
	acct.UpdatedAt = now
	return docs.Put(tx, colAccounts, key, acct)
}

// SetPassword sets the password of the account of an address that is a
// member of some organization (the bootstrap command's --password-stdin),
// and ends the account's open logins.
func (s *Service) SetPassword(ctx context.Context, email, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	key := strings.ToLower(strings.TrimSpace(email))
	return s.env.Update(ctx, func(tx store.Writer) error {
		var acct Account
		found := false
		if key != "" {
			var err error
			if found, err = docs.Get(tx, colAccounts, key, &acct); err != nil {
				return err
			}
		}
		if !found || len(acct.Memberships) == 0 {
			return apierror.NotFound("no member has the e-mail address %q", email)
		}
		if err := setPasswordHash(tx, &acct, hash, s.env.Timestamp()); err != nil {
			return err
		}
		for _, mr := range acct.Memberships {
			if err := audit.Record(ctx, tx, nil, s.env.Now(), audit.Change{Org: mr.OrgID, Action: audit.PasswordSet,
				Target: audit.Target{Type: "member", ID: mr.MemberID}}); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetPasswordHash sets, inside a transaction, the password hash of the
// account of an address (the bootstrap's first owner), ending its logins.
func (s *Service) SetPasswordHash(tx store.Writer, email, hash string) error {
	var acct Account
	if _, err := docs.Get(tx, colAccounts, strings.ToLower(email), &acct); err != nil {
		return err
	}
	acct.Email = email
	return setPasswordHash(tx, &acct, hash, s.env.Timestamp())
}

func setPasswordHash(tx store.Writer, acct *Account, hash string, now time.Time) error {
	acct.PasswordHash = hash
	acct.UpdatedAt = now
	if err := docs.Put(tx, colAccounts, strings.ToLower(acct.Email), acct); err != nil {
		return err
	}
	// A new password ends the account's open logins, wherever they are.
	for _, m := range acct.Memberships {
		if err := endMemberSessions(tx, m.OrgID, m.MemberID); err != nil {
			return err
		}
	}
	return nil
}

// endMemberSessions deletes one member's login sessions.
func endMemberSessions(tx store.Writer, org, member string) error {
	items, err := tx.List(colSessionsOf(org, member))
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := tx.Delete(colLoginSessions, it.ID); err != nil {
			return err
		}
	}
	return tx.DeleteCollection(colSessionsOf(org, member))
}

// errBadLogin is the one answer to every failed login, so that it tells
// nothing about which part was wrong.
var errBadLogin = apierror.New(401, apierror.CodeUnauthorized, "Wrong e-mail address or password")

// Login checks an address and password and opens a session for one of the
// account's memberships: the one in organization preferOrg if there is
// one, else the first. It takes as long for unknown addresses as for known
// ones.
func (s *Service) Login(ctx context.Context, email, password, preferOrg string) (token string, sess *LoginSession, m *Member, err error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var acct Account
	var found bool
	// An empty address names no account (and is no valid document id: the
	// store would refuse it as a storage error).
	if email != "" {
		if err := s.env.View(ctx, func(r store.Reader) error {
			var err error
			found, err = docs.Get(r, colAccounts, email, &acct)
			return err
		}); err != nil {
			return "", nil, nil, err
		}
	}
	hash := acct.PasswordHash
	if !found || hash == "" {
		hash = dummyHash()
	}
	if !verifyPassword(password, hash) || !found || acct.PasswordHash == "" || len(acct.Memberships) == 0 {
		// Every organization of the account learns of the attempt; one for
		// an address that is no account belongs to none.
		for _, mr := range acct.Memberships {
			if err := audit.RecordFailure(ctx, s.env, audit.Change{Org: mr.OrgID, Action: audit.LoginFailed,
				Target: audit.Target{Type: "member", ID: mr.MemberID}, Actor: &audit.Actor{Type: "member", ID: mr.MemberID}},
				"wrong e-mail address or password"); err != nil {
				return "", nil, nil, err
			}
		}
		return "", nil, nil, errBadLogin
	}
	ref := acct.Memberships[0]
	for _, mr := range acct.Memberships {
		if mr.OrgID == preferOrg {
			ref = mr
		}
	}
	err = s.env.Update(ctx, func(tx store.Writer) error {
		m = &Member{}
		found, err := docs.Get(tx, colMembers(ref.OrgID), ref.MemberID, m)
		if err != nil {
			return err
		}
		if !found {
			return errBadLogin
		}
		var digest string
		token, digest, err = newToken()
		if err != nil {
			return err
		}
		csrf, _, err := newToken()
		if err != nil {
			return err
		}
		now := s.env.Now().UTC()
		sess = &LoginSession{OrgID: ref.OrgID, MemberID: m.ID, CSRF: csrf, CreatedAt: now, LastSeen: now}
		if err := docs.Put(tx, colLoginSessions, digest, sess); err != nil {
			return err
		}
		if err := indexSession(tx, sess, digest); err != nil {
			return err
		}
		return audit.Record(ctx, tx, nil, now, audit.Change{Org: ref.OrgID, Action: audit.LoginSucceeded,
			Target: audit.Target{Type: "member", ID: m.ID}, Actor: &audit.Actor{Type: "member", ID: m.ID}})
	})
	if err != nil {
		return "", nil, nil, err
	}
	return token, sess, m, nil
}

// sortableTime formats the login times of the session index so that their
// order as strings is their order in time: RFC 3339 with all nine digits of
// the fraction (RFC3339Nano drops trailing zeros, which sorts 12:00:00.5
// after 12:00:00.55 and a whole second after every fraction of it).
const sortableTime = "2006-01-02T15:04:05.000000000Z07:00"

// indexSession records a login session under its member and ends the
// oldest ones beyond MaxSessionsPerMember.
func indexSession(tx store.Writer, sess *LoginSession, digest string) error {
	col := colSessionsOf(sess.OrgID, sess.MemberID)
	if err := tx.Put(col, digest, []byte(sess.CreatedAt.UTC().Format(sortableTime))); err != nil {
		return err
	}
	items, err := tx.List(col)
	if err != nil || len(items) <= MaxSessionsPerMember {
		return err
	}
	sort.Slice(items, func(i, j int) bool { return string(items[i].Value) < string(items[j].Value) })
	for _, it := range items[:len(items)-MaxSessionsPerMember] {
		if err := tx.Delete(colLoginSessions, it.ID); err != nil {
			return err
		}
		if err := tx.Delete(col, it.ID); err != nil {
			return err
		}
	}
	return nil
}

// errNoSession answers a missing, expired or ended session.
var errNoSession = apierror.New(401, apierror.CodeUnauthorized, "Please log in")

// Session returns the session a token names and its member, refusing it
// once idle for SessionIdleTimeout or older than SessionMaxAge, or once the
// member has left. Use is written back at most once a minute.
func (s *Service) Session(ctx context.Context, token string) (*LoginSession, *Member, error) {
	if token == "" {
		return nil, nil, errNoSession
	}
	digest := tokenDigest(token)
	var sess LoginSession
	var m Member
	var found bool
	err := s.env.View(ctx, func(r store.Reader) error {
		var err error
		if found, err = docs.Get(r, colLoginSessions, digest, &sess); err != nil || !found {
			return err
		}
		found, err = docs.Get(r, colMembers(sess.OrgID), sess.MemberID, &m)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	now := s.env.Now()
	if !found {
		return nil, nil, errNoSession
	}
	if now.Sub(sess.LastSeen) >= SessionIdleTimeout || now.Sub(sess.CreatedAt) >= SessionMaxAge {
		// Delete it rather than leave it to the sweep, so that a clock
		// that steps back cannot revive it.
		_ = s.env.Update(ctx, func(tx store.Writer) error { return deleteSession(tx, digest, &sess) })
		return nil, nil, errNoSession
	}
	if now.Sub(sess.LastSeen) >= sessionTouchEvery {
		sess.LastSeen = now.UTC()
		err := s.env.Update(ctx, func(tx store.Writer) error {
			var cur LoginSession
			found, err := docs.Get(tx, colLoginSessions, digest, &cur)
			if err != nil || !found {
				return err // ended meanwhile: leave it ended
			}
			cur.LastSeen = sess.LastSeen
			return docs.Put(tx, colLoginSessions, digest, cur)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return &sess, &m, nil
}

// SessionPrincipal authenticates a dashboard request by its session token:
// the principal of the logged-in member, and the session's CSRF token.
func (s *Service) SessionPrincipal(ctx context.Context, token string) (*authz.Principal, string, error) {
	sess, m, err := s.Session(ctx, token)
	if err != nil {
		return nil, "", err
	}
	return authz.ForMember(sess.OrgID, m.ID, m.Role), sess.CSRF, nil
}

// CheckCSRF compares a request's token with the session's, in constant time.
func CheckCSRF(token, want string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
}

func deleteSession(tx store.Writer, digest string, sess *LoginSession) error {
	if err := tx.Delete(colLoginSessions, digest); err != nil {
		return err
	}
	return tx.Delete(colSessionsOf(sess.OrgID, sess.MemberID), digest)
}

// Logout ends the session a token names.
func (s *Service) Logout(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	digest := tokenDigest(token)
	return s.env.Update(ctx, func(tx store.Writer) error {
		var sess LoginSession
		found, err := docs.Get(tx, colLoginSessions, digest, &sess)
		if err != nil || !found {
			return err
		}
		if err := deleteSession(tx, digest, &sess); err != nil {
			return err
		}
		return audit.Record(ctx, tx, nil, s.env.Now(), audit.Change{Org: sess.OrgID, Action: audit.LoggedOut,
			Target: audit.Target{Type: "member", ID: sess.MemberID}, Actor: &audit.Actor{Type: "member", ID: sess.MemberID}})
	})
}

// SweepLoginSessions deletes expired login sessions and invitations, with
// their index entries, and indexes the ones stored before there was an
// index.
func (s *Service) SweepLoginSessions(ctx context.Context) error {
	now := s.env.Now()
	return s.env.Update(ctx, func(tx store.Writer) error {
		items, err := tx.List(colLoginSessions)
		if err != nil {
			return err
		}
		for _, it := range items {
			var sess LoginSession
			if docs.Decode(it, &sess) != nil {
				if err := tx.Delete(colLoginSessions, it.ID); err != nil {
					return err
				}
				continue
			}
			if now.Sub(sess.LastSeen) >= SessionIdleTimeout || now.Sub(sess.CreatedAt) >= SessionMaxAge {
				if err := deleteSession(tx, it.ID, &sess); err != nil {
					return err
				}
				continue
			}
			_, err := tx.Get(colSessionsOf(sess.OrgID, sess.MemberID), it.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				if err := indexSession(tx, &sess, it.ID); err != nil {
					return err
				}
			case err != nil:
				return err
			}
		}
		return sweepInvites(tx, now)
	})
}

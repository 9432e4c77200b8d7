package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// People log in to the dashboard with an e-mail address and a password.
// The password belongs to the address (one account), which may be a member
// of several organizations; a login session acts as one membership.
//
//	accounts          lower-cased e-mail -> Account
//	login-sessions    SHA-256 of the session token -> LoginSession
//	invites           SHA-256 of the invitation token -> Invite
const (
	colAccounts      = "accounts"
	colLoginSessions = "login-sessions"
	colInvites       = "invites"
)

// Account is a person's credentials and memberships.
type Account struct {
	Email        string      `json:"email"`
	PasswordHash string      `json:"password_hash,omitempty"`
	Memberships  []memberRef `json:"memberships"`
	UpdatedAt    time.Time   `json:"updated_at"`
}

// Login-session lifetimes.
const (
	// SessionIdleTimeout ends a session nobody used for this long.
	SessionIdleTimeout = 30 * time.Minute
	// SessionMaxAge ends every session this long after login.
	SessionMaxAge = 12 * time.Hour
	// sessionTouchEvery bounds how often use of a session is written back.
	sessionTouchEvery = time.Minute
	// InviteTTL is how long an invitation link works.
	InviteTTL = 7 * 24 * time.Hour
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

// Invite lets a person join an organization and set a password.
type Invite struct {
	OrgID     string    `json:"org_id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	InvitedBy string    `json:"invited_by"`
	ExpiresAt time.Time `json:"expires_at"`
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
	if _, err := getJSON(tx, colAccounts, key, &acct); err != nil {
		return err
	}
	acct.Email = email
	acct.Memberships = append(acct.Memberships, ref)
	acct.UpdatedAt = now
	return putJSON(tx, colAccounts, key, acct)
}

// removeMembership forgets one membership of an address.
func removeMembership(tx store.Writer, email string, ref memberRef, now time.Time) error {
	key := strings.ToLower(email)
	var acct Account
	found, err := getJSON(tx, colAccounts, key, &acct)
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
	return putJSON(tx, colAccounts, key, acct)
}

// SetPassword sets the password of the account of an address that is a
// member of some organization (the bootstrap command's --password).
func (s *Service) SetPassword(ctx context.Context, email, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	key := strings.ToLower(strings.TrimSpace(email))
	return s.update(ctx, func(tx store.Writer) error {
		var acct Account
		found := false
		if key != "" {
			var err error
			if found, err = getJSON(tx, colAccounts, key, &acct); err != nil {
				return err
			}
		}
		if !found || len(acct.Memberships) == 0 {
			return apierror.NotFound("no member has the e-mail address %q", email)
		}
		acct.PasswordHash = hash
		acct.UpdatedAt = s.timestamp()
		if err := putJSON(tx, colAccounts, strings.ToLower(acct.Email), acct); err != nil {
			return err
		}
		// A new password ends the account's open logins, wherever they are.
		return endSessions(tx, func(sess *LoginSession) bool {
			for _, m := range acct.Memberships {
				if m.OrgID == sess.OrgID && m.MemberID == sess.MemberID {
					return true
				}
			}
			return false
		})
	})
}

// endSessions deletes the login sessions match selects.
func endSessions(tx store.Writer, match func(*LoginSession) bool) error {
	items, err := tx.List(colLoginSessions)
	if err != nil {
		return err
	}
	for _, it := range items {
		var sess LoginSession
		if decodeItem(it, &sess) == nil && match(&sess) {
			if err := tx.Delete(colLoginSessions, it.ID); err != nil {
				return err
			}
		}
	}
	return nil
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
		if err := s.view(ctx, func(r store.Reader) error {
			var err error
			found, err = getJSON(r, colAccounts, email, &acct)
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
		return "", nil, nil, errBadLogin
	}
	ref := acct.Memberships[0]
	for _, mr := range acct.Memberships {
		if mr.OrgID == preferOrg {
			ref = mr
		}
	}
	err = s.update(ctx, func(tx store.Writer) error {
		m = &Member{}
		found, err := getJSON(tx, colMembers(ref.OrgID), ref.MemberID, m)
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
		now := s.now().UTC()
		sess = &LoginSession{OrgID: ref.OrgID, MemberID: m.ID, CSRF: csrf, CreatedAt: now, LastSeen: now}
		return putJSON(tx, colLoginSessions, digest, sess)
	})
	if err != nil {
		return "", nil, nil, err
	}
	return token, sess, m, nil
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
	err := s.view(ctx, func(r store.Reader) error {
		var err error
		if found, err = getJSON(r, colLoginSessions, digest, &sess); err != nil || !found {
			return err
		}
		found, err = getJSON(r, colMembers(sess.OrgID), sess.MemberID, &m)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	if !found {
		return nil, nil, errNoSession
	}
	if now.Sub(sess.LastSeen) >= SessionIdleTimeout || now.Sub(sess.CreatedAt) >= SessionMaxAge {
		// Delete it rather than leave it to the sweep, so that a clock
		// that steps back cannot revive it.
		_ = s.update(ctx, func(tx store.Writer) error { return tx.Delete(colLoginSessions, digest) })
		return nil, nil, errNoSession
	}
	if now.Sub(sess.LastSeen) >= sessionTouchEvery {
		sess.LastSeen = now.UTC()
		err := s.update(ctx, func(tx store.Writer) error {
			var cur LoginSession
			found, err := getJSON(tx, colLoginSessions, digest, &cur)
			if err != nil || !found {
				return err // ended meanwhile: leave it ended
			}
			cur.LastSeen = sess.LastSeen
			return putJSON(tx, colLoginSessions, digest, cur)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return &sess, &m, nil
}

// CheckCSRF compares a request's token with the session's, in constant time.
func (sess *LoginSession) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRF)) == 1
}

// Logout ends the session a token names.
func (s *Service) Logout(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	return s.update(ctx, func(tx store.Writer) error {
		return tx.Delete(colLoginSessions, tokenDigest(token))
	})
}

// SweepLoginSessions deletes expired login sessions and invitations.
func (s *Service) SweepLoginSessions(ctx context.Context) error {
	now := s.now()
	return s.update(ctx, func(tx store.Writer) error {
		items, err := tx.List(colLoginSessions)
		if err != nil {
			return err
		}
		for _, it := range items {
			var sess LoginSession
			if decodeItem(it, &sess) != nil || now.Sub(sess.LastSeen) >= SessionIdleTimeout || now.Sub(sess.CreatedAt) >= SessionMaxAge {
				if err := tx.Delete(colLoginSessions, it.ID); err != nil {
					return err
				}
			}
		}
		invites, err := tx.List(colInvites)
		if err != nil {
			return err
		}
		for _, it := range invites {
			var inv Invite
			if decodeItem(it, &inv) != nil || !now.Before(inv.ExpiresAt) {
				if err := tx.Delete(colInvites, it.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// sessionPrincipalPrefix starts the ID of every login session's principal,
// which no key ID can (they start with "key_").
const sessionPrincipalPrefix = "session_"

// readOnlyMember is what a member without write rights is told: about their
// role, since they hold no key.
var readOnlyMember = apierror.Forbidden("Your role (Member) is read-only; ask an owner or admin of your organization")

// readOnly returns the refusal of a write for caller.
func readOnly(caller *apikey.Record) error {
	if strings.HasPrefix(caller.ID, sessionPrincipalPrefix) {
		return readOnlyMember
	}
	return apierror.ReadOnlyKey
}

// Principal is the key-shaped caller a login session acts as, so that the
// dashboard goes through exactly the same services and checks as the API:
// an organization-wide admin principal, with WRITE for owners and admins
// and READ only for members.
func Principal(sess *LoginSession, m *Member) *apikey.Record {
	perms := apikey.AllPermissions
	if m.Role == RoleMember {
		perms, _ = apikey.ParsePermissions([]string{"READ"})
	}
	return &apikey.Record{
		ID: sessionPrincipalPrefix + m.ID, OrgID: sess.OrgID, Type: apikey.Admin,
		Permissions: perms, Name: "dashboard session of " + m.Email, OwnerID: m.ID,
		CreatedAt: sess.CreatedAt,
	}
}

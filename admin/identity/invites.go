package identity

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/internal/input"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Invitation bounds.
const (
	// InviteTTL is how long an invitation link works.
	InviteTTL = 7 * 24 * time.Hour
	// MaxPendingInvites bounds the invitations an organization may have
	// waiting at once.
	MaxPendingInvites = 500
)

// Invite lets a person join an organization and set a password.
type Invite struct {
	OrgID     string     `json:"org_id"`
	Email     string     `json:"email"`
	Name      string     `json:"name"`
	Role      authz.Role `json:"role"`
	InvitedBy string     `json:"invited_by"`
	ExpiresAt time.Time  `json:"expires_at"`
}

// InviteInput asks for a new member.
type InviteInput struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	// Role is OWNER, ADMIN or MEMBER (the default).
	Role string `json:"role,omitempty"`
}

// InviteMember creates an invitation and returns its token, which is shown
// once (as a link) and stored only as a digest. Owners and admins invite;
// only owners invite owners.
func (s *Service) InviteMember(ctx context.Context, p *authz.Principal, in InviteInput) (string, *Invite, error) {
	email, err := input.Email("email", in.Email)
	if err != nil {
		return "", nil, err
	}
	name, err := cleanName("name", in.Name)
	if err != nil {
		return "", nil, err
	}
	role, err := authz.ParseRole(in.Role)
	if err != nil {
		return "", nil, apierror.Invalid("%v", err)
	}
	var token string
	var inv *Invite
	err = s.env.Update(ctx, func(tx store.Writer) error {
		actor, err := acting(tx, p)
		if err != nil {
			return err
		}
		if err := authz.Permits(actor, manageMembers(p.Org(), authz.RoleAdmin, "Only owners and admins manage members")); err != nil {
			return err
		}
		if role == authz.RoleOwner {
			if err := authz.Permits(actor, manageMembers(p.Org(), authz.RoleOwner, "Only owners invite owners")); err != nil {
				return err
			}
		}
		var taken memberRef
		found, err := docs.Get(tx, colMemberEmails(p.Org()), strings.ToLower(email), &taken)
		if err != nil {
			return err
		}
		if found {
			return apierror.Conflict("%s is already a member", email)
		}
		pending, err := tx.List(colInvitesOf(p.Org()))
		if err != nil {
			return err
		}
		if len(pending) >= MaxPendingInvites {
			return apierror.Conflict("the organization has %d pending invitations, the most it may have; they expire after 7 days", len(pending))
		}
		var digest string
		if token, digest, err = newToken(); err != nil {
			return err
		}
		inv = &Invite{OrgID: p.Org(), Email: email, Name: name, Role: role,
			InvitedBy: p.Member, ExpiresAt: s.env.Timestamp().Add(InviteTTL)}
		if err := docs.Put(tx, colInvites, digest, inv); err != nil {
			return err
		}
		if err := tx.Put(colInvitesOf(p.Org()), digest, []byte(inv.ExpiresAt.Format(time.RFC3339))); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Action: audit.MemberInvited,
			Target: audit.Target{Type: "invitation", ID: email}})
	})
	if err != nil {
		return "", nil, err
	}
	return token, inv, nil
}

// errNoInvite answers a missing, used or expired invitation.
var errNoInvite = apierror.NotFound("This invitation does not exist, was used already or has expired")

// errInviteRefused is the one answer to every password that does not let
// its holder accept an invitation, whatever the reason: telling "this
// address already has a password" apart would tell whoever holds the link
// that the address has an account in some other organization.
var errInviteRefused = apierror.New(401, apierror.CodeUnauthorized,
	"This password does not accept the invitation; if this address already has a FlagBridge password, enter that one")

// InviteInfo returns an invitation (for the page that accepts it) and the
// name of the organization it is for. It says nothing about the invited
// address beyond what the invitation holds.
func (s *Service) InviteInfo(ctx context.Context, token string) (*Invite, string, error) {
	var inv Invite
	var orgName string
	err := s.env.View(ctx, func(r store.Reader) error {
		if err := getInvite(r, token, s.env.Now(), &inv); err != nil {
			return err
		}
		org, _, err := tenancy.GetOrganization(r, inv.OrgID)
		orgName = org.Name
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return &inv, orgName, nil
}

func getInvite(r store.Reader, token string, now time.Time, inv *Invite) error {
	if token == "" {
		return errNoInvite
	}
	found, err := docs.Get(r, colInvites, tokenDigest(token), inv)
	if err != nil {
		return err
	}
	if !found || !now.Before(inv.ExpiresAt) {
		return errNoInvite
	}
	return nil
}

// AcceptInvite makes the invited person a member. A new account sets its
// password here; an existing account (a member of another organization)
// proves it with its current password instead, so that a leaked invitation
// cannot take over somebody's login. The password policy is checked first
// and every password that does not accept the invitation gets the same
// answer, in about the same time: an address that is a member elsewhere
// without a password (an owner bootstrapped without one) cannot accept
// until an operator sets one, and answers as a wrong password would.
func (s *Service) AcceptInvite(ctx context.Context, token, password string) (*Member, error) {
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	var hash string
	var m *Member
	err := s.env.Update(ctx, func(tx store.Writer) error {
		var inv Invite
		if err := getInvite(tx, token, s.env.Now(), &inv); err != nil {
			return err
		}
		var acct Account
		if _, err := docs.Get(tx, colAccounts, strings.ToLower(inv.Email), &acct); err != nil {
			return err
		}
		switch {
		case acct.PasswordHash != "":
			if !verifyPassword(password, acct.PasswordHash) {
				return errInviteRefused
			}
		case len(acct.Memberships) > 0:
			// Whoever holds the invitation must not choose the password
			// that would then log in to those memberships.
			verifyPassword(password, dummyHash())
			return errInviteRefused
		default:
			if hash == "" { // the transaction may run twice; hash once
				var err error
				if hash, err = HashPassword(password); err != nil {
					return err
				}
			}
		}
		var err error
		if m, err = s.AddMember(tx, inv.OrgID, inv.Email, inv.Name, inv.Role); err != nil {
			return err
		}
		if hash != "" {
			if err := s.SetPasswordHash(tx, inv.Email, hash); err != nil {
				return err
			}
		}
		if err := deleteInvite(tx, tokenDigest(token), inv.OrgID); err != nil {
			return err
		}
		// By the new member, who has no principal yet.
		return audit.Record(ctx, tx, nil, s.env.Now(), audit.Change{Org: inv.OrgID, Action: audit.InvitationAccepted,
			Target: audit.Target{Type: "member", ID: m.ID}, Actor: &audit.Actor{Type: "member", ID: m.ID}})
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func deleteInvite(tx store.Writer, digest, org string) error {
	if err := tx.Delete(colInvites, digest); err != nil {
		return err
	}
	return tx.Delete(colInvitesOf(org), digest)
}

// withdrawInvitesBy deletes the invitations a member sent.
func withdrawInvitesBy(tx store.Writer, org, member string) error {
	items, err := tx.List(colInvitesOf(org))
	if err != nil {
		return err
	}
	for _, it := range items {
		var inv Invite
		found, err := docs.Get(tx, colInvites, it.ID, &inv)
		if err != nil {
			return err
		}
		if !found || inv.InvitedBy == member {
			if err := deleteInvite(tx, it.ID, org); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweepInvites deletes expired invitations, and indexes the ones stored
// before there was an index.
func sweepInvites(tx store.Writer, now time.Time) error {
	items, err := tx.List(colInvites)
	if err != nil {
		return err
	}
	for _, it := range items {
		var inv Invite
		if docs.Decode(it, &inv) != nil {
			if err := tx.Delete(colInvites, it.ID); err != nil {
				return err
			}
			continue
		}
		if !now.Before(inv.ExpiresAt) {
			if err := deleteInvite(tx, it.ID, inv.OrgID); err != nil {
				return err
			}
			continue
		}
		_, err := tx.Get(colInvitesOf(inv.OrgID), it.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if err := tx.Put(colInvitesOf(inv.OrgID), it.ID, []byte(inv.ExpiresAt.Format(time.RFC3339))); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
	return nil
}

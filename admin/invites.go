package admin

import (
	"context"
	"strings"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// InviteInput asks for a new member.
type InviteInput struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	// Role is OWNER, ADMIN or MEMBER (the default).
	Role string `json:"role,omitempty"`
}

// memberManager checks that caller may manage members: an unscoped
// organization-wide key with WRITE whose owner is an OWNER or ADMIN. It
// returns the owner's role, since managing owners takes an owner.
func memberManager(r store.Reader, caller *apikey.Record) (Role, error) {
	if err := authorize(caller, writeAccess, ""); err != nil {
		return "", err
	}
	if err := requireOrgWide(caller, "manage members"); err != nil {
		return "", err
	}
	if err := requireUnscoped(caller, "manage members"); err != nil {
		return "", err
	}
	var owner Member
	found, err := getJSON(r, colMembers(caller.OrgID), caller.OwnerID, &owner)
	if err != nil {
		return "", err
	}
	if !found || (owner.Role != RoleOwner && owner.Role != RoleAdmin) {
		return "", apierror.Forbidden("Only owners and admins manage members")
	}
	return owner.Role, nil
}

func parseRole(s string) (Role, error) {
	switch Role(strings.ToUpper(strings.TrimSpace(s))) {
	case "", RoleMember:
		return RoleMember, nil
	case RoleAdmin:
		return RoleAdmin, nil
	case RoleOwner:
		return RoleOwner, nil
	}
	return "", apierror.Invalid("role %q is not OWNER, ADMIN or MEMBER", s)
}

// InviteMember creates an invitation and returns its token, which is shown
// once (as a link) and stored only as a digest.
func (s *Service) InviteMember(ctx context.Context, caller *apikey.Record, in InviteInput) (string, *Invite, error) {
	email, err := cleanEmail("email", in.Email)
	if err != nil {
		return "", nil, err
	}
	name, err := cleanName("name", in.Name, "", true)
	if err != nil {
		return "", nil, err
	}
	role, err := parseRole(in.Role)
	if err != nil {
		return "", nil, err
	}
	var token string
	var inv *Invite
	err = s.update(ctx, func(tx store.Writer) error {
		callerRole, err := memberManager(tx, caller)
		if err != nil {
			return err
		}
		if role == RoleOwner && callerRole != RoleOwner {
			return apierror.Forbidden("Only owners invite owners")
		}
		var taken memberRef
		found, err := getJSON(tx, colMemberEmails(caller.OrgID), strings.ToLower(email), &taken)
		if err != nil {
			return err
		}
		if found {
			return apierror.Conflict("%s is already a member", email)
		}
		var digest string
		if token, digest, err = newToken(); err != nil {
			return err
		}
		inv = &Invite{OrgID: caller.OrgID, Email: email, Name: name, Role: role,
			InvitedBy: caller.OwnerID, ExpiresAt: s.timestamp().Add(InviteTTL)}
		return putJSON(tx, colInvites, digest, inv)
	})
	if err != nil {
		return "", nil, err
	}
	return token, inv, nil
}

// errNoInvite answers a missing, used or expired invitation.
var errNoInvite = apierror.NotFound("This invitation does not exist, was used already or has expired")

// InviteInfo returns an invitation (for the page that accepts it) and the
// name of the organization it is for.
func (s *Service) InviteInfo(ctx context.Context, token string) (*Invite, string, error) {
	var inv Invite
	var org Organization
	err := s.view(ctx, func(r store.Reader) error {
		found, err := getJSON(r, colInvites, tokenDigest(token), &inv)
		if err != nil {
			return err
		}
		if !found || !s.now().Before(inv.ExpiresAt) {
			return errNoInvite
		}
		_, err = getJSON(r, colOrgs, inv.OrgID, &org)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return &inv, org.Name, nil
}

// AcceptInvite makes the invited person a member. A new account sets its
// password here; an existing account (a member of another organization)
// proves it with its current password instead, so that a leaked invitation
// cannot take over somebody's login; an address that is a member elsewhere
// but has no password yet is refused until an operator sets one.
func (s *Service) AcceptInvite(ctx context.Context, token, password string) (*Member, error) {
	var hash string
	var m *Member
	err := s.update(ctx, func(tx store.Writer) error {
		var inv Invite
		digest := tokenDigest(token)
		found, err := getJSON(tx, colInvites, digest, &inv)
		if err != nil {
			return err
		}
		if !found || !s.now().Before(inv.ExpiresAt) {
			return errNoInvite
		}
		var acct Account
		if _, err := getJSON(tx, colAccounts, strings.ToLower(inv.Email), &acct); err != nil {
			return err
		}
		switch {
		case acct.PasswordHash != "":
			if !verifyPassword(password, acct.PasswordHash) {
				return apierror.New(401, apierror.CodeUnauthorized,
					"This address already has a FlagBridge password; enter it to accept the invitation")
			}
		case len(acct.Memberships) > 0:
			// A member elsewhere without a password (an owner bootstrapped
			// without one): whoever holds the invitation must not choose
			// the password that would then log in to those memberships.
			return apierror.Conflict("%s is a member of another organization but has no FlagBridge password yet; "+
				"an operator must set one (bootstrap --new-key --email %s --password-stdin) before the invitation can be accepted",
				inv.Email, inv.Email)
		default:
			if err := checkPassword(password); err != nil {
				return err
			}
			if hash == "" { // the transaction may run twice; hash once
				if hash, err = hashPassword(password); err != nil {
					return err
				}
			}
		}
		if m, err = s.addMember(tx, inv.OrgID, inv.Email, inv.Name, inv.Role); err != nil {
			return err
		}
		if hash != "" {
			if _, err := getJSON(tx, colAccounts, strings.ToLower(inv.Email), &acct); err != nil {
				return err
			}
			acct.PasswordHash = hash
			if err := putJSON(tx, colAccounts, strings.ToLower(inv.Email), acct); err != nil {
				return err
			}
		}
		return tx.Delete(colInvites, digest)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// RemoveMember removes a member from the caller's organization, revoking
// every key they own, ending their login sessions and withdrawing the
// invitations they sent. Only owners remove
// owners, and the last owner stays.
func (s *Service) RemoveMember(ctx context.Context, caller *apikey.Record, memberID string) error {
	return s.update(ctx, func(tx store.Writer) error {
		callerRole, err := memberManager(tx, caller)
		if err != nil {
			return err
		}
		var m Member
		found, err := getJSON(tx, colMembers(caller.OrgID), memberID, &m)
		if err != nil {
			return err
		}
		if !found {
			return apierror.NotFound("member %q not found", memberID)
		}
		if m.Role == RoleOwner {
			if callerRole != RoleOwner {
				return apierror.Forbidden("Only owners remove owners")
			}
			all, err := listJSON[Member](tx, colMembers(caller.OrgID))
			if err != nil {
				return err
			}
			owners := 0
			for _, o := range all {
				if o.Role == RoleOwner {
					owners++
				}
			}
			if owners <= 1 {
				return apierror.Conflict("%s is the organization's last owner", m.Email)
			}
		}
		keys, err := listJSON[apikey.Record](tx, colKeys(caller.OrgID))
		if err != nil {
			return err
		}
		now := s.timestamp()
		for i := range keys {
			k := &keys[i]
			if k.OwnerID != m.ID || k.RevokedAt != nil {
				continue
			}
			k.RevokedAt = &now
			if err := dropDigests(tx, k); err != nil {
				return err
			}
			if err := putJSON(tx, colKeys(k.OrgID), k.ID, k); err != nil {
				return err
			}
			tx.Publish(TopicKeys, []byte(k.ID))
		}
		if err := endSessions(tx, func(sess *LoginSession) bool {
			return sess.OrgID == m.OrgID && sess.MemberID == m.ID
		}); err != nil {
			return err
		}
		// Invitations the member sent go with them.
		invites, err := tx.List(colInvites)
		if err != nil {
			return err
		}
		for _, it := range invites {
			var inv Invite
			if decodeItem(it, &inv) == nil && inv.OrgID == m.OrgID && inv.InvitedBy == m.ID {
				if err := tx.Delete(colInvites, it.ID); err != nil {
					return err
				}
			}
		}
		ref := memberRef{OrgID: m.OrgID, MemberID: m.ID}
		if err := removeMembership(tx, m.Email, ref, now); err != nil {
			return err
		}
		if err := tx.Delete(colMemberEmails(m.OrgID), strings.ToLower(m.Email)); err != nil {
			return err
		}
		return tx.Delete(colMembers(m.OrgID), m.ID)
	})
}

package admin

import (
	"context"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// Role is what a member may do in their organization.
type Role string

// The roles.
const (
	// RoleOwner may do everything, including managing other owners.
	RoleOwner Role = "OWNER"
	// RoleAdmin may do everything but manage owners.
	RoleAdmin Role = "ADMIN"
	// RoleMember may look, and use what is shared with them.
	RoleMember Role = "MEMBER"
)

// Member is a person in an organization. Every API key is owned by one.
type Member struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// colMembers holds an organization's members by id; colMemberEmails maps
// each member's e-mail address (lower-cased) to them: an address is one
// member per organization, while a person may belong to several.
func colMembers(org string) string { return "members/" + org }

func colMemberEmails(org string) string { return "member-emails/" + org }

type memberRef struct {
	OrgID    string `json:"org_id"`
	MemberID string `json:"member_id"`
}

// cleanEmail checks an e-mail address loosely (something@domain, no spaces)
// and returns it trimmed; the lower-cased form is its identity.
func cleanEmail(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", apierror.Invalid("%s is required", field)
	}
	at := strings.LastIndexByte(s, '@')
	if len(s) > 254 || at < 1 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n<>,;\"") || !strings.Contains(s[at:], ".") {
		return "", apierror.Invalid("%s %q is not an e-mail address", field, s)
	}
	return s, nil
}

// addMember writes a new member, refusing an address already taken.
func (s *Service) addMember(tx store.Writer, org, email, name string, role Role) (*Member, error) {
	key := strings.ToLower(email)
	var taken memberRef
	found, err := getJSON(tx, colMemberEmails(org), key, &taken)
	if err != nil {
		return nil, err
	}
	if found {
		return nil, apierror.Conflict("the organization already has a member with the e-mail address %q", email)
	}
	id, err := apikey.NewID("mem")
	if err != nil {
		return nil, err
	}
	m := &Member{ID: id, OrgID: org, Email: email, Name: name, Role: role, CreatedAt: s.timestamp()}
	if err := putJSON(tx, colMembers(org), id, m); err != nil {
		return nil, err
	}
	ref := memberRef{OrgID: org, MemberID: id}
	if err := addMembership(tx, email, ref, m.CreatedAt); err != nil {
		return nil, err
	}
	return m, putJSON(tx, colMemberEmails(org), key, ref)
}

// ListMembers returns the caller's organization's members, oldest first.
func (s *Service) ListMembers(ctx context.Context, caller *apikey.Record) ([]Member, error) {
	if err := authorize(caller, readAccess, ""); err != nil {
		return nil, err
	}
	var out []Member
	err := s.view(ctx, func(r store.Reader) error {
		var err error
		out, err = listJSON[Member](r, colMembers(caller.OrgID))
		return err
	})
	sortBy(out, func(a, b *Member) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out, err
}

// Viewer is who is calling: the member owning the key, and their
// organization.
type Viewer struct {
	Member       Member
	Organization Organization
	Key          *apikey.Record
}

// Viewer returns the owner of the calling key and their organization.
func (s *Service) Viewer(ctx context.Context, caller *apikey.Record) (*Viewer, error) {
	if err := authorize(caller, readAccess, ""); err != nil {
		return nil, err
	}
	v := &Viewer{Key: caller}
	err := s.view(ctx, func(r store.Reader) error {
		found, err := getJSON(r, colOrgs, caller.OrgID, &v.Organization)
		if err != nil {
			return err
		}
		if !found {
			return apierror.NotFound("organization not found")
		}
		found, err = getJSON(r, colMembers(caller.OrgID), caller.OwnerID, &v.Member)
		if err != nil {
			return err
		}
		if !found {
			return apierror.NotFound("the owner of this key is no longer a member")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// MemberByID returns one member of an organization, or nil.
func (s *Service) MemberByID(ctx context.Context, org, id string) (*Member, error) {
	var m Member
	var found bool
	err := s.view(ctx, func(r store.Reader) error {
		var err error
		found, err = getJSON(r, colMembers(org), id, &m)
		return err
	})
	if err != nil || !found {
		return nil, err
	}
	return &m, nil
}

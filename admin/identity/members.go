// Package identity holds the people of FlagBridge: accounts (an e-mail
// address and its password), their memberships of organizations with a
// role, invitations, and the login sessions of the dashboard.
package identity

import (
	"context"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/internal/docs"
	"github.com/flagbridge/flagbridge/admin/internal/input"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

// Member is a person in an organization. Every API key is owned by one.
type Member struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	Email     string     `json:"email"`
	Name      string     `json:"name"`
	Role      authz.Role `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
}

// Profile is a member as the REST API and the dashboard show them: without
// the organization id, which the caller already has.
type Profile struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// Profile returns the member as the API shows them.
func (m *Member) Profile() Profile {
	return Profile{m.ID, m.Email, m.Name, string(m.Role), m.CreatedAt}
}

type memberRef struct {
	OrgID    string `json:"org_id"`
	MemberID string `json:"member_id"`
}

// Service manages accounts, members, invitations and login sessions.
type Service struct {
	env  *docs.Env
	keys *keys.Service
}

// New returns the service over env; removing a member revokes their keys
// through ks.
func New(env *docs.Env, ks *keys.Service) *Service { return &Service{env: env, keys: ks} }

// manageMembers is the need of changing an organization's members: a
// principal covering the whole organization, acting for an owner or admin
// (an owner to touch owners), with denial as the refusal of a lesser role.
func manageMembers(org string, role authz.Role, denial string) authz.Need {
	return authz.Need{Type: apikey.Admin, Permission: apikey.Write, Target: authz.Organization(org), Role: role,
		Action: "manage the members of", RoleDenial: denial}
}

// acting returns p with the role of the member it acts for: known for a
// logged-in member, read from the owner for a key.
func acting(r store.Reader, p *authz.Principal) (*authz.Principal, error) {
	if p == nil || p.Kind == authz.MemberPrincipal {
		return p, nil
	}
	var owner Member
	found, err := docs.Get(r, colMembers(p.Org()), p.Member, &owner)
	if err != nil {
		return nil, err
	}
	if !found {
		return p.WithRole(""), nil
	}
	return p.WithRole(owner.Role), nil
}

// AddMember writes a new member, inside a transaction, refusing an address
// already taken.
func (s *Service) AddMember(tx store.Writer, org, email, name string, role authz.Role) (*Member, error) {
	key := strings.ToLower(email)
	var taken memberRef
	found, err := docs.Get(tx, colMemberEmails(org), key, &taken)
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
	m := &Member{ID: id, OrgID: org, Email: email, Name: name, Role: role, CreatedAt: s.env.Timestamp()}
	if err := docs.Put(tx, colMembers(org), id, m); err != nil {
		return nil, err
	}
	ref := memberRef{OrgID: org, MemberID: id}
	if err := addMembership(tx, email, ref, m.CreatedAt); err != nil {
		return nil, err
	}
	return m, docs.Put(tx, colMemberEmails(org), key, ref)
}

// ListMembers returns the caller's organization's members, oldest first.
func (s *Service) ListMembers(ctx context.Context, p *authz.Principal) ([]Member, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read}); err != nil {
		return nil, err
	}
	var out []Member
	err := s.env.View(ctx, func(r store.Reader) error {
		var err error
		out, err = docs.List[Member](r, colMembers(p.Org()))
		return err
	})
	docs.SortBy(out, func(a, b *Member) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out, err
}

// Viewer is who is calling: the member the principal acts for, and their
// organization.
type Viewer struct {
	Member       Member
	Organization tenancy.Organization
	Principal    *authz.Principal
}

// Viewer returns the member the caller acts for and their organization.
func (s *Service) Viewer(ctx context.Context, p *authz.Principal) (*Viewer, error) {
	if err := authz.Permits(p, authz.Need{Type: apikey.Admin, Permission: apikey.Read}); err != nil {
		return nil, err
	}
	v := &Viewer{Principal: p}
	err := s.env.View(ctx, func(r store.Reader) error {
		org, found, err := tenancy.GetOrganization(r, p.Org())
		if err != nil {
			return err
		}
		if !found {
			return apierror.NotFound("organization not found")
		}
		v.Organization = org
		found, err = docs.Get(r, colMembers(p.Org()), p.Member, &v.Member)
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
	err := s.env.View(ctx, func(r store.Reader) error {
		var err error
		found, err = docs.Get(r, colMembers(org), id, &m)
		return err
	})
	if err != nil || !found {
		return nil, err
	}
	return &m, nil
}

// PickOwner finds, inside a transaction, the member who owns a key minted
// for an existing organization by the bootstrap: the one with the given
// address, or the first owner.
func PickOwner(r store.Reader, org, email string) (*Member, error) {
	members, err := docs.List[Member](r, colMembers(org))
	if err != nil {
		return nil, err
	}
	docs.SortBy(members, func(a, b *Member) bool { return a.CreatedAt.Before(b.CreatedAt) })
	for i := range members {
		m := &members[i]
		if email != "" && strings.EqualFold(m.Email, strings.TrimSpace(email)) {
			return m, nil
		}
		if email == "" && m.Role == authz.RoleOwner {
			return m, nil
		}
	}
	if email != "" {
		return nil, apierror.NotFound("no member with the e-mail address %q in organization %s", email, org)
	}
	return nil, apierror.Conflict("organization %s has no owner", org)
}

// RemoveMember removes a member from the caller's organization, revoking
// every key whose secret they hold, ending their login sessions and
// withdrawing the invitations they sent. Only owners remove owners, and the
// last owner stays.
func (s *Service) RemoveMember(ctx context.Context, p *authz.Principal, memberID string) error {
	return s.env.Update(ctx, func(tx store.Writer) error {
		actor, err := acting(tx, p)
		if err != nil {
			return err
		}
		if err := authz.Permits(actor, manageMembers(p.Org(), authz.RoleAdmin, "Only owners and admins manage members")); err != nil {
			return err
		}
		var m Member
		found, err := docs.Get(tx, colMembers(p.Org()), memberID, &m)
		if err != nil {
			return err
		}
		if !found {
			return apierror.NotFound("member %q not found", memberID)
		}
		if m.Role == authz.RoleOwner {
			if err := authz.Permits(actor, manageMembers(p.Org(), authz.RoleOwner, "Only owners remove owners")); err != nil {
				return err
			}
			all, err := docs.List[Member](tx, colMembers(p.Org()))
			if err != nil {
				return err
			}
			owners := 0
			for _, o := range all {
				if o.Role == authz.RoleOwner {
					owners++
				}
			}
			if owners <= 1 {
				return apierror.Conflict("%s is the organization's last owner", m.Email)
			}
		}
		if err := s.keys.RevokeHeldBy(ctx, tx, p, m.OrgID, m.ID); err != nil {
			return err
		}
		if err := endMemberSessions(tx, m.OrgID, m.ID); err != nil {
			return err
		}
		if err := withdrawInvitesBy(tx, m.OrgID, m.ID); err != nil {
			return err
		}
		ref := memberRef{OrgID: m.OrgID, MemberID: m.ID}
		if err := removeMembership(tx, m.Email, ref, s.env.Timestamp()); err != nil {
			return err
		}
		if err := tx.Delete(colMemberEmails(m.OrgID), strings.ToLower(m.Email)); err != nil {
			return err
		}
		if err := tx.Delete(colMembers(m.OrgID), m.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p, s.env.Now(), audit.Change{Action: audit.MemberRemoved,
			Target: audit.Target{Type: "member", ID: m.ID}})
	})
}

// cleanName is input.Name, for the names people give members.
func cleanName(field, s string) (string, error) { return input.Name(field, s, "", true) }

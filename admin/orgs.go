package admin

import (
	"context"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// Organization owns projects and the keys that manage them.
type Organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// BootstrapInput asks for a deployment's first organization-wide admin key.
type BootstrapInput struct {
	// OrgName names the organization created if there is none.
	OrgName string `json:"org_name,omitempty"`
	// KeyName names the key ("bootstrap" if empty).
	KeyName string `json:"key_name,omitempty"`
	// NewKey mints another organization-wide admin key for an existing
	// organization (OrgID, or the only one) instead of refusing.
	NewKey bool   `json:"new_key,omitempty"`
	OrgID  string `json:"org_id,omitempty"`
	// NewOrg creates another organization even if one exists.
	NewOrg bool `json:"new_org,omitempty"`
	// OwnerEmail and OwnerName are the organization's first owner, who
	// owns the key. Required when an organization is created; with NewKey,
	// the e-mail address picks the member owning the new key (default: the
	// first owner).
	OwnerEmail string `json:"owner_email,omitempty"`
	OwnerName  string `json:"owner_name,omitempty"`
	// OwnerPassword, if set, becomes the owner's dashboard password.
	OwnerPassword string `json:"owner_password,omitempty"`
}

// BootstrapResult is what bootstrapping made. Key is shown once.
type BootstrapResult struct {
	Organization Organization   `json:"organization"`
	Owner        Member         `json:"owner"`
	Record       *apikey.Record `json:"-"`
	Key          string         `json:"key"`
	Created      bool           `json:"organization_created"`
}

// Bootstrap gives a new deployment its first organization and an
// organization-wide admin key. It is for operators with access to the
// storage (the CLI, or Caddy's local admin endpoint), so it takes no
// caller. Once an organization exists it refuses unless asked explicitly
// for another key (NewKey) or another organization (NewOrg), so that running
// it twice by accident does not mint keys nobody knows about.
func (s *Service) Bootstrap(ctx context.Context, in BootstrapInput) (*BootstrapResult, error) {
	orgName, err := cleanName("org_name", in.OrgName, "Default", false)
	if err != nil {
		return nil, err
	}
	keyName, err := cleanName("key_name", in.KeyName, "bootstrap", false)
	if err != nil {
		return nil, err
	}
	if in.NewKey && in.NewOrg {
		return nil, apierror.Invalid("new_key and new_org cannot be combined")
	}
	var passwordHash string
	if in.OwnerPassword != "" {
		if err := checkPassword(in.OwnerPassword); err != nil {
			return nil, err
		}
		if passwordHash, err = hashPassword(in.OwnerPassword); err != nil {
			return nil, err
		}
	}
	var out *BootstrapResult
	err = s.update(ctx, func(tx store.Writer) error {
		out = &BootstrapResult{}
		orgs, err := listJSON[Organization](tx, colOrgs)
		if err != nil {
			return err
		}
		switch {
		case in.NewKey:
			org, err := pickOrg(orgs, in.OrgID)
			if err != nil {
				return err
			}
			out.Organization = org
			owner, err := pickOwner(tx, org.ID, in.OwnerEmail)
			if err != nil {
				return err
			}
			out.Owner = *owner
		case len(orgs) > 0 && !in.NewOrg:
			return apierror.Conflict("FlagBridge is already bootstrapped (organization %s exists); ask for another organization-wide key with --new-key", orgs[0].ID)
		default:
			email, err := cleanEmail("owner_email", in.OwnerEmail)
			if err != nil {
				return err
			}
			name, err := cleanName("owner_name", in.OwnerName, "", true)
			if err != nil {
				return err
			}
			id, err := apikey.NewID("org")
			if err != nil {
				return err
			}
			out.Organization = Organization{ID: id, Name: orgName, CreatedAt: s.timestamp()}
			out.Created = true
			if err := putJSON(tx, colOrgs, id, out.Organization); err != nil {
				return err
			}
			owner, err := s.addMember(tx, id, email, name, RoleOwner)
			if err != nil {
				return err
			}
			out.Owner = *owner
		}
		rec, secret, err := s.newKey(keySpec{
			org: out.Organization.ID, typ: apikey.Admin, perms: apikey.AllPermissions, name: keyName,
			owner: out.Owner.ID,
		})
		if err != nil {
			return err
		}
		out.Record, out.Key = rec, secret
		if passwordHash != "" {
			var acct Account
			key := strings.ToLower(out.Owner.Email)
			if _, err := getJSON(tx, colAccounts, key, &acct); err != nil {
				return err
			}
			acct.PasswordHash = passwordHash
			if err := putJSON(tx, colAccounts, key, acct); err != nil {
				return err
			}
		}
		return s.putKey(tx, rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func pickOrg(orgs []Organization, id string) (Organization, error) {
	if id != "" {
		for _, o := range orgs {
			if o.ID == id {
				return o, nil
			}
		}
		return Organization{}, apierror.NotFound("organization %q not found", id)
	}
	switch len(orgs) {
	case 0:
		return Organization{}, apierror.Conflict("FlagBridge is not bootstrapped yet; run bootstrap without --new-key first")
	case 1:
		return orgs[0], nil
	}
	return Organization{}, apierror.Invalid("there are %d organizations; name one with --org", len(orgs))
}

// pickOwner finds the member who owns a key minted for an existing
// organization: the one with the given address, or the first owner.
func pickOwner(r store.Reader, org, email string) (*Member, error) {
	members, err := listJSON[Member](r, colMembers(org))
	if err != nil {
		return nil, err
	}
	sortBy(members, func(a, b *Member) bool { return a.CreatedAt.Before(b.CreatedAt) })
	for i := range members {
		m := &members[i]
		if email != "" && strings.EqualFold(m.Email, strings.TrimSpace(email)) {
			return m, nil
		}
		if email == "" && m.Role == RoleOwner {
			return m, nil
		}
	}
	if email != "" {
		return nil, apierror.NotFound("no member with the e-mail address %q in organization %s", email, org)
	}
	return nil, apierror.Conflict("organization %s has no owner", org)
}

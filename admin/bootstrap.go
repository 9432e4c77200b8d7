package admin

import (
	"context"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/internal/input"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/store"
)

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
	Organization tenancy.Organization `json:"organization"`
	Owner        identity.Member      `json:"owner"`
	Record       *apikey.Record       `json:"-"`
	// Principal is the new key's.
	Principal *authz.Principal `json:"-"`
	Key       string           `json:"key"`
	Created   bool             `json:"organization_created"`
}

// Bootstrap gives a new deployment its first organization and an
// organization-wide admin key. It is for operators with access to the
// storage (the CLI, or Caddy's local admin endpoint), so it takes no
// principal. Once an organization exists it refuses unless asked explicitly
// for another key (NewKey) or another organization (NewOrg), so that running
// it twice by accident does not mint keys nobody knows about.
func (s *Service) Bootstrap(ctx context.Context, in BootstrapInput) (*BootstrapResult, error) {
	orgName, err := input.Name("org_name", in.OrgName, "Default", false)
	if err != nil {
		return nil, err
	}
	keyName, err := input.Name("key_name", in.KeyName, "bootstrap", false)
	if err != nil {
		return nil, err
	}
	if in.NewKey && in.NewOrg {
		return nil, apierror.Invalid("new_key and new_org cannot be combined")
	}
	var passwordHash string
	if in.OwnerPassword != "" {
		if err := identity.CheckPassword(in.OwnerPassword); err != nil {
			return nil, err
		}
		if passwordHash, err = identity.HashPassword(in.OwnerPassword); err != nil {
			return nil, err
		}
	}
	var out *BootstrapResult
	err = s.env.Update(ctx, func(tx store.Writer) error {
		out = &BootstrapResult{}
		orgs, err := tenancy.Organizations(tx)
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
			owner, err := identity.PickOwner(tx, org.ID, in.OwnerEmail)
			if err != nil {
				return err
			}
			out.Owner = *owner
		case len(orgs) > 0 && !in.NewOrg:
			return apierror.Conflict("FlagBridge is already bootstrapped (organization %s exists); ask for another organization-wide key with --new-key", orgs[0].ID)
		default:
			email, err := input.Email("owner_email", in.OwnerEmail)
			if err != nil {
				return err
			}
			name, err := input.Name("owner_name", in.OwnerName, "", true)
			if err != nil {
				return err
			}
			id, err := apikey.NewID("org")
			if err != nil {
				return err
			}
			out.Organization = tenancy.Organization{ID: id, Name: orgName, CreatedAt: s.env.Timestamp()}
			out.Created = true
			if err := tenancy.PutOrganization(tx, out.Organization); err != nil {
				return err
			}
			owner, err := s.Identity.AddMember(tx, id, email, name, authz.RoleOwner)
			if err != nil {
				return err
			}
			out.Owner = *owner
		}
		rec, secret, err := s.Keys.Mint(tx, keys.Spec{
			Scope: authz.Organization(out.Organization.ID), Type: apikey.Admin,
			Permissions: apikey.AllPermissions, Name: keyName, Owner: out.Owner.ID,
		})
		if err != nil {
			return err
		}
		out.Record, out.Key = rec, secret
		if passwordHash != "" {
			if err := s.Identity.SetPasswordHash(tx, out.Owner.Email, passwordHash); err != nil {
				return err
			}
		}
		// By the system (the command line), for the owner: a new
		// organization, or a new organization-wide key of one.
		c := audit.Change{Org: out.Organization.ID, Action: audit.KeyCreated, Target: audit.Target{Type: "api_key", ID: rec.ID}}
		if out.Created {
			c.Action, c.Target = audit.OrganizationBootstrapped, audit.Target{Type: "organization", ID: out.Organization.ID}
		}
		return audit.Record(ctx, tx, nil, s.env.Now(), c)
	})
	if err != nil {
		return nil, err
	}
	out.Principal = authz.ForKey(out.Record)
	return out, nil
}

func pickOrg(orgs []tenancy.Organization, id string) (tenancy.Organization, error) {
	if id != "" {
		for _, o := range orgs {
			if o.ID == id {
				return o, nil
			}
		}
		return tenancy.Organization{}, apierror.NotFound("organization %q not found", id)
	}
	switch len(orgs) {
	case 0:
		return tenancy.Organization{}, apierror.Conflict("FlagBridge is not bootstrapped yet; run bootstrap without --new-key first")
	case 1:
		return orgs[0], nil
	}
	return tenancy.Organization{}, apierror.Invalid("there are %d organizations; name one with --org", len(orgs))
}

package admin

import (
	"context"
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
}

// BootstrapResult is what bootstrapping made. Key is shown once.
type BootstrapResult struct {
	Organization Organization   `json:"organization"`
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
		case len(orgs) > 0 && !in.NewOrg:
			return apierror.Conflict("FlagBridge is already bootstrapped (organization %s exists); ask for another organization-wide key with --new-key", orgs[0].ID)
		default:
			id, err := apikey.NewID("org")
			if err != nil {
				return err
			}
			out.Organization = Organization{ID: id, Name: orgName, CreatedAt: s.timestamp()}
			out.Created = true
			if err := putJSON(tx, colOrgs, id, out.Organization); err != nil {
				return err
			}
		}
		rec, secret, err := s.newKey(keySpec{
			org: out.Organization.ID, typ: apikey.Admin, perms: apikey.AllPermissions, name: keyName,
		})
		if err != nil {
			return err
		}
		out.Record, out.Key = rec, secret
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

package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin/audit"
	"github.com/flagbridge/flagbridge/admin/customers"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/routes"
)

// ListProjects serves GET /v1/projects.
func (h *Handler) ListProjects(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	ps, err := h.admin.Tenancy.ListProjects(r.Context(), p)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(ps))
	return nil
}

// CreateProject serves POST /v1/projects.
func (h *Handler) CreateProject(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in tenancy.CreateProjectInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	pr, envs, err := h.admin.Tenancy.CreateProject(r.Context(), p, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", routes.ByName(routes.GetProject).Path(pr.Slug))
	apierror.WriteJSON(w, http.StatusCreated, projectView{*pr, envs})
	return nil
}

// GetProject serves GET /v1/projects/{project}.
func (h *Handler) GetProject(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	pr, envs, err := h.admin.Tenancy.GetProject(r.Context(), p, r.PathValue("project"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, projectView{*pr, envs})
	return nil
}

// DeleteProject serves DELETE /v1/projects/{project}.
func (h *Handler) DeleteProject(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	if err := h.admin.DeleteProject(r.Context(), p, r.PathValue("project")); err != nil {
		return err
	}
	// 204 is cacheable by default; like every other API response it is not.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ListEnvironments serves GET /v1/projects/{project}/environments.
func (h *Handler) ListEnvironments(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	envs, err := h.admin.Tenancy.ListEnvironments(r.Context(), p, r.PathValue("project"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(envs))
	return nil
}

// CreateEnvironment serves POST /v1/projects/{project}/environments.
func (h *Handler) CreateEnvironment(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in tenancy.CreateEnvironmentInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	e, err := h.admin.Tenancy.CreateEnvironment(r.Context(), p, r.PathValue("project"), in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusCreated, e)
	return nil
}

// ListKeys serves GET /v1/projects/{project}/api-keys. With usage=true
// each key carries what its buckets hold; near_limit=true lists only the
// keys with a bucket at least edge.NearLimitShare spent (with usage).
func (h *Handler) ListKeys(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	withUsage, err := queryBool(r, "usage")
	if err != nil {
		return err
	}
	near, err := queryBool(r, "near_limit")
	if err != nil {
		return err
	}
	keys, err := h.admin.Keys.ListKeys(r.Context(), p, r.PathValue("project"))
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]keyView, 0, len(keys))
	for i := range keys {
		v := viewKey(&keys[i], now)
		if withUsage || near {
			u, err := h.keyUsage(r.Context(), keys[i].Record)
			if err != nil {
				return err
			}
			if near && !u.Near() {
				continue
			}
			v.Usage = u
		}
		views = append(views, v)
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(views))
	return nil
}

// keyUsage is what rec's buckets hold; a limiter that does not answer is
// a storage failure, as for a request it could not check.
func (h *Handler) keyUsage(ctx context.Context, rec *apikey.Record) (edge.KeyUsage, error) {
	if h.usage == nil {
		// Only a router built without the guard, which serves nothing.
		return nil, apierror.Internal
	}
	u, err := h.usage.KeyUsage(ctx, rec)
	if err != nil {
		h.log.Error("reading a key's rate-limit usage", zap.String("key_id", rec.ID), zap.Error(err))
		return nil, apierror.StorageDown
	}
	return u, nil
}

// queryBool reads an optional boolean query parameter: absent is false.
func queryBool(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, apierror.Invalid("%s: %q is not a boolean; use true or false", name, v)
	}
}

// queryLimit reads a page size from ?limit= (0 if absent: the service's
// default); the service checks it against max too.
func queryLimit(r *http.Request, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, apierror.Invalid("limit: %q is not a whole number between 1 and %d", s, max)
	}
	return n, nil
}

// CreateKey serves POST /v1/projects/{project}/api-keys.
func (h *Handler) CreateKey(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in keys.CreateInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	k, err := h.admin.Keys.CreateKey(r.Context(), p, r.PathValue("project"), in)
	if err != nil {
		return err
	}
	v := viewKey(&k.Key, time.Now())
	v.Key = k.Secret
	w.Header().Set("Location", routes.ByName(routes.GetKey).Path(k.ID))
	apierror.WriteJSON(w, http.StatusCreated, v)
	return nil
}

// GetKey serves GET /v1/api-keys/{id}; with usage=true the key carries
// what its buckets hold.
func (h *Handler) GetKey(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	withUsage, err := queryBool(r, "usage")
	if err != nil {
		return err
	}
	k, err := h.admin.Keys.GetKey(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := viewKey(k, time.Now())
	if withUsage {
		if v.Usage, err = h.keyUsage(r.Context(), k.Record); err != nil {
			return err
		}
	}
	apierror.WriteJSON(w, http.StatusOK, v)
	return nil
}

// UpdateKey serves PATCH /v1/api-keys/{id}.
func (h *Handler) UpdateKey(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in keys.UpdateInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	k, err := h.admin.Keys.UpdateKey(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, viewKey(k, time.Now()))
	return nil
}

// RotateKey serves POST /v1/api-keys/{id}/rotate.
func (h *Handler) RotateKey(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in keys.RotateInput
	if err := decodeJSON(r, &in, true); err != nil {
		return err
	}
	k, err := h.admin.Keys.RotateKey(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	v := viewKey(&k.Key, time.Now())
	v.Key = k.Secret
	apierror.WriteJSON(w, http.StatusOK, v)
	return nil
}

// RevokeKey serves DELETE /v1/api-keys/{id}.
func (h *Handler) RevokeKey(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	k, err := h.admin.Keys.RevokeKey(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, viewKey(k, time.Now()))
	return nil
}

// ListIdentities serves GET /v1/projects/{project}/identities.
func (h *Handler) ListIdentities(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	ids, err := h.admin.Identities.ListIdentities(r.Context(), p, r.PathValue("project"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(ids))
	return nil
}

// GetIdentity serves GET /v1/projects/{project}/identities/{identity}.
func (h *Handler) GetIdentity(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	id, err := h.admin.Identities.GetIdentity(r.Context(), p, r.PathValue("project"), r.PathValue("identity"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, id)
	return nil
}

// PutIdentity serves PUT /v1/projects/{project}/identities/{identity}: 201
// when it creates the identity, 200 when it replaces one.
func (h *Handler) PutIdentity(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in customers.PutInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	id, created, err := h.admin.Identities.PutIdentity(r.Context(), p, r.PathValue("project"), r.PathValue("identity"), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", routes.ByName(routes.GetIdentity).Path(id.Project, id.Slug))
	}
	apierror.WriteJSON(w, status, id)
	return nil
}

// DeleteIdentity serves DELETE /v1/projects/{project}/identities/{identity}.
func (h *Handler) DeleteIdentity(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	if err := h.admin.Identities.DeleteIdentity(r.Context(), p, r.PathValue("project"), r.PathValue("identity")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ListMembers serves GET /v1/members.
func (h *Handler) ListMembers(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	members, err := h.admin.Identity.ListMembers(r.Context(), p)
	if err != nil {
		return err
	}
	views := make([]identity.Profile, len(members))
	for i := range members {
		views[i] = members[i].Profile()
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(views))
	return nil
}

// InviteMember serves POST /v1/members/invitations: the invitation link is
// in the answer, and nowhere else, ever.
func (h *Handler) InviteMember(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in identity.InviteInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	token, inv, err := h.admin.Identity.InviteMember(r.Context(), p, in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusCreated, inviteView{
		Email: inv.Email, Name: inv.Name, Role: string(inv.Role), ExpiresAt: inv.ExpiresAt,
		URL: InviteURL(r.Host, token),
	})
	return nil
}

// InviteURL is the dashboard's link to an invitation: the token travels in
// the fragment, which browsers never send, so it reaches no server log.
func InviteURL(host, token string) string {
	return "https://" + host + routes.ByName(routes.DashboardPage).Path() + "#/invite/" + token
}

// RemoveMember serves DELETE /v1/members/{id}.
func (h *Handler) RemoveMember(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	if err := h.admin.Identity.RemoveMember(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// auditPage is the answer of GET /v1/audit-log: a page of entries, newest
// first, and the cursor of the next page if there is one.
type auditPage struct {
	Data       []audit.Entry `json:"data"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// ndjson is the media type of an export: one entry per line.
const ndjson = "application/x-ndjson"

// ListAuditLog serves GET /v1/audit-log: a page of the entries the
// filters select that the caller's scope covers, or, with Accept:
// application/x-ndjson, all of them as NDJSON (an export).
func (h *Handler) ListAuditLog(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	q, err := audit.ParseQuery(r.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	if strings.Contains(r.Header.Get("Accept"), ndjson) {
		started := false
		enc := json.NewEncoder(w)
		err := h.admin.Audit.Export(r.Context(), p, q, func(e *audit.Entry) error {
			if !started {
				started = true
				w.Header().Set("Content-Type", ndjson)
				w.WriteHeader(http.StatusOK)
			}
			return enc.Encode(e)
		})
		if err != nil && started {
			// The answer is under way: cut it short, so that the export
			// does not look complete.
			panic(http.ErrAbortHandler)
		}
		if err == nil && !started {
			w.Header().Set("Content-Type", ndjson)
			w.WriteHeader(http.StatusOK)
		}
		return err
	}
	page, err := h.admin.Audit.List(r.Context(), p, q)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, auditPage{Data: page.Entries, NextCursor: page.Next})
	return nil
}

// CreateWebhook serves POST /v1/projects/{project}/webhooks: the signing
// secret is in the answer, and nowhere else, ever.
func (h *Handler) CreateWebhook(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in audit.WebhookInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	wh, err := h.admin.Audit.CreateWebhook(r.Context(), p, r.PathValue("project"), in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusCreated, wh)
	return nil
}

// ListWebhooks serves GET /v1/projects/{project}/webhooks.
func (h *Handler) ListWebhooks(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	ws, err := h.admin.Audit.ListWebhooks(r.Context(), p, r.PathValue("project"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(ws))
	return nil
}

// DeleteWebhook serves DELETE /v1/projects/{project}/webhooks/{webhook}.
func (h *Handler) DeleteWebhook(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	if err := h.admin.Audit.DeleteWebhook(r.Context(), p, r.PathValue("project"), r.PathValue("webhook")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ListDeliveries serves GET .../webhooks/{webhook}/deliveries: the
// delivery log, newest first (?limit=).
func (h *Handler) ListDeliveries(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	limit, err := queryLimit(r, audit.MaxLimit)
	if err != nil {
		return err
	}
	ds, err := h.admin.Audit.ListDeliveries(r.Context(), p, r.PathValue("project"), r.PathValue("webhook"), limit)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(ds))
	return nil
}

// ReplayDelivery serves POST .../deliveries/{delivery}/replay: the
// delivery is sent again, now.
func (h *Handler) ReplayDelivery(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	d, err := h.admin.Audit.ReplayDelivery(r.Context(), p, r.PathValue("project"), r.PathValue("webhook"), r.PathValue("delivery"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusAccepted, d)
	return nil
}

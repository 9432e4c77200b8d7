package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
)

// sessionView is a testing session as the API shows it.
type sessionView struct {
	ID          string                     `json:"id"`
	Project     string                     `json:"project"`
	Environment string                     `json:"environment"`
	CreatedAt   time.Time                  `json:"created_at"`
	ExpiresAt   time.Time                  `json:"expires_at"`
	Overrides   map[string]json.RawMessage `json:"overrides"`
}

func viewSession(ts *flags.TestingSession) sessionView {
	return sessionView{ts.ID, ts.Project, ts.Environment, ts.CreatedAt, ts.ExpiresAt, ts.Overrides}
}

// CreateSession serves POST /v1/testing/sessions.
func (h *Handler) CreateSession(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in flags.CreateSessionInput
	if err := decodeJSON(r, &in, true); err != nil {
		return err
	}
	ts, err := h.admin.Flags.CreateSession(r.Context(), p, in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusCreated, viewSession(ts))
	return nil
}

// SetOverrides serves POST /v1/testing/sessions/{id}/overrides.
func (h *Handler) SetOverrides(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	var in flags.SetOverridesInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	ts, err := h.admin.Flags.SetOverrides(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, viewSession(ts))
	return nil
}

// DeleteSession serves DELETE /v1/testing/sessions/{id}.
func (h *Handler) DeleteSession(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	if err := h.admin.Flags.DeleteSession(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

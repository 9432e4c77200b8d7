package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
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

func viewSession(ts *admin.TestingSession) sessionView {
	return sessionView{ts.ID, ts.Project, ts.Environment, ts.CreatedAt, ts.ExpiresAt, ts.Overrides}
}

func (h *Handler) createSession(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	var in admin.CreateSessionInput
	if err := decodeJSON(r, &in, true); err != nil {
		return err
	}
	ts, err := h.admin.CreateSession(r.Context(), caller, in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusCreated, viewSession(ts))
	return nil
}

func (h *Handler) setOverrides(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	var in admin.SetOverridesInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	ts, err := h.admin.SetOverrides(r.Context(), caller, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, viewSession(ts))
	return nil
}

func (h *Handler) deleteSession(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	if err := h.admin.DeleteSession(r.Context(), caller, r.PathValue("id")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

package api

import (
	"net/http"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
)

func (h *Handler) listProjects(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	ps, err := h.admin.ListProjects(r.Context(), caller)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(ps))
	return nil
}

func (h *Handler) createProject(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	var in admin.CreateProjectInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	p, err := h.admin.CreateProject(r.Context(), caller, in)
	if err != nil {
		return err
	}
	_, envs, err := h.admin.GetProject(r.Context(), caller, p.Slug)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/projects/"+p.Slug)
	apierror.WriteJSON(w, http.StatusCreated, projectView{*p, envs})
	return nil
}

func (h *Handler) getProject(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	p, envs, err := h.admin.GetProject(r.Context(), caller, r.PathValue("project"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, projectView{*p, envs})
	return nil
}

func (h *Handler) deleteProject(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	if err := h.admin.DeleteProject(r.Context(), caller, r.PathValue("project")); err != nil {
		return err
	}
	// 204 is cacheable by default; like every other API response it is not.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listEnvironments(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	envs, err := h.admin.ListEnvironments(r.Context(), caller, r.PathValue("project"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(envs))
	return nil
}

func (h *Handler) createEnvironment(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	var in admin.CreateEnvironmentInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	e, err := h.admin.CreateEnvironment(r.Context(), caller, r.PathValue("project"), in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusCreated, e)
	return nil
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	keys, err := h.admin.ListKeys(r.Context(), caller, r.PathValue("project"))
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]keyView, len(keys))
	for i := range keys {
		views[i] = viewKey(&keys[i], now)
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(views))
	return nil
}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	var in admin.CreateKeyInput
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	k, err := h.admin.CreateKey(r.Context(), caller, r.PathValue("project"), in)
	if err != nil {
		return err
	}
	v := viewKey(&k.Key, time.Now())
	v.Key = k.Secret
	w.Header().Set("Location", "/v1/api-keys/"+k.ID)
	apierror.WriteJSON(w, http.StatusCreated, v)
	return nil
}

func (h *Handler) getKey(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	k, err := h.admin.GetKey(r.Context(), caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, viewKey(k, time.Now()))
	return nil
}

func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	var in admin.RotateKeyInput
	if err := decodeJSON(r, &in, true); err != nil {
		return err
	}
	k, err := h.admin.RotateKey(r.Context(), caller, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	v := viewKey(&k.Key, time.Now())
	v.Key = k.Secret
	apierror.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, caller *apikey.Record) error {
	k, err := h.admin.RevokeKey(r.Context(), caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, viewKey(k, time.Now()))
	return nil
}

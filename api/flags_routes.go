package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/evaluation"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
)

// MaxFlagSetBytes bounds a flag-set document sent to PUT .../flags.
const MaxFlagSetBytes = 4 << 20

// HeaderFlagSetVersion carries the version of the flag set an answer comes
// from; the ETag of the admin flag endpoints holds the same number. It is
// in Go's canonical form, as it indexes http.Header directly.
const HeaderFlagSetVersion = "Flagbridge-Flag-Set-Version"

func setVersion(w http.ResponseWriter, ev *evaluation.Evaluation) {
	w.Header()[HeaderFlagSetVersion] = []string{ev.Set.VersionText}
}

func setFlagSetVersion(w http.ResponseWriter, version int64) {
	v := strconv.FormatInt(version, 10)
	w.Header().Set(HeaderFlagSetVersion, v)
	w.Header().Set("ETag", `"`+v+`"`)
}

// precondition reads If-Match: the flag-set version the client last saw
// (its ETag, or the bare number).
func precondition(r *http.Request) (flags.Precondition, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		// "*" asks only that the set exists, and every environment has one.
		return flags.Precondition{}, nil
	}
	n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
	if err != nil || n < 0 {
		return flags.Precondition{}, apierror.Invalid("If-Match must be a flag-set version such as \"3\", not %s", v)
	}
	return flags.Precondition{Version: n, Set: true}, nil
}

// writeRawJSON sends a stored JSON document as it is.
func writeRawJSON(w http.ResponseWriter, status int, doc []byte) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, doc, "", "  "); err != nil {
		buf.Reset()
		buf.Write(doc)
	}
	buf.WriteByte('\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// GetFlagSet serves GET .../environments/{env}/flags.
func (h *Handler) GetFlagSet(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	fs, err := h.admin.Flags.GetFlagSet(r.Context(), p, r.PathValue("project"), r.PathValue("env"))
	if err != nil {
		return err
	}
	setFlagSetVersion(w, fs.Version)
	writeRawJSON(w, http.StatusOK, fs.Document)
	return nil
}

// flagSetWritten is the answer to a write of flags.
type flagSetWritten struct {
	Version   int64  `json:"version"`
	UpdatedAt string `json:"updated_at"`
	Flags     int    `json:"flags"`
}

func written(fs *flags.FlagSet) flagSetWritten {
	var top struct {
		Flags map[string]json.RawMessage `json:"flags"`
	}
	_ = json.Unmarshal(fs.Document, &top)
	return flagSetWritten{Version: fs.Version, UpdatedAt: fs.UpdatedAt.Format("2006-01-02T15:04:05Z07:00"), Flags: len(top.Flags)}
}

// PutFlagSet serves PUT .../environments/{env}/flags.
func (h *Handler) PutFlagSet(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	pre, err := precondition(r)
	if err != nil {
		return err
	}
	body, err := jsonbody.Read(r, MaxFlagSetBytes)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return apierror.Invalid("request body is required (a flagd flag-definition document)")
	}
	fs, err := h.admin.Flags.PutFlagSet(r.Context(), p, r.PathValue("project"), r.PathValue("env"), body, pre)
	if err != nil {
		return err
	}
	setFlagSetVersion(w, fs.Version)
	apierror.WriteJSON(w, http.StatusOK, written(fs))
	return nil
}

// GetFlag serves GET .../environments/{env}/flags/{flag}.
func (h *Handler) GetFlag(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	def, version, err := h.admin.Flags.GetFlag(r.Context(), p, r.PathValue("project"), r.PathValue("env"), r.PathValue("flag"))
	if err != nil {
		return err
	}
	setFlagSetVersion(w, version)
	writeRawJSON(w, http.StatusOK, def)
	return nil
}

// PutFlag serves PUT .../environments/{env}/flags/{flag}.
func (h *Handler) PutFlag(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	pre, err := precondition(r)
	if err != nil {
		return err
	}
	body, err := jsonbody.Read(r, MaxFlagSetBytes)
	if err != nil {
		return err
	}
	fs, created, err := h.admin.Flags.PutFlag(r.Context(), p, r.PathValue("project"), r.PathValue("env"), r.PathValue("flag"), body, pre)
	if err != nil {
		return err
	}
	setFlagSetVersion(w, fs.Version)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	apierror.WriteJSON(w, status, written(fs))
	return nil
}

// DeleteFlag serves DELETE .../environments/{env}/flags/{flag}.
func (h *Handler) DeleteFlag(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	pre, err := precondition(r)
	if err != nil {
		return err
	}
	fs, err := h.admin.Flags.DeleteFlag(r.Context(), p, r.PathValue("project"), r.PathValue("env"), r.PathValue("flag"), pre)
	if err != nil {
		return err
	}
	setFlagSetVersion(w, fs.Version)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// versionParam reads a version from the path or the query; def if absent
// and def is not 0.
func versionParam(name, s string, def int64) (int64, error) {
	if s == "" && def != 0 {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, apierror.Invalid("%s: %q is not a flag-set version (1 or more)", name, s)
	}
	return n, nil
}

// ListFlagVersions serves GET .../environments/{env}/flags/versions:
// the kept versions, newest first, without their documents (?before=n
// for older ones, ?limit=).
func (h *Handler) ListFlagVersions(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	q := r.URL.Query()
	var before int64
	if s := q.Get("before"); s != "" {
		var err error
		if before, err = versionParam("before", s, 0); err != nil {
			return err
		}
	}
	limit, err := queryLimit(r, flags.MaxVersionsListed)
	if err != nil {
		return err
	}
	vs, err := h.admin.Flags.ListVersions(r.Context(), p, r.PathValue("project"), r.PathValue("env"), before, limit)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, listOf(vs))
	return nil
}

// GetFlagVersion serves GET .../flags/versions/{version}: that version,
// with its document.
func (h *Handler) GetFlagVersion(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	n, err := versionParam("version", r.PathValue("version"), 0)
	if err != nil {
		return err
	}
	v, err := h.admin.Flags.GetVersion(r.Context(), p, r.PathValue("project"), r.PathValue("env"), n)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, v)
	return nil
}

// DiffFlagVersions serves GET .../flags/versions/{version}/diff: what
// that version changed from ?from= (default: the version before it).
func (h *Handler) DiffFlagVersions(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	to, err := versionParam("version", r.PathValue("version"), 0)
	if err != nil {
		return err
	}
	from, err := versionParam("from", r.URL.Query().Get("from"), max(to-1, 1))
	if err != nil {
		return err
	}
	d, err := h.admin.Flags.DiffVersions(r.Context(), p, r.PathValue("project"), r.PathValue("env"), from, to)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, d)
	return nil
}

// RevertFlagSet serves POST .../flags/revert with {"version": n}: n's
// document becomes a new version (If-Match honoured).
func (h *Handler) RevertFlagSet(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	pre, err := precondition(r)
	if err != nil {
		return err
	}
	var in struct {
		Version int64 `json:"version"`
	}
	if err := decodeJSON(r, &in, false); err != nil {
		return err
	}
	if in.Version < 1 {
		return apierror.Invalid("version is required: the flag-set version to restore (1 or more)")
	}
	fs, err := h.admin.Flags.Revert(r.Context(), p, r.PathValue("project"), r.PathValue("env"), in.Version, pre)
	if err != nil {
		return err
	}
	setFlagSetVersion(w, fs.Version)
	apierror.WriteJSON(w, http.StatusOK, written(fs))
	return nil
}

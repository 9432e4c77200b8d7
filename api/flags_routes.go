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

package dashboard

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// sessionView is what the page learns about who is logged in.
type sessionView struct {
	Member       memberView `json:"member"`
	Organization orgView    `json:"organization"`
	CSRFToken    string     `json:"csrf_token"`
}

type memberView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

type orgView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func viewMember(m *admin.Member) memberView {
	return memberView{m.ID, m.Email, m.Name, string(m.Role), m.CreatedAt}
}

func (h *Handler) sessionView(ctx context.Context, s *session) (*sessionView, error) {
	v, err := h.cfg.Admin.Viewer(ctx, s.principal)
	if err != nil {
		return nil, err
	}
	return &sessionView{viewMember(s.member), orgView{v.Organization.ID, v.Organization.Name}, s.login.CSRF}, nil
}

func (h *Handler) getSession(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := h.sessionView(r.Context(), s)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, v)
	return nil
}

// loginAllowed spends one attempt from the client address's and the
// account's login buckets, refusing once either is empty.
func (h *Handler) loginAllowed(w http.ResponseWriter, r *http.Request, email string) error {
	if h.cfg.Limiter == nil {
		return nil
	}
	checks := []struct {
		bucket string
		limit  ratelimit.Limit
	}{
		{"login-ip:" + clientIP(r.Context()), LoginPerIP},
		{"login-account:" + strings.ToLower(strings.TrimSpace(email)), LoginPerAccount},
	}
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		res, err := h.cfg.Limiter.Allow(ctx, c.bucket, c.limit)
		cancel()
		if err != nil {
			return err // fail closed: logins are what attackers probe
		}
		if !res.Allowed {
			res.SetHeaders(w.Header(), time.Now())
			return apierror.New(http.StatusTooManyRequests, apierror.CodeRateLimited,
				"Too many login attempts; try again in a few minutes")
		}
	}
	return nil
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request, _ *session) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if err := h.loginAllowed(w, r, in.Email); err != nil {
		return err
	}
	return h.loginAs(w, r, in.Email, in.Password, "")
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := h.cfg.Admin.Logout(r.Context(), s.token); err != nil {
		return err
	}
	clearSessionCookie(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) getInvite(w http.ResponseWriter, r *http.Request, _ *session) error {
	inv, orgName, err := h.cfg.Admin.InviteInfo(r.Context(), r.PathValue("token"))
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, map[string]any{
		"email": inv.Email, "name": inv.Name, "role": inv.Role,
		"organization": orgName, "expires_at": inv.ExpiresAt,
	})
	return nil
}

func (h *Handler) acceptInvite(w http.ResponseWriter, r *http.Request, _ *session) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	inv, _, err := h.cfg.Admin.InviteInfo(r.Context(), r.PathValue("token"))
	if err != nil {
		return err
	}
	// Accepting proves a password for existing accounts: limited like a login.
	if err := h.loginAllowed(w, r, inv.Email); err != nil {
		return err
	}
	if _, err := h.cfg.Admin.AcceptInvite(r.Context(), r.PathValue("token"), in.Password); err != nil {
		return err
	}
	return h.loginAs(w, r, inv.Email, in.Password, inv.OrgID)
}

// loginAs logs in, to organization org if the account belongs to it (after
// accepting an invitation), and answers with the session.
func (h *Handler) loginAs(w http.ResponseWriter, r *http.Request, email, password, org string) error {
	token, login, m, err := h.cfg.Admin.Login(r.Context(), email, password, org)
	if err != nil {
		return err
	}
	s := &session{token: token, login: login, member: m, principal: admin.Principal(login, m)}
	v, err := h.sessionView(r.Context(), s)
	if err != nil {
		return err
	}
	setSessionCookie(w, token)
	apierror.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (h *Handler) listMembers(w http.ResponseWriter, r *http.Request, s *session) error {
	members, err := h.cfg.Admin.ListMembers(r.Context(), s.principal)
	if err != nil {
		return err
	}
	views := make([]memberView, len(members))
	for i := range members {
		views[i] = viewMember(&members[i])
	}
	apierror.WriteJSON(w, http.StatusOK, map[string]any{"data": views})
	return nil
}

func (h *Handler) invite(w http.ResponseWriter, r *http.Request, s *session) error {
	var in admin.InviteInput
	if err := decode(r, &in); err != nil {
		return err
	}
	token, inv, err := h.cfg.Admin.InviteMember(r.Context(), s.principal, in)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusCreated, map[string]any{
		"email": inv.Email, "name": inv.Name, "role": inv.Role, "expires_at": inv.ExpiresAt,
		// Shown once: only the token's digest is stored.
		"invite_url": "https://" + r.Host + "/dashboard/#/invite/" + token,
	})
	return nil
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := h.cfg.Admin.RemoveMember(r.Context(), s.principal, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

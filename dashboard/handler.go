package dashboard

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/edge"
	"github.com/flagbridge/flagbridge/internal/jsonbody"
	"github.com/flagbridge/flagbridge/ratelimit"
	"github.com/flagbridge/flagbridge/routes"
)

//go:embed web
var assets embed.FS

// Limits on logging in, against password guessing: per account and per
// client address, counting every attempt (accepting an invitation proves a
// password too, and counts the same).
var (
	LoginPerAccount = ratelimit.Limit{Rate: 10, Period: 15 * time.Minute, Burst: 10}
	LoginPerIP      = ratelimit.Limit{Rate: 30, Period: 15 * time.Minute, Burst: 30}
)

// maxBodyBytes bounds the dashboard's own request bodies.
const maxBodyBytes = 16 << 10

// Spender spends from a rate limit through the edge's one limiter path
// (edge.Guard implements it).
type Spender interface {
	Spend(ctx context.Context, bucket string, limit ratelimit.Limit) (ratelimit.Headers, error)
}

// Handler serves the dashboard's own routes.
type Handler struct {
	identity *identity.Service
	limits   Spender
	static   http.Handler
	// etags holds a content digest per embedded file: embedded files have
	// no modification time, so without it every revalidation would
	// download the file again.
	etags map[string]string
}

// New returns the dashboard over the identity service, spending login
// attempts through limits (nil: unlimited, for tests of other things).
func New(id *identity.Service, limits Spender) *Handler {
	sub, err := fs.Sub(assets, "web")
	if err != nil {
		panic(err) // the embedded folder is part of the build
	}
	return &Handler{
		identity: id, limits: limits,
		static: http.StripPrefix(routes.ByName(routes.DashboardPage).Path(), http.FileServer(http.FS(sub))),
		etags:  etagsOf(sub),
	}
}

// Root redirects /dashboard to the page.
func (h *Handler) Root(w http.ResponseWriter, r *http.Request) error {
	http.Redirect(w, r, routes.ByName(routes.DashboardPage).Path(), http.StatusPermanentRedirect)
	return nil
}

// Static serves the page and its assets. The page may be cached only after
// revalidation, so that a new build is picked up at once.
func (h *Handler) Static(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-cache")
	name := strings.TrimPrefix(r.URL.Path, routes.ByName(routes.DashboardPage).Path())
	if name == "" {
		name = "index.html"
	}
	if etag, ok := h.etags[name]; ok {
		w.Header().Set("ETag", etag) // http.FileServer answers If-None-Match from it
	}
	h.static.ServeHTTP(w, r)
	return nil
}

// sessionView is what the page learns about who is logged in.
type sessionView struct {
	Member       identity.Profile `json:"member"`
	Organization orgView          `json:"organization"`
	CSRFToken    string           `json:"csrf_token"`
}

type orgView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// view answers with a session: the member, their organization and the
// session's CSRF token.
func (h *Handler) view(w http.ResponseWriter, r *http.Request, p *authz.Principal, csrf string) error {
	v, err := h.identity.Viewer(r.Context(), p)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, sessionView{
		v.Member.Profile(), orgView{v.Organization.ID, v.Organization.Name}, csrf,
	})
	return nil
}

// Session serves GET /dashboard/api/session: the session the page is
// logged in with, or 204 when there is none (a page that was never logged
// in asks this first, and an answer of "no" is not an error).
func (h *Handler) Session(w http.ResponseWriter, r *http.Request, p *authz.Principal) error {
	w.Header().Set("Cache-Control", "no-store")
	if p == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	sess, _, err := h.identity.Session(r.Context(), edge.SessionToken(r))
	if err != nil {
		return err
	}
	return h.view(w, r, p, sess.CSRF)
}

// loginAllowed spends one attempt from the client address's and the
// account's login buckets, refusing once either is empty.
func (h *Handler) loginAllowed(w http.ResponseWriter, r *http.Request, clientIP, email string) error {
	if h.limits == nil {
		return nil
	}
	for _, c := range []struct {
		bucket string
		limit  ratelimit.Limit
	}{
		{"login-ip:" + edge.ClientKey(clientIP), LoginPerIP},
		{"login-account:" + strings.ToLower(strings.TrimSpace(email)), LoginPerAccount},
	} {
		rate, err := h.limits.Spend(r.Context(), c.bucket, c.limit)
		var ae *apierror.Error
		if errors.As(err, &ae) && ae.Code == apierror.CodeRateLimited {
			rate.Apply(w.Header())
			return apierror.New(http.StatusTooManyRequests, apierror.CodeRateLimited,
				"Too many login attempts; try again in a few minutes")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Login serves POST /dashboard/api/login.
func (h *Handler) Login(w http.ResponseWriter, r *http.Request, clientIP string) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := jsonbody.Decode(r, &in, maxBodyBytes, false); err != nil {
		return err
	}
	if err := h.loginAllowed(w, r, clientIP, in.Email); err != nil {
		return err
	}
	return h.loginAs(w, r, in.Email, in.Password, "")
}

// loginAs logs in, to organization org if the account belongs to it (after
// accepting an invitation), and answers with the session.
func (h *Handler) loginAs(w http.ResponseWriter, r *http.Request, email, password, org string) error {
	token, login, m, err := h.identity.Login(r.Context(), email, password, org)
	if err != nil {
		return err
	}
	setSessionCookie(w, token)
	return h.view(w, r, authz.ForMember(login.OrgID, m.ID, m.Role), login.CSRF)
}

// Logout serves POST /dashboard/api/logout.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) error {
	if err := h.identity.Logout(r.Context(), edge.SessionToken(r)); err != nil {
		return err
	}
	clearSessionCookie(w)
	// Like every answer of the dashboard's API: nothing of a session may
	// be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// inviteToken is the body naming an invitation.
type inviteToken struct {
	Token string `json:"token"`
}

// InviteLookup serves POST /dashboard/api/invites/lookup: what an
// invitation is for, to show before it is accepted.
func (h *Handler) InviteLookup(w http.ResponseWriter, r *http.Request) error {
	var in inviteToken
	if err := jsonbody.Decode(r, &in, maxBodyBytes, false); err != nil {
		return err
	}
	inv, orgName, err := h.identity.InviteInfo(r.Context(), in.Token)
	if err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, map[string]any{
		"email": inv.Email, "name": inv.Name, "role": inv.Role,
		"organization": orgName, "expires_at": inv.ExpiresAt,
	})
	return nil
}

// InviteAccept serves POST /dashboard/api/invites/accept: the invited
// person joins and is logged in.
func (h *Handler) InviteAccept(w http.ResponseWriter, r *http.Request, clientIP string) error {
	var in struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if err := jsonbody.Decode(r, &in, maxBodyBytes, false); err != nil {
		return err
	}
	inv, _, err := h.identity.InviteInfo(r.Context(), in.Token)
	if err != nil {
		return err
	}
	// Accepting proves a password for existing accounts: limited like a login.
	if err := h.loginAllowed(w, r, clientIP, inv.Email); err != nil {
		return err
	}
	if _, err := h.identity.AcceptInvite(r.Context(), in.Token, in.Password); err != nil {
		return err
	}
	return h.loginAs(w, r, inv.Email, in.Password, inv.OrgID)
}

// setSessionCookie hands the browser its session token: HttpOnly (no
// script reads it), Secure, SameSite=Strict (no other site sends it), for
// the session's absolute lifetime.
func setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: edge.SessionCookie, Value: token, Path: "/",
		MaxAge: int(identity.SessionMaxAge / time.Second), HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: edge.SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// etagsOf digests every file of fsys.
func etagsOf(fsys fs.FS) map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return out
}

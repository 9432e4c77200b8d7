package dashboard

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/api"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/internal/route"
	"github.com/flagbridge/flagbridge/ratelimit"
)

//go:embed web
var assets embed.FS

// CookieName is the session cookie. The __Host- prefix makes browsers
// refuse it unless it is Secure, for the whole host and set by it.
const CookieName = "__Host-flagbridge_session"

// HeaderCSRF carries the session's CSRF token on state changes.
const HeaderCSRF = "X-CSRF-Token"

// Limits on logging in, against password guessing: per account and per
// client address, counting every attempt.
var (
	LoginPerAccount = ratelimit.Limit{Rate: 10, Period: 15 * time.Minute, Burst: 10}
	LoginPerIP      = ratelimit.Limit{Rate: 30, Period: 15 * time.Minute, Burst: 30}
)

// Config wires the dashboard to the rest of FlagBridge.
type Config struct {
	Admin   *admin.Service
	API     *api.Handler
	Limiter ratelimit.Limiter
	// MemberLimit is each logged-in member's rate limit on the dashboard's
	// API (by default, an admin key's).
	MemberLimit ratelimit.Limit
	Log         *zap.Logger
}

// Handler serves /dashboard.
type Handler struct {
	cfg    Config
	static http.Handler
	// etags holds a content digest per embedded file: embedded files have
	// no modification time, so without it every revalidation would
	// download the file again.
	etags  map[string]string
	routes []endpoint
}

type endpoint struct {
	method  string
	pattern route.Pattern
	// session: the route needs a logged-in member; the handler gets it.
	session bool
	handle  func(h *Handler, w http.ResponseWriter, r *http.Request, s *session) error
}

// session is a request's logged-in member.
type session struct {
	token     string
	login     *admin.LoginSession
	member    *admin.Member
	principal *apikey.Record
}

// New returns the dashboard.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.MemberLimit.IsZero() {
		cfg.MemberLimit = ratelimit.PerMinute(500)
	}
	sub, err := fs.Sub(assets, "web")
	if err != nil {
		panic(err) // the embedded folder is part of the build
	}
	h := &Handler{cfg: cfg, static: http.StripPrefix("/dashboard/", http.FileServer(http.FS(sub))), etags: etagsOf(sub)}
	add := func(method, pattern string, needsSession bool, fn func(*Handler, http.ResponseWriter, *http.Request, *session) error) {
		h.routes = append(h.routes, endpoint{method, route.Compile(pattern), needsSession, fn})
	}
	add("GET", "/dashboard/api/session", true, (*Handler).getSession)
	add("POST", "/dashboard/api/login", false, (*Handler).login)
	add("POST", "/dashboard/api/logout", true, (*Handler).logout)
	add("GET", "/dashboard/api/invites/{token}", false, (*Handler).getInvite)
	add("POST", "/dashboard/api/invites/{token}/accept", false, (*Handler).acceptInvite)
	add("GET", "/dashboard/api/members", true, (*Handler).listMembers)
	add("POST", "/dashboard/api/members/invite", true, (*Handler).invite)
	add("DELETE", "/dashboard/api/members/{id}", true, (*Handler).removeMember)
	return h
}

// Serve answers a request under /dashboard. clientIP is the client's
// address as Caddy established it (trusted proxies included).
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, clientIP string) {
	setSecurityHeaders(w.Header())
	path := r.URL.Path
	switch {
	case path == "/dashboard":
		http.Redirect(w, r, "/dashboard/", http.StatusPermanentRedirect)
		return
	case strings.HasPrefix(path, "/dashboard/api/v1/"):
		h.proxyAPI(w, r)
		return
	case strings.HasPrefix(path, "/dashboard/api/"):
		h.serveAPI(w, r.WithContext(withClientIP(r.Context(), clientIP)))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		apierror.Write(w, apierror.New(http.StatusMethodNotAllowed, apierror.CodeMethodNotAllowed, "use GET"))
		return
	}
	// The page itself may be cached only after revalidation, so that a
	// new build is picked up at once.
	w.Header().Set("Cache-Control", "no-cache")
	name := strings.TrimPrefix(path, "/dashboard/")
	if name == "" {
		name = "index.html"
	}
	if etag, ok := h.etags[name]; ok {
		w.Header().Set("ETag", etag) // http.FileServer answers If-None-Match from it
	}
	h.static.ServeHTTP(w, r)
}

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	for i := range h.routes {
		e := &h.routes[i]
		if e.method != r.Method || !e.pattern.Params(r.URL.Path, r.SetPathValue) {
			continue
		}
		var s *session
		if e.session {
			var err error
			if s, err = h.session(r); err != nil {
				h.fail(w, r, err)
				return
			}
			// Logging out is never rate limited.
			if r.URL.Path != "/dashboard/api/logout" && !h.allowMember(w, r, s) {
				return
			}
		}
		if r.Method != http.MethodGet {
			if err := checkOrigin(r); err != nil {
				h.fail(w, r, err)
				return
			}
			if s != nil && !s.login.CheckCSRF(r.Header.Get(HeaderCSRF)) {
				h.fail(w, r, errCSRF)
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		h.fail(w, r, e.handle(h, w, r.WithContext(ctx), s))
		cancel()
		return
	}
	apierror.Write(w, apierror.NotFound("no endpoint %s %s", r.Method, r.URL.Path))
}

// proxyAPI serves /dashboard/api/v1/... with the REST API, on behalf of
// the logged-in member.
func (h *Handler) proxyAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s, err := h.session(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !h.allowMember(w, r, s) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := checkOrigin(r); err != nil {
			h.fail(w, r, err)
			return
		}
		if !s.login.CheckCSRF(r.Header.Get(HeaderCSRF)) {
			h.fail(w, r, errCSRF)
			return
		}
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/dashboard/api")
	r2.URL.RawPath = ""
	h.cfg.API.Serve(w, r2, s.principal)
}

// allowMember applies the member's rate limit, with its headers.
func (h *Handler) allowMember(w http.ResponseWriter, r *http.Request, s *session) bool {
	if h.cfg.Limiter == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	res, err := h.cfg.Limiter.Allow(ctx, "member:"+s.member.ID, h.cfg.MemberLimit)
	if err != nil {
		h.cfg.Log.Warn("rate limiter unavailable for a dashboard request", zap.Error(err))
		return true // the dashboard is for people; an outage should not lock them out
	}
	res.SetHeaders(w.Header(), time.Now())
	if !res.Allowed {
		apierror.Write(w, apierror.RateLimited(res.RetryAfterSeconds()))
		return false
	}
	return true
}

// session resolves the request's login session from its cookie.
func (h *Handler) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, errLoggedOut
	}
	login, m, err := h.cfg.Admin.Session(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	return &session{token: c.Value, login: login, member: m, principal: admin.Principal(login, m)}, nil
}

var (
	errLoggedOut = apierror.New(http.StatusUnauthorized, apierror.CodeUnauthorized, "Please log in")
	errCSRF      = apierror.Forbidden("This request lacks the page's security token; reload the page and try again")
)

// fail writes err, if any: API errors as they are, anything else as a
// storage failure (logged).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		return
	}
	var ae *apierror.Error
	if errors.As(err, &ae) {
		apierror.Write(w, ae)
		return
	}
	h.cfg.Log.Error("dashboard: storage failure", zap.String("path", r.URL.Path), zap.Error(err))
	apierror.Write(w, apierror.StorageDown)
}

// maxBodyBytes bounds the dashboard's own request bodies.
const maxBodyBytes = 16 << 10

// decode reads a small JSON body strictly: one JSON value, no unknown
// field, nothing after it.
func decode(r *http.Request, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return apierror.Invalid("invalid request body: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	// Decode reads one value and leaves the rest unread; a body such as
	// {"email":"a"}{"email":"b"} or {"email":"a"}} is malformed, not half
	// read.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apierror.Invalid("invalid request body: data after the JSON value")
	}
	return nil
}

type clientIPKey struct{}

func withClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

func clientIP(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey{}).(string)
	return ip
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

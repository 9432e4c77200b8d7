package dashboard

import (
	"net/http"
	"net/url"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
)

// contentSecurityPolicy allows the page's own scripts, styles and API and
// nothing else: no inline script, no framing, no plugins.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

// checkOrigin refuses a state change whose Origin header names another
// site. Browsers send Origin on every cross-origin POST, PUT and DELETE,
// so this stops cross-site requests even before the CSRF token does.
func checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host {
		return apierror.Forbidden("Cross-site requests are not allowed")
	}
	return nil
}

// setSessionCookie hands the browser its session token: HttpOnly (no
// script reads it), Secure, SameSite=Strict (no other site sends it), for
// the session's absolute lifetime.
func setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: "/",
		MaxAge: int(admin.SessionMaxAge / time.Second), HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

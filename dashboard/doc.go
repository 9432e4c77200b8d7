// Package dashboard is the server side of FlagBridge's browser dashboard
// under /dashboard/: its page and assets, embedded in the binary (plain
// HTML, CSS and JavaScript, no build step, no CDN), and what only a browser
// needs: logging in and out, the session's view, and invitations.
//
// It is not a second edge. The edge authenticates the session cookie like
// an API key (the same limiter, storage policy, headers and metrics),
// refuses changes from other origins and without the session's CSRF token,
// and asks the route table what each request needs. Everything else the
// page does is the REST API itself, served under /dashboard/api/v1/ for the
// logged-in member, so every permission check is the API's.
//
// Sessions live server-side in the store (any instance serves them) behind
// an HttpOnly, Secure, SameSite=Strict cookie, with an idle and an absolute
// expiry. Invitation tokens travel only in request bodies (the link carries
// them in its fragment, which browsers never send), so no log holds one.
package dashboard

// Package dashboard serves FlagBridge's browser dashboard under /dashboard/:
// its assets, embedded in the binary (plain HTML, CSS and JavaScript, no
// build step, no CDN), and a small JSON API for the page.
//
// People log in with an e-mail address and a password. The session lives
// server-side in the store (any instance serves it) behind an HttpOnly,
// Secure, SameSite=Strict cookie, with an idle and an absolute expiry.
// Every state change needs the session's CSRF token in X-CSRF-Token and,
// if the browser sends one, a same-origin Origin header.
//
// The dashboard holds no business rules: /dashboard/api/v1/... is the REST
// API itself, called on behalf of the logged-in member through
// admin.Principal, so every permission check is the one the API makes.
// Only logging in and out, invitations and members have routes of their
// own.
package dashboard

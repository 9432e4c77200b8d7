package apikey

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// MaxAllowedOrigins bounds the origins one client key lists.
const MaxAllowedOrigins = 32

// CleanOrigin checks one of a client key's allowed origins and returns it
// as browsers send it in the Origin header (lower case, no default port,
// no trailing slash), so that the edge compares strings. An origin is
// https, or http on a loopback host for local development; it names a
// scheme and a host and nothing else: no path, query, user or wildcard.
func CleanOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin such as https://app.example.com", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an origin: an origin is a scheme and a host (and port), with no path, query or user", s)
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, "*") {
		return "", fmt.Errorf("%q: wildcards are not allowed; list each origin", s)
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme == "https":
		if port == "443" {
			port = ""
		}
	case scheme == "http" && loopback(host):
		if port == "80" {
			port = ""
		}
	case scheme == "http":
		return "", fmt.Errorf("%q: a page served over plain http can be altered on its way, so only https origins are allowed (and http on localhost, for development)", s)
	default:
		return "", fmt.Errorf("%q: the scheme must be https", s)
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host, nil
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CleanOrigins checks a client key's allowed origins (see CleanOrigin):
// at least one, at most MaxAllowedOrigins, each once; it returns them
// cleaned, in their given order.
func CleanOrigins(origins []string) ([]string, error) {
	if len(origins) == 0 {
		return nil, fmt.Errorf("a client key needs at least one allowed origin, such as https://app.example.com")
	}
	if len(origins) > MaxAllowedOrigins {
		return nil, fmt.Errorf("at most %d origins, not %d", MaxAllowedOrigins, len(origins))
	}
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		c, err := CleanOrigin(o)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("%q is listed twice", c)
		}
		out = append(out, c)
	}
	return out, nil
}

// AllowsOrigin reports whether the key admits requests from a page of
// origin (the Origin header, as the browser sent it).
func (r *Record) AllowsOrigin(origin string) bool {
	return slices.Contains(r.AllowedOrigins, origin)
}

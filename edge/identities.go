package edge

import (
	"context"
	"strings"
	"time"

	"github.com/flagbridge/flagbridge/internal/feedcache"
	"github.com/flagbridge/flagbridge/ratelimit"
)

// IdentityLimits are what an identity (a customer whose keys share limits)
// holds that the edge enforces.
type IdentityLimits struct {
	Limits []ratelimit.NamedLimit
	Quota  *ratelimit.Quota
}

// IdentitySource reads identities' shared limits from storage, nil for an
// identity that has none (no record). internal/instance adapts the admin
// service to it.
type IdentitySource interface {
	LookupIdentityLimits(ctx context.Context, org, project, identity string) (*IdentityLimits, error)
}

// IdentityCache holds identities' buckets in process, kept current by the
// change feed like the key cache: an entry is dropped when its identity
// changes (Invalidate with the identity's tag, see IdentityTag), and
// trusted for at most the TTL otherwise.
type IdentityCache struct {
	cache *feedcache.Cache[string, *identityEntry]
}

// identityEntry is a cached identity: its buckets, none when it has no
// limits (or no record).
type identityEntry struct {
	tag    string
	checks []ratelimit.Check
}

// IdentityTag names an identity in the cache and on the change feed:
// "<org>/<project>/<identity>".
func IdentityTag(org, project, identity string) string {
	return org + "/" + project + "/" + identity
}

// NewIdentityCache returns a cache in front of source, with the key
// cache's TTL (zero: the default).
func NewIdentityCache(source IdentitySource, ttl time.Duration) *IdentityCache {
	load := func(ctx context.Context, tag string, _ time.Time) (*identityEntry, error) {
		org, project, identity := splitTag(tag)
		l, err := source.LookupIdentityLimits(ctx, org, project, identity)
		if err != nil {
			return nil, err
		}
		return &identityEntry{tag: tag, checks: identityChecks(l)}, nil
	}
	return &IdentityCache{cache: feedcache.New(load, feedcache.Options[*identityEntry]{
		TTL: ttl, NegativeTTL: ttl,
		Tag:      func(e *identityEntry) (string, bool) { return e.tag, true },
		Negative: func(e *identityEntry) bool { return len(e.checks) == 0 },
	})}
}

// identityChecks are an identity's buckets in its group, beside its keys'
// (whose names start with "key:"); their policy names (IETF fields) start
// with "identity-", apart from the key's own.
func identityChecks(l *IdentityLimits) []ratelimit.Check {
	if l == nil {
		return nil
	}
	var checks []ratelimit.Check
	for _, n := range l.Limits {
		checks = append(checks, ratelimit.Check{Key: "identity:limit:" + n.Name, Name: "identity-" + n.Name, Limit: n.Limit(), Shadow: n.Shadow})
	}
	if q := l.Quota; q != nil {
		checks = append(checks, ratelimit.Check{Key: "identity:quota", Name: "identity-quota", Quota: q.Requests, Period: q.Period})
	}
	return checks
}

func splitTag(tag string) (org, project, identity string) {
	// Organization ids and slugs hold no '/'.
	org, rest, _ := strings.Cut(tag, "/")
	project, identity, _ = strings.Cut(rest, "/")
	return org, project, identity
}

// checks returns the identity's buckets: from the cache, or else from
// storage, bounded by timeout (armed only then: a hit needs no timer).
func (c *IdentityCache) checks(ctx context.Context, tag string, now time.Time, timeout time.Duration) ([]ratelimit.Check, error) {
	if e, ok := c.cache.Cached(tag, now); ok {
		return e.checks, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	e, err := c.cache.Get(ctx, tag, now)
	if err != nil {
		return nil, err
	}
	return e.checks, nil
}

// Invalidate drops the identity tag names (see IdentityTag).
func (c *IdentityCache) Invalidate(tag string) { c.cache.Invalidate(tag) }

// Purge drops every identity, for when change events may have been missed.
func (c *IdentityCache) Purge() { c.cache.Purge() }

// SetTTL changes the safety-net TTL.
func (c *IdentityCache) SetTTL(ttl time.Duration) { c.cache.SetTTL(ttl) }

// Sweep drops entries that are no longer fresh.
func (c *IdentityCache) Sweep(now time.Time) { c.cache.Sweep(now) }

// SetIdentities makes the guard enforce identities' shared limits, read
// through c, on the keys of an identity. Without it only the keys' own
// limits apply. It must be called before the guard serves requests.
func (g *Guard) SetIdentities(c *IdentityCache) { g.identities = c }

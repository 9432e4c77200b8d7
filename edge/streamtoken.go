package edge

import (
	"errors"
	"net/http"

	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/routes"
	"github.com/flagbridge/flagbridge/streams"
)

// StreamTokenParam is the query parameter of an event stream's URL that
// holds its token. It is a credential: kept out of logs like a key.
const StreamTokenParam = "token"

// errBadStreamToken answers a stream token that is malformed, forged or
// expired: the provider evaluates again and gets a new URL.
var errBadStreamToken = apierror.New(http.StatusUnauthorized, apierror.CodeUnauthorized,
	"Invalid or expired stream token; evaluate again for a new event stream URL")

// SetStreamTokens sets what verifies event streams' tokens; without it
// every stream is refused.
func (g *Guard) SetStreamTokens(t *streams.Tokens) { g.streamTokens = t }

// byStreamToken authenticates an event stream by its token: its
// signature and expiry (no storage), then the key it names, as byDigest
// does for a key (cached record, validity, origin, limits on connect,
// what the route needs). The token's claims go to the handler.
func (g *Guard) byStreamToken(r *http.Request, in Request, cfg *Config, m *routes.Match, pol *Policy) Decision {
	now := g.now()
	token := r.URL.Query().Get(StreamTokenParam)
	if token == "" || g.streamTokens == nil {
		return g.refuse(r.Context(), cfg, in, now, errBadStreamToken)
	}
	// Verify's one storage read (the secret, once) is bounded by the
	// store's own timeout.
	claims, err := g.streamTokens.Verify(r.Context(), token)
	switch {
	case errors.Is(err, streams.ErrInvalidToken):
		return g.refuse(r.Context(), cfg, in, now, errBadStreamToken)
	case err != nil:
		g.logStorageError("reading the stream token secret", err)
		return Decision{Err: apierror.StorageDown}
	}
	d := g.byDigest(r, in, cfg, m, pol, now, 0, claims.Digest)
	if d.admission != nil {
		d.admission.Stream = &claims
	}
	return d
}

// Package streams carries flag changes to SDKs as they happen: OFREP's
// event streams (server-sent events). A bulk evaluation answer names a
// stream URL holding a short-lived token (Tokens), since a browser's
// EventSource cannot send the key; a stream gets a refetchEvaluation
// event when the flag set it watches changes (Hub), and ends when its key
// is revoked, rotated past its grace period or expires. Nothing here
// imports Caddy or the edge.
package streams

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/store"
)

// TokenTTL is how long a stream token lets a stream connect: long enough
// for a provider to connect after its bulk evaluation and for EventSource
// to reconnect after a network blip, short enough that a leaked URL is
// soon worthless. A stream that is open stays open after it; a provider
// whose reconnect is refused evaluates again and gets a new URL.
const TokenTTL = 15 * time.Minute

// Claims are what a stream token says: whose stream it is (the digest of
// the key's secret, so that a rotation past its grace period or a
// revocation ends it, as for the key itself), what it watches, and the
// flag-set version the answer that minted it was computed from, so that
// a change between that answer and the connection is not missed.
type Claims struct {
	Digest      apikey.Digest
	Project     string
	Environment string
	// Session is the testing session the answer applied, if any: its
	// changes are the stream's too.
	Session string
	Version int64
	// Revision is the session's revision the answer applied.
	Revision int64
	Expires  time.Time
}

// ErrInvalidToken is a token that is malformed, forged or expired.
var ErrInvalidToken = errors.New("streams: invalid or expired stream token")

const tokenFormat = 1

// Tokens mints and verifies stream tokens, signed (HMAC-SHA256) with a
// secret every instance sharing the store shares, so that any of them
// serves a stream another one handed out. The secret is read from the
// store (or made there) on first use.
type Tokens struct {
	st  store.Store
	now func() time.Time

	mu  sync.Mutex
	key []byte
}

// NewTokens returns tokens signed with the secret kept in st, read once
// (the store bounds that read by its own timeout).
func NewTokens(st store.Store) *Tokens { return &Tokens{st: st, now: time.Now} }

// NewTokensWithKey returns tokens signed with key, for tests.
func NewTokensWithKey(key []byte) *Tokens { return &Tokens{key: key, now: time.Now} }

// secretCollection and secretID hold the signing secret in the store.
const (
	secretCollection = "system"
	secretID         = "stream-token-secret"
)

// secret returns the signing key, reading or making it in the store once.
func (t *Tokens) secret(ctx context.Context) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.key != nil {
		return t.key, nil
	}
	var key []byte
	err := t.st.Update(ctx, func(tx store.Writer) error {
		b, err := tx.Get(secretCollection, secretID)
		switch {
		case err == nil && len(b) == 32:
			key = b
			return nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		return tx.Put(secretCollection, secretID, key)
	})
	if err != nil {
		return nil, fmt.Errorf("streams: reading the token secret: %w", err)
	}
	t.key = key
	return key, nil
}

// Mint returns a token for c, valid for TokenTTL from now (c.Expires is
// set here).
func (t *Tokens) Mint(ctx context.Context, c Claims) (string, error) {
	key, err := t.secret(ctx)
	if err != nil {
		return "", err
	}
	c.Expires = t.now().Add(TokenTTL).Truncate(time.Second)
	body := make([]byte, 0, 72+len(c.Project)+len(c.Environment)+len(c.Session))
	body = append(body, tokenFormat)
	body = append(body, c.Digest[:]...)
	body = binary.BigEndian.AppendUint64(body, uint64(c.Expires.Unix()))
	body = binary.BigEndian.AppendUint64(body, uint64(c.Version))
	body = binary.BigEndian.AppendUint64(body, uint64(c.Revision))
	for _, s := range []string{c.Project, c.Environment, c.Session} {
		body = binary.AppendUvarint(body, uint64(len(s)))
		body = append(body, s...)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(body) + "." + enc.EncodeToString(sign(key, body)), nil
}

// Verify checks a token's signature and expiry and returns its claims.
func (t *Tokens) Verify(ctx context.Context, token string) (Claims, error) {
	key, err := t.secret(ctx)
	if err != nil {
		return Claims{}, err
	}
	if len(token) > 512 {
		return Claims{}, ErrInvalidToken
	}
	b64, sig64, ok := strings.Cut(token, ".")
	enc := base64.RawURLEncoding
	body, err1 := enc.DecodeString(b64)
	sig, err2 := enc.DecodeString(sig64)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(sig, sign(key, body)) {
		return Claims{}, ErrInvalidToken
	}
	c, ok := decodeClaims(body)
	if !ok || !t.now().Before(c.Expires) {
		return Claims{}, ErrInvalidToken
	}
	return c, nil
}

// ETag is the etag of a refetchEvaluation event for flag-set version v,
// which providers send back as flagConfigEtag: the version, quoted as an
// entity tag.
func ETag(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

// ParseETag is the version an ETag names, 0 for anything else (weak or
// not, quoted or not).
func ParseETag(s string) int64 {
	s = strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "W/"), `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

func sign(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

func decodeClaims(b []byte) (Claims, bool) {
	var c Claims
	if len(b) < 1+32+24 || b[0] != tokenFormat {
		return c, false
	}
	copy(c.Digest[:], b[1:33])
	c.Expires = time.Unix(int64(binary.BigEndian.Uint64(b[33:41])), 0)
	c.Version = int64(binary.BigEndian.Uint64(b[41:49]))
	c.Revision = int64(binary.BigEndian.Uint64(b[49:57]))
	rest := b[57:]
	for _, dst := range []*string{&c.Project, &c.Environment, &c.Session} {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return c, false
		}
		*dst = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	return c, len(rest) == 0
}

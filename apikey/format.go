package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
)

const (
	// randomLen is the number of random base62 characters in a key's secret.
	randomLen = 30
	// checksumLen is the number of base62 characters holding the CRC-32
	// (62^6 > 2^32, so every checksum fits).
	checksumLen = 6
	// MaxLen is the length of the longest well-formed key (a client key).
	MaxLen = len(prefixClient) + randomLen + checksumLen

	prefixClient = "fb_client_"
	prefixLive   = "fb_live_"
	prefixTest   = "fb_test_"
	prefixAdmin  = "fb_admin_"

	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// SecretPattern matches every well-formed key of every type (and keys
// whose checksum is wrong), for tests and tools that scan answers, headers
// and logs for a secret that must not be there.
const SecretPattern = `fb_(client|live|test|admin)_[0-9A-Za-z]{36}`

// ErrMalformed is returned by [Parse] for anything that is not a well-formed
// FlagBridge key: unknown prefix, wrong length, characters outside base62 or
// a checksum that does not match.
var ErrMalformed = errors.New("malformed API key")

// Generate returns a new random key of type t. The key is shown to its owner
// once and then only its [Digest] is kept.
func Generate(t Type) (string, error) {
	prefix := t.Prefix()
	if prefix == "" {
		return "", errors.New("apikey: unknown key type")
	}
	var b strings.Builder
	b.Grow(len(prefix) + randomLen + checksumLen)
	b.WriteString(prefix)
	random, err := randomBase62(randomLen)
	if err != nil {
		return "", err
	}
	b.WriteString(random)
	sum := crc32.ChecksumIEEE([]byte(b.String()))
	b.WriteString(encodeChecksum(sum))
	return b.String(), nil
}

// Parse checks that s is a well-formed key and returns its type. It neither
// allocates nor touches storage, so the edge can refuse garbage and forgeries
// before doing any real work.
func Parse(s string) (Type, error) {
	var t Type
	switch {
	case strings.HasPrefix(s, prefixLive):
		t = Live
	case strings.HasPrefix(s, prefixTest):
		t = Test
	case strings.HasPrefix(s, prefixAdmin):
		t = Admin
	case strings.HasPrefix(s, prefixClient):
		t = Client
	default:
		return 0, ErrMalformed
	}
	body := s[len(t.Prefix()):]
	if len(body) != randomLen+checksumLen {
		return 0, ErrMalformed
	}
	for i := 0; i < len(body); i++ {
		if base62Index(body[i]) < 0 {
			return 0, ErrMalformed
		}
	}
	signed := s[:len(s)-checksumLen]
	want := crc32.ChecksumIEEE(stringBytes(signed))
	got, ok := decodeChecksum(s[len(s)-checksumLen:])
	if !ok || got != want {
		return 0, ErrMalformed
	}
	return t, nil
}

// Digest is the SHA-256 of a full key: the only form in which a key is stored
// or looked up.
type Digest [sha256.Size]byte

// DigestOf returns the digest of key.
func DigestOf(key string) Digest {
	return sha256.Sum256(stringBytes(key))
}

// String returns the digest in lower-case hex, the form used as a storage id.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Hint returns what may be shown of a key after creation: its prefix and
// last four characters, enough for a person to tell keys apart.
func Hint(key string) string {
	t, err := Parse(key)
	if err != nil || len(key) < 4 {
		return ""
	}
	return t.Prefix() + "..." + key[len(key)-4:]
}

// NewID returns a random identifier such as "key_3kTtrw0c5q1mWZ8uB9aD" for a
// record of the given kind. Identifiers are public; they are random only so
// that one tenant cannot enumerate another's.
func NewID(kind string) (string, error) {
	random, err := randomBase62(20)
	if err != nil {
		return "", err
	}
	return kind + "_" + random, nil
}

// randomBase62 returns n uniformly random base62 characters from crypto/rand.
func randomBase62(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			// 248 = 4*62: rejecting bytes at or above it keeps every
			// character equally likely.
			if c >= 248 {
				continue
			}
			out = append(out, base62[c%62])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}

func encodeChecksum(sum uint32) string {
	var b [checksumLen]byte
	v := uint64(sum)
	for i := checksumLen - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
	return string(b[:])
}

func decodeChecksum(s string) (uint32, bool) {
	var v uint64
	for i := 0; i < len(s); i++ {
		d := base62Index(s[i])
		if d < 0 {
			return 0, false
		}
		v = v*62 + uint64(d)
	}
	if v > 0xFFFFFFFF {
		return 0, false
	}
	return uint32(v), true
}

func base62Index(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}

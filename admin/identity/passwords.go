package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/flagbridge/flagbridge/apierror"
)

// Password hashing: argon2id with OWASP's recommended floor (19 MiB, two
// passes), encoded in the PHC string format so that the parameters can be
// raised later without invalidating stored hashes.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16

	// MinPasswordLen and MaxPasswordLen bound passwords (in characters):
	// long enough to resist guessing, short enough that hashing stays cheap.
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// CheckPassword applies the password policy.
func CheckPassword(p string) error {
	n := utf8.RuneCountInString(p)
	switch {
	case !utf8.ValidString(p):
		return apierror.Invalid("password must be valid UTF-8")
	case n < MinPasswordLen:
		return apierror.Invalid("password must be at least %d characters", MinPasswordLen)
	case n > MaxPasswordLen:
		return apierror.Invalid("password must be at most %d characters", MaxPasswordLen)
	case strings.TrimSpace(p) == "":
		return apierror.Invalid("password must not be blank")
	}
	return nil
}

// HashPassword returns the PHC-encoded argon2id hash of p.
func HashPassword(p string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(p), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(sum)), nil
}

// verifyPassword reports whether p matches an encoded hash, in constant
// time over the digest.
func verifyPassword(p, encoded string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var memory, time uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &time, &threads); err != nil {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(p), salt, time, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is verified against when there is no password to check, so
// that every answer takes as long whether or not an address has one.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("flagbridge-no-such-account")
	if err != nil {
		panic(err)
	}
	return h
})

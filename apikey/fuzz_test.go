package apikey

import (
	"hash/crc32"
	"strings"
	"testing"
)

// signedKey builds the key Generate would give for type t and these 30
// random base62 characters.
func signedKey(t Type, random string) string {
	signed := t.Prefix() + random
	return signed + encodeChecksum(crc32.ChecksumIEEE([]byte(signed)))
}

// FuzzParse checks that Parse accepts exactly what Generate produces: a
// known prefix, 30 base62 characters and the base62 CRC-32 of everything
// before it; anything else is ErrMalformed. It never panics, and a key it
// accepts has a hint and a digest.
func FuzzParse(f *testing.F) {
	const random = "0123456789ABCDEFGHIJabcdefghij"
	for _, t := range Types {
		good := signedKey(t, random)
		f.Add(good)
		f.Add(good[:len(good)-1])
		f.Add(good + "0")
		f.Add(strings.ToUpper(good))
		f.Add(good[:len(good)-1] + "!")
	}
	for _, s := range []string{
		"", "fb_", "fb_live_", "fb_test", "fb_admin_" + strings.Repeat("z", 36),
		signedKey(Live, strings.Repeat("0", 30)), signedKey(Admin, strings.Repeat("z", 30)),
		"fb_live_" + random + "zzzzzz", // a checksum over 2^32
		"fb_live_" + random + "\x00\x00\x00\x00\x00\x00",
		"fb_test_" + random + "é",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := Parse(s)
		if err != nil {
			if err != ErrMalformed {
				t.Fatalf("Parse(%q) = %v, want ErrMalformed", s, err)
			}
			if typ != 0 {
				t.Fatalf("Parse(%q) failed with type %v", s, typ)
			}
			if Hint(s) != "" {
				t.Fatalf("Hint of a malformed key: %q", Hint(s))
			}
			return
		}
		// The only keys accepted are the ones Generate would make.
		prefix := typ.Prefix()
		if prefix == "" || !strings.HasPrefix(s, prefix) || len(s) != len(prefix)+randomLen+checksumLen {
			t.Fatalf("Parse(%q) accepted it as %v", s, typ)
		}
		randomPart := s[len(prefix) : len(prefix)+randomLen]
		for i := 0; i < len(randomPart); i++ {
			if !strings.ContainsRune(base62, rune(randomPart[i])) {
				t.Fatalf("Parse(%q) accepted a non-base62 character", s)
			}
		}
		if want := signedKey(typ, randomPart); s != want {
			t.Fatalf("Parse(%q) accepted it; Generate would have made %q", s, want)
		}
		if len(s) > MaxLen {
			t.Fatalf("accepted %d characters, more than MaxLen", len(s))
		}
		if h := Hint(s); h != prefix+"..."+s[len(s)-4:] {
			t.Fatalf("Hint(%q) = %q", s, h)
		}
		if DigestOf(s) == DigestOf(s+"x") {
			t.Fatal("digest collision")
		}
		// Changing any one character breaks it.
		for i := range len(s) {
			c := s[i] ^ 1
			if _, err := Parse(s[:i] + string(c) + s[i+1:]); err == nil {
				t.Fatalf("Parse accepted %q with character %d changed", s, i)
			}
		}
	})
}

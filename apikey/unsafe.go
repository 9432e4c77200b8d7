package apikey

import "unsafe"

// stringBytes views s as a byte slice without copying. The slice must not be
// modified; it is only handed to hash functions that read it.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

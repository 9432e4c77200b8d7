package evaluator

import (
	"encoding/binary"
	"math/bits"
)

// murmur3 computes MurmurHash3 x86_32 (Austin Appleby's public-domain
// algorithm) of data with the given seed. flagd buckets fractional splits
// with seed 0 over the UTF-8 bytes of the bucketing key, so the result must
// be bit-exact; the tests check it against published vectors.
func murmur3(data []byte, seed uint32) uint32 {
	const (
		c1 = 0xcc9e2d51
		c2 = 0x1b873593
	)
	h := seed
	n := len(data)
	blocks := n / 4
	for i := 0; i < blocks; i++ {
		k := binary.LittleEndian.Uint32(data[i*4:])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	tail := data[blocks*4:]
	var k uint32
	switch len(tail) {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	// fmix32: final avalanche.
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// murmur3Concat hashes a+b (seed 0) without allocating for short keys: the
// default bucketing key is flagKey+targetingKey, built here in a stack buffer.
func murmur3Concat(a, b string) uint32 {
	var buf [256]byte
	key := append(append(buf[:0], a...), b...)
	return murmur3(key, 0)
}

package dataplane

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// refSipHash is SipHash-2-4 written from the paper (Aumasson and
// Bernstein, 2012) over bytes, independent of sipWords.
func refSipHash(key [16]byte, msg []byte) uint64 {
	k0 := binary.LittleEndian.Uint64(key[0:8])
	k1 := binary.LittleEndian.Uint64(key[8:16])
	v := [4]uint64{k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573}
	round := func() {
		v[0] += v[1]
		v[1] = bits.RotateLeft64(v[1], 13) ^ v[0]
		v[0] = bits.RotateLeft64(v[0], 32)
		v[2] += v[3]
		v[3] = bits.RotateLeft64(v[3], 16) ^ v[2]
		v[0] += v[3]
		v[3] = bits.RotateLeft64(v[3], 21) ^ v[0]
		v[2] += v[1]
		v[1] = bits.RotateLeft64(v[1], 17) ^ v[2]
		v[2] = bits.RotateLeft64(v[2], 32)
	}
	compress := func(m uint64) {
		v[3] ^= m
		round()
		round()
		v[0] ^= m
	}
	full := len(msg) / 8 * 8
	for i := 0; i < full; i += 8 {
		compress(binary.LittleEndian.Uint64(msg[i:]))
	}
	var last [8]byte
	copy(last[:], msg[full:])
	last[7] = byte(len(msg))
	compress(binary.LittleEndian.Uint64(last[:]))
	v[2] ^= 0xff
	for range 4 {
		round()
	}
	return v[0] ^ v[1] ^ v[2] ^ v[3]
}

// TestSipWords: the reference gives the paper's test vector, and
// sipWords, which hashes the cookies of both families (3 and 6 words),
// agrees with it on random keys and words.
func TestSipWords(t *testing.T) {
	var key [16]byte
	msg := make([]byte, 15)
	for i := range key {
		key[i] = byte(i)
	}
	for i := range msg {
		msg[i] = byte(i)
	}
	if got := refSipHash(key, msg); got != 0xa129ca6149be45e5 {
		t.Fatalf("reference SipHash of the paper's vector: %#x, want 0xa129ca6149be45e5", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		for _, n := range []int{3, 6} {
			for i := range key {
				key[i] = byte(r.Uint32())
			}
			w := make([]uint64, n)
			b := make([]byte, 8*n)
			for i := range w {
				w[i] = r.Uint64()
				binary.LittleEndian.PutUint64(b[8*i:], w[i])
			}
			k0 := binary.LittleEndian.Uint64(key[0:8])
			k1 := binary.LittleEndian.Uint64(key[8:16])
			if got, want := sipWords(k0, k1, w), refSipHash(key, b); got != want {
				t.Fatalf("sipWords of %d words %x: %#x, reference %#x", n, w, got, want)
			}
		}
	}
}

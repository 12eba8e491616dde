package conntrack

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strconv"
)

// Protocol numbers a Key carries.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// Key identifies a connection from the director's side: the client's
// address and port and the virtual service's. Addresses are 16 bytes so
// IPv6 fits; IPv4 is stored IPv4-mapped (netip.AddrFrom4(x).As16()). Ports
// are in host order. Templates use the same Key with CPort 0, CAddr masked
// by the service's netmask and VPort 0 for port-0 services.
type Key struct {
	CAddr, VAddr [16]byte
	CPort, VPort uint16
	Proto        uint8
}

// String formats k for logs and test failures.
func (k Key) String() string {
	c := netip.AddrPortFrom(netip.AddrFrom16(k.CAddr).Unmap(), k.CPort)
	v := netip.AddrPortFrom(netip.AddrFrom16(k.VAddr).Unmap(), k.VPort)
	return c.String() + "->" + v.String() + "/" + protoName(k.Proto)
}

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return "proto" + strconv.Itoa(int(p))
}

// keyWords is a Key as the five 64-bit words an entry stores, so a
// comparison is five loads and no byte loop.
type keyWords [5]uint64

// The ports word packs cport, vport and proto in its top 40 bits; the low
// byte range below keyMask carries the entry's forwarding method, which is
// not part of the key.
const (
	keyMask  = 0xffff_ffff_ff00_0000
	fwdShift = 16
)

func (k *Key) words() keyWords {
	return keyWords{
		binary.LittleEndian.Uint64(k.CAddr[0:8]),
		binary.LittleEndian.Uint64(k.CAddr[8:16]),
		binary.LittleEndian.Uint64(k.VAddr[0:8]),
		binary.LittleEndian.Uint64(k.VAddr[8:16]),
		uint64(k.CPort)<<48 | uint64(k.VPort)<<32 | uint64(k.Proto)<<24,
	}
}

// wordsTo is words writing straight into *w, one word store each. The
// value form builds the array in a temporary and copies it with 16-byte
// moves that straddle its 8-byte stores, which the store buffer cannot
// forward: a stall of a dozen cycles for every key of a batch.
func (k *Key) wordsTo(w *keyWords) {
	w[0] = binary.LittleEndian.Uint64(k.CAddr[0:8])
	w[1] = binary.LittleEndian.Uint64(k.CAddr[8:16])
	w[2] = binary.LittleEndian.Uint64(k.VAddr[0:8])
	w[3] = binary.LittleEndian.Uint64(k.VAddr[8:16])
	w[4] = uint64(k.CPort)<<48 | uint64(k.VPort)<<32 | uint64(k.Proto)<<24
}

func (w *keyWords) key() Key {
	var k Key
	binary.LittleEndian.PutUint64(k.CAddr[0:8], w[0])
	binary.LittleEndian.PutUint64(k.CAddr[8:16], w[1])
	binary.LittleEndian.PutUint64(k.VAddr[0:8], w[2])
	binary.LittleEndian.PutUint64(k.VAddr[8:16], w[3])
	k.CPort = uint16(w[4] >> 48)
	k.VPort = uint16(w[4] >> 32)
	k.Proto = uint8(w[4] >> 24)
	return k
}

// seed is a random per-table hash key: an attacker who cannot guess it
// cannot aim a SYN flood at a handful of buckets.
type seed [4]uint64

// mix is the 64x64->128 multiply folding step used by wyhash-style
// hashes: every input bit reaches every output bit in one multiply.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (s *seed) hash(w *keyWords) uint64 {
	h := mix(w[0]^s[0], w[1]^s[1])
	h = mix(h^w[2], w[3]^s[2])
	return mix(h^w[4], s[3])
}

package sched

import "encoding/binary"

// Flow is what a scheduler sees of a new connection. Addresses are 16 bytes;
// IPv4 addresses are stored IPv4-mapped (netip.AddrFrom4(x).As16()) so one
// type serves both families. VAddr is the packet's destination address, which
// dh and lblc/lblcr hash; CAddr is the client (source) address, which sh and
// mh hash.
type Flow struct {
	Proto uint8
	CAddr [16]byte
	CPort uint16
	VAddr [16]byte
	VPort uint16
}

// Dest is one real server of a service as the control plane configured it.
// ID is a stable index into Loads, unique across all services, so the
// connection table can account a connection without knowing the service.
// Upper and Lower are ipvsadm's -x and -y connection thresholds (0 = none).
type Dest struct {
	ID     uint32
	Addr   [16]byte
	Port   uint16
	Weight int32
	Upper  uint32
	Lower  uint32
}

// IP protocol numbers whose first four transport bytes are the port pair;
// sh-port and mh-port only hash a port for these, as ip_vs_sh_get_port does.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

func hasPorts(proto uint8) bool {
	return proto == protoTCP || proto == protoUDP || proto == protoSCTP
}

func isV4Mapped(a *[16]byte) bool {
	return binary.BigEndian.Uint64(a[0:8]) == 0 &&
		binary.BigEndian.Uint32(a[8:12]) == 0x0000ffff
}

// fold reduces an address to 32 bits the way every IPVS hash scheduler does:
// the IPv4 address itself, or the XOR of the four words of an IPv6 address,
// both as host-order integers (ntohl of the big-endian words).
//
// The kernel folds by the service's family (svc->af), not the address's.
// For client and destination addresses, which are of the service's family,
// that is the same thing. It differs only for a tunnel dest of the other
// family, which only mh hashes (ip_vs_mh_permutate): see foldAs.
func fold(a *[16]byte) uint32 {
	if isV4Mapped(a) {
		return binary.BigEndian.Uint32(a[12:16])
	}
	return binary.BigEndian.Uint32(a[0:4]) ^ binary.BigEndian.Uint32(a[4:8]) ^
		binary.BigEndian.Uint32(a[8:12]) ^ binary.BigEndian.Uint32(a[12:16])
}

// foldAs is fold as an IPVS hashkey function with af = IPv6 when v6 and
// IPv4 otherwise computes it for address a. The kernel keeps an address in a
// union nf_inet_addr: an IPv4 one in its first word with the others zero.
// So an IPv6 service folds an IPv4 dest to the IPv4 address (XOR with
// zeros), as fold does, while an IPv4 service reads only the first word of
// an IPv6 dest (addr->ip).
func foldAs(v6 bool, a *[16]byte) uint32 {
	if !v6 && !isV4Mapped(a) {
		return binary.BigEndian.Uint32(a[0:4])
	}
	return fold(a)
}

// hash32 is the kernel's hash_32() (include/linux/hash.h): multiply by
// GOLDEN_RATIO_32 in 32 bits and keep the top bits. Mainline's dh, sh, lblc
// and lblcr all hash with it (older kernels kept the low bits of a product
// with 2654435761 for dh, lblc and lblcr instead).
func hash32(v uint32, bits uint) uint32 { return (v * 0x61C88647) >> (32 - bits) }

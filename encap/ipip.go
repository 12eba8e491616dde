package encap

import "github.com/afvs/afvs/internal/header"

// Outer IPv4 header of VS/TUN.
const (
	// Overhead is what IPIP adds to a packet: one IPv4 header without options.
	Overhead = header.IPv4MinLen
	// OuterTTL is the TTL of the IPv4 headers the director writes for
	// itself (the ICMP fragmentation-needed reply): Linux's ip_default_ttl.
	// A VS/TUN outer header takes the inner packet's TTL instead, as
	// ip_vs_tunnel_xmit does.
	OuterTTL = 64
)

// IPIP encapsulates, for VS/TUN, the frame buf[off:off+n] described by p (as
// parsed by header.Parse from that frame), and returns where the new frame lies
// in buf. srcMAC is the egress interface's address and dstMAC the real
// server's (or the gateway's); outerSrc is the director's address on the egress
// side and outerDst the real server's.
//
// With at least 20 bytes of headroom (off >= 20) the new frame starts at
// off-20: the Ethernet header and any VLAN tag move down and the inner IP
// packet stays exactly where it was. With less, the new frame starts at 0 and
// the inner packet is shifted right, which needs room after it. ok is false,
// and buf is unchanged, when it does not fit, when the arguments do not
// describe a parsed IPv4 frame (IP6IP4 tunnels IPv6 over IPv4), or when the
// result would exceed 65535 bytes.
//
// Identification: when the inner packet has DF set the outer one is an atomic
// datagram (RFC 6864 section 4.1) and its ID is 0, which is what Linux's
// ip_select_ident does for a DF packet sent without a socket. When DF is clear
// the inner ID is copied: it is already unique per client flow, and a per-call
// counter would need shared state on the hot path. Two clients' non-DF packets
// to one real server could then share an outer ID if both are fragmented
// downstream; the reassembly checksum catches a mismatch.
func IPIP(buf []byte, off, n int, p *header.Packet, outerSrc, outerDst [4]byte, srcMAC, dstMAC [6]byte) (newOff, newN int, ok bool) {
	if p == nil || p.IPv6 || off < 0 || n < 0 || off > len(buf) || n > len(buf)-off {
		return off, n, false
	}
	l2 := p.L3
	if l2 != header.EthernetLen && l2 != header.EthernetLen+header.VLANTagLen {
		return off, n, false
	}
	inner := int(p.TotalLen)
	if inner < header.IPv4MinLen || p.End != l2+inner || p.End > n || inner+Overhead > 0xffff {
		return off, n, false
	}
	newOff = max(off-Overhead, 0)
	ipAt := newOff + l2 + Overhead
	if ipAt+inner > len(buf) {
		return off, n, false
	}
	src := off + l2
	var id uint16
	if !p.DF {
		id = header.IPv4(buf[src : src+inner]).ID()
	}
	if ipAt != src {
		// No headroom: this is the one case that copies the packet.
		copy(buf[ipAt:ipAt+inner], buf[src:src+inner])
	}
	copy(buf[newOff:newOff+l2], buf[off:off+l2])

	eth := header.Ethernet(buf[newOff : newOff+l2])
	eth.SetDstMAC(dstMAC)
	eth.SetSrcMAC(srcMAC)

	h := header.IPv4(buf[newOff+l2 : ipAt])
	h.SetVersionIHL(header.IPv4MinLen)
	h.SetTOS(p.TOS)
	h.SetTotalLength(uint16(inner + Overhead))
	h.SetID(id)
	var ff uint16
	if p.DF {
		ff = header.IPv4FlagDF
	}
	h.SetFlagsFragment(ff)
	h.SetTTL(header.IPv4(buf[ipAt : ipAt+inner]).TTL())
	h.SetProtocol(header.ProtocolIPIP)
	h.SetSrc(outerSrc)
	h.SetDst(outerDst)
	h.SetChecksum(0)
	h.SetChecksum(h.CalculateChecksum())
	return newOff, l2 + Overhead + inner, true
}

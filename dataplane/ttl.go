package dataplane

import (
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
)

// Time to live. Every packet the director forwards to a real server that
// is not the local node loses one from its IPv4 TTL or IPv6 hop limit, by
// every method (DR, TUN, NAT), as __ip_vs_get_out_rt and
// __ip_vs_get_out_rt_v6 call decrement_ttl after the route lookup and
// before the MTU check; a fragmentation-needed or Packet Too Big therefore
// quotes the decremented packet. A VS/TUN packet's inner header is
// decremented and the outer one copies it. A VS/NAT reply is decremented
// as ip_forward and ip6_forward do it: its TTL is checked before anything
// else (the connection's state and counters do not move for a packet that
// dies), and decremented after the MTU check, so a fragmentation-needed
// back to the real server quotes the reply as it was sent.
//
// A packet whose TTL (hop limit) is 1 or less is dropped and counted as
// ttl_exceeded, and its sender is answered with ICMP Time Exceeded, code 0
// (ICMPv6 Time Exceeded, code 0), through the director's ICMP rate limits
// (ttl_exceeded_limited when they hold the answer back). The answer leaves
// by the interface the packet came in on, back to the MAC it came from.
// Its source is what icmp_send and icmpv6_send pick: for a packet to a
// virtual service, whose input route is local, the packet's destination,
// the VIP; for a VS/NAT reply, which the kernel forwards, the director's
// address on the receiving interface (the route back to the real server
// leads there), and no answer when that interface has none. As icmp_send
// does, only the first fragment of a datagram is answered, and an ICMP
// error never is.
//
// The IPv4 header checksum is updated incrementally (RFC 1624, equation
// 3), for the one 16-bit word that holds the TTL.

// ttlLeft reports whether the packet in frame, parsed as p.pk, may be
// forwarded once more: its TTL or hop limit is above 1.
func (p *Processor) ttlLeft(frame []byte) bool {
	pk := p.pk
	if pk.IPv6 {
		return header.IPv6(frame[pk.L3:]).HopLimit() > 1
	}
	return header.IPv4(frame[pk.L3:]).TTL() > 1
}

// decTTL decrements the TTL or hop limit of the packet in frame, which
// ttlLeft passed, and for IPv4 updates its header checksum.
func (p *Processor) decTTL(frame []byte) {
	pk := p.pk
	if pk.IPv6 {
		ip := header.IPv6(frame[pk.L3:])
		ip.SetHopLimit(ip.HopLimit() - 1)
		return
	}
	decTTL4(header.IPv4(frame[pk.L3:]))
}

// decTTL4 decrements the TTL of the IPv4 header ip, which must be above
// 0, and updates its checksum. The TTL is the high byte of its 16-bit
// word, so the word's sum falls by 0x0100 and the checksum, its one's
// complement, rises by 0x0100, with the carry folded back in (RFC 1624
// equation 3). A result of 0xffff is written as 0x0000, as equation 3
// and ip_decrease_ttl give it and as a checksum computed afresh is.
func decTTL4(ip header.IPv4) {
	c := uint32(ip.Checksum()) + 0x0100
	if c >= 0xffff {
		c++ // the end-around carry; 0xffff becomes 0x0000
	}
	ip.SetChecksum(uint16(c))
	ip.SetTTL(ip.TTL() - 1)
}

// forwardTTL is decrement_ttl for a packet to a real server: it
// decrements the TTL and reports true, or, when the TTL has run out,
// answers or drops the packet and returns the verdict and false.
// emit does the IPv4 case of nearly every frame, a TTL above 1, itself
// (decTTL4) and calls it for the rest.
func (p *Processor) forwardTTL(s *Snapshot, frame []byte) (Verdict, bool) {
	if p.ttlLeft(frame) {
		p.decTTL(frame)
		return 0, true
	}
	return p.timeExceeded(s, frame, false), false
}

// timeExceeded drops the packet in frame, parsed as p.pk, whose TTL ran
// out, and answers it with Time Exceeded when icmp_send would and the rate
// limits allow. reply says the packet is a VS/NAT reply, whose answer
// comes from the director's address on the receiving interface instead of
// the packet's destination.
func (p *Processor) timeExceeded(s *Snapshot, frame []byte, reply bool) Verdict {
	c, pk := p.c, p.pk
	in := &s.Ifaces[p.ingress]
	var srcMAC [6]byte
	copy(srcMAC[:], frame[6:12])
	if pk.IPv6 {
		router := pk.DstMapped
		if reply {
			if !in.HaveAddr6 {
				c.Drops[DropTTLExceeded].Add(1)
				return VerdictDrop
			}
			router = in.Addr6
		}
		// Build first: a packet that gets no answer spends no token.
		p.replyN = encap.TimeExceeded6(p.reply[:], frame, pk, in.MAC, srcMAC, router)
		if p.replyN == 0 {
			c.Drops[DropTTLExceeded].Add(1)
			return VerdictDrop
		}
		if !p.icmp.Allow6(&pk.SrcMapped) {
			c.Drops[DropTTLExceededLimited].Add(1)
			return VerdictDrop
		}
	} else {
		router := pk.Dst
		if reply {
			router = in.Addr
		}
		if router != ([4]byte{}) {
			p.replyN = encap.TimeExceeded(p.reply[:], frame, pk, in.MTU, in.MAC, srcMAC, router)
		} else {
			p.replyN = 0
		}
		if p.replyN == 0 {
			c.Drops[DropTTLExceeded].Add(1)
			return VerdictDrop
		}
		if !p.icmp.Allow(pk.Src) {
			c.Drops[DropTTLExceededLimited].Add(1)
			return VerdictDrop
		}
	}
	c.Drops[DropTTLExceeded].Add(1)
	c.ICMPSent.Add(1)
	return VerdictReply
}

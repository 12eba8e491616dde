package dataplane

import (
	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// ICMP errors about the director's own IPIP packets, as ip_vs_in_icmp
// handles them for a tunnel connection.
//
// A router between the director and a VS/TUN real server that cannot
// forward an IPIP packet (too big with DF, TTL exceeded, unreachable)
// sends its error to the packet's source, the director's address, quoting
// the outer header and the start of the tunnelled client packet. The
// connection is the tunnelled packet's own (client -> VIP:port, not
// reversed), and it must be a tunnel connection to the quoted outer
// destination. IPVS then answers the client itself with icmp_send: the
// same type and code, about the client's packet, from the VIP; for a
// fragmentation-needed the MTU it advertises is the router's less the 20
// bytes of the outer header (when that leaves more than 68), and only a
// client that set DF gets one (ip_vs_in_icmp's "Client uses PMTUD?").
//
// icmp_send routes the answer to the client through the kernel; here the
// worker builds the IPv4 packet and gives it to a KernelSender (the
// director's raw socket), so the director's routing and neighbour tables
// take it to the client. Answers share the director's own ICMP rate
// limit (per client), and count out for the connection's service and
// real server as ip_vs_out_stats counts them. The director does not keep
// a path MTU per real server from the error, as ipv4_update_pmtu does in
// the kernel: the client, having lowered its own, sends smaller packets.

// KernelSender hands a whole IPv4 packet to the director's network stack
// to route and send. SendIP must not block or keep pkt; it reports
// whether the stack took the packet.
type KernelSender interface {
	SendIP(pkt []byte) bool
}

// SetKernelSender gives the processor a way to send IPv4 packets through
// the director's stack; nil (the default) drops what needs one.
func (p *Processor) SetKernelSender(k KernelSender) { p.kernel = k }

// maxICMPAnswer is the most bytes of an ICMP answer, IP header included,
// as icmp_send bounds its quote (576).
const maxICMPAnswer = 576

// ownAddr reports whether a is an address of the director's interfaces.
func (s *Snapshot) ownAddr(a [4]byte) bool {
	for i := range s.Ifaces {
		if s.Ifaces[i].Addr == a && a != ([4]byte{}) {
			return true
		}
	}
	return false
}

// icmpTunnel handles an ICMP error quoting an IPIP packet, which the
// steering program redirects when the packet came from the director and
// carries a service's packet.
func (p *Processor) icmpTunnel(s *Snapshot, buf []byte, off, n int) (Verdict, Out) {
	c, pk := p.c, p.pk
	frame := buf[off : off+n]
	e := &p.tunErr
	if r := header.ParseICMPTunnelError(frame, pk, e); r != header.OK {
		c.Parse[r].Add(1)
		return VerdictDrop, Out{}
	}
	p.Last = Decision{}
	if e.OuterSrc != pk.Dst || !s.ownAddr(pk.Dst) {
		c.Drops[DropICMPUnmatched].Add(1)
		return VerdictDrop, Out{}
	}
	si, ok := s.lookup(e.Dst, e.Proto, e.DstPort)
	if !ok {
		c.Drops[DropICMPUnmatched].Add(1)
		return VerdictDrop, Out{}
	}
	k := &p.key
	*k = conntrack.Key{Proto: e.Proto, CPort: e.SrcPort, VPort: e.DstPort, CAddr: mapped4(e.Src), VAddr: mapped4(e.Dst)}
	conn, hit := p.ct.Lookup(k)
	if !hit {
		c.Drops[DropICMPUnmatched].Add(1)
		return VerdictDrop, Out{}
	}
	d, live := s.dest(si, conn.Dest)
	if !live {
		c.Drops[DropDestUnavailable].Add(1)
		return VerdictDrop, Out{}
	}
	if d.Fwd != vs.Tunnel || d.Addr != e.OuterDst {
		c.Drops[DropICMPUnmatched].Add(1)
		return VerdictDrop, Out{}
	}
	rest := e.Rest
	if e.Type == header.ICMPv4DestUnreachable && e.Code == icmpCodeFragNeeded {
		if !e.DF {
			c.Drops[DropICMPTunnelNoDF].Add(1)
			return VerdictDrop, Out{}
		}
		mtu := rest & 0xffff
		if mtu > 68+header.IPv4MinLen {
			mtu -= header.IPv4MinLen
		}
		rest = mtu
	}
	if !p.icmp.Allow(e.Src) {
		c.Drops[DropICMPLimited].Add(1)
		return VerdictDrop, Out{}
	}
	if p.kernel == nil {
		c.Drops[DropNoEgress].Add(1)
		return VerdictDrop, Out{}
	}
	// The answer: VIP -> client, the error about the client's packet.
	q := frame[e.L3:e.End]
	q = q[:min(len(q), maxICMPAnswer-header.IPv4MinLen-header.ICMPv4Len)]
	m := header.IPv4MinLen + header.ICMPv4Len + len(q)
	r := p.reply[:m]
	ip := header.IPv4(r)
	clear(ip[:header.IPv4MinLen])
	ip.SetVersionIHL(header.IPv4MinLen)
	ip.SetTotalLength(uint16(m))
	ip.SetTTL(64)
	ip.SetProtocol(header.ProtocolICMP)
	ip.SetSrc(e.Dst)
	ip.SetDst(e.Src)
	ip.SetChecksum(ip.CalculateChecksum())
	ic := header.ICMPv4(r[header.IPv4MinLen:])
	ic.SetType(e.Type)
	ic.SetCode(e.Code)
	ic.SetChecksum(0)
	ic.SetRest(rest)
	copy(ic[header.ICMPv4Len:], q)
	ic.SetChecksum(^header.Checksum(ic, 0))
	if !p.kernel.SendIP(r) {
		c.Drops[DropNoEgress].Add(1)
		return VerdictDrop, Out{}
	}
	c.ICMPSent.Add(1)
	p.countOut(&s.Services[si], d, uint64(m))
	return VerdictDrop, Out{}
}

// icmpCodeFragNeeded is destination unreachable's fragmentation-needed.
const icmpCodeFragNeeded = 4

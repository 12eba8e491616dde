package dataplane

import (
	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// ICMPConnection6 is ICMPConnection for an ICMPv6 error: the quoted
// packet's source address, protocol and port name an IPv6 service, and
// the quoted tuple reversed is the connection's key, as ip_vs_in_icmp_v6
// looks it up (ip_vs_fill_iph_skb_icmp with inverse set). It returns the
// service's index in s and the connection's live real server, or why not:
// DropICMPUnmatched when no service or connection matches,
// DropDestUnavailable when the real server is gone. The connection's
// state and timer are not touched.
func (p *Processor) ICMPConnection6(s *Snapshot, e *header.ICMPError6) (int32, *Dest, Drop) {
	si, ok := s.lookup6(&e.Src, e.Proto, e.SrcPort)
	if !ok {
		return -1, nil, DropICMPUnmatched
	}
	k := &p.key
	*k = conntrack.Key{Proto: e.Proto, CPort: e.DstPort, VPort: e.SrcPort, CAddr: e.Dst, VAddr: e.Src}
	return p.quotedConn(s, si)
}

// icmpError6 handles an ICMPv6 message to an IPv6 VIP, which the steering
// program redirects only when it is an error (destination unreachable,
// packet too big, time exceeded, parameter problem) quoting a packet from
// a virtual service's VIP and port: a router between a DR or TUN real
// server and the client that could not deliver a reply answered toward
// its source, the VIP. As ip_vs_in_icmp_v6 does for a DR or TUN
// connection, the message goes unchanged to the connection's real server
// by the connection's method (a MAC rewrite, or a tunnel of the real
// server's family), counted as a packet in and as ICMPForwarded; the real
// server's stack then acts on it (a Packet Too Big lowers its path MTU to
// the client). The error must be addressed to the address it quotes as
// the source. Malformed messages are counted by their parse reason, and
// the rest as icmpError counts them: unmatched, dest unavailable, over the
// forwarding budget. A VS/NAT connection's error is translated by
// natICMP6 (nat_icmp6.go), which the processor tries first; one it does
// not take is never forwarded untranslated: it is dropped as
// unsupported_fwd.
func (p *Processor) icmpError6(s *Snapshot, buf []byte, off, n int) (Verdict, Out) {
	c := p.c
	var e header.ICMPError6
	if r := header.ParseICMPv6Error(buf[off:off+n], p.pk, &e); r != header.OK {
		c.Parse[r].Add(1)
		return VerdictDrop, Out{}
	}
	if e.Src != p.pk.DstMapped {
		c.Drops[DropICMPUnmatched].Add(1)
		return VerdictDrop, Out{}
	}
	p.Last = Decision{} // no scheduling: the error belongs to a connection
	si, d, drop := p.ICMPConnection6(s, &e)
	if d == nil {
		c.Drops[drop].Add(1)
		return VerdictDrop, Out{}
	}
	if d.Fwd == vs.Masq {
		c.Drops[DropUnsupportedFwd].Add(1)
		return VerdictDrop, Out{}
	}
	if !p.icmpFwd.Allow6(&p.pk.SrcMapped) {
		c.Drops[DropICMPForwardLimited].Add(1)
		return VerdictDrop, Out{}
	}
	v, out := p.emit(s, &s.Services[si], d, buf, off, n)
	if v == VerdictForward || v == VerdictLocal {
		c.ICMPForwarded.Add(1)
	}
	return v, out
}

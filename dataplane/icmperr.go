package dataplane

import (
	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
)

// SetICMPForwardLimiter caps the ICMP errors the processor forwards to
// real servers; nil (the default) forwards every one. It is a separate
// budget from SetICMPLimiter's, which caps the errors the director itself
// sends to clients, so that a flood of one cannot starve the other.
func (p *Processor) SetICMPForwardLimiter(l *ICMPLimiter) { p.icmpFwd = l }

// ICMPConnection finds the connection an ICMP error is about. The error
// quotes a packet a real server sent for a virtual service (its source is
// the VIP and port, its destination the client) that a router on the way
// to the client could not deliver and answered toward the VIP; the
// connection's key is that quoted tuple reversed, as ip_vs_in_icmp looks
// it up (ip_vs_fill_iph_skb_icmp with inverse set). It returns the
// service's index in s and the connection's live real server, or why not:
// DropICMPUnmatched when no service or connection matches,
// DropDestUnavailable when the real server is gone. The lookup reads the
// table without touching the connection's state or timer, as IPVS's
// conn_in_get does for an error. VS/NAT's ICMP translation reuses it.
func (p *Processor) ICMPConnection(s *Snapshot, e *header.ICMPError) (int32, *Dest, Drop) {
	si, ok := s.lookup(e.Src, e.Proto, e.SrcPort)
	if !ok {
		return -1, nil, DropICMPUnmatched
	}
	k := &p.key
	*k = conntrack.Key{Proto: e.Proto, CPort: e.DstPort, VPort: e.SrcPort}
	k.CAddr = [16]byte{10: 0xff, 11: 0xff, 12: e.Dst[0], 13: e.Dst[1], 14: e.Dst[2], 15: e.Dst[3]}
	k.VAddr = [16]byte{10: 0xff, 11: 0xff, 12: e.Src[0], 13: e.Src[1], 14: e.Src[2], 15: e.Src[3]}
	return p.quotedConn(s, si)
}

// quotedConn looks the key an ICMP error's quote gave (p.key) up in the
// table of service si without touching the connection, for ICMPConnection
// and ICMPConnection6: the connection's live real server, or why not.
func (p *Processor) quotedConn(s *Snapshot, si int32) (int32, *Dest, Drop) {
	conn, hit := p.ct.Lookup(&p.key)
	if !hit {
		return si, nil, DropICMPUnmatched
	}
	d, live := s.dest(si, conn.Dest)
	if !live {
		return si, nil, DropDestUnavailable
	}
	return si, d, 0
}

// icmpError handles an ICMP message to a VIP, which the steering program
// redirects only when it is an error quoting a virtual service's packet.
// As ip_vs_in_icmp does for a DR or TUN connection, the message goes
// unchanged but for its TTL, which emit decrements as ip_vs_icmp_xmit's
// route lookup does (ttl.go; with TTL 1 it is dropped unanswered), to the
// connection's real server with the connection's method (a MAC rewrite,
// or IPIP), counted as a packet in; the real server's
// stack then acts on it (a fragmentation-needed lowers its path MTU to
// the client). The error must be addressed to the address it quotes as
// the source, the VIP, as one sent back along the reply's path is.
//
// Unmatched errors are dropped and counted (DropICMPUnmatched). IPVS
// passes them to the local stack; here the worker cannot, and the
// steering program cannot see the connection table to decide before
// redirecting. The director's stack would have nothing to do with them:
// the steering program takes only errors quoting a packet from a VIP and
// port of a virtual service, whose traffic never reaches a local socket.
func (p *Processor) icmpError(s *Snapshot, buf []byte, off, n int) (Verdict, Out) {
	c := p.c
	e := &p.icmpErr
	if r := header.ParseICMPError(buf[off:off+n], p.pk, e); r != header.OK {
		c.Parse[r].Add(1)
		return VerdictDrop, Out{}
	}
	if e.Src != p.pk.Dst {
		c.Drops[DropICMPUnmatched].Add(1)
		return VerdictDrop, Out{}
	}
	p.Last = Decision{} // no scheduling: the error belongs to a connection
	si, d, drop := p.ICMPConnection(s, e)
	if d == nil {
		c.Drops[drop].Add(1)
		return VerdictDrop, Out{}
	}
	if !p.icmpFwd.Allow(p.pk.Src) {
		c.Drops[DropICMPForwardLimited].Add(1)
		return VerdictDrop, Out{}
	}
	// A local real server's error goes to the director's own stack
	// (VerdictLocal), whose socket the connection is.
	v, out := p.emit(s, &s.Services[si], d, buf, off, n)
	if v == VerdictForward || v == VerdictLocal {
		c.ICMPForwarded.Add(1)
	}
	return v, out
}

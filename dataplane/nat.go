package dataplane

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// VS/NAT (ipvsadm -m), as ip_vs_nat_xmit and handle_response do it:
//
//   - A client packet to VIP:vport of a connection served by a NAT real
//     server is rewritten to RIP:rport (DNAT) and sent toward the real
//     server like a DR packet: next-hop MAC from the neighbour table,
//     egress interface from the route.
//   - The real server's reply RIP:rport -> client is rewritten back to
//     VIP:vport (SNAT) and sent toward the client: out of the interface
//     the connection's first client packet came in on, to the MAC it came
//     from (the client, or the router in front of it). Both are recorded
//     with the reply key when the connection is made, so a reply needs no
//     route lookup.
//   - The IPv4 header checksum and the TCP or UDP checksum are updated
//     incrementally (RFC 1624) for the changed address and port; the
//     payload is never summed. A UDP checksum of 0 (none) stays 0, and a
//     UDP checksum that the update makes 0 is sent as 0xffff (RFC 768).
//   - A reply is recognised by its source (real server address, protocol
//     and port: Snapshot.natSrc, which the steering program also matches)
//     when its destination is no virtual service; its connection comes
//     from the connection table's reverse index (conntrack.LookupReply),
//     one lock-free lookup, and its state moves by IPVS's OUTPUT table.
//     OutPkts/OutBytes count it, IP-layer bytes, as ip_vs_out_stats does.
//   - A reply without a connection is dropped and counted as
//     reply_no_connection (IPVS would hand it to the stack, which has no
//     use for it on a director that does not route).
//   - A reply too big for the client-facing MTU gets ICMP
//     fragmentation-needed back to the real server when it has DF
//     (replyFragNeeded), and is split in two fragments after the rewrite
//     when it has not, as DR splits.

// natEgressOnly says why a VS/NAT real server reached through an
// interface afvs does not receive on is unreachable.
func natEgressOnly(slot int, ifs []Iface) string {
	name := "slot " + strconv.Itoa(slot)
	if slot >= 0 && slot < len(ifs) {
		name = ifs[slot].Name
	}
	return "VS/NAT real server routes via " + name + ", an interface afvs only sends on: its replies would reach the kernel, not afvs (put the real servers behind a receiving interface)"
}

// natSource reports whether addr:port/proto is a VS/NAT real server.
func (s *Snapshot) natSource(addr [4]byte, proto uint8, port uint16) bool {
	if s.natSrc.len() == 0 {
		return false
	}
	_, ok := s.natSrc.lookup(addr, proto, port)
	return ok
}

// natReply reports whether pk is a VS/NAT reply, as forward tells one:
// from a NAT real server's address, protocol and port, to no virtual
// service.
func (s *Snapshot) natReply(pk *header.Packet) bool {
	if pk.IPv6 {
		if !s.natSource6(&pk.SrcMapped, pk.Proto, pk.SrcPort) {
			return false
		}
		_, svc := s.lookup6(&pk.DstMapped, pk.Proto, pk.DstPort)
		return !svc
	}
	if !s.natSource(pk.Src, pk.Proto, pk.SrcPort) {
		return false
	}
	_, svc := s.lookup(pk.Dst, pk.Proto, pk.DstPort)
	return !svc
}

// HasNAT reports whether any real server of s is a VS/NAT one.
func (s *Snapshot) HasNAT() bool { return s != nil && s.natSrc.len()+s.natSrc6.len() > 0 }

// addNATSources files the (address, protocol, port) of each NAT real
// server of svc, service index si: a firewall-mark service's servers once
// per protocol of its mark group.
func (s *Snapshot) addNATSources(t *vs.Table, svc *vs.Service, si int32) {
	var protos [2]uint8
	n := 0
	if svc.FWMark == 0 {
		protos[0], n = uint8(svc.Proto), 1
	} else if g, ok := t.MarkGroup(svc.FWMark); ok {
		for _, m := range g.Matches {
			if n == 0 || (n == 1 && protos[0] != uint8(m.Proto)) {
				protos[n] = uint8(m.Proto)
				n++
			}
		}
	}
	for _, r := range svc.Reals {
		if r.Fwd != vs.Masq {
			continue
		}
		for _, p := range protos[:n] {
			if r.Addr.Is6() {
				s.natSrc6.set(svcKey6{r.Addr.As16(), r.Port, p}, si)
			} else {
				s.natSrc.set(svcKey{r.Addr.As4(), r.Port, p}, si)
			}
		}
	}
}

// NATSources lists the (address, protocol, port) of every VS/NAT real
// server, port 0 standing for every port.
func (s *Snapshot) NATSources() []SteerKey {
	var out []SteerKey
	s.natSrc.each(func(k svcKey, _ int32) {
		out = append(out, SteerKey{Addr: netip.AddrFrom4(k.addr), Proto: k.proto, Port: k.port, Source: true})
	})
	s.natSrc6.each(func(k svcKey6, _ int32) {
		out = append(out, SteerKey{Addr: netip.AddrFrom16(k.addr), Proto: k.proto, Port: k.port, Source: true})
	})
	return out
}

// hopOf packs the slot a client packet arrived on and the MAC it came
// from into the word the reverse index keeps for the connection's replies.
func hopOf(slot int, frame []byte) uint64 {
	var mac [8]byte
	copy(mac[2:], frame[6:12])
	return uint64(slot)<<48 | binary.BigEndian.Uint64(mac[:])
}

// natPort is the port a NAT real server receives on: its own, or the
// packet's for a real server with port 0.
func natPort(d *Dest, vport uint16) uint16 {
	if d.Port == 0 {
		return vport
	}
	return d.Port
}

// fileReply records in the reverse index where conn's replies come from
// (d's address and port, the client's address and port) and where they
// go back to.
func (p *Processor) fileReply(conn *conntrack.Conn, d *Dest) bool {
	pk := p.pk
	rk := &p.rkey
	rk.CAddr, rk.CPort, rk.Proto = pk.SrcMapped, pk.SrcPort, pk.Proto
	rk.VAddr = d.keyAddr()
	rk.VPort = natPort(d, pk.DstPort)
	return p.ct.InsertReply(rk, conn, hopOf(p.ingress, p.frame))
}

// rewrite replaces the destination (dst) or source address and port of
// the IPv4 packet in frame, parsed as pk, and updates the IP and TCP or
// UDP checksums for the change.
func rewrite(frame []byte, pk *header.Packet, dst bool, addr [4]byte, port uint16) {
	ip := header.IPv4(frame[pk.L3:])
	l4 := frame[pk.L4:]
	aoff, poff := 12, 0 // source address in the IP header, source port in L4
	if dst {
		aoff, poff = 16, 2
	}
	old := [4]byte(ip[aoff : aoff+4])
	oldPort := binary.BigEndian.Uint16(l4[poff:])
	ip.SetChecksum(header.ChecksumUpdateAddr(ip.Checksum(), old, addr))
	copy(ip[aoff:aoff+4], addr[:])
	binary.BigEndian.PutUint16(l4[poff:], port)
	switch pk.Proto {
	case header.ProtocolTCP:
		t := header.TCP(l4)
		c := header.ChecksumUpdateAddr(t.Checksum(), old, addr)
		t.SetChecksum(header.ChecksumUpdate16(c, oldPort, port))
	case header.ProtocolUDP:
		u := header.UDP(l4)
		if u.Checksum() == 0 {
			return // sent without a checksum: it stays so
		}
		c := header.ChecksumUpdateAddr(u.Checksum(), old, addr)
		c = header.ChecksumUpdate16(c, oldPort, port)
		if c == 0 {
			c = 0xffff
		}
		u.SetChecksum(c)
	}
}

// dnat forwards a client packet to NAT real server d out of eg (slot
// out.Slot): too big with DF is answered with fragmentation-needed before
// anything changes; otherwise the packet is rewritten to d's address and
// port and, when too big without DF, split in two as DR splits.
func (p *Processor) dnat(s *Snapshot, d *Dest, eg *Iface, buf []byte, off, n int, out Out) (Verdict, Out) {
	pk := p.pk
	frame := buf[off : off+n]
	big := int(pk.TotalLen) > eg.MTU
	if big && pk.DF {
		return p.fragNeeded(s, frame, eg.MTU+encap.Overhead)
	}
	rewrite(frame, pk, true, d.Addr, natPort(d, pk.DstPort))
	if big {
		n1, n2, ok := encap.FragmentDR(buf, off, n, pk, eg.MTU, eg.MAC, d.MAC, p.second[:])
		if !ok {
			p.c.Drops[DropTooBig].Add(1)
			return VerdictDrop, Out{}
		}
		p.secondN = n2
		p.c.Fragmented.Add(1)
		out.Len, out.Second = n1, true
		return VerdictForward, out
	}
	encap.DR(frame, d.MAC, eg.MAC)
	return VerdictForward, out
}

// processReply runs a frame from a NAT real server (its source is one,
// its destination no virtual service): find the connection through the
// reverse index, move its state by the OUTPUT table, count it out,
// rewrite the source to the virtual service and send it back where the
// client's packets came from.
func (p *Processor) processReply(s *Snapshot, buf []byte, off, n int) (Verdict, Out) {
	c := p.c
	pk := p.pk
	rk := &p.rkey
	rk.CAddr, rk.CPort, rk.Proto = pk.DstMapped, pk.DstPort, pk.Proto
	rk.VAddr, rk.VPort = pk.SrcMapped, pk.SrcPort
	r, ok := p.ct.LookupReply(rk)
	if !ok {
		c.Drops[DropReplyNoConnection].Add(1)
		return VerdictDrop, Out{}
	}
	// ip_forward checks the TTL first, and decrements it after its MTU
	// check, so fragmentation-needed quotes the reply as sent (ttl.go).
	frame := buf[off : off+n]
	if !p.ttlLeft(frame) {
		return p.timeExceeded(s, frame, true), Out{}
	}
	if pk.DF {
		if eg := replyEgress(s, &r); eg != nil && int(pk.TotalLen) > eg.MTU {
			return p.replyFragNeeded(s, frame, eg.MTU)
		}
	}
	ev := conntrack.EvNone
	if pk.Proto == header.ProtocolTCP {
		ev = conntrack.EventOf(pk.TCPFlags)
	}
	if p.ct.TouchReply(&r.Conn, pk.Proto, ev) != conntrack.Hit {
		c.Drops[DropReplyNoConnection].Add(1)
		return VerdictDrop, Out{}
	}
	// ip_vs_out_stats: replies count out while the server is in the
	// table; a deleted server's connections still carry their replies.
	if svc, d, ok := s.DestByID(r.Conn.Dest); ok {
		p.countOut(svc, d, uint64(pk.TotalLen))
	}
	p.decTTL(frame)
	if p.sp != nil && pk.Proto == header.ProtocolTCP && p.sp.active.Load() {
		if v, o, done := p.synProxyServer(s, &r, buf, off, n); done { // synproxy.go
			return v, o
		}
	}
	slot := int(r.Hop >> 48)
	if slot >= len(s.Ifaces) {
		c.Drops[DropNoEgress].Add(1)
		return VerdictDrop, Out{}
	}
	eg := &s.Ifaces[slot]
	big := int(pk.TotalLen) > eg.MTU // with DF, answered above
	rewrite(frame, pk, false, [4]byte(r.VAddr[12:16]), r.VPort)
	var mac [6]byte
	binary.BigEndian.PutUint16(mac[0:2], uint16(r.Hop>>32))
	binary.BigEndian.PutUint32(mac[2:6], uint32(r.Hop))
	if big {
		// No DF: the kernel's output path fragments the rewritten reply;
		// split it in two as DR does (what two cannot carry is dropped).
		n1, n2, ok := encap.FragmentDR(buf, off, n, pk, eg.MTU, eg.MAC, mac, p.second[:])
		if !ok {
			c.Drops[DropTooBig].Add(1)
			return VerdictDrop, Out{}
		}
		p.secondN = n2
		c.Fragmented.Add(1)
		return VerdictForward, Out{Off: off, Len: n1, Slot: slot, Second: true}
	}
	encap.DR(frame, mac, eg.MAC)
	return VerdictForward, Out{Off: off, Len: n, Slot: slot}
}

// replyEgress is the interface r's replies leave by, nil if the snapshot
// has no such slot.
func replyEgress(s *Snapshot, r *conntrack.Reply) *Iface {
	if slot := int(r.Hop >> 48); slot < len(s.Ifaces) {
		return &s.Ifaces[slot]
	}
	return nil
}

// replyFragNeeded answers a reply with DF set that is too big for the
// client-facing MTU with ICMP fragmentation-needed to the real server, as
// the kernel's ip_forward does: it checks the MTU before the FORWARD hook
// where IPVS's handle_response runs, so the connection's state and the
// out counters do not move, and the message quotes the reply as the real
// server sent it (its own address and port, so its socket finds the
// error). The source is the director's address on the interface the reply
// came in on, where icmp_send's route back to the server leads. The
// message goes out of that interface to the MAC the reply came from, and
// the same rate limits as every ICMP error the director originates apply.
func (p *Processor) replyFragNeeded(s *Snapshot, frame []byte, mtu int) (Verdict, Out) {
	// FragNeeded advertises its mtu minus a tunnel header; a reply
	// carries none.
	return p.fragNeededFrom(s, frame, mtu+encap.Overhead, s.Ifaces[p.ingress].Addr)
}

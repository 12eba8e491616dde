package dataplane

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// IPv6 forwarding. An IPv6 frame takes the IPv4 path of Processor.forward
// (connection table, schedulers, templates, counters) with three
// differences, each a branch on the packet's or the real server's family:
// its service is looked up in the snapshot's IPv6 index (lookup6), its
// persistence template masks the whole 16-byte client address with the
// service's prefix (Service.Mask6), and emit6 sends it: by DR (the MAC
// rewrite, which is family-blind) or by tunnel, IPv6-in-IPv6 to an IPv6
// real server and IPv6-in-IPv4 to an IPv4 one, as ip_vs_tunnel_xmit_v6 and
// ip_vs_tunnel_xmit do. An IPv4 packet for an IPv6 tunnel dest (an IPv4
// service's mixed-family real server) is sent IPv4-in-IPv6 by emit6 too.
//
// An IPv6 packet too big for the egress MTU is never fragmented: it is
// answered with ICMPv6 Packet Too Big (IPv6 routers do not fragment, and
// ensure_mtu_is_adequate answers the same), counted and rate-limited as
// fragmentation-needed is. An IPv4 one in an IPv6 tunnel is answered with
// fragmentation-needed when it has DF; without DF it is split into two
// IPv4 fragments, each tunnelled (frag46.go), as the IPIP path does; the
// outer IPv6 packet is never fragmented.

// proc6 is the processor's IPv6 state.
type proc6 struct {
	// id is the identification of the next IPv6-in-IPv4 packet. Its outer
	// header has DF clear, so it must not repeat soon for a source and
	// destination (RFC 6864); a counter per processor from a random start
	// keeps the workers' sequences apart.
	id     uint16
	seeded bool
}

// nextID returns an identification for an IPv6-in-IPv4 packet.
func (q *proc6) nextID() uint16 {
	if !q.seeded {
		q.id, q.seeded = uint16(rand.Uint32()), true
	}
	q.id++
	return q.id
}

// lookup6 finds the IPv6 service for a destination, exact port first, then
// a port-0 (all ports) service.
func (s *Snapshot) lookup6(addr *[16]byte, proto uint8, port uint16) (int32, bool) {
	return s.svcIndex6.lookup(addr, proto, port)
}

// indexGet returns the service that answers on (a, proto, port), in the
// index of a's family.
func (s *Snapshot) indexGet(a netip.Addr, proto uint8, port uint16) (int32, bool) {
	if a.Is6() {
		return s.svcIndex6.get(svcKey6{a.As16(), port, proto})
	}
	return s.svcIndex.get(svcKey{a.As4(), port, proto})
}

// indexSet makes service si answer on (a, proto, port).
func (s *Snapshot) indexSet(a netip.Addr, proto uint8, port uint16, si int32) {
	if a.Is6() {
		s.svcIndex6.set(svcKey6{a.As16(), port, proto}, si)
		return
	}
	s.svcIndex.set(svcKey{a.As4(), port, proto}, si)
}

// persistMasks returns a persistent service's masks: the IPv4 netmask, or
// for an IPv6 service the 16-byte mask of its prefix; all ones when the
// service has none.
func persistMasks(m netip.Addr, ipv6 bool) (m4 [4]byte, m6 [16]byte) {
	if !m.IsValid() {
		m = vs.FullMask(ipv6)
	}
	if ipv6 {
		return m4, m.As16()
	}
	return m.As4(), m6
}

// setAddr sets the real server's address in the field of its family.
func (d *Dest) setAddr(a netip.Addr) {
	if a.Is6() {
		d.Addr6, d.Is6 = a.As16(), true
		return
	}
	d.Addr = a.As4()
}

// IP is the real server's address, of its own family.
func (d *Dest) IP() netip.Addr {
	if d.Is6 {
		return netip.AddrFrom16(d.Addr6)
	}
	return netip.AddrFrom4(d.Addr)
}

// check6 marks a real server unreachable, with the reason, when its
// service or its own address is IPv6 and the dataplane cannot send to it:
// a tunnel whose egress interface has no address of the outer header's
// family to send from. (A local-node real server takes the packet in its
// own family, whatever its forwarding method, as ip_vs_null_xmit passes
// it on unchanged.)
func (d *Dest) check6(svc6 bool, ifaces []Iface) {
	if !svc6 && !d.Is6 {
		return
	}
	unreachable := func(why string) {
		d.Slot, d.Local, d.HaveMAC, d.Unreachable = -1, false, false, why
	}
	if d.Local || d.Fwd != vs.Tunnel || d.Slot < 0 || d.Slot >= len(ifaces) {
		return
	}
	eg := &ifaces[d.Slot]
	if d.Is6 && !eg.HaveAddr6 {
		unreachable(fmt.Sprintf("interface %s has no IPv6 address to send the tunnel to %s from", eg.Name, netip.AddrFrom16(d.Addr6)))
	} else if !d.Is6 && eg.Addr == ([4]byte{}) {
		unreachable(fmt.Sprintf("interface %s has no IPv4 address to send the tunnel to %s from", eg.Name, netip.AddrFrom4(d.Addr)))
	}
}

// emit6 sends a packet whose family, or whose real server's, is IPv6, once
// emit has counted it and found its egress and next hop.
func (p *Processor) emit6(s *Snapshot, d *Dest, eg *Iface, buf []byte, off, n int, out Out) (Verdict, Out) {
	c, pk := p.c, p.pk
	switch d.Fwd {
	case vs.Route:
		// vs allows DR only within a family, so the packet is IPv6.
		if int(pk.TotalLen) > eg.MTU {
			return p.packetTooBig(s, buf[off:off+n], eg.MTU)
		}
		encap.DR(buf[off:off+n], d.MAC, eg.MAC)
		return VerdictForward, out
	case vs.Masq:
		// vs keeps a NAT real server in its service's family.
		return p.dnat6(s, d, eg, buf, off, n, out) // nat6.go
	case vs.Tunnel:
	default:
		c.Drops[DropUnsupportedFwd].Add(1)
		return VerdictDrop, Out{}
	}
	var no, nn int
	var ok bool
	switch {
	case pk.IPv6 && d.Is6: // IPv6 in IPv6
		// __ip_vs_get_out_rt_v6: the tunnel's MTU is the route's less
		// the outer header, and below IPv6's minimum it drops.
		mtu := eg.MTU - encap.Overhead6
		if mtu < encap.MinMTU6 {
			c.Drops[DropTooBig].Add(1)
			return VerdictDrop, Out{}
		}
		if int(pk.TotalLen) > mtu {
			return p.packetTooBig(s, buf[off:off+n], mtu)
		}
		no, nn, ok = encap.IP6IP6(buf, off, n, pk, eg.Addr6, d.Addr6, eg.MAC, d.MAC)
	case pk.IPv6: // IPv6 in IPv4
		if mtu := eg.MTU - encap.Overhead; int(pk.TotalLen) > mtu {
			return p.packetTooBig(s, buf[off:off+n], mtu)
		}
		no, nn, ok = encap.IP6IP4(buf, off, n, pk, eg.Addr, d.Addr, p.v6.nextID(), eg.MAC, d.MAC)
	default: // IPv4 in IPv6
		mtu := eg.MTU - encap.Overhead6
		if mtu < encap.MinMTU6 {
			c.Drops[DropTooBig].Add(1)
			return VerdictDrop, Out{}
		}
		if int(pk.TotalLen) > mtu {
			if pk.DF {
				// fragNeeded advertises its argument less an IPIP
				// header: pass what leaves mtu.
				return p.fragNeeded(s, buf[off:off+n], mtu+encap.Overhead)
			}
			return p.fragment4in6(d, eg, buf, off, n, out) // frag46.go
		}
		no, nn, ok = encap.IP4IP6(buf, off, n, pk, eg.Addr6, d.Addr6, eg.MAC, d.MAC)
	}
	if !ok {
		c.Drops[DropNoHeadroom].Add(1)
		return VerdictDrop, Out{}
	}
	out.Off, out.Len = no, nn
	return VerdictForward, out
}

// packetTooBig answers frame, an IPv6 packet over mtu, with ICMPv6 Packet
// Too Big advertising mtu, unless the ICMP rate limit holds it back. It
// counts as fragNeeded does: frag_needed when sent, frag_needed_limited
// when held back.
//
// An ICMPv6 error (one the director forwards to a real server) is never
// answered with another (RFC 4443 section 2.4 (e), icmp6_send's
// is_ineligible): too big, it is dropped as too_big.
func (p *Processor) packetTooBig(s *Snapshot, frame []byte, mtu int) (Verdict, Out) {
	return p.packetTooBigFrom(s, frame, mtu, p.pk.DstMapped)
}

// packetTooBigFrom is packetTooBig with the message's source address, the
// router that could not forward.
func (p *Processor) packetTooBigFrom(s *Snapshot, frame []byte, mtu int, router [16]byte) (Verdict, Out) {
	c := p.c
	if mtu < encap.MinMTU6 || p.pk.Proto == header.ProtocolICMPv6 && p.pk.L4 < len(frame) && frame[p.pk.L4] < 128 {
		c.Drops[DropTooBig].Add(1)
		return VerdictDrop, Out{}
	}
	if !p.icmp.Allow6(&p.pk.SrcMapped) {
		c.Drops[DropICMPLimited].Add(1)
		return VerdictDrop, Out{}
	}
	c.Drops[DropFragNeeded].Add(1)
	in := &s.Ifaces[p.ingress]
	var srcMAC [6]byte
	copy(srcMAC[:], frame[6:12])
	p.replyN = encap.PacketTooBig(p.reply[:], frame, p.pk, mtu, in.MAC, srcMAC, router)
	if p.replyN == 0 {
		return VerdictDrop, Out{}
	}
	c.ICMPSent.Add(1)
	return VerdictReply, Out{}
}

package dataplane

import (
	"encoding/binary"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
)

// The SYN proxy over IPv6, for IPv6 VS/NAT services (nat6.go), with the
// IPv4 proxy's semantics (synproxy.go). What differs is only what the
// family makes differ:
//
//   - The cookie hashes the full 16-byte addresses with the ports, the
//     client's ISN, the counter and the MSS index (SipHash-2-4 under the
//     same key, over more words), and carries the same fields. Its MSS
//     table is Linux's for IPv6 syncookies (net/ipv6/syncookies.c):
//     1220 (the minimum IPv6 MTU less 60), 1420, 1440 and 8940; a SYN
//     without an MSS option takes index 0, 1220, the IPv6 default.
//   - The packets the director makes carry a fixed IPv6 header and no
//     extension header: the SYN-ACK from the VIP (hop limit 64, traffic
//     class and flow label 0) offers the ingress MTU less 60 as its MSS;
//     the SYN to the real server, built on the client's ACK, keeps the
//     ACK's traffic class, flow label and hop limit, as the IPv4 SYN
//     keeps the ACK's header; the ACK that answers the server's SYN-ACK
//     keeps its traffic class, with hop limit 64. Their TCP checksums
//     are computed over the IPv6 pseudo-header.
//   - A held client segment is sent to the server with rewrite6, as a
//     client packet of an IPv6 NAT connection is (its extension headers
//     kept), its acknowledgement translated.
//   - An ICMPv6 error from the client's side about a reply has the
//     sequence number it quotes put back into the server's space, the
//     ICMPv6 checksum updated incrementally.
//
// Sequence adjustment (conntrack/seqadj.go) and the hold slots do not
// depend on the family.

// synMSSTable6 is the MSS values an IPv6 cookie can carry, by index.
var synMSSTable6 = [4]uint16{1220, 1420, 1440, 8940}

// cookieHash6 is the hash part of an IPv6 cookie.
func (sp *SYNProxy) cookieHash6(src, dst *[16]byte, sport, dport uint16, isn, count uint32, mss uint8) uint32 {
	w := [6]uint64{
		binary.BigEndian.Uint64(src[0:8]), binary.BigEndian.Uint64(src[8:16]),
		binary.BigEndian.Uint64(dst[0:8]), binary.BigEndian.Uint64(dst[8:16]),
		uint64(sport)<<48 | uint64(dport)<<32 | uint64(isn),
		uint64(count)<<8 | uint64(mss),
	}
	return uint32(sipWords(sp.k0, sp.k1, w[:])) & (1<<synHashBits - 1)
}

// Cookie6 is Cookie for an IPv6 four-tuple.
func (sp *SYNProxy) Cookie6(src, dst *[16]byte, sport, dport uint16, isn, count uint32, mss uint8) uint32 {
	return (count&31)<<27 | uint32(mss&3)<<synHashBits | sp.cookieHash6(src, dst, sport, dport, isn, count, mss)
}

// Check6 is Check for an IPv6 four-tuple.
func (sp *SYNProxy) Check6(src, dst *[16]byte, sport, dport uint16, isn, cookie, now uint32) (uint8, cookieVerdict) {
	age := (now - cookie>>27) & 31
	if age > synCookieMaxAge {
		return 0, cookieExpired
	}
	mss := uint8(cookie >> synHashBits & 3)
	if sp.cookieHash6(src, dst, sport, dport, isn, now-age, mss) != cookie&(1<<synHashBits-1) {
		return 0, cookieBad
	}
	return mss, cookieOK
}

// checkCookie checks the cookie the ACK in p.pk returns, in its family.
func (p *Processor) checkCookie(isn, cookie uint32) (uint8, cookieVerdict) {
	pk := p.pk
	if pk.IPv6 {
		return p.sp.Check6(&pk.SrcMapped, &pk.DstMapped, pk.SrcPort, pk.DstPort, isn, cookie, p.synCounter())
	}
	return p.sp.Check(pk.Src, pk.Dst, pk.SrcPort, pk.DstPort, isn, cookie, p.synCounter())
}

// mssIndexIn is the largest index of table not above the MSS option of
// the SYN's options (index 0 without one).
func mssIndexIn(table *[4]uint16, opts []byte) uint8 {
	mss, ok := mssOption(opts)
	if !ok {
		return 0
	}
	i := uint8(0)
	for j := range table {
		if table[j] <= mss {
			i = uint8(j)
		}
	}
	return i
}

// synCookieReply6 is synCookieReply for an IPv6 SYN: the SYN-ACK from
// the VIP, a fixed IPv6 header and the TCP header with the cookie and
// an MSS option, in p.reply.
func (p *Processor) synCookieReply6(s *Snapshot) (Verdict, Out) {
	pk, frame := p.pk, p.frame
	t := header.TCP(frame[pk.L4:pk.End])
	hl := t.HeaderLen()
	if hl < header.TCPMinLen || hl > len(t) || pk.L3 > 18 {
		p.c.Drops[DropNoConnection].Add(1)
		return VerdictDrop, Out{}
	}
	mss := mssIndexIn(&synMSSTable6, t[header.TCPMinLen:hl])
	cookie := p.sp.Cookie6(&pk.SrcMapped, &pk.DstMapped, pk.SrcPort, pk.DstPort, t.Seq(), p.synCounter(), mss)
	adv := uint16(1440)
	if p.ingress < len(s.Ifaces) && s.Ifaces[p.ingress].MTU >= 1280 {
		adv = uint16(min(s.Ifaces[p.ingress].MTU-60, 65535-60))
	}
	r := p.reply[:pk.L3+header.IPv6Len+24]
	p.replyL2(s, r)
	ip := header.IPv6(r[pk.L3:])
	ip.SetVersionClassFlow(0, 0)
	ip.SetPayloadLength(24)
	ip.SetNextHeader(header.ProtocolTCP)
	ip.SetHopLimit(64)
	ip.SetSrc(pk.DstMapped)
	ip.SetDst(pk.SrcMapped)
	o := r[pk.L3+header.IPv6Len:]
	writeSegment(o, pk.DstPort, pk.SrcPort, cookie, t.Seq()+1, header.TCPFlagSYN|header.TCPFlagACK, 65535, adv)
	header.TCP(o).SetChecksum(^header.Checksum(o, header.PseudoHeaderChecksumIPv6(header.ProtocolTCP, pk.DstMapped, pk.SrcMapped, 24)))
	p.replyN = len(r)
	p.c.SYNProxy.Cookies.Add(1)
	return VerdictReply, Out{}
}

// synToServer6 is synToServer for an IPv6 segment: the frame becomes a
// fixed IPv6 header (the segment's traffic class, flow label, hop limit
// and source; d's address) and a SYN with the MSS option, any extension
// headers dropped.
func (p *Processor) synToServer6(s *Snapshot, d *Dest, buf []byte, off int, isn uint32, mss uint8) (Verdict, Out) {
	c, pk := p.c, p.pk
	eg, ok := p.egress(s, d)
	if !ok {
		return VerdictDrop, Out{}
	}
	l4 := pk.L3 + header.IPv6Len
	end := l4 + 24
	if off+end > len(buf) {
		c.Drops[DropNoHeadroom].Add(1)
		return VerdictDrop, Out{}
	}
	// The segment's window, read before its TCP header may be
	// overwritten (when extension headers move it).
	win := header.TCP(buf[off+pk.L4 : off+pk.End]).Window()
	f := buf[off : off+end]
	ip := header.IPv6(f[pk.L3:])
	ip.SetPayloadLength(24)
	ip.SetNextHeader(header.ProtocolTCP)
	ip.SetDst(d.Addr6)
	o := f[l4:end]
	writeSegment(o, pk.SrcPort, natPort(d, pk.DstPort), isn, 0, header.TCPFlagSYN, win, synMSSTable6[mss&3])
	header.TCP(o).SetChecksum(^header.Checksum(o, header.PseudoHeaderChecksumIPv6(header.ProtocolTCP, pk.SrcMapped, d.Addr6, 24)))
	encap.DR(f, d.MAC, eg.MAC)
	return VerdictForward, Out{Off: off, Len: end, Slot: d.Slot}
}

// synAckToServer6 writes, in the frame of the server's IPv6 SYN-ACK
// (parsed as p.pk), the client's ACK of it to d: a fixed IPv6 header
// (its traffic class kept, hop limit 64) and a bare ACK, client ISN+1,
// server ISN+1, the client's window. It returns the frame's new length.
func (p *Processor) synAckToServer6(frame []byte, d *Dest, eg *Iface, sq conntrack.Seq, srvISN uint32) int {
	pk := p.pk
	l4 := pk.L3 + header.IPv6Len
	end := l4 + header.TCPMinLen
	f := frame[:end]
	ip := header.IPv6(f[pk.L3:])
	ip.SetVersionClassFlow(ip.TrafficClass(), 0)
	ip.SetPayloadLength(header.TCPMinLen)
	ip.SetNextHeader(header.ProtocolTCP)
	ip.SetHopLimit(64)
	ip.SetSrc(pk.DstMapped)
	ip.SetDst(pk.SrcMapped)
	o := f[l4:end]
	writeSegment(o, pk.DstPort, pk.SrcPort, sq.ClientISN+1, srvISN+1, header.TCPFlagACK, sq.Window, 0)
	header.TCP(o).SetChecksum(^header.Checksum(o, header.PseudoHeaderChecksumIPv6(header.ProtocolTCP, pk.DstMapped, pk.SrcMapped, header.TCPMinLen)))
	encap.DR(f, d.MAC, eg.MAC)
	return end
}

// synProxyICMP6 is synProxyICMP for an ICMPv6 error from the client's
// side, already rewritten for the server by natICMP6Rewrite: l4 is the
// quoted TCP header's offset from the quoted IPv6 header.
func (p *Processor) synProxyICMP6(conn *conntrack.Conn, frame []byte, l4 int) {
	sq, ok := p.ct.SeqOf(conn)
	if !ok || sq.Pending {
		return
	}
	pk := p.pk
	msg := frame[pk.L4:pk.End]
	seq := header.ICMPv6Len + l4 + 4
	if seq+4 > len(msg) {
		return
	}
	add32(msg[seq:seq+4], msg[2:4], -sq.Delta)
}

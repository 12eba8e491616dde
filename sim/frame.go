package sim

import (
	"encoding/binary"
	"net/netip"

	"github.com/afvs/afvs/internal/header"
)

// Frame sizes: the processor reads only headers, so frames carry no payload.
const (
	chunkSize = 2048 // one UMEM chunk, as a worker would see it
	headroom  = 256  // room VS/TUN prepends its outer header into
	tcpLen    = 20
	udpLen    = 8
)

// Both MACs are locally administered; the director does not check the
// destination MAC, but a frame that looks real keeps the parse honest.
var (
	directorMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	clientMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

// writeFrame writes the frame for packet event ev at buf[headroom:] and
// returns its length. buf must hold chunkSize bytes. The IPv4 header
// checksum is computed, because the parser rejects a bad one; so is the
// TCP or UDP checksum (over the IPv6 pseudo-header for IPv6), so the frame
// is what a client would have sent.
func writeFrame(buf []byte, ev *Event) int {
	return writePacket(buf, ev.Proto, ev.Client, ev.CPort, ev.VIP, ev.VPort, ev.Flags)
}

// writePacket writes a frame from src:sport to dst:dport as writeFrame
// does: a client's packet, or a real server's reply. src and dst are of
// one family; an IPv6 frame has the fixed header only, hop limit 64.
func writePacket(buf []byte, proto uint8, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8) int {
	b := buf[headroom:chunkSize]
	eth := header.Ethernet(b[:header.EthernetLen])
	eth.SetDstMAC(directorMAC)
	eth.SetSrcMAC(clientMAC)

	l4 := tcpLen
	if proto == header.ProtocolUDP {
		l4 = udpLen
	}
	var sum uint16 // the pseudo-header's partial checksum
	ipLen := header.IPv4MinLen
	if src.Is6() {
		ipLen = header.IPv6Len
		eth.SetEtherType(header.EtherTypeIPv6)
		ip := header.IPv6(b[header.EthernetLen : header.EthernetLen+ipLen])
		ip.SetVersionClassFlow(0, 0)
		ip.SetPayloadLength(uint16(l4))
		ip.SetNextHeader(proto)
		ip.SetHopLimit(64)
		ip.SetSrc(src.As16())
		ip.SetDst(dst.As16())
		sum = header.PseudoHeaderChecksumIPv6(proto, src.As16(), dst.As16(), uint32(l4))
	} else {
		eth.SetEtherType(header.EtherTypeIPv4)
		ip := header.IPv4(b[header.EthernetLen : header.EthernetLen+ipLen])
		ip.SetVersionIHL(header.IPv4MinLen)
		ip.SetTOS(0)
		ip.SetTotalLength(uint16(header.IPv4MinLen + l4))
		ip.SetID(0)
		ip.SetFlagsFragment(header.IPv4FlagDF)
		ip.SetTTL(64)
		ip.SetProtocol(proto)
		ip.SetSrc(src.As4())
		ip.SetDst(dst.As4())
		ip.SetChecksum(0)
		ip.SetChecksum(ip.CalculateChecksum())
		sum = header.PseudoHeaderChecksum(proto, src.As4(), dst.As4(), uint16(l4))
	}

	t := b[header.EthernetLen+ipLen : header.EthernetLen+ipLen+l4]
	binary.BigEndian.PutUint16(t[0:2], sport)
	binary.BigEndian.PutUint16(t[2:4], dport)
	if proto == header.ProtocolUDP {
		binary.BigEndian.PutUint16(t[4:6], udpLen)
		binary.BigEndian.PutUint16(t[6:8], 0)
	} else {
		binary.BigEndian.PutUint32(t[4:8], 1)  // sequence number
		binary.BigEndian.PutUint32(t[8:12], 0) // acknowledgment number
		t[12] = (tcpLen / 4) << 4
		t[13] = flags
		binary.BigEndian.PutUint16(t[14:16], 65535) // window
		binary.BigEndian.PutUint16(t[16:18], 0)
		binary.BigEndian.PutUint16(t[18:20], 0) // urgent pointer
	}
	ck := ^header.Checksum(t, sum)
	if proto == header.ProtocolUDP && ck == 0 {
		ck = 0xffff // RFC 768 (and RFC 8200, where 0 is not allowed): a computed zero is sent as all ones
	}
	off := 16
	if proto == header.ProtocolUDP {
		off = 6
	}
	binary.BigEndian.PutUint16(t[off:off+2], ck)
	return header.EthernetLen + ipLen + l4
}

package bench

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/afvs/afvs/internal/header"
)

// Frame describes the generator's test frame: Ethernet, IPv4 without
// options or IPv6 without extension headers (Src and Dst of one family),
// UDP, and a zero payload up to Len bytes.
type Frame struct {
	SrcMAC, DstMAC   [6]byte
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	// Len is the frame length without the FCS, which a veth never
	// carries: 60 makes the 64-byte minimum Ethernet frame on a wire;
	// over IPv6 the headers alone take MinFrameLen6.
	Len int
}

// Frame layout sizes.
const (
	ethLen  = 14
	ipv4Len = 20
	ipv6Len = 40
	udpLen  = 8
	// MinFrameLen is the shortest Ethernet frame without FCS (64 with it).
	MinFrameLen = 60
	// MinFrameLen6 is the shortest UDP frame over IPv6: the Ethernet,
	// IPv6 and UDP headers with no payload, 66 bytes with the FCS.
	MinFrameLen6 = ethLen + ipv6Len + udpLen
	// MaxFrameLen keeps a test frame inside one Ethernet MTU.
	MaxFrameLen = 1514
)

// layout is where the fields the generator rewrites sit in a frame of one
// family. The generator rewrites ports and the low 32 bits of addresses in
// place: for IPv4 the whole address.
type layout struct {
	v6      bool
	src     int // the source address's low 32 bits
	dst     int // the destination address's low 32 bits
	srcPort int
	dstPort int
	udpSum  int
}

var (
	layout4 = layout{src: ethLen + 12, dst: ethLen + 16, srcPort: ethLen + ipv4Len, dstPort: ethLen + ipv4Len + 2, udpSum: ethLen + ipv4Len + 6}
	layout6 = layout{v6: true, src: ethLen + 8 + 12, dst: ethLen + 24 + 12, srcPort: ethLen + ipv6Len, dstPort: ethLen + ipv6Len + 2, udpSum: ethLen + ipv6Len + 6}
)

// layoutOf is the layout of a frame made by Build, by its ethertype.
func layoutOf(b []byte) *layout {
	if b[12] == 0x86 && b[13] == 0xdd {
		return &layout6
	}
	return &layout4
}

// Is6 reports whether the frame is IPv6.
func (f Frame) Is6() bool { return f.Dst.Is6() && !f.Dst.Is4In6() }

// MinLen is the shortest frame of f's family: MinFrameLen or MinFrameLen6.
func (f Frame) MinLen() int {
	if f.Is6() {
		return MinFrameLen6
	}
	return MinFrameLen
}

// Validate reports the first field that breaks a rule.
func (f Frame) Validate() error {
	if !f.Dst.IsValid() || f.Dst.Is4In6() || f.Dst.Zone() != "" {
		return fmt.Errorf("frame destination %v: must be an IPv4 or IPv6 address", f.Dst)
	}
	if f.Dst.Is4() && !f.Src.Is4() {
		return fmt.Errorf("frame source %v: must be an IPv4 address, as the destination %v is", f.Src, f.Dst)
	}
	if f.Is6() && (!f.Src.Is6() || f.Src.Is4In6() || f.Src.Zone() != "") {
		return fmt.Errorf("frame source %v: must be an IPv6 address, as the destination %v is", f.Src, f.Dst)
	}
	if f.Len < f.MinLen() || f.Len > MaxFrameLen {
		return fmt.Errorf("frame length %d: must be from %d to %d bytes", f.Len, f.MinLen(), MaxFrameLen)
	}
	if f.DstPort == 0 {
		return fmt.Errorf("frame destination port 0: must be from 1 to 65535")
	}
	return nil
}

// Build writes the frame into dst and returns its length. Both checksums
// (the UDP one only over IPv6) are complete, so the frame is valid on any
// path and no checksum offload is involved.
func (f Frame) Build(dst []byte) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, fmt.Errorf("build frame: %w", err)
	}
	if len(dst) < f.Len {
		return 0, fmt.Errorf("build frame: buffer of %d bytes: needs at least the frame length %d", len(dst), f.Len)
	}
	b := dst[:f.Len]
	clear(b)
	copy(b[0:6], f.DstMAC[:])
	copy(b[6:12], f.SrcMAC[:])
	var udp []byte
	var pseudo uint16
	if f.Is6() {
		binary.BigEndian.PutUint16(b[12:14], 0x86dd)
		ip := b[ethLen : ethLen+ipv6Len]
		udp = b[ethLen+ipv6Len:]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:6], uint16(len(udp)))
		ip[6] = 17 // UDP
		ip[7] = 64 // hop limit
		src, dstAddr := f.Src.As16(), f.Dst.As16()
		copy(ip[8:24], src[:])
		copy(ip[24:40], dstAddr[:])
		pseudo = header.PseudoHeaderChecksumIPv6(17, src, dstAddr, uint32(len(udp)))
	} else {
		binary.BigEndian.PutUint16(b[12:14], 0x0800)
		ip := b[ethLen : ethLen+ipv4Len]
		udp = b[ethLen+ipv4Len:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:4], uint16(f.Len-ethLen))
		ip[8] = 64 // TTL
		ip[9] = 17 // UDP
		src, dstAddr := f.Src.As4(), f.Dst.As4()
		copy(ip[12:16], src[:])
		copy(ip[16:20], dstAddr[:])
		binary.BigEndian.PutUint16(ip[10:12], ^header.Checksum(ip, 0))
		pseudo = header.PseudoHeaderChecksum(17, src, dstAddr, uint16(len(udp)))
	}
	binary.BigEndian.PutUint16(udp[0:2], f.SrcPort)
	binary.BigEndian.PutUint16(udp[2:4], f.DstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	sum := ^header.Checksum(udp, pseudo)
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" over IPv4 and is not allowed over IPv6
	}
	binary.BigEndian.PutUint16(udp[6:8], sum)
	return f.Len, nil
}

// SetSourcePort rewrites the UDP source port of a frame made by Build and
// patches the UDP checksum incrementally, so that each frame can belong to
// a different flow at the cost of a few stores. b must hold a whole frame
// from Build; the generator guarantees it.
func SetSourcePort(b []byte, port uint16) { l := layoutOf(b); l.setPort(b, l.srcPort, port) }

// SetDestPort is SetSourcePort for the UDP destination port.
func SetDestPort(b []byte, port uint16) { l := layoutOf(b); l.setPort(b, l.dstPort, port) }

func (l *layout) setPort(b []byte, off int, port uint16) {
	old := binary.BigEndian.Uint16(b[off:])
	sum := binary.BigEndian.Uint16(b[l.udpSum:])
	binary.BigEndian.PutUint16(b[off:], port)
	binary.BigEndian.PutUint16(b[l.udpSum:], header.ChecksumUpdate16(sum, old, port))
}

// SetSourceAddr rewrites the low 32 bits of the source address of a frame
// made by Build (the whole address over IPv4) and patches the checksums
// incrementally: IPv4's header checksum and UDP's.
func SetSourceAddr(b []byte, low [4]byte) { l := layoutOf(b); l.setAddr(b, l.src, low) }

// SetDestAddr is SetSourceAddr for the destination address.
func SetDestAddr(b []byte, low [4]byte) { l := layoutOf(b); l.setAddr(b, l.dst, low) }

func (l *layout) setAddr(b []byte, off int, addr [4]byte) {
	const offIPSum = ethLen + 10
	old := [4]byte(b[off : off+4])
	if old == addr {
		return
	}
	copy(b[off:], addr[:])
	if !l.v6 {
		ipSum := binary.BigEndian.Uint16(b[offIPSum:])
		binary.BigEndian.PutUint16(b[offIPSum:], header.ChecksumUpdateAddr(ipSum, old, addr))
	}
	udpSum := binary.BigEndian.Uint16(b[l.udpSum:])
	binary.BigEndian.PutUint16(b[l.udpSum:], header.ChecksumUpdateAddr(udpSum, old, addr))
}

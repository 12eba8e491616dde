package bench

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/afvs/afvs/internal/header"
)

// Frame describes the generator's test frame: Ethernet, IPv4 without
// options, UDP, and a zero payload up to Len bytes.
type Frame struct {
	SrcMAC, DstMAC   [6]byte
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	// Len is the frame length without the FCS, which a veth never
	// carries: 60 makes the 64-byte minimum Ethernet frame on a wire.
	Len int
}

// Frame layout offsets; the generator rewrites the source port in place.
const (
	ethLen  = 14
	ipv4Len = 20
	// MinFrameLen is the shortest Ethernet frame without FCS (64 with it).
	MinFrameLen = 60
	// MaxFrameLen keeps a test frame inside one Ethernet MTU.
	MaxFrameLen = 1514

	offSrcPort = ethLen + ipv4Len
	offDstPort = ethLen + ipv4Len + 2
	offUDPSum  = ethLen + ipv4Len + 6
	offSrc     = ethLen + 12
	offDst     = ethLen + 16
)

// Validate reports the first field that breaks a rule.
func (f Frame) Validate() error {
	if !f.Src.Is4() {
		return fmt.Errorf("frame source %v: must be an IPv4 address", f.Src)
	}
	if !f.Dst.Is4() {
		return fmt.Errorf("frame destination %v: must be an IPv4 address", f.Dst)
	}
	if f.Len < MinFrameLen || f.Len > MaxFrameLen {
		return fmt.Errorf("frame length %d: must be from %d to %d bytes", f.Len, MinFrameLen, MaxFrameLen)
	}
	if f.DstPort == 0 {
		return fmt.Errorf("frame destination port 0: must be from 1 to 65535")
	}
	return nil
}

// Build writes the frame into dst and returns its length. Both checksums
// are complete, so the frame is valid on any path and no checksum offload
// is involved.
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
	binary.BigEndian.PutUint16(b[12:14], 0x0800)

	ip := b[ethLen : ethLen+ipv4Len]
	ipTotal := f.Len - ethLen
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipTotal))
	ip[8] = 64 // TTL
	ip[9] = 17 // UDP
	src, dstAddr := f.Src.As4(), f.Dst.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dstAddr[:])
	binary.BigEndian.PutUint16(ip[10:12], ^header.Checksum(ip, 0))

	udp := b[ethLen+ipv4Len:]
	binary.BigEndian.PutUint16(udp[0:2], f.SrcPort)
	binary.BigEndian.PutUint16(udp[2:4], f.DstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	sum := ^header.Checksum(udp, header.PseudoHeaderChecksum(17, src, dstAddr, uint16(len(udp))))
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(udp[6:8], sum)
	return f.Len, nil
}

// SetSourcePort rewrites the UDP source port of a frame made by Build and
// patches the UDP checksum incrementally, so that each frame can belong to
// a different flow at the cost of a few stores. b must hold a whole frame
// from Build; the generator guarantees it.
func SetSourcePort(b []byte, port uint16) { setPort(b, offSrcPort, port) }

// SetDestPort is SetSourcePort for the UDP destination port.
func SetDestPort(b []byte, port uint16) { setPort(b, offDstPort, port) }

func setPort(b []byte, off int, port uint16) {
	old := binary.BigEndian.Uint16(b[off:])
	sum := binary.BigEndian.Uint16(b[offUDPSum:])
	binary.BigEndian.PutUint16(b[off:], port)
	binary.BigEndian.PutUint16(b[offUDPSum:], header.ChecksumUpdate16(sum, old, port))
}

// SetSourceAddr rewrites the IPv4 source address of a frame made by Build
// and patches the IPv4 and UDP checksums incrementally.
func SetSourceAddr(b []byte, addr [4]byte) { setAddr(b, offSrc, addr) }

// SetDestAddr is SetSourceAddr for the IPv4 destination address.
func SetDestAddr(b []byte, addr [4]byte) { setAddr(b, offDst, addr) }

func setAddr(b []byte, off int, addr [4]byte) {
	const offIPSum = ethLen + 10
	old := [4]byte(b[off : off+4])
	if old == addr {
		return
	}
	copy(b[off:], addr[:])
	ipSum := binary.BigEndian.Uint16(b[offIPSum:])
	binary.BigEndian.PutUint16(b[offIPSum:], header.ChecksumUpdateAddr(ipSum, old, addr))
	udpSum := binary.BigEndian.Uint16(b[offUDPSum:])
	binary.BigEndian.PutUint16(b[offUDPSum:], header.ChecksumUpdateAddr(udpSum, old, addr))
}

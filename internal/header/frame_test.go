package header

import (
	"net"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// spec describes a frame for build. Zero values give a plain TCP segment.
type spec struct {
	vlan     bool
	vlanID   uint16
	prio     uint8
	udp      bool
	tos      uint8
	df       bool
	id       uint16
	ttl      uint8
	src, dst [4]byte
	sport    uint16
	dport    uint16
	syn, ack bool
	ipOpts   []layers.IPv4Option
	tcpOpts  []layers.TCPOption
	payload  []byte
	pad      int // extra bytes after the IP packet, beyond gopacket's own padding to 60
}

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	testDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// build serializes s with gopacket, with lengths and checksums filled in.
func build(t testing.TB, s spec) []byte {
	t.Helper()
	if s.src == ([4]byte{}) {
		s.src = [4]byte{198, 18, 0, 1}
	}
	if s.dst == ([4]byte{}) {
		s.dst = [4]byte{198, 18, 1, 100}
	}
	if s.ttl == 0 {
		s.ttl = 63
	}
	ls := []gopacket.SerializableLayer{}
	eth := &layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC, EthernetType: layers.EthernetTypeIPv4}
	ls = append(ls, eth)
	if s.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{Priority: s.prio, VLANIdentifier: s.vlanID, Type: layers.EthernetTypeIPv4})
	}
	ip := &layers.IPv4{
		Version: 4, TOS: s.tos, Id: s.id, TTL: s.ttl,
		SrcIP: net.IP(s.src[:]), DstIP: net.IP(s.dst[:]),
		Options: s.ipOpts,
	}
	if s.df {
		ip.Flags = layers.IPv4DontFragment
	}
	ls = append(ls, ip)
	if s.udp {
		ip.Protocol = layers.IPProtocolUDP
		ls = append(ls, &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)})
	} else {
		ip.Protocol = layers.IPProtocolTCP
		ls = append(ls, &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport),
			Seq: 1000, Ack: 2000, SYN: s.syn, ACK: s.ack, Window: 65535, Options: s.tcpOpts})
	}
	ls = append(ls, gopacket.Payload(s.payload))
	return append(testsupport.Build(t, ls...), make([]byte, s.pad)...)
}

// refChecksum is the RFC 1071 sum written the slow, obvious way.
func refChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		sum += w
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
	}
	return uint16(sum)
}

// fixIPChecksum recomputes the IPv4 header checksum at l3 after a test edit.
func fixIPChecksum(f []byte, l3 int) {
	hl := int(f[l3]&0x0f) * 4
	if hl < 20 || l3+hl > len(f) {
		return
	}
	f[l3+10], f[l3+11] = 0, 0
	c := ^refChecksum(f[l3 : l3+hl])
	f[l3+10], f[l3+11] = byte(c>>8), byte(c)
}

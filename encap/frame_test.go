package encap

import (
	"net"
	"testing"

	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// spec describes a client frame for build.
type spec struct {
	vlan    bool
	vlanID  uint16
	udp     bool
	tos     uint8
	df      bool
	id      uint16
	ipOpts  []layers.IPv4Option
	payload int // bytes of L4 payload, filled with a pattern
}

var (
	clientMAC   = [6]byte{0x02, 0xc1, 0, 0, 0, 1}
	directorMAC = [6]byte{0x02, 0xd1, 0, 0, 0, 1}
	egressMAC   = [6]byte{0x02, 0xd1, 0, 0, 0, 2}
	rsMAC       = [6]byte{0x02, 0x5e, 0, 0, 0, 3}
	clientIP    = [4]byte{198, 18, 0, 10}
	vip         = [4]byte{198, 18, 0, 100}
	directorIP  = [4]byte{198, 19, 0, 1}
	rsIP        = [4]byte{198, 19, 0, 3}
)

// build serializes a client-to-VIP frame with gopacket, as the director
// receives it.
func build(t testing.TB, s spec) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: clientMAC[:], DstMAC: directorMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	if s.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: s.vlanID, Priority: 2, Type: layers.EthernetTypeIPv4})
	}
	ip := &layers.IPv4{Version: 4, TOS: s.tos, Id: s.id, TTL: 61, SrcIP: net.IP(clientIP[:]), DstIP: net.IP(vip[:]), Options: s.ipOpts}
	if s.df {
		ip.Flags = layers.IPv4DontFragment
	}
	ls = append(ls, ip)
	if s.udp {
		ip.Protocol = layers.IPProtocolUDP
		ls = append(ls, &layers.UDP{SrcPort: 40000, DstPort: 7000})
	} else {
		ip.Protocol = layers.IPProtocolTCP
		ls = append(ls, &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 77, ACK: true, PSH: true, Ack: 88, Window: 1000})
	}
	pl := make([]byte, s.payload)
	for i := range pl {
		pl[i] = byte(i*13 + 1)
	}
	ls = append(ls, gopacket.Payload(pl))
	return testsupport.Build(t, ls...)
}

func parse(t testing.TB, frame []byte) header.Packet {
	t.Helper()
	var p header.Packet
	if r := header.Parse(frame, &p); r != header.OK {
		t.Fatalf("parse: %v", r)
	}
	return p
}

// sum16 is the RFC 1071 sum the slow way, independent of package header.
func sum16(b []byte) uint16 {
	var s uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// gopacketIPChecksum lets gopacket compute the checksum of a header with the
// given fields, so that ours is checked against an independent encoder.
func gopacketIPChecksum(t *testing.T, ip *layers.IPv4) uint16 {
	t.Helper()
	c := *ip
	buf := gopacket.NewSerializeBuffer()
	if err := c.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatal(err)
	}
	return c.Checksum
}

package xdpprog

import (
	"net"
	"net/netip"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	macClient   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macDirector = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	vip         = netip.MustParseAddr("198.18.0.10")
	otherAddr   = netip.MustParseAddr("198.18.0.11")
	clientAddr  = netip.MustParseAddr("198.18.1.1")
	directorIP  = netip.MustParseAddr("198.18.2.1")
	realIP      = netip.MustParseAddr("198.18.2.2")
)

// frameSpec describes a test frame; the zero value of each field means
// "the usual": untagged Ethernet, IPv4 from the client to the VIP.
type frameSpec struct {
	vlan      uint16 // 802.1Q tag when non-zero
	dst       netip.Addr
	src       netip.Addr // default clientAddr
	srcPort   uint16     // default 40000
	proto     layers.IPProtocol
	dstPort   uint16
	fragOff   uint16 // in 8-byte units
	moreFrags bool
	payload   []byte
	ipv6      bool // an IPv6 frame: buildFrame6
	ext       bool // IPv6: a destination options header before the transport
}

// buildFrame serialises spec with gopacket, computing lengths and
// checksums, so fixtures are real packets rather than hand-typed bytes.
func buildFrame(t testing.TB, spec frameSpec) []byte {
	t.Helper()
	if !spec.dst.IsValid() {
		spec.dst = vip
	}
	if spec.proto == 0 {
		spec.proto = layers.IPProtocolTCP
	}
	if !spec.src.IsValid() {
		spec.src = clientAddr
	}
	if spec.srcPort == 0 {
		spec.srcPort = 40000
	}
	if spec.payload == nil {
		spec.payload = []byte("hello")
	}
	if spec.ipv6 {
		return buildFrame6(t, spec)
	}
	eth := &layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector, EthernetType: layers.EthernetTypeIPv4}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	if spec.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: spec.vlan, Type: layers.EthernetTypeIPv4})
	}
	ip := &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Protocol: spec.proto,
		SrcIP: spec.src.AsSlice(), DstIP: spec.dst.AsSlice(),
		FragOffset: spec.fragOff,
	}
	if spec.moreFrags {
		ip.Flags = layers.IPv4MoreFragments
	}
	ls = append(ls, ip)
	switch {
	case spec.fragOff != 0:
		// A non-first fragment: only payload follows the IPv4 header.
	case spec.proto == layers.IPProtocolTCP:
		ls = append(ls, &layers.TCP{SrcPort: layers.TCPPort(spec.srcPort), DstPort: layers.TCPPort(spec.dstPort), SYN: true, Window: 1024})
	case spec.proto == layers.IPProtocolUDP:
		ls = append(ls, &layers.UDP{SrcPort: layers.UDPPort(spec.srcPort), DstPort: layers.UDPPort(spec.dstPort)})
	case spec.proto == layers.IPProtocolICMPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1})
	}
	ls = append(ls, gopacket.Payload(spec.payload))
	return serialize(t, ls...)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	return testsupport.Build(t, ls...)
}

func arpFrame(t testing.TB) []byte {
	return serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: macClient, SourceProtAddress: clientAddr.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: vip.AsSlice(),
		})
}

func ipv6Frame(t testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
		SrcIP: netip.MustParseAddr("2001:2::1").AsSlice(), DstIP: netip.MustParseAddr("2001:2::10").AsSlice()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector, EthernetType: layers.EthernetTypeIPv6},
		ip, tcp)
}

// ipipFrame wraps inner (an IPv4 packet without Ethernet header) in an
// outer IPv4 header from the director to the real server.
func ipipFrame(t testing.TB, inner []byte, outerOptions bool) []byte {
	outer := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolIPv4,
		SrcIP: directorIP.AsSlice(), DstIP: realIP.AsSlice(), Flags: layers.IPv4DontFragment}
	if outerOptions {
		// A 4-byte option (NOP NOP NOP EOL) makes IHL 6, so the strip must
		// use the header length rather than assume 20 bytes.
		outer.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	return serialize(t,
		&layers.Ethernet{SrcMAC: macDirector, DstMAC: macClient, EthernetType: layers.EthernetTypeIPv4},
		outer, gopacket.Payload(inner))
}

func decodeFrame(t testing.TB, b []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode frame: %v", el.Error())
	}
	return p
}

// ipv4HeaderSum is the ones'-complement sum of an IPv4 header including
// its checksum field: 0xffff when the checksum is right.
func ipv4HeaderSum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

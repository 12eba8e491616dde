package testsupport

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Build serialises layers, outermost first, into one packet with lengths
// and checksums computed. It links the layers as a stack does: an
// Ethernet or Dot1Q type left zero takes the next layer's EtherType, an
// IPv4 protocol or IPv6 next header left zero takes the next layer's
// protocol (IPIP for an inner IPv4, 41 for an inner IPv6), and TCP, UDP and
// ICMPv6 checksum over the nearest IPv4 or IPv6 before them.
// A gopacket.Payload may end the list.
func Build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var ip gopacket.NetworkLayer
	for i, l := range ls {
		var next gopacket.SerializableLayer
		if i+1 < len(ls) {
			next = ls[i+1]
		}
		switch l := l.(type) {
		case *layers.Ethernet:
			if l.EthernetType == 0 {
				l.EthernetType = etherType(next)
			}
		case *layers.Dot1Q:
			if l.Type == 0 {
				l.Type = etherType(next)
			}
		case *layers.IPv4:
			if l.Version == 0 {
				l.Version = 4
			}
			if l.IHL == 0 {
				l.IHL = 5 // FixLengths recomputes it from the options
			}
			if l.Protocol == 0 {
				l.Protocol = ipProto(next)
			}
			ip = l
		case *layers.IPv6:
			if l.Version == 0 {
				l.Version = 6
			}
			if l.NextHeader == 0 && l.HopByHop == nil {
				l.NextHeader = ipProto(next)
			}
			ip = l
		case *layers.ICMPv6:
			if ip != nil {
				if err := l.SetNetworkLayerForChecksum(ip); err != nil {
					t.Fatalf("testsupport.Build: %v", err)
				}
			}
		case *layers.TCP:
			if ip != nil {
				if err := l.SetNetworkLayerForChecksum(ip); err != nil {
					t.Fatalf("testsupport.Build: %v", err)
				}
			}
		case *layers.UDP:
			if ip != nil {
				if err := l.SetNetworkLayerForChecksum(ip); err != nil {
					t.Fatalf("testsupport.Build: %v", err)
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("testsupport.Build: %v", err)
	}
	return buf.Bytes()
}

func etherType(next gopacket.SerializableLayer) layers.EthernetType {
	switch next.(type) {
	case *layers.Dot1Q:
		return layers.EthernetTypeDot1Q
	case *layers.IPv4:
		return layers.EthernetTypeIPv4
	case *layers.IPv6:
		return layers.EthernetTypeIPv6
	case *layers.ARP:
		return layers.EthernetTypeARP
	}
	return 0
}

func ipProto(next gopacket.SerializableLayer) layers.IPProtocol {
	switch next.(type) {
	case *layers.TCP:
		return layers.IPProtocolTCP
	case *layers.UDP:
		return layers.IPProtocolUDP
	case *layers.ICMPv4:
		return layers.IPProtocolICMPv4
	case *layers.IPv4:
		return layers.IPProtocolIPv4
	case *layers.IPv6:
		return layers.IPProtocolIPv6
	case *layers.ICMPv6:
		return layers.IPProtocolICMPv6
	}
	return 0
}

// Eth is an Ethernet header from src to dst; its type follows the next
// layer in Build.
func Eth(src, dst net.HardwareAddr) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src, DstMAC: dst}
}

// IPv4 is an IPv4 header from src to dst with TTL 64; its protocol follows
// the next layer in Build. Set Flags, TOS, Id or Options on the result.
func IPv4(src, dst netip.Addr) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// TCPFlags selects the flags of a TCP header.
type TCPFlags uint8

const (
	FIN TCPFlags = 1 << iota
	SYN
	RST
	PSH
	ACK
)

// TCP is a TCP header from sport to dport with the given flags, sequence
// number 1 and window 1000.
func TCP(sport, dport uint16, flags TCPFlags) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, Window: 1000,
		FIN: flags&FIN != 0, SYN: flags&SYN != 0, RST: flags&RST != 0, PSH: flags&PSH != 0, ACK: flags&ACK != 0}
}

// UDP is a UDP header from sport to dport.
func UDP(sport, dport uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
}

// Payload is n bytes of payload, each its offset modulo 251, so that a
// moved or truncated payload shows.
func Payload(n int) gopacket.Payload {
	p := make(gopacket.Payload, n)
	for i := range p {
		p[i] = byte(i % 251)
	}
	return p
}

// RawPayload is b as a payload layer, for bytes a test already has.
func RawPayload(b []byte) gopacket.Payload { return gopacket.Payload(b) }

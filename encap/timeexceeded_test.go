package encap

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
)

// TestTimeExceededAnswers: Time Exceeded answers what icmp_send and
// icmpv6_send answer (a TCP or UDP packet, an ICMP query, a first
// fragment) and not what they refuse (an ICMP error, a later fragment),
// and the message decodes with gopacket as type 11 code 0 (ICMPv6: 3/0)
// from the router to the sender, quoting the packet.
func TestTimeExceededAnswers(t *testing.T) {
	cmac, dmac := net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	client, vip := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.19.0.1")
	client6, vip6 := netip.MustParseAddr("2001:2::10"), netip.MustParseAddr("2001:2:0:1::1")
	ip4 := func(frag uint16) *layers.IPv4 {
		ip := ts.IPv4(client, vip)
		ip.TTL, ip.FragOffset = 1, frag
		return ip
	}
	icmp4 := func(typ uint8) gopacket.SerializableLayer {
		return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0)}
	}
	newIP6 := func() *layers.IPv6 { return &layers.IPv6{HopLimit: 1, SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()} }
	icmp6 := func(typ uint8) []byte {
		ip := newIP6()
		m := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
		_ = m.SetNetworkLayerForChecksum(ip)
		return ts.Build(t, ts.Eth(cmac, dmac), ip, m, ts.Payload(48))
	}
	cases := []struct {
		name   string
		frame  []byte
		answer bool
	}{
		{"TCP", ts.Build(t, ts.Eth(cmac, dmac), ip4(0), ts.TCP(40000, 80, ts.SYN), ts.Payload(10)), true},
		{"UDP", ts.Build(t, ts.Eth(cmac, dmac), ip4(0), ts.UDP(40000, 53), ts.Payload(10)), true},
		{"TCP, 1400 bytes", ts.Build(t, ts.Eth(cmac, dmac), ip4(0), ts.TCP(40000, 80, ts.ACK), ts.Payload(1400)), true},
		{"ICMP echo", ts.Build(t, ts.Eth(cmac, dmac), ip4(0), icmp4(8), ts.Payload(10)), true},
		{"ICMP destination unreachable", ts.Build(t, ts.Eth(cmac, dmac), ip4(0), icmp4(3), ts.Payload(28)), false},
		{"ICMP time exceeded", ts.Build(t, ts.Eth(cmac, dmac), ip4(0), icmp4(11), ts.Payload(28)), false},
		{"ICMP of an unknown type", ts.Build(t, ts.Eth(cmac, dmac), ip4(0), icmp4(99), ts.Payload(28)), false},
		{"later fragment", ts.Build(t, ts.Eth(cmac, dmac), ip4(185), ts.Payload(40)), false},
		{"IPv6 TCP", ts.Build(t, ts.Eth(cmac, dmac), newIP6(), ts.TCP(40000, 80, ts.SYN), ts.Payload(10)), true},
		{"ICMPv6 echo request", icmp6(128), true},
		{"ICMPv6 destination unreachable", icmp6(1), false},
		{"ICMPv6 packet too big", icmp6(2), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p header.Packet
			r := header.Parse(c.frame, &p)
			switch {
			case r == header.Fragment:
				p.L4 = p.L3 + header.IPv4MinLen
			case c.frame[12] == 0x86 && c.frame[14+6] == header.ProtocolICMPv6:
				// Parse reads an ICMPv6 error's quote; describe the
				// outer packet as the dataplane has it.
				p = header.Packet{L3: 14, L4: 14 + 40, End: len(c.frame), IPv6: true, Proto: header.ProtocolICMPv6,
					SrcMapped: client6.As16(), DstMapped: vip6.As16(), TotalLen: uint16(len(c.frame) - 14)}
			}
			out := make([]byte, 1600)
			var n int
			if p.IPv6 {
				n = TimeExceeded6(out, c.frame, &p, [6]byte(dmac), [6]byte(cmac), vip6.As16())
			} else {
				n = TimeExceeded(out, c.frame, &p, 1500, [6]byte(dmac), [6]byte(cmac), vip.As4())
			}
			if (n != 0) != c.answer {
				t.Fatalf("built %d bytes (parse %v), want an answer: %v", n, r, c.answer)
			}
			if n == 0 {
				return
			}
			pkt := gopacket.NewPacket(out[:n], layers.LayerTypeEthernet, gopacket.Default)
			if e := pkt.ErrorLayer(); e != nil {
				t.Fatalf("does not decode: %v", e.Error())
			}
			quote := c.frame[14:]
			if p.IPv6 {
				ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				m := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				if !ip.SrcIP.Equal(vip6.AsSlice()) || !ip.DstIP.Equal(client6.AsSlice()) || m.TypeCode != layers.CreateICMPv6TypeCode(3, 0) {
					t.Fatalf("%v -> %v %v", ip.SrcIP, ip.DstIP, m.TypeCode)
				}
				if got := m.LayerPayload(); string(got[4:]) != string(quote) || string(got[:4]) != "\x00\x00\x00\x00" {
					t.Fatalf("body %x, want 4 zero bytes and %x", got, quote)
				}
				return
			}
			ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			m := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if !ip.SrcIP.Equal(vip.AsSlice()) || !ip.DstIP.Equal(client.AsSlice()) || ip.TTL != 64 || m.TypeCode != layers.CreateICMPv4TypeCode(11, 0) {
				t.Fatalf("%v -> %v TTL %d %v", ip.SrcIP, ip.DstIP, ip.TTL, m.TypeCode)
			}
			// icmp_send quotes the datagram (not the frame's Ethernet
			// padding) up to a 576-byte message.
			quote = c.frame[p.L3:p.End]
			want := quote[:min(len(quote), 576-28)]
			if m.Id != 0 || m.Seq != 0 || string(m.Payload) != string(want) || int(ip.Length) != 28+len(want) {
				t.Fatalf("rest %d/%d, IP length %d, quote %x, want 0/0 and %x", m.Id, m.Seq, ip.Length, m.Payload, want)
			}
		})
	}
}

package sim

import (
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// checkFrame decodes the frame for ev with gopacket and checks addresses,
// ports, flags and both checksums against gopacket's own computation.
func checkFrame(t *testing.T, ev *Event) {
	t.Helper()
	buf := make([]byte, chunkSize)
	n := writeFrame(buf, ev)
	frame := buf[headroom : headroom+n]
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	// Recompute with gopacket and compare the bytes.
	var ip2 gopacket.NetworkLayer
	if ev.Client.Is6() {
		ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ip == nil {
			t.Fatalf("no IPv6 layer in %v", pkt)
		}
		if !ip.SrcIP.Equal(ev.Client.AsSlice()) || !ip.DstIP.Equal(ev.VIP.AsSlice()) || uint8(ip.NextHeader) != ev.Proto || ip.HopLimit != 64 {
			t.Fatalf("ip %v", ip)
		}
		c := *ip
		ip2 = &c
	} else {
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil {
			t.Fatalf("no IPv4 layer in %v", pkt)
		}
		if !ip.SrcIP.Equal(ev.Client.AsSlice()) || !ip.DstIP.Equal(ev.VIP.AsSlice()) || uint8(ip.Protocol) != ev.Proto {
			t.Fatalf("ip %v", ip)
		}
		c := *ip
		ip2 = &c
	}
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	sb := gopacket.NewSerializeBuffer()
	var l4 gopacket.SerializableLayer
	if ev.Proto == 6 {
		tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if uint16(tcp.SrcPort) != ev.CPort || uint16(tcp.DstPort) != ev.VPort || !tcp.SYN || !tcp.ACK || tcp.FIN {
			t.Fatalf("tcp %v", tcp)
		}
		tcp2 := *tcp
		tcp2.SetNetworkLayerForChecksum(ip2)
		l4 = &tcp2
	} else {
		udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if uint16(udp.SrcPort) != ev.CPort || uint16(udp.DstPort) != ev.VPort {
			t.Fatalf("udp %v", udp)
		}
		udp2 := *udp
		udp2.SetNetworkLayerForChecksum(ip2)
		l4 = &udp2
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if err := gopacket.SerializeLayers(sb, opts, eth, ip2.(gopacket.SerializableLayer), l4); err != nil {
		t.Fatal(err)
	}
	// gopacket pads to Ethernet's 60-byte minimum; the director reads
	// lengths from the IP header, so the simulator does not pad.
	want := sb.Bytes()
	if len(want) > n {
		want = want[:n]
	}
	if got := frame; string(got) != string(want) {
		t.Fatalf("frame\n%x\ngopacket recomputed\n%x", got, want)
	}
}

package platformtest

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/dataplane/xsk"
)

func frame(t *testing.T, dstMAC [6]byte, et layers.EthernetType, proto layers.IPProtocol, dst string, dport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, DstMAC: dstMAC[:], EthernetType: et}
	ls := []gopacket.SerializableLayer{eth}
	if et == layers.EthernetTypeIPv4 {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.IPv4(198, 18, 0, 9), DstIP: net.ParseIP(dst)}
		ls = append(ls, ip)
		switch proto {
		case layers.IPProtocolUDP:
			udp := &layers.UDP{SrcPort: 1000, DstPort: layers.UDPPort(dport)}
			udp.SetNetworkLayerForChecksum(ip)
			ls = append(ls, udp)
		case layers.IPProtocolICMPv4:
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)})
		}
	}
	ls = append(ls, gopacket.Payload("x"))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSteeringDecidesAndCounts: the fake steering program redirects only
// IPv4 TCP/UDP to a service key (exact port or port 0) and counts every
// other frame under the real program's reason; frames it passes reach the
// host's stack.
func TestSteeringDecidesAndCounts(t *testing.T) {
	n := NewNetwork()
	n.Misuse = func(m string) { t.Error(m) }
	mac := [6]byte{2, 0, 0, 0, 0, 2}
	h := n.AddHost("dir")
	ifc := h.AddIface("eth0", mac, netip.MustParsePrefix("198.18.0.2/24"), "lan", 1)
	peer := n.AddHost("peer").AddIface("eth0", [6]byte{2, 0, 0, 0, 0, 9}, netip.MustParsePrefix("198.18.0.9/24"), "lan", 1)
	st, _ := h.LoadSteering(16, 1)
	if err := st.SetOwnerMACs(mac); err != nil {
		t.Fatal(err)
	}
	s, err := h.OpenSocket(ifc.Index, 0, xsk.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterSocket(0, s); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("198.19.0.1")
	st.SetServices([]xdpprog.ServiceKey{{Addr: vip, Proto: 17, Port: 53}, {Addr: netip.MustParseAddr("198.19.0.2"), Proto: 17}})
	if _, err := st.Attach(ifc.Index, xdpprog.ModeAuto); err != nil {
		t.Fatal(err)
	}
	peer.Send(frame(t, mac, layers.EthernetTypeIPv4, layers.IPProtocolUDP, "198.19.0.1", 53))   // redirected
	peer.Send(frame(t, mac, layers.EthernetTypeIPv4, layers.IPProtocolUDP, "198.19.0.2", 9999)) // port-0 key
	peer.Send(frame(t, mac, layers.EthernetTypeIPv4, layers.IPProtocolUDP, "198.19.0.1", 54))   // no service
	peer.Send(frame(t, mac, layers.EthernetTypeIPv4, layers.IPProtocolICMPv4, "198.19.0.1", 0)) // not L4
	peer.Send(frame(t, mac, layers.EthernetTypeARP, 0, "", 0))                                  // not IPv4
	peer.Send(frame(t, [6]byte{2, 0, 0, 0, 0, 0x77}, layers.EthernetTypeIPv4, layers.IPProtocolUDP, "198.19.0.1", 53))
	peer.Send(frame(t, broadcast, layers.EthernetTypeIPv4, layers.IPProtocolUDP, "198.19.0.1", 53)) // not an owner MAC
	got, _ := st.Stats()
	want := xdpprog.StatsCounters{Total: 6, Redirected: 2, PassNoService: 1, PassNotL4: 1, PassNotIPv4: 1, PassOtherMAC: 1}
	if got != want {
		t.Errorf("steering %+v, want %+v (a frame to another MAC never arrives)", got, want)
	}
	var ds [4]xsk.Desc
	if k := s.Receive(ds[:]); k != 2 {
		t.Errorf("socket received %d frames, want 2", k)
	}
	if k := len(ifc.Recv()); k != 4 {
		t.Errorf("the stack got %d frames, want the 4 passed", k)
	}
	if err := st.SetOwnerMACs(broadcast); err == nil {
		t.Error("SetOwnerMACs took the broadcast address")
	}
	h.FailSteering(errMapFull{})
	if err := st.SetServices(nil); err == nil {
		t.Error("SetServices succeeded while told to fail")
	}
}

type errMapFull struct{}

func (errMapFull) Error() string { return "map full" }

// TestRoute: own addresses are local, the longest prefix wins, and a
// missing route is an error naming the address.
func TestRoute(t *testing.T) {
	h := NewNetwork().AddHost("h")
	h.AddIface("eth0", [6]byte{2}, netip.MustParsePrefix("198.18.0.2/24"), "a", 1)
	h.AddIface("eth1", [6]byte{3}, netip.MustParsePrefix("198.18.1.2/24"), "b", 1)
	h.AddRoute(netip.MustParsePrefix("198.19.0.0/16"), "eth0", netip.MustParseAddr("198.18.0.1"))
	h.AddRoute(netip.MustParsePrefix("198.19.5.0/24"), "eth1", netip.MustParseAddr("198.18.1.1"))
	for dst, want := range map[string]string{
		"198.18.0.2": "lo 198.18.0.2 local",
		"198.18.1.7": "eth1 198.18.1.7 ",
		"198.19.9.9": "eth0 198.18.0.1 ",
		"198.19.5.5": "eth1 198.18.1.1 ",
	} {
		hop, err := h.Route(netip.MustParseAddr(dst))
		local := ""
		if hop.Local {
			local = "local"
		}
		if got := hop.Dev + " " + hop.NextHop.String() + " " + local; err != nil || got != want {
			t.Errorf("Route(%s) = %q, %v; want %q", dst, got, err, want)
		}
	}
	if _, err := h.Route(netip.MustParseAddr("198.20.0.1")); err == nil || !strings.Contains(err.Error(), "no route to 198.20.0.1") {
		t.Errorf("Route without a route: %v", err)
	}
}

// TestSteeringIPv6: the fake steering program redirects IPv6 TCP/UDP to an
// IPv6 service key, and from an IPv6 VS/NAT source key unless to a
// director address, and passes neighbour discovery to the host's stack,
// as the real program does.
func TestSteeringIPv6(t *testing.T) {
	n := NewNetwork()
	n.Misuse = func(m string) { t.Error(m) }
	mac := [6]byte{2, 0, 0, 0, 0, 2}
	h := n.AddHost("dir")
	ifc := h.AddIface("eth0", mac, netip.MustParsePrefix("2001:2::2/64"), "lan", 1)
	peer := n.AddHost("peer").AddIface("eth0", [6]byte{2, 0, 0, 0, 0, 9}, netip.MustParsePrefix("2001:2::9/64"), "lan", 1)
	st, _ := h.LoadSteering(16, 1)
	if err := st.SetOwnerMACs(mac); err != nil {
		t.Fatal(err)
	}
	s, err := h.OpenSocket(ifc.Index, 0, xsk.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterSocket(0, s); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("2001:2:0:1::1")
	if err := st.SetServices([]xdpprog.ServiceKey{{Addr: vip, Proto: 6, Port: 80}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetServices([]xdpprog.ServiceKey{{Addr: vip, Proto: 6, Port: 80, Source: true}, {Addr: vip, Local: true}}); err != nil {
		t.Fatalf("IPv6 VS/NAT source and local keys: %v", err)
	}
	if err := st.SetServices([]xdpprog.ServiceKey{{Addr: vip, Proto: 6, Port: 80}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Attach(ifc.Index, xdpprog.ModeAuto); err != nil {
		t.Fatal(err)
	}
	frame6 := func(next layers.IPProtocol, port uint16) []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP("2001:2::9"), DstIP: vip.AsSlice()}
		ls := []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, DstMAC: mac[:], EthernetType: layers.EthernetTypeIPv6}, ip}
		if next == layers.IPProtocolIPv6Destination {
			opts := &layers.IPv6Destination{}
			opts.NextHeader = layers.IPProtocolTCP
			opts.Options = []*layers.IPv6DestinationOption{{OptionType: 1, OptionData: make([]byte, 4)}}
			ls = append(ls, opts)
			next = layers.IPProtocolTCP
		}
		if next == layers.IPProtocolTCP {
			tcp := &layers.TCP{SrcPort: 1000, DstPort: layers.TCPPort(port), SYN: true}
			tcp.SetNetworkLayerForChecksum(ip)
			ls = append(ls, tcp)
		} else {
			icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
			icmp.SetNetworkLayerForChecksum(ip)
			ls = append(ls, icmp, &layers.ICMPv6NeighborSolicitation{TargetAddress: vip.AsSlice()})
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	peer.Send(frame6(layers.IPProtocolTCP, 80))             // redirected
	peer.Send(frame6(layers.IPProtocolIPv6Destination, 80)) // redirected past a destination options header
	peer.Send(frame6(layers.IPProtocolTCP, 81))             // no service
	peer.Send(frame6(layers.IPProtocolICMPv6, 0))           // neighbour solicitation: the kernel's
	got, _ := st.Stats()
	want := xdpprog.StatsCounters{Total: 4, Redirected: 2, PassNoService: 1, PassNotL4: 1}
	if got != want {
		t.Errorf("steering %+v, want %+v", got, want)
	}
	var ds [4]xsk.Desc
	if k := s.Receive(ds[:]); k != 2 {
		t.Errorf("socket received %d frames, want 2", k)
	}
	if k := len(ifc.Recv()); k != 2 {
		t.Errorf("the stack got %d frames, want the 2 passed", k)
	}

	// The peer as a VS/NAT real server on port 1000: its frame to no
	// service is a reply, redirected, unless it is to a director address.
	peer6 := netip.MustParseAddr("2001:2::9")
	if err := st.SetServices([]xdpprog.ServiceKey{{Addr: vip, Proto: 6, Port: 80}, {Addr: peer6, Proto: 6, Port: 1000, Source: true}}); err != nil {
		t.Fatal(err)
	}
	peer.Send(frame6(layers.IPProtocolTCP, 81)) // a reply
	if err := st.SetServices([]xdpprog.ServiceKey{{Addr: vip, Proto: 6, Port: 80}, {Addr: peer6, Proto: 6, Port: 1000, Source: true}, {Addr: vip, Local: true}}); err != nil {
		t.Fatal(err)
	}
	peer.Send(frame6(layers.IPProtocolTCP, 81)) // to the director: the kernel's
	got2, _ := st.Stats()
	if d := (xdpprog.StatsCounters{Total: got2.Total - got.Total, Redirected: got2.Redirected - got.Redirected, PassNoService: got2.PassNoService - got.PassNoService}); d != (xdpprog.StatsCounters{Total: 2, Redirected: 1, PassNoService: 1}) {
		t.Errorf("NAT reply steering moved %+v, want one redirected and one no service", d)
	}
}

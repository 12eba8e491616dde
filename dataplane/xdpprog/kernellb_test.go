package xdpprog

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

var (
	macEgress = [6]byte{0x02, 0, 0, 0, 0, 0x03}
	macReal1  = [6]byte{0x02, 0, 0, 0, 0xee, 1}
	macReal2  = [6]byte{0x02, 0, 0, 0, 0xee, 2}
)

func loadTestKernelLB(t *testing.T, maxFlows int) *KernelLB {
	t.Helper()
	testsupport.RequirePrivileged(t)
	// The device map needs a device that exists: loopback stands in for
	// the egress interface; BPF_PROG_TEST_RUN does not transmit.
	k, err := LoadKernelLB(KernelLBOptions{EgressIfindex: 1, EgressMAC: macEgress, TunnelSource: directorIP, MaxFlows: maxFlows})
	if err != nil {
		t.Fatalf("LoadKernelLB: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// TestKernelLBForwards checks each path of the program on frames built
// and decoded with gopacket: DR rewrites the MACs only, TUN prepends a
// correct outer IPv4 header and keeps the packet byte for byte, anything
// else passes untouched.
func TestKernelLBForwards(t *testing.T) {
	k := loadTestKernelLB(t, 1024)
	dr := ServiceKey{Addr: vip, Proto: ipProtoTCP, Port: 80}
	tun := ServiceKey{Addr: vip, Proto: ipProtoUDP, Port: 9000}
	if err := k.SetService(dr, []KernelLBReal{{MAC: macReal1}}); err != nil {
		t.Fatal(err)
	}
	if err := k.SetService(tun, []KernelLBReal{{MAC: macReal2, Addr: realIP, Tunnel: true}}); err != nil {
		t.Fatal(err)
	}

	in := buildFrame(t, frameSpec{dstPort: 80})
	v, out := runXDP(t, k.program(), in)
	checkVerdict(t, v, xdpRedirect)
	want := append(append(append([]byte(nil), macReal1[:]...), macEgress[:]...), in[12:]...)
	checkBytes(t, out, want)

	in = buildFrame(t, frameSpec{proto: layers.IPProtocolUDP, dstPort: 9000, payload: []byte("query")})
	in[ethLen+1] = 0x28          // TOS, copied to the outer header
	in[ethLen+ipOffFrag] |= 0x40 // DF, likewise
	fixIPv4Sum(in[ethLen : ethLen+20])
	v, out = runXDP(t, k.program(), in)
	checkVerdict(t, v, xdpRedirect)
	if len(out) != len(in)+20 {
		t.Fatalf("tunnel frame is %d bytes, want %d", len(out), len(in)+20)
	}
	p := decodeFrame(t, out)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.DstMAC, macReal2[:]) || !bytes.Equal(eth.SrcMAC, macEgress[:]) || eth.EthernetType != layers.EthernetTypeIPv4 {
		t.Errorf("tunnel ethernet %s -> %s type %s", eth.SrcMAC, eth.DstMAC, eth.EthernetType)
	}
	outer := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !outer.SrcIP.Equal(directorIP.AsSlice()) || !outer.DstIP.Equal(realIP.AsSlice()) || outer.Protocol != layers.IPProtocolIPv4 ||
		outer.TTL != 64 || outer.IHL != 5 || int(outer.Length) != int(in[ethLen+2])<<8|int(in[ethLen+3])+20 || outer.TOS != 0x28 || outer.Flags != layers.IPv4DontFragment {
		t.Errorf("outer header %+v", outer)
	}
	if s := ipv4HeaderSum(out[ethLen : ethLen+20]); s != 0xffff {
		t.Errorf("outer header checksum wrong: sum %#x", s)
	}
	if !bytes.Equal(out[ethLen+20:], in[ethLen:]) {
		t.Errorf("inner packet changed:\n got %x\nwant %x", out[ethLen+20:], in[ethLen:])
	}

	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"other port", buildFrame(t, frameSpec{dstPort: 81})},
		{"other address", buildFrame(t, frameSpec{dst: otherAddr, dstPort: 80})},
		{"udp to the tcp port", buildFrame(t, frameSpec{proto: layers.IPProtocolUDP, dstPort: 80})},
		{"fragment", buildFrame(t, frameSpec{dstPort: 80, moreFrags: true})},
		{"arp", arpFrame(t)},
		{"ipv6", ipv6Frame(t)},
		{"vlan", buildFrame(t, frameSpec{vlan: 5, dstPort: 80})},
		{"runt", buildFrame(t, frameSpec{dstPort: 80})[:ethLen+ipv4MinLen+2]},
	} {
		v, out := runXDP(t, k.program(), tc.in)
		if v != xdpPass || !bytes.Equal(out, tc.in) {
			t.Errorf("%s: verdict %s, frame changed %v: want XDP_PASS untouched", tc.name, verdictName(v), !bytes.Equal(out, tc.in))
		}
	}
	st, err := k.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st != (KernelLBStats{Total: 10, DR: 1, Tunnel: 1, NewFlows: 2, PassNotService: 8}) {
		t.Errorf("stats %+v", st)
	}
}

// fixIPv4Sum recomputes an IPv4 header's checksum in place.
func fixIPv4Sum(h []byte) {
	h[10], h[11] = 0, 0
	s := ^ipv4HeaderSum(h)
	h[10], h[11] = byte(s>>8), byte(s)
}

// TestKernelLBFlowTable: a flow keeps its real server, new flows spread
// over the service's, and the LRU table holds at most its size.
func TestKernelLBFlowTable(t *testing.T) {
	k := loadTestKernelLB(t, 64)
	key := ServiceKey{Addr: vip, Proto: ipProtoTCP, Port: 80}
	if err := k.SetService(key, []KernelLBReal{{MAC: macReal1}, {MAC: macReal2}}); err != nil {
		t.Fatal(err)
	}
	frame := func(sport uint16) []byte {
		f := buildFrame(t, frameSpec{dstPort: 80})
		f[ethLen+20], f[ethLen+21] = byte(sport>>8), byte(sport)
		return f
	}
	to := map[[6]byte]int{}
	for sport := uint16(1000); sport < 1200; sport++ {
		_, out := runXDP(t, k.program(), frame(sport))
		first := [6]byte(out[:6])
		to[first]++
		for range 3 {
			if _, again := runXDP(t, k.program(), frame(sport)); [6]byte(again[:6]) != first {
				t.Fatalf("flow %d went to %x, then to %x", sport, first, again[:6])
			}
		}
	}
	if to[macReal1] < 50 || to[macReal2] < 50 || len(to) != 2 {
		t.Errorf("200 flows went to %v: want both real servers, neither starved", to)
	}
	n, err := k.Flows()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || n > 64 {
		t.Errorf("flow table holds %d entries after 200 flows, want 1..64", n)
	}
	if st, _ := k.Stats(); st.NewFlows < 200 || st.DR != 800 {
		t.Errorf("stats %+v: want 800 DR frames and at least 200 new flows (evicted ones come back as new)", st)
	}
}

func TestKernelLBRefuses(t *testing.T) {
	testsupport.RequirePrivileged(t)
	for _, tc := range []struct {
		o    KernelLBOptions
		want string
	}{
		{KernelLBOptions{EgressIfindex: 0, TunnelSource: directorIP, MaxFlows: 1}, "egress ifindex 0"},
		{KernelLBOptions{EgressIfindex: 1, MaxFlows: 1}, "tunnel source invalid IP"},
		{KernelLBOptions{EgressIfindex: 1, TunnelSource: directorIP, MaxFlows: 0}, "max flows 0"},
	} {
		if k, err := LoadKernelLB(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadKernelLB(%+v) = %v, want an error naming %q", tc.o, err, tc.want)
			if k != nil {
				k.Close()
			}
		}
	}
	k := loadTestKernelLB(t, 16)
	key := ServiceKey{Addr: vip, Proto: ipProtoTCP, Port: 80}
	for _, tc := range []struct {
		key   ServiceKey
		reals []KernelLBReal
		want  string
	}{
		{key, nil, "at least one real server"},
		{ServiceKey{Addr: vip, Proto: 1, Port: 80}, []KernelLBReal{{}}, "tcp or udp"},
		{key, []KernelLBReal{{Tunnel: true}}, "real server 0: a tunnel needs an IPv4 address"},
		{key, make([]KernelLBReal, MaxKernelLBReals+1), "slots left"},
	} {
		if err := k.SetService(tc.key, tc.reals); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetService(%v, %d reals) = %v, want %q", tc.key, len(tc.reals), err, tc.want)
		}
	}
	// Nothing was refused half-way into force: the frame passes.
	if v, _ := runXDP(t, k.program(), buildFrame(t, frameSpec{dstPort: 80})); v != xdpPass {
		t.Errorf("after refused services: verdict %s, want XDP_PASS", verdictName(v))
	}
}

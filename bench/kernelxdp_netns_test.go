package bench

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/testsupport"
)

// packetSocket is an AF_PACKET socket on one interface, for sending and
// capturing whole frames in a test.
func packetSocket(t *testing.T, l link) int {
	t.Helper()
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], unix.ETH_P_ALL)
	proto := int(binary.NativeEndian.Uint16(be[:])) // htons(ETH_P_ALL)
	var fd int
	err := l.ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
		if err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: l.index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", l.name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestKernelXDPForwardsFrames runs the kernel XDP load balancer between
// namespaces: frames the generator sends to the VIP arrive at the real
// server rewritten for DR, or wrapped in IPIP for TUN, checked with
// gopacket; a frame for another address goes to the director's kernel.
func TestKernelXDPForwardsFrames(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	for _, mode := range []string{"dr", "tun"} {
		t.Run(mode, func(t *testing.T) {
			top, err := newTopology("kxdp-"+mode, 1, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := top.close(); err != nil {
					t.Error(err)
				}
			})
			// A veth takes redirected frames only while its peer runs
			// XDP: the decapsulator for an address nothing is sent to
			// passes every frame up untouched.
			other, err := xdpprog.LoadDecap46([]netip.Addr{netip.MustParseAddr("198.19.0.99")})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if err := top.sink.Do(func() error {
				a, err := other.Attach(top.sinkIf.index, xdpprog.ModeAuto)
				if err == nil {
					t.Cleanup(func() { a.Close() })
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			lb, stop, err := startKernelXDP(top, mode, 16)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			send, capture := packetSocket(t, top.genIf), packetSocket(t, top.sinkIf)
			payload := []byte("afvs kernel xdp")
			for i := range 5 {
				f := testsupport.Build(t, testsupport.Eth(top.genIf.mac[:], top.dirIn.mac[:]), testsupport.IPv4(GenAddr, VIP),
					testsupport.UDP(uint16(4000+i), VIPPort), gopacket.Payload(payload))
				if err := unix.Send(send, f, 0); err != nil {
					t.Fatal(err)
				}
				got := captureUDP(t, capture, uint16(4000+i))
				p := gopacket.NewPacket(got, layers.LayerTypeEthernet, gopacket.Default)
				eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				if !bytes.Equal(eth.DstMAC, top.sinkIf.mac[:]) || !bytes.Equal(eth.SrcMAC, top.dirOut.mac[:]) {
					t.Errorf("frame %d: ethernet %s -> %s, want %s -> %s", i, eth.SrcMAC, eth.DstMAC, net.HardwareAddr(top.dirOut.mac[:]), net.HardwareAddr(top.sinkIf.mac[:]))
				}
				ips := []*layers.IPv4{}
				for _, l := range p.Layers() {
					if ip, ok := l.(*layers.IPv4); ok {
						ips = append(ips, ip)
					}
				}
				wantIPs := 1
				if mode == "tun" {
					wantIPs = 2
					o := ips[0]
					if !o.SrcIP.Equal(DirOutAddr.AsSlice()) || !o.DstIP.Equal(SinkAddr.AsSlice()) || o.Protocol != layers.IPProtocolIPv4 {
						t.Errorf("frame %d: outer header %s -> %s proto %s", i, o.SrcIP, o.DstIP, o.Protocol)
					}
				}
				if len(ips) != wantIPs {
					t.Fatalf("frame %d: %d IPv4 headers, want %d", i, len(ips), wantIPs)
				}
				in := ips[len(ips)-1]
				udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if !in.SrcIP.Equal(GenAddr.AsSlice()) || !in.DstIP.Equal(VIP.AsSlice()) || udp == nil || !bytes.Equal(udp.Payload, payload) {
					t.Errorf("frame %d: inner packet %s -> %s, udp %v", i, in.SrcIP, in.DstIP, udp)
				}
			}
			st, err := lb.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if fwd := st.DR + st.Tunnel; fwd != 5 || st.NewFlows != 5 || (mode == "tun") != (st.Tunnel == 5) {
				t.Errorf("stats %+v: want 5 frames forwarded by %s, 5 new flows", st, mode)
			}
		})
	}
}

// captureUDP reads frames from the packet socket fd until one carries a
// UDP datagram from source port sport, and returns it.
func captureUDP(t *testing.T, fd int, sport uint16) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		n, err := unix.Read(fd, buf)
		if err != nil {
			continue
		}
		p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && uint16(udp.SrcPort) == sport {
			return append([]byte(nil), buf[:n]...)
		}
	}
	t.Fatalf("no frame from source port %d reached the real server in 3s", sport)
	return nil
}

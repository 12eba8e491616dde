package xdpprog

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

var vipAllPorts = netip.MustParseAddr("198.18.0.12")

var testServices = []ServiceKey{
	{Addr: vip, Proto: ipProtoTCP, Port: 80},
	{Addr: vip, Proto: ipProtoUDP, Port: 53},
	{Addr: vipAllPorts, Proto: ipProtoTCP, Port: 0},
	// VS/NAT real servers, by source: one TCP port, UDP on every port;
	// and the director's own address, whose frames stay the kernel's.
	{Addr: realIP, Proto: ipProtoTCP, Port: 8080, Source: true},
	{Addr: realIP, Proto: ipProtoUDP, Port: 0, Source: true},
	{Addr: directorIP, Local: true},
	// IPv6 services, VS/NAT real servers and director address
	// (steering6_test.go).
	{Addr: vip6, Proto: ipProtoTCP, Port: 80},
	{Addr: vip6AllPorts, Proto: ipProtoUDP, Port: 0},
	{Addr: realIP6, Proto: ipProtoTCP, Port: 8080, Source: true},
	{Addr: realIP6, Proto: ipProtoUDP, Port: 0, Source: true},
	{Addr: directorIP6, Local: true},
}

func loadTestSteering(t *testing.T) *Steering {
	t.Helper()
	s, err := LoadSteering(16, 4)
	if err != nil {
		t.Fatalf("LoadSteering: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetServices(testServices); err != nil {
		t.Fatalf("SetServices: %v", err)
	}
	if err := s.SetOwnerMACs([6]byte(macDirector)); err != nil {
		t.Fatalf("SetOwnerMACs: %v", err)
	}
	return s
}

// xskSocket opens an unbound AF_XDP socket. The XSKMAP accepts it, and
// bpf_redirect_map only looks the entry up, so under BPF_PROG_TEST_RUN a
// registered socket turns a match into XDP_REDIRECT.
func xskSocket(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatalf("open AF_XDP socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

type steeringCase struct {
	name    string
	frame   []byte
	matched bool          // expect a redirect decision
	reason  StatsCounters // for unmatched frames: which Pass* counter moves
	frag    bool          // matched through the any-service key
	icmp    bool          // matched as an ICMP error quoting a service's packet
}

func steeringCases(t testing.TB) []steeringCase {
	tcp, udp := layers.IPProtocolTCP, layers.IPProtocolUDP
	f := func(s frameSpec) []byte { return buildFrame(t, s) }
	noService := StatsCounters{PassNoService: 1}

	badIHL := f(frameSpec{dstPort: 80})
	badIHL[ethLen] = 0x44
	badVersion := f(frameSpec{dstPort: 80})
	badVersion[ethLen] = 0x65
	withOptions := withIPOptions(f(frameSpec{dstPort: 80}))

	fragWithOptions := withIPOptions(f(frameSpec{fragOff: 7}))

	return append([]steeringCase{
		{name: "vip tcp port match", frame: f(frameSpec{dstPort: 80}), matched: true},
		{name: "vip udp port match", frame: f(frameSpec{proto: udp, dstPort: 53}), matched: true},
		{name: "port 0 service any tcp port", frame: f(frameSpec{dst: vipAllPorts, dstPort: 2222}), matched: true},
		{name: "port 0 service port 80", frame: f(frameSpec{dst: vipAllPorts, dstPort: 80}), matched: true},
		{name: "vlan tagged match", frame: f(frameSpec{vlan: 7, dstPort: 80}), matched: true},
		{name: "ip options match", frame: withOptions, matched: true},
		{name: "first fragment has ports", frame: f(frameSpec{dstPort: 80, moreFrags: true}), matched: true},
		{name: "non-first fragment of vip", frame: f(frameSpec{fragOff: 185}), matched: true, frag: true},
		{name: "non-first udp fragment of vip", frame: f(frameSpec{proto: udp, fragOff: 1}), matched: true, frag: true},
		{name: "non-first fragment cut inside ip options", frame: fragWithOptions[:ethLen+ipv4MinLen+2], reason: StatsCounters{PassTruncated: 1}},
		{name: "non-first fragment with ip options", frame: fragWithOptions, matched: true, frag: true},
		{name: "non-first fragment of port 0 vip", frame: f(frameSpec{dst: vipAllPorts, fragOff: 3}), matched: true, frag: true},
		{name: "wrong port", frame: f(frameSpec{dstPort: 81}), reason: noService},
		{name: "ssh to vip", frame: f(frameSpec{dstPort: 22}), reason: noService},
		{name: "wrong protocol for port", frame: f(frameSpec{proto: udp, dstPort: 80}), reason: noService},
		{name: "port 0 service is tcp only", frame: f(frameSpec{dst: vipAllPorts, proto: udp, dstPort: 80}), reason: noService},
		{name: "wrong address", frame: f(frameSpec{dst: otherAddr, dstPort: 80}), reason: noService},
		{name: "vlan tagged wrong address", frame: f(frameSpec{vlan: 7, dst: otherAddr, dstPort: 80}), reason: noService},
		{name: "non-first fragment other address", frame: f(frameSpec{dst: otherAddr, fragOff: 185}), reason: noService},
		{name: "non-first icmp fragment of vip", frame: f(frameSpec{proto: layers.IPProtocolICMPv4, fragOff: 2}), reason: StatsCounters{PassNotL4: 1}},
		{name: "arp", frame: arpFrame(t), reason: StatsCounters{PassNotIPv4: 1}},
		{name: "ipv6 to no service", frame: ipv6Frame(t), reason: noService},
		{name: "ipv6 vip tcp port match", frame: buildFrame(t, frameSpec{ipv6: true, dst: vip6, proto: tcp, dstPort: 80}), matched: true},
		{name: "icmp to vip", frame: f(frameSpec{proto: layers.IPProtocolICMPv4}), reason: StatsCounters{PassNotL4: 1}},
		{name: "ihl 4", frame: badIHL, reason: StatsCounters{PassBadHeader: 1}},
		{name: "version 6 in ipv4 ethertype", frame: badVersion, reason: StatsCounters{PassBadHeader: 1}},
		{name: "udp header only", frame: f(frameSpec{proto: udp, dstPort: 53, payload: []byte{}}), matched: true},
		{name: "tcp header only", frame: f(frameSpec{proto: tcp, dstPort: 80, payload: []byte{}}), matched: true},
		{name: "nat reply", frame: f(frameSpec{src: realIP, srcPort: 8080, dst: clientAddr, dstPort: 40000}), matched: true},
		{name: "nat reply from another port", frame: f(frameSpec{src: realIP, srcPort: 8081, dst: clientAddr, dstPort: 40000}), reason: noService},
		{name: "nat reply udp any port", frame: f(frameSpec{proto: udp, src: realIP, srcPort: 5353, dst: clientAddr, dstPort: 40000}), matched: true},
		{name: "nat real server answers the director", frame: f(frameSpec{src: realIP, srcPort: 8080, dst: directorIP, dstPort: 40000}), reason: noService},
		{name: "icmp from a nat real server", frame: f(frameSpec{proto: layers.IPProtocolICMPv4, src: realIP, dst: clientAddr}), matched: true},
		{name: "icmp from a nat real server to the director", frame: f(frameSpec{proto: layers.IPProtocolICMPv4, src: realIP, dst: directorIP}), reason: noService},
		{name: "nat reply cut in the tcp header", frame: f(frameSpec{src: realIP, srcPort: 8080, dst: clientAddr, dstPort: 40000})[:ethLen+ipv4MinLen+10], reason: StatsCounters{PassTruncated: 1}},
	}, append(append(icmpSteeringCases(t), steering6Cases(t)...), icmp6SteeringCases(t)...)...)
}

func TestSteeringVerdicts(t *testing.T) {
	testsupport.RequirePrivileged(t)
	for _, socket := range []bool{false, true} {
		name := "socket=none"
		if socket {
			name = "socket=registered"
		}
		t.Run(name, func(t *testing.T) {
			s := loadTestSteering(t)
			if socket {
				if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
					t.Fatalf("RegisterSocket: %v", err)
				}
			}
			for _, tc := range steeringCases(t) {
				t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
					want := tc.reason
					wantVerdict := uint32(xdpPass)
					if tc.matched {
						want = StatsCounters{PassNoSocket: 1}
						if socket {
							want = StatsCounters{Redirected: 1}
							wantVerdict = xdpRedirect
						}
						if tc.frag {
							want.Fragments = 1
						}
						if tc.icmp {
							want.ICMPErrors = 1
						}
					}
					want.Total = 1
					before := steeringStats(t, s)
					verdict, out := runXDP(t, s.program(), tc.frame)
					checkVerdict(t, verdict, wantVerdict)
					checkBytes(t, out, tc.frame)
					if got := steeringStats(t, s).minus(before); got != want {
						t.Errorf("counter delta %+v, want %+v", got, want)
					}
				})
			}
		})
	}
}

// TestSteeringTruncated cuts matching frames at every length from the
// Ethernet header up to one byte short of the transport header: none may
// be redirected, all must be counted as truncated, and the full-header
// length must match again.
func TestSteeringTruncated(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		spec      frameSpec
		headerEnd int
		frag      bool
	}{
		{"tcp", frameSpec{dstPort: 80}, ethLen + ipv4MinLen + tcpMinLen, false},
		{"udp", frameSpec{proto: layers.IPProtocolUDP, dstPort: 53}, ethLen + ipv4MinLen + udpLen, false},
		{"vlan_tcp", frameSpec{vlan: 100, dstPort: 80}, ethLen + vlanLen + ipv4MinLen + tcpMinLen, false},
		{"ipv6_tcp", frameSpec{ipv6: true, dst: vip6, dstPort: 80}, ethLen + 40 + tcpMinLen, false},
		{"ipv6_vlan_udp", frameSpec{ipv6: true, vlan: 9, dst: vip6AllPorts, proto: layers.IPProtocolUDP, dstPort: 9}, ethLen + vlanLen + 40 + udpLen, false},
		{"fragment", frameSpec{fragOff: 100, payload: []byte{}}, ethLen + ipv4MinLen, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := buildFrame(t, tc.spec)
			for n := ethLen; n <= tc.headerEnd; n++ {
				in := full[:n:n]
				before := steeringStats(t, s)
				verdict, out := runXDP(t, s.program(), in)
				got := steeringStats(t, s).minus(before)
				want, wantVerdict := StatsCounters{Total: 1, PassTruncated: 1}, uint32(xdpPass)
				if n == tc.headerEnd {
					want, wantVerdict = StatsCounters{Total: 1, Redirected: 1}, xdpRedirect
					if tc.frag {
						want.Fragments = 1
					}
				}
				if verdict != wantVerdict || got != want {
					t.Errorf("length %d: verdict %s, counters %+v; want %s, %+v", n, verdictName(verdict), got, verdictName(wantVerdict), want)
				}
				checkBytes(t, out, in)
			}
		})
	}
}

func TestSteeringSetServicesReplaces(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	tcp80 := buildFrame(t, frameSpec{dstPort: 80})
	other := buildFrame(t, frameSpec{dst: otherAddr, dstPort: 443})
	frag := buildFrame(t, frameSpec{fragOff: 10})

	decision := func(frame []byte) bool {
		before := steeringStats(t, s)
		runXDP(t, s.program(), frame)
		return steeringStats(t, s).minus(before).PassNoSocket == 1
	}
	if !decision(tcp80) || decision(other) || !decision(frag) {
		t.Fatal("initial service set not in effect")
	}
	if err := s.SetServices([]ServiceKey{{Addr: otherAddr, Proto: ipProtoTCP, Port: 443}}); err != nil {
		t.Fatal(err)
	}
	if decision(tcp80) {
		t.Error("removed service tcp 198.18.0.10:80 still matched")
	}
	if decision(frag) {
		t.Error("any-service key of removed vip still matched its fragments")
	}
	if !decision(other) {
		t.Error("added service tcp 198.18.0.11:443 not matched")
	}
	entries := 0
	var k serviceEntry
	var v uint32
	for it := s.services.Iterate(); it.Next(&k, &v); {
		entries++
	}
	if entries != 2 {
		t.Errorf("services map holds %d entries, want 2 (service and its any-service key)", entries)
	}
	if err := s.SetServices(nil); err != nil {
		t.Fatal(err)
	}
	if decision(other) {
		t.Error("empty service set still matches")
	}
}

func TestSteeringRejectsBadInput(t *testing.T) {
	testsupport.RequirePrivileged(t)
	for _, tc := range []struct {
		name          string
		max, queues   int
		wantSubstring string
	}{
		{"zero services", 0, 1, "max services 0"},
		{"zero queues", 1, 0, "max queues 0"},
	} {
		if _, err := LoadSteering(tc.max, tc.queues); err == nil || !strings.Contains(err.Error(), tc.wantSubstring) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.wantSubstring)
		}
	}

	s, err := LoadSteering(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name          string
		keys          []ServiceKey
		wantSubstring string
	}{
		{"ipv6 nat source icmp", []ServiceKey{{Addr: netip.MustParseAddr("2001:2::1"), Proto: 58, Source: true}}, "protocol 58 must be 6 (tcp) or 17 (udp)"},
		{"ipv6 nat sources too many", []ServiceKey{{Addr: netip.MustParseAddr("2001:2::1"), Proto: 6, Port: 80, Source: true},
			{Addr: netip.MustParseAddr("2001:2::1"), Proto: 17, Port: 80, Source: true}, {Addr: netip.MustParseAddr("2001:2::2"), Local: true}},
			"3 distinct services exceed the maximum of 2"},
		{"ipv6 icmp", []ServiceKey{{Addr: netip.MustParseAddr("2001:2::1"), Proto: 58}}, "protocol 58 must be 6 (tcp) or 17 (udp)"},
		{"invalid addr", []ServiceKey{{Proto: 6, Port: 80}}, "must be IPv4"},
		{"sctp", []ServiceKey{{Addr: vip, Proto: 132, Port: 80}}, "protocol 132 must be 6 (tcp) or 17 (udp)"},
		{"too many", []ServiceKey{{Addr: vip, Proto: 6, Port: 1}, {Addr: vip, Proto: 6, Port: 2}, {Addr: vip, Proto: 6, Port: 3}}, "3 distinct services exceed the maximum of 2"},
	} {
		if err := s.SetServices(tc.keys); err == nil || !strings.Contains(err.Error(), tc.wantSubstring) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.wantSubstring)
		}
	}
	// Duplicates count once and an IPv4-mapped IPv6 address is accepted.
	mapped := netip.AddrFrom16(vip.As16())
	if err := s.SetServices([]ServiceKey{{Addr: vip, Proto: 6, Port: 1}, {Addr: mapped, Proto: 6, Port: 1}, {Addr: vip, Proto: 6, Port: 2}}); err != nil {
		t.Errorf("duplicates within the limit rejected: %v", err)
	}
	for _, q := range []int{-1, 2} {
		if err := s.RegisterSocket(q, 0); err == nil || !strings.Contains(err.Error(), "must be in [0, 2)") {
			t.Errorf("RegisterSocket(%d): error %v, want queue range error", q, err)
		}
	}
	if err := s.RegisterSocket(0, -1); err == nil || !strings.Contains(err.Error(), "fd -1") {
		t.Errorf("RegisterSocket(0, -1): error %v, want fd error", err)
	}
	// A descriptor that is not an AF_XDP socket is refused by the kernel.
	if err := s.RegisterSocket(0, 0); err == nil {
		t.Error("RegisterSocket accepted stdin as an AF_XDP socket")
	}
	s.UnregisterSocket(1) // empty slot: no effect, no panic
	s.UnregisterSocket(7) // out of range: ignored
}

// TestSteeringUnregisterSocket shows the fallback: once the socket of a
// queue is removed, matched frames go back to the stack.
func TestSteeringUnregisterSocket(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	frame := buildFrame(t, frameSpec{dstPort: 80})
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	if v, _ := runXDP(t, s.program(), frame); v != xdpRedirect {
		t.Fatalf("with socket: verdict %s, want XDP_REDIRECT", verdictName(v))
	}
	s.UnregisterSocket(0)
	if v, _ := runXDP(t, s.program(), frame); v != xdpPass {
		t.Fatalf("after unregister: verdict %s, want XDP_PASS", verdictName(v))
	}
}

func steeringStats(t testing.TB, s *Steering) StatsCounters {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s StatsCounters) minus(o StatsCounters) StatsCounters {
	return StatsCounters{
		Total:         s.Total - o.Total,
		Redirected:    s.Redirected - o.Redirected,
		Fragments:     s.Fragments - o.Fragments,
		PassNotIPv4:   s.PassNotIPv4 - o.PassNotIPv4,
		PassTruncated: s.PassTruncated - o.PassTruncated,
		PassBadHeader: s.PassBadHeader - o.PassBadHeader,
		PassNotL4:     s.PassNotL4 - o.PassNotL4,
		PassNoService: s.PassNoService - o.PassNoService,
		PassNoSocket:  s.PassNoSocket - o.PassNoSocket,
		PassOtherMAC:  s.PassOtherMAC - o.PassOtherMAC,
		PassLocal:     s.PassLocal - o.PassLocal,
		ICMPErrors:    s.ICMPErrors - o.ICMPErrors,
		Blocked:       s.Blocked - o.Blocked,
	}
}

// withIPOptions inserts a 4-byte IPv4 option (NOP NOP NOP EOL) into an
// untagged frame so that what follows the IPv4 header starts at a variable
// offset; it fixes IHL, total length and the header checksum.
func withIPOptions(frame []byte) []byte {
	ip := ethLen
	out := append(append(append([]byte(nil), frame[:ip+ipv4MinLen]...), 1, 1, 1, 0), frame[ip+ipv4MinLen:]...)
	out[ip] = 0x46
	total := uint16(out[ip+2])<<8 | uint16(out[ip+3]) + 4
	out[ip+2], out[ip+3] = byte(total>>8), byte(total)
	out[ip+10], out[ip+11] = 0, 0
	sum := ^ipv4HeaderSum(out[ip : ip+24])
	out[ip+10], out[ip+11] = byte(sum>>8), byte(sum)
	return out
}

// TestSteeringConcurrentControl exercises the control-plane methods from
// several goroutines (run with -race), then checks that the map holds
// exactly the last set applied, with each service's index as its value.
func TestSteeringConcurrentControl(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	fd := xskSocket(t)
	setA := testServices
	setB := []ServiceKey{{Addr: otherAddr, Proto: ipProtoUDP, Port: 9}, {Addr: vip, Proto: ipProtoTCP, Port: 443}}
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 50 {
				set := setA
				if (g+i)%2 == 0 {
					set = setB
				}
				if err := s.SetServices(set); err != nil {
					done <- err
					return
				}
				if _, err := s.Stats(); err != nil {
					done <- err
					return
				}
				if err := s.RegisterSocket(g, fd); err != nil {
					done <- err
					return
				}
				s.UnregisterSocket(g)
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetServices(setB); err != nil {
		t.Fatal(err)
	}
	got := map[serviceEntry]uint32{}
	var k serviceEntry
	var v uint32
	it := s.services.Iterate()
	for it.Next(&k, &v) {
		got[k] = v
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[serviceEntry]uint32{
		{Addr: otherAddr.As4(), Port: [2]byte{0, 9}, Proto: ipProtoUDP}:           0,
		{Addr: otherAddr.As4(), Proto: ipProtoUDP, Flags: flagAnyService}:         0,
		{Addr: vip.As4(), Port: [2]byte{443 >> 8, 443 & 0xff}, Proto: ipProtoTCP}: 1,
		{Addr: vip.As4(), Proto: ipProtoTCP, Flags: flagAnyService}:               1,
	}
	if len(got) != len(want) {
		t.Fatalf("services map %v, want %v", got, want)
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			t.Errorf("services map entry %+v = %d (present %v), want %d", k, gv, ok, v)
		}
	}
}

// TestSteeringClosedSocketFallsBack shows that a worker that dies (its
// socket released) does not black-hole its queue: the kernel drops the
// XSKMAP entry and matched frames go to the stack again.
func TestSteeringClosedSocketFallsBack(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	frame := buildFrame(t, frameSpec{dstPort: 80})
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterSocket(0, fd); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if v, _ := runXDP(t, s.program(), frame); v != xdpRedirect {
		t.Fatalf("with socket: verdict %s, want XDP_REDIRECT", verdictName(v))
	}
	unix.Close(fd)
	// Socket release can be deferred past close(2) by RCU; allow a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, _ := runXDP(t, s.program(), frame)
		if v == xdpPass {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing the socket: verdict %s, want XDP_PASS", verdictName(v))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// vipMAC is an operator-configured owner MAC in the tests (a VRRP
// virtual MAC, 00:00:5e:00:01:VRID).
var vipMAC = [6]byte{0x00, 0x00, 0x5e, 0x00, 0x01, 0x33}

// withDstMAC returns a copy of frame addressed to mac.
func withDstMAC(frame []byte, mac [6]byte) []byte {
	out := append([]byte(nil), frame...)
	copy(out, mac[:])
	return out
}

// TestSteeringOnlyOwnerMAC: a frame for a service is redirected only when
// it is addressed to the interface's own MAC or the configured one; a
// frame for another unicast MAC (one a switch flooded), a broadcast or a
// multicast passes to the kernel and is counted as PassOtherMAC. Frames
// that match no service keep their own reasons whatever their MAC.
func TestSteeringOnlyOwnerMAC(t *testing.T) {
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOwnerMACs([6]byte(macDirector), vipMAC); err != nil {
		t.Fatal(err)
	}
	tcp80 := buildFrame(t, frameSpec{dstPort: 80})
	frag := buildFrame(t, frameSpec{fragOff: 20})
	redirected := StatsCounters{Total: 1, Redirected: 1}
	other := StatsCounters{Total: 1, PassOtherMAC: 1}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  StatsCounters
	}{
		{"own mac", withDstMAC(tcp80, [6]byte(macDirector)), redirected},
		{"configured mac", withDstMAC(tcp80, vipMAC), redirected},
		{"vlan tagged configured mac", withDstMAC(buildFrame(t, frameSpec{vlan: 5, dstPort: 80}), vipMAC), redirected},
		{"other unicast mac", withDstMAC(tcp80, [6]byte{0x02, 0, 0, 0, 0, 0x99}), other},
		{"own mac but one byte", withDstMAC(tcp80, [6]byte{0x02, 0, 0, 0, 0, 0x03}), other},
		{"own mac's first four bytes only", withDstMAC(tcp80, [6]byte{0x02, 0, 0, 0, 0x01, 0x02}), other},
		{"broadcast", withDstMAC(tcp80, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), other},
		{"ipv4 multicast mac", withDstMAC(tcp80, [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x51}), other},
		{"fragment to other mac", withDstMAC(frag, [6]byte{0x02, 0, 0, 0, 0, 0x99}), StatsCounters{Total: 1, Fragments: 1, PassOtherMAC: 1}},
		{"fragment to own mac", frag, StatsCounters{Total: 1, Fragments: 1, Redirected: 1}},
		{"no service, other mac", withDstMAC(buildFrame(t, frameSpec{dstPort: 81}), [6]byte{0x02, 0, 0, 0, 0, 0x99}), StatsCounters{Total: 1, PassNoService: 1}},
		{"arp broadcast", arpFrame(t), StatsCounters{Total: 1, PassNotIPv4: 1}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			want := uint32(xdpPass)
			if tc.want.Redirected == 1 {
				want = xdpRedirect
			}
			before := steeringStats(t, s)
			verdict, out := runXDP(t, s.program(), tc.frame)
			checkVerdict(t, verdict, want)
			checkBytes(t, out, tc.frame)
			if got := steeringStats(t, s).minus(before); got != tc.want {
				t.Errorf("counter delta %+v, want %+v", got, tc.want)
			}
		})
	}

	// Dropping the configured MAC stops its redirection at once; with no
	// owner MAC at all nothing is redirected.
	if err := s.SetOwnerMACs([6]byte(macDirector)); err != nil {
		t.Fatal(err)
	}
	if v, _ := runXDP(t, s.program(), withDstMAC(tcp80, vipMAC)); v != xdpPass {
		t.Errorf("configured MAC removed: verdict %s, want XDP_PASS", verdictName(v))
	}
	if v, _ := runXDP(t, s.program(), tcp80); v != xdpRedirect {
		t.Errorf("own MAC: verdict %s, want XDP_REDIRECT", verdictName(v))
	}
	if err := s.SetOwnerMACs(); err != nil {
		t.Fatal(err)
	}
	before := steeringStats(t, s)
	if v, _ := runXDP(t, s.program(), tcp80); v != xdpPass {
		t.Errorf("no owner MAC: verdict %s, want XDP_PASS", verdictName(v))
	}
	if got := steeringStats(t, s).minus(before); got != other {
		t.Errorf("no owner MAC: counter delta %+v, want %+v", got, other)
	}
}

// TestSteeringOwnerMACsRejected: a zero, group or third distinct MAC is
// refused with an error naming it, and the MACs in force stay.
func TestSteeringOwnerMACsRejected(t *testing.T) {
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	own := [6]byte(macDirector)
	for _, tc := range []struct {
		name string
		macs [][6]byte
		want string
	}{
		{"zero", [][6]byte{own, {}}, "MAC 1 is all zeros"},
		{"broadcast", [][6]byte{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, "MAC 0 (ff:ff:ff:ff:ff:ff) is a group"},
		{"multicast", [][6]byte{own, {0x01, 0x00, 0x5e, 0, 0, 1}}, "MAC 1 (01:00:5e:00:00:01) is a group"},
		{"three", [][6]byte{own, vipMAC, {0x02, 0, 0, 0, 0, 7}}, "3 distinct MACs: at most 2"},
	} {
		if err := s.SetOwnerMACs(tc.macs...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
		if v, _ := runXDP(t, s.program(), buildFrame(t, frameSpec{dstPort: 80})); v != xdpRedirect {
			t.Fatalf("%s: a refused change altered the owner MACs (verdict %s)", tc.name, verdictName(v))
		}
	}
	// Duplicates count once.
	if err := s.SetOwnerMACs(own, own, vipMAC); err != nil {
		t.Errorf("duplicate own MAC refused: %v", err)
	}
}

// TestSteeringSetServicesKeepsUnchangedKeys: reapplying the services never
// makes a lookup miss one of them. Rewriting a key replaces its hash
// element (the new one at the head of the bucket, then the old one
// unlinked), so a lookup standing on an element between the two then
// steps past both and misses the key; SetServices must leave unchanged
// keys alone. Many services in a map of as many buckets share buckets;
// the kernel runs each frame many times per call while a writer
// reapplies the same set, and the counters must show every run matched.
// The race is narrow: with every key rewritten, about one run in a few
// million missed, so the test failed in about half of its one-second
// runs.
func TestSteeringSetServicesKeepsUnchangedKeys(t *testing.T) {
	testsupport.RequirePrivileged(t)
	const n = 64
	s, err := LoadSteering(n, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var keys []ServiceKey
	var frames [][]byte
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 18, 5, byte(i)})
		keys = append(keys, ServiceKey{Addr: a, Proto: ipProtoTCP, Port: 80})
		frames = append(frames, buildFrame(t, frameSpec{dst: a, dstPort: 80}))
	}
	if err := s.SetServices(keys); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := s.SetServices(keys); err != nil {
				done <- err
				return
			}
		}
	}()
	before := steeringStats(t, s)
	runs := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		for _, f := range frames {
			if _, _, err := s.program().Benchmark(f, 20000, nil); err != nil {
				t.Fatal(err)
			}
			runs += 20000
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := steeringStats(t, s).minus(before)
	if got.PassNoService != 0 {
		t.Errorf("%d of %d runs missed a service present throughout", got.PassNoService, runs)
	}
	t.Logf("%d runs", runs)
}

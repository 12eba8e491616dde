package xdpprog

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket/layers"
)

// TestSteeringLocalPass: a flow AllowLocal named passes to the kernel
// (PassLocal) while the gate is on, its use is reported and reset by
// TakeLocalUse, and every other frame - another client port, a non-first
// fragment, the gate off, the flow forgotten - is redirected as before.
func TestSteeringLocalPass(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	syn := buildFrame(t, frameSpec{dstPort: 80})
	dgram := buildFrame(t, frameSpec{proto: layers.IPProtocolUDP, dstPort: 53})
	otherPort := buildFrame(t, frameSpec{dstPort: 80})
	otherPort[ethLen+ipv4MinLen+1]++ // client port 40001
	frag := buildFrame(t, frameSpec{fragOff: 10})
	tcpFlow := LocalFlow{Src: clientAddr, Dst: vip, SrcPort: 40000, DstPort: 80, Proto: ipProtoTCP}
	udpFlow := LocalFlow{Src: clientAddr, Dst: vip, SrcPort: 40000, DstPort: 53, Proto: ipProtoUDP}

	run := func(step string, frame []byte, local bool) {
		t.Helper()
		before := steeringStats(t, s)
		verdict, out := runXDP(t, s.program(), frame)
		got := steeringStats(t, s).minus(before)
		want, wantVerdict := StatsCounters{Total: 1, Redirected: 1}, uint32(xdpRedirect)
		if local {
			want, wantVerdict = StatsCounters{Total: 1, PassLocal: 1}, xdpPass
		}
		if frame[ethLen+6]&0x1f != 0 || frame[ethLen+7] != 0 {
			want.Fragments = 1
		}
		if verdict != wantVerdict || got != want {
			t.Errorf("%s: verdict %s, counters %+v; want %s, %+v", step, verdictName(verdict), got, verdictName(wantVerdict), want)
		}
		checkBytes(t, out, frame)
	}

	for _, f := range []LocalFlow{tcpFlow, udpFlow} {
		if err := s.AllowLocal(f); err != nil {
			t.Fatalf("AllowLocal(%s): %v", f, err)
		}
	}
	run("gate off", syn, false)
	if err := s.SetLocal(true); err != nil {
		t.Fatal(err)
	}
	run("tcp flow", syn, true)
	run("tcp flow again", syn, true)
	run("udp flow", dgram, true)
	run("other client port", otherPort, false)
	run("non-first fragment", frag, false)

	use := map[LocalFlow]LocalUse{}
	take := func() {
		t.Helper()
		clear(use)
		if err := s.TakeLocalUse(func(f LocalFlow, u LocalUse) { use[f] = u }); err != nil {
			t.Fatal(err)
		}
	}
	take()
	ipLen := func(frame []byte) uint64 { return uint64(frame[ethLen+2])<<8 | uint64(frame[ethLen+3]) }
	synLen := ipLen(syn)
	if got, want := use[tcpFlow], (LocalUse{Pkts: 2, Bytes: 2 * synLen, TCPFlags: 0x02}); got != want {
		t.Errorf("tcp flow use %+v, want %+v", got, want)
	}
	if got, want := use[udpFlow], (LocalUse{Pkts: 1, Bytes: ipLen(dgram)}); got != want {
		t.Errorf("udp flow use %+v, want %+v", got, want)
	}
	if len(use) != 2 {
		t.Errorf("TakeLocalUse reported %d flows, want 2: %v", len(use), use)
	}
	take()
	if use[tcpFlow] != (LocalUse{}) || use[udpFlow] != (LocalUse{}) {
		t.Errorf("use not reset: %v", use)
	}

	if err := s.ForgetLocal(tcpFlow); err != nil {
		t.Fatal(err)
	}
	run("tcp flow forgotten", syn, false)
	run("udp flow kept", dgram, true)
	if err := s.SetLocal(false); err != nil {
		t.Fatal(err)
	}
	run("gate off again", dgram, false)

	bad := []LocalFlow{
		{Src: netip.MustParseAddr("2001:2::1"), Dst: vip, SrcPort: 1, DstPort: 80, Proto: ipProtoTCP},
		{Src: clientAddr, Dst: vip, SrcPort: 1, DstPort: 80, Proto: 1},
	}
	for _, f := range bad {
		if err := s.AllowLocal(f); err == nil {
			t.Errorf("AllowLocal(%+v) accepted", f)
		}
	}
}

// TestSteeringLocalPass6: an IPv6 flow AllowLocal named passes to the
// kernel (PassLocal) while the gate is on, behind extension headers too,
// its use reported by TakeLocalUse (IP bytes: 40 plus the payload
// length) beside the IPv4 flows'; another client port, the gate off and
// the flow forgotten are redirected.
func TestSteeringLocalPass6(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	f6 := func(spec frameSpec) []byte { spec.ipv6 = true; return buildFrame(t, spec) }
	syn := f6(frameSpec{dst: vip6, proto: layers.IPProtocolTCP, dstPort: 80})
	synExt := f6(frameSpec{dst: vip6, proto: layers.IPProtocolTCP, dstPort: 80, ext: true})
	dgram := f6(frameSpec{dst: vip6AllPorts, proto: layers.IPProtocolUDP, dstPort: 5353})
	otherPort := f6(frameSpec{dst: vip6, proto: layers.IPProtocolTCP, dstPort: 80, srcPort: 40001})
	tcpFlow := LocalFlow{Src: client6, Dst: vip6, SrcPort: 40000, DstPort: 80, Proto: ipProtoTCP}
	udpFlow := LocalFlow{Src: client6, Dst: vip6AllPorts, SrcPort: 40000, DstPort: 5353, Proto: ipProtoUDP}
	run := func(step string, frame []byte, local bool) {
		t.Helper()
		before := steeringStats(t, s)
		verdict, out := runXDP(t, s.program(), frame)
		got := steeringStats(t, s).minus(before)
		want, wantVerdict := StatsCounters{Total: 1, Redirected: 1}, uint32(xdpRedirect)
		if local {
			want, wantVerdict = StatsCounters{Total: 1, PassLocal: 1}, xdpPass
		}
		if verdict != wantVerdict || got != want {
			t.Errorf("%s: verdict %s, counters %+v; want %s, %+v", step, verdictName(verdict), got, verdictName(wantVerdict), want)
		}
		checkBytes(t, out, frame)
	}
	for _, f := range []LocalFlow{tcpFlow, udpFlow} {
		if err := s.AllowLocal(f); err != nil {
			t.Fatalf("AllowLocal(%s): %v", f, err)
		}
	}
	run("gate off", syn, false)
	if err := s.SetLocal(true); err != nil {
		t.Fatal(err)
	}
	run("tcp flow", syn, true)
	run("tcp flow behind a destination options header", synExt, true)
	run("udp flow", dgram, true)
	run("other client port", otherPort, false)
	use := map[LocalFlow]LocalUse{}
	if err := s.TakeLocalUse(func(f LocalFlow, u LocalUse) { use[f] = u }); err != nil {
		t.Fatal(err)
	}
	ipLen := func(frame []byte) uint64 { return 40 + (uint64(frame[ethLen+4])<<8 | uint64(frame[ethLen+5])) }
	if got, want := use[tcpFlow], (LocalUse{Pkts: 2, Bytes: ipLen(syn) + ipLen(synExt), TCPFlags: 0x02}); got != want {
		t.Errorf("tcp flow use %+v, want %+v", got, want)
	}
	if got, want := use[udpFlow], (LocalUse{Pkts: 1, Bytes: ipLen(dgram)}); got != want {
		t.Errorf("udp flow use %+v, want %+v", got, want)
	}
	if len(use) != 2 {
		t.Errorf("TakeLocalUse reported %d flows, want 2: %v", len(use), use)
	}
	if err := s.ForgetLocal(tcpFlow); err != nil {
		t.Fatal(err)
	}
	run("tcp flow forgotten", syn, false)
	run("udp flow kept", dgram, true)
	if err := s.AllowLocal(LocalFlow{Src: client6, Dst: vip6, SrcPort: 1, DstPort: 80, Proto: 58}); err == nil {
		t.Error("AllowLocal of an ICMPv6 flow accepted")
	}
}

// TestAllowLocalAllocs: the bpf(2) update a worker makes for a new
// local-node connection, and the delete, allocate nothing, for either
// family.
func TestAllowLocalAllocs(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s, err := LoadSteering(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, f := range []LocalFlow{{Src: clientAddr, Dst: vip, DstPort: 80, Proto: ipProtoTCP}, {Src: client6, Dst: vip6, DstPort: 80, Proto: ipProtoTCP}} {
		allocs := testing.AllocsPerRun(200, func() {
			f.SrcPort++
			if err := s.AllowLocal(f); err != nil {
				t.Fatal(err)
			}
			if err := s.ForgetLocal(f); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per AllowLocal and ForgetLocal", f, allocs)
		}
	}
}

// TestSteeringLocalFull: the map takes MaxLocalFlows flows and then
// refuses with ErrLocalFull, changing nothing; forgetting one makes room.
func TestSteeringLocalFull(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s, err := LoadSteering(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := LocalFlow{Src: clientAddr, Dst: vip, DstPort: 80, Proto: ipProtoTCP}
	for i := range MaxLocalFlows {
		f.Src = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if err := s.AllowLocal(f); err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
	}
	extra := LocalFlow{Src: clientAddr, Dst: vip, SrcPort: 9, DstPort: 80, Proto: ipProtoTCP}
	if err := s.AllowLocal(extra); !errors.Is(err, ErrLocalFull) {
		t.Fatalf("flow %d: %v, want ErrLocalFull", MaxLocalFlows, err)
	}
	if err := s.AllowLocal(f); err != nil {
		t.Errorf("a flow already present, map full: %v", err)
	}
	if err := s.ForgetLocal(f); err != nil {
		t.Fatal(err)
	}
	if err := s.AllowLocal(extra); err != nil {
		t.Errorf("after ForgetLocal: %v", err)
	}
}

// BenchmarkLocalPass compares, in one run, the steering program's
// per-frame cost for a frame it redirects with the local-node check off
// (no local real server), the same frame with the check on and its flow
// not in the map (a VS/DR connection while a local node exists), and a
// local-node connection's later frame, which it passes to the kernel;
// the map holds 1 or 60000 other flows.
func BenchmarkLocalPass(b *testing.B) {
	testsupport.RequirePrivileged(b)
	frame := buildFrame(b, frameSpec{dstPort: 80})
	flow := LocalFlow{Src: clientAddr, Dst: vip, SrcPort: 40000, DstPort: 80, Proto: ipProtoTCP}
	for _, fill := range []int{1, 60000} {
		s, err := LoadSteering(16, 1)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.SetServices(testServices); err != nil {
			b.Fatal(err)
		}
		if err := s.SetOwnerMACs([6]byte(macDirector)); err != nil {
			b.Fatal(err)
		}
		for i := range fill {
			f := LocalFlow{Src: netip.AddrFrom4([4]byte{198, 18, 100 + byte(i>>16), byte(i >> 8)}), Dst: vip, SrcPort: uint16(i), DstPort: 80, Proto: ipProtoTCP}
			if err := s.AllowLocal(f); err != nil {
				b.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name     string
			on, flow bool
			want     uint32
		}{
			{"check=off", false, false, xdpPass},
			{"check=on/flow=miss", true, false, xdpPass},
			{"check=on/flow=hit", true, true, xdpPass},
		} {
			b.Run(fmt.Sprintf("flows=%d/%s", fill, tc.name), func(b *testing.B) {
				if err := s.SetLocal(tc.on); err != nil {
					b.Fatal(err)
				}
				if tc.flow {
					if err := s.AllowLocal(flow); err != nil {
						b.Fatal(err)
					}
				} else if err := s.ForgetLocal(flow); err != nil {
					b.Fatal(err)
				}
				before := steeringStats(b, s)
				benchProgram(b, s.program(), frame, tc.want)
				got := steeringStats(b, s).minus(before)
				if tc.flow != (got.PassLocal == got.Total) || got.Total == 0 {
					b.Fatalf("counters %+v: the frame was not decided as the case says", got)
				}
			})
		}
	}
}

// BenchmarkAllowLocal is the bpf(2) cost a worker pays when it schedules
// a new local-node connection (AllowLocal), with ForgetLocal, which
// housekeeping pays when the connection has gone, in the same loop.
func BenchmarkAllowLocal(b *testing.B) {
	testsupport.RequirePrivileged(b)
	s, err := LoadSteering(4, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	f := LocalFlow{Src: clientAddr, Dst: vip, DstPort: 80, Proto: ipProtoTCP}
	b.ReportAllocs()
	i := 0
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		f.SrcPort = uint16(i)
		i++
		if err := s.AllowLocal(f); err != nil {
			b.Fatal(err)
		}
		if err := s.ForgetLocal(f); err != nil {
			b.Fatal(err)
		}
	}
	// The process's CPU time, user and system: on a shared machine, wall
	// time also counts others' turns on the CPU.
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkTakeLocalUse is housekeeping's once-a-second read of a full
// flow map: every flow's use read, and reset where it was used.
func BenchmarkTakeLocalUse(b *testing.B) {
	testsupport.RequirePrivileged(b)
	s, err := LoadSteering(16, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.SetServices(testServices); err != nil {
		b.Fatal(err)
	}
	if err := s.SetOwnerMACs([6]byte(macDirector)); err != nil {
		b.Fatal(err)
	}
	if err := s.SetLocal(true); err != nil {
		b.Fatal(err)
	}
	const flows = MaxLocalFlows
	for i := range flows {
		f := LocalFlow{Src: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Dst: vip, SrcPort: 40000, DstPort: 80, Proto: ipProtoTCP}
		if err := s.AllowLocal(f); err != nil {
			b.Fatal(err)
		}
	}
	frame := buildFrame(b, frameSpec{dstPort: 80})
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		// One flow used since the last read (the frame's: 198.18.1.1).
		runXDP(b, s.program(), frame)
		n := 0
		if err := s.TakeLocalUse(func(LocalFlow, LocalUse) { n++ }); err != nil {
			b.Fatal(err)
		}
		if n != flows {
			b.Fatalf("%d flows reported, want %d", n, flows)
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

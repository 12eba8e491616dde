package xdpprog

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

var (
	other6  = netip.MustParseAddr("2001:2:0:1::11")
	realIP2 = netip.MustParseAddr("198.18.2.3")
)

// serviceGateWords reads the service gate as the program sees it.
func serviceGateWords(t testing.TB, s *Steering) *serviceGateValue {
	t.Helper()
	v := new(serviceGateValue)
	if err := s.svcGate.m.Lookup(uint32(0), unsafe.Pointer(v)); err != nil {
		t.Fatalf("read service gate: %v", err)
	}
	return v
}

// portBit reports whether the bitmap has port p (host order) set.
func portBit(m *[portBitmapLen]byte, p uint16) bool {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	i := binary.NativeEndian.Uint16(b[:])
	return m[i/8]&(1<<(i%8)) != 0
}

// gateBaseServices are services only: no VS/NAT real server, no director
// address; TCP on every port of vipAllPorts, UDP on every port of
// vip6AllPorts.
var gateBaseServices = []ServiceKey{
	{Addr: vip, Proto: ipProtoTCP, Port: 80},
	{Addr: vip, Proto: ipProtoUDP, Port: 53},
	{Addr: vipAllPorts, Proto: ipProtoTCP},
	{Addr: vip6, Proto: ipProtoTCP, Port: 80},
	{Addr: vip6AllPorts, Proto: ipProtoUDP},
}

// TestServiceGateSkipsLookups: for each lookup the service gate guards,
// a key written into the services map behind SetServices' back, with its
// gate clear, is not found (the lookup is skipped); once SetServices
// holds the key, the very next frame finds it (the gate opened before
// the key was written); once SetServices drops it again, the gate is
// closed again, and the key written behind its back is again not found.
func TestServiceGateSkipsLookups(t *testing.T) {
	testsupport.RequirePrivileged(t)
	tcp, udp := layers.IPProtocolTCP, layers.IPProtocolUDP
	f := func(s frameSpec) []byte { return buildFrame(t, s) }
	f6 := func(s frameSpec) []byte { s.ipv6 = true; return buildFrame(t, s) }
	port := func(p uint16) [2]byte { return [2]byte{byte(p >> 8), byte(p)} }
	redirected := StatsCounters{Total: 1, Redirected: 1}
	noService := StatsCounters{Total: 1, PassNoService: 1}
	icmpErr := StatsCounters{Total: 1, Redirected: 1, ICMPErrors: 1}
	for _, c := range []struct {
		name         string
		pre          []ServiceKey // with gateBaseServices, before and after
		raw          any          // serviceEntry or serviceEntry6
		add          ServiceKey   // what makes SetServices write raw
		frame        []byte
		closed, open StatsCounters
	}{
		{
			name: "ipv4 service port", raw: serviceEntry{Addr: otherAddr.As4(), Port: port(443), Proto: ipProtoTCP},
			add:   ServiceKey{Addr: otherAddr, Proto: ipProtoTCP, Port: 443},
			frame: f(frameSpec{dst: otherAddr, dstPort: 443}), closed: noService, open: redirected,
		},
		{
			// Port 53 has a UDP service: only the all-ports lookup is skipped.
			name: "ipv4 all-ports service", raw: serviceEntry{Addr: otherAddr.As4(), Proto: ipProtoUDP},
			add:   ServiceKey{Addr: otherAddr, Proto: ipProtoUDP},
			frame: f(frameSpec{dst: otherAddr, proto: udp, dstPort: 53}), closed: noService, open: redirected,
		},
		{
			name: "ipv4 nat real server port", raw: serviceEntry{Addr: realIP.As4(), Port: port(9090), Proto: ipProtoTCP, Flags: flagSource},
			add:   ServiceKey{Addr: realIP, Proto: ipProtoTCP, Port: 9090, Source: true},
			frame: f(frameSpec{src: realIP, srcPort: 9090, dst: clientAddr, dstPort: 40000}), closed: noService, open: redirected,
		},
		{
			name: "ipv4 nat real server all ports", raw: serviceEntry{Addr: realIP.As4(), Proto: ipProtoUDP, Flags: flagSource},
			add:   ServiceKey{Addr: realIP, Proto: ipProtoUDP, Source: true},
			frame: f(frameSpec{src: realIP, srcPort: 5353, dst: clientAddr, proto: udp, dstPort: 40000}), closed: noService, open: redirected,
		},
		{
			name: "ipv4 nat real server icmp", raw: serviceEntry{Addr: realIP.As4(), Proto: ipProtoICMP, Flags: flagSource},
			add:   ServiceKey{Addr: realIP, Proto: ipProtoTCP, Port: 9090, Source: true},
			frame: f(frameSpec{src: realIP, dst: clientAddr, proto: layers.IPProtocolICMPv4}), closed: StatsCounters{Total: 1, PassNotL4: 1}, open: redirected,
		},
		{
			// Skipped, the director-address lookup lets the reply through.
			name: "ipv4 director address", pre: []ServiceKey{{Addr: realIP, Proto: ipProtoTCP, Port: 8080, Source: true}},
			raw:   serviceEntry{Addr: directorIP.As4(), Flags: flagLocal},
			add:   ServiceKey{Addr: directorIP, Local: true},
			frame: f(frameSpec{src: realIP, srcPort: 8080, dst: directorIP, dstPort: 40000}), closed: redirected, open: noService,
		},
		{
			name: "ipv4 icmp error quoting a service port", raw: serviceEntry{Addr: vip.As4(), Port: port(8443), Proto: ipProtoTCP},
			add:   ServiceKey{Addr: vip, Proto: ipProtoTCP, Port: 8443},
			frame: icmpErrorFrame(t, icmpSpec{quotedPort: 8443}), closed: noService, open: icmpErr,
		},
		{
			name: "ipv4 icmp error quoting an all-ports service", raw: serviceEntry{Addr: vip.As4(), Proto: ipProtoUDP},
			add:   ServiceKey{Addr: vip, Proto: ipProtoUDP},
			frame: icmpErrorFrame(t, icmpSpec{quotedProto: udp, quotedPort: 5353}), closed: noService, open: icmpErr,
		},
		{
			name: "ipv6 service port", raw: serviceEntry6{Addr: other6.As16(), Port: port(443), Proto: ipProtoTCP},
			add:   ServiceKey{Addr: other6, Proto: ipProtoTCP, Port: 443},
			frame: f6(frameSpec{dst: other6, proto: tcp, dstPort: 443}), closed: noService, open: redirected,
		},
		{
			name: "ipv6 all-ports service", raw: serviceEntry6{Addr: other6.As16(), Proto: ipProtoTCP},
			add:   ServiceKey{Addr: other6, Proto: ipProtoTCP},
			frame: f6(frameSpec{dst: other6, proto: tcp, dstPort: 80}), closed: noService, open: redirected,
		},
		{
			name: "ipv6 nat real server port", raw: serviceEntry6{Addr: realIP6.As16(), Port: port(9090), Proto: ipProtoTCP, Flags: flagSource},
			add:   ServiceKey{Addr: realIP6, Proto: ipProtoTCP, Port: 9090, Source: true},
			frame: f6(frameSpec{src: realIP6, srcPort: 9090, dst: client6, proto: tcp, dstPort: 40000}), closed: noService, open: redirected,
		},
		{
			name: "ipv6 nat real server all ports", raw: serviceEntry6{Addr: realIP6.As16(), Proto: ipProtoUDP, Flags: flagSource},
			add:   ServiceKey{Addr: realIP6, Proto: ipProtoUDP, Source: true},
			frame: f6(frameSpec{src: realIP6, srcPort: 5353, dst: client6, proto: udp, dstPort: 40000}), closed: noService, open: redirected,
		},
		{
			// Skipped, the error goes on to its quote, 8 zero bytes: cut.
			name: "ipv6 nat real server icmpv6", raw: serviceEntry6{Addr: realIP6.As16(), Proto: ipProtoICMPv6, Flags: flagSource},
			add:   ServiceKey{Addr: realIP6, Proto: ipProtoTCP, Port: 9090, Source: true},
			frame: icmp6Frame(t, realIP6, client6, 1), closed: StatsCounters{Total: 1, PassTruncated: 1}, open: redirected,
		},
		{
			name: "ipv6 director address", pre: []ServiceKey{{Addr: realIP6, Proto: ipProtoTCP, Port: 8080, Source: true}},
			raw:   serviceEntry6{Addr: directorIP6.As16(), Flags: flagLocal},
			add:   ServiceKey{Addr: directorIP6, Local: true},
			frame: f6(frameSpec{src: realIP6, srcPort: 8080, dst: directorIP6, proto: tcp, dstPort: 40000}), closed: redirected, open: noService,
		},
		{
			name: "ipv6 icmpv6 error quoting a service port", raw: serviceEntry6{Addr: vip6.As16(), Port: port(8443), Proto: ipProtoTCP},
			add:   ServiceKey{Addr: vip6, Proto: ipProtoTCP, Port: 8443},
			frame: icmp6ErrorFrame(t, icmp6Spec{quotedPort: 8443}), closed: noService, open: icmpErr,
		},
		{
			name: "ipv6 icmpv6 error quoting an all-ports service", raw: serviceEntry6{Addr: vip6.As16(), Proto: ipProtoTCP},
			add:   ServiceKey{Addr: vip6, Proto: ipProtoTCP},
			frame: icmp6ErrorFrame(t, icmp6Spec{quotedPort: 8443}), closed: noService, open: icmpErr,
		},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			s := loadTestSteering(t)
			if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
				t.Fatal(err)
			}
			before := append(slices.Clone(gateBaseServices), c.pre...)
			putRaw := func() {
				t.Helper()
				m := s.services
				if _, ok := c.raw.(serviceEntry6); ok {
					m = s.services6
				}
				if err := m.Put(c.raw, uint32(0)); err != nil {
					t.Fatal(err)
				}
			}
			run := func(stage string, want StatsCounters) {
				t.Helper()
				before := steeringStats(t, s)
				verdict, _ := runXDP(t, s.program(), c.frame)
				if got := steeringStats(t, s).minus(before); got != want {
					t.Errorf("%s: verdict %s, counter delta %+v, want %+v", stage, verdictName(verdict), got, want)
				}
			}
			if err := s.SetServices(before); err != nil {
				t.Fatal(err)
			}
			putRaw()
			run("key written behind a clear gate", c.closed)
			if err := s.SetServices(append(slices.Clone(before), c.add)); err != nil {
				t.Fatal(err)
			}
			run("key added", c.open)
			if err := s.SetServices(before); err != nil {
				t.Fatal(err)
			}
			putRaw()
			run("key removed, then written behind the gate again", c.closed)
		})
	}
}

// TestServiceGateValue: the gate holds exactly the ports and kinds of the
// keys SetServices wrote, per family, protocol and direction; a port two
// services share keeps its bit while one of them stays; the layout is the
// one the program's offsets assume.
func TestServiceGateValue(t *testing.T) {
	testsupport.RequirePrivileged(t)
	var v serviceGateValue
	if off := unsafe.Offsetof(v.Local); off != gateOffLocal {
		t.Fatalf("Local at %d, program reads it at %d", off, gateOffLocal)
	}
	if off := unsafe.Offsetof(v.Ports); off != gateOffPorts {
		t.Fatalf("Ports at %d, program reads them at %d", off, gateOffPorts)
	}
	if d := uintptr(unsafe.Pointer(&v.Ports[0][1])) - uintptr(unsafe.Pointer(&v.Ports[0][0])); d != 1<<gateProtoShift {
		t.Fatalf("UDP bitmaps %d bytes after TCP's, program assumes %d", d, 1<<gateProtoShift)
	}
	if protoIndex(ipProtoTCP) != 0 || protoIndex(ipProtoUDP) != 1 {
		t.Fatal("protoIndex: TCP must be 0, UDP 1")
	}

	s := loadTestSteering(t) // testServices
	g := serviceGateWords(t, s)
	type bit struct {
		family, proto, dir int
		port               uint16
	}
	want := map[bit]bool{
		{gate4, 0, portsDst, 80}: true, {gate4, 1, portsDst, 53}: true, {gate4, 0, portsDst, 0}: true,
		{gate4, 0, portsSrc, 8080}: true, {gate4, 1, portsSrc, 0}: true,
		{gate6, 0, portsDst, 80}: true, {gate6, 1, portsDst, 0}: true,
		{gate6, 0, portsSrc, 8080}: true, {gate6, 1, portsSrc, 0}: true,
	}
	check := func(stage string, nat, local [gates]uint32) {
		t.Helper()
		if g.NAT != nat || g.Local != local {
			t.Errorf("%s: NAT words %v, director words %v; want %v, %v", stage, g.NAT, g.Local, nat, local)
		}
		for f := range gates {
			for p := range 2 {
				for d := range portDirs {
					for port := range 1 << 16 {
						b := bit{f, p, d, uint16(port)}
						if got := portBit(&g.Ports[f][p][d], uint16(port)); got != want[b] {
							t.Errorf("%s: bit %+v is %v, want %v", stage, b, got, want[b])
						}
					}
				}
			}
		}
	}
	check("testServices", [gates]uint32{1, 1}, [gates]uint32{1, 1})

	// Port 80 twice (TCP, IPv4), then once: the bit stays.
	if err := s.SetServices([]ServiceKey{
		{Addr: vip, Proto: ipProtoTCP, Port: 80}, {Addr: otherAddr, Proto: ipProtoTCP, Port: 80},
		{Addr: otherAddr, Proto: ipProtoUDP, Port: 443}, {Addr: realIP6, Proto: ipProtoUDP, Port: 53, Source: true},
	}); err != nil {
		t.Fatal(err)
	}
	g = serviceGateWords(t, s)
	want = map[bit]bool{{gate4, 0, portsDst, 80}: true, {gate4, 1, portsDst, 443}: true, {gate6, 1, portsSrc, 53}: true}
	check("two services on port 80", [gates]uint32{0, 1}, [gates]uint32{})
	if err := s.SetServices([]ServiceKey{{Addr: otherAddr, Proto: ipProtoTCP, Port: 80}}); err != nil {
		t.Fatal(err)
	}
	g = serviceGateWords(t, s)
	want = map[bit]bool{{gate4, 0, portsDst, 80}: true}
	check("one left on port 80", [gates]uint32{}, [gates]uint32{})
	if err := s.SetServices(nil); err != nil {
		t.Fatal(err)
	}
	g = serviceGateWords(t, s)
	want = nil
	check("no services", [gates]uint32{}, [gates]uint32{})
}

// TestServiceGateAgreesWithReference: with subsets of testServices, each
// opening a different part of the gate, the program decides every
// steering fixture frame as the reference model does, which knows
// nothing of the gate: no lookup is skipped that could have matched.
func TestServiceGateAgreesWithReference(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	cases := steeringCases(t)
	rng := rand.New(rand.NewPCG(11, 14))
	subsets := [][]ServiceKey{nil, testServices}
	for range 48 {
		var sub []ServiceKey
		for _, k := range testServices {
			if rng.IntN(2) == 0 {
				sub = append(sub, k)
			}
		}
		subsets = append(subsets, sub)
	}
	// Each key alone, too: a gate opened by just one kind of key.
	for _, k := range testServices {
		subsets = append(subsets, []ServiceKey{k})
	}
	for i, sub := range subsets {
		if err := s.SetServices(sub); err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			before := steeringStats(t, s)
			runXDP(t, s.program(), tc.frame)
			if got, want := steeringStats(t, s).minus(before), refSteer(tc.frame, sub, [6]byte(macDirector)); got != want {
				t.Errorf("subset %d %v, frame %q: counter delta %+v, reference says %+v", i, sub, tc.name, got, want)
			}
		}
	}
}

// TestServiceGateConcurrentSetServices races SetServices calls that
// change the gate (sets that add and drop services on the ports, kinds
// and families of a core they all share) against frames of the core's
// services, real servers and director address: every such frame is
// decided as the core says throughout, so the gate never closes what a
// key still in the map needs; once the writers are done, the gate is
// exactly the last set's. Run with -race.
func TestServiceGateConcurrentSetServices(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	core := []ServiceKey{
		{Addr: vip, Proto: ipProtoTCP, Port: 80},
		{Addr: vipAllPorts, Proto: ipProtoUDP},
		{Addr: realIP, Proto: ipProtoTCP, Port: 8080, Source: true},
		{Addr: directorIP, Local: true},
		{Addr: vip6, Proto: ipProtoTCP, Port: 80},
		{Addr: realIP6, Proto: ipProtoUDP, Source: true},
	}
	sets := [][]ServiceKey{
		append(slices.Clone(core),
			ServiceKey{Addr: otherAddr, Proto: ipProtoTCP, Port: 80},
			ServiceKey{Addr: otherAddr, Proto: ipProtoUDP},
			ServiceKey{Addr: realIP2, Proto: ipProtoTCP, Port: 8080, Source: true},
			ServiceKey{Addr: other6, Proto: ipProtoTCP, Port: 80},
			ServiceKey{Addr: directorIP6, Local: true}),
		append(slices.Clone(core),
			ServiceKey{Addr: otherAddr, Proto: ipProtoTCP, Port: 443},
			ServiceKey{Addr: realIP6, Proto: ipProtoTCP, Port: 8080, Source: true}),
		core,
	}
	f := func(s frameSpec) []byte { return buildFrame(t, s) }
	f6 := func(s frameSpec) []byte { s.ipv6 = true; return buildFrame(t, s) }
	frames := []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"tcp to the vip", f(frameSpec{dstPort: 80}), xdpRedirect},
		{"udp to the all-ports vip", f(frameSpec{dst: vipAllPorts, proto: layers.IPProtocolUDP, dstPort: 9999}), xdpRedirect},
		{"nat reply", f(frameSpec{src: realIP, srcPort: 8080, dst: clientAddr, dstPort: 40000}), xdpRedirect},
		{"icmp from the nat real server", f(frameSpec{src: realIP, dst: clientAddr, proto: layers.IPProtocolICMPv4}), xdpRedirect},
		{"nat reply to the director", f(frameSpec{src: realIP, srcPort: 8080, dst: directorIP, dstPort: 40000}), xdpPass},
		{"ipv6 tcp to the vip", f6(frameSpec{dst: vip6, proto: layers.IPProtocolTCP, dstPort: 80}), xdpRedirect},
		{"ipv6 nat reply", f6(frameSpec{src: realIP6, srcPort: 5353, dst: client6, proto: layers.IPProtocolUDP, dstPort: 40000}), xdpRedirect},
	}
	if err := s.SetServices(core); err != nil {
		t.Fatal(err)
	}
	const writers, each = 3, 60
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		prog := s.program()
		for n := 0; ; n++ {
			select {
			case <-stop:
				if n == 0 {
					errs <- fmt.Errorf("the reader ran no frame")
				}
				return
			default:
			}
			fr := frames[n%len(frames)]
			opts := ebpf.RunOptions{Data: fr.frame}
			v, err := prog.Run(&opts)
			if err != nil {
				errs <- err
				return
			}
			if v != fr.want {
				errs <- fmt.Errorf("%s: verdict %s, want %s", fr.name, verdictName(v), verdictName(fr.want))
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.SetServices(sets[(w+i)%len(sets)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	reader.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for _, last := range sets {
		if err := s.SetServices(last); err != nil {
			t.Fatal(err)
		}
		fresh, err := LoadSteering(16, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := fresh.SetServices(last); err != nil {
			fresh.Close()
			t.Fatal(err)
		}
		got, want := serviceGateWords(t, s), serviceGateWords(t, fresh)
		fresh.Close()
		if *got != *want {
			t.Errorf("gate after %d keys differs from a fresh program's for them", len(last))
		}
	}
}

// TestServiceGateOpensBeforeKeys races one writer, which adds and drops
// a service, a VS/NAT real server and an IPv6 service, against a reader
// that runs a frame for each while the map holds its key before and
// after the run, with no SetServices call begun or ended in between:
// then the gate must have been open during the run (it opens before a key
// is written and closes only after it is deleted), and the frame must be
// redirected. Run with -race.
func TestServiceGateOpensBeforeKeys(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	with := append(slices.Clone(gateBaseServices),
		ServiceKey{Addr: otherAddr, Proto: ipProtoTCP, Port: 443},
		ServiceKey{Addr: realIP2, Proto: ipProtoTCP, Port: 9090, Source: true},
		ServiceKey{Addr: other6, Proto: ipProtoUDP, Port: 4500})
	toggled := []struct {
		m     *ebpf.Map
		key   any
		frame []byte
	}{
		{s.services, serviceEntry{Addr: otherAddr.As4(), Port: [2]byte{443 >> 8, 443 & 0xff}, Proto: ipProtoTCP},
			buildFrame(t, frameSpec{dst: otherAddr, dstPort: 443})},
		{s.services, serviceEntry{Addr: realIP2.As4(), Port: [2]byte{9090 >> 8, 9090 & 0xff}, Proto: ipProtoTCP, Flags: flagSource},
			buildFrame(t, frameSpec{src: realIP2, srcPort: 9090, dst: clientAddr, dstPort: 40000})},
		{s.services6, serviceEntry6{Addr: other6.As16(), Port: [2]byte{4500 >> 8, 4500 & 0xff}, Proto: ipProtoUDP},
			buildFrame(t, frameSpec{ipv6: true, dst: other6, proto: layers.IPProtocolUDP, dstPort: 4500})},
	}
	var seq atomic.Uint64 // odd while a SetServices call runs
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			set := gateBaseServices
			if i%2 == 0 {
				set = with
			}
			seq.Add(1)
			err := s.SetServices(set)
			seq.Add(1)
			if err != nil {
				done <- err
				return
			}
		}
	}()
	present := func(m *ebpf.Map, k any) bool {
		var v uint32
		return m.Lookup(k, &v) == nil
	}
	checked := 0
	deadline := time.Now().Add(time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		tg := toggled[n%len(toggled)]
		before := seq.Load()
		if !present(tg.m, tg.key) {
			continue
		}
		v, _ := runXDP(t, s.program(), tg.frame)
		if !present(tg.m, tg.key) || seq.Load() != before {
			continue
		}
		checked++
		if v != xdpRedirect {
			t.Errorf("frame %d (%v): key in the map before and after the run, verdict %s", n, tg.key, verdictName(v))
			break
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no frame ran with its key in the map")
	}
	t.Logf("%d frames checked", checked)
}

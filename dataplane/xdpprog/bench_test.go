package xdpprog

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
)

// benchRepeat is how many times the kernel runs a program per syscall; it
// amortises the syscall so the kernel's own timing dominates.
const benchRepeat = 256

// benchProgram runs prog on frame under BPF_PROG_TEST_RUN and reports the
// kernel-measured cost of one program run.
func benchProgram(b *testing.B, prog *ebpf.Program, frame []byte, want uint32) {
	b.ReportAllocs()
	var total time.Duration
	runs := 0
	for b.Loop() {
		ret, per, err := prog.Benchmark(frame, benchRepeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("verdict %s, want %s", verdictName(ret), verdictName(want))
		}
		total += per
		runs++
	}
	// ns/frame: mean time the kernel spent in one run of the program,
	// as BPF_PROG_TEST_RUN measures it (excludes the syscall).
	b.ReportMetric(float64(total.Nanoseconds())/float64(runs), "ns/frame")
}

// BenchmarkPrograms compares the per-frame cost of the programs, with the
// drop sink (one counter pair, no parsing) as the floor and redirect-all
// (the bare forwarder's program) as what the steering program's matched
// path is measured against. No socket is registered, so a frame either
// program would redirect ends in the same failed xsks lookup (XDP_PASS).
func BenchmarkPrograms(b *testing.B) {
	testsupport.RequirePrivileged(b)
	sink, err := LoadDropSink()
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	udp64 := buildFrame(b, frameSpec{proto: layers.IPProtocolUDP, dstPort: 53, payload: make([]byte, 18)})
	udp6 := buildFrame(b, frameSpec{ipv6: true, dst: vip6, proto: layers.IPProtocolUDP, dstPort: 53, payload: make([]byte, 18)})
	icmp6 := icmp6ErrorFrame(b, icmp6Spec{quotedProto: layers.IPProtocolUDP, quotedPort: 53})
	b.Run("prog=dropsink", func(b *testing.B) { benchProgram(b, sink.program(), udp64, xdpDrop) })
	all, err := LoadRedirectAll(1)
	if err != nil {
		b.Fatal(err)
	}
	defer all.Close()
	b.Run("prog=redirectall/frame=match", func(b *testing.B) { benchProgram(b, all.program(), udp64, xdpPass) })

	for _, n := range []int{1, 1000} {
		s, err := LoadSteering(n+1, 1)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		keys := []ServiceKey{{Addr: vip, Proto: ipProtoUDP, Port: 53}, {Addr: vip6, Proto: ipProtoUDP, Port: 53}}
		for i := 1; i < n; i++ {
			keys = append(keys, ServiceKey{Addr: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Proto: ipProtoTCP, Port: 80})
		}
		if err := s.SetServices(keys); err != nil {
			b.Fatal(err)
		}
		if err := s.SetOwnerMACs([6]byte(macDirector)); err != nil {
			b.Fatal(err)
		}
		for _, fr := range []struct {
			name  string
			frame []byte
		}{
			{"match", udp64},
			{"match6", udp6},
			{"icmp6_error", icmp6},
			{"miss", buildFrame(b, frameSpec{proto: layers.IPProtocolUDP, dstPort: 54, payload: make([]byte, 18)})},
			{"miss6", buildFrame(b, frameSpec{ipv6: true, dst: vip6, proto: layers.IPProtocolUDP, dstPort: 54, payload: make([]byte, 18)})},
			// The host's own traffic: ssh to the director's address.
			{"ssh", buildFrame(b, frameSpec{dst: directorIP, dstPort: 22})},
			{"arp", arpFrame(b)},
		} {
			b.Run(fmt.Sprintf("prog=steering/services=%d/frame=%s", n, fr.name), func(b *testing.B) {
				benchProgram(b, s.program(), fr.frame, xdpPass)
			})
		}
		// A source in the blocklist: dropped at the end of the match path,
		// before the redirect.
		b.Run(fmt.Sprintf("prog=steering/services=%d/frame=blocked", n), func(b *testing.B) {
			if err := s.Block(clientAddr, time.Hour); err != nil {
				b.Fatal(err)
			}
			defer s.Unblock(clientAddr)
			benchProgram(b, s.program(), udp64, xdpDrop)
		})
		b.Run(fmt.Sprintf("prog=steering/services=%d/frame=blocked6", n), func(b *testing.B) {
			if err := s.Block(client6, time.Hour); err != nil {
				b.Fatal(err)
			}
			defer s.Unblock(client6)
			benchProgram(b, s.program(), udp6, xdpDrop)
		})
	}

	d, err := LoadDecap46([]netip.Addr{vip})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ipip := ipipFrame(b, udp64[ethLen:], false)
	b.Run("prog=decap/frame=ipip", func(b *testing.B) { benchProgram(b, d.program(), ipip, xdpPass) })
	b.Run("prog=decap/frame=plain", func(b *testing.B) { benchProgram(b, d.program(), udp64, xdpPass) })
}

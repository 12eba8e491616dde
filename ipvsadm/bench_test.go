package ipvsadm

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// BenchmarkParse measures one command line; afvsadm parses one per run,
// or one per line of a restore, so this bounds -R on large tables.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct{ name, line string }{
		{"cmd=list", "-Ln"},
		{"cmd=add-service", "-A -t 198.19.0.1:80 -s wlc -p 300 -M 255.255.255.0"},
		{"cmd=add-server", "-a -t 198.19.0.1:80 -r 198.18.1.2:80 -g -w 1"},
	} {
		args := strings.Fields(tc.line)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// bigTable is one service with n real servers in reverse order, so the
// listing has to sort them.
func bigTable(n int) *Snapshot {
	svc := Service{Virtual: v4svc, Sched: "wlc", Netmask: 32}
	for i := n - 1; i >= 0; i-- {
		svc.Dests = append(svc.Dests, Dest{
			Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Port: 80,
			Weight: 1, Active: uint32(i), Stats: Stats{Conns: uint64(i) * 1e6, InBytes: uint64(i) * 1e9},
		})
	}
	return &Snapshot{Size: 4096, Services: []Service{svc}}
}

// BenchmarkWriteList measures -L -n --stats and -S; the per-server cost is
// what matters for large tables.
func BenchmarkWriteList(b *testing.B) {
	for _, n := range []int{10, 1000} {
		s := bigTable(n)
		b.Run(fmt.Sprintf("format=stats/dests=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.WriteList(io.Discard, ListOptions{Numeric: true, Stats: true}); err != nil {
					b.Fatal(err)
				}
			}
			// ns per real server, so sizes compare directly.
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/dest")
		})
		b.Run(fmt.Sprintf("format=save/dests=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.WriteSave(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/dest")
		})
	}
}

package sim

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/afvs/afvs/vs"
)

func BenchmarkRun(b *testing.B) {
	cases := []struct {
		sched  string
		dests  int
		length time.Duration
		rate   float64
	}{
		{"rr", 10, time.Minute, 2000},
		{"wlc", 10, time.Minute, 2000},
		{"wlc", 1000, time.Minute, 2000},
		{"mh", 1000, time.Minute, 2000},
		// A whole day at 5 connections per second, 30 s mean: the
		// clock and sweep policy, not the events, are what this measures.
		{"wlc", 10, 24 * time.Hour, 5},
	}
	for _, c := range cases {
		name := fmt.Sprintf("sched=%s/dests=%d/trace=%v", c.sched, c.dests, c.length)
		b.Run(name, func(b *testing.B) {
			var trace bytes.Buffer
			w := Workload{Seed: 1, Length: c.length, Rate: c.rate, MeanDuration: 30 * time.Second, Clients: 10000}
			if c.length < time.Hour {
				w.MeanDuration = 2 * time.Second
			}
			if _, err := Generate(&trace, w); err != nil {
				b.Fatal(err)
			}
			weights := make([]int32, c.dests)
			for i := range weights {
				weights[i] = int32(1 + i%4)
			}
			tbl := benchTable(b, c.sched, weights)
			var sum *Summary
			b.ReportAllocs()
			for b.Loop() {
				var err error
				sum, err = Run(tbl, bytes.NewReader(trace.Bytes()), io.Discard, Options{})
				if err != nil {
					b.Fatal(err)
				}
			}
			events := float64(sum.Packets + sum.Admin)
			perRun := b.Elapsed().Seconds() / float64(b.N)
			// events/s: trace events simulated per second of wall time.
			b.ReportMetric(events/perRun, "events/s")
			// ns/event: the same, inverted, for comparing against the
			// dataplane's ns per frame.
			b.ReportMetric(perRun*1e9/events, "ns/event")
			// trace-s/s: seconds of trace simulated per wall second.
			b.ReportMetric(c.length.Seconds()/perRun, "trace-s/s")
		})
	}
}

func benchTable(b *testing.B, schedName string, weights []int32) *vs.Table {
	b.Helper()
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: schedName}
	for i, w := range weights {
		a := netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(1 + i%250)})
		s.Reals = append(s.Reals, vs.Real{Addr: a, Port: 80, Weight: w})
	}
	t := &vs.Table{}
	if err := t.AddService(s); err != nil {
		b.Fatal(err)
	}
	return t
}

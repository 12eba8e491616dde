package sim

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// Summary is what a run did.
type Summary struct {
	Start, End int64 // time_ms of the first and last event
	Packets    int   // packet events
	Admin      int   // admin events
	Conns      int   // decision lines: new connections, scheduled or dropped
	Dropped    int   // of those, with no real server ("-")
	Templated  int   // of the scheduled, chosen through a persistence template
	// Drops counts dropped packets by reason (dataplane drop and parse
	// reason names), including packets of connections whose server was
	// deleted and non-SYN TCP packets without a connection.
	Drops       map[string]uint64
	Services    []ServiceSummary
	AdminEvents []AdminEffect
	// Series is active connections per server over time, for the plot.
	Series Series
}

// ServiceSummary is the balance of one virtual service.
type ServiceSummary struct {
	Key     vs.Key
	Sched   string // the scheduler at the end of the run
	Servers []ServerSummary
	// Imbalance compares each server's connection share with its weight
	// share: over the servers with a non-zero weight share, the ratios
	// share/weight-share have this max/mean and coefficient of variation.
	// A perfectly weighted spread has max/mean 1 and CV 0.
	Imbalance Imbalance
}

// ServerSummary is one real server of a service.
type ServerSummary struct {
	Addr       netip.AddrPort
	Weight     int32 // at the end of the run
	Present    bool  // still configured at the end of the run
	Conns      int   // new connections scheduled to it
	PeakActive int32 // most active connections at once
	// Share is Conns over the service's scheduled connections.
	Share float64
	// WeightShare is the share the weights asked for: the mean, over the
	// service's scheduled connections, of this server's weight divided by
	// the service's total weight at that moment.
	WeightShare float64
}

// Imbalance is the spread of a set of ratios.
type Imbalance struct {
	MaxMean float64 // largest over mean
	CV      float64 // standard deviation (population) over mean
}

// Series is active connections per server, sampled over time.
type Series struct {
	TimesMS []int64
	Servers []string  // "addr:port", or "service -> addr:port" with several services
	Active  [][]int32 // [server][sample]
}

func (s *simulator) summary() *Summary {
	s.flushExpected()
	sum := s.sum
	sum.Drops = map[string]uint64{}
	for i := range s.c.Parse {
		if n := s.c.Parse[i].Load(); n > 0 && i != int(header.OK) {
			sum.Drops[header.Reason(i).String()] = n
		}
	}
	for i := range s.c.Drops {
		if n := s.c.Drops[i].Load(); n > 0 {
			sum.Drops[dataplane.Drop(i).String()] = n
		}
	}
	// A server may have held several IDs (deleted and added again); each
	// ID's peak belongs to the server that owns it now.
	for id, ri := range s.owner {
		if ri >= 0 {
			r := s.servers[ri]
			r.peak = max(r.peak, s.hooks.peak[id])
		}
	}
	for _, sr := range s.services {
		ss := ServiceSummary{Key: sr.key, Sched: sr.sched}
		total := 0
		for _, ri := range sr.servers {
			total += s.servers[ri].conns
		}
		var ratios []float64
		for _, ri := range sr.servers {
			r := s.servers[ri]
			v := ServerSummary{Addr: r.addr, Weight: r.weight, Present: r.present, Conns: r.conns, PeakActive: r.peak}
			if total > 0 {
				v.Share = float64(r.conns) / float64(total)
				v.WeightShare = r.expected / float64(total)
			}
			if v.WeightShare > 0 {
				ratios = append(ratios, v.Share/v.WeightShare)
			}
			ss.Servers = append(ss.Servers, v)
		}
		ss.Imbalance = imbalance(ratios)
		sum.Services = append(sum.Services, ss)
		for _, ri := range sr.servers {
			name := s.servers[ri].addr.String()
			if len(s.services) > 1 {
				name = fmt.Sprintf("%s -> %s", sr.key, name)
			}
			sum.Series.Servers = append(sum.Series.Servers, name)
			sum.Series.Active = append(sum.Series.Active, s.series.active[ri])
		}
	}
	sum.Series.TimesMS = s.series.times
	return &sum
}

// imbalance returns max/mean and the coefficient of variation of xs.
func imbalance(xs []float64) Imbalance {
	if len(xs) == 0 {
		return Imbalance{}
	}
	var mean, hi float64
	for _, x := range xs {
		mean += x
		hi = math.Max(hi, x)
	}
	mean /= float64(len(xs))
	if mean == 0 {
		return Imbalance{}
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return Imbalance{MaxMean: hi / mean, CV: math.Sqrt(ss/float64(len(xs))) / mean}
}

// WriteText writes the summary for people.
func (sum *Summary) WriteText(w io.Writer) error {
	p := &errWriter{w: w}
	p.printf("trace %d..%d ms: %d packet events, %d admin events\n", sum.Start, sum.End, sum.Packets, sum.Admin)
	p.printf("new connections %d: scheduled %d (%d through persistence templates), dropped %d\n",
		sum.Conns, sum.Conns-sum.Dropped, sum.Templated, sum.Dropped)
	reasons := make([]string, 0, len(sum.Drops))
	for r := range sum.Drops {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		p.printf("  dropped packets %-22s %d\n", r, sum.Drops[r])
	}
	for _, s := range sum.Services {
		p.printf("\nservice %s (%s)\n", s.Key, s.Sched)
		// The first column fits every IPv4 name; a longer (IPv6) one
		// widens it for the whole service, so the columns stay aligned.
		width := 22
		for _, v := range s.Servers {
			width = max(width, len(v.Addr.String()))
		}
		p.printf("  %-*s %7s %9s %7s %12s %11s\n", width, "real server", "weight", "conns", "share", "weight-share", "peak-active")
		for _, v := range s.Servers {
			wt := fmt.Sprint(v.Weight)
			if !v.Present {
				wt = "deleted"
			}
			p.printf("  %-*s %7s %9d %6.2f%% %11.2f%% %11d\n", width, v.Addr, wt, v.Conns, 100*v.Share, 100*v.WeightShare, v.PeakActive)
		}
		p.printf("  imbalance (share / weight-share): max/mean %.4f  cv %.4f\n", s.Imbalance.MaxMean, s.Imbalance.CV)
	}
	if len(sum.AdminEvents) > 0 {
		p.printf("\nadmin events (moved: probe reassignment; orphaned: server removed, packets dropped)\n")
	}
	for _, a := range sum.AdminEvents {
		p.printf("  line %d at %d ms: %s\n", a.Line, a.TimeMS, a.Args)
		p.printf("    flows %d: moved %d (%.2f%%), orphaned %d; templates %d: moved %d (%.2f%%), orphaned %d\n",
			a.Flows, a.FlowsMoved, 100*a.FlowsMovedFrac(), a.FlowsOrphaned,
			a.Templates, a.TemplatesMoved, 100*a.TemplatesMovedFrac(), a.TemplatesOrphaned)
	}
	return p.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

package bench

import (
	"errors"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/afvs/afvs/sim"
)

// WritePlot draws the report as a PNG: the sink rate of every rate
// scenario (a bar per placement), and the latency scenario's p50, p90 and
// p99 round trips per path. Failed scenarios and paths are left out.
func (r *Report) WritePlot(w io.Writer) error {
	var charts []sim.BarChart
	if c, ok := r.rateChart(); ok {
		charts = append(charts, c)
	}
	var lat []LatencyPath
	for _, res := range r.Results {
		if res.Error == "" && res.Scenario == Latency {
			for _, p := range res.Latency {
				if p.Error == "" {
					lat = append(lat, p)
				}
			}
		}
	}
	if len(lat) > 0 {
		c := sim.BarChart{Title: "UDP request/response round trip at low load", YLabel: "µs"}
		ps := []sim.BarSeries{{Name: "p50"}, {Name: "p90"}, {Name: "p99"}}
		for _, p := range lat {
			label := p.Path
			if p.Poll != "" {
				// "adaptive spin=50µs" as "adaptive 50µs": the
				// scenario runs adaptive with more than one spin.
				label += " " + strings.Replace(p.Poll, "spin=", "", 1)
			}
			c.Labels = append(c.Labels, label)
			ps[0].Values = append(ps[0].Values, p.P50)
			ps[1].Values = append(ps[1].Values, p.P90)
			ps[2].Values = append(ps[2].Values, p.P99)
		}
		c.Series = ps
		charts = append(charts, c)
	}
	if len(charts) == 0 {
		return errors.New("plot: the report has no measured scenario")
	}
	return sim.WriteBarCharts(w, charts)
}

// rateChart is the sink rate of every measured rate scenario in the
// report's order (an IPv6 one beside its IPv4 one), a bar per placement;
// false when there is none.
func (r *Report) rateChart() (sim.BarChart, bool) {
	var labels, placements []string
	rate := map[[2]string]float64{}
	for _, res := range r.Results {
		if res.Error != "" || res.Scenario == Latency {
			continue
		}
		pl := res.Placement
		if pl == "" {
			pl = PlacementDefault
		}
		if !slices.Contains(labels, string(res.Scenario)) {
			labels = append(labels, string(res.Scenario))
		}
		if !slices.Contains(placements, pl) {
			placements = append(placements, pl)
		}
		rate[[2]string{string(res.Scenario), pl}] = res.Mpps
	}
	if len(labels) == 0 {
		return sim.BarChart{}, false
	}
	c := sim.BarChart{Title: "packet rate at the sink", YLabel: "Mpps", Labels: labels}
	for _, pl := range placements {
		s := sim.BarSeries{Name: pl}
		for _, l := range labels {
			v, ok := rate[[2]string{l, pl}]
			if !ok {
				v = math.NaN()
			}
			s.Values = append(s.Values, v)
		}
		c.Series = append(c.Series, s)
	}
	return c, true
}

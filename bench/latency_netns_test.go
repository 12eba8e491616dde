package bench

import (
	"strings"
	"testing"
)

// checkLatency checks the latency scenario of a report (TestRunAllScenarios
// runs it): every path must answer nearly every request with sane
// percentiles; afvs must run each poll mode (reloaded live) and report
// its idle CPU: busy keeps a CPU busy, adaptive and sleep leave it idle.
func checkLatency(t *testing.T, rep *Report) {
	t.Helper()
	var res *Result
	for i := range rep.Results {
		if rep.Results[i].Scenario == Latency {
			res = &rep.Results[i]
		}
	}
	if res == nil || res.Error != "" {
		t.Fatalf("latency result %+v", res)
	}
	want := []string{"direct"}
	for _, c := range LatencyPolls {
		want = append(want, "afvs-dr "+c.String())
	}
	want = append(want, "kernel-xdp-dr")
	if len(res.Latency) != len(want) {
		t.Fatalf("%d latency paths, want %v", len(res.Latency), want)
	}
	for i, p := range res.Latency {
		if got := strings.TrimSpace(p.Path + " " + p.Poll); got != want[i] {
			t.Errorf("path %d is %q, want %q", i, got, want[i])
		}
		if p.Error != "" {
			t.Errorf("%s %s: %s", p.Path, p.Poll, p.Error)
			continue
		}
		if p.Samples < 200 || p.Lost > p.Samples/20 {
			t.Errorf("%s %s: %d answered, %d lost", p.Path, p.Poll, p.Samples, p.Lost)
		}
		if !(0 < p.P50 && p.P50 <= p.P90 && p.P90 <= p.P99) || p.P99 > 1e6*latencyTimeout.Seconds() {
			t.Errorf("%s %s: p50 %v p90 %v p99 %v us: want 0 < p50 <= p90 <= p99 < the timeout", p.Path, p.Poll, p.P50, p.P90, p.P99)
		}
		if i == 0 {
			if p.Added50 != nil || p.IdleCPU != nil {
				t.Errorf("direct: added %v, idle cpu %v: want neither", p.Added50, p.IdleCPU)
			}
			// Its requests alternate with every other path's.
			if p.Samples < (len(want)-1)*200 {
				t.Errorf("direct: %d samples, want those of all %d other paths", p.Samples, len(want)-1)
			}
			continue
		}
		// Added is less the direct requests' percentiles of the same
		// phase, which are positive.
		if p.Added50 == nil || p.Added90 == nil || p.Added99 == nil || *p.Added50 >= p.P50 || *p.Added90 >= p.P90 || *p.Added99 >= p.P99 {
			t.Errorf("%s %s: added %v %v %v for p50 %v p90 %v p99 %v", p.Path, p.Poll, p.Added50, p.Added90, p.Added99, p.P50, p.P90, p.P99)
		}
		if p.Path == "kernel-xdp-dr" {
			if p.IdleCPU != nil || p.Poll != "" {
				t.Errorf("kernel-xdp-dr: idle cpu %v, poll %q: it has neither", p.IdleCPU, p.Poll)
			}
			continue
		}
		if p.IdleCPU == nil {
			t.Errorf("%s %s: no idle cpu", p.Path, p.Poll)
			continue
		}
		switch p.Poll {
		case "busy":
			// On a loaded machine the busy worker gets only its share
			// of a CPU, but never the nothing a sleeping one uses: at
			// least a tick of the idle window, as much as the others.
			for _, q := range res.Latency {
				if q.IdleCPU != nil && q.Poll != "busy" && *p.IdleCPU < *q.IdleCPU {
					t.Errorf("busy: idle cpu %.3f, less than %s's %.3f", *p.IdleCPU, q.Poll, *q.IdleCPU)
				}
			}
			if *p.IdleCPU <= 0 {
				t.Errorf("busy: idle cpu %.3f: a busy worker uses its CPU", *p.IdleCPU)
			}
			if p.BusyPoll == "" {
				t.Errorf("busy: no busy_poll status")
			}
		case "sleep":
			if *p.IdleCPU > 0.05 {
				t.Errorf("sleep: idle cpu %.3f: a sleeping worker uses none", *p.IdleCPU)
			}
			if p.BusyPoll != "off" {
				t.Errorf("sleep: busy_poll %q, want off", p.BusyPoll)
			}
		default:
			if *p.IdleCPU > 0.05 {
				t.Errorf("adaptive: idle cpu %.3f: an idle worker sleeps after the spin", *p.IdleCPU)
			}
		}
	}
}

package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one scenario's measurement.
type Result struct {
	Scenario Scenario `json:"scenario"`
	// Placement is PlacementDefault, or PlacementThreaded with Threaded
	// the namespace/interface pairs given threaded NAPI and GeneratorCPU
	// the CPU the generator was pinned to.
	Placement    string   `json:"placement"`
	Threaded     []string `json:"threaded_napi,omitempty"`
	GeneratorCPU *int     `json:"generator_cpu,omitempty"`
	// Sent is frames the generator's kernel completed.
	Sent uint64 `json:"sent"`
	// Received is frames the drop sink counted during the run.
	Received uint64 `json:"received"`
	// Seconds is how long the generator sent.
	Seconds float64 `json:"seconds"`
	// SentMpps and Mpps are Sent and Received per second, in millions.
	SentMpps float64 `json:"sent_mpps"`
	Mpps     float64 `json:"mpps"`
	// VsOffered and VsBaseline are Mpps over the offered-load and the
	// baseline forwarder's Mpps of the same run; nil when that scenario
	// was not run or failed.
	VsOffered  *float64 `json:"vs_offered,omitempty"`
	VsBaseline *float64 `json:"vs_baseline,omitempty"`
	// Rounds is how many times the scenario ran; the numbers above are
	// from the round with the median Mpps, and MppsMin and MppsMax
	// bound all rounds.
	Rounds  int     `json:"rounds"`
	MppsMin float64 `json:"mpps_min"`
	MppsMax float64 `json:"mpps_max"`
	// ForwarderRX and ForwarderTX are the forwarder's own counters
	// (the baseline's, or afvs's from its control API); zero for offered.
	ForwarderRX uint64 `json:"forwarder_rx,omitempty"`
	ForwarderTX uint64 `json:"forwarder_tx,omitempty"`
	// Drops are afvs's drop counters by reason over the measured run: why
	// its RX and TX differ.
	Drops map[string]uint64 `json:"drops,omitempty"`
	// Loss is where the frames the forwarder did not receive went, by
	// the kernel's and the forwarder's counters over the run; nil for
	// offered.
	Loss *Loss `json:"loss,omitempty"`
	// SinkBytes is the bytes the sink counted; over Received it shows
	// the frame size that arrived (60, or 80 with an IPIP header).
	SinkBytes uint64 `json:"sink_bytes"`
	// WorkerRX is what each of afvs's workers received during the run,
	// when it has more than one; VsDR is Mpps over the dr scenario's of
	// the same run, for dr-2q (the rate of two queues and two workers as
	// a ratio to one), nat and nat-reply.
	WorkerRX []uint64 `json:"worker_rx,omitempty"`
	VsDR     *float64 `json:"vs_dr,omitempty"`
	// VsIPv4 is an IPv6 scenario's rate over its IPv4 scenario's of the
	// same placement (dr6 over dr): the median of the ratios of each
	// round, both measured in it, which VsIPv4Rounds lists in round
	// order. Its inverse is what an IPv6 frame costs the path as a ratio
	// to an IPv4 one. Nil when the IPv4 scenario was not run or either
	// failed.
	VsIPv4       *float64  `json:"vs_ipv4,omitempty"`
	VsIPv4Rounds []float64 `json:"vs_ipv4_rounds,omitempty"`
	// FlowsOpen is the connections the forwarder (afvs, or the kernel XDP
	// load balancer) had opened when the measured run began: after the
	// warm-up that sends every flow a frame, Flows unless frames were
	// lost. Inserted is those it opened during the run, and
	// NewConnsPerSec that over Seconds: in the new-flows scenario, every
	// frame forwarded.
	FlowsOpen      uint64  `json:"flows_open,omitempty"`
	Inserted       uint64  `json:"conns_inserted,omitempty"`
	NewConnsPerSec float64 `json:"new_conns_per_sec,omitempty"`
	// FwdUserNs and FwdSysNs are the CPU time the forwarder's polling
	// threads (the baseline's loop, afvs's workers) used during the run
	// per frame they sent, in ns: user time is the forwarder's own work,
	// system time the kernel's (its transmit path, and the sink's
	// receive processing, which runs in the softirq the transmit raises).
	// FwdBusy is the threads' run time (the scheduler's count, exact where
	// user and system time come in 10 ms ticks) over the run's length:
	// near 1 when the forwarder's CPU is the limit and the forwarder had
	// it to itself. On a loaded machine these move much less than the
	// rates do, since the forwarder pays for a frame the same whoever
	// else runs.
	// BusyPoll is the busy-poll options in force on the forwarder's
	// receiving socket (xsk.BusyPoll's form: "prefer,usecs=20,budget=64"
	// or "off"): the baseline's and afvs's are the same in a fair run.
	BusyPoll  string  `json:"busy_poll,omitempty"`
	FwdUserNs float64 `json:"fwd_user_ns_per_frame,omitempty"`
	FwdSysNs  float64 `json:"fwd_sys_ns_per_frame,omitempty"`
	FwdBusy   float64 `json:"fwd_cpu_busy,omitempty"`
	// FwdWaited is the time the forwarder's threads were ready to run
	// but waited for a CPU, over the run's length: above a few percent,
	// the rate says more about the machine's other load than about the
	// forwarder.
	FwdWaited float64 `json:"fwd_cpu_waited,omitempty"`
	// FramesPerBatch is the forwarder's mean batch: frames received over
	// its socket's receives that returned frames. A forwarder that keeps
	// up takes what arrived since its last turn, fewer than the 64 it
	// asks for, and spreads its per-batch work over fewer frames.
	FramesPerBatch float64 `json:"frames_per_batch,omitempty"`
	// VsBaselineRounds is Mpps over the baseline's of the same placement
	// in each round, in round order, and VsBaselinePaired their median:
	// a ratio in which both sides met the same load.
	VsBaselinePaired *float64  `json:"vs_baseline_paired,omitempty"`
	VsBaselineRounds []float64 `json:"vs_baseline_rounds,omitempty"`
	// Latency is the latency scenario's paths; the rate fields are then
	// zero.
	Latency []LatencyPath `json:"latency,omitempty"`
	// Error says why the scenario failed; its numbers are then zero.
	Error string `json:"error,omitempty"`
}

// Report is one run of the harness.
type Report struct {
	Duration time.Duration `json:"-"`
	// DurationSeconds is the per-scenario duration asked for.
	DurationSeconds float64 `json:"duration_seconds"`
	Flows           int     `json:"flows"`
	// FrameLen is without FCS: 60 is the 64-byte minimum frame.
	// FrameLen6 is the IPv6 scenarios' frame, when the run has any: the
	// shortest UDP frame over IPv6.
	FrameLen  int `json:"frame_len"`
	FrameLen6 int `json:"frame_len6,omitempty"`
	CPUs      int `json:"cpus"`
	// Rounds is how many times each scenario ran, interleaved.
	Rounds int `json:"rounds"`
	// LoadAvg is /proc/loadavg before the run, to judge how busy the
	// machine was.
	LoadAvg [3]float64 `json:"loadavg"`
	Results []Result   `json:"results"`
}

// Failed reports whether any scenario failed.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.Error != "" {
			return true
		}
		for _, p := range res.Latency {
			if p.Error != "" {
				return true
			}
		}
	}
	return false
}

// computeRatios sets every result's ratios from the offered and baseline
// results of the same report.
func (r *Report) computeRatios() {
	ref := func(s Scenario, placement string) float64 {
		for _, res := range r.Results {
			if res.Scenario == s && res.Placement == placement && res.Error == "" {
				return res.Mpps
			}
		}
		return 0
	}
	for i := range r.Results {
		res := &r.Results[i]
		offered, base, dr := ref(Offered, res.Placement), ref(Baseline, res.Placement), ref(DR, res.Placement)
		if res.Scenario.IPv6() {
			// IPv6 frames against the IPv6 offered load and baseline.
			offered, base = ref(Offered6, res.Placement), ref(Baseline6, res.Placement)
		}
		res.VsOffered, res.VsBaseline, res.VsDR = nil, nil, nil
		if (res.Scenario == DR2Q || res.Scenario == NAT || res.Scenario == NATReply) && res.Error == "" && dr > 0 {
			v := res.Mpps / dr
			res.VsDR = &v
		}
		if res.Error != "" || res.Scenario == Latency {
			continue
		}
		if offered > 0 {
			v := res.Mpps / offered
			res.VsOffered = &v
		}
		if base > 0 {
			v := res.Mpps / base
			res.VsBaseline = &v
		}
	}
}

// pairedRatio is the median over rounds of v6's rate over v4's in the
// same round (the lower middle one for an even count), with the ratios in
// round order; nil if either failed in any round or v4 counted nothing.
func pairedRatio(v6, v4 []Result) (*float64, []float64) {
	if len(v6) == 0 || len(v6) != len(v4) {
		return nil, nil
	}
	var rs []float64
	for i := range v6 {
		if v6[i].Error != "" || v4[i].Error != "" || v4[i].Mpps <= 0 {
			return nil, nil
		}
		rs = append(rs, v6[i].Mpps/v4[i].Mpps)
	}
	sorted := slices.Clone(rs)
	slices.Sort(sorted)
	m := sorted[(len(sorted)-1)/2]
	return &m, rs
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

// WriteTable writes the report as an aligned table, failed scenarios with
// their error.
func (r *Report) WriteTable(w io.Writer) error {
	rounds := ""
	if r.Rounds > 1 {
		rounds = fmt.Sprintf(", median of %d interleaved rounds", r.Rounds)
	}
	frames := fmt.Sprintf("%d-byte UDP frames (%d with FCS)", r.FrameLen, r.FrameLen+4)
	if r.FrameLen6 > 0 {
		frames += fmt.Sprintf(", %d over IPv6 (%d)", r.FrameLen6, r.FrameLen6+4)
	}
	fmt.Fprintf(w, "afvs-lab bench: %s, %d flows, %s per scenario%s, %d CPUs, load %.2f %.2f %.2f\n",
		frames, r.Flows, r.Duration, rounds, r.CPUs, r.LoadAvg[0], r.LoadAvg[1], r.LoadAvg[2])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tsent\treceived\tsent Mpps\tsink Mpps\tmin-max\tvs offered\tvs baseline\tfwd rx\tfwd tx\tflows open\tnew conn/s\tfwd user ns\tfwd sys ns\tfwd cpu\tfwd waited\t\n")
	var errs []Result
	var lat []LatencyPath
	for _, res := range r.Results {
		if res.Scenario == Latency && res.Error == "" {
			lat = res.Latency
			continue
		}
		if res.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", res.name())
			errs = append(errs, res)
			continue
		}
		spread := "-"
		if res.Rounds > 1 {
			spread = fmt.Sprintf("%.3f-%.3f", res.MppsMin, res.MppsMax)
		}
		open, conns := "-", "-"
		if res.FlowsOpen > 0 || res.Inserted > 0 {
			open, conns = fmt.Sprint(res.FlowsOpen), fmt.Sprintf("%.0f", res.NewConnsPerSec)
		}
		user, sys, busy, waited := "-", "-", "-", "-"
		if res.FwdBusy > 0 {
			user, sys = fmt.Sprintf("%.0f", res.FwdUserNs), fmt.Sprintf("%.0f", res.FwdSysNs)
			busy, waited = fmt.Sprintf("%.0f%%", 100*res.FwdBusy), fmt.Sprintf("%.0f%%", 100*res.FwdWaited)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", res.name(), res.Sent, res.Received, res.SentMpps, res.Mpps, spread,
			ratio(res.VsOffered), ratio(res.VsBaseline), count(res.ForwarderRX, res.Scenario), count(res.ForwarderTX, res.Scenario), open, conns, user, sys, busy, waited)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report table: %w", err)
	}
	lossHeader := false
	for _, res := range r.Results {
		if res.Error == "" && res.Loss != nil {
			if !lossHeader {
				fmt.Fprintln(w, lossLegend)
				lossHeader = true
			}
			fmt.Fprintln(w, lossLine(res))
		}
	}
	if err := r.writeVsBaseline(w); err != nil {
		return err
	}
	for _, res := range r.Results {
		switch {
		case res.VsDR == nil:
		case res.Scenario == DR2Q:
			fmt.Fprintf(w, "%s: two queues, two workers (received %v): %.2f× dr\n", res.name(), res.WorkerRX, *res.VsDR)
		case res.Scenario == NAT:
			fmt.Fprintf(w, "%s: VS/NAT client -> real server: %.2f× dr\n", res.name(), *res.VsDR)
		case res.Scenario == NATReply:
			fmt.Fprintf(w, "%s: VS/NAT real server -> client: %.2f× dr\n", res.name(), *res.VsDR)
		}
	}
	for _, res := range r.Results {
		if res.VsIPv4 != nil {
			peer := Result{Scenario: res.Scenario.IPv4Peer(), Placement: res.Placement}
			fmt.Fprintf(w, "%s: IPv6, %.2f× %s (median of %s), so an IPv6 frame costs this path %.2f× an IPv4 one\n",
				res.name(), *res.VsIPv4, peer.name(), roundRatios(res.VsIPv4Rounds), 1 / *res.VsIPv4)
		}
	}
	if len(lat) > 0 {
		if err := writeLatency(w, lat); err != nil {
			return err
		}
	}
	for _, res := range r.Results {
		if res.Placement == PlacementThreaded && res.Error == "" {
			fmt.Fprintf(w, "@threaded: threaded NAPI on %v, generator on cpu %d\n", res.Threaded, *res.GeneratorCPU)
			break
		}
	}
	for _, res := range errs {
		fmt.Fprintf(w, "%s failed: %s\n", res.name(), res.Error)
	}
	return nil
}

// writeVsBaseline writes, for each forwarder with a baseline in the run,
// its rate over the baseline's paired round by round, and where both have
// CPU figures, what a frame cost each forwarder's threads: the difference
// in user time is the forwarder's own work beyond the baseline's copy and
// MAC rewrite, the difference in system time the kernel's.
func (r *Report) writeVsBaseline(w io.Writer) error {
	for _, res := range r.Results {
		if res.VsBaselinePaired == nil {
			continue
		}
		fmt.Fprintf(w, "%s: %.2f× %s paired (median of %s)", res.name(), *res.VsBaselinePaired, Result{Scenario: res.Scenario.baseline(), Placement: res.Placement}.name(), roundRatios(res.VsBaselineRounds))
		i := slices.IndexFunc(r.Results, func(b Result) bool {
			return b.Scenario == res.Scenario.baseline() && b.Placement == res.Placement && b.Error == ""
		})
		if i >= 0 && res.FwdBusy > 0 && r.Results[i].FwdBusy > 0 {
			b := r.Results[i]
			fmt.Fprintf(w, "; ns of forwarder CPU a frame: user %.0f against %.0f (%+.0f), system %.0f against %.0f (%+.0f)",
				res.FwdUserNs, b.FwdUserNs, res.FwdUserNs-b.FwdUserNs, res.FwdSysNs, b.FwdSysNs, res.FwdSysNs-b.FwdSysNs)
		}
		if i >= 0 && res.FramesPerBatch > 0 && r.Results[i].FramesPerBatch > 0 {
			fmt.Fprintf(w, "; frames a batch %.1f against %.1f", res.FramesPerBatch, r.Results[i].FramesPerBatch)
		}
		if i >= 0 && res.BusyPoll != "" {
			if b := r.Results[i].BusyPoll; b == res.BusyPoll {
				fmt.Fprintf(w, "; busy poll %s on both", b)
			} else {
				fmt.Fprintf(w, "; busy poll %s against %s", res.BusyPoll, dash(b))
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}

// roundRatios names the per-round ratios behind a median.
func roundRatios(rs []float64) string {
	if len(rs) == 1 {
		return "one round"
	}
	var b strings.Builder
	for i, v := range rs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.2f", v)
	}
	return "rounds " + b.String()
}

func ratio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v)
}

func count(v uint64, s Scenario) string {
	if s.base() == Offered {
		return "-"
	}
	return fmt.Sprint(v)
}

// writeLatency writes the latency scenario's paths as a table.
func writeLatency(w io.Writer, paths []LatencyPath) error {
	fmt.Fprintf(w, "latency: UDP request/response, one at a time, %s apart; round trips in us; added = less the direct-path requests sent alternately with the path's\n", LatencyGap)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "path\tpoll\tbusy poll\tsamples\tlost\tp50\tp90\tp99\tadded p50\tadded p90\tadded p99\tidle cpu\t\n")
	var errs []LatencyPath
	for _, p := range paths {
		poll, bp := dash(p.Poll), dash(p.BusyPoll)
		if p.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", p.Path, poll, bp)
			errs = append(errs, p)
			continue
		}
		idle := "-"
		if p.IdleCPU != nil {
			idle = fmt.Sprintf("%.1f%%", 100**p.IdleCPU)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t\n", p.Path, poll, bp, p.Samples, p.Lost,
			p.P50, p.P90, p.P99, us(p.Added50), us(p.Added90), us(p.Added99), idle)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write latency table: %w", err)
	}
	for _, p := range errs {
		fmt.Fprintf(w, "latency %s %s failed: %s\n", p.Path, p.Poll, p.Error)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func us(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

// name is the scenario's name in the table: with "@threaded" for that
// placement.
func (r Result) name() string {
	if r.Placement == PlacementThreaded {
		return string(r.Scenario) + "@" + PlacementThreaded
	}
	return string(r.Scenario)
}

package bench

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func sampleReport() *Report {
	r := &Report{Duration: 3 * time.Second, DurationSeconds: 3, Flows: 1024, FrameLen: 60, CPUs: 2, LoadAvg: [3]float64{1.5, 1, 0.5},
		Results: []Result{
			{Scenario: Offered, Sent: 6_000_000, Received: 6_000_000, Seconds: 3, SentMpps: 2, Mpps: 2, SinkBytes: 360_000_000},
			{Scenario: Baseline, Sent: 3_000_000, Received: 2_400_000, Seconds: 3, SentMpps: 1, Mpps: 0.8, ForwarderRX: 2_500_000, ForwarderTX: 2_400_000},
			{Scenario: DR, Sent: 3_000_000, Received: 1_200_000, Seconds: 3, SentMpps: 1, Mpps: 0.4, ForwarderRX: 1_300_000, ForwarderTX: 1_200_000, FlowsOpen: 1024,
				FwdUserNs: 251.4, FwdSysNs: 430, FwdBusy: 0.97, FwdWaited: 0.034},
			{Scenario: TUN, Error: "afvs exited during start-up: boom"},
		}}
	r.computeRatios()
	return r
}

func TestComputeRatios(t *testing.T) {
	r := sampleReport()
	want := map[Scenario][2]float64{Offered: {1, 2.5}, Baseline: {0.4, 1}, DR: {0.2, 0.5}}
	for _, res := range r.Results {
		w, ok := want[res.Scenario]
		if !ok {
			if res.VsOffered != nil || res.VsBaseline != nil {
				t.Errorf("%s failed but has ratios %v %v", res.Scenario, res.VsOffered, res.VsBaseline)
			}
			continue
		}
		if res.VsOffered == nil || res.VsBaseline == nil {
			t.Fatalf("%s: missing ratio", res.Scenario)
		}
		if math.Abs(*res.VsOffered-w[0]) > 1e-12 || math.Abs(*res.VsBaseline-w[1]) > 1e-12 {
			t.Errorf("%s: ratios %.3f %.3f, want %.3f %.3f", res.Scenario, *res.VsOffered, *res.VsBaseline, w[0], w[1])
		}
	}
	// Without a baseline in the run there is nothing to divide by.
	r.Results[1].Error = "failed"
	r.computeRatios()
	for _, res := range r.Results {
		if res.VsBaseline != nil {
			t.Errorf("%s: vs baseline %v with no baseline in the run", res.Scenario, *res.VsBaseline)
		}
	}
	if !r.Failed() {
		t.Error("Failed() = false with failed scenarios")
	}
}

// TestNATRatios: nat and nat-reply get their rate over dr's of the same
// run, printed under the table; without dr in the run they get none.
func TestNATRatios(t *testing.T) {
	r := sampleReport()
	r.Results = append(r.Results, Result{Scenario: NAT, Sent: 3_000_000, Received: 900_000, Seconds: 3, Mpps: 0.3},
		Result{Scenario: NATReply, Sent: 3_000_000, Received: 600_000, Seconds: 3, Mpps: 0.2})
	r.computeRatios()
	for i, want := range map[int]float64{4: 0.75, 5: 0.5} {
		if v := r.Results[i].VsDR; v == nil || math.Abs(*v-want) > 1e-12 {
			t.Errorf("%s: vs dr %v, want %v", r.Results[i].Scenario, v, want)
		}
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"nat: VS/NAT client -> real server: 0.75× dr", "nat-reply: VS/NAT real server -> client: 0.50× dr"} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, b.String())
		}
	}
	r.Results[2].Error = "failed"
	r.computeRatios()
	if r.Results[4].VsDR != nil || r.Results[5].VsDR != nil {
		t.Error("nat ratios without a dr result")
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("got %d lines, want title, header, 4 rows and 1 error line", len(lines))
	}
	for _, want := range []string{"60-byte UDP frames (64 with FCS)", "1024 flows", "3s per scenario", "2 CPUs", "load 1.50 1.00 0.50"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("title %q lacks %q", lines[0], want)
		}
	}
	rows := map[string][]string{}
	for _, l := range lines[2:6] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	check := func(s string, want ...string) {
		t.Helper()
		got := rows[s]
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %s = %q, want %q", s, got, want)
		}
	}
	check("offered", "offered", "6000000", "6000000", "2.000", "2.000", "-", "1.00", "2.50", "-", "-", "-", "-", "-", "-", "-", "-")
	check("baseline", "baseline", "3000000", "2400000", "1.000", "0.800", "-", "0.40", "1.00", "2500000", "2400000", "-", "-", "-", "-", "-", "-")
	check("dr", "dr", "3000000", "1200000", "1.000", "0.400", "-", "0.20", "0.50", "1300000", "1200000", "1024", "0", "251", "430", "97%", "3%")
	check("tun", "tun", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-")
	if lines[6] != "tun failed: afvs exited during start-up: boom" {
		t.Errorf("error line %q", lines[6])
	}
}

func TestWriteTableRounds(t *testing.T) {
	r := sampleReport()
	r.Rounds = 3
	r.Results[2].Rounds, r.Results[2].MppsMin, r.Results[2].MppsMax = 3, 0.35, 0.5
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "per scenario, median of 3 interleaved rounds,") {
		t.Errorf("title lacks the rounds:\n%s", out)
	}
	if !strings.Contains(out, " 0.400  0.350-0.500  ") {
		t.Errorf("dr row lacks its spread:\n%s", out)
	}
}

func TestMedianResult(t *testing.T) {
	rs := []Result{{Scenario: DR, Mpps: 0.5, Sent: 5}, {Scenario: DR, Mpps: 0.3, Sent: 3}, {Scenario: DR, Mpps: 0.9, Sent: 9}, {Scenario: DR, Mpps: 0.4, Sent: 4}}
	m := medianResult(rs)
	// Sorted 0.3 0.4 0.5 0.9: the lower middle is 0.4, and its own counts
	// come with it.
	if m.Mpps != 0.4 || m.Sent != 4 || m.Rounds != 4 || m.MppsMin != 0.3 || m.MppsMax != 0.9 {
		t.Errorf("median %+v", m)
	}
	if m := medianResult(rs[:3]); m.Mpps != 0.5 || m.Sent != 5 {
		t.Errorf("median of three %+v, want the 0.5 round", m)
	}
	// The forwarder's CPU figures are each their own median, whichever
	// round they come from.
	for i, v := range []float64{300, 100, 200, 400} {
		rs[i].FwdUserNs, rs[i].FwdSysNs, rs[i].FwdBusy, rs[i].FwdWaited = v, 1000-v, v/1000, 1-v/1000
	}
	if m := medianResult(rs); m.FwdUserNs != 200 || m.FwdSysNs != 700 || m.FwdBusy != 0.2 || m.FwdWaited != 0.7 {
		t.Errorf("cpu medians user %v sys %v busy %v waited %v, want 200 700 0.2 0.7", m.FwdUserNs, m.FwdSysNs, m.FwdBusy, m.FwdWaited)
	}
	rs[2] = Result{Scenario: DR, Error: "boom"}
	if m := medianResult(rs); m.Error != "round 3: boom" || m.Mpps != 0 {
		t.Errorf("a failed round must fail the scenario: %+v", m)
	}
	if m := medianResult([]Result{{Scenario: TUN, Error: "boom"}}); m.Error != "boom" {
		t.Errorf("single failed round: %+v", m)
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Duration float64    `json:"duration_seconds"`
		Flows    int        `json:"flows"`
		FrameLen int        `json:"frame_len"`
		LoadAvg  [3]float64 `json:"loadavg"`
		Results  []map[string]any
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got.Duration != 3 || got.Flows != 1024 || got.FrameLen != 60 || got.LoadAvg[0] != 1.5 || len(got.Results) != 4 {
		t.Fatalf("header fields wrong: %+v", got)
	}
	dr := got.Results[2]
	if dr["scenario"] != "dr" || dr["mpps"] != 0.4 || dr["sent"] != 3e6 || dr["received"] != 1.2e6 || dr["forwarder_tx"] != 1.2e6 {
		t.Errorf("dr result %v", dr)
	}
	if v, ok := dr["vs_offered"].(float64); !ok || math.Abs(v-0.2) > 1e-12 {
		t.Errorf("dr vs_offered %v", dr["vs_offered"])
	}
	tun := got.Results[3]
	if tun["error"] != "afvs exited during start-up: boom" {
		t.Errorf("tun error %v", tun["error"])
	}
	if _, ok := tun["vs_offered"]; ok {
		t.Errorf("failed tun has a ratio: %v", tun)
	}
}

func TestParseScenarios(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		err  string
	}{
		{"", "offered offered6 baseline baseline6 dr dr6 tun tun6 nat nat-reply dr-2q kernel-xdp-dr kernel-xdp-tun new-flows latency", ""},
		{"all", "offered offered6 baseline baseline6 dr dr6 tun tun6 nat nat-reply dr-2q kernel-xdp-dr kernel-xdp-tun new-flows latency", ""},
		{"dr6,tun6", "dr6 tun6", ""},
		{"dr, offered", "dr offered", ""},
		{"latency,kernel-xdp-tun", "latency kernel-xdp-tun", ""},
		{"tun", "tun", ""},
		{"nat,dr,nat-reply", "nat dr nat-reply", ""},
		{"dr,fast", "", `scenario "fast": must be one of offered, offered6, baseline, baseline6, dr, dr6, tun, tun6, nat, nat-reply, dr-2q, kernel-xdp-dr, kernel-xdp-tun, new-flows, latency`},
		{"dr,dr", "", `scenario "dr": listed twice`},
		{"dr,", "", `scenario "": must be one of`},
	} {
		got, err := ParseScenarios(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		var s []string
		for _, sc := range got {
			s = append(s, string(sc))
		}
		if err != nil || strings.Join(s, " ") != c.want {
			t.Errorf("%q = %v, %v; want %s", c.in, s, err, c.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := Options{Duration: time.Second, Flows: 10, Scenarios: AllScenarios, AFVS: "/bin/afvs"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Duration = 10 * time.Millisecond }, "duration 10ms: must be from 100ms"},
		{func(o *Options) { o.Duration = time.Hour }, "duration 1h0m0s"},
		{func(o *Options) { o.Flows = 0 }, "flows 0: must be from 1 to 16777216"},
		{func(o *Options) { o.Flows = 1<<24 + 1 }, "flows 16777217"},
		{func(o *Options) { o.Scenarios = []Scenario{"fast"} }, `scenario "fast"`},
		{func(o *Options) { o.Scenarios = []Scenario{DR, DR} }, `scenario "dr": listed twice`},
		{func(o *Options) { o.AFVS = "" }, "scenario dr: needs the afvs binary"},
		{func(o *Options) { o.Rounds = -1 }, "rounds -1: must be from 0"},
		{func(o *Options) { o.Rounds = 101 }, "rounds 101"},
	} {
		o := ok
		c.mod(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
	o := ok
	o.AFVS, o.Scenarios = "", []Scenario{Offered, Baseline}
	if err := o.Validate(); err != nil {
		t.Errorf("offered and baseline need no afvs binary: %v", err)
	}
	if _, err := Run(Options{Duration: time.Second, Flows: -1}); err == nil || !strings.Contains(err.Error(), "flows -1") {
		t.Errorf("Run with bad options: %v", err)
	}
}

// TestDirectorConfigAccepted checks the configs the dr and tun scenarios
// write against afvs's own validation, without root.
func TestDirectorConfigAccepted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds afvs")
	}
	afvs := buildAFVS(t)
	for _, tc := range []struct {
		mode, poll string
		v6         bool
	}{{"dr", "", false}, {"tun", "", false}, {"nat", "", false}, {"dr", "", true}, {"tun", "", true},
		{"dr", pollYAML(LatencyPolls[0]), false}, {"dr", pollYAML(LatencyPolls[1]), false}, {"dr", pollYAML(LatencyPolls[2]), false}} {
		mode := tc.mode
		path := filepath.Join(t.TempDir(), "afvs.yaml")
		cfg := directorConfig(mode, "/tmp/afvs-bench-test.sock", 40000, tc.poll)
		if tc.v6 {
			cfg = directorConfigAddrs(mode, "/tmp/afvs-bench-test.sock", 40000, tc.poll, VIP6, SinkAddr6)
			if !strings.Contains(cfg, `address: "2001:2:0:100::1"`) || !strings.Contains(cfg, `{address: "2001:2:0:1::2", weight: 1}`) {
				t.Errorf("%s IPv6 config lacks the IPv6 VIP or real server:\n%s", mode, cfg)
			}
		}
		if !strings.Contains(cfg, "capacity: 131072") || !strings.Contains(cfg, "forward: "+mode) || !strings.Contains(cfg, tc.poll) {
			t.Errorf("%s config:\n%s", mode, cfg)
		}
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(afvs, "check", "--config", path).CombinedOutput(); err != nil {
			t.Errorf("afvs check rejects the %s config: %v\n%s\n%s", mode, err, out, cfg)
		}
	}
}

// TestWriteLatency: the latency scenario prints as its own table, with
// added latency and idle CPU where they apply, gets no rate ratios, and a
// failed path fails the report.
func TestWriteLatency(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	r := &Report{Duration: time.Second, Flows: 16, FrameLen: 60, CPUs: 2, Results: []Result{
		{Scenario: Offered, Sent: 100, Received: 100, Seconds: 1, Mpps: 1e-4},
		{Scenario: Latency, Latency: []LatencyPath{
			{Path: "direct", Samples: 1000, P50: 25, P90: 40, P99: 76},
			{Path: "afvs-dr", Poll: "busy", BusyPoll: "prefer,usecs=20,budget=64", Samples: 999, Lost: 1, P50: 30.5, P90: 50, P99: 90,
				Added50: f(5.5), Added90: f(10), Added99: f(14), IdleCPU: f(0.987)},
		}},
	}}
	r.computeRatios()
	if r.Results[1].VsOffered != nil {
		t.Errorf("latency got a rate ratio %v", *r.Results[1].VsOffered)
	}
	if r.Failed() {
		t.Error("Failed() with every path measured")
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{"latency: UDP request/response", "added p50", "idle cpu",
		"afvs-dr  busy  prefer,usecs=20,budget=64  999  1  30.5  50.0  90.0  5.5  10.0  14.0  98.7%",
		"direct  -  -  1000  0  25.0  40.0  76.0  -  -  -  -"} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(out, "\n   latency ") {
		t.Errorf("the latency scenario appears as a rate row")
	}
	r.Results[1].Latency[1].Error = "afvs did not answer"
	if !r.Failed() {
		t.Error("Failed() = false with a failed latency path")
	}
	b.Reset()
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "latency afvs-dr busy failed: afvs did not answer") {
		t.Errorf("failed path not explained:\n%s", b.String())
	}
}

// TestWritePlot draws a report with rates in two placements and latency
// paths, and refuses one with nothing measured.
func TestWritePlot(t *testing.T) {
	r := sampleReport()
	thr := r.Results[2]
	thr.Placement = PlacementThreaded
	r.Results = append(r.Results, thr, Result{Scenario: Latency, Latency: []LatencyPath{
		{Path: "direct", P50: 25, P90: 40, P99: 76},
		{Path: "afvs-dr", Poll: "adaptive spin=50µs", P50: 30, P90: 50, P99: 90},
		{Path: "kernel-xdp-dr", Error: "failed"},
	}})
	var b bytes.Buffer
	if err := r.WritePlot(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if img.Bounds().Dy() < img.Bounds().Dx()/2 {
		t.Errorf("image %v: want two panels one above the other", img.Bounds())
	}
	bad := &Report{Results: []Result{{Scenario: DR, Error: "boom"}}}
	if err := bad.WritePlot(&b); err == nil || !strings.Contains(err.Error(), "no measured scenario") {
		t.Errorf("plot of a failed report: %v", err)
	}
}

// TestIPv6Ratios: an IPv6 scenario is measured against the IPv6 offered
// load and baseline, and against its IPv4 scenario round by round
// (pairedRatio): the median of the rounds' ratios, printed under the
// table with the cost ratio it implies.
func TestIPv6Ratios(t *testing.T) {
	r := sampleReport()
	r.FrameLen6 = MinFrameLen6
	r.Results = append(r.Results,
		Result{Scenario: Offered6, Mpps: 1.6},
		Result{Scenario: Baseline6, Mpps: 0.64},
		Result{Scenario: DR6, Mpps: 0.32})
	r.computeRatios()
	dr6 := &r.Results[6]
	if dr6.VsOffered == nil || math.Abs(*dr6.VsOffered-0.2) > 1e-12 || dr6.VsBaseline == nil || math.Abs(*dr6.VsBaseline-0.5) > 1e-12 {
		t.Fatalf("dr6: vs offered %v, vs baseline %v: want 0.2 and 0.5 (against offered6 and baseline6)", dr6.VsOffered, dr6.VsBaseline)
	}
	if r.Results[2].VsBaseline == nil || *r.Results[2].VsBaseline != 0.5 {
		t.Errorf("dr: vs baseline %v: want 0.5 (against the IPv4 baseline)", r.Results[2].VsBaseline)
	}
	rounds := func(mpps ...float64) []Result {
		var rs []Result
		for _, m := range mpps {
			rs = append(rs, Result{Mpps: m})
		}
		return rs
	}
	// The rounds' own ratios, not the ratio of the medians: dr6's median
	// round (0.40) over dr's (0.50) would say 0.80.
	v, rs := pairedRatio(rounds(0.45, 0.40, 0.20), rounds(0.50, 0.40, 0.50))
	if v == nil || math.Abs(*v-0.9) > 1e-12 || len(rs) != 3 || math.Abs(rs[2]-0.4) > 1e-12 {
		t.Fatalf("pairedRatio = %v %v, want 0.9 [0.9 1 0.4]", v, rs)
	}
	dr6.VsIPv4, dr6.VsIPv4Rounds = v, rs
	if v, _ := pairedRatio(rounds(0.4, 0.4), rounds(0.5, 0)); v != nil {
		t.Errorf("pairedRatio with an IPv4 round that counted nothing = %v, want nil", *v)
	}
	failed := rounds(0.5, 0.5)
	failed[1].Error = "boom"
	if v, _ := pairedRatio(rounds(0.4, 0.4), failed); v != nil {
		t.Errorf("pairedRatio with a failed round = %v, want nil", *v)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"60-byte UDP frames (64 with FCS), 62 over IPv6 (66),",
		"dr6: IPv6, 0.90× dr (median of rounds 0.90 1.00 0.40), so an IPv6 frame costs this path 1.11× an IPv4 one"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Count(b.String(), "× an IPv4 one") != 1 {
		t.Errorf("want one IPv4 comparison (dr6's; offered6 and baseline6 have none here):\n%s", b.String())
	}
}

// TestPlotIPv6: the chart's rate panel has a bar for every IPv6 scenario,
// beside its IPv4 one, and none for a failed one.
func TestPlotIPv6(t *testing.T) {
	r := sampleReport()
	r.Results = []Result{r.Results[0], {Scenario: Offered6, Mpps: 1.9}, r.Results[2], {Scenario: DR6, Mpps: 0.38},
		r.Results[3], {Scenario: TUN6, Error: "boom"}}
	c, ok := r.rateChart()
	if !ok {
		t.Fatal("no rate chart")
	}
	if got := strings.Join(c.Labels, " "); got != "offered offered6 dr dr6" {
		t.Errorf("labels %q, want offered offered6 dr dr6", got)
	}
	if len(c.Series) != 1 || len(c.Series[0].Values) != 4 || c.Series[0].Values[3] != 0.38 {
		t.Errorf("series %+v, want one with dr6's 0.38 last", c.Series)
	}
	var b bytes.Buffer
	if err := r.WritePlot(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&b); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
}

// TestVsBaselinePaired: each forwarder's rate over the baseline's of the
// same round, the median of those, and the CPU a frame cost each, are
// printed under the table; a scenario without a baseline in the run gets
// no line.
func TestVsBaselinePaired(t *testing.T) {
	r := sampleReport()
	base := []Result{{Scenario: Baseline, Mpps: 1.0}, {Scenario: Baseline, Mpps: 0.5}, {Scenario: Baseline, Mpps: 0.8}}
	dr := []Result{{Scenario: DR, Mpps: 0.8}, {Scenario: DR, Mpps: 0.45}, {Scenario: DR, Mpps: 0.4}}
	v, rounds := pairedRatio(dr, base)
	if v == nil || math.Abs(*v-0.8) > 1e-12 || len(rounds) != 3 || math.Abs(rounds[1]-0.9) > 1e-12 {
		t.Fatalf("paired %v rounds %v, want median 0.8 of 0.8 0.9 0.5", v, rounds)
	}
	r.Results[1].FwdUserNs, r.Results[1].FwdSysNs, r.Results[1].FwdBusy = 90, 440, 0.95
	r.Results[1].BusyPoll, r.Results[2].BusyPoll = "off", "prefer,usecs=20,budget=64"
	r.Results[2].VsBaselinePaired, r.Results[2].VsBaselineRounds = v, rounds
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := "dr: 0.80× baseline paired (median of rounds 0.80 0.90 0.50); ns of forwarder CPU a frame: user 251 against 90 (+161), system 430 against 440 (-10); busy poll prefer,usecs=20,budget=64 against off\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
	r.Results[1].BusyPoll = r.Results[2].BusyPoll
	b.Reset()
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if want := "(-10); busy poll prefer,usecs=20,budget=64 on both\n"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
	// Mean batches, when both forwarders report them.
	r.Results[1].FramesPerBatch, r.Results[2].FramesPerBatch = 60.74, 29.2
	b.Reset()
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if want := "(-10); frames a batch 29.2 against 60.7; busy poll"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
	for s, want := range map[Scenario]Scenario{DR: Baseline, NAT: Baseline, DR6: Baseline6, TUN6: Baseline6, Baseline: "", Offered: "", Offered6: "", Latency: ""} {
		if got := s.baseline(); got != want {
			t.Errorf("%s pairs with %q, want %q", s, got, want)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis: fields count from
	// after the last ')'.
	line := "4242 (afvs (w) x) R 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 1 0 100 0 0\n"
	c, err := parseStatCPU("stat", []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if c.User != 2500*time.Millisecond || c.System != 370*time.Millisecond || c.Total() != 2870*time.Millisecond {
		t.Errorf("user %v system %v, want 2.5s and 370ms", c.User, c.System)
	}
	for _, bad := range []string{"4242 afvs R 1 2", "4242 (afvs) R 1 2 3", "4242 (afvs) R 1 2 3 4 5 6 7 8 9 10 x 37 0"} {
		if _, err := parseStatCPU("stat", []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if r, w, err := parseSchedstat("schedstat", []byte("2539283614 5145633758 10473\n")); err != nil || r != 2539283614 || w != 5145633758 {
		t.Errorf("run time %v, run delay %v %v, want 2539283614ns and 5145633758ns", r, w, err)
	}
	for _, bad := range []string{"1 2", "1 x 3", "x 2 3", "1 2 3 4"} {
		if _, _, err := parseSchedstat("schedstat", []byte(bad)); err == nil {
			t.Errorf("schedstat %q: no error", bad)
		}
	}
	if got := perFrame(3*time.Second, 10_000_000); got != 300 {
		t.Errorf("perFrame = %v, want 300", got)
	}
	if got := perFrame(time.Second, 0); got != 0 {
		t.Errorf("perFrame with no frames = %v, want 0", got)
	}
	// This thread's own reading works and moves forward.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), unix.Gettid()
	c0, err := threadCPU(pid, tid)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	c1, err := threadsCPU(pid, []int{tid})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Total() < c0.Total() || c1.Waited < c0.Waited || c1.Run < c0.Run {
		t.Errorf("cpu time went back: %v then %v", c0, c1)
	}
	// The thread spun meanwhile: the scheduler counted it run time,
	// whatever the ticks say.
	if c1.Run <= c0.Run {
		t.Errorf("no run time counted over 50 ms of spinning: %v then %v", c0.Run, c1.Run)
	}
	if _, err := threadCPU(pid, -1); err == nil {
		t.Error("no error for a thread that does not exist")
	}
}

package bench

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/internal/testsupport"
)

// buildAFVS builds the afvs binary the dr and tun scenarios run.
func buildAFVS(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "afvs")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/afvs/afvs/cmd/afvs").CombinedOutput()
	if err != nil {
		t.Fatalf("build afvs: %v\n%s", err, out)
	}
	return bin
}

// TestRunAllScenarios runs every scenario briefly and checks that the
// numbers hang together and that nothing is left behind.
func TestRunAllScenarios(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	afvs := buildAFVS(t)
	t.Cleanup(func() {
		if left := testnet.Leftovers(Prefix()); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
			for _, ns := range left {
				testnet.Run("ip", "netns", "delete", ns)
			}
		}
	})
	var log strings.Builder
	rep, err := Run(Options{Duration: 300 * time.Millisecond, Flows: 256, AFVS: afvs, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("\n%s%s", log.String(), table.String())

	if len(rep.Results) != len(AllScenarios) {
		t.Fatalf("got %d results, want %d", len(rep.Results), len(AllScenarios))
	}
	mpps := map[Scenario]float64{}
	for i, res := range rep.Results {
		if res.Scenario != AllScenarios[i] {
			t.Errorf("result %d is %s, want %s", i, res.Scenario, AllScenarios[i])
		}
		if res.Scenario == Latency {
			checkLatency(t, rep)
			if res.Mpps != 0 || res.VsOffered != nil {
				t.Errorf("latency carries a rate: %+v", res)
			}
			continue
		}
		if res.Error != "" {
			t.Errorf("%s failed: %s", res.Scenario, res.Error)
			continue
		}
		mpps[res.Scenario] = res.Mpps
		if res.Rounds != 1 || res.MppsMin != res.Mpps || res.MppsMax != res.Mpps {
			t.Errorf("%s: rounds %d, min %v, max %v: want one round whose rate is both", res.Scenario, res.Rounds, res.MppsMin, res.MppsMax)
		}
		if res.Received == 0 || res.Received > res.Sent {
			t.Errorf("%s: received %d of %d sent: want 0 < received <= sent", res.Scenario, res.Received, res.Sent)
		}
		if res.Seconds < 0.3 || res.Seconds > 2 {
			t.Errorf("%s: generator ran %.3fs, want about 0.3s", res.Scenario, res.Seconds)
		}
		// Every frame is 60 bytes as sent; VS/TUN adds a 20-byte IPIP
		// header. The sink counts whatever arrives, and the director's
		// kernel now and then sends a frame of its own (a 42-byte ARP was
		// seen once in a 0.5s run), so a few strays are tolerated.
		const strays = 3
		// Over IPv6 the frame is 62 bytes, and IPv6-in-IPv6 adds 40.
		wantLen := int64(60)
		switch res.Scenario {
		case TUN, KernelXDPTUN:
			wantLen = 80
		case Offered6, Baseline6, DR6:
			wantLen = 62
		case TUN6:
			wantLen = 102
		}
		if d := int64(res.SinkBytes) - wantLen*int64(res.Received); d < -strays*wantLen || d > strays*wantLen {
			t.Errorf("%s: sink counted %d bytes for %d frames, want %d each", res.Scenario, res.SinkBytes, res.Received, wantLen)
		}
		if res.Scenario.base() != Offered && res.Received > res.ForwarderTX+strays {
			t.Errorf("%s: forwarder sent %d, sink received more (%d)", res.Scenario, res.ForwarderTX, res.Received)
		}
		checkLoss(t, res, strays)
		// Connection tables: the warm-up opens every flow, so a run
		// opens at most the few whose first frame was lost; in new-flows
		// every frame forwarded is a new connection.
		switch res.Scenario {
		case DR2Q:
			if len(res.WorkerRX) != 2 || res.WorkerRX[0] == 0 || res.WorkerRX[1] == 0 || res.WorkerRX[0]+res.WorkerRX[1] != res.ForwarderRX {
				t.Errorf("dr-2q: workers received %v of %d: want two workers, each fed", res.WorkerRX, res.ForwarderRX)
			}
			if res.VsDR == nil || *res.VsDR != res.Mpps/mpps[DR] {
				t.Errorf("dr-2q: vs dr %v, want %v / %v", res.VsDR, res.Mpps, mpps[DR])
			}
			if res.FlowsOpen < 2*256*9/10 || res.FlowsOpen > 2*256+strays {
				t.Errorf("dr-2q: %d flows open, want about 512 (256 per generator)", res.FlowsOpen)
			}
		case NAT, NATReply:
			if res.VsDR == nil || *res.VsDR != res.Mpps/mpps[DR] {
				t.Errorf("%s: vs dr %v, want %v / %v", res.Scenario, res.VsDR, res.Mpps, mpps[DR])
			}
			// In nat-reply the client's generator opens the flows before
			// the run; on a loaded machine a few of its frames may still
			// be on their way when the run starts.
			if res.FlowsOpen < 256*9/10 || res.FlowsOpen > 256+strays || res.Inserted > 256-res.FlowsOpen+strays {
				t.Errorf("%s: %d flows open before the run, %d opened during it: want about 256 before, the rest during", res.Scenario, res.FlowsOpen, res.Inserted)
			}
			if res.Drops["no_egress"] != 0 {
				t.Errorf("%s: %d frames dropped as no_egress", res.Scenario, res.Drops["no_egress"])
			}
		case DR, TUN, DR6, TUN6, KernelXDPDR, KernelXDPTUN:
			// afvs opened a connection for every flow: the frames the
			// sink counted (their size says IPv6, and IPv6-in-IPv6 for
			// tun6) went through its table.
			if res.FlowsOpen < 256*9/10 || res.FlowsOpen > 256+strays || res.Inserted > 256-res.FlowsOpen+strays {
				t.Errorf("%s: %d flows open before the run, %d opened during it: want about 256 before, the rest during", res.Scenario, res.FlowsOpen, res.Inserted)
			}
		case NewFlows:
			if res.Inserted < res.ForwarderTX*9/10 || res.Inserted > res.ForwarderRX || res.NewConnsPerSec != float64(res.Inserted)/res.Seconds {
				t.Errorf("new-flows: %d connections inserted (%.0f/s) for %d frames received, %d forwarded", res.Inserted, res.NewConnsPerSec, res.ForwarderRX, res.ForwarderTX)
			}
		}
	}
	for _, res := range rep.Results {
		if res.Error != "" || res.Scenario == Latency {
			continue
		}
		// IPv6 scenarios are measured against the IPv6 offered load and
		// baseline, and against their IPv4 scenario of the same round.
		offered, baseline := Offered, Baseline
		if res.Scenario.IPv6() {
			offered, baseline = Offered6, Baseline6
			peer := res.Scenario.IPv4Peer()
			if res.VsIPv4 == nil || *res.VsIPv4 != res.Mpps/mpps[peer] || len(res.VsIPv4Rounds) != 1 || res.VsIPv4Rounds[0] != *res.VsIPv4 {
				t.Errorf("%s: vs ipv4 %v (rounds %v), want %v / %v", res.Scenario, res.VsIPv4, res.VsIPv4Rounds, res.Mpps, mpps[peer])
			}
		} else if res.VsIPv4 != nil {
			t.Errorf("%s: an IPv4 scenario with vs ipv4 %v", res.Scenario, *res.VsIPv4)
		}
		if res.VsOffered == nil || *res.VsOffered != res.Mpps/mpps[offered] {
			t.Errorf("%s: vs offered %v, want %v / %v", res.Scenario, res.VsOffered, res.Mpps, mpps[offered])
		}
		if res.VsBaseline == nil || *res.VsBaseline != res.Mpps/mpps[baseline] {
			t.Errorf("%s: vs baseline %v, want %v / %v", res.Scenario, res.VsBaseline, res.Mpps, mpps[baseline])
		}
		checkForwarderCPU(t, rep, res)
	}
	if rep.FrameLen6 != MinFrameLen6 {
		t.Errorf("report frame_len6 %d, want %d", rep.FrameLen6, MinFrameLen6)
	}
	for _, s := range []string{"62 over IPv6 (66)", "dr6: IPv6, ", "tun6: IPv6, "} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q", s)
		}
	}
	if left := testnet.Leftovers(Prefix()); len(left) > 0 {
		t.Errorf("namespaces left after Run: %v", left)
	}
}

// checkForwarderCPU: every forwarder that polls AF_XDP sockets (the
// baseline and afvs) reports the CPU its polling threads spent per frame,
// and its receiving socket has the same busy-poll options in force as the
// baseline's of its family: afvs's default poll mode, with busy polling.
func checkForwarderCPU(t *testing.T, rep *Report, res Result) {
	t.Helper()
	switch res.Scenario.base() {
	case Offered, KernelXDPDR, KernelXDPTUN:
		if res.FwdBusy != 0 || res.BusyPoll != "" {
			t.Errorf("%s: no forwarder threads, yet cpu busy %v, busy poll %q", res.Scenario, res.FwdBusy, res.BusyPoll)
		}
		return
	}
	// The busy share comes from the scheduler's exact run time; user and
	// system time come in 10 ms ticks, which a short run on a loaded
	// machine may give all to one side, or, when the forwarder ran less
	// than a few ticks' worth, to neither: their sum must show once it
	// ran 50 ms.
	ran := time.Duration(res.FwdBusy * res.Seconds * float64(time.Second))
	if res.FwdBusy <= 0 || ran >= 50*time.Millisecond && res.FwdUserNs+res.FwdSysNs <= 0 || res.FwdUserNs < 0 || res.FwdSysNs < 0 || res.FwdWaited < 0 {
		t.Errorf("%s: forwarder cpu user %v ns, system %v ns a frame, busy %v (ran %v), waited %v: want some, none negative", res.Scenario, res.FwdUserNs, res.FwdSysNs, res.FwdBusy, ran, res.FwdWaited)
	}
	// Its receiving sockets report how many receives returned frames: a
	// mean batch of at most the 64 a forwarder asks for. afvs's frame
	// count and its batch count are read a moment apart, so a batch in
	// flight at either reading may count on one side only: a run of a few
	// hundred batches may exceed 64 by a percent or so.
	if res.FramesPerBatch <= 0 || res.FramesPerBatch > 1.05*fwdBatch {
		t.Errorf("%s: %.1f frames a batch, want some, at most about %d", res.Scenario, res.FramesPerBatch, fwdBatch)
	}
	on, usecs, budget := director.SocketBusyPoll(director.DefaultPoll())
	if !on || res.BusyPoll != fmt.Sprintf("prefer,usecs=%d,budget=%d", usecs, budget) {
		t.Errorf("%s: busy poll %q, want afvs's default, prefer with usecs %d and budget %d", res.Scenario, res.BusyPoll, usecs, budget)
	}
	if b := res.Scenario.baseline(); b != "" {
		i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Scenario == b && r.Placement == res.Placement })
		if i < 0 || rep.Results[i].BusyPoll != res.BusyPoll {
			t.Errorf("%s: busy poll %q, its baseline's differs", res.Scenario, res.BusyPoll)
		}
		if res.VsBaselinePaired == nil || len(res.VsBaselineRounds) != 1 || *res.VsBaselinePaired != res.Mpps/rep.Results[i].Mpps {
			t.Errorf("%s: paired vs baseline %v (rounds %v), want %v / %v", res.Scenario, res.VsBaselinePaired, res.VsBaselineRounds, res.Mpps, rep.Results[i].Mpps)
		}
	}
}

// checkLoss: every scenario with a forwarder says where the frames it did
// not receive went: its receiving socket's statistics (none for the
// kernel XDP load balancer, which has no socket, and says so), the XDP
// program's counters and the kernel's link counters were all read; the
// program redirected what the socket took plus what it refused; and what
// the counters account for as lost is never more than went missing
// (sent - fwd rx), but for strays the program passed.
func checkLoss(t *testing.T, res Result, strays uint64) {
	t.Helper()
	l := res.Loss
	if res.Scenario.base() == Offered {
		if l != nil {
			t.Errorf("%s: loss accounting without a forwarder: %+v", res.Scenario, l)
		}
		return
	}
	if l == nil {
		t.Errorf("%s: no loss accounting", res.Scenario)
		return
	}
	wantIf := ingressName
	if res.Scenario == NATReply {
		wantIf = egressName
	}
	if l.Interface != wantIf || l.Link == nil || l.Driver == nil || l.Steering == nil {
		t.Errorf("%s: loss on %q, link %+v, driver %v, steering %+v (unavailable %v): want all read on %s", res.Scenario, l.Interface, l.Link, l.Driver, l.Steering, l.Unavailable, wantIf)
		return
	}
	if res.Scenario == KernelXDPDR || res.Scenario == KernelXDPTUN {
		if l.Socket != nil || len(l.Unavailable) != 1 || !strings.HasPrefix(l.Unavailable[0], "socket: ") {
			t.Errorf("%s: socket %+v, unavailable %v: want no socket, and said so", res.Scenario, l.Socket, l.Unavailable)
		}
		return
	}
	if l.Socket == nil || len(l.Unavailable) > 0 {
		t.Errorf("%s: socket %+v, unavailable %v: want the socket's statistics", res.Scenario, l.Socket, l.Unavailable)
		return
	}
	if res.ForwarderRX > res.Sent+strays {
		t.Errorf("%s: forwarder received %d of %d sent", res.Scenario, res.ForwarderRX, res.Sent)
		return
	}
	missed := res.Sent - min(res.Sent, res.ForwarderRX)
	refused, _ := l.SocketDrops()
	if d := int64(l.Steering.Redirected) - int64(res.ForwarderRX+refused); d < -int64(strays) || d > int64(strays) {
		t.Errorf("%s: the program redirected %d, the forwarder received %d and its socket refused %d", res.Scenario, l.Steering.Redirected, res.ForwarderRX, refused)
	}
	acc, ok := l.Accounted()
	if !ok || acc > missed+strays || refused > missed+strays {
		t.Errorf("%s: counters account for %d lost (%v; the socket %d), more than the %d sent - fwd rx: %s", res.Scenario, acc, ok, refused, missed, lossLine(res))
	}
	if !strings.Contains(lossLine(res), fmt.Sprintf("lost on %s: sent - fwd rx %d; ring full %d", wantIf, missed, l.Socket.RxRingFull)) {
		t.Errorf("%s: loss line %q", res.Scenario, lossLine(res))
	}
}

// TestFailingScenarioDoesNotStopOthers gives the director scenario a
// binary that cannot start: it must fail alone, with its cause, and leave
// nothing behind.
func TestFailingScenarioDoesNotStopOthers(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	bogus := filepath.Join(t.TempDir(), "no-such-afvs")
	rep, err := Run(Options{Duration: 200 * time.Millisecond, Flows: 16, Scenarios: []Scenario{DR, Offered}, AFVS: bogus})
	if err != nil {
		t.Fatal(err)
	}
	dr, off := rep.Results[0], rep.Results[1]
	if dr.Error == "" || !strings.Contains(dr.Error, "afvs exited during start-up") {
		t.Errorf("dr error %q, want afvs's start-up failure", dr.Error)
	}
	if dr.Received != 0 || dr.VsOffered != nil {
		t.Errorf("failed dr carries numbers: %+v", dr)
	}
	if off.Error != "" || off.Received == 0 {
		t.Errorf("offered after a failed scenario: %+v", off)
	}
	if !rep.Failed() {
		t.Error("Failed() = false")
	}
	if left := testnet.Leftovers(Prefix()); len(left) > 0 {
		t.Errorf("namespaces left after a failed scenario: %v", left)
	}
}

// TestThreadedPlacement runs two scenarios in both placements: the
// threaded ones must have threaded NAPI on the director's receiving
// interface, a pinned generator, and ratios against their own placement.
func TestThreadedPlacement(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	afvs := buildAFVS(t)
	rep, err := Run(Options{Duration: 300 * time.Millisecond, Flows: 64, Scenarios: []Scenario{Offered, DR}, AFVS: afvs, Threaded: true})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	want := []string{"offered", "offered@threaded", "dr", "dr@threaded"}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %v", len(rep.Results), want)
	}
	for i, res := range rep.Results {
		if res.name() != want[i] || res.Error != "" {
			t.Errorf("result %d: %s %q, want %s", i, res.name(), res.Error, want[i])
			continue
		}
		threaded := res.Placement == PlacementThreaded
		if threaded != (res.GeneratorCPU != nil) || threaded != slices.Contains(res.Threaded, "dir/eth0") {
			t.Errorf("%s: threaded napi %v, generator cpu %v", res.name(), res.Threaded, res.GeneratorCPU)
		}
		if res.VsOffered == nil || *res.VsOffered != res.Mpps/rep.Results[i%2].Mpps {
			t.Errorf("%s: vs offered %v, want against offered of its own placement", res.name(), res.VsOffered)
		}
	}
	if !strings.Contains(table.String(), "@threaded: threaded NAPI on [") {
		t.Errorf("the table does not say what the threaded placement did")
	}
}

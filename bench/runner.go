package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/internal/testnet"
)

// Options shape a run of the harness.
type Options struct {
	// Duration is how long the generator sends in each scenario.
	Duration time.Duration
	// Flows is how many UDP source ports the generator cycles through.
	Flows int
	// Scenarios to run, in order; empty means AllScenarios.
	Scenarios []Scenario
	// AFVS is the path of the afvs binary, needed by dr and tun.
	AFVS string
	// Rounds repeats every scenario, the scenarios interleaved round by
	// round so that a change in the machine's load falls on all of them;
	// each result is the round with the median rate. Zero means 1.
	Rounds int
	// Log, when set, hears one line per scenario as it starts and ends.
	Log io.Writer
	// Threaded also runs every rate scenario with each receive path on a
	// CPU of its own: threaded NAPI on every veth end that has a NAPI
	// context (those that run XDP), and the generator pinned to the last
	// CPU. Those results have Placement "threaded".
	Threaded bool
}

// Limits on Options.
const (
	MinDuration = 100 * time.Millisecond
	MaxDuration = 10 * time.Minute
	MaxRounds   = 100
)

// Validate reports the first option that breaks a rule.
func (o Options) Validate() error {
	if o.Duration < MinDuration || o.Duration > MaxDuration {
		return fmt.Errorf("duration %s: must be from %s to %s", o.Duration, MinDuration, MaxDuration)
	}
	if o.Flows < 1 || o.Flows > MaxFlows {
		return fmt.Errorf("flows %d: must be from 1 to %d", o.Flows, MaxFlows)
	}
	if o.Rounds < 0 || o.Rounds > MaxRounds {
		return fmt.Errorf("rounds %d: must be from 0 (meaning 1) to %d", o.Rounds, MaxRounds)
	}
	seen := map[Scenario]bool{}
	for _, s := range o.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return fmt.Errorf("scenario %q: must be one of %s", s, scenarioNames())
		}
		if seen[s] {
			return fmt.Errorf("scenario %q: listed twice", s)
		}
		seen[s] = true
		if s.NeedsAFVS() && o.AFVS == "" {
			return fmt.Errorf("scenario %s: needs the afvs binary path (Options.AFVS)", s)
		}
	}
	return nil
}

// Run measures every scenario, each in its own namespaces, and returns the
// report. A failing scenario is reported in its Result and does not stop
// the others; Run itself fails only on bad options or when namespaces
// cannot be made here.
func Run(o Options) (*Report, error) {
	if len(o.Scenarios) == 0 {
		o.Scenarios = AllScenarios
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := testnet.Available(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	testnet.ReapStale()
	rep := &Report{Duration: o.Duration, DurationSeconds: o.Duration.Seconds(), Flows: o.Flows, FrameLen: MinFrameLen,
		CPUs: runtime.NumCPU(), LoadAvg: loadAvg()}
	rounds := max(o.Rounds, 1)
	rep.Rounds = rounds
	type spec struct {
		s        Scenario
		threaded bool
	}
	var specs []spec
	for _, s := range o.Scenarios {
		specs = append(specs, spec{s, false})
		if o.Threaded && s != Latency {
			specs = append(specs, spec{s, true})
		}
	}
	byScenario := make([][]Result, len(specs))
	for r := 1; r <= rounds; r++ {
		for i, sp := range specs {
			s := sp.s
			name := string(s)
			if sp.threaded {
				name += "@" + PlacementThreaded
			}
			if o.Log != nil {
				fmt.Fprintf(o.Log, "bench: round %d/%d: %s: running for %s\n", r, rounds, name, o.Duration)
			}
			res := runScenario(s, o, sp.threaded)
			if o.Log != nil {
				if res.Error != "" {
					fmt.Fprintf(o.Log, "bench: round %d/%d: %s: failed: %s\n", r, rounds, name, res.Error)
				} else if s == Latency {
					for _, p := range res.Latency {
						fmt.Fprintf(o.Log, "bench: round %d/%d: latency %s %s: p50 %.1f p90 %.1f p99 %.1f us %s\n", r, rounds, p.Path, p.Poll, p.P50, p.P90, p.P99, p.Error)
					}
				} else {
					fmt.Fprintf(o.Log, "bench: round %d/%d: %s: %.3f Mpps at the sink", r, rounds, name, res.Mpps)
					if len(res.Drops) > 0 {
						fmt.Fprintf(o.Log, " (afvs drops %v)", res.Drops)
					}
					fmt.Fprintln(o.Log)
				}
			}
			byScenario[i] = append(byScenario[i], res)
		}
	}
	for _, rs := range byScenario {
		rep.Results = append(rep.Results, medianResult(rs))
	}
	rep.computeRatios()
	for i, sp := range specs {
		if sp.s.IPv6() {
			rep.FrameLen6 = MinFrameLen6
		}
		j := slices.IndexFunc(specs, func(o spec) bool { return o.s == sp.s.IPv4Peer() && o.threaded == sp.threaded })
		if j >= 0 {
			rep.Results[i].VsIPv4, rep.Results[i].VsIPv4Rounds = pairedRatio(byScenario[i], byScenario[j])
		}
		if b := sp.s.baseline(); b != "" {
			j := slices.IndexFunc(specs, func(o spec) bool { return o.s == b && o.threaded == sp.threaded })
			if j >= 0 {
				rep.Results[i].VsBaselinePaired, rep.Results[i].VsBaselineRounds = pairedRatio(byScenario[i], byScenario[j])
			}
		}
	}
	return rep, nil
}

// medianResult is the round with the median sink rate (the lower of the
// two middle ones for an even count), with the spread of all rounds. A
// scenario that failed in any round is reported as failed: a rate from
// the rounds that happened to work would look better than the path is.
func medianResult(rs []Result) Result {
	for i, r := range rs {
		if r.Error != "" {
			if len(rs) > 1 {
				r.Error = fmt.Sprintf("round %d: %s", i+1, r.Error)
			}
			return r
		}
	}
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b Result) int { return cmp.Compare(a.Mpps, b.Mpps) })
	m := sorted[(len(sorted)-1)/2]
	m.Rounds = len(rs)
	m.MppsMin, m.MppsMax = sorted[0].Mpps, sorted[len(sorted)-1].Mpps
	m.FwdUserNs = median(rs, func(r Result) float64 { return r.FwdUserNs })
	m.FwdSysNs = median(rs, func(r Result) float64 { return r.FwdSysNs })
	m.FwdBusy = median(rs, func(r Result) float64 { return r.FwdBusy })
	m.FwdWaited = median(rs, func(r Result) float64 { return r.FwdWaited })
	return m
}

// median is the median of f over rs (the lower middle one for an even
// count): the forwarder's CPU figures are each the median of their own
// rounds, which need not be the median rate's round.
func median(rs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

// runScenario builds the scenario's network, measures, and removes the
// network whatever happened.
func runScenario(s Scenario, o Options, threaded bool) Result {
	res := Result{Scenario: s, Placement: PlacementDefault}
	if threaded {
		res.Placement = PlacementThreaded
	}
	if s == Latency {
		paths, err := runLatency(o)
		if err != nil {
			return Result{Scenario: s, Placement: res.Placement, Error: err.Error()}
		}
		res.Latency = paths
		return res
	}
	queues := 1
	if s == DR2Q {
		queues = 2
	}
	t, err := newTopology(string(s), queues, s.IPv6())
	if err == nil {
		err = measure(t, s, o, threaded, &res)
		if cerr := t.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove namespaces: %w", cerr))
		}
	}
	if err != nil {
		res = Result{Scenario: s, Placement: res.Placement, Error: err.Error()}
	}
	return res
}

// forwarderCounts reads a forwarder's RX and TX counters after the run.
type forwarderCounts func() (rx, tx uint64, err error)

// newFlowsTable is the connection table afvs gets in the new-flows
// scenario: room for every connection a run of a few seconds opens on
// this path, without mapping a table for all MaxFlows.
const newFlowsTable = 1 << 21

func measure(t *topology, s Scenario, o Options, threaded bool, res *Result) (err error) {
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()

	// The sink: on the director's ingress for the offered load, on the
	// real server's interface otherwise.
	sinkAt := t.sinkIf
	switch s.base() {
	case Offered:
		sinkAt = t.dirIn
	case NATReply:
		// The replies are counted on the client's side; the real
		// server's side drops the frames that open the flows.
		sinkAt = t.genIf
		open, err := xdpprog.LoadDropSink()
		if err != nil {
			return err
		}
		closers = append(closers, open.Close)
		var att xdpprog.Attachment
		if err := t.sink.Do(func() (err error) { att, err = open.Attach(t.sinkIf.index, xdpprog.ModeAuto); return err }); err != nil {
			return fmt.Errorf("attach drop sink to the real server's %s: %w", t.sinkIf.name, err)
		}
		closers = append(closers, att.Close)
	}
	sink, err := xdpprog.LoadDropSink()
	if err != nil {
		return err
	}
	closers = append(closers, sink.Close)
	var att xdpprog.Attachment
	if err := sinkAt.ns.Do(func() (err error) { att, err = sink.Attach(sinkAt.index, xdpprog.ModeAuto); return err }); err != nil {
		return fmt.Errorf("attach drop sink to %s: %w", sinkAt.name, err)
	}
	closers = append(closers, att.Close)

	var counts forwarderCounts
	var drops map[string]uint64
	// snap is the loss counters the last counts read: the receiving
	// socket's and the XDP program's; readLinkLoss adds the kernel's.
	var snap lossSnapshot
	recv, send := t.dirIn, t.genIf
	if s == NATReply {
		recv, send = t.dirOut, t.sinkIf
	}
	var workerRX []uint64 // afvs: frames each worker received, by the last counts
	var batches uint64    // receives that returned frames, by the last counts
	// inserted reads the connections the forwarder has opened, where it
	// keeps a table.
	var inserted func() uint64
	// cpu reads the CPU time of the forwarder's polling threads.
	var cpu func() (CPUTime, error)
	flows := o.Flows
	if s == NewFlows {
		flows = MaxFlows
	}
	switch s.base() {
	case Baseline:
		f, rx, prog, stop, serr := startBaseline(t)
		if serr != nil {
			return serr
		}
		closers = append(closers, stop)
		counts = func() (uint64, uint64, error) {
			snap = lossSnapshot{}
			if ks, err := rx.KernelStats(); err != nil {
				snap.fail("socket", err)
			} else {
				snap.socket = &ks
			}
			if ps, err := prog.Stats(); err != nil {
				snap.fail("steering", err)
			} else {
				snap.steering = &SteeringLoss{Total: ps.Total, Redirected: ps.Redirected, Passed: ps.PassOther + ps.PassNoSocket}
			}
			st := f.Stats()
			batches = st.Batches
			if b, ok := f.BusyPoll(); ok {
				res.BusyPoll = b.String()
			}
			return st.Received, st.Forwarded, nil
		}
		cpu = func() (CPUTime, error) {
			tid := f.ThreadID()
			if tid == 0 {
				return CPUTime{}, errors.New("the baseline forwarder's thread has not started")
			}
			return threadCPU(os.Getpid(), tid)
		}
	case KernelXDPDR, KernelXDPTUN:
		mode := map[Scenario]string{KernelXDPDR: "dr", KernelXDPTUN: "tun"}[s]
		lb, stop, serr := startKernelXDP(t, mode, o.Flows)
		if serr != nil {
			return serr
		}
		closers = append(closers, stop)
		counts = func() (uint64, uint64, error) {
			st, err := lb.Stats()
			snap = lossSnapshot{steering: &SteeringLoss{Total: st.Total, Redirected: st.DR + st.Tunnel, Passed: st.PassNotService}}
			drops = map[string]uint64{"no_real": st.DropNoReal, "adjust_failed": st.DropAdjustFailed, "no_egress": st.DropNoEgress, "passed": st.PassNotService}
			return st.Total, st.DR + st.Tunnel, err
		}
		inserted = func() uint64 { st, _ := lb.Stats(); return st.NewFlows }
	case DR, TUN, NewFlows, DR2Q, NAT, NATReply:
		mode, tableFlows := string(s.base()), o.Flows
		switch s {
		case NATReply:
			mode = "nat"
		case NewFlows:
			mode, tableFlows = "dr", newFlowsTable/2
		case DR2Q:
			mode, tableFlows = "dr", 2*o.Flows
		}
		d, stop, serr := startDirector(t, o.AFVS, mode, tableFlows)
		if serr != nil {
			return serr
		}
		closers = append(closers, stop)
		// A director that runs but forwards nothing explains itself in
		// its log.
		defer func() {
			if err != nil {
				err = fmt.Errorf("%w\nafvs log: %s", err, tail(d))
			}
		}()
		counts = func() (uint64, uint64, error) {
			st, err := api.NewClient(d.Socket).Status()
			drops = st.Drops
			workerRX = workerRX[:0]
			batches = 0
			snap = lossSnapshot{}
			if total, ok := st.Steering["total"]; ok {
				snap.steering = &SteeringLoss{Total: total, Redirected: st.Steering["redirected"], Passed: st.Steering["passed"]}
			} else {
				snap.fail("steering", errors.New("afvs's status has no steering counters"))
			}
			var ks xsk.KernelStats
			on := 0
			for _, w := range st.Workers {
				if w.Dev == recv.name {
					on++
					ks.RxDropped += w.RxDropped
					ks.RxRingFull += w.RxRingFull
					ks.RxFillRingEmpty += w.RxFillRingEmpty
				}
			}
			if on > 0 {
				snap.socket = &ks
			} else {
				snap.fail("socket", fmt.Errorf("afvs has no worker on %s", recv.name))
			}
			for _, w := range st.Workers {
				workerRX = append(workerRX, w.RX)
				batches += w.RxBatches
				res.BusyPoll = w.BusyPoll
			}
			return st.RX, st.TX, err
		}
		inserted = func() uint64 { st, _ := api.NewClient(d.Socket).Status(); return st.Table.Inserted }
		cpu = func() (CPUTime, error) {
			pid := d.Process().Pid
			tids, err := director.WorkerThreads(pid)
			if err == nil && len(tids) == 0 {
				err = fmt.Errorf("afvs (pid %d) has no thread named %s", pid, director.WorkerThreadName)
			}
			if err != nil {
				return CPUTime{}, err
			}
			return threadsCPU(pid, tids)
		}
	}

	// One generator per queue: the veth hands a frame sent on queue q to
	// the peer's receive queue q, so each of the director's workers gets
	// the frames of one generator, with flows of its own (generator q
	// sends from GenAddr + q).
	var gens []*Generator
	for q := range t.queues {
		f := t.frame()
		for range q {
			f.Src = f.Src.Next()
		}
		var g *Generator
		if err := t.gen.Do(func() (err error) { g, err = NewGenerator(t.genIf.index, q, f, flows); return err }); err != nil {
			return err
		}
		closers = append(closers, g.Close)
		gens = append(gens, g)
	}
	if s == NATReply {
		// Open every flow from the client's side, then measure their
		// replies: a generator on the real server's side, whose flow i
		// answers the client's flow i.
		for _, g := range gens {
			if err := openFlows(g, flows, inserted); err != nil {
				return fmt.Errorf("open %d flows: %w", flows, err)
			}
		}
		time.Sleep(settleTime)
		var rg *Generator
		if err := t.sink.Do(func() (err error) { rg, err = NewReplyGenerator(t.sinkIf.index, 0, t.replyFrame(), flows); return err }); err != nil {
			return err
		}
		closers = append(closers, rg.Close)
		gens = []*Generator{rg}
	}
	gen := gens[0]
	if threaded {
		if res.Threaded, err = threadNAPI(t); err != nil {
			return err
		}
		cpu := runtime.NumCPU() - 1
		res.GeneratorCPU = &cpu
		for _, g := range gens {
			g.CPU = cpu
		}
	}

	if err := warmUp(gen, sink); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	// Every flow gets its first frame before the measurement, so that
	// the run measures lookups of open flows, not their setup; the
	// new-flows scenario measures the setup, so it opens none.
	if s != NewFlows && s != NATReply {
		for _, g := range gens {
			if err := openFlows(g, flows, inserted); err != nil {
				return fmt.Errorf("open %d flows: %w", flows, err)
			}
		}
		time.Sleep(settleTime)
	}
	var ins0 uint64
	if inserted != nil {
		ins0 = inserted()
		res.FlowsOpen = ins0
	}
	var rx0, tx0 uint64
	var drops0 map[string]uint64
	if counts != nil {
		if rx0, tx0, err = counts(); err != nil {
			return fmt.Errorf("forwarder counters: %w", err)
		}
		drops0 = drops
		readLinkLoss(&snap, recv, send)
	}
	snap0 := snap
	workerRX0, batches0 := slices.Clone(workerRX), batches
	var cpu0 CPUTime
	if cpu != nil {
		if cpu0, err = cpu(); err != nil {
			return fmt.Errorf("forwarder cpu time: %w", err)
		}
	}
	before, err := sink.Stats()
	if err != nil {
		return err
	}
	gs, err := runGenerators(gens, o.Duration)
	if err != nil {
		return err
	}
	time.Sleep(settleTime)
	if counts != nil {
		if err := drainForwarder(counts, &snap, rx0, snap0); err != nil {
			return fmt.Errorf("forwarder counters: %w", err)
		}
	}
	after, err := sink.Stats()
	if err != nil {
		return err
	}
	if after.Packets == before.Packets {
		// Nothing yet: on a machine busy enough that the forwarder (or
		// the sink's receive path) got no CPU while the generator ran,
		// the frames wait in the rings. Give them time to arrive, then
		// until the count holds still; a path that forwards nothing
		// still counts nothing after starvedDrain.
		if after, err = drainStarved(sink, before.Packets); err != nil {
			return err
		}
	}
	var used CPUTime
	if cpu != nil {
		cpu1, err := cpu()
		if err != nil {
			return fmt.Errorf("forwarder cpu time: %w", err)
		}
		used = cpu1.sub(cpu0)
	}
	if counts != nil {
		rx1, tx1, err := counts()
		if err != nil {
			return fmt.Errorf("forwarder counters: %w", err)
		}
		readLinkLoss(&snap, recv, send)
		res.Loss = lossOf(recv.name, snap0, snap)
		res.ForwarderRX, res.ForwarderTX = rx1-rx0, tx1-tx0
		if batches > batches0 {
			res.FramesPerBatch = float64(res.ForwarderRX) / float64(batches-batches0)
		}
		if len(workerRX) > 1 && len(workerRX0) == len(workerRX) {
			for i := range workerRX {
				res.WorkerRX = append(res.WorkerRX, workerRX[i]-workerRX0[i])
			}
		}
		for k, v := range drops {
			if d := v - drops0[k]; d > 0 {
				if res.Drops == nil {
					res.Drops = map[string]uint64{}
				}
				res.Drops[k] = d
			}
		}
	}
	if inserted != nil {
		res.Inserted = inserted() - ins0
	}
	res.Sent = gs.Sent
	res.Received = after.Packets - before.Packets
	res.SinkBytes = after.Bytes - before.Bytes
	res.Seconds = gs.Elapsed.Seconds()
	res.SentMpps = float64(res.Sent) / res.Seconds / 1e6
	res.Mpps = float64(res.Received) / res.Seconds / 1e6
	res.NewConnsPerSec = float64(res.Inserted) / res.Seconds
	if cpu != nil {
		// The CPU time covers the settling pause as well, in which a
		// forwarder that keeps up sleeps.
		res.FwdUserNs = perFrame(used.User, res.ForwarderTX)
		res.FwdSysNs = perFrame(used.System, res.ForwarderTX)
		res.FwdBusy = used.Run.Seconds() / res.Seconds
		res.FwdWaited = used.Waited.Seconds() / res.Seconds
	}
	if res.Received == 0 {
		return fmt.Errorf("the sink counted nothing of %d frames sent", res.Sent)
	}
	return nil
}

// openBurst is the most frames openFlows starts sending a millisecond:
// about what afvs forwards here on an idle machine.
const openBurst = 512

// openChunk is how many flows openFlows sends before it checks how many
// the forwarder opened.
const openChunk = 1 << 16

// openFlows sends every flow of g a frame. Where the forwarder counts the
// connections it opens (inserted), it goes chunk by chunk and sends a
// chunk again, at half the pace, while the forwarder opened less than 95%
// of it (frames it dropped: a forwarder slower than the pace), so the run
// that follows finds the flows open; three tries a chunk at most, the
// pace never below 64 frames a millisecond, and back up (to openBurst)
// after a chunk that opened whole at the first try.
func openFlows(g *Generator, flows int, inserted func() uint64) error {
	if inserted == nil {
		_, err := g.Open(openBurst)
		return err
	}
	burst := openBurst
	for from := 0; from < flows; from += openChunk {
		n := min(openChunk, flows-from)
		before := inserted()
		for try := 0; ; try++ {
			if _, err := g.OpenRange(from, n, burst); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond) // let the forwarder drain its rings
			opened := inserted() - before
			if try == 0 && opened >= uint64(n)*99/100 {
				burst = min(2*burst, openBurst)
			}
			if opened >= uint64(n)*95/100 || try == 2 {
				break
			}
			burst = max(burst/2, 64)
		}
	}
	return nil
}

// forwarderDrain bounds how long drainForwarder waits.
const forwarderDrain = 5 * time.Second

// drainForwarder waits until the forwarder has taken every frame its XDP
// program redirected since the run began (rx0 and snap0, read before it):
// received, or refused by its socket (ring full, dropped). A forwarder
// the machine held back while the generator ran still has frames in its
// receive ring after settleTime, and reading its counters then would
// count them as lost. It returns once the frames balance, once the
// difference stops shrinking over settleTime (a forwarder whose counters
// do not balance by design), or after forwarderDrain; counts reads the
// forwarder's counters and fills *snap, as it does for the run.
func drainForwarder(counts func() (uint64, uint64, error), snap *lossSnapshot, rx0 uint64, snap0 lossSnapshot) error {
	if snap0.steering == nil || snap0.socket == nil {
		return nil // nothing to balance by
	}
	best, since := int64(math.MaxInt64), time.Now()
	for deadline := time.Now().Add(forwarderDrain); time.Now().Before(deadline); time.Sleep(settleTime / 8) {
		rx, _, err := counts()
		if err != nil {
			return err
		}
		if snap.steering == nil || snap.socket == nil {
			return nil
		}
		refused := snap.socket.RxRingFull + snap.socket.RxDropped - snap0.socket.RxRingFull - snap0.socket.RxDropped
		left := int64(snap.steering.Redirected-snap0.steering.Redirected) - int64(rx-rx0+refused)
		if left <= 0 {
			return nil
		}
		if left < best {
			best, since = left, time.Now()
		} else if time.Since(since) > settleTime {
			return nil
		}
	}
	return nil
}

// starvedDrain bounds how long drainStarved waits for a first frame.
const starvedDrain = 10 * time.Second

// drainStarved waits until the sink has counted more than from, then
// until its count holds still over a quarter of settleTime, for at most
// starvedDrain in all, and returns its last reading.
func drainStarved(sink *xdpprog.DropSink, from uint64) (xdpprog.DropSinkStats, error) {
	var last xdpprog.DropSinkStats
	for deadline := time.Now().Add(starvedDrain); ; time.Sleep(settleTime / 4) {
		st, err := sink.Stats()
		if err != nil {
			return st, err
		}
		if st.Packets > from && st.Packets == last.Packets || time.Now().After(deadline) {
			return st, nil
		}
		last = st
	}
}

// settleTime lets frames still in a forwarder's rings reach the sink
// before it is read; it is not part of the measured time, so a forwarder
// with deep queues gains at most a ring's worth of frames.
const settleTime = 200 * time.Millisecond

// runGenerator runs the generator on its own locked thread, so that the Go
// scheduler does not move it while it sends.
func runGenerator(g *Generator, d time.Duration) (GeneratorStats, error) {
	type out struct {
		st  GeneratorStats
		err error
	}
	c := make(chan out, 1)
	go func() {
		runtime.LockOSThread()
		if g.CPU >= 0 {
			// A pinned thread is never unlocked: it exits with the
			// goroutine instead of carrying its affinity to others.
			if err := nic.Pin(g.CPU); err != nil {
				c <- out{err: fmt.Errorf("pin generator to cpu %d: %w", g.CPU, err)}
				return
			}
		} else {
			defer runtime.UnlockOSThread()
		}
		st, err := g.Run(d)
		c <- out{st, err}
	}()
	r := <-c
	return r.st, r.err
}

// runGenerators runs every generator at once, each on its own locked
// thread, and sums what they sent; Elapsed is the longest run.
func runGenerators(gs []*Generator, d time.Duration) (GeneratorStats, error) {
	if len(gs) == 1 {
		return runGenerator(gs[0], d)
	}
	type out struct {
		st  GeneratorStats
		err error
	}
	c := make(chan out, len(gs))
	for _, g := range gs {
		go func() {
			st, err := runGenerator(g, d)
			c <- out{st, err}
		}()
	}
	var sum GeneratorStats
	var errs []error
	for range gs {
		r := <-c
		sum.Sent += r.st.Sent
		sum.Queued += r.st.Queued
		sum.Elapsed = max(sum.Elapsed, r.st.Elapsed)
		errs = append(errs, r.err)
	}
	return sum, errors.Join(errs...)
}

// Placements of a result.
const (
	PlacementDefault  = "default"
	PlacementThreaded = "threaded"
)

// threadNAPI turns threaded NAPI on for every veth end of t that has a
// NAPI context (a veth has one while it runs XDP: the director's eth0
// and the sink's here), so that each receive path runs in a kernel thread
// the scheduler can put on a CPU of its own, and returns them as ns/dev.
// It writes /sys/class/net/DEV/threaded through "ip netns exec", whose
// sysfs shows the namespace's devices.
func threadNAPI(t *topology) ([]string, error) {
	var on []string
	for _, l := range []link{t.genIf, t.dirIn, t.dirOut, t.sinkIf} {
		path := "/sys/class/net/" + l.name + "/threaded"
		// A device without NAPI refuses (EOPNOTSUPP): that end has no
		// receive path of its own to move.
		if err := l.ns.Command("sh", "-c", "echo 1 > "+path).Run(); err != nil {
			continue
		}
		out, err := l.ns.Command("cat", path).Output()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			return on, fmt.Errorf("threaded napi on %s in %s: wrote 1, reads %q (%v)", l.name, l.ns.Name, out, err)
		}
		on = append(on, l.ns.Name[strings.LastIndex(l.ns.Name, "-")+1:]+"/"+l.name)
	}
	if len(on) == 0 {
		return nil, errors.New("threaded napi: no interface of the path has a NAPI context")
	}
	return on, nil
}

// warmUp sends short bursts until the sink counts something, so that
// start-up (neighbour resolution, the first flows' connection entries,
// page faults in the rings) stays out of the measurement, then lets the
// path drain.
func warmUp(g *Generator, sink *xdpprog.DropSink) error {
	const burst, limit = 50 * time.Millisecond, 10 * time.Second
	st0, err := sink.Stats()
	if err != nil {
		return err
	}
	var sent uint64
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		gs, err := runGenerator(g, burst)
		if err != nil {
			return err
		}
		sent += gs.Sent
		time.Sleep(settleTime)
		st, err := sink.Stats()
		if err != nil {
			return err
		}
		if st.Packets > st0.Packets {
			return nil
		}
	}
	return fmt.Errorf("the sink counted nothing of %d frames sent in %s", sent, limit)
}

// startBaseline opens the baseline forwarder on the director: redirect
// everything IPv4 and all UDP over IPv6 on eth0 to one socket, send through a TX-only socket on
// eth1, sized like the director's own sockets.
func startBaseline(t *topology) (f *Forwarder, rx *xsk.Socket, prog *xdpprog.RedirectAll, stop func() error, err error) {
	var closers []func() error
	stop = func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = stop()
		}
	}()
	prog, err = xdpprog.LoadRedirectAll(1)
	if err != nil {
		return nil, nil, nil, stop, err
	}
	closers = append(closers, prog.Close)
	var tx *xsk.Socket
	err = t.dir.Do(func() error {
		ro := xsk.DefaultOptions()
		ro.TxBudget = 256
		var err error
		if rx, err = xsk.Open(t.dirIn.index, 0, ro); err != nil {
			return fmt.Errorf("baseline rx: %w", err)
		}
		closers = append(closers, rx.Close)
		to := xsk.DefaultOptions()
		to.RxSize, to.FillSize, to.NumFrames, to.TxBudget = 0, 64, 2048, 256
		if tx, err = xsk.Open(t.dirOut.index, 0, to); err != nil {
			return fmt.Errorf("baseline tx: %w", err)
		}
		closers = append(closers, tx.Close)
		if err := prog.RegisterSocket(0, rx.FD()); err != nil {
			return err
		}
		a, err := prog.Attach(t.dirIn.index, xdpprog.ModeAuto)
		if err != nil {
			return fmt.Errorf("attach redirect-all to %s: %w", t.dirIn.name, err)
		}
		closers = append(closers, a.Close)
		return nil
	})
	if err != nil {
		return nil, nil, nil, stop, err
	}
	f = NewForwarder(rx, tx, t.sinkIf.mac, t.dirOut.mac)
	// Pin it where afvs would pin its worker for the same queue, so that
	// the baseline and the director share the CPU layout.
	err = t.dir.Do(func() error {
		plan, err := nic.PlanCPUs(t.dirIn.name, 1, nil)
		if err != nil {
			return fmt.Errorf("plan baseline cpu: %w", err)
		}
		for _, a := range plan {
			if a.Queue == 0 {
				f.CPU = a.CPU
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, stop, err
	}
	done := make(chan error, 1)
	go func() { done <- f.Run() }()
	// Stop the loop before the sockets close under it.
	closers = append(closers, func() error { f.Stop(); return <-done })
	return f, rx, prog, stop, nil
}

// loadAvg reads the 1, 5 and 15 minute load averages; zeros if unreadable.
func loadAvg() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	for i, f := range strings.Fields(string(b)) {
		if i == 3 {
			break
		}
		out[i], _ = strconv.ParseFloat(f, 64)
	}
	return out
}

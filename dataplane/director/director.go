package director

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// Options configure a Director.
type Options struct {
	Interfaces []string       // receive VIP traffic here
	Mode       xdpprog.Mode   // XDP attach mode
	CPUs       map[string]int // "dev:queue" -> cpu overrides
	Frames     int            // UMEM frames per socket
	RxRing     int            // RX ring size per socket (0: xsk's default)
	FillRing   int            // fill ring size per socket (0: xsk's default)
	Capacity   int            // connection table entries
	Templates  int            // persistence templates
	NoNAT      bool           // no VS/NAT reply index (saves its memory; -m is refused)
	TCP        time.Duration  // --set tcp (0: IPVS default)
	TCPFin     time.Duration
	UDP        time.Duration
	Sched      sched.Options
	ICMPRate   int // ICMP errors a second, all workers together (0: DefaultICMPRate)
	ICMPBurst  int // and their burst (0: DefaultICMPBurst)
	// ICMPHostEvery limits the ICMP errors to one destination to one per
	// ICMPHostEvery, in bursts of ICMPHostBurst (0: the defaults; a
	// negative interval turns the per-destination limit off).
	ICMPHostEvery time.Duration
	ICMPHostBurst int
	// VIPMACs gives an interface one more destination MAC its steering
	// program redirects, besides the interface's own (a VRRP virtual MAC
	// the VIP answers with). Frames for any other MAC go to the kernel.
	VIPMACs map[string][6]byte
	// Poll is the workers' poll mode; nil means DefaultPoll. SetPoll
	// changes it while the director runs.
	Poll *PollConfig
	// SYN limits the new TCP connections per client address and per
	// service (all zero: no limit); SetSYNLimits changes them later.
	SYN dataplane.SYNLimits
	// BlockFor is how long the steering programs drop a source the SYN
	// limiter finds SYN.BlockFactor times over its rate (the XDP
	// blocklist); 0 never blocks.
	BlockFor time.Duration
	// BlockPrefix6 is the prefix length, 1 to 128, an IPv6 source is
	// blocked by (every address in its prefix); 0 means
	// xdpprog.DefaultBlockPrefix6.
	BlockPrefix6 int
	Log          *slog.Logger
	// Platform performs the privileged operations; nil means Kernel().
	// The Director closes what it opened through it, not the Platform.
	Platform Platform
	// Clock is the connection table's clock; nil means the system clock.
	Clock conntrack.Clock
}

// Director owns everything the daemon runs: the steering programs, the
// AF_XDP sockets, the workers, the connection table, and the published
// snapshot.
type Director struct {
	opt     Options
	log     *slog.Logger
	plat    Platform
	neigh   Neighbors
	icmp    *dataplane.ICMPLimiter
	icmpFwd *dataplane.ICMPLimiter // ICMP errors forwarded to real servers
	syn     *dataplane.SYNLimiter
	sp      *dataplane.SYNProxy // the SYN proxy's cookie key, services and hold slots
	kernel  *rawSender          // ICMP answers through the stack (kernelsend.go); nil: none
	block   *blocker            // nil when BlockFor is 0; blocklist.go
	blocks  atomic.Uint64       // sources put in the blocklist

	CT    *conntrack.Table
	Loads *sched.Loads
	reg   *dataplane.Registry
	snap  atomic.Pointer[dataplane.Snapshot]

	mu       sync.Mutex // serialises Apply and rebuilds
	ifaces   []dataplane.Iface
	natLocal []xdpprog.ServiceKey // the director's addresses in the steering keys (nat.go)
	slotOf   map[int]int          // ifindex -> slot

	steer    []Steering   // by ingress slot
	attach   []Attachment // by ingress slot, once attached
	queues   []rxQueue    // one per worker
	nIngress int          // ingress interfaces take slots 0..nIngress-1
	egress   map[int]*egressSlot
	// localVIPWarned are the services already logged as having a local
	// real server but a VIP that is not local (local.go).
	localVIPWarned map[vs.Key]bool
	// hops are the routes of the Apply in progress, looked up once by
	// prepareEgress and read by Route while the table compiles.
	hops    map[netip.Addr]hopResult
	sockets []Socket // the receiving sockets
	workers []*Worker
	local   localNode
	sreply  syncReplies // syncreply.go
	wg      sync.WaitGroup
	stop    chan struct{}
	rebuild chan struct{}
}

// egressSlot is an interface the director only sends on: TX-only sockets,
// one per queue (at most one per worker), shared by the workers
// round-robin. It is opened when a real server first routes through the
// interface and closed when none does any more.
type egressSlot struct {
	dev     string
	sockets []Socket
	ports   []TxPort
}

// rxQueue is one receiving socket: an ingress interface's queue. With
// more than one ingress interface the workers of the others transmit on it
// too, and mu serialises them with its owner (sharedPort).
type rxQueue struct {
	slot, queue int
	sock        Socket
	mu          *sync.Mutex
}

// New opens the dataplane on the configured interfaces and the
// egress interfaces that the initial table's real servers route through.
// Nothing forwards until Start. The phases run in order; a failure in any
// closes what the earlier ones opened.
func New(opt Options, t *vs.Table) (d *Director, err error) {
	if err := CheckOptions(opt); err != nil {
		return nil, err
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Platform == nil {
		opt.Platform = Kernel()
	}
	if opt.Clock == nil {
		opt.Clock = conntrack.SystemClock()
	}
	dir := &Director{opt: opt, log: opt.Log, plat: opt.Platform, reg: dataplane.NewRegistry(), slotOf: map[int]int{},
		egress: map[int]*egressSlot{}, stop: make(chan struct{}), rebuild: make(chan struct{}, 1)}
	d = dir
	defer func() {
		if err != nil {
			dir.Close()
		}
	}()
	phases := []struct {
		name string
		run  func() error
	}{
		{"connection table", d.openTable},
		{"icmp limiter", d.openICMP},
		{"ingress", d.openIngress},
		{"workers", d.makeWorkers},
		{"neighbours", d.watchNeighbors},
		{"apply", func() error { return d.Apply(t) }}, // opens the egress interfaces t needs

		{"attach", d.attachSteering},
	}
	for _, ph := range phases {
		if err := ph.run(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// openTable makes the connection table and the schedulers' load counters.
func (d *Director) openTable() error {
	d.Loads = sched.NewLoads(dataplane.MaxDests)
	ct, err := conntrack.New(conntrack.Config{Capacity: d.opt.Capacity, Templates: d.opt.Templates, Reverse: natIndex(d.opt),
		Timeouts: conntrack.DefaultTimeouts(), Clock: d.opt.Clock, Hooks: d.Loads})
	if err != nil {
		return fmt.Errorf("connection table: %w", err)
	}
	d.CT = ct
	d.CT.SetTimeouts(d.opt.TCP, d.opt.TCPFin, d.opt.UDP)
	return nil
}

// openICMP makes the ICMP error limiter the workers share.
func (d *Director) openICMP() error {
	o := &d.opt
	if o.ICMPRate == 0 {
		o.ICMPRate = dataplane.DefaultICMPRate
	}
	if o.ICMPBurst == 0 {
		o.ICMPBurst = dataplane.DefaultICMPBurst
	}
	icmp, err := dataplane.NewICMPLimiter(o.ICMPRate, o.ICMPBurst, nil)
	if err != nil {
		return err
	}
	if o.ICMPHostEvery == 0 {
		o.ICMPHostEvery = dataplane.DefaultICMPHostEvery
	}
	if o.ICMPHostBurst == 0 {
		o.ICMPHostBurst = dataplane.DefaultICMPHostBurst
	}
	if err := icmp.LimitPerHost(max(o.ICMPHostEvery, 0), o.ICMPHostBurst); err != nil {
		return err
	}
	d.icmp = icmp
	// ICMP errors forwarded to real servers have a budget of their own,
	// at the same director-wide rate; no per-host limit, since one router
	// may rightly report on many clients' connections.
	if d.icmpFwd, err = dataplane.NewICMPLimiter(o.ICMPRate, o.ICMPBurst, nil); err != nil {
		return err
	}
	d.syn, err = dataplane.NewSYNLimiter(o.SYN, nil)
	if err == nil {
		// A source is limited as the blocklist blocks it: an IPv6 one
		// by its block prefix.
		err = d.syn.SetPrefix6(d.blockPrefix6())
	}
	d.sp = dataplane.NewSYNProxy()
	if err == nil {
		var rerr error
		if d.kernel, rerr = newRawSender(); rerr != nil {
			d.log.Warn("no raw socket: ICMP errors about the director's own IPIP packets will not be answered", "err", rerr)
		}
	}
	return err
}

// SetSYNProxy says which services the SYN proxy serves: every eligible
// one (TCP, either family, all real servers VS/NAT) when global is set, and
// services' own settings over that.
func (d *Director) SetSYNProxy(global bool, services map[vs.Key]bool) { d.sp.Set(global, services) }

// SetSYNLimits changes the SYN rate limits the workers apply, from their
// next new connection, with full buckets. Invalid limits change nothing.
func (d *Director) SetSYNLimits(l dataplane.SYNLimits) error { return d.syn.Set(l) }

// SetSYNServiceRates gives services SYN rates of their own, by key,
// instead of SYN.PerService. Invalid rates change nothing.
func (d *Director) SetSYNServiceRates(rates map[vs.Key]int) error {
	return d.syn.SetServiceRates(rates)
}

// SYNLimits returns the SYN rate limits in force.
func (d *Director) SYNLimits() dataplane.SYNLimits { return d.syn.Limits() }

// openIngress gives each configured interface a slot, a steering program,
// and one receiving socket per RX queue registered with it. Ingress
// interfaces take the first slots.
func (d *Director) openIngress() error {
	for _, name := range d.opt.Interfaces {
		ifc, err := d.plat.Lookup(name)
		if err != nil {
			return err
		}
		if !ifc.IPv4.IsValid() {
			return fmt.Errorf("interface %s: has no IPv4 address", name)
		}
		slot := d.addIface(ifc)
		st, err := d.plat.LoadSteering(MaxSteeringKeys, max(ifc.RxQueues, 1))
		if err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		d.steer = append(d.steer, st)
		if err := st.SetOwnerMACs(ownerMACs(ifc.MAC, d.opt.VIPMACs, name)...); err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		if err := st.SetBlockPrefix6(d.blockPrefix6()); err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		for q := 0; q < max(ifc.RxQueues, 1); q++ {
			so := xsk.DefaultOptions()
			if d.opt.Frames > 0 {
				so.NumFrames = d.opt.Frames
			}
			if d.opt.RxRing > 0 {
				so.RxSize = d.opt.RxRing
			}
			if d.opt.FillRing > 0 {
				so.FillSize = d.opt.FillRing
			}
			so.TxBudget = 256
			s, err := d.plat.OpenSocket(ifc.Index, q, so)
			if err != nil {
				return fmt.Errorf("interface %s queue %d: %w", name, q, err)
			}
			d.sockets = append(d.sockets, s)
			if err := st.RegisterSocket(q, s); err != nil {
				return fmt.Errorf("interface %s queue %d: %w", name, q, err)
			}
			d.queues = append(d.queues, rxQueue{slot: slot, queue: q, sock: s})
		}
	}
	d.nIngress = len(d.ifaces)
	if d.nIngress > 1 {
		for i := range d.queues {
			d.queues[i].mu = new(sync.Mutex)
		}
	}
	return nil
}

// prepareEgress opens the egress interfaces t's real servers route
// through and the daemon has not opened yet. It refuses a real server on
// an address of this host. A real server without a route is left to Build,
// which keeps it unreachable until a route appears.
func (d *Director) prepareEgress(t *vs.Table) error {
	d.hops = map[netip.Addr]hopResult{}
	for _, s := range t.Services {
		for _, r := range s.Reals {
			if _, done := d.hops[r.Addr]; done {
				continue
			}
			hop, err := d.plat.Route(r.Addr)
			d.hops[r.Addr] = hopResult{hop, err}
			if err != nil {
				continue
			}
			if hop.Local {
				if err := d.openLocal(r.Addr, s.Key.String()); err != nil {
					return err
				}
				d.checkLocalVIP(s)
				continue
			}
			if slot, ok := d.slotOf[hop.Ifindex]; ok && slot < d.nIngress {
				continue // every worker sends on every receiving interface (txFor)
			}
			if slot, ok := d.slotOf[hop.Ifindex]; ok && d.egress[slot] != nil {
				continue
			}
			if err := d.openEgress(hop.Dev); err != nil {
				return fmt.Errorf("real server %s of service %s routes via %s: %w", r.Addr, s.Key, hop.Dev, err)
			}
		}
	}
	d.awaitNewNextHops()
	return nil
}

// hopResult is a route looked up once per Apply.
type hopResult struct {
	hop nic.Hop
	err error
}

// newHopWait bounds how long Apply waits for the MACs of next hops the
// snapshot in force does not use yet.
const newHopWait = 200 * time.Millisecond

// awaitNewNextHops asks for the MACs of the next hops that no real server
// of the snapshot in force uses, and waits a moment for them, so that a
// real server just added is not published unresolved (its first frames
// would be dropped as neighbor_unresolved, where the kernel's IPVS queues
// them until ARP answers). Next hops already in use are not waited for: a
// dead neighbour must not slow every rebuild.
func (d *Director) awaitNewNextHops() {
	if d.neigh == nil {
		return
	}
	known := map[netip.Addr]bool{}
	if s := d.snap.Load(); s != nil {
		for i := range s.Services {
			for _, ds := range s.Services[i].Dests {
				known[ds.NextHop] = true
			}
		}
	}
	type want struct {
		ifindex int
		nh      netip.Addr
	}
	var pending []want
	for _, h := range d.hops {
		if h.err != nil || h.hop.Local || known[h.hop.NextHop] {
			continue
		}
		known[h.hop.NextHop] = true
		if _, ok := d.neigh.Lookup(h.hop.Ifindex, h.hop.NextHop); !ok {
			// A failed ask leaves the hop unresolved (its frames count as
			// neighbor_unresolved) until the next Apply asks again; the
			// wait below is bounded either way.
			_ = d.neigh.Want(h.hop.Ifindex, h.hop.NextHop)
			pending = append(pending, want{h.hop.Ifindex, h.hop.NextHop})
		}
	}
	for end := time.Now().Add(newHopWait); len(pending) > 0 && time.Now().Before(end); {
		time.Sleep(2 * time.Millisecond)
		pending = slices.DeleteFunc(pending, func(w want) bool {
			_, ok := d.neigh.Lookup(w.ifindex, w.nh)
			return ok
		})
	}
}

// openEgress gives the interface dev a slot, if it has none, and TX-only
// sockets, and hands them to the workers.
func (d *Director) openEgress(dev string) error {
	ifc, err := d.plat.Lookup(dev)
	if err != nil {
		return err
	}
	if len(d.queues) == 0 {
		return errors.New("no workers to send with")
	}
	es := &egressSlot{dev: ifc.Name}
	n := min(max(ifc.RxQueues, 1), len(d.queues))
	for q := 0; q < n; q++ {
		so := xsk.DefaultOptions()
		so.RxSize, so.FillSize = 0, 64 // the kernel wants a fill ring on every UMEM; it stays empty
		so.NumFrames = 2048
		so.TxBudget = 256
		s, err := d.plat.OpenSocket(ifc.Index, q, so)
		if err != nil {
			for _, s := range es.sockets {
				s.Close()
			}
			return fmt.Errorf("egress interface %s queue %d: %w", ifc.Name, q, err)
		}
		es.sockets = append(es.sockets, s)
		tp := TxPort{Port: s}
		if len(d.queues) > n {
			tp.Mu = new(sync.Mutex)
		}
		es.ports = append(es.ports, tp)
	}
	slot, ok := d.slotOf[ifc.Index]
	if !ok {
		slot = d.addIface(ifc)
	}
	d.egress[slot] = es
	d.publishTX()
	d.log.Info("egress interface opened", "dev", ifc.Name, "slot", slot, "sockets", n)
	return nil
}

// closeUnusedEgress closes the egress interfaces no real server of the
// snapshot in force routes through. The workers get TX tables without
// them and finish the batches that may still use them first.
func (d *Director) closeUnusedEgress() {
	used := map[int]bool{}
	if s := d.snap.Load(); s != nil {
		for i := range s.Services {
			for _, ds := range s.Services[i].Dests {
				used[ds.Slot] = true
			}
		}
	}
	var gone []*egressSlot
	for slot, es := range d.egress {
		if !used[slot] {
			gone = append(gone, es)
			delete(d.egress, slot)
		}
	}
	if len(gone) == 0 {
		return
	}
	d.publishTX()
	for _, w := range d.workers {
		w.Quiet()
	}
	for _, es := range gone {
		for _, s := range es.sockets {
			s.Close()
		}
		d.log.Info("egress interface closed: no real server routes through it", "dev", es.dev)
	}
}

// publishTX gives every worker its TX table for the open interfaces.
func (d *Director) publishTX() {
	for i, w := range d.workers {
		w.SetTX(d.txFor(i))
	}
}

// makeWorkers plans a CPU for each receiving socket and makes its worker.
func (d *Director) makeWorkers() error {
	for i, q := range d.queues {
		ifc := d.ifaces[q.slot]
		nq := 0
		for _, o := range d.queues {
			if o.slot == q.slot {
				nq++
			}
		}
		plan, err := d.plat.PlanCPUs(ifc.Name, nq, d.overrides(ifc.Name))
		cpu := -1
		reason := "not pinned"
		if err != nil {
			d.log.Warn("cannot plan cpu pinning", "dev", ifc.Name, "err", err)
		} else {
			for _, a := range plan {
				if a.Queue == q.queue {
					cpu, reason = a.CPU, a.Reason
				}
			}
		}
		d.log.Info("worker", "dev", ifc.Name, "queue", q.queue, "cpu", cpu, "why", reason)
		c := new(dataplane.Counters)
		proc := dataplane.NewProcessor(d.CT, c, q.slot)
		proc.SetICMPLimiter(d.icmp)
		proc.SetICMPForwardLimiter(d.icmpFwd)
		proc.SetSYNProxy(d.sp)
		if d.kernel != nil {
			proc.SetKernelSender(d.kernel)
		}
		if d.opt.BlockFor > 0 {
			if d.block == nil {
				d.block = &blocker{ch: make(chan [16]byte, blockQueue)}
			}
			proc.SetSYNLimiter(d.syn, d.block)
		} else {
			proc.SetSYNLimiter(d.syn, nil)
		}
		var rx Port = q.sock
		if q.mu != nil {
			rx = sharedPort{q.sock, q.mu}
		}
		w := NewWorker(q.queue, cpu, rx, q.slot, d.txFor(i), &d.snap, proc, c, d.plat.Pin)
		w.Dev = ifc.Name
		w.localStack, w.localSteer = &d.local.stack, d.steer[q.slot]
		d.workers = append(d.workers, w)
		// The worker does not run yet: set its socket options here so the
		// log says what is in force from the first frame.
		pc := d.pollConfig()
		w.SetPoll(pc)
		w.applyPoll(w.pollCfg.Load())
		bp := "none (in-memory port)"
		if b, ok := w.BusyPoll(); ok {
			bp = b.String()
		}
		d.log.Info("worker poll mode", "dev", ifc.Name, "queue", q.queue, "poll", pc.String(), "busy_poll", bp)
	}
	return nil
}

// pollConfig is the poll mode in force.
func (d *Director) pollConfig() PollConfig {
	if d.opt.Poll == nil {
		return DefaultPoll()
	}
	return *d.opt.Poll
}

// SetPoll changes every worker's poll mode. A mode it refuses changes
// nothing. Workers take the new mode at their next empty turn.
func (d *Director) SetPoll(c PollConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pollConfig() == c {
		return nil
	}
	d.opt.Poll = &c
	for _, w := range d.workers {
		w.SetPoll(c)
	}
	d.log.Info("workers' poll mode changed", "poll", c.String())
	return nil
}

// txFor is worker i's TX table: its own receiving socket on its ingress
// slot, one receiving socket of every other ingress slot (taken under that
// socket's lock, see sharedPort), and its share of every egress slot's
// sockets.
func (d *Director) txFor(i int) []TxPort {
	q := d.queues[i]
	tx := make([]TxPort, len(d.ifaces))
	tx[q.slot] = TxPort{Port: q.sock}
	for slot := 0; slot < d.nIngress; slot++ {
		if slot == q.slot {
			continue
		}
		var qs []rxQueue
		for _, o := range d.queues {
			if o.slot == slot {
				qs = append(qs, o)
			}
		}
		if len(qs) > 0 {
			o := qs[i%len(qs)]
			tx[slot] = TxPort{Port: o.sock, Mu: o.mu}
		}
	}
	for slot, es := range d.egress {
		for len(tx) <= slot {
			tx = append(tx, TxPort{})
		}
		tx[slot] = es.ports[i%len(es.ports)]
	}
	return tx
}

// watchNeighbors starts the neighbour cache; a change rebuilds the
// snapshot.
func (d *Director) watchNeighbors() error {
	n, err := d.plat.Neighbors(nic.NeighborsOptions{
		OnChange: d.requestRebuild,
		OnError:  func(err error) { d.log.Warn("neighbour cache", "err", err) },
	})
	if err != nil {
		return err
	}
	d.neigh = n
	return nil
}

// attachSteering attaches each ingress interface's steering program, last,
// once the snapshot and the sockets are ready for what it redirects.
func (d *Director) attachSteering() error {
	for i, st := range d.steer {
		a, err := st.Attach(d.ifaces[i].Index, d.opt.Mode)
		if err != nil {
			return fmt.Errorf("attach steering program to %s: %w", d.ifaces[i].Name, err)
		}
		d.attach = append(d.attach, a)
		d.log.Info("steering program attached", "dev", d.ifaces[i].Name, "mode", a.Mode().String(), "link", "bpf_link")
	}
	return nil
}

// MaxSteeringKeys is how many (address, protocol, port) keys the steering
// programs' service map holds.
const MaxSteeringKeys = 4096

// CheckOptions reports what New would refuse in opt before it
// touches the network: no interface, ICMP limits, or a connection table
// the limits or the machine's memory refuse.
func CheckOptions(opt Options) error {
	if len(opt.Interfaces) == 0 {
		return errors.New("interfaces: at least one interface is required")
	}
	if opt.Poll != nil {
		if err := opt.Poll.Validate(); err != nil {
			return err
		}
	}
	rate, burst := opt.ICMPRate, opt.ICMPBurst
	if rate == 0 {
		rate = dataplane.DefaultICMPRate
	}
	if burst == 0 {
		burst = dataplane.DefaultICMPBurst
	}
	icmp, err := dataplane.NewICMPLimiter(rate, burst, nil)
	if err != nil {
		return err
	}
	every, hb := opt.ICMPHostEvery, opt.ICMPHostBurst
	if every == 0 {
		every = dataplane.DefaultICMPHostEvery
	}
	if hb == 0 {
		hb = dataplane.DefaultICMPHostBurst
	}
	if err := icmp.LimitPerHost(max(every, 0), hb); err != nil {
		return err
	}
	if err := opt.SYN.Validate(); err != nil {
		return err
	}
	if opt.BlockFor < 0 || opt.BlockFor > xdpprog.MaxBlockFor {
		return fmt.Errorf("defense.block_for = %s: must be 0 (never block) to %s", opt.BlockFor, xdpprog.MaxBlockFor)
	}
	return conntrack.CheckConfig(conntrack.Config{Capacity: opt.Capacity, Templates: opt.Templates, Reverse: natIndex(opt)})
}

// CheckSteering reports a snapshot with more steering keys than the
// steering map holds.
func CheckSteering(s *dataplane.Snapshot) error {
	if n := len(s.SteeringKeys()); n > MaxSteeringKeys {
		return fmt.Errorf("services: %d (address, protocol, port) keys to steer, firewall-mark port ranges included: the steering map holds %d", n, MaxSteeringKeys)
	}
	return nil
}

func (d *Director) overrides(dev string) map[int]int {
	out := map[int]int{}
	for k, cpu := range d.opt.CPUs {
		var q int
		if n, _ := fmt.Sscanf(k, dev+":%d", &q); n == 1 {
			out[q] = cpu
		}
	}
	return out
}

func (d *Director) addIface(ifc nic.Iface) int {
	slot := len(d.ifaces)
	var a [4]byte
	if ifc.IPv4.IsValid() {
		a = ifc.IPv4.As4()
	}
	d.ifaces = append(d.ifaces, dataplane.Iface{Slot: slot, Index: ifc.Index, Name: ifc.Name, MAC: ifc.MAC, MTU: ifc.MTU, Addr: a})
	setAddr6(&d.ifaces[slot], ifc) // platform6.go
	d.slotOf[ifc.Index] = slot
	return slot
}

// Route implements Resolver through the kernel's routing table.
func (d *Director) Route(dst netip.Addr) (dataplane.Route, error) {
	h, ok := d.hops[dst]
	if !ok {
		h.hop, h.err = d.plat.Route(dst)
	}
	hop, err := h.hop, h.err
	if err != nil {
		return dataplane.Route{}, err
	}
	if hop.Local {
		return dataplane.Route{Local: true}, nil
	}
	slot, ok := d.slotOf[hop.Ifindex]
	if !ok || (slot >= d.nIngress && d.egress[slot] == nil) {
		return dataplane.Route{}, fmt.Errorf("%s routes via %s, which afvs has not opened", dst, hop.Dev)
	}
	return dataplane.Route{Slot: slot, NextHop: hop.NextHop, EgressOnly: slot >= d.nIngress}, nil
}

// Neighbor implements Resolver through the neighbour cache, and registers
// the next hop so it is resolved and kept fresh.
func (d *Director) Neighbor(slot int, nh netip.Addr) ([6]byte, bool) {
	idx := d.ifaces[slot].Index
	mac, ok := d.neigh.Lookup(idx, nh)
	if !ok {
		_ = d.neigh.Want(idx, nh) // the next Apply or neighbour event asks again
	}
	return mac, ok
}

// Apply compiles t and publishes it. The old snapshot stays in force if it
// fails.
func (d *Director) Apply(t *vs.Table) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applyLocked(t)
}

// applyLocked opens the egress interfaces t needs, compiles and publishes
// it, and then closes the egress interfaces nothing routes through any
// more, also when t was refused (it may have opened one).
func (d *Director) applyLocked(t *vs.Table) error {
	defer d.closeUnusedEgress()
	defer func() { d.hops = nil }()
	if err := d.prepareEgress(t); err != nil {
		return err
	}
	prev := d.snap.Load()
	if err := d.publishLocked(t); err != nil {
		return err
	}
	d.logReachability(prev, d.snap.Load())
	return nil
}

// logReachability logs the real servers that became unreachable, with the
// reason, and those reachable again.
func (d *Director) logReachability(prev, cur *dataplane.Snapshot) {
	was := map[netip.Addr]string{}
	if prev != nil {
		for _, s := range prev.Services {
			for _, ds := range s.Dests {
				if ds.Unreachable != "" {
					was[ds.IP()] = ds.Unreachable
				}
			}
		}
	}
	now := map[netip.Addr]string{}
	for _, s := range cur.Services {
		for _, ds := range s.Dests {
			a := ds.IP()
			if ds.Unreachable == "" || now[a] != "" {
				continue
			}
			now[a] = ds.Unreachable
			if was[a] != ds.Unreachable {
				d.log.Warn("real server unreachable: its frames are dropped (no_egress) until a route appears", "real", a, "why", ds.Unreachable)
			}
		}
	}
	for a := range was {
		if now[a] == "" && slices.ContainsFunc(cur.Services, func(s dataplane.Service) bool {
			return slices.ContainsFunc(s.Dests, func(ds dataplane.Dest) bool { return ds.IP() == a })
		}) {
			d.log.Info("real server reachable again", "real", a)
		}
	}
}

// publishLocked puts t in force whole or not at all: compile (nothing
// changes), widen the steering set to the old and new keys, commit the
// plan, publish the snapshot, then narrow the steering set to the new
// keys. Until the commit every step can still fail and leaves everything as
// it was; after it nothing fails (a failed narrowing only leaves stale keys
// steered, dropped as no_service, and is retried).
func (d *Director) publishLocked(t *vs.Table) error {
	if err := d.checkNAT(t); err != nil {
		return err
	}
	prev := d.snap.Load()
	plan, err := dataplane.Compile(t, dataplane.BuildOptions{Registry: d.reg, Loads: d.Loads, Resolver: d, Ifaces: d.ifaces, Sched: d.opt.Sched, Prev: prev, Busy: d.busy(),
		Traffic: func(id uint32) dataplane.Traffic {
			return dataplane.SumTraffic(d.Counters(), func(c *dataplane.Counters) dataplane.Traffic { return c.Dest(id) })
		}})
	if err != nil {
		return err
	}
	snap := plan.Snap
	if err := CheckSteering(snap); err != nil {
		plan.Abort()
		return err
	}
	sk := append(steerKeys(snap.SteeringKeys()), d.localKeys(snap)...)
	var old []xdpprog.ServiceKey
	if prev != nil {
		old = append(steerKeys(prev.SteeringKeys()), d.natLocal...)
	}
	// Widen first, so a newly steered frame always finds its service in
	// the snapshot; if the union does not fit, the new set alone.
	if err := d.setSteering(append(slices.Clip(old), sk...)); err != nil {
		if err := d.setSteering(sk); err != nil {
			if rerr := d.setSteering(old); rerr != nil {
				d.log.Error("steering: cannot restore the keys in force", "err", rerr)
			}
			plan.Abort()
			return err
		}
	}
	if err := plan.Commit(); err != nil {
		if rerr := d.setSteering(old); rerr != nil {
			d.log.Error("steering: cannot restore the keys in force", "err", rerr)
		}
		return err
	}
	d.syn.Apply(snap) // services' own SYN rates follow their IDs
	d.sp.Apply(snap)  // and the proxied services theirs
	d.snap.Store(snap)
	d.setLocalGate(snap)
	d.natLocal = sk[len(snap.SteeringKeys()):]
	for _, k := range plan.IDs.Revived {
		d.log.Info("real server taken back from the trash with its connections", "service", k.Svc.String(), "real", netip.AddrPortFrom(k.Addr, k.Port).String())
	}
	if !subset(old, sk) {
		if err := d.setSteering(sk); err != nil {
			d.log.Warn("steering: stale services still steered (dropped as no_service) until the next rebuild", "err", err)
			d.requestRebuild()
		}
	}
	if len(snap.Unresolved) > 0 && (prev == nil || len(prev.Unresolved) != len(snap.Unresolved)) {
		d.log.Warn("next hops without a MAC: their frames are dropped (neighbor_unresolved) until they resolve", "next_hops", fmt.Sprint(snap.Unresolved))
	} else if prev != nil && len(prev.Unresolved) > 0 && len(snap.Unresolved) == 0 {
		d.log.Info("every next hop resolved")
	}
	return nil
}

func steerKeys(keys []dataplane.SteerKey) []xdpprog.ServiceKey {
	sk := make([]xdpprog.ServiceKey, len(keys))
	for i, k := range keys {
		sk[i] = xdpprog.ServiceKey{Addr: k.Addr, Proto: k.Proto, Port: k.Port, Source: k.Source}
	}
	return sk
}

// subset reports whether every key of a is in b.
func subset(a, b []xdpprog.ServiceKey) bool {
	in := make(map[xdpprog.ServiceKey]bool, len(b))
	for _, k := range b {
		in[k] = true
	}
	for _, k := range a {
		if !in[k] {
			return false
		}
	}
	return true
}

// setSteering gives every steering program keys.
func (d *Director) setSteering(keys []xdpprog.ServiceKey) error {
	for i, st := range d.steer {
		if err := st.SetServices(keys); err != nil {
			return fmt.Errorf("steering on %s: %w", d.ifaces[i].Name, err)
		}
	}
	return nil
}

// busy reports whether a dest ID is still referenced, as a dest's refcnt
// counts its connections and templates: by the load counters, and by the
// templates, which are counted once per call of the returned function.
func (d *Director) busy() func(id uint32) bool {
	var tmpl map[uint32]bool
	return func(id uint32) bool {
		if d.Loads.Active(id) != 0 || d.Loads.Inactive(id) != 0 {
			return true
		}
		if tmpl == nil {
			tmpl = d.templateRefs()
		}
		return tmpl[id]
	}
}

// templateRefs lists the dest IDs persistence templates point to.
func (d *Director) templateRefs() map[uint32]bool {
	tmpl := map[uint32]bool{}
	d.CT.Range(func(_ conntrack.Key, c conntrack.Conn, _ time.Duration, template bool) bool {
		if template {
			tmpl[c.Dest] = true
		}
		return true
	})
	return tmpl
}

// Snapshot returns the snapshot in force.
func (d *Director) Snapshot() *dataplane.Snapshot { return d.snap.Load() }

// DeletedDests gives the address of every real server in the registry's
// trash by dest ID: the deleted servers whose connections may still be in
// the table.
func (d *Director) DeletedDests() map[uint32]netip.AddrPort { return d.reg.TrashedAddrs() }

func (d *Director) requestRebuild() {
	select {
	case d.rebuild <- struct{}{}:
	default:
	}
}

// Start runs the workers and the housekeeping goroutines.
func (d *Director) Start() {
	for _, w := range d.workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			w.Run()
			if err := w.PinError(); err != nil {
				d.log.Warn("pin worker", "queue", w.Queue, "cpu", w.CPU, "err", err)
			}
		}()
	}
	d.wg.Add(1)
	go d.housekeeping()
	if d.block != nil {
		d.wg.Add(1)
		go d.runBlocklist()
	}
}

// housekeeping sweeps expired connections and rebuilds the snapshot when
// neighbours change.
func (d *Director) housekeeping() {
	defer d.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	ticks := 0
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
			// Release every connection due by now through the expiry
			// index, so the load counters the least-connection
			// schedulers read hear of an expiry within a tick, as they
			// would from IPVS's per-connection timers (lookups never see
			// expired entries regardless). Templates' slots are freed by
			// a slower cycle: lookups already judge them by time.
			d.CT.ExpireDue()
			d.CT.SweepTemplates(1024)
			d.CT.SweepReverse(1024)
			d.retrySyncedReplies() // syncreply.go
			if at, ok := d.reg.NextTrashRound(); ok && d.reg.Now() >= at {
				// Count the templates before taking the lock: a walk of
				// the whole table should not hold up a change.
				tmpl := d.templateRefs()
				d.mu.Lock()
				freed := d.reg.ExpireTrash(func(id uint32) bool {
					return d.Loads.Active(id) != 0 || d.Loads.Inactive(id) != 0 || tmpl[id]
				})
				d.mu.Unlock()
				if len(freed) > 0 {
					d.log.Debug("real servers freed from the trash", "ids", fmt.Sprint(freed))
				}
			}
			// Once a second, look again for routes to unreachable real
			// servers: no event announces a new route; and run IPVS's
			// defense_work_handler (levels from the table's fill, then
			// drop_entry while on).
			if ticks++; ticks%20 == 0 {
				d.CT.DefenseTick()
				if d.Snapshot().HasUnreachable() {
					d.requestRebuild()
				}
			}
			if ticks%20 == 0 {
				d.sweepLocal()
			}
		case <-d.rebuild:
			d.mu.Lock()
			if s := d.snap.Load(); s != nil {
				if err := d.applyLocked(s.Table); err != nil {
					d.log.Warn("rebuild after a neighbour or route change", "err", err)
				}
			}
			d.mu.Unlock()
		}
	}
}

// Counters returns every worker's counters, and then the counters of
// the local node's traffic that the steering program passed to the kernel.
func (d *Director) Counters() []*dataplane.Counters {
	out := make([]*dataplane.Counters, len(d.workers), len(d.workers)+1)
	for i, w := range d.workers {
		out[i] = w.C
	}
	// Last, the local node's frames that no worker saw (see local.go).
	return append(out, &d.local.c)
}

// Workers returns the workers.
func (d *Director) Workers() []*Worker { return d.workers }

// Steering returns the steering programs' counters summed.
func (d *Director) Steering() (xdpprog.StatsCounters, error) {
	var t xdpprog.StatsCounters
	for _, st := range d.steer {
		s, err := st.Stats()
		if err != nil {
			return t, err
		}
		t = addSteer(t, s)
	}
	return t, nil
}

// Close stops the workers, detaches the programs and closes the sockets. It
// is safe to call more than once and on a half-built Director.
func (d *Director) Close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	for _, w := range d.workers {
		w.Stop()
	}
	d.wg.Wait()
	for _, a := range d.attach {
		a.Close()
	}
	d.attach = nil
	for _, st := range d.steer {
		st.Close()
	}
	d.steer = nil
	for _, s := range d.sockets {
		s.Close()
	}
	d.sockets = nil
	if d.kernel != nil {
		d.kernel.Close()
		d.kernel = nil
	}
	if box := d.local.stack.Swap(nil); box != nil {
		box.Close()
	}
	for slot, es := range d.egress {
		for _, s := range es.sockets {
			s.Close()
		}
		delete(d.egress, slot)
	}
	if d.neigh != nil {
		d.neigh.Close()
		d.neigh = nil
	}
}

// ownerMACs are the destination MACs the steering program on interface
// name redirects: the interface's own, when it has one, and the configured
// VIP MAC. With neither it redirects nothing, and SetOwnerMACs gets none.
func ownerMACs(own [6]byte, vip map[string][6]byte, name string) [][6]byte {
	var macs [][6]byte
	if own != ([6]byte{}) {
		macs = append(macs, own)
	}
	if m, ok := vip[name]; ok {
		macs = append(macs, m)
	}
	return macs
}

func addSteer(a, b xdpprog.StatsCounters) xdpprog.StatsCounters {
	a.Total += b.Total
	a.Redirected += b.Redirected
	a.Fragments += b.Fragments
	a.PassNotIPv4 += b.PassNotIPv4
	a.PassTruncated += b.PassTruncated
	a.PassBadHeader += b.PassBadHeader
	a.PassNotL4 += b.PassNotL4
	a.PassNoService += b.PassNoService
	a.PassNoSocket += b.PassNoSocket
	a.PassOtherMAC += b.PassOtherMAC
	a.PassLocal += b.PassLocal
	a.ICMPErrors += b.ICMPErrors
	a.Blocked += b.Blocked
	return a
}

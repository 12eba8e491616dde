package sim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvsadm/apply"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// Options tune a simulation; the zero value is usable.
type Options struct {
	// Capacity is the connection table size; default 1<<14. The expiry
	// scan before each event reads one word per 56 slots, so a table sized
	// to the trace's concurrency, not the daemon's, keeps long traces
	// fast; a table too small shows up as table_full drops in the summary.
	Capacity int
	// Templates is the persistence template table size; default 1<<12.
	Templates int
	// Timeouts per TCP state and for UDP; the zero value means IPVS's.
	Timeouts conntrack.Timeouts
	// MaglevSize is mh's table size (a prime); 0 means 65537.
	MaglevSize int
	// Seed drives all the randomness of a run (twos' two choices and the
	// connection table's hash key, which decides evictions in a full
	// table), so one seed gives one output.
	Seed uint64
	// MaxSamples bounds the points per server kept for the plot; default
	// 2048.
	MaxSamples int
	// Sysctls are the IPVS sysctls; nil means the kernel's defaults.
	Sysctls *conntrack.Sysctls
	// Observe, if set, is called after every event with what it did and
	// every real server's counters (see Step).
	Observe func(*Step)
}

// Run replays trace through the dataplane's processor with t as the initial
// service table, writes one decision line per new connection to out, and
// returns the summary. t is not modified. A malformed trace line, an
// out-of-order time or an admin command the table rejects stops the run with
// an error naming the line.
func Run(t *vs.Table, trace io.Reader, out io.Writer, opt Options) (*Summary, error) {
	s, err := newSimulator(t, opt)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(out, 64<<10)
	if err := s.run(trace, w); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("write decisions: %w", err)
	}
	return s.summary(), nil
}

// simulator is one run's state. It is single-threaded.
type simulator struct {
	opt   Options
	clock *conntrack.ManualClock
	loads *sched.Loads
	hooks *peakHooks
	ct    *conntrack.Table
	reg   *dataplane.Registry
	c     *dataplane.Counters
	p     *dataplane.Processor
	snap  *dataplane.Snapshot
	table *vs.Table
	sopt  sched.Options
	iface []dataplane.Iface

	buf  []byte
	line []byte
	now  int64 // time_ms of the last event
	seen bool  // an event has been processed

	services []*serviceRec
	svcIndex map[vs.Key]int
	servers  []*serverRec
	srvIndex map[serverKey]int
	owner    []int32 // dest ID -> server record, -1 none

	series series
	sum    Summary
	step   Step
}

type serverKey struct {
	svc  int
	addr netip.AddrPort
}

type serviceRec struct {
	key     vs.Key
	sched   string
	servers []int
	epoch   int // connections scheduled since the last flush of expected shares
}

type serverRec struct {
	svc      int
	addr     netip.AddrPort
	id       uint32
	weight   int32
	present  bool
	conns    int
	expected float64 // sum over connections of this server's weight share then
	peak     int32
}

func newSimulator(t *vs.Table, opt Options) (*simulator, error) {
	if opt.Capacity == 0 {
		opt.Capacity = 1 << 14
	}
	if opt.Templates == 0 {
		opt.Templates = 1 << 12
	}
	if opt.MaxSamples == 0 {
		opt.MaxSamples = 2048
	}
	if opt.MaxSamples < 2 {
		return nil, fmt.Errorf("sim options: max samples %d: must be at least 2", opt.MaxSamples)
	}
	if t == nil {
		return nil, errors.New("sim: no service table")
	}
	s := &simulator{
		opt:      opt,
		clock:    &conntrack.ManualClock{},
		loads:    sched.NewLoads(dataplane.MaxDests),
		c:        new(dataplane.Counters),
		buf:      make([]byte, chunkSize),
		svcIndex: map[vs.Key]int{},
		srvIndex: map[serverKey]int{},
		owner:    make([]int32, dataplane.MaxDests),
		iface:    []dataplane.Iface{{Slot: 0, Index: 1, Name: "sim0", MAC: directorMAC, MTU: 1500, Addr: [4]byte{198, 18, 0, 1}}},
	}
	s.reg = dataplane.NewRegistryClock(s.clock.Now)
	for i := range s.owner {
		s.owner[i] = -1
	}
	s.hooks = &peakHooks{loads: s.loads, peak: make([]int32, dataplane.MaxDests)}
	rng := rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15))
	s.sopt = sched.Options{
		MaglevSize: opt.MaglevSize,
		Now:        s.clock.Now,
		Rand:       func(n uint32) uint32 { return rng.Uint32N(n) },
	}
	// The table's hash key comes from the seed too: eviction in a full
	// table follows the hash, so a random key would make runs differ.
	var key [32]byte
	for i := 0; i < len(key); i += 8 {
		binary.LittleEndian.PutUint64(key[i:], rng.Uint64())
	}
	var err error
	s.ct, err = conntrack.New(conntrack.Config{Capacity: opt.Capacity, Templates: opt.Templates, Reverse: opt.Capacity, Timeouts: opt.Timeouts, Clock: s.clock, Hooks: s.hooks, HashKey: &key})
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if opt.Sysctls != nil {
		if err := s.ct.SetSysctls(*opt.Sysctls); err != nil {
			s.ct.Close()
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	s.p = dataplane.NewProcessor(s.ct, s.c, 0)
	s.series.max = opt.MaxSamples
	if err := s.publish(t.Clone()); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return s, nil
}

// publish builds and installs the snapshot for t, as the control plane does
// after a change: same registry (stable IDs), same load counters, previous
// snapshot's unchanged schedulers kept.
func (s *simulator) publish(t *vs.Table) error {
	s.flushExpected()
	snap, err := dataplane.Build(t, dataplane.BuildOptions{Registry: s.reg, Loads: s.loads,
		Resolver: dataplane.StaticResolver{}, Ifaces: s.iface, Sched: s.sopt, Prev: s.snap})
	if err != nil {
		return err
	}
	s.snap, s.table = snap, t
	for _, r := range s.servers {
		r.present = false
	}
	for i := range snap.Services {
		cs := &snap.Services[i]
		si, ok := s.svcIndex[cs.Key]
		if !ok {
			si = len(s.services)
			s.svcIndex[cs.Key] = si
			s.services = append(s.services, &serviceRec{key: cs.Key})
		}
		sr := s.services[si]
		sr.sched = cs.Sched.Name()
		for j := range cs.Dests {
			d := &cs.Dests[j]
			k := serverKey{si, netip.AddrPortFrom(d.IP(), d.Port)}
			ri, ok := s.srvIndex[k]
			if !ok {
				ri = len(s.servers)
				s.srvIndex[k] = ri
				s.servers = append(s.servers, &serverRec{svc: si, addr: k.addr})
				sr.servers = append(sr.servers, ri)
				s.series.addServer()
			}
			r := s.servers[ri]
			if prev := s.owner[d.ID]; prev != int32(ri) {
				// The registry hands an ID to a new server only once the
				// old one holds no connections; close the old one's peak.
				if prev >= 0 {
					s.servers[prev].peak = max(s.servers[prev].peak, s.hooks.peak[d.ID])
				}
				s.hooks.peak[d.ID] = 0
				s.owner[d.ID] = int32(ri)
			}
			r.id, r.weight, r.present = d.ID, d.Weight, true
		}
	}
	return nil
}

// flushExpected adds each service's connections since the last change to
// its servers' expected counts, split by the weights in force meanwhile.
func (s *simulator) flushExpected() {
	for _, sr := range s.services {
		if sr.epoch == 0 {
			continue
		}
		var total float64
		for _, ri := range sr.servers {
			if r := s.servers[ri]; r.present {
				total += float64(r.weight)
			}
		}
		if total > 0 {
			for _, ri := range sr.servers {
				if r := s.servers[ri]; r.present {
					r.expected += float64(sr.epoch) * float64(r.weight) / total
				}
			}
		}
		sr.epoch = 0
	}
}

func (s *simulator) run(trace io.Reader, w *bufio.Writer) error {
	sc := bufio.NewScanner(trace)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev Event
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		trimmed := trimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		if err := parseEvent(trimmed, n, &ev); err != nil {
			return err
		}
		if s.seen && ev.TimeMS < s.now {
			return fmt.Errorf("trace line %d: time_ms %d: earlier than the previous event's %d; events must be in time order", n, ev.TimeMS, s.now)
		}
		s.advance(ev.TimeMS)
		if ev.Admin != "" {
			if err := s.admin(&ev); err != nil {
				return err
			}
		} else {
			s.packet(&ev, w)
		}
		s.series.sample(ev.TimeMS, s)
		if s.opt.Observe != nil {
			s.observe(&ev)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read trace after line %d: %w", n, err)
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// advance moves the clock to ms and releases every connection whose
// timeout has passed by then, as their timers would have, so the load
// counters the next event meets are exact.
func (s *simulator) advance(ms int64) {
	if !s.seen {
		s.seen = true
		s.sum.Start = ms
	}
	// The trash timer's rounds due on the way, each at its own time and
	// with the connections alive then, as the kernel's timer fires.
	end := time.Duration(ms) * time.Millisecond
	for {
		at, ok := s.reg.NextTrashRound()
		if !ok || at > end {
			break
		}
		if at > s.clock.Now() {
			s.clock.Set(at)
		}
		s.ct.ExpireDue()
		s.expireTrash()
	}
	s.now = ms
	s.sum.End = ms
	s.clock.Set(time.Duration(ms) * time.Millisecond)
	s.ct.ExpireDue()
	s.expireTrash()
}

// expireTrash runs the registry's trash timer rounds due by now, with the
// connections and templates alive now as each dest's references.
func (s *simulator) expireTrash() {
	if at, ok := s.reg.NextTrashRound(); !ok || s.clock.Now() < at {
		return
	}
	tmpl := map[uint32]bool{}
	s.ct.Range(func(_ conntrack.Key, c conntrack.Conn, _ time.Duration, template bool) bool {
		if template {
			tmpl[c.Dest] = true
		}
		return true
	})
	s.reg.ExpireTrash(func(id uint32) bool {
		return s.loads.Active(id) != 0 || s.loads.Inactive(id) != 0 || tmpl[id]
	})
}

// packet runs one packet event through the processor and writes a decision
// line when it opened a connection.
func (s *simulator) packet(ev *Event, w *bufio.Writer) {
	s.sum.Packets++
	if ev.Reply {
		s.reply(ev)
		return
	}
	n := writeFrame(s.buf, ev)
	// Process leaves Last alone when it drops a frame before looking up a
	// connection (no such service), so clear it rather than report the
	// previous packet's decision twice.
	s.p.Last = dataplane.Decision{}
	s.p.Process(s.snap, s.buf, headroom, n)
	d := &s.p.Last
	if !d.New {
		return
	}
	s.sum.Conns++
	b := s.line[:0]
	b = strconv.AppendInt(b, ev.TimeMS, 10)
	if ev.Proto == header.ProtocolUDP {
		b = append(b, ",udp,"...)
	} else {
		b = append(b, ",tcp,"...)
	}
	b = ev.Client.AppendTo(b)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(ev.CPort), 10)
	b = append(b, ',')
	b = ev.VIP.AppendTo(b)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(ev.VPort), 10)
	b = append(b, ',')
	if d.Found {
		_, dest, _ := s.snap.DestByID(d.Dest)
		b = netip.AddrPortFrom(dest.IP(), dest.Port).AppendTo(b) // [addr]:port for IPv6
		if d.Template {
			s.sum.Templated++
		}
		if ri := s.owner[d.Dest]; ri >= 0 {
			r := s.servers[ri]
			r.conns++
			s.services[r.svc].epoch++
		}
	} else {
		b = append(b, '-')
		s.sum.Dropped++
	}
	b = append(b, '\n')
	_, _ = w.Write(b) // a write error stays in w and is reported by Flush
	s.line = b
}

// reply runs the real server's reply of ev's flow through the processor:
// from the flow's real server (its port, or the flow's for a port-0
// server) to the client. Only a VS/NAT connection takes it; any other is
// dropped and counted, as a director that never sees DR or TUN replies
// would have no use for one. It writes no decision line.
func (s *simulator) reply(ev *Event) {
	k := conntrack.Key{Proto: ev.Proto, CPort: ev.CPort, VPort: ev.VPort,
		CAddr: ev.Client.As16(), VAddr: ev.VIP.As16()}
	src, sport := ev.VIP, ev.VPort
	if c, ok := s.ct.Lookup(&k); ok {
		if _, d, ok := s.snap.DestByID(c.Dest); ok {
			src = d.IP()
			if d.Port != 0 {
				sport = d.Port
			}
		}
	}
	n := writePacket(s.buf, ev.Proto, src, sport, ev.Client, ev.CPort, ev.Flags)
	s.p.Last = dataplane.Decision{}
	s.p.Process(s.snap, s.buf, headroom, n)
}

// admin applies an admin event: parse as ipvsadm, apply to a copy of the
// table, publish the rebuilt snapshot, and measure what moved.
func (s *simulator) admin(ev *Event) error {
	s.sum.Admin++
	cmd, err := ipvsadm.Parse(strings.Fields(ev.Admin))
	if err != nil {
		return fmt.Errorf("trace line %d: admin %q: %w", ev.Line, ev.Admin, err)
	}
	if cmd.Kind == ipvsadm.SetTimeout {
		sec := func(v uint32) time.Duration { return time.Duration(v) * time.Second }
		s.ct.SetTimeouts(sec(cmd.Timeouts.TCP), sec(cmd.Timeouts.TCPFin), sec(cmd.Timeouts.UDP))
		s.sum.AdminEvents = append(s.sum.AdminEvents, AdminEffect{Line: ev.Line, TimeMS: ev.TimeMS, Args: ev.Admin})
		return nil
	}
	next := s.table.Clone()
	if err := apply.Command(next, cmd); err != nil {
		return fmt.Errorf("trace line %d: admin %q: %w", ev.Line, ev.Admin, err)
	}
	before := s.liveSet()
	prevTable := s.table
	if err := s.publish(next); err != nil {
		return fmt.Errorf("trace line %d: admin %q: %w", ev.Line, ev.Admin, err)
	}
	eff, err := s.moved(before, prevTable, next)
	if err != nil {
		return fmt.Errorf("trace line %d: admin %q: probe: %w", ev.Line, ev.Admin, err)
	}
	eff.Line, eff.TimeMS, eff.Args = ev.Line, ev.TimeMS, ev.Admin
	s.sum.AdminEvents = append(s.sum.AdminEvents, eff)
	return nil
}

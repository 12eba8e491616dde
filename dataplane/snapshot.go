package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// Iface is an interface the director can send on. Its Slot indexes the
// workers' TX sockets, so slots are fixed for the daemon's lifetime.
type Iface struct {
	Slot  int
	Index int
	Name  string
	MAC   [6]byte
	MTU   int
	Addr  [4]byte // the director's IPv4 address there: the outer source for VS/TUN
	// Addr6 is the director's IPv6 address there, the outer source of
	// IP6IP6 and IP4IP6 tunnels; HaveAddr6 says there is one.
	Addr6     [16]byte
	HaveAddr6 bool
}

// Route is where a real server is reached: the egress slot and next hop.
type Route struct {
	Slot    int
	NextHop netip.Addr
	// Local: the address is the director's own; its connections go to
	// the director's network stack (Slot and NextHop unused).
	Local bool
	// EgressOnly: the slot's interface only sends (afvs does not receive
	// on it), so a VS/NAT real server there could not send its replies
	// back to afvs.
	EgressOnly bool
}

// Resolver answers the kernel questions a snapshot needs: the route to a
// real server and the MAC of a next hop. Implementations must not block on
// the network; an unknown neighbour is reported as not ok and resolved in the
// background.
type Resolver interface {
	Route(dst netip.Addr) (Route, error)
	Neighbor(slot int, nextHop netip.Addr) ([6]byte, bool)
}

// Snapshot is the immutable forwarding state the workers read. Build makes
// one; nothing changes it afterwards.
type Snapshot struct {
	svcIndex   svcTable
	svcIndex6  svcTable6 // IPv6 services (forward6.go)
	natSrc     svcTable  // (address, protocol, port) of every VS/NAT real server: see nat.go
	natSrc6    svcTable6 // the same of every IPv6 VS/NAT real server: see nat6.go
	Services   []Service
	Ifaces     []Iface
	destLoc    []destLoc    // by dest ID: where it lives; svc = -1 when absent
	Table      *vs.Table    // the model it was built from
	Unresolved []netip.Addr // next hops without a MAC when built
	// destBase holds, by dest ID, the traffic counted when the ID's
	// counters last restarted (IDPlan.Restarted); the listings count from
	// there. Carried from snapshot to snapshot.
	destBase map[uint32]Traffic
}

// RestartBase returns the traffic counted for dest ID id before its
// counters last restarted (IDPlan.Restarted), if they did: ipvsadm's stats
// count from there.
func (s *Snapshot) RestartBase(id uint32) (Traffic, bool) {
	b, ok := s.destBase[id]
	return b, ok
}

type destLoc struct {
	// d is &Services[svc].Dests[idx], so that dest, on every frame, is
	// one load and a compare instead of a chain of dependent loads and
	// bounds checks through both slices.
	d        *Dest
	svc, idx int32
}

// Service is a compiled virtual service.
type Service struct {
	Key      vs.Key
	ID       uint32
	Sched    sched.Scheduler
	schedSig string
	Dests    []Dest
	Persist  time.Duration // 0: not persistent
	Mask     [4]byte
	Mask6    [16]byte // an IPv6 service's persistence mask (-M as a prefix)
	PortZero bool
	// OnePacket: one-packet scheduling (ipvsadm -o). A UDP datagram that
	// no connection matches is scheduled on its own and forwarded, and
	// no connection is kept (see Processor.schedule).
	OnePacket bool
}

// Dest is a compiled real server.
type Dest struct {
	ID      uint32
	Addr    [4]byte
	Addr6   [16]byte // an IPv6 real server's address, when Is6
	Is6     bool
	Port    uint16
	Weight  int32
	Fwd     vs.Fwd
	Slot    int // egress slot, -1 if no route
	NextHop netip.Addr
	MAC     [6]byte
	HaveMAC bool
	// Unreachable says why the real server has no egress (Slot -1).
	Unreachable string
	// Local: the address is the director's own (IPVS's local node); its
	// connections are delivered to the director's network stack.
	Local bool
}

// lookup finds the service for a destination, exact port first, then a
// port-0 (all ports) service.
func (s *Snapshot) lookup(addr [4]byte, proto uint8, port uint16) (int32, bool) {
	return s.svcIndex.lookup(addr, proto, port)
}

// dest returns the live real server with ID id in service svc, if any.
func (s *Snapshot) dest(svc int32, id uint32) (*Dest, bool) {
	if int(id) >= len(s.destLoc) {
		return nil, false
	}
	l := &s.destLoc[id]
	if l.svc != svc {
		return nil, false
	}
	return l.d, true
}

// DestByID returns the real server with ID id and its service, if it is in
// this snapshot.
func (s *Snapshot) DestByID(id uint32) (*Service, *Dest, bool) {
	if int(id) >= len(s.destLoc) || s.destLoc[id].svc < 0 {
		return nil, nil, false
	}
	l := s.destLoc[id]
	svc := &s.Services[l.svc]
	return svc, &svc.Dests[l.idx], true
}

// HasUnreachable reports whether a real server of s has no egress.
func (s *Snapshot) HasUnreachable() bool {
	if s == nil {
		return false
	}
	for i := range s.Services {
		for _, d := range s.Services[i].Dests {
			if d.Unreachable != "" {
				return true
			}
		}
	}
	return false
}

// ServiceByKey returns the compiled service for k.
func (s *Snapshot) ServiceByKey(k vs.Key) (*Service, bool) {
	for i := range s.Services {
		if svcMapKey(s.Services[i].Key) == svcMapKey(k) {
			return &s.Services[i], true
		}
	}
	return nil, false
}

// BuildOptions are the inputs of Build besides the model.
type BuildOptions struct {
	Registry *Registry
	Loads    *sched.Loads
	Resolver Resolver
	Ifaces   []Iface
	Sched    sched.Options
	Prev     *Snapshot // schedulers whose inputs did not change are kept
	// Busy reports whether a dest ID still has connections or templates,
	// so its ID is not reused yet; nil means it has connections in Loads.
	Busy func(id uint32) bool
	// Traffic reads a dest ID's traffic counters now, so the snapshot can
	// note where restarted counters start; with nil they are not noted.
	Traffic func(id uint32) Traffic
}

// maxServiceKeys bounds how many (addr, proto, port) keys firewall-mark
// port ranges may expand to.
const maxServiceKeys = 1 << 20

// Build compiles t and commits the result: Compile, then Plan.Commit.
func Build(t *vs.Table, o BuildOptions) (*Snapshot, error) {
	p, err := Compile(t, o)
	if err != nil {
		return nil, err
	}
	if err := p.Commit(); err != nil {
		return nil, err
	}
	return p.Snap, nil
}

// Plan is a compiled table that is not in force yet. Commit puts what it
// needs in force (IDs, thresholds, schedulers); the caller then publishes
// Snap. Abort drops it, leaving everything as it was.
type Plan struct {
	Snap *Snapshot
	// IDs is the registry's part: which real servers it revives from the
	// trash, moves there, or restarts the counters of.
	IDs *IDPlan

	reg        *Registry
	loads      *sched.Loads
	prev       *Snapshot
	fresh      []sched.Scheduler // compiled for this plan
	thresholds []threshold
	done       bool
}

type threshold struct {
	id           uint32
	upper, lower uint32
}

// Compile compiles t into a Plan without changing anything in force: the
// registry, the load counters' thresholds and the previous snapshot's
// schedulers are left alone until Plan.Commit. It fails, naming the
// service, when a scheduler is unknown, keys collide or IDs run out; a real
// server without a route is kept but unreachable (its frames count as
// no_egress), because routes come and go at run time.
func Compile(t *vs.Table, o BuildOptions) (_ *Plan, err error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	busy := o.Busy
	if busy == nil {
		busy = func(id uint32) bool {
			return o.Loads != nil && (o.Loads.Active(id) != 0 || o.Loads.Inactive(id) != 0)
		}
	}
	ids, err := o.Registry.Plan(t, busy)
	if err != nil {
		return nil, err
	}
	svcIDs, destIDs := ids.Svc, ids.Dest
	snap := &Snapshot{
		svcIndex: svcTable{},
		Ifaces:   o.Ifaces,
		destLoc:  make([]destLoc, MaxDests),
		Table:    t.Clone(),
	}
	for i := range snap.destLoc {
		snap.destLoc[i].svc = -1
	}
	snap.destBase = map[uint32]Traffic{}
	if o.Prev != nil {
		snap.destBase = maps.Clone(o.Prev.destBase)
	}
	for _, id := range ids.Restarted {
		if o.Traffic != nil {
			snap.destBase[id] = o.Traffic(id)
		} else {
			delete(snap.destBase, id)
		}
	}
	p := &Plan{Snap: snap, IDs: ids, reg: o.Registry, loads: o.Loads, prev: o.Prev}
	defer func() {
		if err != nil {
			p.Abort()
		}
	}()
	keys := 0
	type pendingSched struct {
		svc   int
		name  string
		dests []sched.Dest
		flags sched.Flags
		prev  sched.Scheduler
	}
	var pending []pendingSched
	for si, s := range t.Services {
		cs := Service{Key: s.Key, ID: svcIDs[svcMapKey(s.Key)], PortZero: s.FWMark == 0 && s.Port == 0, OnePacket: s.OnePacket}
		if s.Persistent {
			cs.Persist = time.Duration(s.Timeout) * time.Second
			cs.Mask, cs.Mask6 = persistMasks(s.Netmask, s.Is6())
		}
		sds := make([]sched.Dest, 0, len(s.Reals))
		// Dests compile in the kernel's list order, newest first, which
		// every scheduler's tie-breaks follow (see sched.KernelOrder).
		for di, r := range sched.KernelOrder(s.Reals) {
			id := destIDs[DestKey{svcMapKey(s.Key), r.Addr, r.Port}]
			d := Dest{ID: id, Port: r.Port, Weight: r.Weight, Fwd: r.Fwd, Slot: -1}
			d.setAddr(r.Addr)
			if o.Resolver != nil {
				if rt, err := o.Resolver.Route(r.Addr); err == nil && rt.Local {
					d.Local = true
				} else if err == nil && r.Fwd == vs.Masq && rt.EgressOnly {
					d.Unreachable = natEgressOnly(rt.Slot, o.Ifaces)
				} else if err == nil {
					d.Slot, d.NextHop = rt.Slot, rt.NextHop
					d.MAC, d.HaveMAC = o.Resolver.Neighbor(rt.Slot, rt.NextHop)
					if !d.HaveMAC {
						snap.Unresolved = append(snap.Unresolved, rt.NextHop)
					}
				} else {
					d.Unreachable = err.Error()
				}
				d.check6(s.Is6(), o.Ifaces) // forward6.go
			}
			p.thresholds = append(p.thresholds, threshold{id, r.Upper, r.Lower})
			cs.Dests = append(cs.Dests, d)
			snap.destLoc[id] = destLoc{svc: int32(si), idx: int32(di)}
			sds = append(sds, sched.Dest{ID: id, Addr: r.Addr.As16(), Port: r.Port, Weight: r.Weight, Upper: r.Upper, Lower: r.Lower})
		}
		cs.schedSig = fmt.Sprint(s.Sched, s.SchedFlags, sds)
		var prevSched sched.Scheduler
		if o.Prev != nil {
			if ps, ok := o.Prev.ServiceByKey(s.Key); ok {
				if ps.schedSig == cs.schedSig {
					cs.Sched = ps.Sched
				} else if ps.Sched != nil && ps.Sched.Name() == s.Sched {
					// IPVS keeps a scheduler's state (rr position, wrr
					// weight, lblc cache, mh's last weights) across edits.
					prevSched = ps.Sched
				}
			}
		}
		if cs.Sched == nil {
			var flags sched.Flags
			if len(s.SchedFlags) > 0 {
				if flags, err = sched.ParseFlags(s.Sched, strings.Join(s.SchedFlags, ",")); err != nil {
					return nil, fmt.Errorf("service %s: %w", s.Key, err)
				}
			}
			pending = append(pending, pendingSched{svc: si, name: s.Sched, dests: sds, flags: flags, prev: prevSched})
		}
		snap.Services = append(snap.Services, cs)
		for di := range cs.Dests { // the service's dests are final: point at them
			snap.destLoc[cs.Dests[di].ID].d = &cs.Dests[di]
		}
		snap.addNATSources(t, &s, int32(si))

		add := func(a netip.Addr, port uint16, proto uint8) error {
			if prev, ok := snap.indexGet(a, proto, port); ok && int(prev) != si {
				return fmt.Errorf("service %s: %s/%s is already served by %s", s.Key, netip.AddrPortFrom(a, port), vs.Proto(proto), t.Services[prev].Key)
			}
			keys++
			if keys > maxServiceKeys {
				return fmt.Errorf("service %s: firewall-mark port ranges expand to more than %d keys", s.Key, maxServiceKeys)
			}
			snap.indexSet(a, proto, port, int32(si))
			return nil
		}
		if s.FWMark == 0 {
			if err := add(s.Addr, s.Port, uint8(s.Proto)); err != nil {
				return nil, err
			}
			continue
		}
		g, _ := t.MarkGroup(s.FWMark)
		for _, m := range g.Matches {
			if m.Addr.Is6() != s.Is6() {
				continue // it feeds the mark's service of its own family
			}
			if m.PortLo == 0 {
				if err := add(m.Addr, 0, uint8(m.Proto)); err != nil {
					return nil, err
				}
				continue
			}
			for port := int(m.PortLo); port <= int(m.PortHi); port++ {
				if err := add(m.Addr, uint16(port), uint8(m.Proto)); err != nil {
					return nil, err
				}
			}
		}
	}
	// Build the schedulers last. Compiling one reads its predecessor's
	// state but leaves it in force; Commit detaches the predecessors.
	for _, ps := range pending {
		so := o.Sched
		so.Prev = ps.prev
		so.IPv6 = t.Services[ps.svc].Is6()
		sc, err := sched.Compile(ps.name, ps.dests, ps.flags, o.Loads, so)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", t.Services[ps.svc].Key, err)
		}
		snap.Services[ps.svc].Sched = sc
		p.fresh = append(p.fresh, sc)
	}
	return p, nil
}

// Commit puts p in force: the registry takes its IDs (and trash), the load
// counters its -x/-y thresholds, and the previous snapshot's schedulers
// that p does not carry on are detached from the load counters. The caller
// publishes p.Snap next. It fails, changing nothing, only when the registry
// changed since Compile (callers serialise their changes, so this means a
// bug); p is then aborted.
func (p *Plan) Commit() error {
	if p.done {
		return errors.New("plan already committed or aborted")
	}
	if err := p.reg.Commit(p.IDs); err != nil {
		p.Abort()
		return err
	}
	p.done = true
	if p.loads != nil {
		for _, th := range p.thresholds {
			p.loads.SetThresholds(th.id, th.upper, th.lower)
		}
	}
	for _, sc := range p.fresh {
		sched.Install(sc, nil)
	}
	if p.prev != nil {
		kept := map[sched.Scheduler]bool{}
		for _, cs := range p.Snap.Services {
			kept[cs.Sched] = true
		}
		for _, ps := range p.prev.Services {
			if ps.Sched != nil && !kept[ps.Sched] {
				sched.Release(ps.Sched)
			}
		}
	}
	return nil
}

// Abort drops an uncommitted plan: the schedulers compiled for it stop
// following the load counters. Aborting twice, or after Commit, does
// nothing.
func (p *Plan) Abort() {
	if p.done {
		return
	}
	p.done = true
	for _, sc := range p.fresh {
		sched.Release(sc)
	}
}

// SteeringKeys lists the (addr, proto, port) triples the XDP program must
// redirect.
func (s *Snapshot) SteeringKeys() []SteerKey {
	out := make([]SteerKey, 0, s.svcIndex.len()+s.svcIndex6.len())
	s.svcIndex.each(func(k svcKey, _ int32) {
		out = append(out, SteerKey{Addr: netip.AddrFrom4(k.addr), Proto: k.proto, Port: k.port})
	})
	s.svcIndex6.each(func(k svcKey6, _ int32) {
		out = append(out, SteerKey{Addr: netip.AddrFrom16(k.addr), Proto: k.proto, Port: k.port})
	})
	out = append(out, s.NATSources()...)
	slices.SortFunc(out, func(a, b SteerKey) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		if a.Proto != b.Proto {
			return int(a.Proto) - int(b.Proto)
		}
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		if a.Source != b.Source {
			if a.Source {
				return 1
			}
			return -1
		}
		return 0
	})
	return out
}

// SteerKey is one redirect rule for the steering program: frames to
// (Addr, Proto, Port), or with Source, frames from there (the replies of
// a VS/NAT real server).
type SteerKey struct {
	Addr   netip.Addr
	Proto  uint8
	Port   uint16
	Source bool
}

package director

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// The local node. A real server whose address is the director's own is
// IPVS's IP_VS_CONN_F_LOCALNODE: its connections go to the director's own
// network stack, where a process listening on the VIP's port answers and
// its replies leave through the kernel as any local traffic does.
//
// Frames of a virtual service arrive in the workers, which never hand a
// frame back to the kernel, so the local node takes two paths:
//
//   - The first packet of a connection the scheduler gives to a local
//     real server is still the worker's. The worker first adds the
//     connection's 5-tuple to the steering program's flow map
//     (Steering.AllowLocal, one bpf(2) map update; IPv4 and IPv6 flows
//     have a map each) and then writes the packet's IP part, IPv4 or
//     IPv6, into a TUN device the director owns
//     (Platform.OpenLocal), from which the kernel receives it as if it
//     had arrived there: one write(2). The map update comes first, so
//     the answer to that packet cannot bring a next one before the
//     program passes it.
//   - Every later frame of the connection matches the flow map in the
//     steering program, just before it would be redirected, and goes to
//     the kernel with XDP_PASS on the interface it arrived on: it never
//     reaches a worker (the program counts it as PassLocal, and adds it
//     to the flow's use: frames, IP bytes, the OR of its TCP flags).
//
// Frames that reach a worker anyway (already queued when the map was
// updated, or of a connection the full map refused) are delivered the
// first way, so a full map costs speed, not connections; such
// connections are counted in LocalCounters.Full.
//
// The connection table stays the authority on a local connection's life.
// Once a second housekeeping takes each program's flow use
// (TakeLocalUse): a flow whose connection has expired, or whose real
// server is no longer local, is forgotten, and its next frame reaches a
// worker like any other; a flow that was used feeds its connection's
// input-only TCP state machine an ACK, a FIN and a RST, each if one of
// its frames carried it and in that order (the order a connection sends
// them), which also refreshes its timer, as the kernel's ip_vs_in would
// for those packets; and its frames and bytes are added to the service's
// and real server's InPkts and InBytes. States therefore move at most
// once a second, and ActiveConn/InActConn follow within a second. A SYN
// that reuses the 5-tuple of a flow still in the map goes to the kernel
// with the rest, so conn_reuse_mode's rescheduling does not apply to it.
//
// The flow map is bounded (xdpprog.MaxLocalFlows per ingress interface),
// and the program checks it only while some real server is local (a
// one-word gate), so a director without a local node pays one array read
// per steered frame for it.
//
// The kernel must accept what the TUN device delivers: the VIP must be an
// address of the director (on lo or an interface), as LVS requires, and
// strict reverse-path filtering (rp_filter 1 on "all") is refused at
// OpenLocal (IPv6 has none). Non-first IPv4 fragments are not passed
// (they carry no ports) and are dropped by the workers as for every real
// server; IPv6 fragments never reach a worker.

// localNode is the Director's path to its own stack.
type localNode struct {
	stack atomic.Pointer[localBox] // nil until a local real server appears
	on    bool                     // the gate as last set; under the Director's mu
	c     dataplane.Counters       // the passed frames' traffic, written by housekeeping only
}

type localBox struct{ LocalStack }

// openLocal opens the path to the director's stack the first time a
// local real server needs it; it stays open until Close.
func (d *Director) openLocal(real netip.Addr, svc string) error {
	if d.local.stack.Load() != nil {
		return nil
	}
	st, err := d.plat.OpenLocal()
	if err != nil {
		return fmt.Errorf("real server %s of service %s is an address of this host (local node): %w", real, svc, err)
	}
	d.local.stack.Store(&localBox{st})
	d.log.Info("local node: connections to real servers on this host's addresses go to its own stack", "dev", st.Name())
	return nil
}

// checkLocalVIP warns, once per service, when a service with a local
// real server has a VIP that is not an address of this host: the kernel
// delivers to its own sockets only packets for its own addresses, so the
// local node's connections would not reach the process listening there.
func (d *Director) checkLocalVIP(s vs.Service) {
	if s.FWMark != 0 || d.localVIPWarned[s.Key] {
		return
	}
	if hop, err := d.plat.Route(s.Addr); err == nil && hop.Local {
		return
	}
	if d.localVIPWarned == nil {
		d.localVIPWarned = map[vs.Key]bool{}
	}
	d.localVIPWarned[s.Key] = true
	d.log.Warn("local node: the VIP is not an address of this host, so the kernel will not deliver the local real server's connections to a local socket (add it to lo)",
		"service", s.Key.String(), "vip", s.Addr)
}

// setLocalGate turns the steering programs' flow check on while a real
// server of snap is local.
func (d *Director) setLocalGate(snap *dataplane.Snapshot) {
	on := snap.HasLocal()
	if on == d.local.on {
		return
	}
	for i, st := range d.steer {
		if err := st.SetLocal(on); err != nil {
			d.log.Warn("local node: cannot set the steering program's flow check", "dev", d.ifaces[i].Name, "on", on, "err", err)
			return
		}
	}
	d.local.on = on
}

// deliverLocal hands a local-node frame's IP packet (out) to the
// director's stack, after asking the steering program to pass the rest
// of a new connection itself.
func (w *Worker) deliverLocal(d xsk.Desc, base uint64, out dataplane.Out) {
	defer w.rx.Release(d.Addr)
	box := w.localStack.Load()
	if box == nil {
		w.C.Drops[dataplane.DropLocalDeliver].Add(1)
		return
	}
	// A one-packet datagram keeps no connection, so its flow is not
	// passed to the kernel: the next datagram is scheduled afresh.
	if w.proc.Last.New && !w.proc.Last.OnePacket && w.localSteer != nil {
		src, dst, sp, dp, proto := w.proc.Flow()
		err := w.localSteer.AllowLocal(xdpprog.LocalFlow{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Proto: proto})
		if err == nil {
			w.C.Local.Flows.Add(1)
		} else {
			w.C.Local.Full.Add(1)
		}
	}
	pkt := w.rx.UMEM()[base+uint64(out.Off) : base+uint64(out.Off+out.Len)]
	if err := box.Deliver(pkt); err != nil {
		w.C.Drops[dataplane.DropLocalDeliver].Add(1)
		return
	}
	w.C.Local.Delivered.Add(1)
}

// sweepLocal takes the steering programs' flow use and applies it to
// the connection table, forgetting flows whose connection is gone or no
// longer local.
func (d *Director) sweepLocal() {
	if d.local.stack.Load() == nil {
		return
	}
	snap := d.snap.Load()
	if snap == nil {
		return
	}
	for _, st := range d.steer {
		err := st.TakeLocalUse(func(f xdpprog.LocalFlow, u xdpprog.LocalUse) {
			k := conntrack.Key{CAddr: f.Src.As16(), VAddr: f.Dst.As16(), CPort: f.SrcPort, VPort: f.DstPort, Proto: f.Proto}
			conn, ok := d.CT.Lookup(&k)
			var svc *dataplane.Service
			var ds *dataplane.Dest
			if ok {
				svc, ds, ok = snap.DestByID(conn.Dest)
			}
			if !ok || !ds.Local {
				if err := st.ForgetLocal(f); err != nil && !errors.Is(err, xdpprog.ErrLocalFull) {
					d.log.Warn("local node: forget flow", "flow", f.String(), "err", err)
				}
				return
			}
			if u.Pkts == 0 {
				return
			}
			touched := false
			for _, ev := range localEvents(f.Proto, u.TCPFlags) {
				if ev != conntrack.EvNone {
					d.CT.Touch(&conn, &k, ev)
					touched = true
				}
			}
			if !touched {
				d.CT.Touch(&conn, &k, conntrack.EvNone)
			}
			d.local.c.AddIn(svc.ID, ds.ID, u.Pkts, u.Bytes)
		})
		if err != nil {
			d.log.Warn("local node: read the flow map", "err", err)
		}
	}
}

// localEvents are the TCP state machine's inputs for the frames a flow
// passed since the last sweep, in the order a connection sends them: an
// ACK, then a FIN, then a RST, each when one of the frames carried it. A
// UDP flow, or TCP frames with none of them, only refresh the timer.
func localEvents(proto uint8, flags uint32) [3]conntrack.Event {
	var evs [3]conntrack.Event
	if proto != header.ProtocolTCP {
		return evs
	}
	if flags&0x10 != 0 {
		evs[0] = conntrack.EvAck
	}
	if flags&0x01 != 0 {
		evs[1] = conntrack.EvFin
	}
	if flags&0x04 != 0 {
		evs[2] = conntrack.EvRst
	}
	return evs
}

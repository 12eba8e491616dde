package director

import (
	"net/netip"
	"sync"
	"time"

	"github.com/afvs/afvs/dataplane"
)

// Replies of synced VS/NAT connections before their first client packet.
//
// A sync message does not say where the master sent a NAT connection's
// replies, so the backup files each such connection's reply key as it
// installs it, with the hop a route lookup for the client gives (the
// kernel sends a reply by its routing table too): out of the ingress
// interface the route leaves by, to the MAC of the route's next hop. The
// first client packet on this director then files the hop it came by,
// as for a connection made here. Routes are remembered per client address
// for routeMemoFor, at most routeMemoMax of them. When the next hop's MAC
// is not known yet, resolution is asked for (for at most wantMax distinct
// next hops; beyond that the neighbour cache's entries are used as they
// come) and the connection waits in a bounded list, retried by
// housekeeping for pendingFor.
type syncReplies struct {
	mu      sync.Mutex
	routes  map[netip.Addr]routeMemo
	wanted  map[netip.Addr]bool
	pending []pendingReply
}

type routeMemo struct {
	ok      bool // false: no route through an ingress interface
	slot    int
	ifindex int
	nextHop netip.Addr
	at      time.Time
}

type pendingReply struct {
	r     dataplane.SyncedReply
	until time.Time
}

const (
	routeMemoFor = time.Second
	routeMemoMax = 4096
	wantMax      = 64
	pendingMax   = 4096
	pendingFor   = 5 * time.Second
)

// hopState is what replyHop found.
type hopState uint8

const (
	hopNone hopState = iota // no route by an ingress interface
	hopWait                 // routed, the next hop's MAC not known yet
	hopOK
)

// replyHop finds where replies to client leave: the ingress slot of
// snap the route to it leaves by and its next hop's MAC. The caller
// holds sr.mu.
func (d *Director) replyHop(snap *dataplane.Snapshot, client netip.Addr, now time.Time) (int, [6]byte, hopState) {
	sr := &d.sreply
	m, ok := sr.routes[client]
	if !ok || now.Sub(m.at) > routeMemoFor {
		m = routeMemo{at: now}
		if h, err := d.plat.Route(client); err == nil && !h.Local {
			for i := 0; i < d.nIngress && i < len(snap.Ifaces); i++ {
				if snap.Ifaces[i].Index == h.Ifindex {
					m.ok, m.slot, m.ifindex, m.nextHop = true, i, h.Ifindex, h.NextHop
				}
			}
		}
		if sr.routes == nil || len(sr.routes) >= routeMemoMax {
			sr.routes = map[netip.Addr]routeMemo{}
		}
		sr.routes[client] = m
	}
	if !m.ok || d.neigh == nil {
		return 0, [6]byte{}, hopNone
	}
	if mac, ok := d.neigh.Lookup(m.ifindex, m.nextHop); ok {
		return m.slot, mac, hopOK
	}
	if sr.wanted == nil {
		sr.wanted = map[netip.Addr]bool{}
	}
	if !sr.wanted[m.nextHop] && len(sr.wanted) < wantMax {
		sr.wanted[m.nextHop] = true
		_ = d.neigh.Want(m.ifindex, m.nextHop)
	}
	return 0, [6]byte{}, hopWait
}

// fileSyncedReply files r's replies by the route to its client now, or
// keeps it for retrySyncedReplies while the next hop resolves.
func (d *Director) fileSyncedReply(snap *dataplane.Snapshot, r *dataplane.SyncedReply) {
	sr := &d.sreply
	sr.mu.Lock()
	defer sr.mu.Unlock()
	now := time.Now()
	switch slot, mac, st := d.replyHop(snap, r.Client, now); st {
	case hopOK:
		dataplane.FileSyncedReply(d.CT, r, slot, mac)
	case hopWait:
		if len(sr.pending) < pendingMax {
			sr.pending = append(sr.pending, pendingReply{r: *r, until: now.Add(pendingFor)})
		}
	}
}

// retrySyncedReplies files the waiting connections whose next hop has
// resolved, and forgets those waiting longer than pendingFor.
func (d *Director) retrySyncedReplies() {
	sr := &d.sreply
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if len(sr.pending) == 0 {
		return
	}
	snap := d.snap.Load()
	now := time.Now()
	keep := sr.pending[:0]
	for _, p := range sr.pending {
		slot, mac, st := d.replyHop(snap, p.r.Client, now)
		switch {
		case st == hopOK:
			dataplane.FileSyncedReply(d.CT, &p.r, slot, mac)
		case st == hopWait && now.Before(p.until):
			keep = append(keep, p)
		}
	}
	clear(sr.pending[len(keep):])
	sr.pending = keep
}

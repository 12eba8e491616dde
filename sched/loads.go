package sched

import "sync/atomic"

// Loads holds the live per-real-server counters every scheduler reads,
// indexed by Dest.ID and shared by every worker and service. It implements
// the connection table's hooks (Bind, Transfer, Unbind) by method set, and
// keeps IPVS's overload flag with the -x/-y hysteresis of ip_vs_bind_dest and
// ip_vs_unbind_dest (net/netfilter/ipvs/ip_vs_conn.c).
//
// All methods are safe for concurrent use and allocate nothing. Out-of-range
// IDs are ignored: a hook has no error path, and a stray ID must not take a
// worker down.
type Loads struct {
	d []destLoad
}

type destLoad struct {
	active   atomic.Int32
	inactive atomic.Int32
	overload atomic.Bool
	upper    atomic.Uint32
	lower    atomic.Uint32
	// watch lists the least-connection trees that include this dest, so a
	// counter change can refresh their path. Copy-on-write; read per hook.
	watch atomic.Pointer[[]watch]
	// The counters of two real servers never share a cache line (the
	// array is page-aligned once it is large), so workers binding
	// connections to different servers do not bounce one line.
	_ [32]byte
}

type watch struct {
	t    *tree
	leaf int32
}

// NewLoads returns counters for IDs 0..maxDests-1 (none if maxDests <= 0).
func NewLoads(maxDests int) *Loads {
	if maxDests < 0 {
		maxDests = 0
	}
	return &Loads{d: make([]destLoad, maxDests)}
}

// Len is the number of IDs the counters cover.
func (l *Loads) Len() int { return len(l.d) }

func (l *Loads) at(id uint32) *destLoad {
	if uint64(id) >= uint64(len(l.d)) {
		return nil
	}
	return &l.d[id]
}

// Active is the number of active (established) connections bound to id.
func (l *Loads) Active(id uint32) int32 {
	if d := l.at(id); d != nil {
		return d.active.Load()
	}
	return 0
}

// Inactive is the number of inactive connections bound to id.
func (l *Loads) Inactive(id uint32) int32 {
	if d := l.at(id); d != nil {
		return d.inactive.Load()
	}
	return 0
}

// Overloaded reports IPVS's IP_VS_DEST_F_OVERLOAD for id.
func (l *Loads) Overloaded(id uint32) bool {
	if d := l.at(id); d != nil {
		return d.overload.Load()
	}
	return false
}

// overhead is ip_vs_dest_conn_overhead(): active connections weigh 256
// inactive ones. Computed in 64 bits; the kernel's int wraps past 2^23
// active connections, a load no real server reaches.
func (l *Loads) overhead(id uint32) int64 {
	d := &l.d[id]
	return int64(d.active.Load())<<8 + int64(d.inactive.Load())
}

func (d *destLoad) total() int64 {
	return int64(d.active.Load()) + int64(d.inactive.Load())
}

// Bind accounts a new connection to id, as ip_vs_bind_dest: the overload
// flag is set once the total reaches the upper threshold.
func (l *Loads) Bind(id uint32, active bool) {
	d := l.at(id)
	if d == nil {
		return
	}
	if active {
		d.active.Add(1)
	} else {
		d.inactive.Add(1)
	}
	if u := d.upper.Load(); u != 0 && d.total() >= int64(u) {
		d.overload.Store(true)
	}
	d.notify()
}

// Transfer moves a connection between the active and inactive counters on a
// protocol state change (ip_vs_proto_tcp.c set_tcp_state). The total does
// not change, so neither does the overload flag.
func (l *Loads) Transfer(id uint32, toActive bool) {
	d := l.at(id)
	if d == nil {
		return
	}
	if toActive {
		d.inactive.Add(-1)
		d.active.Add(1)
	} else {
		d.active.Add(-1)
		d.inactive.Add(1)
	}
	d.notify()
}

// Unbind removes a connection from id, as ip_vs_unbind_dest: the overload
// flag clears below the lower threshold, or, without one, below 3/4 of the
// upper threshold, or at once when there is no threshold at all.
func (l *Loads) Unbind(id uint32, active bool) {
	d := l.at(id)
	if d == nil {
		return
	}
	if active {
		d.active.Add(-1)
	} else {
		d.inactive.Add(-1)
	}
	lo, up := d.lower.Load(), d.upper.Load()
	switch {
	case lo != 0:
		if d.total() < int64(lo) {
			d.clearOverload()
		}
	case up != 0:
		if d.total()*4 < int64(up)*3 {
			d.clearOverload()
		}
	default:
		d.clearOverload()
	}
	d.notify()
}

// clearOverload clears the overload flag. It writes only when the flag
// is set: an atomic store is a fencing exchange on amd64, and Unbind,
// which runs for every eviction of a connection, mostly finds it clear.
// A Bind that sets the flag between the load and the skipped store is
// ordered after this Unbind, as it would be had the store happened first.
func (d *destLoad) clearOverload() {
	if d.overload.Load() {
		d.overload.Store(false)
	}
}

// SetThresholds installs -x upper and -y lower for id. As
// __ip_vs_update_dest (ip_vs_ctl.c) does, the overload flag is cleared when
// the upper threshold is removed or raised, and otherwise kept until the
// next Unbind re-evaluates it.
func (l *Loads) SetThresholds(id uint32, upper, lower uint32) {
	d := l.at(id)
	if d == nil {
		return
	}
	if upper == 0 || upper > d.upper.Load() {
		d.overload.Store(false)
	}
	d.upper.Store(upper)
	d.lower.Store(lower)
	d.notify()
}

// Reset zeroes id's counters, thresholds and flag because the ID is being
// reused for a new dest.
func (l *Loads) Reset(id uint32) {
	d := l.at(id)
	if d == nil {
		return
	}
	d.active.Store(0)
	d.inactive.Store(0)
	d.overload.Store(false)
	d.upper.Store(0)
	d.lower.Store(0)
	d.notify()
}

func (d *destLoad) notify() {
	ws := d.watch.Load()
	if ws == nil {
		return
	}
	for _, w := range *ws {
		w.t.update(int(w.leaf))
	}
}

// attach makes id's counter changes refresh leaf of t. Slow path.
func (l *Loads) attach(id uint32, t *tree, leaf int) {
	d := &l.d[id]
	for {
		old := d.watch.Load()
		var next []watch
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, watch{t: t, leaf: int32(leaf)})
		if d.watch.CompareAndSwap(old, &next) {
			return
		}
	}
}

// detach undoes every attach of t to id. Slow path.
func (l *Loads) detach(id uint32, t *tree) {
	d := &l.d[id]
	for {
		old := d.watch.Load()
		if old == nil {
			return
		}
		next := make([]watch, 0, len(*old))
		for _, w := range *old {
			if w.t != t {
				next = append(next, w)
			}
		}
		p := &next
		if len(next) == 0 {
			p = nil
		}
		if d.watch.CompareAndSwap(old, p) {
			return
		}
	}
}

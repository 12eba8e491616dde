package controltest

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// Director is an in-memory dataplane with one worker. Apply and Snapshot
// are safe for concurrent use; Feed must not be called concurrently with
// itself, as a worker's processor belongs to one goroutine.
type Director struct {
	CT *conntrack.Table

	loads   *sched.Loads
	mu      sync.Mutex // serialises Apply, as the real director does
	reg     *dataplane.Registry
	snap    atomic.Pointer[dataplane.Snapshot]
	ifaces  []dataplane.Iface
	worker  *dataplane.Worker
	proc    *dataplane.Processor
	applied atomic.Int64
	refuse  atomic.Pointer[error]
}

// DirectorMAC and DirectorAddr are the fake's one interface, slot 0.
var (
	DirectorMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	DirectorAddr = [4]byte{198, 18, 0, 2}
)

// NewDirector returns a director with a connection table of capacity
// entries and the empty table in force.
func NewDirector(capacity int) (*Director, error) {
	loads := sched.NewLoads(dataplane.MaxDests)
	ct, err := conntrack.New(conntrack.Config{Capacity: capacity, Templates: 1024, Hooks: loads})
	if err != nil {
		return nil, fmt.Errorf("fake director: %w", err)
	}
	c := new(dataplane.Counters)
	d := &Director{CT: ct, loads: loads, reg: dataplane.NewRegistry(),
		ifaces: []dataplane.Iface{{Slot: 0, Index: 1, Name: "fake0", MAC: DirectorMAC, MTU: 1500, Addr: DirectorAddr}},
		proc:   dataplane.NewProcessor(ct, c, 0)}
	d.worker = &dataplane.Worker{Dev: "fake0", Queue: 0, CPU: -1, C: c}
	if err := d.Apply(&vs.Table{}); err != nil {
		return nil, err
	}
	return d, nil
}

// Apply compiles t and publishes it, or leaves the old snapshot in force.
func (d *Director) Apply(t *vs.Table) error {
	if p := d.refuse.Load(); p != nil {
		return *p
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	snap, err := dataplane.Build(t, dataplane.BuildOptions{Registry: d.reg, Loads: d.loads, Resolver: dataplane.StaticResolver{},
		Ifaces: d.ifaces, Prev: d.snap.Load(), Traffic: d.worker.C.Dest})
	if err != nil {
		return err
	}
	d.snap.Store(snap)
	d.applied.Add(1)
	return nil
}

// Applied counts the tables Apply published.
func (d *Director) Applied() int64 { return d.applied.Load() }

// RefuseApply makes every later Apply fail with err (nil: accept again), to
// stand for a dataplane that rejects a table the model accepted.
func (d *Director) RefuseApply(err error) {
	if err == nil {
		d.refuse.Store(nil)
		return
	}
	d.refuse.Store(&err)
}

// Snapshot returns the snapshot in force.
func (d *Director) Snapshot() *dataplane.Snapshot { return d.snap.Load() }

// Counters returns the one worker's counters.
func (d *Director) Counters() []*dataplane.Counters { return []*dataplane.Counters{d.worker.C} }

// Workers returns the one worker.
func (d *Director) Workers() []*dataplane.Worker { return []*dataplane.Worker{d.worker} }

// Loads gives the live connection counts per real server.
func (d *Director) Loads() control.Loads { return d.loads }

// TableStatus reports the connection table's occupancy.
func (d *Director) TableStatus() api.TableStatus {
	s := d.CT.Stats()
	return api.TableStatus{Entries: s.Entries, Templates: s.Templates, Capacity: s.Capacity, Inserted: s.Inserted,
		Expired: s.Expired, Evicted: s.Evicted, Refused: s.Refused, Bytes: uint64(d.CT.Bytes())}
}

// headroom is the room before a frame that VS/TUN prepends into, as the
// AF_XDP sockets leave it.
const headroom = 256

// Feed runs one Ethernet frame through the worker's processor, as if it had
// arrived on fake0, and returns the verdict.
func (d *Director) Feed(frame []byte) dataplane.Verdict {
	buf := make([]byte, headroom+len(frame)+64)
	copy(buf[headroom:], frame)
	v, _ := d.proc.Process(d.snap.Load(), buf, headroom, len(frame))
	return v
}

package controltest

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/vs"
)

// Director is the real director.Director on an in-memory platform: one
// interface, fake0, with one queue and so one worker, on a simulated
// segment where every address answers ARP. Apply and Snapshot are safe for
// concurrent use; Feed serialises itself.
type Director struct {
	*director.Director

	host    *platformtest.Host
	client  *platformtest.Iface // where Feed's frames come from
	feedMu  sync.Mutex
	applied atomic.Int64
}

// DirectorMAC and DirectorAddr are the fake's one interface, slot 0.
var (
	DirectorMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	DirectorAddr = [4]byte{198, 18, 0, 2}
)

// NewDirector returns a director with a connection table of capacity
// entries and the empty table in force. Its workers are not started: Feed
// runs the one worker's loop once per frame, on the caller's goroutine.
func NewDirector(capacity int) (*Director, error) {
	n := platformtest.NewNetwork()
	host := n.AddHost("director")
	host.ProxyARP = true
	host.AddIface("fake0", DirectorMAC, netip.PrefixFrom(netip.AddrFrom4(DirectorAddr), 24), "lan", 1)
	// Every real server is reached on-link through fake0, whatever its
	// address, as dataplane.StaticResolver has it.
	host.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), "fake0", netip.Addr{})
	client := n.AddHost("client").AddIface("eth0", [6]byte{0x02, 0, 0, 0, 0, 0x10}, netip.MustParsePrefix("198.18.0.10/24"), "lan", 1)
	dd, err := director.New(director.Options{Interfaces: []string{"fake0"}, Capacity: capacity, Templates: 1024,
		Frames: 512, Platform: host, Log: slog.New(slog.DiscardHandler)}, &vs.Table{})
	if err != nil {
		return nil, fmt.Errorf("fake director: %w", err)
	}
	return &Director{Director: dd, host: host, client: client}, nil
}

// Apply is the Director's Apply, counted when it succeeds.
func (d *Director) Apply(t *vs.Table) error {
	if err := d.Director.Apply(t); err != nil {
		return err
	}
	d.applied.Add(1)
	return nil
}

// Applied counts the tables the director accepted.
func (d *Director) Applied() int64 { return d.applied.Load() }

// RefuseApply makes the steering program refuse every later service set
// with err (nil: accept again), as a full map would, so the director's
// Apply fails on its own path.
func (d *Director) RefuseApply(err error) { d.host.FailSteering(err) }

// Host is the fake platform the director runs on, for tests that change
// its routes or neighbours.
func (d *Director) Host() *platformtest.Host { return d.host }

// Loads gives the live connection counts per real server.
func (d *Director) Loads() control.Loads { return d.Director.Loads }

// TableStatus reports the connection table's occupancy.
func (d *Director) TableStatus() api.TableStatus {
	return control.TableStatus(d.CT)
}

// Feed sends one Ethernet frame from a client on fake0's segment, runs the
// worker once, and returns what became of the frame: VerdictForward when
// the worker sent it on, VerdictReply when it answered with ICMP, and
// VerdictDrop otherwise (also when the steering program left the frame to
// the kernel).
func (d *Director) Feed(frame []byte) dataplane.Verdict {
	d.feedMu.Lock()
	defer d.feedMu.Unlock()
	w := d.Workers()[0]
	tx, icmp := w.C.TX.Load(), w.C.ICMPSent.Load()
	d.client.Send(frame)
	w.Poll()
	d.client.Recv() // ICMP replies; nobody reads them
	switch {
	case w.C.ICMPSent.Load() > icmp:
		return dataplane.VerdictReply
	case w.C.TX.Load() > tx:
		return dataplane.VerdictForward
	}
	return dataplane.VerdictDrop
}

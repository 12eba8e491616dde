package director

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// TestWorkerLocalOnePacket: a one-packet datagram to the local node
// keeps no connection, so its flow is not passed to the kernel (a pass
// would send the socket's next datagrams to the local stack without
// scheduling them); each datagram is delivered through the worker. The
// same datagrams without -o pass their flow once.
func TestWorkerLocalOnePacket(t *testing.T) {
	for _, ops := range []bool{true, false} {
		tbl := &vs.Table{}
		if err := tbl.AddService(vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: vip, Port: 53}, Sched: "rr", OnePacket: ops,
			Reals: []vs.Real{{Addr: netip.AddrFrom4(dirAddr), Port: 53, Fwd: vs.Route, Weight: 1}}}); err != nil {
			t.Fatal(err)
		}
		loads := sched.NewLoads(dataplane.MaxDests)
		ct, err := conntrack.New(conntrack.Config{Capacity: 1024, Templates: 64, Timeouts: conntrack.DefaultTimeouts(), Clock: &conntrack.ManualClock{}, Hooks: loads})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := dataplane.Build(tbl, dataplane.BuildOptions{Registry: dataplane.NewRegistry(), Loads: loads, Resolver: ownResolver{},
			Ifaces: []dataplane.Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: dirMAC, MTU: 1500, Addr: dirAddr}}})
		if err != nil {
			t.Fatal(err)
		}
		var sp atomic.Pointer[dataplane.Snapshot]
		sp.Store(snap)
		c := new(dataplane.Counters)
		p := newFakePort(t, 256)
		w := NewWorker(0, -1, p, 0, []TxPort{{Port: p}}, &sp, dataplane.NewProcessor(ct, c, 0), c, nil)
		fl := &fakeLocal{}
		var box atomic.Pointer[localBox]
		box.Store(&localBox{fl})
		w.localStack, w.localSteer = &box, fl

		d := testsupport.Build(t, testsupport.Eth(net.HardwareAddr(clientMAC[:]), dirMAC[:]),
			testsupport.IPv4(netip.MustParseAddr("198.18.0.10"), vip), testsupport.UDP(40000, 53), testsupport.Payload(8))
		for range 3 {
			p.Deliver(d)
		}
		w.Poll()
		wantFlows := map[bool]int{true: 0, false: 1}[ops]
		if len(fl.flows) != wantFlows || c.Local.Delivered.Load() != 3 {
			t.Errorf("ops=%v: %d flows passed and %d datagrams delivered, want %d and 3", ops, len(fl.flows), c.Local.Delivered.Load(), wantFlows)
		}
		if p.Free() != 256 {
			t.Errorf("ops=%v: %d of 256 frames free", ops, p.Free())
		}
	}
}

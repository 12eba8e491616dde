package director

import (
	"net"
	"net/netip"
	"testing"

	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/vs"
)

// TestWorkerLocalOnePacket: a one-packet datagram to the local node
// keeps no connection, so its flow is not passed to the kernel (a pass
// would send the socket's next datagrams to the local stack without
// scheduling them); each datagram is delivered through the worker. The
// same datagrams without -o pass their flow once.
func TestWorkerLocalOnePacket(t *testing.T) {
	for _, ops := range []bool{true, false} {
		w, fl, c := newLocalWorkerFor(t, vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: vip, Port: 53}, Sched: "rr", OnePacket: ops,
			Reals: []vs.Real{{Addr: netip.AddrFrom4(dirAddr), Port: 53, Fwd: vs.Route, Weight: 1}}})
		p := w.rx.(*xsktest.Port)

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

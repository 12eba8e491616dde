package director

import (
	"bytes"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// fakeLocal records what a worker delivers to the director's stack and
// the flows it asks the steering program to pass.
type fakeLocal struct {
	Steering // only AllowLocal is used
	pkts     [][]byte
	flows    []xdpprog.LocalFlow
	allowErr error
	sendErr  error
}

func (f *fakeLocal) AllowLocal(fl xdpprog.LocalFlow) error {
	if f.allowErr != nil {
		return f.allowErr
	}
	f.flows = append(f.flows, fl)
	return nil
}

func (f *fakeLocal) Deliver(pkt []byte) error {
	if f.sendErr != nil {
		return f.sendErr
	}
	f.pkts = append(f.pkts, append([]byte(nil), pkt...))
	return nil
}

func (f *fakeLocal) Name() string { return "fake" }
func (f *fakeLocal) Close() error { return nil }

// newLocalWorker is a worker whose one service has a single real server,
// the director's own address.
func newLocalWorker(t *testing.T) (*Worker, *fakeLocal, *dataplane.Counters) {
	t.Helper()
	return newLocalWorkerFor(t, vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.AddrFrom4(dirAddr), Port: 80, Fwd: vs.Route, Weight: 1}}})
}

// newLocalWorkerFor is newLocalWorker with svc as its one service.
func newLocalWorkerFor(t *testing.T, svc vs.Service) (*Worker, *fakeLocal, *dataplane.Counters) {
	t.Helper()
	tbl := &vs.Table{}
	if err := tbl.AddService(svc); err != nil {
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
	return w, fl, c
}

// TestWorkerLocalDecisions: a new local-node connection's first packet
// asks the steering program to pass its flow and then reaches the stack
// as its IPv4 packet; a later packet that still reaches the worker goes
// to the stack without asking again; a refused flow is counted and its
// packets still delivered; a packet the stack refuses, or one with no
// stack open, is a counted drop. Every frame is released.
func TestWorkerLocalDecisions(t *testing.T) {
	w, fl, c := newLocalWorker(t)
	p := w.rx.(*xsktest.Port)
	client := [4]byte{198, 18, 0, 10}
	syn := tcpFrame(t, client, 1000, true, false, false, true, 0)
	ack := tcpFrame(t, client, 1000, false, true, false, true, 10)
	p.Deliver(syn)
	p.Deliver(ack)
	w.Poll()
	want := xdpprog.LocalFlow{Src: netip.AddrFrom4(client), Dst: vip, SrcPort: 1000, DstPort: 80, Proto: 6}
	if len(fl.flows) != 1 || fl.flows[0] != want {
		t.Fatalf("flows passed: %v, want only %v", fl.flows, want)
	}
	if len(fl.pkts) != 2 || !bytes.Equal(fl.pkts[0], syn[14:54]) || !bytes.Equal(fl.pkts[1], ack[14:64]) {
		t.Fatalf("the stack got %x, want the SYN's and the ACK's IPv4 packets", fl.pkts)
	}
	if c.Local.Flows.Load() != 1 || c.Local.Delivered.Load() != 2 || c.TX.Load() != 0 {
		t.Fatalf("flows %d, delivered %d, tx %d; want 1, 2, 0", c.Local.Flows.Load(), c.Local.Delivered.Load(), c.TX.Load())
	}

	fl.allowErr = xdpprog.ErrLocalFull
	p.Deliver(tcpFrame(t, client, 1001, true, false, false, true, 0))
	w.Poll()
	if c.Local.Full.Load() != 1 || c.Local.Delivered.Load() != 3 {
		t.Fatalf("map full: full %d, delivered %d; want 1, 3", c.Local.Full.Load(), c.Local.Delivered.Load())
	}

	fl.sendErr = errors.New("EAGAIN")
	p.Deliver(ack)
	w.Poll()
	if n := c.Drops[dataplane.DropLocalDeliver].Load(); n != 1 {
		t.Fatalf("local_deliver drops %d, want 1", n)
	}
	w.localStack.Store(nil)
	p.Deliver(ack)
	w.Poll()
	if n := c.Drops[dataplane.DropLocalDeliver].Load(); n != 2 {
		t.Fatalf("with no stack open: local_deliver drops %d, want 2", n)
	}
	if p.Free() != 256 {
		t.Fatalf("%d of 256 frames free: a local-node frame was not released", p.Free())
	}
}

package bench

import (
	"bytes"
	"strings"
	"testing"

	"github.com/afvs/afvs/dataplane/xsk"
)

// TestLossOf: the deltas of two snapshots, only the driver statistics
// that moved (not the peer's index or byte counts), and every part that
// either snapshot could not read named as unavailable, not zero.
func TestLossOf(t *testing.T) {
	a := lossSnapshot{
		socket:   &xsk.KernelStats{RxRingFull: 10, RxDropped: 5, RxFillRingEmpty: 5, TxInvalidDescs: 1},
		steering: &SteeringLoss{Total: 100, Redirected: 90, Passed: 10},
		link:     &LinkLoss{RxDropped: 15, PeerTxDropped: 2},
		driver:   map[string]uint64{"peer_ifindex": 7, "rx_queue_0_drops": 15, "rx_queue_0_xdp_bytes": 6000, "rx_queue_0_xdp_tx": 3},
	}
	b := lossSnapshot{
		socket:   &xsk.KernelStats{RxRingFull: 110, RxDropped: 45, RxFillRingEmpty: 45, TxInvalidDescs: 1},
		steering: &SteeringLoss{Total: 1100, Redirected: 1088, Passed: 12},
		link:     &LinkLoss{RxDropped: 155, PeerTxDropped: 9},
		driver:   map[string]uint64{"peer_ifindex": 7, "rx_queue_0_drops": 155, "rx_queue_0_xdp_bytes": 66000, "rx_queue_0_xdp_tx": 3},
	}
	l := lossOf("eth0", a, b)
	if *l.Socket != (SocketLoss{RxRingFull: 100, RxDropped: 40, RxFillRingEmpty: 40}) {
		t.Errorf("socket %+v", *l.Socket)
	}
	if *l.Steering != (SteeringLoss{Total: 1000, Redirected: 998, Passed: 2}) || *l.Link != (LinkLoss{RxDropped: 140, PeerTxDropped: 7}) {
		t.Errorf("steering %+v, link %+v", *l.Steering, *l.Link)
	}
	if len(l.Driver) != 1 || l.Driver["rx_queue_0_drops"] != 140 {
		t.Errorf("driver %v, want only rx_queue_0_drops 140", l.Driver)
	}
	if len(l.Unavailable) != 0 {
		t.Errorf("unavailable %v", l.Unavailable)
	}
	if n, ok := l.SocketDrops(); !ok || n != 140 {
		t.Errorf("socket drops %d %v, want 140", n, ok)
	}
	if n, ok := l.BeforeSocket(); !ok || n != 9 {
		t.Errorf("before the socket %d %v, want veth queue 7 + passed 2", n, ok)
	}
	if n, ok := l.Accounted(); !ok || n != 149 {
		t.Errorf("accounted %d %v, want 149 (veth's rx dropped overlaps the socket's and is not added)", n, ok)
	}

	// A snapshot that could not read a part: nil, named with its reason.
	c := b
	c.socket = nil
	c.link = nil
	c.fail("link", errString("link stats of eth0: no such device"))
	l = lossOf("eth0", a, c)
	if l.Socket != nil || l.Link != nil {
		t.Errorf("socket %+v, link %+v from a snapshot without them", l.Socket, l.Link)
	}
	want := []string{"link: link stats of eth0: no such device", "socket: the forwarder has no AF_XDP socket"}
	if strings.Join(l.Unavailable, "|") != strings.Join(want, "|") {
		t.Errorf("unavailable %q, want %q", l.Unavailable, want)
	}
	if _, ok := l.Accounted(); ok {
		t.Error("accounted with parts missing says ok")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestLossLine: the table's line under the scenarios says where sent -
// fwd rx went, and "n/a" where a part is unknown.
func TestLossLine(t *testing.T) {
	r := Result{Scenario: DR, Placement: PlacementDefault, Sent: 1000, ForwarderRX: 800, Loss: &Loss{
		Interface: "eth0",
		Socket:    &SocketLoss{RxRingFull: 150, RxDropped: 40, RxFillRingEmpty: 40},
		Steering:  &SteeringLoss{Total: 997, Redirected: 990, Passed: 2},
		Link:      &LinkLoss{RxDropped: 190, PeerTxDropped: 3},
		Driver:    map[string]uint64{"rx_queue_0_xdp_redirect": 800, "rx_queue_0_drops": 190},
	}}
	want := "  dr lost on eth0: sent - fwd rx 200; ring full 150, fill ring empty 40, other socket drops 0; before the socket 5 (veth queue 3, passed to the kernel 2)" +
		"; unexplained 5; xdp saw 997, sent - xdp saw 3; veth rx dropped 190; veth driver: rx_queue_0_drops 190, rx_queue_0_xdp_redirect 800"
	if got := lossLine(r); got != want {
		t.Errorf("loss line\n got %q\nwant %q", got, want)
	}
	r.Loss.Socket.RxRingFull = 170
	if got := lossLine(r); !strings.Contains(got, "; counted 15 more than missing;") {
		t.Errorf("over-counted loss line %q", got)
	}
	r.Loss = &Loss{Interface: "eth0", Unavailable: []string{"socket: the forwarder has no AF_XDP socket", "steering: the XDP program keeps no counters"}}
	want = "  dr lost on eth0: sent - fwd rx 200; socket n/a; before the socket n/a; n/a socket: the forwarder has no AF_XDP socket; n/a steering: the XDP program keeps no counters"
	if got := lossLine(r); got != want {
		t.Errorf("loss line without counters\n got %q\nwant %q", got, want)
	}

	// The table carries the line under its rows; a scenario without a
	// forwarder has none.
	rep := sampleReport()
	rep.Results[2].Loss = &Loss{Interface: "eth0", Socket: &SocketLoss{RxRingFull: 1}}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), " lost on "); n != 1 || !strings.Contains(b.String(), "\n"+lossLegend+"\n  dr lost on") || !strings.Contains(b.String(), "\n  dr lost on eth0: sent - fwd rx 1700000; ring full 1,") {
		t.Errorf("table with one loss line (%d):\n%s", n, b.String())
	}
}

// TestLossJSON: the report's JSON carries the loss parts under their
// kernel names, and leaves out a part that was not read.
func TestLossJSON(t *testing.T) {
	rep := sampleReport()
	rep.Results[2].Loss = &Loss{Interface: "eth0", Socket: &SocketLoss{RxRingFull: 7, RxFillRingEmpty: 3, RxDropped: 3},
		Unavailable: []string{"steering: the XDP program keeps no counters"}}
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"loss": {`, `"interface": "eth0"`, `"rx_ring_full": 7`, `"rx_fill_ring_empty": 3`, `"unavailable": [`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("json lacks %s:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), `"steering"`) || strings.Count(b.String(), `"loss"`) != 1 {
		t.Errorf("json shows a part not read, or loss on results without it:\n%s", b.String())
	}
}

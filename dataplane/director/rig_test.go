package director

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// The worker tests run the processor of package dataplane on one service
// behind one interface; these helpers set that up as the processor's own
// tests do, since a package's internal test helpers cannot be imported.

var (
	dirMAC    = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	vip       = netip.MustParseAddr("198.19.0.1")
	dirAddr   = [4]byte{198, 18, 0, 2}
)

// headroom is the AF_XDP headroom in front of each frame in a chunk.
const headroom = 256

// numDrops is the number of drop reasons the counters keep.
const numDrops = len(dataplane.Counters{}.Drops)

// rig is a processor with its connection table and its snapshot.
type rig struct {
	clock *conntrack.ManualClock
	ct    *conntrack.Table
	loads *sched.Loads
	c     *dataplane.Counters
	p     *dataplane.Processor
	snap  *dataplane.Snapshot
	tbl   *vs.Table
	reg   *dataplane.Registry
}

func newRig(t testing.TB, tbl *vs.Table, capacity int) *rig {
	t.Helper()
	r := &rig{clock: &conntrack.ManualClock{}, loads: sched.NewLoads(dataplane.MaxDests), c: new(dataplane.Counters)}
	var err error
	r.ct, err = conntrack.New(conntrack.Config{Capacity: capacity, Templates: 1024, Timeouts: conntrack.DefaultTimeouts(), Clock: r.clock, Hooks: r.loads})
	if err != nil {
		t.Fatal(err)
	}
	r.tbl, r.reg = tbl, dataplane.NewRegistry()
	r.snap, err = dataplane.Build(tbl, dataplane.BuildOptions{Registry: r.reg, Loads: r.loads, Resolver: dataplane.StaticResolver{},
		Ifaces: []dataplane.Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: dirMAC, MTU: 1500, Addr: dirAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	r.p = dataplane.NewProcessor(r.ct, r.c, 0)
	return r
}

// oneService is a table of one TCP service, vip:80, with a real server
// 198.18.0.11+i of each weight.
func oneService(fwd vs.Fwd, schedName string, weights ...int32) *vs.Table {
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: schedName}
	for i, w := range weights {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), Port: 80, Fwd: fwd, Weight: w})
	}
	t := &vs.Table{}
	if err := t.AddService(s); err != nil {
		panic(err)
	}
	return t
}

// tcpFrame builds an Ethernet/IPv4/TCP frame from client:sport to vip:80.
func tcpFrame(t testing.TB, client [4]byte, sport uint16, syn, ack, fin, df bool, payload int) []byte {
	t.Helper()
	ip := testsupport.IPv4(netip.AddrFrom4(client), vip)
	ip.TOS = 0x10
	if df {
		ip.Flags = layers.IPv4DontFragment
	}
	var flags testsupport.TCPFlags
	for f, on := range map[testsupport.TCPFlags]bool{testsupport.SYN: syn, testsupport.ACK: ack, testsupport.FIN: fin} {
		if on {
			flags |= f
		}
	}
	return testsupport.Build(t, testsupport.Eth(clientMAC, dirMAC[:]), ip, testsupport.TCP(sport, 80, flags),
		gopacket.Payload(make([]byte, payload)))
}

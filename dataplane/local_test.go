package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// localResolver is StaticResolver with some addresses local to the
// director.
type localResolver struct {
	StaticResolver
	local map[netip.Addr]bool
}

func (r localResolver) Route(dst netip.Addr) (Route, error) {
	if r.local[dst] {
		return Route{Local: true}, nil
	}
	return r.StaticResolver.Route(dst)
}

// localRig is a rig whose fourth real server, 198.18.0.2, is the
// director's own address.
func localRig(t testing.TB) (*rig, netip.Addr) {
	t.Helper()
	own := netip.AddrFrom4(dirAddr)
	tbl := oneService(vs.Route, "rr", 1, 1, 1)
	if err := tbl.AddReal(tbl.Services[0].Key, vs.Real{Addr: own, Port: 80, Fwd: vs.Route, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	r := &rig{clock: &conntrack.ManualClock{}, loads: sched.NewLoads(MaxDests), c: new(Counters)}
	var err error
	r.ct, err = conntrack.New(conntrack.Config{Capacity: 1024, Templates: 64, Timeouts: conntrack.DefaultTimeouts(), Clock: r.clock, Hooks: r.loads})
	if err != nil {
		t.Fatal(err)
	}
	r.snap, err = Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: r.loads,
		Resolver: localResolver{local: map[netip.Addr]bool{own: true}},
		Ifaces:   []Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: dirMAC, MTU: 1500, Addr: dirAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	r.p = NewProcessor(r.ct, r.c, 0)
	return r, own
}

// TestProcessLocal: rr over three real servers and the director itself
// sends every fourth connection to the local node: VerdictLocal with the
// frame's IPv4 packet untouched, on its first packet (a new decision)
// and on later ones (the connection table's), counted in as for any real
// server and never dropped as no_egress.
func TestProcessLocal(t *testing.T) {
	r, own := localRig(t)
	if !r.snap.HasLocal() {
		t.Fatal("HasLocal: false")
	}
	var localID uint32
	for _, d := range r.snap.Services[0].Dests {
		if d.Local != (netip.AddrFrom4(d.Addr) == own) {
			t.Fatalf("dest %v: Local %v", netip.AddrFrom4(d.Addr), d.Local)
		}
		if d.Local {
			localID = d.ID
			if d.Slot != -1 || d.Unreachable != "" {
				t.Fatalf("local dest %+v: want no slot and no reason", d)
			}
		}
	}
	client := [4]byte{198, 18, 0, 10}
	locals := 0
	for i := range 8 {
		sport := uint16(2000 + i)
		syn := tcpFrame(t, client, sport, true, false, false, true, 0)
		buf := chunk(syn)
		v, out := r.p.Process(r.snap, buf, headroom, len(syn))
		if !r.p.Last.New || !r.p.Last.Found {
			t.Fatalf("connection %d: no new decision: %+v", i, r.p.Last)
		}
		if r.p.Last.Dest != localID {
			if v != VerdictForward {
				t.Fatalf("connection %d to a remote server: verdict %d", i, v)
			}
			continue
		}
		locals++
		if v != VerdictLocal {
			t.Fatalf("connection %d to the local node: verdict %d, want VerdictLocal", i, v)
		}
		if !bytes.Equal(buf[out.Off:out.Off+out.Len], syn[14:14+40]) {
			t.Fatalf("connection %d: Out is not the frame's IPv4 packet, unchanged", i)
		}
		src, dst, sp, dp, proto := r.p.Flow()
		if src != netip.AddrFrom4(client) || dst != vip || sp != sport || dp != 80 || proto != 6 {
			t.Fatalf("Flow() = %v %v %d %d %d", src, dst, sp, dp, proto)
		}
		ack := tcpFrame(t, client, sport, false, true, false, true, 100)
		buf = chunk(ack)
		v, out = r.p.Process(r.snap, buf, headroom, len(ack))
		if v != VerdictLocal || r.p.Last.New {
			t.Fatalf("connection %d, second packet: verdict %d, decision %+v; want VerdictLocal from the table", i, v, r.p.Last)
		}
		if !bytes.Equal(buf[out.Off:out.Off+out.Len], ack[14:14+40+100]) {
			t.Fatalf("connection %d, second packet: Out is not its IPv4 packet", i)
		}
	}
	if locals != 2 {
		t.Errorf("rr over 4 servers gave the local node %d of 8 connections, want 2", locals)
	}
	tr := r.c.Dest(localID)
	if tr.Conns != 2 || tr.InPkts != 4 {
		t.Errorf("local node counters %+v: want 2 connections, 4 packets in", tr)
	}
	if n := r.c.Drops[DropNoEgress].Load(); n != 0 {
		t.Errorf("%d frames dropped as no_egress", n)
	}
}

// TestProcessLocalAllocs: the local-node path allocates nothing per frame.
func TestProcessLocalAllocs(t *testing.T) {
	r, _ := localRig(t)
	client := [4]byte{198, 18, 0, 10}
	// The first connection rr gives the local node.
	var buf []byte
	var n int
	for sport := uint16(3000); ; sport++ {
		f := tcpFrame(t, client, sport, true, false, false, true, 0)
		buf = chunk(f)
		if v, _ := r.p.Process(r.snap, buf, headroom, len(f)); v == VerdictLocal {
			ack := tcpFrame(t, client, sport, false, true, false, true, 10)
			buf, n = chunk(ack), len(ack)
			break
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if v, _ := r.p.Process(r.snap, buf, headroom, n); v != VerdictLocal {
			t.Fatalf("verdict %d", v)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per local-node frame", allocs)
	}
}

package dataplane

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/vs"
)

// sloppy sets sloppy_tcp on r's table, keeping the other sysctls.
func (r *rig) sloppy(t *testing.T, on bool) {
	t.Helper()
	s := r.ct.Sysctls()
	s.SloppyTCP = on
	if err := r.ct.SetSysctls(s); err != nil {
		t.Fatal(err)
	}
}

// sendFrame runs one frame through r and returns the verdict and, when
// forwarded, the destination MAC it left with.
func (r *rig) sendFrame(t *testing.T, f []byte) (Verdict, [6]byte) {
	t.Helper()
	buf := chunk(f)
	v, out := r.p.Process(r.snap, buf, headroom, len(f))
	var mac [6]byte
	if v == VerdictForward {
		mac = [6]byte(buf[out.Off : out.Off+6])
	}
	return v, mac
}

// TestSloppyTCPFailoverMH: two directors built from the same mh table
// (two independent tables and snapshots). Connections opened through the
// first continue through the second, to the same real server, when the
// second has sloppy_tcp on, and are dropped as no_connection when it is
// off, as IPVS's tcp_conn_schedule does.
func TestSloppyTCPFailoverMH(t *testing.T) {
	tbl := oneService(vs.Route, "mh", 1, 1, 1)
	master := newRig(t, tbl, 1024)
	const n = 60
	type flow struct {
		client [4]byte
		port   uint16
		mac    [6]byte
	}
	flows := make([]flow, n)
	used := map[[6]byte]bool{}
	for i := range flows {
		fl := &flows[i]
		fl.client, fl.port = [4]byte{198, 18, byte(1 + i/200), byte(20 + i)}, uint16(30000+i)
		if v, _ := master.sendFrame(t, tcpFrame(t, fl.client, fl.port, true, false, false, true, 0)); v != VerdictForward {
			t.Fatalf("flow %d: SYN through the master: verdict %d", i, v)
		}
		v, mac := master.sendFrame(t, tcpFrame(t, fl.client, fl.port, false, true, false, true, 10))
		if v != VerdictForward {
			t.Fatalf("flow %d: ACK through the master: verdict %d", i, v)
		}
		fl.mac = mac
		used[mac] = true
	}
	if len(used) < 2 {
		t.Fatalf("mh put all %d flows on %d server(s); the test needs a spread", n, len(used))
	}

	// The backup never heard of these connections.
	off := newRig(t, tbl, 1024)
	for i, fl := range flows {
		if v, _ := off.sendFrame(t, tcpFrame(t, fl.client, fl.port, false, true, false, true, 10)); v != VerdictDrop {
			t.Fatalf("flow %d: sloppy_tcp off: verdict %d, want drop", i, v)
		}
	}
	if got := off.c.Drops[DropNoConnection].Load(); got != n {
		t.Fatalf("sloppy_tcp off: no_connection = %d, want %d", got, n)
	}
	if got := off.ct.Stats().Entries; got != 0 {
		t.Fatalf("sloppy_tcp off: %d entries made", got)
	}

	backup := newRig(t, tbl, 1024)
	backup.sloppy(t, true)
	for i, fl := range flows {
		for j := range 3 {
			v, mac := backup.sendFrame(t, tcpFrame(t, fl.client, fl.port, false, true, false, true, 10))
			if v != VerdictForward || mac != fl.mac {
				t.Fatalf("flow %d packet %d through the backup: verdict %d to %x, want forward to %x", i, j, v, mac, fl.mac)
			}
			if j == 0 && !backup.p.Last.New {
				t.Fatalf("flow %d: the first packet did not create the entry", i)
			}
			if j > 0 && backup.p.Last.New {
				t.Fatalf("flow %d packet %d: scheduled again instead of following its entry", i, j)
			}
		}
		c, ok := backup.ct.Lookup(&backup.p.key)
		if !ok || c.State != conntrack.Established {
			t.Fatalf("flow %d: entry %+v (found %v), want ESTABLISHED", i, c, ok)
		}
	}
	if got := backup.c.Drops[DropNoConnection].Load(); got != 0 {
		t.Fatalf("sloppy_tcp on: no_connection = %d", got)
	}
	var active int32
	for _, d := range backup.snap.Services[0].Dests {
		active += backup.loads.Active(d.ID)
	}
	if active != n {
		t.Fatalf("backup counts %d active connections, want %d", active, n)
	}
}

// TestSloppyTCPFirstPacket: what a packet without an entry does under
// sloppy_tcp: a RST never creates one, a FIN creates one in CLOSE, a bare
// ACK in ESTABLISHED, a packet with no flag in NONE (tcp_conn_schedule's
// gate, then the input-only state table from NONE).
func TestSloppyTCPFirstPacket(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "mh", 1, 1), 1024)
	r.sloppy(t, true)
	client := [4]byte{198, 18, 0, 50}

	rst := tcpFrame(t, client, 1, false, true, false, true, 0)
	rst[headroomlessTCPFlags] |= 0x04
	if v, _ := r.sendFrame(t, rst); v != VerdictDrop || r.c.Drops[DropNoConnection].Load() != 1 || r.ct.Stats().Entries != 0 {
		t.Fatalf("RST: verdict %d, no_connection %d, %d entries; a RST never makes a connection", v, r.c.Drops[DropNoConnection].Load(), r.ct.Stats().Entries)
	}
	for i, c := range []struct {
		name     string
		ack, fin bool
		want     conntrack.State
	}{
		{"fin", true, true, conntrack.Close},
		{"ack", true, false, conntrack.Established},
		{"no flag", false, false, conntrack.None},
	} {
		port := uint16(100 + i)
		if v, _ := r.sendFrame(t, tcpFrame(t, client, port, false, c.ack, c.fin, true, 0)); v != VerdictForward {
			t.Fatalf("%s: verdict %d", c.name, v)
		}
		got, ok := r.ct.Lookup(&r.p.key)
		if !ok || got.State != c.want {
			t.Fatalf("%s: entry %+v (found %v), want %v", c.name, got, ok, c.want)
		}
	}
}

// TestSloppyTCPAllocs: a non-SYN packet that creates its connection under
// sloppy_tcp allocates nothing.
func TestSloppyTCPAllocs(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "mh", 1, 2, 3), 1<<16)
	r.sloppy(t, true)
	ack := tcpFrame(t, [4]byte{198, 18, 2, 10}, 0, false, true, false, true, 64)
	b := make([]byte, 2048)
	port := uint16(0)
	allocs := testing.AllocsPerRun(1000, func() {
		port++
		copy(b[headroom:], ack)
		b[headroom+34], b[headroom+35] = byte(port>>8), byte(port)
		r.p.Process(r.snap, b, headroom, len(ack))
	})
	if allocs != 0 {
		t.Fatalf("sloppy new flow: %v allocs per frame", allocs)
	}
	if st := r.ct.Stats(); st.Inserted < 1000 || r.c.Drops[DropNoConnection].Load() != 0 {
		t.Fatalf("ACKs made %d connections, no_connection %d", st.Inserted, r.c.Drops[DropNoConnection].Load())
	}
}

// headroomlessTCPFlags is the offset of the TCP flags byte in a frame
// from tcpFrame: Ethernet 14, IPv4 20, flags at 13.
const headroomlessTCPFlags = 14 + 20 + 13

// TestSloppyTCPExpireNodest: with expire_nodest_conn, a packet of an entry
// whose real server is gone expires it; ip_vs_in_hook then tries to
// schedule the packet as new, so under sloppy_tcp an ACK goes to an
// available server, and without it the ACK is dropped.
func TestSloppyTCPExpireNodest(t *testing.T) {
	for _, sloppy := range []bool{false, true} {
		tbl := oneService(vs.Route, "mh", 1, 1)
		r := newLifeRig(t, tbl)
		s := r.ct.Sysctls()
		s.ExpireNodestConn, s.SloppyTCP = true, sloppy
		if err := r.ct.SetSysctls(s); err != nil {
			t.Fatal(err)
		}
		client := [4]byte{198, 18, 0, 60}
		if v, _ := r.sendFrame(t, tcpFrame(t, client, 5, true, false, false, true, 0)); v != VerdictForward {
			t.Fatalf("SYN: verdict %d", v)
		}
		gone := r.p.Last.Dest
		// The control plane deletes the chosen server.
		next := tbl.Clone()
		for _, d := range r.snap.Services[0].Dests {
			if d.ID == gone {
				if err := next.DeleteReal(next.Services[0].Key, netip.AddrFrom4(d.Addr), d.Port); err != nil {
					t.Fatal(err)
				}
			}
		}
		r.rebuild(t, next)
		v, _ := r.sendFrame(t, tcpFrame(t, client, 5, false, true, false, true, 10))
		if sloppy {
			if v != VerdictForward || !r.p.Last.New || r.p.Last.Dest == gone {
				t.Fatalf("sloppy: ACK to a gone server: verdict %d, decision %+v; want rescheduled away from %d", v, r.p.Last, gone)
			}
		} else if v != VerdictDrop || r.c.Drops[DropDestUnavailable].Load() != 1 {
			t.Fatalf("not sloppy: ACK to a gone server: verdict %d, dest_unavailable %d", v, r.c.Drops[DropDestUnavailable].Load())
		}
	}
}

// TestUDPFailoverConsistentScheduler is sloppy_tcp's counterpart for UDP,
// which needs no switch: as in the kernel, every UDP packet without an
// entry is scheduled, so a director that never saw a flow makes its entry
// from whatever packet of it comes first. With mh on both directors the
// flows a first director carried reach the same real servers through a
// second one, whatever order their packets arrive in; with rr, which
// depends on that order, some move (the check can tell them apart).
func TestUDPFailoverConsistentScheduler(t *testing.T) {
	const n = 60
	udpFrame := func(i int) []byte {
		ip := testsupport.IPv4(netip.AddrFrom4([4]byte{198, 18, 1, byte(20 + i)}), vip)
		return testsupport.Build(t, testsupport.Eth(clientMAC, dirMAC[:]), ip, testsupport.UDP(uint16(40000+i), 53), gopacket.Payload(make([]byte, 20)))
	}
	for _, tc := range []struct {
		sched string
		same  bool // every flow keeps its real server
	}{{"mh", true}, {"rr", false}} {
		svc := vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: vip, Port: 53}, Sched: tc.sched}
		for i := range 3 {
			svc.Reals = append(svc.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), Port: 53, Fwd: vs.Route, Weight: 1})
		}
		tbl := &vs.Table{}
		if err := tbl.AddService(svc); err != nil {
			t.Fatal(err)
		}
		master, backup := newRig(t, tbl, 1024), newRig(t, tbl, 1024)
		macs := make([][6]byte, n)
		used := map[[6]byte]bool{}
		for i := range n {
			v, mac := master.sendFrame(t, udpFrame(i))
			if v != VerdictForward {
				t.Fatalf("%s: flow %d through the first director: verdict %d", tc.sched, i, v)
			}
			macs[i] = mac
			used[mac] = true
		}
		if len(used) < 2 {
			t.Fatalf("%s put all %d flows on %d server(s); the test needs a spread", tc.sched, n, len(used))
		}
		moved := 0
		for i := n - 1; i >= 0; i-- {
			for j := range 2 {
				v, mac := backup.sendFrame(t, udpFrame(i))
				if v != VerdictForward {
					t.Fatalf("%s: flow %d packet %d through the second director: verdict %d", tc.sched, i, j, v)
				}
				if j == 0 && !backup.p.Last.New || j > 0 && backup.p.Last.New {
					t.Fatalf("%s: flow %d packet %d: new %v; the first packet makes the entry, the next follow it", tc.sched, i, j, backup.p.Last.New)
				}
				if j == 0 && mac != macs[i] {
					moved++
				}
			}
		}
		if tc.same && moved != 0 || !tc.same && moved == 0 {
			t.Errorf("%s: %d of %d flows reached another real server through the second director", tc.sched, moved, n)
		}
		if st := backup.ct.Stats(); st.Entries != n {
			t.Errorf("%s: the second director holds %d entries, want %d", tc.sched, st.Entries, n)
		}
	}
}

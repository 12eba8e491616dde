package dataplane

import (
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// syncOn gives r's processor a sync queue under settings s.
func (r *rig) syncOn(t testing.TB, s ipvssync.Settings) *ipvssync.Queue {
	t.Helper()
	if err := r.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	q, err := ipvssync.NewQueue(1024)
	if err != nil {
		t.Fatal(err)
	}
	r.p.SetSync(&SyncSink{Queue: q, Settings: s})
	return q
}

// drain pops every published record.
func drain(q *ipvssync.Queue) []ipvssync.Record {
	var out []ipvssync.Record
	var r ipvssync.Record
	for q.Pop(&r) {
		out = append(out, r)
	}
	return out
}

// TestSyncHookWhen: with the kernel's defaults (sync_threshold 3 50) a
// connection is queued at its 3rd packet and every 50th after, and at
// once on a change to FIN_WAIT, CLOSE and the other states
// ip_vs_sync_conn_needed forces; the record carries the connection as
// the kernel's entry would.
func TestSyncHookWhen(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	q := r.syncOn(t, ipvssync.DefaultSettings)
	client := [4]byte{198, 18, 0, 10}
	var sentAt []int
	send := func(i int, f []byte) {
		if v, _ := r.sendFrame(t, f); v != VerdictForward {
			t.Fatalf("packet %d: verdict %d", i, v)
		}
		r.p.Flush() // publish, as a worker does after its batch
		if got := drain(q); len(got) > 0 {
			sentAt = append(sentAt, i)
			if len(got) != 1 {
				t.Fatalf("packet %d queued %d records", i, len(got))
			}
			rec := got[0]
			var c ipvssync.Conn
			rec.Conn(&c)
			want := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished,
				CPort: 5000, VPort: 80, DPort: 80, Timeout: 900,
				CAddr: netip.AddrFrom4(client), VAddr: vip, DAddr: netip.MustParseAddr("198.18.0.11")}
			if i == 110 {
				want.State, want.Flags, want.Timeout = ipvssync.TCPFinWait, ipvssync.FlagDRoute|ipvssync.FlagInactive, 120
			}
			if c.Protocol != want.Protocol || c.Flags != want.Flags || c.State != want.State || c.CPort != want.CPort ||
				c.VPort != want.VPort || c.DPort != want.DPort || c.Timeout != want.Timeout || c.CAddr != want.CAddr || c.VAddr != want.VAddr || c.DAddr != want.DAddr {
				t.Errorf("packet %d: record %+v, want %+v", i, c, want)
			}
		}
	}
	send(1, tcpFrame(t, client, 5000, true, false, false, true, 0))
	for i := 2; i < 110; i++ {
		send(i, tcpFrame(t, client, 5000, false, true, false, true, 10))
	}
	send(110, tcpFrame(t, client, 5000, false, true, true, true, 0))
	want := []int{3, 53, 103, 110}
	if len(sentAt) != len(want) {
		t.Fatalf("queued at packets %v, want %v", sentAt, want)
	}
	for i := range want {
		if sentAt[i] != want[i] {
			t.Fatalf("queued at packets %v, want %v", sentAt, want)
		}
	}
	// Off: nothing is counted or queued.
	r.p.SetSync(nil)
	for i := 0; i < 60; i++ {
		r.sendFrame(t, tcpFrame(t, [4]byte{198, 18, 0, 11}, 5001, i == 0, i > 0, false, true, 0))
	}
	r.p.Flush()
	if got := drain(q); len(got) != 0 {
		t.Errorf("sync off queued %d records", len(got))
	}
}

// TestSyncHookPastMaxPkts: a connection whose count reaches the top of
// what its word holds goes on being sent when ip_vs_sync_conn_needed
// would, the count restarting modulo the period (the full decision
// takes the packet past the top: the count-only shortcut leaves it).
func TestSyncHookPastMaxPkts(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	set := ipvssync.Settings{Threshold: 3, Period: 7}
	q := r.syncOn(t, set)
	client := [4]byte{198, 18, 0, 10}
	r.sloppy(t, true) // open with an ACK: ESTABLISHED at once
	ack := tcpFrame(t, client, 5000, false, true, false, true, 0)
	if v, _ := r.sendFrame(t, ack); v != VerdictForward {
		t.Fatalf("verdict %d", v)
	}
	r.p.Flush()
	drain(q)
	k := conntrack.Key{CAddr: netip.AddrFrom4(client).As16(), VAddr: vip.As16(), CPort: 5000, VPort: 80, Proto: ipvssync.ProtoTCP}
	c, ok := r.ct.Lookup(&k)
	if !ok {
		t.Fatal("no entry")
	}
	info, raw, _ := r.ct.SyncInfo(&c)
	info.Pkts = conntrack.MaxSyncPkts - 3
	if !r.ct.SetSyncInfo(&c, raw, info) {
		t.Fatal("SetSyncInfo")
	}
	var sentAt, counts []uint32
	for i := range 12 {
		if v, _ := r.sendFrame(t, ack); v != VerdictForward {
			t.Fatalf("packet %d: verdict %d", i, v)
		}
		r.p.Flush()
		got, _, _ := r.ct.SyncInfo(&c)
		counts = append(counts, got.Pkts)
		if len(drain(q)) > 0 {
			sentAt = append(sentAt, got.Pkts)
		}
	}
	// 2^24 modulo 7 is 1: the counts run to the top, restart at 1, and
	// the connection is sent where the count modulo 7 is 3.
	wantCounts := []uint32{conntrack.MaxSyncPkts - 2, conntrack.MaxSyncPkts - 1, conntrack.MaxSyncPkts, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if !slices.Equal(counts, wantCounts) {
		t.Fatalf("counts %v, want %v", counts, wantCounts)
	}
	if want := []uint32{3}; !slices.Equal(sentAt, want) {
		t.Fatalf("sent at counts %v, want %v", sentAt, want)
	}
}

// TestSyncHookTemplate: a persistent connection is followed by its
// template, as the kernel walks cp->control; sync_persist_mode sends the
// template alone.
func TestSyncHookTemplate(t *testing.T) {
	tbl := oneService(vs.Tunnel, "rr", 1)
	tbl.Services[0].Persistent, tbl.Services[0].Timeout = true, 300
	r := newRig(t, tbl, 1024)
	q := r.syncOn(t, ipvssync.Settings{Threshold: 1, Period: 0})
	client := [4]byte{198, 18, 0, 10}
	// SYN_RECV is not a state TCP sends (ip_vs_sync_conn_needed), and
	// sync_threshold "1 0" sends at the first packet only: open the
	// connection with an ACK under sloppy_tcp, so it starts ESTABLISHED.
	r.sloppy(t, true)
	r.sendFrame(t, tcpFrame(t, client, 5000, false, true, false, true, 0))
	r.p.Flush()
	got := drain(q)
	if len(got) != 2 {
		t.Fatalf("queued %d records, want the connection and its template", len(got))
	}
	var c, tp ipvssync.Conn
	got[0].Conn(&c)
	got[1].Conn(&tp)
	if c.Flags != ipvssync.FlagTunnel || c.State != ipvssync.TCPEstablished || c.CPort != 5000 {
		t.Errorf("connection %+v", c)
	}
	if tp.Flags != ipvssync.FlagTunnel|ipvssync.FlagTemplate || tp.CPort != 0 || tp.VPort != 80 || tp.Timeout != 300 ||
		tp.Protocol != ipvssync.ProtoTCP || tp.CAddr != netip.AddrFrom4(client) || tp.DAddr != netip.MustParseAddr("198.18.0.11") {
		t.Errorf("template %+v", tp)
	}
	// persist mode: a second client's connection is not sent, its
	// template is.
	r.p.SetSync(&SyncSink{Queue: q, Settings: ipvssync.Settings{Threshold: 1, Period: 0, PersistMode: true}})
	r.sendFrame(t, tcpFrame(t, [4]byte{198, 18, 0, 20}, 6000, false, true, false, true, 0))
	r.p.Flush()
	got = drain(q)
	if len(got) != 1 || got[0].Flags&ipvssync.FlagTemplate == 0 {
		t.Errorf("persist mode queued %+v; want the template alone", got)
	}
}

// TestSyncHookQueueFull: a full queue drops the record and counts it;
// the frame is forwarded all the same.
func TestSyncHookQueueFull(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	if err := r.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	q, _ := ipvssync.NewQueue(2)
	r.p.SetSync(&SyncSink{Queue: q, Settings: ipvssync.Settings{Threshold: 1, Period: 1 << 20}})
	r.sloppy(t, true)
	for i := range 5 {
		if v, _ := r.sendFrame(t, tcpFrame(t, [4]byte{198, 18, 0, byte(10 + i)}, 5000, false, true, false, true, 0)); v != VerdictForward {
			t.Fatalf("frame %d: verdict %d", i, v)
		}
	}
	r.p.Flush()
	if q.Len() != 2 || q.Dropped() != 3 {
		t.Errorf("queue holds %d, dropped %d; want 2 and 3", q.Len(), q.Dropped())
	}
}

// TestSyncHookAllocs: with sync on, a frame allocates nothing, also when
// it queues a record.
func TestSyncHookAllocs(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "wlc", 1, 2, 3), 1<<16)
	q := r.syncOn(t, ipvssync.Settings{Threshold: 1, Period: 2})
	syn := tcpFrame(t, [4]byte{198, 18, 0, 10}, 7000, true, false, false, true, 0)
	r.p.Process(r.snap, chunk(syn), headroom, len(syn))
	ack := tcpFrame(t, [4]byte{198, 18, 0, 10}, 7000, false, true, false, true, 64)
	b := make([]byte, 2048)
	var rec ipvssync.Record
	allocs := testing.AllocsPerRun(1000, func() {
		copy(b[headroom:], ack)
		r.p.Process(r.snap, b, headroom, len(ack))
		for q.Pop(&rec) {
		}
	})
	if allocs != 0 {
		t.Fatalf("established flow with sync on: %v allocs per frame", allocs)
	}
	if q.Dropped() != 0 {
		t.Fatal("queue overflowed")
	}
}

// TestInstallSynced: the backup side of ip_vs_proc_conn on a snapshot:
// the dest is looked up by service and address, unknown ones are
// refused and nothing changes, templates become templates, and the
// synced entry forwards like any other.
func TestInstallSynced(t *testing.T) {
	tbl := oneService(vs.Route, "rr", 1, 1)
	tbl.Services[0].Persistent, tbl.Services[0].Timeout = true, 600
	r := newRig(t, tbl, 1024)
	if err := r.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	base := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished,
		CPort: 5000, VPort: 80, DPort: 80, Timeout: 900, CAddr: ip("198.18.0.10"), VAddr: vip, DAddr: ip("198.18.0.12")}
	for _, tc := range []struct {
		name string
		edit func(*ipvssync.Conn)
		want SyncDrop
	}{
		{"unknown service", func(c *ipvssync.Conn) { c.VPort = 81 }, SyncUnknownService},
		{"unknown vip", func(c *ipvssync.Conn) { c.VAddr = ip("198.19.9.9") }, SyncUnknownService},
		{"unknown dest", func(c *ipvssync.Conn) { c.DAddr = ip("198.18.0.99") }, SyncUnknownDest},
		{"unknown dest port", func(c *ipvssync.Conn) { c.DPort = 8080 }, SyncUnknownDest},
		{"sctp", func(c *ipvssync.Conn) { c.Protocol = ipvssync.ProtoSCTP }, SyncUnsupported},
		{"unknown ipv6 service", func(c *ipvssync.Conn) {
			c.CAddr, c.VAddr, c.DAddr = ip("2001:2::1"), ip("2001:2::2"), ip("2001:2::3")
		}, SyncUnknownService},
	} {
		c := base
		tc.edit(&c)
		if _, d := InstallSynced(r.snap, r.ct, &c, 3); d != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, d, tc.want)
		}
	}
	if st := r.ct.Stats(); st.Entries != 0 {
		t.Fatalf("refused entries left %d in the table", st.Entries)
	}
	if res, d := InstallSynced(r.snap, r.ct, &base, 3); d != SyncOK || res != conntrack.SyncInserted {
		t.Fatalf("install: %v %v", res, d)
	}
	var dest uint32
	for _, d := range r.snap.Services[0].Dests {
		if d.Addr == [4]byte{198, 18, 0, 12} {
			dest = d.ID
		}
	}
	if a := r.loads.Active(dest); a != 1 {
		t.Errorf("dest active %d, want 1 (synced connections count)", a)
	}
	// It forwards to 198.18.0.12 at once, with no SYN, sloppy_tcp off.
	v, mac := r.sendFrame(t, tcpFrame(t, [4]byte{198, 18, 0, 10}, 5000, false, true, false, true, 0))
	if v != VerdictForward || mac != SyntheticMAC(ip("198.18.0.12")) {
		t.Fatalf("synced flow: verdict %d to %x", v, mac)
	}
	// A template, then a new connection of that client sticks to it.
	tp := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute | ipvssync.FlagTemplate, VPort: 80, DPort: 80,
		Timeout: 600, CAddr: ip("198.18.0.30"), VAddr: vip, DAddr: ip("198.18.0.11")}
	if res, d := InstallSynced(r.snap, r.ct, &tp, 3); d != SyncOK || res != conntrack.SyncInserted {
		t.Fatalf("template: %v %v", res, d)
	}
	for p := uint16(7000); p < 7004; p++ {
		v, mac := r.sendFrame(t, tcpFrame(t, [4]byte{198, 18, 0, 30}, p, true, false, false, true, 0))
		if v != VerdictForward || mac != SyntheticMAC(ip("198.18.0.11")) || !r.p.Last.Template {
			t.Fatalf("persistent client after a synced template: verdict %d to %x (template %v)", v, mac, r.p.Last.Template)
		}
	}
}

// TestSyncMasterToBackupTables: a master processor's queued records,
// packed and parsed as on the wire, installed on a backup built from the
// same table, give the backup the master's connections: same keys, real
// servers and states.
func TestSyncMasterToBackupTables(t *testing.T) {
	tbl := oneService(vs.Route, "rr", 1, 1, 1)
	master, backup := newRig(t, tbl, 4096), newRig(t, tbl, 4096)
	q := master.syncOn(t, ipvssync.Settings{Threshold: 2, Period: 0})
	if err := backup.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		client := [4]byte{198, 18, byte(1 + i/200), byte(i)}
		master.sendFrame(t, tcpFrame(t, client, uint16(20000+i), true, false, false, true, 0))
		master.sendFrame(t, tcpFrame(t, client, uint16(20000+i), false, true, false, true, 10))
		if i%3 == 0 {
			master.sendFrame(t, tcpFrame(t, client, uint16(20000+i), false, true, true, true, 0))
		}
	}
	master.p.Flush()
	buf := make([]byte, 2000)
	enc, err := ipvssync.NewEncoder(buf, ipvssync.MaxLen(false, 1500, 0, false), 1)
	if err != nil {
		t.Fatal(err)
	}
	dec := ipvssync.Decoder{SyncID: 1}
	var msgs int
	install := func(c *ipvssync.Conn) {
		if _, d := InstallSynced(backup.snap, backup.ct, c, 2); d != SyncOK {
			t.Fatalf("install %+v: %v", c, d)
		}
	}
	flush := func() {
		if enc.Count() == 0 {
			return
		}
		if err := dec.Decode(append([]byte(nil), enc.Bytes()...), install); err != nil {
			t.Fatal(err)
		}
		msgs++
		enc.Reset()
	}
	var rec ipvssync.Record
	var c ipvssync.Conn
	for q.Pop(&rec) {
		rec.Conn(&c)
		if enc.Append(&c) == ipvssync.ErrFull {
			flush()
			if err := enc.Append(&c); err != nil {
				t.Fatal(err)
			}
		}
	}
	flush()
	if msgs < 2 {
		t.Fatalf("%d messages: the test should span several", msgs)
	}
	list := func(r *rig) []string {
		var out []string
		r.ct.Range(func(k conntrack.Key, c conntrack.Conn, _ time.Duration, _ bool) bool {
			_, d, ok := r.snap.DestByID(c.Dest)
			if !ok {
				t.Fatalf("%v: no dest %d", k, c.Dest)
			}
			out = append(out, k.String()+" "+netip.AddrFrom4(d.Addr).String()+" "+c.State.String())
			return true
		})
		sort.Strings(out)
		return out
	}
	m, b := list(master), list(backup)
	if len(m) != 300 || len(b) != len(m) {
		t.Fatalf("master has %d entries, backup %d", len(m), len(b))
	}
	for i := range m {
		if m[i] != b[i] {
			t.Fatalf("entry %d: master %q, backup %q", i, m[i], b[i])
		}
	}
	for _, d := range master.snap.Services[0].Dests {
		if ma, ba := master.loads.Active(d.ID), backup.loads.Active(d.ID); ma != ba {
			t.Errorf("dest %d active: master %d, backup %d", d.ID, ma, ba)
		}
		if mi, bi := master.loads.Inactive(d.ID), backup.loads.Inactive(d.ID); mi != bi {
			t.Errorf("dest %d inactive: master %d, backup %d", d.ID, mi, bi)
		}
	}
}

// FuzzInstallSynced feeds arbitrary datagrams through the decoder into a
// backup's table: nothing panics, and every entry the table holds
// afterwards names a real server of the snapshot.
func FuzzInstallSynced(f *testing.F) {
	buf := make([]byte, 2000)
	enc, _ := ipvssync.NewEncoder(buf, 1472, 0)
	ip := netip.MustParseAddr
	for _, c := range []ipvssync.Conn{
		{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished, CPort: 5000, VPort: 80, DPort: 80, Timeout: 900, CAddr: ip("198.18.0.10"), VAddr: vip, DAddr: ip("198.18.0.11")},
		{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute | ipvssync.FlagTemplate, VPort: 80, DPort: 80, Timeout: 300, CAddr: ip("198.18.0.10"), VAddr: vip, DAddr: ip("198.18.0.11")},
		{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute | ipvssync.FlagInactive, State: ipvssync.TCPFinWait, CPort: 5000, VPort: 80, DPort: 80, Timeout: 0, CAddr: ip("198.18.0.10"), VAddr: vip, DAddr: ip("198.18.0.12")},
		{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished, CPort: 5000, VPort: 80, DPort: 80, Timeout: 900, CAddr: ip("2001:2::10"), VAddr: ip("2001:2:0:1::1"), DAddr: ip("2001:2::11")},
	} {
		if err := enc.Append(&c); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(append([]byte(nil), enc.Bytes()...))
	tbl := oneService(vs.Route, "rr", 1, 1)
	tbl.Services[0].Persistent, tbl.Services[0].Timeout = true, 300
	if err := tbl.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: ip("2001:2:0:1::1"), Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: ip("2001:2::11"), Port: 80, Fwd: vs.Route, Weight: 1}}}); err != nil {
		f.Fatal(err)
	}
	r := newRig(f, tbl, 1024)
	if err := r.ct.EnableSync(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var dec ipvssync.Decoder
		_ = dec.Decode(msg, func(c *ipvssync.Conn) { InstallSynced(r.snap, r.ct, c, 3) })
		r.ct.Range(func(k conntrack.Key, c conntrack.Conn, _ time.Duration, _ bool) bool {
			if _, _, ok := r.snap.DestByID(c.Dest); !ok {
				t.Fatalf("%v: dest %d is not in the snapshot", k, c.Dest)
			}
			return true
		})
	})
}

// TestSyncPortZeroDest: a connection to a port-0 real server (a
// firewall-mark service here) goes out with the port the packet was sent
// to, as cp->dport is in the kernel, and a backup finds the port-0 dest
// for it as ip_vs_find_dest does, also for a port-0 dest of a service
// with a port (the XOR fallback).
func TestSyncPortZeroDest(t *testing.T) {
	tbl := &vs.Table{Marks: []vs.Mark{{Mark: 5, Matches: []vs.Match{{Proto: vs.TCP, Addr: vip, PortLo: 8000, PortHi: 8002}}}}}
	s := vs.Service{Key: vs.Key{FWMark: 5}, Sched: "rr"}
	s.Reals = append(s.Reals, vs.Real{Addr: netip.MustParseAddr("198.18.0.11"), Fwd: vs.Route, Weight: 1})
	if err := tbl.AddService(s); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, tbl, 1024)
	q := r.syncOn(t, ipvssync.DefaultSettings)
	for i := 0; i < 3; i++ {
		f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5000, i == 0, i > 0, false, true, 0)
		f[36], f[37] = 8001>>8, 8001&0xff
		if v, _ := r.sendFrame(t, f); v != VerdictForward {
			t.Fatalf("packet %d: verdict %d", i, v)
		}
	}
	r.p.Flush()
	got := drain(q)
	if len(got) != 1 {
		t.Fatalf("%d records, want the 3rd packet's", len(got))
	}
	var c ipvssync.Conn
	got[0].Conn(&c)
	if c.DPort != 8001 || c.VPort != 8001 || c.FWMark != 5 {
		t.Fatalf("record %+v: want dport 8001 (the packet's), vport 8001, fwmark 5", c)
	}

	b := newRig(t, tbl, 1024)
	if err := b.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	if res, d := InstallSynced(b.snap, b.ct, &c, 3); d != SyncOK || res != conntrack.SyncInserted {
		t.Fatalf("backup install of %+v: %v %v", c, res, d)
	}

	// A port-0 dest in a service with a port: the entry's dport finds
	// none, its XOR with itself (0) finds it.
	one := oneService(vs.Route, "rr", 1)
	one.Services[0].Reals[0].Port = 0
	svc := &newRig(t, one, 16).snap.Services[0]
	for _, tc := range []struct {
		c    ipvssync.Conn
		want bool
	}{
		{ipvssync.Conn{DAddr: netip.MustParseAddr("198.18.0.11"), DPort: 80, Flags: ipvssync.FlagDRoute}, true},
		{ipvssync.Conn{DAddr: netip.MustParseAddr("198.18.0.12"), DPort: 80, Flags: ipvssync.FlagDRoute}, false},
	} {
		if d := syncDest(svc, &tc.c); (d != nil) != tc.want {
			t.Errorf("syncDest(%v:%d) = %v, want found %v", tc.c.DAddr, tc.c.DPort, d, tc.want)
		}
	}
}

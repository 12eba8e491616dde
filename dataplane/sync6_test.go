package dataplane

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvssync"
)

// syncRig6 is newFxRig6 with the sync words allocated and, when s is not
// nil, a sync queue under s.
func syncRig6(t *testing.T, s *ipvssync.Settings) (*fxRig, *ipvssync.Queue) {
	t.Helper()
	r := newFxRig6(t, 4096, 1024)
	if err := r.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return r, nil
	}
	q, err := ipvssync.NewQueue(4096)
	if err != nil {
		t.Fatal(err)
	}
	r.p.SetSync(&SyncSink{Queue: q, Settings: *s})
	return r, q
}

// send runs frames through r, each to be forwarded.
func (r *fxRig) send(t *testing.T, what string, frames ...[]byte) {
	t.Helper()
	for i, f := range frames {
		if v, _, _ := r.run(f, 256); v != VerdictForward {
			t.Fatalf("%s: frame %d: verdict %d", what, i, v)
		}
	}
	r.p.Flush()
}

// popConns drains q into entries as the master's sender makes them.
func popConns(q *ipvssync.Queue) []ipvssync.Conn {
	var out []ipvssync.Conn
	var rec ipvssync.Record
	for q.Pop(&rec) {
		var c ipvssync.Conn
		rec.Conn(&c)
		out = append(out, c)
	}
	return out
}

// TestSync6Master: a sync master sends IPv6 connections and templates
// as IPv6 entries (struct ip_vs_sync_v6: client, virtual and real server
// address all IPv6), at the packets the kernel's rule picks, as it sends
// IPv4 ones. A connection whose real server is of the other family (an
// IPv6 service's IPv4 tunnel dest, an IPv4 service's IPv6 one) cannot be
// one entry: it is counted as skipped when due, never sent.
func TestSync6Master(t *testing.T) {
	r, q := syncRig6(t, &ipvssync.DefaultSettings) // sent at the 3rd packet
	ack := f6Flags(ts.ACK)
	r.send(t, "IPv6 DR", frame6(t, fxVIP6DR, 80), frame6(t, fxVIP6DR, 80, ack))
	if got := popConns(q); len(got) != 0 {
		t.Fatalf("queued before the 3rd packet: %+v", got)
	}
	r.send(t, "IPv6 DR", frame6(t, fxVIP6DR, 80, ack))
	got := popConns(q)
	want := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished,
		CPort: 40000, VPort: 80, DPort: 80, Timeout: 900, CAddr: fxClient6, VAddr: fxVIP6DR, DAddr: fxRS6DR}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("IPv6 DR: queued %+v, want %+v", got, want)
	}
	// Its wire form is the kernel's 72-byte IPv6 entry.
	enc, err := ipvssync.NewEncoder(make([]byte, 1500), 1472, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Append(&got[0]); err != nil || len(enc.Bytes()) != ipvssync.HeaderLen+72 || enc.Bytes()[ipvssync.HeaderLen] != 1 {
		t.Fatalf("encoded %x, %v: want one entry of type 1 (IPv6), 72 bytes", enc.Bytes(), err)
	}

	r.send(t, "IPv6 UDP", frame6(t, fxVIP6DR, 53, f6UDP), frame6(t, fxVIP6DR, 53, f6UDP), frame6(t, fxVIP6DR, 53, f6UDP))
	got = popConns(q)
	// UDP connections are inactive (ip_vs_bind_dest clears
	// IP_VS_CONN_F_INACTIVE for other protocols only).
	want = ipvssync.Conn{Protocol: ipvssync.ProtoUDP, Flags: ipvssync.FlagDRoute | ipvssync.FlagInactive, CPort: 40000, VPort: 53, DPort: 53,
		Timeout: 300, CAddr: fxClient6, VAddr: fxVIP6DR, DAddr: fxRS6DR}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("IPv6 UDP: queued %+v, want %+v", got, want)
	}

	// A persistent service (-M 64): the connection at its 3rd packet and
	// its template, whose client address is the /64 and whose client port
	// is 0, at every packet (the kernel's rule with these defaults).
	r.send(t, "IPv6 persistent", frame6(t, fxVIP6Pers, 443), frame6(t, fxVIP6Pers, 443, ack), frame6(t, fxVIP6Pers, 443, ack))
	got = popConns(q)
	var conns, tmpls []ipvssync.Conn
	for _, c := range got {
		if c.Flags&ipvssync.FlagTemplate != 0 {
			tmpls = append(tmpls, c)
		} else {
			conns = append(conns, c)
		}
	}
	if len(conns) != 1 || len(tmpls) != 3 {
		t.Fatalf("IPv6 persistent: queued %+v, want the connection once and its template 3 times", got)
	}
	conn := conns[0]
	if conn.Flags != ipvssync.FlagDRoute || conn.CAddr != fxClient6 || conn.VAddr != fxVIP6Pers || conn.VPort != 443 ||
		(conn.DAddr != fxRS6Pers1 && conn.DAddr != fxRS6Pers2) {
		t.Errorf("persistent connection %+v", conn)
	}
	wantT := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute | ipvssync.FlagTemplate, VPort: 443, DPort: 443,
		Timeout: 300, CAddr: netip.MustParseAddr("2001:2::"), VAddr: fxVIP6Pers, DAddr: conn.DAddr}
	for _, tmpl := range tmpls {
		if !reflect.DeepEqual(tmpl, wantT) {
			t.Errorf("template %+v, want %+v", tmpl, wantT)
		}
	}

	// Mixed families: forwarded, counted when due, never queued.
	skipped := q.Skipped()
	r.send(t, "IPv6 in IPv4", frame6(t, fxVIP6TUN4, 80), frame6(t, fxVIP6TUN4, 80, ack), frame6(t, fxVIP6TUN4, 80, ack), frame6(t, fxVIP6TUN4, 80, ack))
	r.send(t, "IPv4 in IPv6", seg(t, fxVIP4TUN6, 80), seg(t, fxVIP4TUN6, 80, fxFlags(ts.ACK)), seg(t, fxVIP4TUN6, 80, fxFlags(ts.ACK)))
	if got := popConns(q); len(got) != 0 {
		t.Errorf("mixed-family connections queued: %+v", got)
	}
	if n := q.Skipped() - skipped; n != 2 {
		t.Errorf("skipped %d, want 2 (each mixed-family connection at its 3rd packet)", n)
	}
}

// TestSync6MasterToBackup: IPv6 connections and templates a master
// queues, packed and parsed as on the wire, installed on a backup with
// the same table, give the backup the master's entries (keys, real
// servers, states, templates) and real server counts; the backup
// forwards a synced connection's next packet with no SYN (sloppy_tcp
// off) to the same real server, and a new connection of a client whose
// template was synced to the template's server.
func TestSync6MasterToBackup(t *testing.T) {
	master, q := syncRig6(t, &ipvssync.Settings{Threshold: 2})
	backup, _ := syncRig6(t, nil)
	const n = 120
	client := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, byte(i >> 8), byte(i), 15: 0x10}) // each in its own /64
	}
	for i := range n {
		vip, port := fxVIP6DR, uint16(80)
		if i%4 == 0 {
			vip, port = fxVIP6Pers, 443
		}
		from, sp := f6From(client(i)), f6Sport(uint16(30000+i))
		frames := [][]byte{frame6(t, vip, port, from, sp), frame6(t, vip, port, from, sp, f6Flags(ts.ACK))}
		if i%3 == 0 {
			frames = append(frames, frame6(t, vip, port, from, sp, f6Flags(ts.ACK|ts.FIN)))
		}
		master.send(t, fmt.Sprint("connection ", i), frames...)
	}
	buf := make([]byte, 2000)
	enc, err := ipvssync.NewEncoder(buf, ipvssync.MaxLen(false, 1500, 0, false), 1)
	if err != nil {
		t.Fatal(err)
	}
	dec := ipvssync.Decoder{SyncID: 1}
	var msgs int
	flush := func() {
		if enc.Count() == 0 {
			return
		}
		if err := dec.Decode(append([]byte(nil), enc.Bytes()...), func(c *ipvssync.Conn) {
			if !c.IPv6() {
				t.Fatalf("entry %+v is not IPv6", c)
			}
			if _, d := InstallSynced(backup.snap, backup.ct, c, 2); d != SyncOK {
				t.Fatalf("install %+v: %v", c, d)
			}
		}); err != nil {
			t.Fatal(err)
		}
		msgs++
		enc.Reset()
	}
	for _, c := range popConns(q) {
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
	list := func(r *fxRig) []string {
		var out []string
		r.ct.Range(func(k conntrack.Key, c conntrack.Conn, _ time.Duration, template bool) bool {
			_, d, ok := r.snap.DestByID(c.Dest)
			if !ok {
				t.Fatalf("%v: no dest %d", k, c.Dest)
			}
			out = append(out, fmt.Sprintf("%v %v %v template=%v", k, d.IP(), c.State, template))
			return true
		})
		slices.Sort(out)
		return out
	}
	m, b := list(master), list(backup)
	if len(m) != n+n/4 || !slices.Equal(m, b) {
		t.Fatalf("master has %d entries, backup %d (want %d each, equal):\nmaster %q\nbackup %q", len(m), len(b), n+n/4, m, b)
	}
	counts := func(r *fxRig) map[string][2]int64 {
		out := map[string][2]int64{}
		for _, s := range r.snap.Services {
			for _, d := range s.Dests {
				out[fmt.Sprint(s.Key, " ", d.IP())] = [2]int64{int64(r.loads.Active(d.ID)), int64(r.loads.Inactive(d.ID))}
			}
		}
		return out
	}
	mc, bc := counts(master), counts(backup)
	var active, inactive int64
	for a, c := range mc {
		if bc[a] != c {
			t.Errorf("real server %v: master active/inactive %v, backup %v", a, c, bc[a])
		}
		active, inactive = active+c[0], inactive+c[1]
	}
	if active != n-n/3 || inactive != n/3 {
		t.Errorf("%d active and %d inactive in all, want %d and %d", active, inactive, n-n/3, n/3)
	}

	// The backup forwards a synced connection (connection 1, DR) at once.
	_, out, _ := backup.run(frame6(t, fxVIP6DR, 80, f6From(client(1)), f6Sport(30001), f6Flags(ts.ACK)), 256)
	if out == nil || [6]byte(out[:6]) != SyntheticMAC(fxRS6DR) {
		t.Fatalf("synced IPv6 connection: frame %x, want one to %v's MAC", out, fxRS6DR)
	}
	if d := backup.c.Drops[DropNoConnection].Load(); d != 0 {
		t.Errorf("no_connection drops %d", d)
	}
	// Client 4's template (persistent service): new connections from
	// another host of its /64 go to the same real server.
	k := conntrack.Key{CAddr: client(4).As16(), VAddr: fxVIP6Pers.As16(), CPort: 30004, VPort: 443, Proto: conntrack.ProtoTCP}
	c4, ok := master.ct.Lookup(&k)
	if !ok {
		t.Fatal("master has no connection 4")
	}
	_, d4, _ := master.snap.DestByID(c4.Dest)
	same := netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, 4, 15: 0x99})
	for p := uint16(50000); p < 50004; p++ {
		_, out, _ := backup.run(frame6(t, fxVIP6Pers, 443, f6From(same), f6Sport(p)), 256)
		if out == nil || [6]byte(out[:6]) != SyntheticMAC(d4.IP()) {
			t.Fatalf("new connection from %v after the synced template: frame %x, want one to %v", same, out, d4.IP())
		}
	}
}

// TestSync6HookAllocs: an IPv6 frame with sync on allocates nothing, also
// when it queues its connection and its template.
func TestSync6HookAllocs(t *testing.T) {
	r, q := syncRig6(t, &ipvssync.Settings{Threshold: 1, Period: 2})
	r.send(t, "SYN", frame6(t, fxVIP6Pers, 443))
	ack := frame6(t, fxVIP6Pers, 443, f6Flags(ts.ACK))
	b := make([]byte, maxFrame)
	var rec ipvssync.Record
	popped := 0
	allocs := testing.AllocsPerRun(1000, func() {
		copy(b[256:], ack)
		r.p.Process(r.snap, b, 256, len(ack))
		r.p.Flush()
		for q.Pop(&rec) {
			popped++
		}
	})
	if allocs != 0 {
		t.Fatalf("IPv6 flow with sync on: %v allocs per frame", allocs)
	}
	if popped < 1000 || !rec.IPv6 {
		t.Fatalf("%d records popped, the last %+v: want IPv6 records at every other frame and templates", popped, rec)
	}
}

// TestFileSyncedReply: PendingReply picks a synced VS/NAT connection
// whose replies no client packet has filed, with its reply key (client,
// real server address and port), and nothing else: not a DR connection,
// not a template, not an entry the table does not hold. FileSyncedReply
// files it with the hop given, so a reply before any client packet is
// rewritten and sent out of that slot to that MAC; the connection stays
// pending, so the first client packet files its own hop, and then
// PendingReply no longer picks it.
func TestFileSyncedReply(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	if err := r.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	nat := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagMasq, State: ipvssync.TCPEstablished, CPort: 40000, VPort: 80, DPort: 8080,
		Timeout: 900, CAddr: fxClient, VAddr: fxVIPNAT, DAddr: fxRSNAT}
	dr := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished, CPort: 40000, VPort: 80, DPort: 80,
		Timeout: 900, CAddr: fxClient, VAddr: fxVIPDR, DAddr: fxRSDR}
	if _, ok := PendingReply(r.snap, r.ct, &nat); ok {
		t.Fatal("PendingReply picked a connection the table does not hold")
	}
	for _, c := range []*ipvssync.Conn{&nat, &dr} {
		if _, d := InstallSynced(r.snap, r.ct, c, 3); d != SyncOK {
			t.Fatalf("install %+v: %v", c, d)
		}
	}
	tmpl := nat
	tmpl.Flags |= ipvssync.FlagTemplate
	for what, c := range map[string]*ipvssync.Conn{"DR": &dr, "template": &tmpl} {
		if _, ok := PendingReply(r.snap, r.ct, c); ok {
			t.Errorf("PendingReply picked a %s entry", what)
		}
	}
	sr, ok := PendingReply(r.snap, r.ct, &nat)
	if !ok {
		t.Fatal("PendingReply did not pick the synced NAT connection")
	}
	if want := (conntrack.Key{CAddr: fxClient.As16(), CPort: 40000, VAddr: fxRSNAT.As16(), VPort: 8080, Proto: conntrack.ProtoTCP}); sr.Reply != want || sr.Client != fxClient {
		t.Fatalf("reply key %v for client %v, want %v for %v", sr.Reply, sr.Client, want, fxClient)
	}
	router := [6]byte{0x02, 0, 0, 0, 0, 0x77}
	if !FileSyncedReply(r.ct, &sr, 0, router) {
		t.Fatal("FileSyncedReply refused")
	}
	v, out, _ := r.run(fromRS(t, 8080, ts.ACK), 256)
	if v != VerdictForward || [6]byte(out[0:6]) != router || [6]byte(out[6:12]) != [6]byte(fxDirMAC) {
		t.Fatalf("a reply before any client packet: verdict %d, frame %x; want it sent to %x", v, out, router)
	}
	if _, ok := PendingReply(r.snap, r.ct, &nat); !ok {
		t.Fatal("after FileSyncedReply the connection must stay pending for its first client packet")
	}
	if v, _, _ := r.run(seg(t, fxVIPNAT, 80, fxFlags(ts.ACK)), 256); v != VerdictForward {
		t.Fatalf("client packet: verdict %d", v)
	}
	if _, ok := PendingReply(r.snap, r.ct, &nat); ok {
		t.Fatal("PendingReply picked a connection its client packet filed")
	}
	if FileSyncedReply(r.ct, &sr, 0, router) {
		t.Fatal("FileSyncedReply overwrote the hop the client packet filed")
	}
	_, out, _ = r.run(fromRS(t, 8080, ts.ACK), 256)
	if out == nil || [6]byte(out[0:6]) != [6]byte(fxClientMAC) {
		t.Fatalf("a reply after the client packet: frame %x, want it sent to the client's MAC %v", out, fxClientMAC)
	}
}

// TestFileSyncedReply6 is TestFileSyncedReply for a synced IPv6 VS/NAT
// connection: PendingReply picks it with its IPv6 reply key (client, real
// server's IPv6 address and port), FileSyncedReply files it, so a reply
// before any client packet is rewritten to [VIP]:80 and sent to the hop
// given; the first client packet files its own hop, and later replies go
// to the client's MAC. A second connection, which no backup route filed,
// gets its replies from its first client packet alone (none are dropped
// as reply_no_connection).
func TestFileSyncedReply6(t *testing.T) {
	r := newNATRig6(t, 1024)
	if err := r.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	synced := func(cport uint16) ipvssync.Conn {
		return ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagMasq, State: ipvssync.TCPEstablished, CPort: cport, VPort: 80,
			DPort: 8080, Timeout: 900, CAddr: fxClient6, VAddr: fxVIP6NAT, DAddr: fxRS6NAT}
	}
	nat, other := synced(40000), synced(40001)
	for _, c := range []*ipvssync.Conn{&nat, &other} {
		if _, d := InstallSynced(r.snap, r.ct, c, 3); d != SyncOK {
			t.Fatalf("install %+v: %v", c, d)
		}
	}
	sr, ok := PendingReply(r.snap, r.ct, &nat)
	if !ok {
		t.Fatal("PendingReply did not pick the synced IPv6 NAT connection")
	}
	if want := (conntrack.Key{CAddr: fxClient6.As16(), CPort: 40000, VAddr: fxRS6NAT.As16(), VPort: 8080, Proto: conntrack.ProtoTCP}); sr.Reply != want || sr.Client != fxClient6 {
		t.Fatalf("reply key %v for client %v, want %v for %v", sr.Reply, sr.Client, want, fxClient6)
	}
	router := [6]byte{0x02, 0, 0, 0, 0, 0x77}
	if !FileSyncedReply(r.ct, &sr, 0, router) {
		t.Fatal("FileSyncedReply refused")
	}
	want := toClient6(n6Flags(ts.ACK))
	want.dstMAC = router[:]
	if v, out, _ := r.run(fromRS6(n6Flags(ts.ACK)).build(t), 256); v != VerdictForward || !bytes.Equal(out, want.build(t)) {
		t.Fatalf("a reply before any client packet: verdict %d, frame\n %x\nwant\n %x", v, out, want.build(t))
	}
	if _, ok := PendingReply(r.snap, r.ct, &nat); !ok {
		t.Fatal("after FileSyncedReply the connection must stay pending for its first client packet")
	}
	for _, sport := range []uint16{40000, 40001} {
		if v, out, _ := r.run(toVIP6(n6Flags(ts.ACK), n6Sport(sport)).build(t), 256); v != VerdictForward ||
			!bytes.Equal(out, toRS6(n6Flags(ts.ACK), n6Sport(sport)).build(t)) {
			t.Fatalf("client packet from port %d: verdict %d, frame %x", sport, v, out)
		}
	}
	if _, ok := PendingReply(r.snap, r.ct, &nat); ok {
		t.Fatal("PendingReply picked a connection its client packet filed")
	}
	if FileSyncedReply(r.ct, &sr, 0, router) {
		t.Fatal("FileSyncedReply overwrote the hop the client packet filed")
	}
	for _, sport := range []uint16{40000, 40001} {
		if v, out, _ := r.run(fromRS6(n6Flags(ts.ACK), n6Sport(sport)).build(t), 256); v != VerdictForward ||
			!bytes.Equal(out, toClient6(n6Flags(ts.ACK), n6Sport(sport)).build(t)) {
			t.Fatalf("reply to port %d after the client packet: verdict %d, frame %x (reply_no_connection %d)",
				sport, v, out, r.c.Drops[DropReplyNoConnection].Load())
		}
	}
}

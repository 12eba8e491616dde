package dataplane

import (
	"testing"

	"github.com/afvs/afvs/conntrack"
	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvssync"
)

// TestSyncSYNProxyTakeover: a SYN-proxied VS/NAT connection, synced once
// established, reaches the backup with its sequence adjustment in the
// entry's IPVS_OPT_SEQ_DATA (out_seq, IP_VS_CONN_F_OUT_SEQ), and after
// the takeover the backup shifts the client's acknowledgements and the
// server's sequence numbers as the master did. Without the option the
// backup would pass both unshifted and break the connection.
func TestSyncSYNProxyTakeover(t *testing.T) {
	master, backup := newFxRig(t, 1024, 64), newFxRig(t, 1024, 64)
	for _, r := range []*fxRig{master, backup} {
		proxyOn()(t, r)
		if err := r.ct.EnableSync(); err != nil {
			t.Fatal(err)
		}
	}
	q, err := ipvssync.NewQueue(64)
	if err != nil {
		t.Fatal(err)
	}
	master.p.SetSync(&SyncSink{Queue: q, Settings: ipvssync.DefaultSettings})
	cookie := spCookie(0, 3)
	master.send(t, "the client's ACK of the cookie", validACK(t))
	master.send(t, "the server's SYN-ACK", spFromRS(t, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0, mss1460))
	// The client's ACKs until the connection is due (sync_threshold 3);
	// the one that opened it through the proxy went out as the SYN.
	var recs []ipvssync.Record
	for i := 0; len(recs) == 0; i++ {
		if i == 5 {
			t.Fatal("the master queued nothing after 5 client ACKs of the established connection")
		}
		master.send(t, "a client ACK", spSeg(t, ts.ACK, spISN+1, cookie+1, 0))
		recs = drain(q)
	}
	if len(recs) != 1 {
		t.Fatalf("the master queued %d records, want the connection", len(recs))
	}
	var c ipvssync.Conn
	recs[0].Conn(&c)
	SyncedSeq(master.ct, &c)
	delta := cookie - spSrvISN
	if want := (ipvssync.Seq{Delta: delta, PreviousDelta: delta}); !c.HasSeq || c.Flags&ipvssync.FlagSeqMask != ipvssync.FlagOutSeq || c.OutSeq != want || c.InSeq != (ipvssync.Seq{}) {
		t.Fatalf("entry flags %#x, seq %v in %+v out %+v; want out_seq %+v alone", c.Flags, c.HasSeq, c.InSeq, c.OutSeq, want)
	}
	// On the wire and back, as the backup reads it.
	buf := make([]byte, 2000)
	enc, err := ipvssync.NewEncoder(buf, 1472, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Append(&c); err != nil {
		t.Fatal(err)
	}
	dec := ipvssync.Decoder{SyncID: 1}
	if err := dec.Decode(enc.Bytes(), func(c *ipvssync.Conn) {
		if !c.HasSeq || c.OutSeq.Delta != delta {
			t.Errorf("decoded entry: seq %v, out %+v", c.HasSeq, c.OutSeq)
		}
		if _, d := InstallSynced(backup.snap, backup.ct, c, 3); d != SyncOK {
			t.Fatalf("install: %v", d)
		}
	}); err != nil {
		t.Fatal(err)
	}
	key := conntrack.Key{CAddr: fxClient.As16(), VAddr: fxVIPNAT.As16(), CPort: 40000, VPort: 80, Proto: 6}
	conn, ok := backup.ct.Lookup(&key)
	if !ok || conn.State != conntrack.Established {
		t.Fatalf("backup entry %+v %v, want ESTABLISHED", conn, ok)
	}
	if sq, ok := backup.ct.SeqOf(&conn); !ok || sq != (conntrack.Seq{Delta: delta}) {
		t.Fatalf("backup sequence state %+v %v, want delta %d", sq, ok, delta)
	}
	// The takeover: both directions through the backup.
	v, out, _ := backup.run(spSeg(t, ts.ACK|ts.PSH, spISN+1, cookie+1, 10), 256)
	if v != VerdictForward {
		t.Fatalf("client data through the backup: verdict %d", v)
	}
	wantSeqAck(t, "client data to the server", out, spISN+1, spSrvISN+1)
	v, out, _ = backup.run(spFromRS(t, ts.ACK|ts.PSH, spSrvISN+1, spISN+11, 10), 256)
	if v != VerdictForward {
		t.Fatalf("server data through the backup: verdict %d", v)
	}
	wantSeqAck(t, "server data to the client", out, cookie+1, spISN+11)

	// A connection the proxy does not shift carries no option.
	var plain ipvssync.Conn
	recs[0].Conn(&plain)
	plain.CPort = 40001
	SyncedSeq(master.ct, &plain)
	if plain.HasSeq || plain.Flags&ipvssync.FlagSeqMask != 0 {
		t.Errorf("an entry with no proxied connection got seq %v, flags %#x", plain.HasSeq, plain.Flags)
	}
}

// TestSyncSYNProxyTakeover6 is TestSyncSYNProxyTakeover for an IPv6
// VS/NAT service: the entry is an IPv6 one (struct ip_vs_sync_v6) with
// the same option.
func TestSyncSYNProxyTakeover6(t *testing.T) {
	master, backup := newNATRig6(t, 1024), newNATRig6(t, 1024)
	for _, r := range []*fxRig{master, backup} {
		proxyOn6()(t, r)
		if err := r.ct.EnableSync(); err != nil {
			t.Fatal(err)
		}
	}
	q, err := ipvssync.NewQueue(64)
	if err != nil {
		t.Fatal(err)
	}
	master.p.SetSync(&SyncSink{Queue: q, Settings: ipvssync.DefaultSettings})
	master.send(t, "the client's ACK of the cookie", sp6ACK.build(t))
	master.send(t, "the server's SYN-ACK", sp6SYNACK.build(t))
	var recs []ipvssync.Record
	for i := 0; len(recs) == 0; i++ {
		if i == 5 {
			t.Fatal("the master queued nothing after 5 client ACKs of the established connection")
		}
		master.send(t, "a client ACK", sp6ToVIP(ts.ACK, spISN+1, sp6Cookie+1, 0).build(t))
		recs = drain(q)
	}
	var c ipvssync.Conn
	recs[0].Conn(&c)
	SyncedSeq(master.ct, &c)
	delta := sp6Cookie - spSrvISN
	if !c.IPv6() || !c.HasSeq || c.Flags&ipvssync.FlagSeqMask != ipvssync.FlagOutSeq || c.OutSeq.Delta != delta {
		t.Fatalf("entry IPv6 %v, flags %#x, seq %v out %+v; want out_seq delta %d", c.IPv6(), c.Flags, c.HasSeq, c.OutSeq, delta)
	}
	buf := make([]byte, 2000)
	enc, err := ipvssync.NewEncoder(buf, 1452, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Append(&c); err != nil {
		t.Fatal(err)
	}
	dec := ipvssync.Decoder{SyncID: 1}
	if err := dec.Decode(enc.Bytes(), func(c *ipvssync.Conn) {
		if _, d := InstallSynced(backup.snap, backup.ct, c, 3); d != SyncOK {
			t.Fatalf("install: %v", d)
		}
	}); err != nil {
		t.Fatal(err)
	}
	v, out, _ := backup.run(sp6ToVIP(ts.ACK|ts.PSH, spISN+1, sp6Cookie+1, 10).build(t), 256)
	if v != VerdictForward {
		t.Fatalf("client data through the backup: verdict %d", v)
	}
	wantSeqAck(t, "client data to the server", out, spISN+1, spSrvISN+1)
	v, out, _ = backup.run(sp6FromRS(ts.ACK|ts.PSH, spSrvISN+1, spISN+11, 10).build(t), 256)
	if v != VerdictForward {
		t.Fatalf("server data through the backup: verdict %d", v)
	}
	wantSeqAck(t, "server data to the client", out, sp6Cookie+1, spISN+11)
}

package dataplane

import (
	"testing"

	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// TestSyncPersistenceTakeover: a persistent service's connections and
// their templates go from a master to a backup in the kernel's order
// (each template at the first packet of a connection it controls, each
// connection followed by its template), and the backup installs both
// whatever their order, as ip_vs_proc_conn links neither to the other.
// On takeover every client's open connection goes on to its real
// server, and a new connection of that client is sent to the same
// server by the synced template. Without the templates (the same
// messages with them left out) rr sends some clients' new connections
// elsewhere: the check can fail.
func TestSyncPersistenceTakeover(t *testing.T) {
	tbl := oneService(vs.Route, "rr", 1, 1, 1)
	tbl.Services[0].Persistent, tbl.Services[0].Timeout = true, 300
	master := newRig(t, tbl, 4096)
	q := master.syncOn(t, ipvssync.DefaultSettings)
	const clients = 30
	client := func(i int) [4]byte { return [4]byte{198, 18, 3, byte(10 + i)} }
	mac := make([][6]byte, clients)
	for i := range clients {
		c := client(i)
		// SYN, then two ACKs: the 3rd packet is the one
		// sync_threshold sends.
		for j, syn := range []bool{true, false, false} {
			v, m := master.sendFrame(t, tcpFrame(t, c, 5000, syn, !syn, false, true, 0))
			if v != VerdictForward {
				t.Fatalf("client %d packet %d through the master: verdict %d", i, j, v)
			}
			mac[i] = m
		}
	}
	master.p.Flush()
	recs := drain(q)
	// The wire order is ip_vs_sync_conn's: with the default
	// sync_threshold a template is due at every packet of the
	// connections it controls, so each client's template goes out at
	// its SYN (which sends no connection: SYN_RECV is never synced),
	// well before the connection; at the 3rd packet the connection goes
	// out, followed by its template again.
	var conns, templates []ipvssync.Conn
	seenTemplate := map[[16]byte]bool{}
	for i := range recs {
		var c ipvssync.Conn
		recs[i].Conn(&c)
		if c.Flags&ipvssync.FlagTemplate != 0 {
			if !seenTemplate[recs[i].CAddr] {
				templates = append(templates, c)
			}
			seenTemplate[recs[i].CAddr] = true
			continue
		}
		if !seenTemplate[recs[i].CAddr] {
			t.Fatalf("record %d: client %v's connection before its template", i, c.CAddr)
		}
		if i+1 == len(recs) || recs[i+1].Flags&ipvssync.FlagTemplate == 0 || recs[i+1].CAddr != recs[i].CAddr {
			t.Fatalf("record %d: client %v's connection is not followed by its template", i, c.CAddr)
		}
		conns = append(conns, c)
	}
	if len(conns) != clients || len(templates) != clients {
		t.Fatalf("the master queued %d connections and %d templates, want %d of each", len(conns), len(templates), clients)
	}

	for _, tc := range []struct {
		name  string
		order []ipvssync.Conn // what the backup receives, in order
		sync  bool            // templates among them
	}{
		{"as sent", nil, true},
		{"connections first", append(append([]ipvssync.Conn(nil), conns...), templates...), true},
		{"no templates", conns, false},
	} {
		order := tc.order
		if order == nil {
			for i := range recs {
				var c ipvssync.Conn
				recs[i].Conn(&c)
				order = append(order, c)
			}
		}
		backup := newRig(t, tbl, 4096)
		if err := backup.ct.EnableSync(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65536)
		enc, err := ipvssync.NewEncoder(buf, 65507, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i := range order {
			if err := enc.Append(&order[i]); err != nil {
				t.Fatal(err)
			}
		}
		dec := ipvssync.Decoder{SyncID: 1}
		if err := dec.Decode(enc.Bytes(), func(c *ipvssync.Conn) {
			if _, d := InstallSynced(backup.snap, backup.ct, c, 3); d != SyncOK {
				t.Fatalf("%s: install %+v: %v", tc.name, c, d)
			}
		}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// The clients come back in reverse order, so rr alone would
		// not repeat the master's choices.
		moved := 0
		for i := clients - 1; i >= 0; i-- {
			c := client(i)
			if v, m := backup.sendFrame(t, tcpFrame(t, c, 5000, false, true, false, true, 10)); v != VerdictForward || m != mac[i] {
				t.Fatalf("%s: client %d's open connection through the backup: verdict %d to %x, want %x", tc.name, i, v, m, mac[i])
			}
			v, m := backup.sendFrame(t, tcpFrame(t, c, 6000, true, false, false, true, 0))
			if v != VerdictForward {
				t.Fatalf("%s: client %d's new connection through the backup: verdict %d", tc.name, i, v)
			}
			if tc.sync && !backup.p.Last.Template {
				t.Errorf("%s: client %d's new connection was not scheduled by its synced template", tc.name, i)
			}
			if m != mac[i] {
				moved++
			}
		}
		if tc.sync && moved != 0 {
			t.Errorf("%s: %d of %d clients' new connections went to another real server than their synced template's", tc.name, moved, clients)
		}
		if !tc.sync && moved == 0 {
			t.Errorf("%s: every new connection reached its client's old server without the templates; the check cannot tell", tc.name)
		}
	}
}

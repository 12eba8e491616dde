package syncd

import (
	"log/slog"
	"testing"

	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvssync"
)

// TestMasterSendsSeq: the master asks its host for each entry's sequence
// adjustment before packing it (for a SYN-proxied connection, which a
// worker's record cannot carry), and the entries that have one reach
// the backup with IPVS_OPT_SEQ_DATA and IP_VS_CONN_F_OUT_SEQ; the others
// go without.
func TestMasterSendsSeq(t *testing.T) {
	p := newPair(t)
	mh := &fakeHost{seq: func(c *ipvssync.Conn) {
		if c.CPort%2 == 0 {
			c.Flags |= ipvssync.FlagOutSeq
			c.HasSeq = true
			c.OutSeq = ipvssync.Seq{Delta: uint32(c.CPort) << 8, PreviousDelta: uint32(c.CPort) << 8}
		}
	}}
	bh := &fakeHost{}
	quiet := Options{Log: slog.New(slog.DiscardHandler)}
	master, backup := New(mh, quiet), New(bh, quiet)
	t.Cleanup(master.Close)
	t.Cleanup(backup.Close)
	in(t, p.b, func() error {
		return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", SyncID: 3})
	})
	in(t, p.a, func() error {
		return master.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "synca", SyncID: 3})
	})
	const n = 6
	q := mh.queues[0]
	for i := range n {
		r := record(i)
		if !q.Push(&r) {
			t.Fatal("queue full")
		}
	}
	q.Publish()
	waitFor(t, "the backup to install every entry", func() bool { return bh.count() == n })
	bh.mu.Lock()
	defer bh.mu.Unlock()
	for _, c := range bh.installed {
		if c.CPort%2 == 0 {
			d := uint32(c.CPort) << 8
			if !c.HasSeq || c.Flags&ipvssync.FlagSeqMask != ipvssync.FlagOutSeq || c.OutSeq != (ipvssync.Seq{Delta: d, PreviousDelta: d}) {
				t.Errorf("entry of port %d: seq %v, flags %#x, out_seq %+v; want out_seq delta %d", c.CPort, c.HasSeq, c.Flags, c.OutSeq, d)
			}
		} else if c.HasSeq || c.Flags&ipvssync.FlagSeqMask != 0 {
			t.Errorf("entry of port %d: seq %v, flags %#x; want none", c.CPort, c.HasSeq, c.Flags)
		}
	}
}

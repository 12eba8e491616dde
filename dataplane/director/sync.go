package director

import (
	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/ipvssync"
)

// StartSync gives every worker its own sync queue of capacity records and
// makes it offer the connections ipvssync.Needed picks under s, for a sync
// master to drain. It allocates the table's per-entry sync words the first
// time.
func (d *Director) StartSync(s ipvssync.Settings, capacity int) ([]*ipvssync.Queue, error) {
	if err := d.CT.EnableSync(); err != nil {
		return nil, err
	}
	qs := make([]*ipvssync.Queue, len(d.workers))
	for i := range d.workers {
		q, err := ipvssync.NewQueue(capacity)
		if err != nil {
			return nil, err
		}
		qs[i] = q
	}
	for i, w := range d.workers {
		w.proc.SetSync(&dataplane.SyncSink{Queue: qs[i], Settings: s})
	}
	return qs, nil
}

// SetSyncSettings changes the sync sysctls of the running master's
// queues, from the workers' next frame.
func (d *Director) SetSyncSettings(s ipvssync.Settings) {
	for _, w := range d.workers {
		if sk := w.proc.Sync(); sk != nil {
			w.proc.SetSync(&dataplane.SyncSink{Queue: sk.Queue, Settings: s})
		}
	}
}

// StopSync makes the workers stop offering connections to sync.
func (d *Director) StopSync() {
	for _, w := range d.workers {
		w.proc.SetSync(nil)
	}
}

// InstallSynced installs an entry a sync master sent into the table, with
// its real server looked up in the snapshot in force. A VS/NAT
// connection's replies are filed by the route to its client
// (syncreply.go), so they pass before its first client packet here.
func (d *Director) InstallSynced(c *ipvssync.Conn, threshold int) (conntrack.SyncResult, dataplane.SyncDrop) {
	snap := d.snap.Load()
	res, drop := dataplane.InstallSynced(snap, d.CT, c, threshold)
	if drop == dataplane.SyncOK {
		if r, ok := dataplane.PendingReply(snap, d.CT, c); ok {
			d.fileSyncedReply(snap, &r)
		}
	}
	return res, drop
}

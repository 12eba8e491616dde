package director

import (
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/ipvssync"
)

// SyncSeq adds to c, an entry the sync master is about to send, the
// sequence adjustment of its connection when the SYN proxy shifts it
// (dataplane.SyncedSeq), so that a backup taking the connection over
// shifts it alike.
func (d *Director) SyncSeq(c *ipvssync.Conn) { dataplane.SyncedSeq(d.CT, c) }

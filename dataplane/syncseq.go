package dataplane

import (
	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/ipvssync"
)

// A SYN-proxied VS/NAT connection (synproxy.go) shifts the real server's
// sequence numbers on the way to the client, and the client's
// acknowledgement numbers back, by the difference of the two initial
// sequence numbers. A backup that takes such a connection over needs
// that difference, or it forwards both directions unshifted and the
// connection breaks. Connection sync carries it as IPVS carries the
// sequence adjustments of its application helpers: in the entry's
// IPVS_OPT_SEQ_DATA option, as the connection's out_seq (the kernel's
// ip_vs_app.c shifts a reply's sequence number by out_seq and a client
// packet's acknowledgement number back by it) with IP_VS_CONN_F_OUT_SEQ
// set. The delta and previous_delta are both the difference and
// init_seq is 0, so the shift applies to every sequence number, as the
// proxy's does. in_seq stays zero: the proxy never changes the client's
// own sequence numbers.

// SyncedSeq adds the sequence adjustment of c's connection in ct, when it
// is a SYN-proxied connection past its handshake with the real server,
// to the sync entry c (a connection, not a template). A pending
// connection (the server has not answered the proxy's SYN) is in
// SYN_RECV, which is never sent. It is called by the sync master's
// sender, off the workers' path.
func SyncedSeq(ct *conntrack.Table, c *ipvssync.Conn) {
	if c.Flags&ipvssync.FlagTemplate != 0 || c.Protocol != ipvssync.ProtoTCP || !ct.HasReverse() {
		return
	}
	k := conntrack.Key{CAddr: c.CAddr.As16(), VAddr: c.VAddr.As16(), CPort: c.CPort, VPort: c.VPort, Proto: c.Protocol}
	conn, ok := ct.Lookup(&k)
	if !ok {
		return
	}
	sq, ok := ct.SeqOf(&conn)
	if !ok || sq.Pending {
		return
	}
	c.Flags |= ipvssync.FlagOutSeq
	c.HasSeq = true
	c.InSeq = ipvssync.Seq{}
	c.OutSeq = ipvssync.Seq{Delta: sq.Delta, PreviousDelta: sq.Delta}
}

// installSeq gives the connection InstallSynced installed for c the
// sequence adjustment c carries as its out_seq, so that the backup
// shifts its packets as the master's SYN proxy did. An entry without
// IP_VS_CONN_F_OUT_SEQ or without the option changes nothing. Of an
// out_seq whose delta and previous_delta differ (a Linux master's
// application helper that resized a packet), the delta is taken: it is
// the shift of every sequence number after the last resize.
func installSeq(ct *conntrack.Table, k *conntrack.Key, c *ipvssync.Conn) {
	if !c.HasSeq || c.Flags&ipvssync.FlagOutSeq == 0 || (c.OutSeq.Delta == 0 && c.OutSeq.PreviousDelta == 0) {
		return
	}
	if conn, ok := ct.Lookup(k); ok {
		ct.SetSeq(&conn, conntrack.Seq{Delta: c.OutSeq.Delta})
	}
}

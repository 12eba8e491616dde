// Package ipvssync speaks IPVS's connection-sync protocol, version 1, as
// the kernel's net/netfilter/ipvs/ip_vs_sync.c writes and reads it, byte
// for byte, so that an AFVS director can follow a Linux IPVS master and
// the other way round. It is pure: no sockets, no clock, no afvs imports.
//
// A message (one UDP datagram) is an 8-byte header followed by entries:
//
//	header: reserved (0), syncid, size (be16, the whole message),
//	        nr_conns, version (1), spare (be16, 0)
//	entry:  type (bit 0: IPv6), protocol, ver_size (be16: version in the
//	        top 4 bits, always 0; entry length in the low 12),
//	        flags (be32), state (be16), cport, vport, dport (be16),
//	        fwmark (be32), timeout (be32, seconds),
//	        caddr, vaddr, daddr (4 or 16 bytes each)
//	        then options: type, length, data
//
// The options are IPVS_OPT_SEQ_DATA (type 1: two struct ip_vs_seq of
// three be32 each, 24 bytes), IPVS_OPT_PE_DATA (type 2, up to 255 bytes)
// and IPVS_OPT_PE_NAME (type 3, up to 16 bytes). An option type with bit
// 6 set (IPVS_OPT_F_PARAM) may be skipped by a receiver that does not
// know it; an unknown one without it makes the receiver drop the entry.
// Entries start on 4-byte boundaries: the sender puts zero bytes before
// an entry that would not, and the entry's own length excludes them.
//
// The version-0 format (no header version byte; its first byte is the
// entry count, so never zero in a useful message) is recognised and
// dropped with its own reason rather than decoded.
//
// Encoder appends entries into a caller's buffer up to the message size
// the kernel derives from sync_maxlen and the MTU (MaxLen). Decoder
// checks a datagram the way ip_vs_process_message does and counts every
// drop by reason: a malformed message is refused whole before any entry
// is handed over, and an entry the kernel would skip alone (unknown
// mandatory option, unknown protocol, state out of range, PE data
// without a PE name) is skipped and counted while the rest are read.
//
// Needed models ip_vs_sync_conn_needed: given a connection's protocol,
// state, flags, packet count and last sync time, and the sync sysctls,
// whether the master sends it now. As in ip_vs_sync_conn, the caller
// never offers one-packet connections (FlagOnePacket), and after offering
// a connection, sent or not, offers its controlling template too.
//
// Record and Queue are the hand-over from the dataplane to a sender: a
// fixed-size, pointer-free record per connection to send, and a bounded
// single-producer, single-consumer ring that a worker pushes into without
// locking or allocating, dropping and counting when it is full.
package ipvssync

package ipvssync

import "net/netip"

// Protocol constants of ip_vs_sync.c and its headers.
const (
	// DefaultPort is IP_VS_SYNC_PORT, the UDP port of the first sync
	// thread (thread i uses DefaultPort+i).
	DefaultPort = 8848
	// DefaultTTL is the multicast TTL start_sync_thread uses when none is
	// given.
	DefaultTTL = 1
	// Version is SYNC_PROTO_VER, the header's version byte.
	Version = 1

	// HeaderLen is sizeof(struct ip_vs_sync_mesg).
	HeaderLen = 8
	// HeaderV0Len is sizeof(struct ip_vs_sync_mesg_v0), the shortest
	// datagram the kernel looks at.
	HeaderV0Len = 4
	// EntryV4Len is sizeof(struct ip_vs_sync_v4).
	EntryV4Len = 36
	// EntryV6Len is sizeof(struct ip_vs_sync_v6).
	EntryV6Len = 72
	// SeqOptLen is sizeof(struct ip_vs_sync_conn_options): in_seq and
	// out_seq, each init_seq, delta, previous_delta.
	SeqOptLen = 24
	// PEDataMax is IP_VS_PEDATA_MAXLEN.
	PEDataMax = 255
	// PENameMax is IP_VS_PENAME_MAXLEN.
	PENameMax = 16
	// MaxEntryLen is the longest entry: IPv6 with every option.
	MaxEntryLen = EntryV6Len + 2 + SeqOptLen + 2 + PEDataMax + 2 + PENameMax
	// MaxConns is the most entries a message can count (nr_conns is a
	// byte).
	MaxConns = 255

	typeInet6  = 1 << 0 // STYPE_F_INET6
	sverShift  = 12     // SVER_SHIFT
	sverMask   = 0x0fff // SVER_MASK
	optSeqData = 1      // IPVS_OPT_SEQ_DATA
	optPEData  = 2      // IPVS_OPT_PE_DATA
	optPEName  = 3      // IPVS_OPT_PE_NAME
	optFParam  = 1 << (7 - 1)
)

// DefaultGroup is IP_VS_SYNC_GROUP, 224.0.0.81.
var DefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

// Connection flags (IP_VS_CONN_F_*, include/uapi/linux/ip_vs.h) as they
// travel in an entry's flags field.
const (
	FlagFwdMask   uint32 = 0x0007 // forwarding method
	FlagMasq      uint32 = 0x0000
	FlagLocalNode uint32 = 0x0001
	FlagTunnel    uint32 = 0x0002
	FlagDRoute    uint32 = 0x0003
	FlagBypass    uint32 = 0x0004
	FlagSync      uint32 = 0x0020 // entry created by sync (set by the receiver)
	FlagHashed    uint32 = 0x0040 // never sent
	FlagNoOutput  uint32 = 0x0080
	FlagInactive  uint32 = 0x0100 // not established
	FlagOutSeq    uint32 = 0x0200
	FlagInSeq     uint32 = 0x0400
	FlagSeqMask   uint32 = 0x0600
	FlagNoCPort   uint32 = 0x0800
	FlagTemplate  uint32 = 0x1000 // persistence template, not a connection
	FlagOnePacket uint32 = 0x2000 // never synced
	FlagNFCT      uint32 = 1 << 16

	// BackupMask is IP_VS_CONN_F_BACKUP_MASK: the bits a backup keeps
	// from a received entry.
	BackupMask = FlagFwdMask | FlagNoOutput | FlagInactive | FlagSeqMask | FlagNoCPort | FlagTemplate
	// BackupUpdMask is IP_VS_CONN_F_BACKUP_UPD_MASK: the bits an update
	// may change on an entry the backup already has.
	BackupUpdMask = FlagInactive | FlagSeqMask
)

// BackupFlags returns the flags a backup gives a connection it creates
// from a received entry: the wire flags masked by BackupMask, plus
// FlagSync.
func BackupFlags(wire uint32) uint32 { return wire&BackupMask | FlagSync }

// UpdateFlags returns the flags of a connection the backup already holds
// (old) after an entry with wire flags updates it: only BackupUpdMask
// bits come from the wire.
func UpdateFlags(old, wire uint32) uint32 {
	return BackupFlags(wire)&BackupUpdMask | old&^BackupUpdMask
}

// IP protocols the kernel's sync receiver knows, with their state counts.
const (
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoSCTP = 132
	ProtoAH   = 51
	ProtoESP  = 50
)

// TCP states, numbered as IP_VS_TCP_S_* in include/net/ip_vs.h.
const (
	TCPNone uint16 = iota
	TCPEstablished
	TCPSynSent
	TCPSynRecv
	TCPFinWait
	TCPTimeWait
	TCPClose
	TCPCloseWait
	TCPLastAck
	TCPListen
	TCPSynAck
	tcpLast
)

// SCTP states, numbered as IP_VS_SCTP_S_*.
const (
	SCTPNone uint16 = iota
	SCTPInit1
	SCTPInit
	SCTPCookieSent
	SCTPCookieReplied
	SCTPCookieWait
	SCTPCookieEchoed
	SCTPEstablished
	SCTPShutdownSent
	SCTPShutdownReceived
	SCTPShutdownAckSent
	SCTPRejected
	SCTPClosed
	sctpLast
)

// Template states, IP_VS_CTPL_S_*.
const (
	TemplateNone uint16 = iota
	TemplateAssured
	templateLast
)

// numStates is pp->num_states of the protocols ip_vs_proto_get finds;
// 0 means an unknown protocol.
func numStates(proto uint8) uint16 {
	switch proto {
	case ProtoTCP:
		return tcpLast
	case ProtoUDP:
		return 1 // IP_VS_UDP_S_LAST
	case ProtoSCTP:
		return sctpLast
	case ProtoAH, ProtoESP:
		return 1
	}
	return 0
}

// Seq is struct ip_vs_seq as it travels: TCP sequence adjustment.
type Seq struct {
	InitSeq       uint32
	Delta         uint32
	PreviousDelta uint32
}

// Conn is one sync entry. Decoding fills it with PEData and PEName
// pointing into the message; encoding reads them from the caller.
type Conn struct {
	Protocol uint8
	Flags    uint32 // IP_VS_CONN_F_* as sent (FlagHashed never is)
	State    uint16
	CPort    uint16
	VPort    uint16
	DPort    uint16
	FWMark   uint32
	Timeout  uint32 // seconds
	// CAddr, VAddr and DAddr are all IPv4 or all IPv6; the family is the
	// entry's type.
	CAddr, VAddr, DAddr netip.Addr

	// HasSeq says the entry carries IPVS_OPT_SEQ_DATA. The kernel sends
	// it exactly when Flags has a FlagSeqMask bit.
	HasSeq bool
	InSeq  Seq
	OutSeq Seq
	// PEData and PEName are the persistence engine's data and name
	// (IPVS_OPT_PE_DATA, IPVS_OPT_PE_NAME); empty when absent.
	PEData []byte
	PEName []byte
}

// IPv6 reports whether the entry is an IPv6 one (type bit 0).
func (c *Conn) IPv6() bool { return c.CAddr.Is6() }

// Len is the entry's length on the wire, without alignment padding: the
// low 12 bits of ver_size.
func (c *Conn) Len() int {
	n := EntryV4Len
	if c.IPv6() {
		n = EntryV6Len
	}
	if c.HasSeq {
		n += 2 + SeqOptLen
	}
	if len(c.PEData) > 0 {
		n += 2 + len(c.PEData)
	}
	if len(c.PEName) > 0 {
		n += 2 + len(c.PEName)
	}
	return n
}

// MaxLen is the largest message start_sync_thread lets a sync daemon
// send (master) or read (backup): syncMaxlen clamped to [1, 65535-hlen]
// for a master and [1024, 65535-hlen] for a backup, or, when syncMaxlen
// is 0, the MTU less the IP and UDP headers (hlen, 28 for IPv4 and 48 for
// IPv6), where a master always assumes an MTU of 1500 and a backup uses
// the interface's, clamped to [1500, 65535].
func MaxLen(backup bool, ifMTU, syncMaxlen int, ipv6 bool) int {
	hlen := 20 + 8
	if ipv6 {
		hlen = 40 + 8
	}
	mtu, minMTU := 1500, 1
	if backup {
		mtu, minMTU = min(max(ifMTU, 1500), 65535), 1024
	}
	if syncMaxlen > 0 {
		return min(max(syncMaxlen, minMTU), 65535-hlen)
	}
	return mtu - hlen
}

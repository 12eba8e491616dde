package dataplane

import (
	"encoding/binary"
	"math"
	"net/netip"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// SyncSink is where a processor hands the connections connection sync
// must send while a sync master runs: its own single-producer queue, which
// the master drains, and the sync sysctls that decide when. It is
// immutable once set; SetSync swaps it whole.
type SyncSink struct {
	Queue    *ipvssync.Queue
	Settings ipvssync.Settings

	// What SetSync derives from Settings for the hook's common case.
	// When the packet count alone can rule a sync out (the period of
	// sync_threshold is set, or neither it nor sync_refresh_period is),
	// ip_vs_sync_conn_needed answers no, changing nothing but the count,
	// at every count other than the one it tests for (count modulo
	// period == due, or count == due with period 0), unless a TCP
	// connection has moved to a state other than ESTABLISHED since it
	// was last sent (the kernel's forced send). count counts such
	// packets with no further decision (under the zero rule, when the
	// count alone rules nothing out, it counts none); every other packet
	// gets the kernel's whole rule (syncDecide).
	count conntrack.SyncCounter
}

// SetSync makes the processor offer connections to sk (nil: stop). Any
// goroutine may call it; the worker sees it at its next frame. The
// connection table must have had EnableSync called. The processor keeps
// its own copy of *sk.
func (p *Processor) SetSync(sk *SyncSink) {
	if sk == nil {
		p.sync.Store(nil)
		return
	}
	c := &SyncSink{Queue: sk.Queue, Settings: sk.Settings}
	period := uint32(max(sk.Settings.Period, 0))
	// A threshold no uint32 holds is left to the whole rule.
	var rule conntrack.SyncRule
	if (period > 0 || sk.Settings.RefreshPeriod == 0) && uint(sk.Settings.Threshold) <= math.MaxUint32 {
		rule = conntrack.NewSyncRule(period, uint32(sk.Settings.Threshold))
	}
	c.count = p.ct.SyncCounter(rule)
	p.sync.Store(c)
}

// Sync returns the sink in force, nil when none.
func (p *Processor) Sync() *SyncSink { return p.sync.Load() }

// ipvsState is a table state as a sync entry numbers it: TCP states are
// IPVS's own numbers, and UDP has one state, 0 (IP_VS_UDP_S_NORMAL).
func ipvsState(s conntrack.State) uint16 {
	if s == conntrack.UDP {
		return 0
	}
	return uint16(s)
}

// fwdFlags is a forwarding method as IP_VS_CONN_F_* bits.
func fwdFlags(f vs.Fwd) uint32 {
	switch f {
	case vs.Tunnel:
		return ipvssync.FlagTunnel
	case vs.Masq:
		return ipvssync.FlagMasq
	case vs.Local:
		return ipvssync.FlagLocalNode
	}
	return ipvssync.FlagDRoute
}

// nextPkts counts one more packet, keeping the count within what the
// table stores without changing it modulo the sync period (the only way
// ip_vs_sync_conn_needed reads it when the period is set).
func nextPkts(n uint32, period int) uint32 {
	n++
	if n > conntrack.MaxSyncPkts {
		if period > 0 {
			n %= uint32(period)
		} else {
			n = conntrack.MaxSyncPkts
		}
	}
	return n
}

// syncConn is ip_vs_sync_conn as ip_vs_in_hook calls it: it counts the
// packet on c, asks ipvssync.Needed whether the master sends c now and,
// if so, queues it; then, as the kernel walks cp->control whether or not
// the connection was sent, it counts the packet on the controlling
// template and queues that when Needed says so (with the default
// sync_threshold and no sync_refresh_period, a template is due at every
// packet of its connections, as in the kernel). A full queue drops the
// record and counts it. Nothing here allocates.
func (p *Processor) syncConn(sk *SyncSink, s *Snapshot, svc *Service, d *Dest, c *conntrack.Conn) {
	// A packet that only counts (see SyncSink.count), of a connection a
	// template controls: Count stores the flow's word plainly, as its
	// one writer (syncCounted has counted the others). When
	// two queues serve one flow at once a count can be lost and the flow
	// sent one packet late or once more (conntrack's sync.go says how).
	if sk.count.Count(c, p.key.Proto) {
		if c.Template() != 0 {
			p.syncControl(sk, s, svc, c)
		}
		return
	}
	p.syncDecide(sk, s, svc, d, c)
}

// syncOnePacket is ip_vs_sync_conn for a datagram of a one-packet
// service: ip_vs_in_hook passes sync_threshold as its packet count, and
// ip_vs_sync_conn never sends such a connection ("Do not sync ONE
// PACKET") but goes to its "control:" label, where the controlling
// template counts the packet and is sent when ip_vs_sync_conn_needed
// says so. Without persistence nothing is sent.
func (p *Processor) syncOnePacket(sk *SyncSink, s *Snapshot, svc *Service) {
	if p.opsTmpl != 0 {
		p.syncTemplate(sk, s, svc, p.opsTmpl, ipvssync.Ticks(p.ct.NowMillis()))
	}
}

// syncCounted is the hook's common case, small enough to be inlined into
// the frame's code: it counts a packet of a connection no template
// controls that only counts (see SyncSink.count) and reports true. When
// it reports false it has changed nothing, and the caller calls
// syncConn, which counts or decides in full.
func (p *Processor) syncCounted(sk *SyncSink) bool {
	return p.sconn.Template() == 0 && sk.count.Count(&p.sconn, p.key.Proto)
}

// syncControl is the kernel's "control:" label for a packet that only
// counted on its connection: the controlling template is considered all
// the same.
func (p *Processor) syncControl(sk *SyncSink, s *Snapshot, svc *Service, c *conntrack.Conn) {
	p.syncTemplate(sk, s, svc, c.Template(), ipvssync.Ticks(p.ct.NowMillis()))
}

// syncDecide is syncConn's full decision, for a packet the count alone
// could not rule out: ip_vs_sync_conn_needed on the counted packet.
func (p *Processor) syncDecide(sk *SyncSink, s *Snapshot, svc *Service, d *Dest, c *conntrack.Conn) {
	ct := p.ct
	now := ipvssync.Ticks(ct.NowMillis())
	to := ct.Timeout(c.State)
	ci := ipvssync.ConnInfo{
		Protocol: p.key.Proto, State: ipvsState(c.State),
		Timeout: ipvssync.Ticks(to / time.Millisecond), InPersistence: c.Template() != 0,
	}
	if !c.State.Active() {
		ci.Flags = ipvssync.FlagInactive
	}
	// The flow's one writer reads and stores its word plainly, as Count
	// does (conntrack's sync.go says what a second queue may change).
	info, ok := sk.count.Info(c)
	if !ok {
		return
	}
	pkts := nextPkts(info.Pkts, sk.Settings.Period)
	st := ipvssync.SyncState{OldState: uint16(info.OldState), EndTime: ipvssync.Ticks(info.EndTime)}
	send := ipvssync.Needed(&sk.Settings, &ci, &st, int(pkts), now)
	sk.count.Set(c, conntrack.SyncInfo{Pkts: pkts, OldState: uint8(st.OldState), EndTime: uint64(st.EndTime)})
	if send {
		p.queueConn(sk, svc, d, &ci, to)
	}
	// The kernel's "control:" label: the controlling template is
	// considered whether or not the connection was sent.
	if ref := c.Template(); ref != 0 {
		p.syncTemplate(sk, s, svc, ref, now)
	}
}

// connDPort is the port a connection to d is sent to, cp->dport in the
// kernel: ip_vs_schedule creates it with the dest's port, or with the
// packet's destination port when the dest has port 0 (a firewall-mark or
// port-0 service). A template keeps the dest's own port.
func connDPort(d *Dest, vport uint16) uint16 {
	if d.Port != 0 {
		return d.Port
	}
	return vport
}

// queueConn queues the frame's connection, or counts it as unsent when
// its real server's family is not the packet's (see setAddrs).
func (p *Processor) queueConn(sk *SyncSink, svc *Service, d *Dest, ci *ipvssync.ConnInfo, to time.Duration) {
	if p.pk.IPv6 != d.Is6 {
		sk.Queue.Skip()
		return
	}
	r := &p.rec
	*r = ipvssync.Record{
		Flags: fwdFlags(d.Fwd) | ci.Flags, FWMark: svc.Key.FWMark, Timeout: uint32(to / time.Second),
		CPort: p.key.CPort, VPort: p.key.VPort, DPort: connDPort(d, p.key.VPort),
		State: ci.State, Protocol: p.key.Proto,
	}
	setAddrs(r, &p.key, d)
	sk.Queue.Push(r)
}

// setAddrs puts k's client and virtual addresses and d's address in r, in
// the family of d, which the caller has checked is k's. A sync entry has
// one family for all three addresses (struct ip_vs_sync_v4 or
// ip_vs_sync_v6, typed by the connection's cp->af): the kernel's
// ip_vs_sync_conn copies cp->daddr in that family even when the real
// server's own family (cp->daf, a 4in6 or 6in4 tunnel dest) differs, so
// its backup gets an address it cannot find, and ip_vs_proc_conn assumes
// the two families equal. Such a connection is not sent here but counted
// (Queue.Skip: the master's unsent_mixed_family).
func setAddrs(r *ipvssync.Record, k *conntrack.Key, d *Dest) {
	if d.Is6 {
		r.IPv6 = true
		r.CAddr, r.VAddr, r.DAddr = k.CAddr, k.VAddr, d.Addr6
		return
	}
	copy(r.CAddr[:4], k.CAddr[12:])
	copy(r.VAddr[:4], k.VAddr[12:])
	copy(r.DAddr[:4], d.Addr[:])
}

// syncTemplate offers the template ref, with its own packet count
// incremented, after a packet of a connection it controls.
func (p *Processor) syncTemplate(sk *SyncSink, s *Snapshot, svc *Service, ref conntrack.TemplateRef, now ipvssync.Ticks) {
	ct := p.ct
	k, dest, to, ok := ct.TemplateInfo(ref)
	if !ok {
		return
	}
	tsvc, d, ok := s.DestByID(dest)
	if !ok {
		return
	}
	ci := ipvssync.ConnInfo{Protocol: k.Proto, Flags: ipvssync.FlagTemplate, Timeout: ipvssync.Ticks(to / time.Millisecond)}
	for {
		info, raw, ok := ct.TemplateSyncInfo(ref)
		if !ok {
			return
		}
		pkts := nextPkts(info.Pkts, sk.Settings.Period)
		st := ipvssync.SyncState{OldState: uint16(info.OldState), EndTime: ipvssync.Ticks(info.EndTime)}
		send := ipvssync.Needed(&sk.Settings, &ci, &st, int(pkts), now)
		if !ct.SetTemplateSyncInfo(ref, raw, conntrack.SyncInfo{Pkts: pkts, OldState: uint8(st.OldState), EndTime: uint64(st.EndTime)}) {
			continue
		}
		if !send {
			return
		}
		break
	}
	if tsvc.Key.Is6() != d.Is6 {
		sk.Queue.Skip() // a mixed-family dest: see setAddrs
		return
	}
	r := &p.rec
	*r = ipvssync.Record{
		Flags: fwdFlags(d.Fwd) | ipvssync.FlagTemplate, FWMark: svc.Key.FWMark, Timeout: uint32(to / time.Second),
		CPort: k.CPort, VPort: k.VPort, DPort: d.Port, Protocol: k.Proto,
	}
	setAddrs(r, &k, d)
	sk.Queue.Push(r)
}

// fileSynced files the reply key of a VS/NAT connection that connection
// sync installed, at its first client packet here: the sync message does
// not say where the master sent the replies, and this packet shows where
// they go now (its interface and the MAC it came from), as the first
// packet of a connection made here does. Until then its replies go where
// the backup's route to the client leads (FileSyncedReply), or, when that was
// not known, are dropped as reply_no_connection. With no room in the
// reverse index the mark stays and the next packet tries again. Both
// families file alike: the reverse index holds 16-byte addresses.
func (p *Processor) fileSynced(c *conntrack.Conn, d *Dest) {
	if d.Fwd != vs.Masq || p.fileReply(c, d) {
		p.ct.ReplyFiled(c)
	}
}

// SyncDrop is why a backup did not install a received entry.
type SyncDrop uint8

// Install drop reasons.
const (
	SyncOK SyncDrop = iota
	// SyncUnknownService: no service matches the entry's protocol,
	// virtual address and port (or firewall mark).
	SyncUnknownService
	// SyncUnknownDest: the service has no real server at the entry's
	// address and port.
	SyncUnknownDest
	// SyncUnsupported: a connection of a protocol other than TCP and
	// UDP: the dataplane does not forward them.
	SyncUnsupported
	// SyncTableFull: the connection or template table had no room.
	SyncTableFull
	// SyncStaleEntry: an inactive copy of a connection the backup already
	// holds with another real server; ignored, as the kernel does.
	SyncStaleEntry
	// NumSyncDrops bounds the reasons.
	NumSyncDrops
)

var syncDropNames = [NumSyncDrops]string{
	SyncOK: "ok", SyncUnknownService: "unknown_service", SyncUnknownDest: "unknown_dest",
	SyncUnsupported: "unsupported", SyncTableFull: "table_full", SyncStaleEntry: "stale",
}

// String is the reason's counter label.
func (r SyncDrop) String() string {
	if r < NumSyncDrops {
		return syncDropNames[r]
	}
	return "syncdrop(?)"
}

// defaultTemplateTimeout is what ip_vs_proc_conn gives a template whose
// entry carries no timeout (3 minutes).
const defaultTemplateTimeout = 3 * time.Minute

// InstallSynced installs one entry a sync master sent into ct, as a
// backup's ip_vs_proc_conn does: the real server is looked up by the
// entry's service (protocol, virtual address and port, or firewall mark)
// and its own address and port in snapshot s; a template becomes a
// persistence template, a connection an entry in the state sent with the
// timeout sent (the state's timeout when 0), its packet count set to the
// sync threshold and its last sent state to its state, so that this
// director, as a master later, syncs it as the kernel would; a VS/NAT
// connection's sequence adjustment, sent in its out_seq, is recorded as
// ip_vs_proc_conn copies the option (syncseq.go). Bad or unknown entries
// change nothing and return why.
func InstallSynced(s *Snapshot, ct *conntrack.Table, c *ipvssync.Conn, threshold int) (conntrack.SyncResult, SyncDrop) {
	template := c.Flags&ipvssync.FlagTemplate != 0
	if !template && c.Protocol != ipvssync.ProtoTCP && c.Protocol != ipvssync.ProtoUDP {
		return 0, SyncUnsupported
	}
	_, d, drop := syncTarget(s, c)
	if drop != SyncOK {
		return 0, drop
	}
	// The table's key form: an IPv4 address mapped (::ffff:a.b.c.d), an
	// IPv6 one as it is.
	k := conntrack.Key{
		CAddr: c.CAddr.As16(), VAddr: c.VAddr.As16(),
		CPort: c.CPort, VPort: c.VPort, Proto: c.Protocol,
	}
	timeout := time.Duration(c.Timeout) * time.Second
	if template {
		if timeout == 0 {
			timeout = defaultTemplateTimeout
		}
		info := conntrack.SyncInfo{Pkts: uint32(max(0, min(threshold, conntrack.MaxSyncPkts))), EndTime: ct.NowMillis() &^ 3}
		_, r := ct.SyncTemplate(&k, d.ID, min(timeout, conntrack.MaxTimeout), info)
		if r == conntrack.SyncFull {
			return r, SyncTableFull
		}
		return r, SyncOK
	}
	st := conntrack.UDP
	if c.Protocol == ipvssync.ProtoTCP {
		st = conntrack.State(c.State)
	}
	if timeout == 0 {
		timeout = ct.Timeout(st)
	}
	info := conntrack.SyncInfo{Pkts: uint32(max(0, min(threshold, conntrack.MaxSyncPkts))), OldState: uint8(ipvsState(st)), EndTime: ct.NowMillis() &^ 3}
	r := ct.SyncConn(&k, d.ID, uint8(d.Fwd), st, min(timeout, conntrack.MaxTimeout), c.Flags&ipvssync.FlagInactive != 0, info)
	switch r {
	case conntrack.SyncFull:
		return r, SyncTableFull
	case conntrack.SyncStale:
		return r, SyncStaleEntry
	}
	if d.Fwd == vs.Masq {
		installSeq(ct, &k, c) // syncseq.go
	}
	return r, SyncOK
}

// syncTarget finds an entry's service and real server in s: the service
// by the entry's family and its protocol, virtual address and port, or its
// firewall mark (ip_vs_find_dest's ip_vs_service_find), then the real
// server in it (syncDest).
func syncTarget(s *Snapshot, c *ipvssync.Conn) (*Service, *Dest, SyncDrop) {
	var svc *Service
	switch {
	case c.FWMark != 0:
		sv, ok := s.ServiceByKey(vs.Key{FWMark: c.FWMark, IPv6: c.IPv6()})
		if !ok {
			return nil, nil, SyncUnknownService
		}
		svc = sv
	case c.IPv6():
		va := c.VAddr.As16()
		si, ok := s.lookup6(&va, c.Protocol, c.VPort)
		if !ok {
			return nil, nil, SyncUnknownService
		}
		svc = &s.Services[si]
	default:
		si, ok := s.lookup(c.VAddr.As4(), c.Protocol, c.VPort)
		if !ok {
			return nil, nil, SyncUnknownService
		}
		svc = &s.Services[si]
	}
	d := syncDest(svc, c)
	if d == nil {
		return svc, nil, SyncUnknownDest
	}
	return svc, d, SyncOK
}

// syncDest finds a synced connection's real server as ip_vs_find_dest
// does: by address (of the entry's family: the kernel's backup, too, looks
// the dest up in the service's family) and the entry's dport, which for a
// firewall-mark service not forwarded by masquerading is 0; failing that,
// by address and (that port XOR dport), which finds a port-0 dest for a
// connection its master sent with the packet's port, and a dest with the
// entry's port for such a firewall-mark connection.
func syncDest(svc *Service, c *ipvssync.Conn) *Dest {
	port := c.DPort
	if c.FWMark != 0 && c.Flags&ipvssync.FlagFwdMask != ipvssync.FlagMasq {
		port = 0
	}
	six := c.DAddr.Is6()
	var da4 [4]byte
	var da6 [16]byte
	if six {
		da6 = c.DAddr.As16()
	} else {
		da4 = c.DAddr.As4()
	}
	find := func(port uint16) *Dest {
		for i := range svc.Dests {
			d := &svc.Dests[i]
			if d.Is6 != six || d.Port != port {
				continue
			}
			if six && d.Addr6 == da6 || !six && d.Addr == da4 {
				return d
			}
		}
		return nil
	}
	if d := find(port); d != nil {
		return d
	}
	return find(port ^ c.DPort)
}

// SyncedReply is a synced VS/NAT connection whose replies no client
// packet has shown the way back for yet (conntrack.Conn.ReplyPending):
// its reply key, what FileSyncedReply files, and the client address the
// caller routes to.
type SyncedReply struct {
	Key    conntrack.Key // the connection's
	Reply  conntrack.Key // its replies': client, real server address and port
	Client netip.Addr
}

// PendingReply reports whether c, an entry InstallSynced installed in ct,
// is a VS/NAT connection of s whose replies are not yet filed by a client
// packet, and returns its keys.
func PendingReply(s *Snapshot, ct *conntrack.Table, c *ipvssync.Conn) (SyncedReply, bool) {
	if c.Flags&ipvssync.FlagTemplate != 0 || !ct.HasReverse() {
		return SyncedReply{}, false
	}
	_, d, drop := syncTarget(s, c)
	if drop != SyncOK || d.Fwd != vs.Masq {
		return SyncedReply{}, false
	}
	r := SyncedReply{
		Key:    conntrack.Key{CAddr: c.CAddr.As16(), VAddr: c.VAddr.As16(), CPort: c.CPort, VPort: c.VPort, Proto: c.Protocol},
		Client: c.CAddr,
	}
	r.Reply = conntrack.Key{CAddr: r.Key.CAddr, CPort: c.CPort, Proto: c.Protocol,
		VAddr: d.keyAddr(), VPort: natPort(d, c.VPort)}
	conn, ok := ct.Lookup(&r.Key)
	if !ok || !conn.ReplyPending() {
		return SyncedReply{}, false
	}
	return r, true
}

// FileSyncedReply files r's reply key with the hop its replies take until
// a client packet shows another: out of interface slot to mac, where a
// route lookup for the client leads (ip_vs_nat_xmit's replies leave by
// the director's routing table). The connection keeps its mark, so its
// first client packet files the hop that packet came by, as for a
// connection made here. It reports false when the connection has gone,
// a client packet filed it meanwhile, or the reverse index has no room.
func FileSyncedReply(ct *conntrack.Table, r *SyncedReply, slot int, mac [6]byte) bool {
	conn, ok := ct.Lookup(&r.Key)
	if !ok || !conn.ReplyPending() {
		return false
	}
	var m [8]byte // the word hopOf packs from a client frame
	copy(m[2:], mac[:])
	return ct.InsertReply(&r.Reply, &conn, uint64(slot)<<48|binary.BigEndian.Uint64(m[:]))
}

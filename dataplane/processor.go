package dataplane

import (
	"sync/atomic"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// Verdict is what to do with a processed frame.
type Verdict uint8

const (
	// VerdictDrop: the frame is dropped; the reason is already counted.
	VerdictDrop Verdict = iota
	// VerdictForward: the frame (possibly moved, see Out) goes out on Out.Slot.
	VerdictForward
	// VerdictReply: the frame is dropped and Processor.Reply() holds an ICMP
	// error to send back out of the ingress interface.
	VerdictReply
	// VerdictLocal: the frame belongs to a connection of a local real
	// server; Out.Off and Out.Len locate its IP packet, for the
	// director's own network stack (see local.go).
	VerdictLocal
	// VerdictHeld: the frame is released, but the processor kept a copy
	// (a later fragment waiting for its first; see Processor.Released).
	VerdictHeld
)

// Batch is how many frames a worker takes per turn, and how many
// LookupBatch looks up at once.
const Batch = 64

// Out locates a forwarded frame inside its buffer.
type Out struct {
	Off, Len int
	Slot     int
	// Second: the frame is the first of two inner fragments, and
	// Processor.Second() holds the other, a whole frame, for the same slot.
	Second bool
}

// Processor runs the per-frame path for one worker (or one offline replay).
// It is not safe for concurrent use: each worker owns one. Its scratch state
// lives in the struct so that Process allocates nothing.
type Processor struct {
	ct      *conntrack.Table
	c       *Counters
	ingress int            // slot of the interface frames arrive on, for ICMP replies
	pkt     header.Packet  // Process parses into this
	pk      *header.Packet // the frame being processed: &pkt, or a Parsed's packet
	key     conntrack.Key
	tkey    conntrack.Key
	rkey    conntrack.Key // a VS/NAT reply key (nat.go)
	frame   []byte        // the frame being processed
	flow    sched.Flow
	reply   [1600]byte
	replyN  int
	second  [maxFrame]byte // the second fragment of a split VS/TUN packet
	secondN int
	icmp    *ICMPLimiter  // nil: no limit
	syn     *SYNLimiter   // nil: no SYN rate limits (defense.go)
	blocker Blocker       // hears of sources far over their SYN rate; nil: none
	sp      *SYNProxy     // nil: no SYN proxy (synproxy.go)
	hpkt    header.Packet // a held segment the SYN proxy sends on
	kernel  KernelSender  // sends ICMP answers through the director's stack (icmptun.go); nil: none
	tunErr  header.ICMPTunnelError

	// ICMP errors forwarded to real servers (icmperr.go) and IPv4
	// fragments (frag.go).
	icmpFwd *ICMPLimiter // nil: no limit
	icmpErr header.ICMPError
	frag    *fragTable
	dest    *Dest // the real server forward last passed to emit
	v6      proc6 // IPv6 state (forward6.go)

	// Scratch for LookupBatch: the keys of a batch's parsed frames, where
	// each came from, and the table's answers.
	bkeys  [Batch]conntrack.Key
	bidx   [Batch]uint8
	bconns [Batch]conntrack.Conn
	bfound [Batch]bool
	bscr   conntrack.BatchScratch // the table's working memory, kept to spare it clearing some each batch
	ins    insertLog              // keys inserted lately, to trust batched misses (batchmiss.go)
	pkey   conntrack.Key          // PrefetchInsert's scratch

	// sh holds this processor's traffic counters as plain integers; the
	// atomic Counters others read are brought up to date by Flush, once per
	// batch in a worker, so a frame costs no atomic read-modify-write.
	sh       shadow
	deferred bool

	// old is a connection this frame expired (a reused port, a gone
	// server): released from the table but still counted until
	// retireExpired, after the frame's new connection is scheduled.
	old     conntrack.Conn
	pending bool

	// sync is where connections to sync go while a sync master runs (nil
	// otherwise: one atomic load per frame); rec is the record being
	// filled, and sconn the connection schedule made or found.
	sync  atomic.Pointer[SyncSink]
	rec   ipvssync.Record
	sconn conntrack.Conn

	// svcSnap, svcKey and svcIdx remember the last IPv4 service lookup
	// that found a service: its snapshot (immutable, and kept alive by
	// this pointer, so a new one never has the same address), its packed
	// key and the answer. Consecutive frames to one service skip the
	// table (lookupService).
	svcSnap *Snapshot
	svcKey  uint64
	svcIdx  int32

	// Last describes the scheduling decision of the last Process call, for
	// the simulator and tests: they observe the real path instead of
	// re-implementing it.
	Last Decision

	// opsTmpl is the template that decided the last one-packet datagram
	// (0: none), for syncOnePacket. It is last so that the fields the hit
	// path reads keep their places.
	opsTmpl conntrack.TemplateRef
}

// Decision is what Process decided for a frame's connection.
type Decision struct {
	New      bool   // a new connection was scheduled (or a SYN reopened one)
	Dest     uint32 // the chosen real server's ID, when Found
	Found    bool   // a real server was chosen
	Template bool   // the choice came from a persistence template
	Drop     Drop   // why not, when New and !Found
	// OnePacket: the datagram was scheduled on its own (one-packet
	// scheduling) and no connection was kept; the next one is scheduled
	// afresh.
	OnePacket bool
}

// NewProcessor returns a processor that counts into c and tracks
// connections in ct. ingress is the slot of the receiving interface.
func NewProcessor(ct *conntrack.Table, c *Counters, ingress int) *Processor {
	p := &Processor{ct: ct, c: c, ingress: ingress, frag: newFragTable()}
	p.sh.dirtySvc = make([]uint32, 0, MaxServices)
	p.sh.dirtyDest = make([]uint32, 0, MaxDests)
	return p
}

// maxFrame is the largest AF_XDP frame: one page.
const maxFrame = 4096

// Second returns the second fragment built by the last Process call whose
// Out had Second set: a whole frame for the same slot as the first.
func (p *Processor) Second() []byte { return p.second[:p.secondN] }

// SetICMPLimiter makes the processor send ICMP errors only as l allows;
// nil (the default) sends every one.
func (p *Processor) SetICMPLimiter(l *ICMPLimiter) { p.icmp = l }

// HasReleased reports whether Released may have held fragments to give
// back; when it is false Released would return none, so a worker skips
// the call for the frames (nearly all) that released nothing.
func (p *Processor) HasReleased() bool { return p.frag.relN != 0 }

// Reply returns the ICMP frame built by the last Process call that returned
// VerdictReply, ready to send on the ingress interface.
func (p *Processor) Reply() []byte { return p.reply[:p.replyN] }

// Parsed is one frame as the worker's pre-pass leaves it: its headers
// and, once LookupBatch has run, its connection. ProcessParsed takes it
// instead of parsing and looking up again.
type Parsed struct {
	Pkt    header.Packet
	Reason header.Reason
	conn   conntrack.Conn
	hit    bool   // the batched lookup found conn
	looked bool   // LookupBatch answered for this frame
	seq    uint64 // the processor's insert count when LookupBatch answered
}

// Parse parses frame into f, ready for LookupBatch and ProcessParsed.
func (p *Processor) Parse(frame []byte, f *Parsed) {
	f.Reason = header.Parse(frame, &f.Pkt)
	f.looked = false
}

// LookupBatch looks up the connections of every frame in fs that parsed,
// with one conntrack.Table.LookupBatch per Batch frames, so that the
// table's cache misses for the whole batch overlap instead of being paid
// one frame at a time inside ProcessParsed. A VS/NAT reply in s (see
// natReply) is left out: its forward key would only miss, and
// ProcessParsed finds its connection through the reply index.
func (p *Processor) LookupBatch(s *Snapshot, fs []Parsed) {
	nat := s.HasNAT()
	for len(fs) > 0 {
		chunk := fs[:min(len(fs), Batch)]
		fs = fs[len(chunk):]
		m := 0
		for i := range chunk {
			if chunk[i].Reason != header.OK || (nat && s.natReply(&chunk[i].Pkt)) {
				continue
			}
			keyOf(&chunk[i].Pkt, &p.bkeys[m])
			p.bidx[m] = uint8(i)
			m++
		}
		p.ct.LookupBatchScratch(&p.bscr, p.bkeys[:m], p.bconns[:m], p.bfound[:m])
		for j := range m {
			f := &chunk[p.bidx[j]]
			f.conn, f.hit, f.looked, f.seq = p.bconns[j], p.bfound[j], true, p.ins.seq
		}
	}
}

// keyOf is the connection-table key of a parsed packet. Each field is
// its own assignment: a tuple assignment of the two addresses goes
// through a stack temporary, whose reload stalls on the stores before it.
func keyOf(pk *header.Packet, k *conntrack.Key) {
	k.CAddr = pk.SrcMapped
	k.VAddr = pk.DstMapped
	k.CPort = pk.SrcPort
	k.VPort = pk.DstPort
	k.Proto = pk.Proto
}

// Process runs one frame, buf[off:off+n], through parse, connection table,
// scheduler and encapsulation. buf is the frame's whole buffer (its UMEM
// chunk); the room before off is headroom that VS/TUN prepends into.
func (p *Processor) Process(s *Snapshot, buf []byte, off, n int) (Verdict, Out) {
	r := header.Parse(buf[off:off+n], &p.pkt)
	p.pk = &p.pkt
	return p.process(s, buf, off, n, r, nil)
}

// ProcessParsed is Process for a frame that Parse (and possibly
// LookupBatch) already handled: f must describe buf[off:off+n]. The
// verdict, the counters and Last are what Process would give.
func (p *Processor) ProcessParsed(s *Snapshot, buf []byte, off, n int, f *Parsed) (Verdict, Out) {
	p.pk = &f.Pkt // no copy: f outlives the call
	return p.process(s, buf, off, n, f.Reason, f)
}

// process is the path after parsing, shared by Process and ProcessParsed;
// p.pk points at the parsed headers when r is OK. f, when not nil, may carry
// the frame's connection from LookupBatch.
func (p *Processor) process(s *Snapshot, buf []byte, off, n int, r header.Reason, f *Parsed) (Verdict, Out) {
	c := p.c
	p.sh.rx++
	p.sh.rxBytes += uint64(n)
	if !p.deferred {
		defer p.Flush()
	}
	if p.frag.relN != 0 {
		p.dropUnreleased()
	}
	if r != header.OK {
		switch {
		case r == header.Fragment:
			return p.fragment(s, buf, off, n)
		case r == header.UnknownProtocol && p.pk.Proto == header.ProtocolICMP:
			// An ICMP error about a VS/NAT connection is translated
			// (nat_icmp.go); any other goes the DR/TUN way.
			if !p.pk.IPv6 && s.HasNAT() {
				if v, o, ok := p.natICMP(s, buf, off, n); ok {
					return v, o
				}
			}
			if header.QuotesIPIP(buf[off:off+n], p.pk) {
				return p.icmpTunnel(s, buf, off, n) // icmptun.go
			}
			return p.icmpError(s, buf, off, n)
		}
		c.Parse[r].Add(1)
		return VerdictDrop, Out{}
	}
	if p.pk.Proto == header.ProtocolICMPv6 && p.pk.IPv6 {
		// An ICMPv6 error about a VS/NAT connection is translated
		// (nat_icmp6.go); any other goes the DR/TUN way (icmperr6.go).
		if s.HasNAT() {
			if v, o, ok := p.natICMP6(s, buf, off, n); ok {
				return v, o
			}
		}
		return p.icmpError6(s, buf, off, n)
	}
	return p.forward(s, buf, off, n, f)
}

// forward is the path of a packet with ports: its service, its connection
// (looked up, or scheduled), and emit.
func (p *Processor) forward(s *Snapshot, buf []byte, off, n int, f *Parsed) (Verdict, Out) {
	c, pk := p.c, p.pk
	p.frame = buf[off : off+n]
	var si int32
	var ok bool
	if pk.IPv6 {
		si, ok = s.lookup6(&pk.DstMapped, pk.Proto, pk.DstPort)
	} else if k := packSvcKey(pk.Dst, pk.Proto, pk.DstPort); k == p.svcKey && s == p.svcSnap {
		si, ok = p.svcIdx, true // the last lookup's answer, without a call
	} else {
		si, ok = p.lookupService(s, k)
	}
	if !ok {
		if pk.IPv6 {
			if v, o, done := p.nat6(s, buf, off, n); done { // nat6.go
				return v, o
			}
		} else if s.natSource(pk.Src, pk.Proto, pk.SrcPort) {
			return p.processReply(s, buf, off, n)
		}
		c.Drops[DropNoService].Add(1)
		return VerdictDrop, Out{}
	}
	svc := &s.Services[si]

	k := &p.key
	keyOf(pk, k)
	ev := conntrack.EvNone
	if pk.Proto == header.ProtocolTCP {
		ev = conntrack.EventOf(pk.TCPFlags)
	}

	p.Last = Decision{}
	var d *Dest
	// A batched answer is used only when Touch confirms it is still the
	// live entry (Hit). Otherwise an earlier frame of the same batch may
	// have changed the flow since LookupBatch (inserted it, reopened it),
	// so the frame is looked up again, exactly as Process would.
	// The connection is kept in p.sconn, where the sync and SYN proxy
	// paths read it, rather than copied there from a local.
	conn := &p.sconn
	hit := f.batched(conn)
	pre := hit
	if !pre && !p.batchedMiss(f, k) {
		*conn, hit = p.ct.Lookup(k)
	}
	for hit {
		dd, live := s.dest(si, conn.Dest)
		if !live && pre {
			pre = false
			*conn, hit = p.ct.Lookup(k)
			continue
		}
		// ip_vs_in_hook's port-reuse block runs before its server check:
		// a SYN that may start a new connection is scheduled afresh even
		// when the old one's server is gone.
		if ev == conntrack.EvSyn && p.reschedule(conn, dd, live) {
			hit = false
			break
		}
		if !live {
			// The server is gone. IPVS drops without refreshing the entry
			// so it expires, and never moves it to another server; with
			// expire_nodest_conn it expires the entry now and treats the
			// packet as having none.
			if !p.ct.Sysctls().ExpireNodestConn {
				c.Drops[DropDestUnavailable].Add(1)
				return VerdictDrop, Out{}
			}
			p.expireNow(conn)
			if !p.mayCreate(pk.Proto, ev) {
				p.retireExpired()
				c.Drops[DropDestUnavailable].Add(1)
				return VerdictDrop, Out{}
			}
			hit = false
			break
		}
		was := conn.State
		switch p.ct.Touch(conn, k, ev) {
		case conntrack.Hit:
			d = dd
			if conn.State != was { // nearly every frame changes no state
				p.noteHandshake(was, conn.State) // defense.go
			}
			if conn.ReplyPending() {
				p.fileSynced(conn, d) // sync.go
			}
		case conntrack.Gone:
			if pre {
				pre = false
				*conn, hit = p.ct.Lookup(k)
				continue
			}
			hit = false // schedule as a new connection
		default: // Reopen: schedule as a new connection, then retire the old
			p.old, p.pending = *conn, true
			hit = false
		}
		break
	}
	if !hit {
		if p.sp != nil && pk.Proto == header.ProtocolTCP && p.sp.Proxied(svc.ID) {
			return p.synProxyNew(s, si, svc, buf, off, n) // synproxy.go
		}
		if !p.mayCreate(pk.Proto, ev) {
			c.Drops[DropNoConnection].Add(1)
			return VerdictDrop, Out{}
		}
		if !p.admit(svc) { // SYN rate limits and drop_packet: defense.go
			p.retireExpired()
			return VerdictDrop, Out{}
		}
		var drop Drop
		d, drop = p.schedule(s, si, svc, ev)
		// The old connection leaves its server's counters only now, after
		// the new decision, as its expired timer runs after the packet in
		// IPVS (ip_vs_conn_expire_now, then ip_vs_unbind_dest).
		p.retireExpired()
		p.Last.New = true
		if d == nil {
			p.Last.Drop = drop
			p.dropNew(drop)
			return VerdictDrop, Out{}
		}
		p.Last.Found, p.Last.Dest = true, d.ID
	}
	p.dest = d
	if hit && p.sp != nil && d.Fwd == vs.Masq && pk.Proto == header.ProtocolTCP && p.sp.active.Load() {
		if v, o, done := p.synProxyClient(s, d, buf, off); done { // synproxy.go
			return v, o
		}
	}
	if sk := p.sync.Load(); sk != nil {
		if p.Last.OnePacket {
			p.syncOnePacket(sk, s, svc) // sync.go
		} else if !p.syncCounted(sk) {
			p.syncConn(sk, s, svc, d, &p.sconn)
		}
	}
	return p.emit(s, svc, d, buf, off, n)
}

// lookupService is s.lookup for the packed key k (packSvcKey), kept as
// the answer for the next frames when it found a service; forward checks
// that answer first.
func (p *Processor) lookupService(s *Snapshot, k uint64) (int32, bool) {
	si, ok := s.svcIndex.lookupPacked(k)
	if ok {
		p.svcSnap, p.svcKey, p.svcIdx = s, k, si
	}
	return si, ok
}

// mayCreate is tcp_conn_schedule's gate for a packet without a usable
// entry: a TCP packet creates a connection when it is a SYN, or with
// sloppy_tcp when it is anything but a RST; every other protocol's packet
// always does (udp_conn_schedule has no gate).
func (p *Processor) mayCreate(proto uint8, ev conntrack.Event) bool {
	if proto != header.ProtocolTCP || ev == conntrack.EvSyn {
		return true
	}
	return ev != conntrack.EvRst && p.ct.Sysctls().SloppyTCP
}

// reschedule is the port-reuse block of ip_vs_in_hook for a SYN on an
// existing connection: with conn_reuse_mode not 0, the connection is
// expired now and the SYN scheduled afresh when expire_nodest_conn is set
// and its server has weight 0, or when is_new_conn_expected (TIME_WAIT or
// CLOSE, FIN_WAIT with bit 2, never a controlled connection). The old
// connection's accounting waits for retireExpired.
func (p *Processor) reschedule(conn *conntrack.Conn, d *Dest, live bool) bool {
	sys := p.ct.Sysctls()
	if sys.ConnReuseMode == 0 {
		return false
	}
	if !(sys.ExpireNodestConn && live && d.Weight == 0) && !p.ct.NewConnExpected(conn) {
		return false
	}
	p.expireNow(conn)
	return true
}

// expireNow releases conn's entry (ip_vs_conn_expire_now) and keeps it
// for retireExpired, unless another queue released it first.
func (p *Processor) expireNow(conn *conntrack.Conn) {
	if p.ct.ExpireNow(conn) {
		p.old, p.pending = *conn, true
	}
}

// retireExpired does the accounting of the connection this packet
// expired, if any.
func (p *Processor) retireExpired() {
	if p.pending {
		p.pending = false
		p.ct.Retire(&p.old)
	}
}

// batched copies the connection LookupBatch found for f, if it found one,
// into *c, and reports whether it did; *c is zeroed otherwise. It copies
// from f straight into *c: a Conn returned by value is built in a
// temporary whose 16-byte reload straddles the stores that built it, a
// store-forwarding stall on every frame.
func (f *Parsed) batched(c *conntrack.Conn) bool {
	if f == nil || !f.looked || !f.hit {
		*c = conntrack.Conn{}
		return false
	}
	*c = f.conn
	return true
}

// schedule picks a real server for a new connection, through the
// persistence template when the service is persistent, and inserts the
// connection. It follows ip_vs_schedule / ip_vs_sched_persist.
//
// A UDP datagram of a one-packet service (ipvsadm -o) is scheduled the
// same way, persistence template included, but no connection is
// inserted (see onePacket).
func (p *Processor) schedule(s *Snapshot, si int32, svc *Service, ev conntrack.Event) (*Dest, Drop) {
	pk := p.pk
	f := &p.flow
	f.Proto, f.CAddr, f.CPort, f.VAddr, f.VPort = pk.Proto, pk.SrcMapped, pk.SrcPort, pk.DstMapped, pk.DstPort

	var tmpl conntrack.TemplateRef
	var d *Dest
	if svc.Persist > 0 {
		t := &p.tkey
		*t = conntrack.Key{Proto: pk.Proto}
		t.CAddr = pk.SrcMapped
		if pk.IPv6 {
			for i := range t.CAddr {
				t.CAddr[i] &= svc.Mask6[i]
			}
		} else {
			for i := 0; i < 4; i++ {
				t.CAddr[12+i] &= svc.Mask[i]
			}
		}
		switch {
		case svc.Key.FWMark != 0:
			// <IPPROTO_IP, caddr&mask, 0, fwmark, 0>: the virtual
			// address is ip_vs_sched_persist's union nf_inet_addr
			// { .ip = htonl(fwmark) } read in the service's family,
			// 0.0.0.7 (stored mapped) for mark 7 of IPv4 and 0:7:: of
			// IPv6, as -L -c lists it and connection sync carries it.
			t.Proto = 0
			m := svc.Key.FWMark
			if svc.Key.IPv6 {
				t.VAddr = [16]byte{0: byte(m >> 24), 1: byte(m >> 16), 2: byte(m >> 8), 3: byte(m)}
			} else {
				t.VAddr = [16]byte{10: 0xff, 11: 0xff, 12: byte(m >> 24), 13: byte(m >> 16), 14: byte(m >> 8), 15: byte(m)}
			}
		case svc.PortZero:
			t.VAddr = pk.DstMapped // port 0: one template for every port of the VIP
		default:
			t.VAddr, t.VPort = pk.DstMapped, pk.DstPort
		}
		if id, ref, ok := p.ct.LookupTemplate(t); ok {
			// ip_vs_check_template: a template is dropped only when its
			// server is gone, or has weight 0 and
			// expire_quiescent_template is set. By default a quiesced
			// server keeps its persistent clients.
			if dd, live := s.dest(si, id); live && (dd.Weight > 0 || !p.ct.Sysctls().ExpireQuiescentTemplate) {
				d, tmpl = dd, ref
				p.Last.Template = true
			} else {
				p.ct.DeleteTemplate(ref)
			}
		}
		if d == nil {
			i := svc.Sched.Schedule(f)
			if i < 0 {
				return nil, DropNoDest
			}
			d = &svc.Dests[i]
			ref, res := p.ct.InsertTemplate(t, d.ID, svc.Persist)
			switch res {
			case conntrack.Full, conntrack.Invalid:
				return nil, DropTemplateFull
			case conntrack.Exists:
				// Another queue made the template first: follow its
				// choice so the client sticks to one server.
				if id, ok := p.ct.Template(ref); ok && id != d.ID {
					if dd, live := s.dest(si, id); live {
						d = dd
					}
				}
			}
			tmpl = ref
		}
		// Insert re-arms the template's timer (ip_vs_sched_persist).
	} else {
		i := svc.Sched.Schedule(f)
		if i < 0 {
			return nil, DropNoDest
		}
		d = &svc.Dests[i]
	}
	if svc.OnePacket && pk.Proto == header.ProtocolUDP {
		p.onePacket(svc, d, tmpl)
		return d, 0
	}
	p.ins.add(fingerprint(&p.key))
	conn, res := p.ct.Insert(&p.key, d.ID, uint8(d.Fwd), tmpl, ev)
	p.sconn = conn
	switch res {
	case conntrack.Full:
		return nil, DropTableFull
	case conntrack.Exists:
		// Another queue won the race for this flow: follow its choice.
		dd, live := s.dest(si, conn.Dest)
		if !live {
			return nil, DropDestUnavailable
		}
		d = dd
	default:
		if d.Fwd == vs.Masq && !p.fileReply(&conn, d) {
			// No room to find its replies by: the connection cannot work.
			if p.ct.ExpireNow(&conn) {
				p.ct.Retire(&conn)
			}
			return nil, DropTableFull
		}
		p.sh.svcT(svc.ID).Conns++
		p.sh.destT(d.ID).Conns++
	}
	return d, 0
}

// onePacket ends the scheduling of a datagram of a one-packet service,
// whose real server d is chosen (through template tmpl, if not 0). IPVS
// sets IP_VS_CONN_F_ONE_PACKET only for UDP (ip_vs_schedule and
// ip_vs_sched_persist), so a firewall-mark service's TCP packets make
// connections as usual. Such a connection is never hashed
// (ip_vs_conn_hash), so no later packet finds it, and ip_vs_conn_put
// expires it as soon as its packet is sent: it binds to its server as
// inactive and unbinds within the same packet, so the ActiveConn and
// InActConn the schedulers read never see it. What stays is
// ip_vs_conn_stats: every such datagram counts as one connection of its
// service and real server. Here no connection is inserted at all; the
// template, when there is one, has its timer re-armed as the kernel's
// connection would have done (conntrack.Table.ArmTemplate), and the
// datagram's connection count is kept. p.sconn is left empty and
// p.Last.OnePacket set, which the sync path and the local-node delivery
// read.
func (p *Processor) onePacket(svc *Service, d *Dest, tmpl conntrack.TemplateRef) {
	if tmpl != 0 {
		p.ct.ArmTemplate(tmpl)
	}
	p.sconn = conntrack.Conn{}
	p.opsTmpl = tmpl
	p.Last.OnePacket = true
	p.sh.svcT(svc.ID).Conns++
	p.sh.destT(d.ID).Conns++
}

// fragNeeded answers frame, too big to forward with DF set, with ICMP
// fragmentation-needed from the VIP advertising mtu minus a tunnel header,
// unless the ICMP rate limit holds it back.
func (p *Processor) fragNeeded(s *Snapshot, frame []byte, mtu int) (Verdict, Out) {
	return p.fragNeededFrom(s, frame, mtu, p.pk.Dst)
}

// fragNeededFrom is fragNeeded with the message's source address, the
// router that could not forward: out of the ingress interface, back to
// the MAC the frame came from, under the director's ICMP rate limits.
func (p *Processor) fragNeededFrom(s *Snapshot, frame []byte, mtu int, router [4]byte) (Verdict, Out) {
	c := p.c
	if !p.icmp.Allow(p.pk.Src) {
		c.Drops[DropICMPLimited].Add(1)
		return VerdictDrop, Out{}
	}
	c.Drops[DropFragNeeded].Add(1)
	in := &s.Ifaces[p.ingress]
	var srcMAC [6]byte
	copy(srcMAC[:], frame[6:12])
	p.replyN = encap.FragNeeded(p.reply[:], frame, p.pk, mtu, in.MTU, in.MAC, srcMAC, router)
	if p.replyN == 0 {
		return VerdictDrop, Out{}
	}
	c.ICMPSent.Add(1)
	return VerdictReply, Out{}
}

// countIn counts a packet of ipLen bytes at the IP layer into service svc
// and real server d (ip_vs_in_stats).
func (p *Processor) countIn(svc *Service, d *Dest, ipLen uint64) {
	st, dt := p.sh.svcT(svc.ID), p.sh.destT(d.ID)
	st.InPkts++
	st.InBytes += ipLen
	dt.InPkts++
	dt.InBytes += ipLen
}

// countOut counts a packet of ipLen bytes at the IP layer out of service
// svc and real server d (ip_vs_out_stats).
func (p *Processor) countOut(svc *Service, d *Dest, ipLen uint64) {
	st, dt := p.sh.svcT(svc.ID), p.sh.destT(d.ID)
	st.OutPkts++
	st.OutBytes += ipLen
	dt.OutPkts++
	dt.OutBytes += ipLen
}

// emit encapsulates the frame for d and counts it.
func (p *Processor) emit(s *Snapshot, svc *Service, d *Dest, buf []byte, off, n int) (Verdict, Out) {
	c := p.c
	pk := p.pk
	// ip_vs_in_stats: a packet is counted in once its connection is known
	// and its server is available, before the transmitter can still fail,
	// and its bytes are skb->len at the IP layer (the total length: no
	// Ethernet header, no padding). IPVS counts out (ip_vs_out_stats) only
	// replies that come back through the director: VS/NAT's (nat.go); with
	// DR and TUN the real servers answer the clients directly.
	if sh := &p.sh; sh.svcDirty[svc.ID] && sh.destDirty[d.ID] {
		// countIn without the call, for the frames (nearly all) whose
		// service and server are already marked for this batch's Flush.
		st, dt, ipLen := &sh.svc[svc.ID], &sh.dest[d.ID], uint64(pk.TotalLen)
		st.InPkts++
		st.InBytes += ipLen
		dt.InPkts++
		dt.InBytes += ipLen
	} else {
		p.countIn(svc, d, uint64(pk.TotalLen))
	}
	if d.Local {
		return p.local(off)
	}
	if d.Slot < 0 || d.Slot >= len(s.Ifaces) {
		c.Drops[DropNoEgress].Add(1)
		return VerdictDrop, Out{}
	}
	// decrement_ttl runs after the route lookup, before the neighbour
	// and the MTU matter (ttl.go). An IPv4 TTL above 1, nearly every
	// frame, is decremented here in a few inlined loads and stores;
	// forwardTTL does the rest.
	if frame, l3 := buf[off:off+n], pk.L3; !pk.IPv6 && l3 >= 0 && l3 <= len(frame)-header.IPv4MinLen && header.IPv4(frame[l3:]).TTL() > 1 {
		decTTL4(header.IPv4(frame[l3:]))
	} else if v, ok := p.forwardTTL(s, frame); !ok {
		return v, Out{}
	}
	if !d.HaveMAC {
		c.Drops[DropNeighborUnresolved].Add(1)
		return VerdictDrop, Out{}
	}
	eg := &s.Ifaces[d.Slot]
	out := Out{Off: off, Len: n, Slot: d.Slot}
	if pk.IPv6 || d.Is6 {
		return p.emit6(s, d, eg, buf, off, n, out)
	}
	// A packet too big for the egress MTU is, with DF, answered with ICMP
	// fragmentation-needed; without DF it is split in two fragments (see
	// encap.FragmentDR and FragmentIPIP), and what two fragments cannot
	// carry is dropped and counted. A split packet was counted above as one
	// packet in, as IPVS counts a packet before the kernel fragments it.
	switch d.Fwd {
	case vs.Route:
		if int(pk.TotalLen) > eg.MTU {
			if pk.DF {
				// FragNeeded advertises its mtu minus a tunnel header;
				// DR adds none.
				return p.fragNeeded(s, buf[off:off+n], eg.MTU+encap.Overhead)
			}
			n1, n2, ok := encap.FragmentDR(buf, off, n, pk, eg.MTU, eg.MAC, d.MAC, p.second[:])
			if !ok {
				c.Drops[DropTooBig].Add(1)
				return VerdictDrop, Out{}
			}
			p.secondN = n2
			c.Fragmented.Add(1)
			out.Len, out.Second = n1, true
			break
		}
		encap.DRFrom(buf[off:off+n], &d.MAC, &eg.MAC)
	case vs.Tunnel:
		if int(pk.TotalLen)+encap.Overhead > eg.MTU {
			if pk.DF {
				return p.fragNeeded(s, buf[off:off+n], eg.MTU)
			}
			no, nn, n2, ok := encap.FragmentIPIP(buf, off, n, pk, eg.MTU, eg.Addr, d.Addr, eg.MAC, d.MAC, p.second[:])
			if !ok {
				c.Drops[DropTooBig].Add(1)
				return VerdictDrop, Out{}
			}
			p.secondN = n2
			c.Fragmented.Add(1)
			out.Off, out.Len, out.Second = no, nn, true
			break
		}
		no, nn, ok := encap.IPIP(buf, off, n, pk, eg.Addr, d.Addr, eg.MAC, d.MAC)
		if !ok {
			c.Drops[DropNoHeadroom].Add(1)
			return VerdictDrop, Out{}
		}
		out.Off, out.Len = no, nn
	case vs.Masq:
		return p.dnat(s, d, eg, buf, off, n, out)
	default:
		c.Drops[DropUnsupportedFwd].Add(1)
		return VerdictDrop, Out{}
	}
	return VerdictForward, out
}

package dataplane

import (
	"crypto/rand"
	"encoding/binary"
	"maps"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// The SYN proxy, in DPVS's manner, for VS/NAT services.
//
// A proxied service's real servers never see a SYN the director has not
// proven to come from a real client:
//
//  1. A client's SYN is answered by the director itself with a SYN-ACK
//     whose sequence number is a SYN cookie; no connection entry is made,
//     so a flood of SYNs from spoofed sources costs one reply each and no
//     memory. The SYN rate limits (defense.go) apply to these SYNs.
//  2. The client's ACK must acknowledge a valid cookie: a keyed hash
//     (SipHash-2-4 under a random key) of the four-tuple, the client's
//     initial sequence number, a counter that ticks every 64 seconds and
//     the index of the client's MSS in a table of four (536, 1300, 1440,
//     1460). The cookie carries the counter's low 5 bits, the MSS index
//     and 25 bits of the hash, as Linux's syncookies carry a counter and
//     an MSS index beside a hash; a cookie is valid during its own
//     counter period and the two after. An ACK that acknowledges no valid
//     cookie is dropped (synproxy_bad_cookie, synproxy_cookie_expired).
//  3. A valid ACK makes the connection: the service schedules a real
//     server, the entry is made in SYN_RECV, and the ACK's frame is
//     rewritten into a SYN to that server whose sequence number is the
//     client's own initial sequence number, so the client's sequence
//     numbers never need changing. An ACK carrying data is kept (below).
//  4. The server's SYN-ACK is not forwarded: the director answers it with
//     the client's ACK (the client's window, the server's sequence number
//     plus one) and forwards the client's first data segment if it kept
//     one. From then on the server's sequence numbers differ from the
//     cookie by a fixed delta: every packet from the server has delta
//     added to its sequence number, every packet from the client has it
//     taken from its acknowledgement number, each with an incremental
//     checksum update.
//
// While the server's SYN-ACK is awaited, the client's first segment that
// carries data is copied into one of 256 hold slots shared by the
// workers (chosen by connection) and sent after the director's ACK. Any
// other client packet of the connection (a retransmission: the client
// sees no answer) is turned into the SYN again, since the director keeps
// no timer to retransmit it; a client RST or SYN, and a server packet
// other than its SYN-ACK or a RST, are dropped (synproxy_pending).
//
// TCP options: the director's SYN-ACK offers only an MSS (the ingress
// interface's MTU less 40 bytes), and its SYN to the server carries only
// the client's MSS as the cookie's table rounds it down. Window scaling,
// timestamps and SACK are therefore not negotiated on a proxied
// connection, by either end, so no option needs translating (no SACK
// block, no timestamp) and windows are the plain 16-bit ones.
//
// A proxied service is a TCP service (or a firewall-mark one, for its TCP
// packets) of either family whose real servers are all VS/NAT ones, with
// the proxy on for it (its own syn_proxy, or defense.syn_proxy). The
// IPv6 paths are in synproxy6.go.

const (
	synCookiePeriod = 64 * time.Second
	synCookieMaxAge = 2 // counter periods after its own a cookie stays valid
	synHoldSlots    = 256
	synHoldFrame    = 2048
	synHashBits     = 25
)

// synMSSTable is the MSS values a cookie can carry, by index.
var synMSSTable = [4]uint16{536, 1300, 1440, 1460}

// SYNProxy is the proxy's state shared by every worker: the cookie key,
// which services are proxied, and the hold slots.
type SYNProxy struct {
	k0, k1 uint64

	mu       sync.Mutex // serialises Set and Apply
	global   bool
	services map[vs.Key]bool
	snap     *Snapshot

	on *atomic.Pointer[[MaxServices]bool] // proxied services by ID; nil: none
	// active is set once any service was proxied and stays set, so that
	// the connections made then keep their translation after the proxy
	// is turned off.
	active atomic.Bool

	slots [synHoldSlots]synHold
}

// synHold is one hold slot: a client's first data segment, copied while
// its connection waits for the server's SYN-ACK.
type synHold struct {
	mu    sync.Mutex
	id    uint64 // the connection (conntrack.Conn.ID); 0: empty
	n     int
	frame [synHoldFrame]byte
}

// NewSYNProxy returns a proxy with a random cookie key, proxying nothing
// until Set and Apply say which services.
func NewSYNProxy() *SYNProxy {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("synproxy: crypto/rand: " + err.Error())
	}
	sp := &SYNProxy{k0: binary.LittleEndian.Uint64(b[:8]), k1: binary.LittleEndian.Uint64(b[8:]),
		on: new(atomic.Pointer[[MaxServices]bool])}
	return sp
}

// Set says which services are proxied: every eligible one when global is
// set, except those services maps to false; those it maps to true in
// any case. It applies to the snapshot Apply last saw and every later one.
func (sp *SYNProxy) Set(global bool, services map[vs.Key]bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.global, sp.services = global, maps.Clone(services)
	sp.publishLocked()
}

// Apply maps the proxied services onto the service IDs of snap, the
// snapshot the workers are about to use.
func (sp *SYNProxy) Apply(snap *Snapshot) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.snap = snap
	sp.publishLocked()
}

func (sp *SYNProxy) publishLocked() {
	if sp.snap == nil {
		return
	}
	on := new([MaxServices]bool)
	any := false
	for i := range sp.snap.Services {
		svc := &sp.snap.Services[i]
		want, ok := sp.services[svc.Key]
		if !ok {
			want = sp.global
		}
		if want && SYNProxyEligible(svc) && svc.ID < MaxServices {
			on[svc.ID], any = true, true
		}
	}
	if any {
		sp.active.Store(true)
		sp.on.Store(on)
	} else {
		sp.on.Store(nil)
	}
}

// SYNProxyEligible reports whether svc can be proxied: TCP (or a
// firewall mark), of either family, and real servers that are all VS/NAT
// ones.
func SYNProxyEligible(svc *Service) bool {
	if (svc.Key.FWMark == 0 && svc.Key.Proto != vs.TCP) || len(svc.Dests) == 0 {
		return false
	}
	for i := range svc.Dests {
		if svc.Dests[i].Fwd != vs.Masq {
			return false
		}
	}
	return true
}

// Proxied reports whether the service with ID id is proxied now.
func (sp *SYNProxy) Proxied(id uint32) bool {
	on := sp.on.Load()
	return on != nil && id < MaxServices && on[id]
}

// SetSYNProxy makes the processor proxy the SYNs of the services sp
// says; nil (the default) proxies none.
func (p *Processor) SetSYNProxy(sp *SYNProxy) { p.sp = sp }

// sipRound is one SipHash round.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13) ^ v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16) ^ v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21) ^ v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17) ^ v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// sipWords is SipHash-2-4 of the 64-bit words w, read as len(w)*8 bytes
// (each word little-endian, as SipHash reads its blocks); the last block
// is the length alone.
func sipWords(k0, k1 uint64, w []uint64) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	for i := 0; i <= len(w); i++ {
		m := uint64(len(w)*8) << 56
		if i < len(w) {
			m = w[i]
		}
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
	}
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// cookieHash is the hash part of a cookie.
func (sp *SYNProxy) cookieHash(src, dst [4]byte, sport, dport uint16, isn, count uint32, mss uint8) uint32 {
	a := uint64(binary.BigEndian.Uint32(src[:]))<<32 | uint64(binary.BigEndian.Uint32(dst[:]))
	b := uint64(sport)<<48 | uint64(dport)<<32 | uint64(isn)
	c := uint64(count)<<8 | uint64(mss)
	w := [3]uint64{a, b, c}
	return uint32(sipWords(sp.k0, sp.k1, w[:])) & (1<<synHashBits - 1)
}

// Cookie is the initial sequence number the director answers a SYN with:
// the counter's low 5 bits, the MSS index (2 bits) and the hash.
func (sp *SYNProxy) Cookie(src, dst [4]byte, sport, dport uint16, isn, count uint32, mss uint8) uint32 {
	return (count&31)<<27 | uint32(mss&3)<<synHashBits | sp.cookieHash(src, dst, sport, dport, isn, count, mss)
}

// cookieVerdict is what checking a cookie found.
type cookieVerdict uint8

const (
	cookieOK cookieVerdict = iota
	cookieBad
	cookieExpired
)

// Check checks that cookie is one the director made for this four-tuple
// and client ISN at counter now or up to synCookieMaxAge periods before,
// and returns its MSS index.
func (sp *SYNProxy) Check(src, dst [4]byte, sport, dport uint16, isn, cookie, now uint32) (uint8, cookieVerdict) {
	age := (now - cookie>>27) & 31
	if age > synCookieMaxAge {
		return 0, cookieExpired
	}
	mss := uint8(cookie >> synHashBits & 3)
	if sp.cookieHash(src, dst, sport, dport, isn, now-age, mss) != cookie&(1<<synHashBits-1) {
		return 0, cookieBad
	}
	return mss, cookieOK
}

// synCounter is the cookie counter now.
func (p *Processor) synCounter() uint32 {
	return uint32(p.ct.Now() / synCookiePeriod)
}

// mssIndex is the largest index of synMSSTable not above the MSS option
// of the SYN's options (536, index 0, without one).
func mssIndex(opts []byte) uint8 { return mssIndexIn(&synMSSTable, opts) }

// mssOption is the value of the MSS option among a SYN's options, if it
// has one (the last, if several); a malformed option ends the walk.
func mssOption(opts []byte) (uint16, bool) {
	var mss uint16
	found := false
	for len(opts) > 0 {
		switch opts[0] {
		case 0:
			opts = nil
			continue
		case 1:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			break
		}
		if opts[0] == 2 && opts[1] == 4 {
			mss, found = binary.BigEndian.Uint16(opts[2:4]), true
		}
		opts = opts[opts[1]:]
	}
	return mss, found
}

// synProxyNew handles a packet of a proxied service that has no
// connection: a SYN is answered with a cookie, an ACK that returns a
// valid one makes the connection, anything else is dropped.
func (p *Processor) synProxyNew(s *Snapshot, si int32, svc *Service, buf []byte, off, n int) (Verdict, Out) {
	pk := p.pk
	fl := pk.TCPFlags & (header.TCPFlagSYN | header.TCPFlagACK | header.TCPFlagRST | header.TCPFlagFIN)
	switch fl {
	case header.TCPFlagSYN:
		if !p.admit(svc) {
			p.retireExpired()
			return VerdictDrop, Out{}
		}
		p.retireExpired()
		if pk.IPv6 {
			return p.synCookieReply6(s) // synproxy6.go
		}
		return p.synCookieReply(s)
	case header.TCPFlagACK:
		p.retireExpired()
		return p.synProxyOpen(s, si, svc, buf, off, n)
	}
	p.retireExpired()
	p.c.Drops[DropNoConnection].Add(1)
	return VerdictDrop, Out{}
}

// synCookieReply builds the SYN-ACK with a cookie that answers the SYN
// in p.frame, for the ingress interface.
func (p *Processor) synCookieReply(s *Snapshot) (Verdict, Out) {
	pk, frame := p.pk, p.frame
	t := header.TCP(frame[pk.L4:pk.End])
	hl := t.HeaderLen()
	if hl < header.TCPMinLen || hl > len(t) || pk.L3 > 18 {
		p.c.Drops[DropNoConnection].Add(1)
		return VerdictDrop, Out{}
	}
	mss := mssIndex(t[header.TCPMinLen:hl])
	cookie := p.sp.Cookie(pk.Src, pk.Dst, pk.SrcPort, pk.DstPort, t.Seq(), p.synCounter(), mss)
	adv := uint16(1460)
	if p.ingress < len(s.Ifaces) && s.Ifaces[p.ingress].MTU > 576 {
		adv = uint16(min(s.Ifaces[p.ingress].MTU-40, 65495))
	}
	r := p.reply[:pk.L3+20+24]
	p.replyL2(s, r)
	ip := header.IPv4(r[pk.L3:])
	clear(ip[:20])
	ip.SetVersionIHL(20)
	ip.SetTotalLength(44)
	ip.SetFlagsFragment(header.IPv4FlagDF)
	ip.SetTTL(64)
	ip.SetProtocol(header.ProtocolTCP)
	ip.SetSrc(pk.Dst)
	ip.SetDst(pk.Src)
	ip.SetChecksum(ip.CalculateChecksum())
	o := ip[20:44]
	writeSegment(o, pk.DstPort, pk.SrcPort, cookie, t.Seq()+1, header.TCPFlagSYN|header.TCPFlagACK, 65535, adv)
	header.TCP(o).SetChecksum(^header.Checksum(o, header.PseudoHeaderChecksum(header.ProtocolTCP, pk.Dst, pk.Src, 24)))
	p.replyN = len(r)
	p.c.SYNProxy.Cookies.Add(1)
	return VerdictReply, Out{}
}

// synProxyOpen checks the cookie an ACK returns and, when it is valid,
// makes the connection and sends the real server its SYN.
func (p *Processor) synProxyOpen(s *Snapshot, si int32, svc *Service, buf []byte, off, n int) (Verdict, Out) {
	c, pk, frame := p.c, p.pk, p.frame
	t := header.TCP(frame[pk.L4:pk.End])
	cookie, isn := t.Ack()-1, t.Seq()-1
	mss, v := p.checkCookie(isn, cookie)
	switch v {
	case cookieBad:
		c.Drops[DropSYNProxyBadCookie].Add(1)
		return VerdictDrop, Out{}
	case cookieExpired:
		c.Drops[DropSYNProxyExpired].Add(1)
		return VerdictDrop, Out{}
	}
	p.Last.New = true
	d, drop := p.schedule(s, si, svc, conntrack.EvSyn)
	if d == nil {
		p.Last.Drop = drop
		p.dropNew(drop)
		return VerdictDrop, Out{}
	}
	p.Last.Found, p.Last.Dest = true, d.ID
	conn := p.sconn
	if d.Fwd != vs.Masq || !p.ct.SetSeq(&conn, conntrack.Seq{Pending: true, Window: t.Window(), Cookie: cookie, ClientISN: isn}) {
		// The snapshot changed under the proxy: a real server that is
		// not a NAT one cannot have its sequence numbers translated.
		if p.ct.ExpireNow(&conn) {
			p.ct.Retire(&conn)
		}
		c.Drops[DropSYNProxyNotNAT].Add(1)
		return VerdictDrop, Out{}
	}
	c.SYNProxy.Opened.Add(1)
	if pk.End > pk.Payload {
		p.sp.hold(&conn, p.ct, frame[:pk.End], c)
	}
	p.countIn(svc, d, uint64(pk.TotalLen))

	return p.synToServer(s, d, buf, off, isn, mss)
}

// synToServer rewrites the client's segment in buf at off, parsed as
// p.pk, into the director's SYN to d: the client's ISN isn, the MSS of
// index mss as its one option, the segment's own window.
func (p *Processor) synToServer(s *Snapshot, d *Dest, buf []byte, off int, isn uint32, mss uint8) (Verdict, Out) {
	c, pk := p.c, p.pk
	if pk.IPv6 {
		return p.synToServer6(s, d, buf, off, isn, mss) // synproxy6.go
	}
	eg, ok := p.egress(s, d)
	if !ok {
		return VerdictDrop, Out{}
	}
	ihl := pk.L4 - pk.L3
	end := pk.L4 + 24
	if off+end > len(buf) {
		c.Drops[DropNoHeadroom].Add(1)
		return VerdictDrop, Out{}
	}
	f := buf[off : off+end]
	ip := header.IPv4(f[pk.L3:])
	ip.SetTotalLength(uint16(ihl + 24))
	ip.SetFlagsFragment(header.IPv4FlagDF)
	ip.SetDst(d.Addr)
	ip.SetChecksum(ip.CalculateChecksum())
	o := f[pk.L4:end]
	writeSegment(o, pk.SrcPort, natPort(d, pk.DstPort), isn, 0, header.TCPFlagSYN, header.TCP(o).Window(), synMSSTable[mss])
	header.TCP(o).SetChecksum(^header.Checksum(o, header.PseudoHeaderChecksum(header.ProtocolTCP, pk.Src, d.Addr, 24)))
	encap.DR(f, d.MAC, eg.MAC)
	return VerdictForward, Out{Off: off, Len: end, Slot: d.Slot}
}

// egress is emit's check that d can be sent to: its interface and MAC.
func (p *Processor) egress(s *Snapshot, d *Dest) (*Iface, bool) {
	if d.Slot < 0 || d.Slot >= len(s.Ifaces) {
		p.c.Drops[DropNoEgress].Add(1)
		return nil, false
	}
	if !d.HaveMAC {
		p.c.Drops[DropNeighborUnresolved].Add(1)
		return nil, false
	}
	return &s.Ifaces[d.Slot], true
}

// hold copies frame, a client segment with data of the pending
// connection c, into c's hold slot, if the slot is free and c still
// pending. It reports whether it did.
func (sp *SYNProxy) hold(c *conntrack.Conn, ct *conntrack.Table, frame []byte, cs *Counters) bool {
	h := &sp.slots[holdIndex(c.ID())]
	h.mu.Lock()
	defer h.mu.Unlock()
	if sq, ok := ct.SeqOf(c); !ok || !sq.Pending || len(frame) > len(h.frame) {
		return false
	}
	switch h.id {
	case c.ID():
		return false // one segment per connection
	case 0:
	default:
		// Another connection's segment: it has waited longer than this
		// one, so its server is slow or gone; the newer one takes over.
		cs.SYNProxy.HoldReplaced.Add(1)
	}
	h.id, h.n = c.ID(), copy(h.frame[:], frame)
	cs.SYNProxy.Held.Add(1)
	return true
}

// establish records c's delta and moves its held segment, if any, into
// dst, under the hold slot's lock so that a segment being held at the
// same time either lands before (and is moved) or sees the connection
// established. It returns the held segment's length (0: none).
func (sp *SYNProxy) establish(c *conntrack.Conn, ct *conntrack.Table, delta uint32, dst []byte) int {
	h := &sp.slots[holdIndex(c.ID())]
	h.mu.Lock()
	defer h.mu.Unlock()
	ct.SetSeq(c, conntrack.Seq{Delta: delta})
	if h.id != c.ID() {
		return 0
	}
	h.id = 0
	return copy(dst, h.frame[:h.n])
}

// add32 adds d to the 32-bit field at b and updates the checksum at sum
// for it.
func add32(b, sum []byte, d uint32) {
	old := binary.BigEndian.Uint32(b)
	nv := old + d
	binary.BigEndian.PutUint32(b, nv)
	c := binary.BigEndian.Uint16(sum)
	c = header.ChecksumUpdate16(c, uint16(old>>16), uint16(nv>>16))
	c = header.ChecksumUpdate16(c, uint16(old), uint16(nv))
	binary.BigEndian.PutUint16(sum, c)
}

// synProxyClient runs a client packet of a proxied connection, before
// it is rewritten for its real server. While the server's SYN-ACK is
// awaited, the first data segment is held; any other packet (the
// client retransmitting, since its data or ACK seems lost) is turned
// into the SYN again, which the director does not retransmit on its own,
// so a lost SYN costs the client one retransmission, not the connection.
// Afterwards the packet's acknowledgement number is translated. done
// reports that the packet's fate is decided (held, or sent as the SYN).
func (p *Processor) synProxyClient(s *Snapshot, d *Dest, buf []byte, off int) (Verdict, Out, bool) {
	pk := p.pk
	sq, ok := p.ct.SeqOf(&p.sconn)
	if !ok {
		return 0, Out{}, false
	}
	t := header.TCP(p.frame[pk.L4:pk.End])
	if sq.Pending {
		if pk.End > pk.Payload && p.sp.hold(&p.sconn, p.ct, p.frame[:pk.End], p.c) {
			return VerdictHeld, Out{}, true
		}
		if sq, ok = p.ct.SeqOf(&p.sconn); !ok || sq.Pending {
			if t.Flags()&(header.TCPFlagRST|header.TCPFlagSYN) != 0 {
				p.c.Drops[DropSYNProxyPending].Add(1)
				return VerdictDrop, Out{}, true
			}
			p.c.SYNProxy.Resent.Add(1)
			v, o := p.synToServer(s, d, buf, off, sq.ClientISN, uint8(sq.Cookie>>synHashBits&3))
			return v, o, true
		}
	}
	if t.Flags()&header.TCPFlagACK != 0 {
		add32(t[8:12], t[16:18], -sq.Delta)
	}
	return 0, Out{}, false
}

// synProxyServer runs a packet from the real server of a proxied
// connection, before it is rewritten for the client: the SYN-ACK that
// answers the director's SYN is answered with the client's ACK (and the
// held segment); afterwards its sequence number is translated. done
// reports that the packet's fate is decided.
func (p *Processor) synProxyServer(s *Snapshot, r *conntrack.Reply, buf []byte, off, n int) (Verdict, Out, bool) {
	pk := p.pk
	sq, ok := p.ct.SeqOf(&r.Conn)
	if !ok {
		return 0, Out{}, false
	}
	frame := buf[off : off+n]
	t := header.TCP(frame[pk.L4:pk.End])
	if !sq.Pending {
		add32(t[4:8], t[16:18], sq.Delta)
		return 0, Out{}, false
	}
	fl := t.Flags()
	switch {
	case fl&header.TCPFlagRST != 0:
		// The server refuses: the client gets the RST in its own
		// sequence space, just after the cookie.
		add32(t[4:8], t[16:18], sq.Cookie+1-t.Seq())
		return 0, Out{}, false
	case fl&(header.TCPFlagSYN|header.TCPFlagACK) != header.TCPFlagSYN|header.TCPFlagACK || t.Ack() != sq.ClientISN+1:
		p.c.Drops[DropSYNProxyPending].Add(1)
		return VerdictDrop, Out{}, true
	}
	_, d, ok := s.DestByID(r.Conn.Dest)
	if !ok {
		p.c.Drops[DropDestUnavailable].Add(1)
		return VerdictDrop, Out{}, true
	}
	eg, ok := p.egress(s, d)
	if !ok {
		return VerdictDrop, Out{}, true
	}
	srvISN := t.Seq()
	delta := sq.Cookie - srvISN
	held := p.sp.establish(&r.Conn, p.ct, delta, p.second[:])
	p.c.SYNProxy.Established.Add(1)

	// The ACK, in the SYN-ACK's frame: client to server.
	var end int
	if pk.IPv6 {
		end = p.synAckToServer6(frame, d, eg, sq, srvISN) // synproxy6.go
	} else {
		end = p.synAckToServer4(frame, d, eg, sq, srvISN)
	}
	out := Out{Off: off, Len: end, Slot: d.Slot}
	if held > 0 && p.heldToServer(d, eg, held, delta) {
		p.secondN = held
		out.Second = true
	}
	return VerdictForward, out, true
}

// synAckToServer4 writes, in the frame of the server's IPv4 SYN-ACK
// (parsed as p.pk), the client's ACK of it to d: the IP header turned
// round (DF, TTL 64) and a bare ACK, client ISN+1, server ISN+1, the
// client's window. It returns the frame's new length.
func (p *Processor) synAckToServer4(frame []byte, d *Dest, eg *Iface, sq conntrack.Seq, srvISN uint32) int {
	pk := p.pk
	ihl := pk.L4 - pk.L3
	end := pk.L4 + header.TCPMinLen
	f := frame[:end]
	ip := header.IPv4(f[pk.L3:])
	ip.SetTotalLength(uint16(ihl + header.TCPMinLen))
	ip.SetFlagsFragment(header.IPv4FlagDF)
	ip.SetTTL(64)
	ip.SetSrc(pk.Dst)
	ip.SetDst(pk.Src)
	ip.SetChecksum(ip.CalculateChecksum())
	o := f[pk.L4:end]
	writeSegment(o, pk.DstPort, pk.SrcPort, sq.ClientISN+1, srvISN+1, header.TCPFlagACK, sq.Window, 0)
	header.TCP(o).SetChecksum(^header.Checksum(o, header.PseudoHeaderChecksum(header.ProtocolTCP, pk.Dst, pk.Src, header.TCPMinLen)))
	encap.DR(f, d.MAC, eg.MAC)
	return end
}

// writeSegment writes in o the TCP header of a segment without payload
// that the proxy makes: ports, sequence and acknowledgement numbers,
// flags, window, a zero checksum and urgent pointer, and, when mss is not
// 0, the MSS option (o is then 24 bytes, else 20).
func writeSegment(o []byte, sport, dport uint16, seq, ack uint32, flags uint8, win, mss uint16) {
	binary.BigEndian.PutUint16(o[0:2], sport)
	binary.BigEndian.PutUint16(o[2:4], dport)
	binary.BigEndian.PutUint32(o[4:8], seq)
	binary.BigEndian.PutUint32(o[8:12], ack)
	o[12], o[13] = 5<<4, flags
	binary.BigEndian.PutUint16(o[14:16], win)
	binary.BigEndian.PutUint32(o[16:20], 0) // checksum, urgent pointer
	if mss != 0 {
		o[12] = 6 << 4
		o[20], o[21] = 2, 4 // kind MSS, length 4
		binary.BigEndian.PutUint16(o[22:24], mss)
	}
}

// replyL2 writes the Ethernet header (any VLAN tag kept) of r, the
// director's reply to the frame being processed: back to its sender,
// from the ingress interface.
func (p *Processor) replyL2(s *Snapshot, r []byte) {
	pk, frame := p.pk, p.frame
	copy(r[:pk.L3], frame[:pk.L3])
	copy(r[0:6], frame[6:12])
	if p.ingress < len(s.Ifaces) {
		copy(r[6:12], s.Ifaces[p.ingress].MAC[:])
	}
}

// heldToServer makes the held client segment in p.second, n bytes, ready
// for d: acknowledgement translated, destination rewritten.
func (p *Processor) heldToServer(d *Dest, eg *Iface, n int, delta uint32) bool {
	f := p.second[:n]
	hp := &p.hpkt
	if header.Parse(f, hp) != header.OK || hp.Proto != header.ProtocolTCP || hp.IPv6 != d.Is6 {
		return false
	}
	t := header.TCP(f[hp.L4:hp.End])
	if t.Flags()&header.TCPFlagACK != 0 {
		add32(t[8:12], t[16:18], -delta)
	}
	if hp.IPv6 {
		rewrite6(f, hp, true, &d.Addr6, natPort(d, hp.DstPort))
	} else {
		rewrite(f, hp, true, d.Addr, natPort(d, hp.DstPort))
	}
	encap.DR(f, d.MAC, eg.MAC)
	return true
}

// synProxyICMP puts the sequence number of the reply an ICMP error from
// the client's side quotes (seen by the client in the cookie's space)
// back into the real server's space, so that the server's stack finds
// it within its window and acts on the error (a fragmentation-needed
// lowers its path MTU). The quoted TCP checksum is left alone, as the
// rest of the quoted packet's rewrite leaves it; the ICMP checksum is
// updated. frame's ICMP message has been rewritten for the server.
func (p *Processor) synProxyICMP(conn *conntrack.Conn, frame []byte) {
	sq, ok := p.ct.SeqOf(conn)
	if !ok || sq.Pending {
		return
	}
	pk := p.pk
	msg := frame[pk.L4:pk.End]
	in := header.IPv4(msg[header.ICMPv4Len:])
	seq := header.ICMPv4Len + in.HeaderLen() + 4
	if seq+4 > len(msg) {
		return
	}
	add32(msg[seq:seq+4], msg[2:4], -sq.Delta)
}

// holdIndex is the hold slot of the connection with ID id: a hash of its
// entry's slot and generation.
func holdIndex(id uint64) uint64 { return (id * 0x9e3779b97f4a7c15) >> 56 % synHoldSlots }

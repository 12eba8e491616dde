package dataplane

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// SYN rate limits: the most new connections a second a source or a
// service may be given, and the largest burst.
const (
	MaxSYNRate  = 100_000_000
	MaxSYNBurst = 1_000_000
)

// synSrcBits sizes the per-source table: sources hash into it with a
// random key, so two that collide share a budget, and a flood from any
// number of sources costs no memory.
const (
	synSrcBits  = 16
	synSrcSlots = 1 << synSrcBits
)

// SYNLimits configure a SYNLimiter. A rate of 0 turns that limit off.
type SYNLimits struct {
	PerSource  int // new TCP connections a second from one client address
	PerService int // new TCP connections a second to one virtual service
	Burst      int // bucket depth of both; 0 means one second's worth of each rate
	// BlockFactor makes a source whose demand runs BlockFactor times its
	// rate (over one burst's time) a candidate for the blocklist that
	// Blocked reports; 0 never blocks.
	BlockFactor int
}

// Validate names the bad value and its rule.
func (l SYNLimits) Validate() error {
	if l.PerSource < 0 || l.PerSource > MaxSYNRate {
		return fmt.Errorf("defense.syn_rate_per_source = %d: must be 0 (off) to %d new connections a second", l.PerSource, MaxSYNRate)
	}
	if l.PerService < 0 || l.PerService > MaxSYNRate {
		return fmt.Errorf("defense.syn_rate_per_service = %d: must be 0 (off) to %d new connections a second", l.PerService, MaxSYNRate)
	}
	if l.Burst < 0 || l.Burst > MaxSYNBurst {
		return fmt.Errorf("defense.burst = %d: must be 0 (one second of the rate) to %d", l.Burst, MaxSYNBurst)
	}
	if l.BlockFactor < 0 || l.BlockFactor > 1000 {
		return fmt.Errorf("defense.block_factor = %d: must be 0 (never block) to 1000", l.BlockFactor)
	}
	return nil
}

// SYNLimiter limits the new TCP connections each client address (an IPv6
// one's prefix, after SetPrefix6) and each virtual service may open a second, with the same generic cell rate
// algorithm as ICMPLimiter: one atomic word per bucket holds the time at
// which it would be full again. The buckets sit in fixed arrays (sources
// hashed into synSrcSlots, services by ID), so it allocates nothing and
// its memory does not depend on the traffic. Every worker shares one, and
// Set changes its limits while they run (a reload), starting from full
// buckets.
//
// A source's bucket keeps counting what it is refused, up to a cap, so a
// source that keeps asking far beyond its rate stays refused until it
// slows down, and admit says when it asks BlockFactor times its rate: the
// caller may then drop it earlier (the XDP blocklist).
type SYNLimiter struct {
	clock conntrack.Clock
	st    atomic.Pointer[synTables] // nil: no limit

	mu        sync.Mutex // serialises Set, SetServiceRates, SetPrefix6 and Apply
	overrides map[vs.Key]int
	snap      *Snapshot // the last snapshot Apply saw
	prefix6   int       // SetPrefix6's length; 0: whole addresses
}

// synTables are one setting's buckets and shapes.
type synTables struct {
	lim  SYNLimits
	src  *[synSrcSlots]atomic.Int64 // nil when PerSource is 0
	srcR gcraRate
	// blockTag holds, per source slot, a tag of the last source refused
	// as far over the rate. Sources share a slot when their hashes
	// collide, so the slot's demand is theirs together: a source is
	// reported for the blocklist only when the slot's previous such
	// refusal was its own too, which a flooding source's next SYN
	// nearly always is and a source that merely shares its slot almost
	// never is. Nil when PerSource is 0.
	blockTag *[synSrcSlots]atomic.Uint32
	svc      *[MaxServices]atomic.Int64 // nil when no service is limited
	svcR     gcraRate
	// svcShape is each service ID's shape when some service has a rate
	// of its own (SetServiceRates); nil: every one has svcR. A shape
	// with interval 0 is no limit. Never written once published.
	svcShape *[MaxServices]gcraRate
	// trusted holds, per source slot, when a source last completed a
	// handshake (SYN_RECV or SYNACK to ESTABLISHED): such a source is not
	// held to the service's rate for TrustFor. Nil when PerService is 0.
	trusted *[synSrcSlots]atomic.Int64
	block   int64 // how far past its burst a source's full time may run before it is blocked
	debt    int64 // how far past its burst a refused source's full time may be pushed
	k0, k1  uint64
	// mask6, when masked is set, is the mask of the prefix an IPv6
	// source is keyed by (SetPrefix6); IPv4 sources keep their address.
	mask6  [16]byte
	masked bool
}

// NewSYNLimiter returns a limiter for l, or an error naming the bad value.
// A nil clock means the system clock.
func NewSYNLimiter(l SYNLimits, clock conntrack.Clock) (*SYNLimiter, error) {
	if clock == nil {
		clock = conntrack.SystemClock()
	}
	s := &SYNLimiter{clock: clock}
	if err := s.Set(l); err != nil {
		return nil, err
	}
	return s, nil
}

// Set replaces the limits; an invalid value changes nothing. Buckets
// start full.
func (s *SYNLimiter) Set(l SYNLimits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.PerSource == 0 && l.PerService == 0 && len(s.overrides) == 0 {
		s.st.Store(nil)
		return nil
	}
	t := &synTables{lim: l, k0: rand.Uint64() | 1, k1: rand.Uint64() | 1}
	if l.PerSource > 0 {
		t.src = new([synSrcSlots]atomic.Int64)
		t.blockTag = new([synSrcSlots]atomic.Uint32)
		t.srcR = l.shape(l.PerSource)
		window := t.srcR.ahead + t.srcR.interval // one burst's time
		t.debt = window
		if l.BlockFactor > 0 {
			// Asking f times the rate over one burst's time runs the
			// full time (f-1) windows past the burst.
			t.block = int64(l.BlockFactor-1) * window
			t.debt = max(t.debt, t.block+window)
		}
	}
	if l.PerService > 0 {
		t.svcR = l.shape(l.PerService)
	}
	s.publishLocked(t)
	return nil
}

// shape is a bucket of rate a second, burst deep (a second of the rate
// when Burst is 0).
func (l SYNLimits) shape(rate int) gcraRate {
	burst := l.Burst
	if burst == 0 {
		burst = max(rate, 1)
	}
	iv := max(int64(time.Second)/int64(rate), 1)
	return gcraRate{interval: iv, ahead: int64(burst-1) * iv}
}

// SetServiceRates gives services a SYN rate of their own instead of
// PerService (a service's syn_rate); services not in rates keep
// PerService. It applies to the snapshot Apply last saw and to every
// later one. An invalid rate changes nothing.
func (s *SYNLimiter) SetServiceRates(rates map[vs.Key]int) error {
	for k, r := range rates {
		if r < 1 || r > MaxSYNRate {
			return fmt.Errorf("syn_rate of service %s = %d: must be 1 to %d new connections a second", k, r, MaxSYNRate)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overrides = maps.Clone(rates)
	t := s.st.Load()
	if t == nil {
		if len(rates) == 0 {
			return nil
		}
		t = &synTables{k0: rand.Uint64() | 1, k1: rand.Uint64() | 1}
	}
	s.publishLocked(t)
	return nil
}

// Apply maps the services' own rates onto the service IDs of snap, the
// snapshot the workers are about to use.
func (s *SYNLimiter) Apply(snap *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = snap
	if t := s.st.Load(); t != nil {
		s.publishLocked(t)
	}
}

// SetPrefix6 makes the limiter key an IPv6 source by its prefix of bits
// (1 to 128) instead of its whole address, as the XDP blocklist blocks
// it (defense.block_prefix6): a host that changes its address within its
// prefix at every SYN stays one source. 128, like the default, keys
// every address apart. IPv4 sources are not affected. An invalid length
// changes nothing.
func (s *SYNLimiter) SetPrefix6(bits int) error {
	if bits < 1 || bits > 128 {
		return fmt.Errorf("defense.block_prefix6 = %d: must be 1 to 128", bits)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefix6 = bits
	if t := s.st.Load(); t != nil {
		s.publishLocked(t)
	}
	return nil
}

// publishLocked publishes a copy of t (sharing its buckets) with the
// per-service shapes for the overrides and the last snapshot, the
// service buckets that any limited service needs, and the IPv6 prefix.
func (s *SYNLimiter) publishLocked(t *synTables) {
	nt := *t
	nt.mask6, nt.masked = [16]byte{}, s.prefix6 > 0 && s.prefix6 < 128
	for i := range s.prefix6 {
		nt.mask6[i/8] |= 0x80 >> (i % 8)
	}
	nt.svcShape = nil
	if len(s.overrides) > 0 && s.snap != nil {
		shapes := new([MaxServices]gcraRate)
		for i := range shapes {
			shapes[i] = nt.svcR
		}
		for i := range s.snap.Services {
			svc := &s.snap.Services[i]
			if r, ok := s.overrides[svc.Key]; ok && svc.ID < MaxServices {
				shapes[svc.ID] = nt.lim.shape(r)
			}
		}
		nt.svcShape = shapes
	}
	if nt.svc == nil && (nt.svcR.interval != 0 || nt.svcShape != nil) {
		nt.svc = new([MaxServices]atomic.Int64)
		nt.trusted = new([synSrcSlots]atomic.Int64)
	}
	s.st.Store(&nt)
}

// Limits returns the limits the limiter enforces.
func (s *SYNLimiter) Limits() SYNLimits {
	if t := s.st.Load(); t != nil {
		return t.lim
	}
	return SYNLimits{}
}

// synVerdict is what the limiter says of one new connection.
type synVerdict uint8

const (
	synAllow synVerdict = iota
	synSourceLimited
	synSourceBlocked // limited, and far enough over to block
	synServiceLimited
)

// TrustFor is how long a client address that completed a TCP handshake
// through the director is exempt from the per-service SYN rate. A
// spoofed source never sees the real server's SYN-ACK, so it cannot
// complete one: under a flood from random sources the service's budget
// goes to unknown sources while known clients keep connecting.
const TrustFor = time.Minute

// admit takes a token from src's bucket and then, unless src is
// trusted, from service svcID's.
func (s *SYNLimiter) admit(src *[16]byte, svcID uint32) synVerdict {
	t := s.st.Load()
	if t == nil {
		return synAllow
	}
	var key [16]byte
	now := int64(s.clock.Now())
	src = t.key(src, &key)
	slot := t.slot(src)
	if t.src != nil {
		v := t.takeSource(&t.src[slot], now)
		if v == synSourceBlocked && !t.sameBlocked(slot, src) {
			v = synSourceLimited
		}
		if v != synAllow {
			return v
		}
	}
	if t.svc != nil && svcID < MaxServices {
		r := t.svcR
		if t.svcShape != nil {
			r = t.svcShape[svcID]
		}
		if r.interval == 0 {
			return synAllow // this service has no SYN rate
		}
		if at := t.trusted[slot].Load(); at != 0 && now-at < int64(TrustFor) {
			return synAllow
		}
		if !take(&t.svc[svcID], r, now) {
			return synServiceLimited
		}
	}
	return synAllow
}

// key is the source src is limited as: an IPv6 address masked to the
// prefix when SetPrefix6 set one (written into buf), else src itself.
func (s *synTables) key(src, buf *[16]byte) *[16]byte {
	if !s.masked || isMapped4(src) {
		return src
	}
	for i := range buf {
		buf[i] = src[i] & s.mask6[i]
	}
	return buf
}

// isMapped4 reports whether a is an IPv4-mapped address (::ffff:a.b.c.d),
// the form an IPv4 source takes in the connection table's keys.
func isMapped4(a *[16]byte) bool {
	return binary.LittleEndian.Uint64(a[0:8]) == 0 && binary.LittleEndian.Uint32(a[8:12]) == 0xffff0000
}

// sameBlocked records src as the slot's last source refused far over
// the rate and reports whether the one before was src too.
func (s *synTables) sameBlocked(slot uint32, src *[16]byte) bool {
	h := binary.LittleEndian.Uint64(src[0:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(src[8:16])*0xc2b2ae3d27d4eb4f
	tag := uint32(h>>32) | 1 // 0: none yet
	return s.blockTag[slot].Swap(tag) == tag
}

// trust records that src completed a handshake now.
func (s *SYNLimiter) trust(src *[16]byte) {
	t := s.st.Load()
	if t == nil || t.trusted == nil {
		return
	}
	now := int64(s.clock.Now())
	var key [16]byte
	b := &t.trusted[t.slot(t.key(src, &key))]
	// Within a second of the last mark there is nothing to write: a
	// busy client does not bounce the line between workers.
	if at := b.Load(); at == 0 || now-at > int64(time.Second) {
		b.Store(max(now, 1)) // 0 means never
	}
}

// noteHandshake tells the SYN limiter when a packet completed its
// connection's handshake: the state went from half-open to ESTABLISHED.
func (p *Processor) noteHandshake(was, now conntrack.State) {
	if p.syn != nil && now == conntrack.Established && (was == conntrack.SynRecv || was == conntrack.SynAck) {
		p.syn.trust(&p.pk.SrcMapped)
	}
}

// takeSource is take for a source's bucket, except that a refusal also
// moves the full time on, up to the debt cap: the bucket measures the
// demand, not only what was granted.
func (s *synTables) takeSource(full *atomic.Int64, now int64) synVerdict {
	r := s.srcR
	for {
		f := full.Load()
		over := f - now - r.ahead
		nf := max(f, now) + r.interval
		v := synAllow
		if over > 0 {
			v = synSourceLimited
			if s.block > 0 && over > s.block {
				v = synSourceBlocked
			}
			if over > s.debt {
				return v // at the cap: nothing to write
			}
		}
		if full.CompareAndSwap(f, nf) {
			return v
		}
	}
}

func (s *synTables) slot(a *[16]byte) uint32 {
	h := (binary.LittleEndian.Uint64(a[0:8])^s.k0)*0x9e3779b97f4a7c15 ^ (binary.LittleEndian.Uint64(a[8:16])^s.k1)*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	return uint32(h*0x94d049bb133111eb>>(64-synSrcBits)) & (synSrcSlots - 1)
}

// Blocker receives the sources a SYNLimiter finds far over their rate.
// Block must not block or allocate on the packet path: the XDP blocklist
// queues them for a goroutine that writes the map.
type Blocker interface {
	Block(src [16]byte)
}

// SetSYNLimiter makes the processor limit new TCP connections as l says;
// nil (the default) limits none. b, when not nil, hears of sources far
// over their rate.
func (p *Processor) SetSYNLimiter(l *SYNLimiter, b Blocker) { p.syn, p.blocker = l, b }

// admit is the defence's gate for a packet about to be scheduled as a new
// connection: the SYN rate limits (TCP only), then IPVS's drop_packet,
// which drops one such packet in the drop rate, TCP or not, as
// tcp_conn_schedule and udp_conn_schedule call ip_vs_todrop. It reports
// whether the packet may go on, and otherwise counts it.
func (p *Processor) admit(svc *Service) bool {
	pk := p.pk
	if p.syn != nil && pk.Proto == header.ProtocolTCP {
		switch p.syn.admit(&pk.SrcMapped, svc.ID) {
		case synSourceBlocked:
			if p.blocker != nil {
				p.blocker.Block(pk.SrcMapped)
			}
			p.dropNew(DropSYNRateSource)
			return false
		case synSourceLimited:
			p.dropNew(DropSYNRateSource)
			return false
		case synServiceLimited:
			p.dropNew(DropSYNRateService)
			return false
		}
	}
	if p.ct.ToDropPacket() {
		p.dropNew(DropDefensePacket)
		return false
	}
	return true
}

// dropNew counts a dropped packet that would have opened a connection:
// in the drops by reason and, for a TCP SYN, in the SYN drops too.
func (p *Processor) dropNew(d Drop) {
	p.c.Drops[d].Add(1)
	if p.pk.Proto == header.ProtocolTCP && conntrack.EventOf(p.pk.TCPFlags) == conntrack.EvSyn {
		p.c.SYNDrops[d].Add(1)
	}
}

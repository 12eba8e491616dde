package dataplane

import (
	"encoding/binary"
	"time"

	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
)

// Fragment table limits. Each processor has its own table: a NIC's RSS
// hashes IPv4 fragments on their addresses alone (a later fragment has no
// ports), so every fragment of a datagram reaches the same queue.
const (
	// FragSlots is how many datagrams' decisions a processor keeps; in
	// buckets of fragWays, the oldest of a full bucket is evicted.
	FragSlots = 1024
	fragWays  = 4
	// FragHeld is how many later fragments that came before their first a
	// processor holds at once.
	FragHeld = 16
	// FragKeep is how long a decision lasts after the last fragment that
	// used it.
	FragKeep = 2 * time.Second
	// FragHoldTime is how long a fragment waits for its first fragment.
	FragHoldTime = 500 * time.Millisecond
	// fragHeadroom is room before a held frame for IPIP's outer header.
	fragHeadroom = encap.Overhead
)

// fragKey names one datagram, as IPv4 reassembly does (RFC 791): source,
// destination, protocol and identification.
type fragKey struct {
	src, dst [4]byte
	id       uint16
	proto    uint8
}

// fragEntry is the decision the first fragment of a datagram got: its
// service (by destination port) and real server.
type fragEntry struct {
	key   fragKey
	used  bool
	dport uint16
	dest  uint32
	at    time.Duration // last use, on the connection table's clock
}

// heldFrag is a later fragment kept, copied, until its first comes.
type heldFrag struct {
	key  fragKey
	used bool
	at   time.Duration
	n    int
	pkt  header.Packet
	buf  [fragHeadroom + maxFrame]byte
}

// fragTable is a processor's fragment state: fixed arrays, so it
// allocates nothing after newFragTable.
type fragTable struct {
	e     [FragSlots]fragEntry
	held  [FragHeld]heldFrag
	nheld int
	// Fragments the last first fragment released, for Released.
	rel          [FragHeld]uint8
	relN, relPos int
	relEntry     fragEntry
	relSnap      *Snapshot
	seed         uint32
	evicted      uint64
}

func newFragTable() *fragTable {
	return &fragTable{seed: uint32(time.Now().UnixNano()) | 1}
}

func fragKeyOf(pk *header.Packet) fragKey {
	return fragKey{src: pk.Src, dst: pk.Dst, id: pk.ID, proto: pk.Proto}
}

// bucket returns the first slot of k's bucket. The seed keeps a sender
// from choosing datagrams that all land in one bucket.
func (t *fragTable) bucket(k *fragKey) int {
	h := binary.BigEndian.Uint32(k.src[:])*0x9e3779b1 ^ t.seed
	h = (h ^ binary.BigEndian.Uint32(k.dst[:])) * 0x85ebca6b
	h = (h ^ uint32(k.id)<<8 ^ uint32(k.proto)) * 0xc2b2ae35
	h ^= h >> 15
	return int(h&(FragSlots/fragWays-1)) * fragWays
}

// find returns k's live decision, freeing it if it has expired.
func (t *fragTable) find(k *fragKey, now time.Duration) *fragEntry {
	b := t.bucket(k)
	for i := b; i < b+fragWays; i++ {
		e := &t.e[i]
		if e.used && e.key == *k {
			if now-e.at > FragKeep {
				e.used = false
				return nil
			}
			return e
		}
	}
	return nil
}

// insert records k's decision: in its own slot if it has one, else a free
// or expired one, else in place of the bucket's oldest.
func (t *fragTable) insert(k *fragKey, dport uint16, dest uint32, now time.Duration) {
	b := t.bucket(k)
	slot := -1
	for i := b; i < b+fragWays; i++ {
		e := &t.e[i]
		if e.used && e.key == *k {
			slot = i
			break
		}
		if slot < 0 && (!e.used || now-e.at > FragKeep) {
			slot = i
		}
	}
	if slot < 0 {
		slot = b
		for i := b + 1; i < b+fragWays; i++ {
			if t.e[i].at < t.e[slot].at {
				slot = i
			}
		}
		t.evicted++
	}
	t.e[slot] = fragEntry{key: *k, used: true, dport: dport, dest: dest, at: now}
}

// fragment handles an IPv4 fragment of virtual-service traffic without
// reassembling it (IPVS reassembles first, in ip_vs_gather_frags and
// nf_defrag). The first fragment carries the ports: it goes the way of
// any packet (connection lookup or scheduling, then emit), and its
// decision is kept for the datagram's later fragments, which follow it to
// the same real server with the same method. A later fragment that comes
// first is copied and held until its first fragment releases it (see
// Released), or dropped and counted after FragHoldTime or when every hold
// slot is taken. The datagram counts as one packet in, as IPVS counts the
// reassembled packet; its bytes are every fragment's IP length.
func (p *Processor) fragment(s *Snapshot, buf []byte, off, n int) (Verdict, Out) {
	c, t := p.c, p.frag
	p.Last = Decision{}
	first, r := header.ParseFragment(buf[off:off+n], p.pk)
	if r != header.OK {
		c.Parse[r].Add(1)
		return VerdictDrop, Out{}
	}
	now := p.ct.Now()
	if t.nheld > 0 {
		p.expireHeld(now)
	}
	k := fragKeyOf(p.pk)
	if first {
		p.dest = nil
		v, out := p.forward(s, buf, off, n, nil)
		if (v != VerdictForward && v != VerdictLocal) || p.dest == nil {
			return v, out
		}
		t.insert(&k, p.pk.DstPort, p.dest.ID, now)
		if t.nheld > 0 {
			t.release(&k, s, now)
		}
		return v, out
	}
	if e := t.find(&k, now); e != nil {
		e.at = now
		return p.later(s, e, buf, off, n)
	}
	if !t.hold(&k, buf[off:off+n], p.pk, now) {
		c.Drops[DropFragHoldFull].Add(1)
		return VerdictDrop, Out{}
	}
	return VerdictHeld, Out{}
}

// later forwards a later fragment, parsed into p.pk, to the real server of
// its datagram's decision e.
func (p *Processor) later(s *Snapshot, e *fragEntry, buf []byte, off, n int) (Verdict, Out) {
	c := p.c
	si, ok := s.lookup(e.key.dst, e.key.proto, e.dport)
	if !ok {
		c.Drops[DropNoService].Add(1)
		return VerdictDrop, Out{}
	}
	d, live := s.dest(si, e.dest)
	if !live {
		c.Drops[DropDestUnavailable].Add(1)
		return VerdictDrop, Out{}
	}
	svc := &s.Services[si]
	p.Last = Decision{} // the datagram's first fragment made the decision
	v, out := p.emit(s, svc, d, buf, off, n)
	// emit counted a packet in; the datagram's first fragment already did.
	p.sh.svcT(svc.ID).InPkts--
	p.sh.destT(d.ID).InPkts--
	return v, out
}

// hold copies a later fragment into a free hold slot.
func (t *fragTable) hold(k *fragKey, frame []byte, pk *header.Packet, now time.Duration) bool {
	if t.nheld == FragHeld || len(frame) > maxFrame {
		return false
	}
	for i := range t.held {
		h := &t.held[i]
		if h.used {
			continue
		}
		h.key, h.used, h.at, h.n, h.pkt = *k, true, now, len(frame), *pk
		copy(h.buf[fragHeadroom:], frame)
		t.nheld++
		return true
	}
	return false
}

// release marks the held fragments of k for Released.
func (t *fragTable) release(k *fragKey, s *Snapshot, now time.Duration) {
	e := t.find(k, now)
	if e == nil {
		return
	}
	t.relEntry, t.relSnap = *e, s
	for i := range t.held {
		if t.held[i].used && t.held[i].key == *k {
			t.rel[t.relN] = uint8(i)
			t.relN++
		}
	}
}

// expireHeld drops the held fragments that waited longer than FragHoldTime.
func (p *Processor) expireHeld(now time.Duration) {
	t := p.frag
	for i := range t.held {
		h := &t.held[i]
		if h.used && now-h.at > FragHoldTime && !t.releasing(i) {
			h.used = false
			t.nheld--
			p.c.Drops[DropFragTimeout].Add(1)
		}
	}
}

func (t *fragTable) releasing(i int) bool {
	for _, r := range t.rel[t.relPos:t.relN] {
		if int(r) == i {
			return true
		}
	}
	return false
}

// LocalSlot is the slot Released gives a fragment for a local real
// server: its frame is then the IPv4 packet, for the director's own stack,
// as Out locates it with VerdictLocal.
const LocalSlot = -1

// Released returns the next held fragment that the last Process call
// released (its first fragment came and was forwarded), made ready for its
// real server as that one was: the frame, the second frame when it had to
// be split for the tunnel (else nil), and the slot both go out on
// (LocalSlot for a local real server). ok is false when there are no
// more. The slices are valid until the next call; fragments a caller does
// not collect before its next Process are dropped and counted as
// DropFragTimeout.
func (p *Processor) Released() (frame, second []byte, slot int, ok bool) {
	t := p.frag
	for t.relPos < t.relN {
		h := &t.held[t.rel[t.relPos]]
		t.relPos++
		h.used = false
		t.nheld--
		saved := p.pk
		p.pk = &h.pkt
		v, out := p.later(t.relSnap, &t.relEntry, h.buf[:], fragHeadroom, h.n)
		p.pk = saved
		if v == VerdictLocal {
			out.Slot = LocalSlot
		} else if v != VerdictForward {
			continue
		}
		frame = h.buf[out.Off : out.Off+out.Len]
		if out.Second {
			second = p.Second()
		}
		if !p.deferred {
			p.Flush()
		}
		return frame, second, out.Slot, true
	}
	t.relN, t.relPos, t.relSnap = 0, 0, nil
	if !p.deferred {
		p.Flush()
	}
	return nil, nil, 0, false
}

// dropUnreleased drops the released fragments nobody collected.
func (p *Processor) dropUnreleased() {
	t := p.frag
	for _, i := range t.rel[t.relPos:t.relN] {
		t.held[i].used = false
		t.nheld--
		p.c.Drops[DropFragTimeout].Add(1)
	}
	t.relN, t.relPos, t.relSnap = 0, 0, nil
}

// FragStats are a processor's fragment-table figures, for tests and
// status: decisions kept, fragments held, decisions evicted from a full
// bucket.
type FragStats struct {
	Decisions, Held int
	Evicted         uint64
}

// FragStats reads the processor's fragment table. Like Process, it must
// not run concurrently with the processor's other methods.
func (p *Processor) FragStats() FragStats {
	t := p.frag
	st := FragStats{Held: t.nheld, Evicted: t.evicted}
	for i := range t.e {
		if t.e[i].used {
			st.Decisions++
		}
	}
	return st
}

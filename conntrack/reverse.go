package conntrack

import (
	"math/bits"
	"runtime"
)

// FwdMasq is the forwarding-method value (vs.Masq) of a VS/NAT
// connection: its client packets move the state by tcp_states' INPUT
// table and its replies (TouchReply) by the OUTPUT table. Every other
// method is input-only.
const FwdMasq = 2

// The reverse index: how a VS/NAT reply finds its connection.
//
// A reply travels real server -> client, so its key is (client address
// and port, real server address and port), which is not the
// connection's key (client, virtual address and port). The reverse index
// is a second store of the same layout, sized like the connection store,
// whose entries map such a reply key to the connection entry: its bind
// word holds the connection's slot and generation, its since word the
// client-side hop (the slot and MAC the client's packet came from, where
// replies go back). A reply costs one lock-free lookup in the reverse
// store and one read of the connection's own entry, found by slot with no
// hashing; the generation check makes an index entry whose connection
// has gone (expired, evicted, reopened) answer nothing, so index entries
// never need to be released together with their connection. They are
// reclaimed lazily: an insert that finds no room takes a stale entry from
// its two buckets or a few buckets further on, and Sweep walks the index
// too. The index holds at most its capacity; when every entry is live
// (more NAT connections than the index holds), InsertReply fails and the
// caller refuses the connection.
//
// When two NAT connections have the same reply key (one client port to
// two virtual services that share a real server and port), the newer one
// owns the replies, as IPVS's output lookup finds the newest entry of its
// hash chain first.

// Reply is what LookupReply found for a reply key: the connection, the
// virtual address and port the reply must appear to come from, and the
// client-side hop recorded by InsertReply.
type Reply struct {
	Conn  Conn
	VAddr [16]byte
	VPort uint16
	Hop   uint64
}

// replyUnfiled, a bit of a connection's ports word below the key, marks a
// VS/NAT connection installed by connection sync (SyncConn) whose reply
// key no client packet has filed yet: the client-side hop of the master's
// first packet is not in a sync message, so the backup may file one from
// its own route to the client (or none), and the first client packet
// after a takeover files the hop it came by; ReplyFiled clears the mark.
const replyUnfiled = 1 << 8

// ReplyPending reports whether c is a synced VS/NAT connection whose
// reply key no client packet has filed yet (the caller files it with
// InsertReply, then ReplyFiled).
func (c *Conn) ReplyPending() bool { return c.unfiled }

// ReplyFiled clears c's reply mark after its reply key was filed. It
// changes nothing when c's entry has gone.
func (t *Table) ReplyFiled(c *Conn) {
	defer runtime.KeepAlive(t) // see newStore
	slot := uint32(c.ref>>32) - 1
	if slot >= t.conns.slots() {
		return
	}
	e := t.conns.entry(slot)
	gen := c.ref & genMask
	for {
		m := e.meta.Load()
		if status(m) != statusLive || generation(m) != gen {
			return
		}
		p := e.ports.Load()
		if p&replyUnfiled == 0 {
			c.unfiled = false
			return
		}
		if !e.ports.CompareAndSwap(p, p&^replyUnfiled) {
			continue
		}
		// If the slot was reused meanwhile the mark may have been a
		// newer entry's: give it back (a spare mark only makes a client
		// packet file the reply key again).
		if m2 := e.meta.Load(); generation(m2) != gen {
			e.ports.Or(replyUnfiled)
			return
		}
		c.unfiled = false
		return
	}
}

// HasReverse reports whether the table has a reverse index for NAT
// connections (Config.Reverse > 0).
func (t *Table) HasReverse() bool { return t.rev != nil }

// InsertReply files rk, the key of c's replies (CAddr, CPort the
// client's; VAddr, VPort the real server's), pointing at c as Insert
// returned it, with hop, an opaque word the caller wants back with each
// reply. It replaces an older entry for rk. It reports false, changing
// nothing, when the table has no reverse index or the index is full of
// live connections.
func (t *Table) InsertReply(rk *Key, c *Conn, hop uint64) bool {
	defer runtime.KeepAlive(t) // see newStore
	s := t.rev
	if s == nil || c.ref == 0 {
		return false
	}
	w := rk.words()
	b1, b2, tag := s.place(t.seed.hash(&w))
	s.lock(b1, b2)
	defer s.unlock(b1, b2)
	for _, b := range [2]uint32{b1, b2} {
		if v, ok := s.find(b, s.bucket(b).used.Load(), tag, &w); ok {
			s.release(v.slot, v.meta)
			break
		}
	}
	now := t.now()
	for range insertAttempts {
		slot, free := s.freeSlot(b1, b2)
		if free && s.reserve() {
			s.publish(slot, tag, &w, 0, hop, c.ref, None, 0)
			return true
		}
		if !t.reclaimReverse(b1, b2, free, now) {
			return false
		}
	}
	return false
}

// reclaimReverse releases one stale index entry from b1 or b2, or, when
// those buckets have room but the index is at capacity (free), from a few
// buckets further on. The caller holds the latches of b1 and b2; a stale
// entry is released by a CAS on its meta word, so entries elsewhere need
// no latch.
func (t *Table) reclaimReverse(b1, b2 uint32, free bool, now uint64) bool {
	s := t.rev
	if t.reclaimIn(b1, now) || t.reclaimIn(b2, now) {
		return true
	}
	if !free {
		return false
	}
	start := uint32(s.cursor.Add(evictScan) % uint64(s.nb))
	for i := range uint32(evictScan) {
		if t.reclaimIn((start+i)%s.nb, now) {
			return true
		}
	}
	return false
}

// reclaimIn releases the first stale index entry of bucket b.
func (t *Table) reclaimIn(b uint32, now uint64) bool {
	s := t.rev
	used := s.bucket(b).used.Load() & fullMask
	for used != 0 {
		slot := b*bucketSlots + uint32(bits.TrailingZeros32(used))
		used &= used - 1
		if t.staleReverse(slot, now) {
			return true
		}
	}
	return false
}

// staleReverse releases index entry slot if its connection is gone, and
// reports whether it did.
func (t *Table) staleReverse(slot uint32, now uint64) bool {
	e := t.rev.entry(slot)
	m := e.meta.Load()
	if status(m) != statusLive {
		return false
	}
	ref := e.bind.Load()
	if e.meta.Load() != m {
		return false
	}
	if _, ok := t.connAt(ref, now); ok {
		return false
	}
	return t.rev.release(slot, m)
}

// connAt reads the live, unexpired connection entry that ref (slot+1 and
// generation, as in Conn) names, with its virtual address and port.
func (t *Table) connAt(ref, now uint64) (Reply, bool) {
	slot := uint32(ref>>32) - 1
	if slot >= t.conns.slots() {
		return Reply{}, false
	}
	e := t.conns.entry(slot)
	m1 := e.meta.Load()
	if status(m1) != statusLive || generation(m1) != ref&genMask || expired(m1, now) {
		return Reply{}, false
	}
	v0, v1 := e.vaddr[0].Load(), e.vaddr[1].Load()
	ports := e.ports.Load()
	bind := e.bind.Load()
	m2 := e.meta.Load()
	if m1&identityMask != m2&identityMask {
		return Reply{}, false // released meanwhile: the reply has no connection
	}
	var r Reply
	w := keyWords{2: v0, 3: v1, 4: ports & keyMask}
	k := w.key()
	r.VAddr, r.VPort = k.VAddr, k.VPort
	r.Conn = (&view{slot: slot, meta: m2, ports: ports, bind: bind}).conn()
	return r, true
}

// LookupReply finds the NAT connection whose replies carry rk, without a
// lock and without allocating: one lookup in the reverse index and one
// read of the connection's entry.
func (t *Table) LookupReply(rk *Key) (Reply, bool) {
	defer runtime.KeepAlive(t) // see newStore
	s := t.rev
	if s == nil {
		return Reply{}, false
	}
	w := rk.words()
	b1, b2, tag := s.place(t.seed.hash(&w))
	v, ok := s.lookup(b1, b2, tag, &w)
	if !ok {
		return Reply{}, false
	}
	r, ok := t.connAt(v.bind, t.now())
	if !ok {
		return Reply{}, false
	}
	r.Hop = v.since
	return r, true
}

// TouchReply applies one reply packet with event ev to the NAT
// connection c that LookupReply returned: the state moves by tcp_states'
// OUTPUT table and the expiry is refreshed, with one compare-and-swap as
// in Touch. A reply never reopens a connection.
func (t *Table) TouchReply(c *Conn, proto uint8, ev Event) Result {
	return t.touch(c, proto, ev, DirOutput)
}

// SweepReverse releases up to n reverse-index entries whose connections
// are gone, from a rotating cursor; it takes no lock.
func (t *Table) SweepReverse(n int) {
	defer runtime.KeepAlive(t) // see newStore
	if t.rev != nil && n > 0 {
		t.sweepReverse(uint64(n))
	}
}

// sweepReverse releases up to n index entries, from a rotating cursor,
// whose connections are gone.
func (t *Table) sweepReverse(n uint64) {
	s := t.rev
	total := uint64(s.slots())
	n = min(n, total)
	start := t.rsweep.Add(n) - n
	now := t.now()
	for i := range n {
		t.staleReverse(uint32((start+i)%total), now)
	}
}

// ReverseLen is how many reverse-index entries are filed, stale ones
// included.
func (t *Table) ReverseLen() int {
	if t.rev == nil {
		return 0
	}
	return int(t.rev.live.Load())
}

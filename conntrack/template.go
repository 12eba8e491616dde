package conntrack

import (
	"runtime"
	"time"
)

// TemplateRef names a persistence template: its slot plus one in the low
// 24 bits and the low 8 bits of its generation above them, so a stale ref
// to a reused slot is refused (unless the slot was reused a multiple of
// 256 times in between). 0 is no template.
type TemplateRef uint32

func makeTemplateRef(slot uint32, m uint64) TemplateRef {
	return TemplateRef(generation(m)&0xff<<24 | uint64(slot+1))
}

// templateEntry resolves ref to its entry if the ref is well-formed.
func (t *Table) templateEntry(ref TemplateRef) (uint32, *entry, bool) {
	if t.tmpls == nil || ref == 0 {
		return 0, nil, false
	}
	slot := uint32(ref&0xffffff) - 1
	if slot >= t.tmpls.slots() {
		return 0, nil, false
	}
	return slot, t.tmpls.entry(slot), true
}

func (ref TemplateRef) matches(m uint64) bool {
	return generation(m)&0xff == uint64(ref>>24)
}

// A template is expired when nothing holds it (control count 0) and its
// own timeout passed; while connections hold it, it stays.
func templateExpired(m, expiry, now uint64) bool {
	return payload(m) == 0 && now >= expiry
}

// LookupTemplate finds the persistence template for k (CPort 0, CAddr
// already masked, VPort 0 for port-0 services). It takes no lock and never
// returns an expired or deleted template.
func (t *Table) LookupTemplate(k *Key) (dest uint32, ref TemplateRef, ok bool) {
	defer runtime.KeepAlive(t) // see newStore
	if t.tmpls == nil {
		return 0, 0, false
	}
	w := k.words()
	b1, b2, tag := t.tmpls.place(t.seed.hash(&w))
	s := t.tmpls
	u1 := s.bucket(b1).used.Load()
	u2 := s.bucket(b2).used.Load()
	v, found := s.find(b1, u1, tag, &w)
	if !found {
		v, found = s.find(b2, u2, tag, &w)
	}
	if !found || templateExpired(v.meta, v.since, t.now()) {
		return 0, 0, false
	}
	return uint32(v.bind >> 32), makeTemplateRef(v.slot, v.meta), true
}

// Template returns the real server of a template that still exists
// (including one deleted but still holding connections).
func (t *Table) Template(ref TemplateRef) (dest uint32, ok bool) {
	defer runtime.KeepAlive(t) // see newStore
	_, e, ok := t.templateEntry(ref)
	if !ok {
		return 0, false
	}
	m := e.meta.Load()
	st := status(m)
	bind := e.bind.Load()
	if (st != statusLive && st != statusZombie) || !ref.matches(m) || e.meta.Load()&identityMask != m&identityMask {
		return 0, false
	}
	return uint32(bind >> 32), true
}

// InsertTemplate records that clients matching k go to dest, with the
// service's persistence timeout fixed for the template's life (a later
// change of the service's timeout does not reach it, as in IPVS). Its
// timer runs from now; each connection created through it (Insert with
// its ref) re-arms it to that moment plus the timeout, as
// ip_vs_sched_persist does, and nothing else does. If a live template for
// k exists it is returned with Exists and left as it is; the caller reads
// its dest with Template and follows it (another queue chose first). Full
// means the template table has no expired entry to reuse; Invalid means
// timeout is outside 1ms..MaxTimeout.
func (t *Table) InsertTemplate(k *Key, dest uint32, timeout time.Duration) (TemplateRef, InsertResult) {
	defer runtime.KeepAlive(t) // see newStore
	if timeout < time.Millisecond || timeout > MaxTimeout {
		return 0, Invalid
	}
	s := t.tmpls
	if s == nil {
		return 0, Full
	}
	to := uint64(toMillis(timeout))
	w := k.words()
	b1, b2, tag := s.place(t.seed.hash(&w))
	now := t.now()
	s.lock(b1, b2)
	defer s.unlock(b1, b2)
	for _, b := range [2]uint32{b1, b2} {
		v, ok := s.find(b, s.bucket(b).used.Load(), tag, &w)
		if !ok {
			continue
		}
		if !templateExpired(v.meta, v.since, now) {
			return makeTemplateRef(v.slot, v.meta), Exists
		}
		s.release(v.slot, v.meta)
		break
	}
	slot, ok := t.templateRoom(b1, b2, now)
	if !ok {
		return 0, Full
	}
	m := s.publish(slot, tag, &w, 0, now+to, uint64(dest)<<32|to, None, 0)
	if a := t.sync.Load(); a != nil {
		resetSync(a.tmpls, slot, now)
	}
	return makeTemplateRef(slot, m), Inserted
}

// templateRoom finds a free slot and capacity for a template. Live
// templates are never evicted (they carry persistence promises); only
// expired ones are reused, from the key's buckets or a few further on.
func (t *Table) templateRoom(b1, b2 uint32, now uint64) (uint32, bool) {
	s := t.tmpls
	for range insertAttempts {
		slot, free := s.freeSlot(b1, b2)
		if free && s.reserve() {
			return slot, true
		}
		found := false
		scan := func(b uint32) {
			used := s.bucket(b).used.Load() & fullMask
			for i := range uint32(bucketSlots) {
				if found || used&(1<<i) == 0 {
					continue
				}
				_, v, ok := s.snapshot(b*bucketSlots+i, false)
				if ok && templateExpired(v.meta, v.since, now) && s.release(v.slot, v.meta) {
					found = true
				}
			}
		}
		scan(b1)
		scan(b2)
		if !found && free {
			start := uint32(s.cursor.Add(evictScan) % uint64(s.nb))
			for i := range uint32(evictScan) {
				scan((start + i) % s.nb)
			}
		}
		if !found {
			return 0, false
		}
	}
	return 0, false
}

// DeleteTemplate stops ref from matching new connections, as IPVS does
// when a template's real server is removed or quiesced. Connections that
// hold it keep it until they go; the slot is freed with the last of them.
func (t *Table) DeleteTemplate(ref TemplateRef) {
	defer runtime.KeepAlive(t) // see newStore
	slot, e, ok := t.templateEntry(ref)
	if !ok {
		return
	}
	for {
		m := e.meta.Load()
		if status(m) != statusLive || !ref.matches(m) {
			return
		}
		if payload(m) == 0 {
			if t.tmpls.release(slot, m) {
				return
			}
			continue
		}
		if e.meta.CompareAndSwap(m, makeMeta(generation(m), statusZombie, None, payload(m))) {
			return
		}
	}
}

// ArmTemplate re-arms ref's timer for a packet that the template decided
// without a connection being kept: a datagram of a one-packet service
// (IPVS's IP_VS_CONN_F_ONE_PACKET). ip_vs_sched_persist makes such a
// connection under the template (ip_vs_control_add), re-arms the
// template's timer (ip_vs_conn_put), and the connection expires once its
// packet is sent (ip_vs_conn_put again, ip_vs_control_del), leaving the
// template with its timer at now plus its timeout and the connections it
// controls as before. ArmTemplate does exactly that: what Insert does to
// the template for a connection, followed at once by what the
// connection's expiry does. It reports false if the template expired or
// was deleted since it was looked up.
func (t *Table) ArmTemplate(ref TemplateRef) bool {
	defer runtime.KeepAlive(t) // see newStore
	now := t.now()
	if !t.getTemplate(ref, now) {
		return false
	}
	t.putTemplate(ref, now)
	return true
}

// rearmMillis is how long ip_vs_conn_expire re-arms the timer of a
// template that still controls connections when it fires (60 s); from
// then on that is also the template's timeout.
const rearmMillis = 60_000

// getTemplate adds a controlling connection to ref and re-arms its timer
// to now plus its timeout, like ip_vs_control_add and ip_vs_conn_put in
// ip_vs_sched_persist. It fails if the template expired or was deleted
// since the caller looked it up. A timer that ran out while the template
// controlled connections fired then, in the kernel, and re-armed itself
// with 60 s, which became the template's timeout; that is applied here.
func (t *Table) getTemplate(ref TemplateRef, now uint64) bool {
	_, e, ok := t.templateEntry(ref)
	if !ok {
		return false
	}
	for {
		m := e.meta.Load()
		since := e.since.Load()
		if status(m) != statusLive || !ref.matches(m) || templateExpired(m, since, now) {
			return false
		}
		if e.meta.CompareAndSwap(m, m+1) {
			bind := e.bind.Load()
			to := uint64(uint32(bind))
			if payload(m) > 0 && since <= now {
				to = rearmMillis
				e.bind.Store(bind&^0xffff_ffff | to)
			}
			e.since.Store(now + to)
			return true
		}
	}
}

// putTemplate drops one controlling connection from ref, as
// ip_vs_control_del: it does not touch the template's timer. at is when
// the connection went. If the template's timer ran out before that while
// it still controlled connections, it fired and re-armed itself every 60
// s (ip_vs_conn_expire's expire_later); the timer is brought to the first
// of those firings not before at, so that a template left with no
// connection expires when the kernel's would. A deleted template is
// freed with its last connection.
func (t *Table) putTemplate(ref TemplateRef, at uint64) {
	slot, e, ok := t.templateEntry(ref)
	if !ok {
		return
	}
	for {
		m := e.meta.Load()
		st := status(m)
		if (st != statusLive && st != statusZombie) || !ref.matches(m) || payload(m) == 0 {
			return
		}
		if payload(m) == 1 && st == statusZombie {
			if t.tmpls.release(slot, m) {
				return
			}
			continue
		}
		if since := e.since.Load(); since < at {
			e.since.Store(firing(since, at))
			if bind := e.bind.Load(); uint32(bind) != rearmMillis {
				e.bind.Store(bind&^0xffff_ffff | rearmMillis)
			}
		}
		if e.meta.CompareAndSwap(m, m-1) {
			return
		}
	}
}

// firing returns the first time not before at at which a timer that fired
// at since and re-armed itself every rearmMillis fires.
func firing(since, at uint64) uint64 {
	if at <= since {
		return since
	}
	k := (at - since + rearmMillis - 1) / rearmMillis
	return since + k*rearmMillis
}

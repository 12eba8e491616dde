package dataplane

import "math/bits"

// svcKey is one (address, port, protocol) a service answers on. Port 0
// stands for every port.
type svcKey struct {
	addr  [4]byte
	port  uint16
	proto uint8
}

// svcTable maps service keys to service indexes: a flat open-addressing
// hash table with linear probing, filled while a snapshot is built and
// only read afterwards. A key packs into one word (address, protocol and
// port, plus a high bit so that no packed key is zero), which is what a
// slot stores; a zero word marks an empty slot. The table doubles whenever
// it would be more than half full, so a probe sequence stays short and
// always ends at an empty slot. Lookups touch one or two adjacent slots in
// the common case and allocate nothing. The zero value is an empty table.
type svcTable struct {
	slots []svcSlot // len is zero or a power of two
	shift uint8     // 64 - log2(len(slots))
	n     int       // keys stored
}

type svcSlot struct {
	key uint64 // packed key; 0: empty
	svc int32
}

const svcKeyPresent = 1 << 63

func packSvcKey(addr [4]byte, proto uint8, port uint16) uint64 {
	a := uint64(addr[0])<<24 | uint64(addr[1])<<16 | uint64(addr[2])<<8 | uint64(addr[3])
	return svcKeyPresent | a<<24 | uint64(proto)<<16 | uint64(port)
}

func unpackSvcKey(k uint64) svcKey {
	a := uint32(k >> 24)
	return svcKey{addr: [4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}, port: uint16(k), proto: uint8(k >> 16)}
}

// home is the first slot a packed key probes: Fibonacci hashing, the top
// bits of the key times 2^64 over the golden ratio.
func (t *svcTable) home(k uint64) uint64 {
	return (k * 0x9e3779b97f4a7c15) >> t.shift
}

// find returns the service index stored under packed key k.
func (t *svcTable) find(k uint64) (int32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == k {
			return s.svc, true
		}
		if s.key == 0 {
			return 0, false
		}
	}
}

// get returns the service index stored under k.
func (t *svcTable) get(k svcKey) (int32, bool) {
	return t.find(packSvcKey(k.addr, k.proto, k.port))
}

// set stores svc under k, replacing what was there.
func (t *svcTable) set(k svcKey, svc int32) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	if t.put(packSvcKey(k.addr, k.proto, k.port), svc) {
		t.n++
	}
}

// put stores svc under packed key k and reports whether k is new. The
// table must have an empty slot.
func (t *svcTable) put(k uint64, svc int32) bool {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == k {
			s.svc = svc
			return false
		}
		if s.key == 0 {
			*s = svcSlot{k, svc}
			return true
		}
	}
}

// grow doubles the table (to 8 slots first) and reinserts every key.
func (t *svcTable) grow() {
	old := t.slots
	size := 8
	if len(old) > 0 {
		size = 2 * len(old)
	}
	t.slots = make([]svcSlot, size)
	t.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	for _, s := range old {
		if s.key != 0 {
			t.put(s.key, s.svc)
		}
	}
}

// len returns how many keys the table holds.
func (t *svcTable) len() int { return t.n }

// each calls f for every key and its service index, in no set order.
func (t *svcTable) each(f func(k svcKey, svc int32)) {
	for _, s := range t.slots {
		if s.key != 0 {
			f(unpackSvcKey(s.key), s.svc)
		}
	}
}

// lookup finds the service for a destination, exact port first, then a
// port-0 (all ports) service.
func (t *svcTable) lookup(addr [4]byte, proto uint8, port uint16) (int32, bool) {
	return t.lookupPacked(packSvcKey(addr, proto, port))
}

// lookupPacked is lookup for a key packSvcKey packed.
func (t *svcTable) lookupPacked(k uint64) (int32, bool) {
	if i, ok := t.find(k); ok {
		return i, true
	}
	return t.find(k &^ 0xffff)
}

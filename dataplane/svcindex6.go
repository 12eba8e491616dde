package dataplane

import (
	"encoding/binary"
	"math/bits"
)

// svcKey6 is one (IPv6 address, port, protocol) an IPv6 service answers
// on. Port 0 stands for every port.
type svcKey6 struct {
	addr  [16]byte
	port  uint16
	proto uint8
}

// svcTable6 is svcTable for IPv6 services: the same flat open-addressing
// table with linear probing, filled while a snapshot is built and only read
// afterwards, with a slot holding the address as two words and the
// protocol and port in a third (its high bit set, so that a zero third
// word marks an empty slot). The zero value is an empty table.
type svcTable6 struct {
	slots []svcSlot6 // len is zero or a power of two
	shift uint8      // 64 - log2(len(slots))
	n     int
}

type svcSlot6 struct {
	hi, lo uint64 // the address, big-endian halves
	meta   uint32 // svcKeyPresent6 | proto<<16 | port; 0: empty
	svc    int32
}

const svcKeyPresent6 = 1 << 31

func packMeta6(proto uint8, port uint16) uint32 {
	return svcKeyPresent6 | uint32(proto)<<16 | uint32(port)
}

// home is the first slot a key probes: the words mixed, then Fibonacci
// hashing as svcTable's.
func (t *svcTable6) home(hi, lo uint64, meta uint32) uint64 {
	h := hi ^ bits.RotateLeft64(lo, 29) ^ uint64(meta)<<7
	return (h * 0x9e3779b97f4a7c15) >> t.shift
}

// find returns the service index stored under the key.
func (t *svcTable6) find(hi, lo uint64, meta uint32) (int32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(hi, lo, meta); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.meta == meta && s.hi == hi && s.lo == lo {
			return s.svc, true
		}
		if s.meta == 0 {
			return 0, false
		}
	}
}

func split6(a *[16]byte) (hi, lo uint64) {
	return binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
}

// get returns the service index stored under k.
func (t *svcTable6) get(k svcKey6) (int32, bool) {
	hi, lo := split6(&k.addr)
	return t.find(hi, lo, packMeta6(k.proto, k.port))
}

// set stores svc under k, replacing what was there.
func (t *svcTable6) set(k svcKey6, svc int32) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	hi, lo := split6(&k.addr)
	if t.put(svcSlot6{hi, lo, packMeta6(k.proto, k.port), svc}) {
		t.n++
	}
}

// put stores e and reports whether its key is new. The table must have an
// empty slot.
func (t *svcTable6) put(e svcSlot6) bool {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(e.hi, e.lo, e.meta); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.meta == e.meta && s.hi == e.hi && s.lo == e.lo {
			s.svc = e.svc
			return false
		}
		if s.meta == 0 {
			*s = e
			return true
		}
	}
}

// grow doubles the table (to 8 slots first) and reinserts every key.
func (t *svcTable6) grow() {
	old := t.slots
	size := 8
	if len(old) > 0 {
		size = 2 * len(old)
	}
	t.slots = make([]svcSlot6, size)
	t.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	for _, s := range old {
		if s.meta != 0 {
			t.put(s)
		}
	}
}

// len returns how many keys the table holds.
func (t *svcTable6) len() int { return t.n }

// each calls f for every key and its service index, in no set order.
func (t *svcTable6) each(f func(k svcKey6, svc int32)) {
	for _, s := range t.slots {
		if s.meta != 0 {
			var k svcKey6
			binary.BigEndian.PutUint64(k.addr[:8], s.hi)
			binary.BigEndian.PutUint64(k.addr[8:], s.lo)
			k.proto, k.port = uint8(s.meta>>16), uint16(s.meta)
			f(k, s.svc)
		}
	}
}

// lookup finds the service for an IPv6 destination, exact port first, then
// a port-0 (all ports) service.
func (t *svcTable6) lookup(addr *[16]byte, proto uint8, port uint16) (int32, bool) {
	hi, lo := split6(addr)
	if i, ok := t.find(hi, lo, packMeta6(proto, port)); ok {
		return i, true
	}
	return t.find(hi, lo, packMeta6(proto, 0))
}

package conntrack

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// slackOf is the slack rule's tolerance for timeout d, written out apart
// from the table's code: d/64, in whole milliseconds.
func slackOf(d time.Duration) time.Duration {
	return d / time.Millisecond / 64 * time.Millisecond
}

// afterPacket is the slack rule in table milliseconds: the expiry a
// connection stored as exp has after a packet at now that leaves it in a
// state with timeout to, same telling whether the state stayed as it was.
func afterPacket(exp, now, to uint64, same bool) uint64 {
	if same && now+to <= exp && exp <= now+to+to/64 {
		return exp
	}
	return now + to + to/64
}

// lifetime is how long an entry lives after a packet that writes it:
// its timeout plus the slack.
func lifetime(d time.Duration) time.Duration { return d + slackOf(d) }

// countHooks is the reference accounting: per-dest active and inactive
// counts, as the scheduler keeps them.
type countHooks struct {
	active, inactive [64]atomic.Int64
}

func (h *countHooks) slot(dest uint32, active bool) *atomic.Int64 {
	if active {
		return &h.active[dest%64]
	}
	return &h.inactive[dest%64]
}

func (h *countHooks) Bind(dest uint32, active bool) { h.slot(dest, active).Add(1) }
func (h *countHooks) Transfer(dest uint32, toActive bool) {
	h.slot(dest, !toActive).Add(-1)
	h.slot(dest, toActive).Add(1)
}
func (h *countHooks) Unbind(dest uint32, active bool) { h.slot(dest, active).Add(-1) }

// v4Key builds a TCP or UDP key from 198.18.0.0/15 client addresses.
func v4Key(proto uint8, client uint32, cport, vport uint16) Key {
	a := netip.AddrFrom4([4]byte{198, 18 + byte(client>>16&1), byte(client >> 8), byte(client)})
	v := netip.AddrFrom4([4]byte{198, 19, 255, 1})
	return Key{CAddr: a.As16(), VAddr: v.As16(), CPort: cport, VPort: vport, Proto: proto}
}

// v6Key builds a key from 2001:2::/48 with n in the low 64 bits.
func v6Key(proto uint8, n uint64, vport uint16) Key {
	var k Key
	copy(k.CAddr[:], []byte{0x20, 0x01, 0x00, 0x02})
	for i := range 8 {
		k.CAddr[15-i] = byte(n >> (8 * i))
	}
	copy(k.VAddr[:], []byte{0x20, 0x01, 0x00, 0x02, 0, 0, 0, 1})
	k.VAddr[15] = 1
	k.CPort, k.VPort, k.Proto = uint16(1024+n%60000), vport, proto
	return k
}

func newTestTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	tbl, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(tbl.Close)
	return tbl
}

// forceState puts c's entry into state s with a fresh expiry (as a
// packet that changes the state writes it), for states
// the input-only table cannot reach from NONE (LISTEN, SYN_SENT, ...).
func forceState(t *testing.T, tbl *Table, c *Conn, s State) {
	t.Helper()
	e := tbl.conns.entry(uint32(c.ref>>32) - 1)
	m := e.meta.Load()
	now := tbl.now()
	to := tbl.timeouts.of(s)
	if !e.meta.CompareAndSwap(m, slackedMeta(generation(m), s, now+to+slack(to))) {
		t.Fatal("forceState: entry changed")
	}
	tbl.conns.lowerDue(uint32(c.ref>>32)-1, now+to+slack(to))
	if m := stateOf(m); m.Active() != s.Active() {
		tbl.hooks.Transfer(c.Dest, s.Active())
	}
	c.State = s
}

// checkCounts compares the hooks' counts with a recount of every live
// entry, including expired ones not yet swept: the hooks hear of an
// expiry only when the entry is released.
func checkCounts(t testing.TB, tbl *Table, h *countHooks) {
	t.Helper()
	var active, inactive [64]int64
	for i := range tbl.conns.slots() {
		_, v, ok := tbl.conns.snapshot(i, false)
		if !ok {
			continue
		}
		c := v.conn()
		if c.State.Active() {
			active[c.Dest%64]++
		} else {
			inactive[c.Dest%64]++
		}
	}
	for d := range 64 {
		if a, i := h.active[d].Load(), h.inactive[d].Load(); a != active[d] || i != inactive[d] {
			t.Fatalf("dest %d: hooks active/inactive = %d/%d, table = %d/%d", d, a, i, active[d], inactive[d])
		}
	}
}

package conntrack

import (
	"runtime"
	"sync/atomic"
)

// Sequence adjustment for the SYN proxy (dataplane/synproxy.go).
//
// A proxied VS/NAT connection is made when the client's ACK returns a
// valid SYN cookie, before the real server has answered; the director
// then opens the connection to the server itself. Until the server's
// SYN-ACK comes the connection is pending, and the director must know
// the cookie it sent the client, the client's initial sequence number
// and the window of the client's ACK; afterwards, only the difference
// between the two initial sequence numbers of the server's side (the
// cookie the client saw, the server's own), which every packet's
// sequence or acknowledgement number is shifted by.
//
// These live in an array beside the connection entries, one pair of
// words per slot, allocated with the reverse index (only NAT connections
// are proxied). The first word carries the connection's generation, so a
// value left by an earlier connection in the same slot reads as absent
// and never needs clearing.

// Seq is a proxied connection's sequence state.
type Seq struct {
	// Pending: the real server has not answered the director's SYN yet.
	Pending bool
	// Window is the receive window of the client's ACK, which the
	// director's ACK to the server repeats (pending only).
	Window uint16
	// Cookie is the initial sequence number the client received (the
	// SYN cookie); ClientISN the client's own (pending only).
	Cookie, ClientISN uint32
	// Delta is added to the server's sequence numbers on the way to the
	// client and taken from the client's acknowledgement numbers on the
	// way to the server (established only): the cookie minus the
	// server's initial sequence number.
	Delta uint32
}

// seqSlot is one slot's sequence state: hdr is 1<<40 | generation<<20 |
// pending<<16 | window, val the cookie and client ISN (pending) or the
// delta. hdr is written last and read first and again after val.
type seqSlot struct {
	hdr atomic.Uint64
	val atomic.Uint64
}

const (
	seqSet     = 1 << 40
	seqGenSh   = 20
	seqPending = 1 << 16
)

// SetSeq records c's sequence state. It reports false when the table has
// no room for it (no reverse index) or c is not a connection of this
// table.
func (t *Table) SetSeq(c *Conn, s Seq) bool {
	defer runtime.KeepAlive(t) // see newStore
	slot := uint32(c.ref>>32) - 1
	if slot >= uint32(len(t.seq)) {
		return false
	}
	hdr := uint64(seqSet) | (c.ref&genMask)<<seqGenSh
	val := uint64(s.Delta)
	if s.Pending {
		hdr |= seqPending | uint64(s.Window)
		val = uint64(s.Cookie)<<32 | uint64(s.ClientISN)
	}
	e := &t.seq[slot]
	e.hdr.Store(0) // a reader between the two stores sees nothing
	e.val.Store(val)
	e.hdr.Store(hdr)
	return true
}

// SeqOf returns c's sequence state, if SetSeq recorded one for this
// connection (not for an earlier one in the same slot).
func (t *Table) SeqOf(c *Conn) (Seq, bool) {
	defer runtime.KeepAlive(t) // see newStore
	slot := uint32(c.ref>>32) - 1
	if slot >= uint32(len(t.seq)) {
		return Seq{}, false
	}
	e := &t.seq[slot]
	for {
		hdr := e.hdr.Load()
		val := e.val.Load()
		if e.hdr.Load() != hdr {
			continue
		}
		if hdr&seqSet == 0 || hdr>>seqGenSh&genMask != c.ref&genMask {
			return Seq{}, false
		}
		if hdr&seqPending == 0 {
			return Seq{Delta: uint32(val)}, true
		}
		return Seq{Pending: true, Window: uint16(hdr), Cookie: uint32(val >> 32), ClientISN: uint32(val)}, true
	}
}

// ID identifies c's lifetime: its slot and generation. Two live
// connections never share one, and a connection that replaced c in its
// slot has another.
func (c *Conn) ID() uint64 { return c.ref }

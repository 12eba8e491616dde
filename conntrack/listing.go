package conntrack

import (
	"runtime"
	"time"
)

// Range calls fn for every live connection and then every live template,
// for `afvsadm -Lc`, until fn returns false. It reads the table while
// workers use it, without stopping them: each entry it reports is
// consistent in itself, but the whole listing is not one instant's view.
// expiresIn is, for a connection, the time left before its exact expiry
// as of the last write (exactExpiry: the stored expiry less its slack, so
// that a connection just refreshed shows its full timeout, as IPVS's
// does after a packet; it may then show up to the slack less than the
// kernel's timer would, and it expires up to the slack after the time
// shown); for a template, the time left before it expires or, when it
// controls connections, before its timer next fires. A template
// is reported with its Key (CPort 0) and Conn.State None; Touch on that
// Conn reports Gone.
func (t *Table) Range(fn func(k Key, c Conn, expiresIn time.Duration, template bool) bool) {
	defer runtime.KeepAlive(t) // see newStore
	now := t.now()
	left := func(at uint64) time.Duration {
		if at <= now {
			return 0
		}
		return time.Duration(at-now) * time.Millisecond
	}
	for i := range t.conns.slots() {
		w, v, ok := t.conns.snapshot(i, false)
		if !ok || expired(v.meta, now) {
			continue
		}
		if !fn(w.key(), v.conn(), left(t.exactExpiry(v.meta)), false) {
			return
		}
	}
	if t.tmpls == nil {
		return
	}
	for i := range t.tmpls.slots() {
		w, v, ok := t.tmpls.snapshot(i, false)
		if !ok || templateExpired(v.meta, v.since, now) {
			continue
		}
		c := Conn{Dest: uint32(v.bind >> 32), State: None}
		at := v.since
		if payload(v.meta) > 0 {
			// Its timer re-arms itself every 60 s while it controls
			// connections.
			at = firing(v.since, now+1)
		}
		if !fn(w.key(), c, left(at), true) {
			return
		}
	}
}

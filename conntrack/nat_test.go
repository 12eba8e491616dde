package conntrack

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The INPUT and OUTPUT halves of mainline ip_vs_proto_tcp.c's tcp_states,
// typed in from the kernel source independently of the tables in
// state.go, so a slip in either shows as a failing cell.
const kernelInput = `
syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR
fin | CL | CW | SS | TW | TW | TW | CL | CW | LA | LI | TW
ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES
rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | SR`

const kernelOutput = `
syn | SS | ES | SS | SR | SS | SS | SS | SS | SS | LI | SR
fin | TW | FW | SS | TW | FW | TW | CL | TW | LA | LI | TW
ack | ES | ES | SS | ES | FW | TW | CL | CW | LA | ES | ES
rst | CL | CL | SS | CL | CL | TW | CL | CL | CL | CL | CL`

func TestNextDirEveryCell(t *testing.T) {
	columns := []State{None, Established, SynSent, SynRecv, FinWait, TimeWait, Close, CloseWait, LastAck, Listen, SynAck}
	events := map[string]Event{"syn": EvSyn, "fin": EvFin, "ack": EvAck, "rst": EvRst}
	for _, tc := range []struct {
		name  string
		dir   Dir
		table string
	}{{"input", DirInput, kernelInput}, {"output", DirOutput, kernelOutput}, {"input-only", DirInputOnly, issueTable}} {
		cells := 0
		for _, line := range strings.Split(strings.TrimSpace(tc.table), "\n") {
			f := strings.Split(line, "|")
			ev := events[strings.TrimSpace(f[0])]
			for i, from := range columns {
				want := abbrev[strings.TrimSpace(f[i+1])]
				if got := NextDir(from, ev, tc.dir); got != want {
					t.Errorf("%s: NextDir(%v, %s) = %v, want %v", tc.name, from, strings.TrimSpace(f[0]), got, want)
				}
				cells++
			}
		}
		if cells != 44 {
			t.Fatalf("%s: checked %d cells, want 44", tc.name, cells)
		}
	}
	// set_tcp_state: a TCP packet with none of the four flags moves a NAT
	// connection to CLOSE; the input-only (DR) path leaves it alone.
	if got := NextDir(Established, EvNone, DirOutput); got != Close {
		t.Errorf("flagless reply on ESTABLISHED: %v, want CLOSE", got)
	}
	if got := NextDir(Established, EvNone, DirInputOnly); got != Established {
		t.Errorf("flagless DR packet on ESTABLISHED: %v, want it unchanged", got)
	}
}

// replyKey is the key of the replies of the connection k when it is
// served by rip:rport.
func replyKey(k Key, rip netip.Addr, rport uint16) Key {
	return Key{CAddr: k.CAddr, CPort: k.CPort, VAddr: rip.As16(), VPort: rport, Proto: k.Proto}
}

// TestNATHandshakeAndTimeouts walks a VS/NAT connection through a whole
// TCP life from both sides: the server's SYN-ACK (a SYN event in the
// OUTPUT table) keeps SYN_RECV, the client's ACK makes it ESTABLISHED, a
// client FIN is CLOSE_WAIT (INPUT, not the input-only FIN_WAIT), the
// server's FIN then TIME_WAIT; each state's timeout applies, and the
// active/inactive counts follow.
func TestNATHandshakeAndTimeouts(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 64, Reverse: 64, Clock: clk, Hooks: h})
	k := v4Key(ProtoTCP, 7, 40000, 80)
	rip := netip.MustParseAddr("198.18.2.11")
	rk := replyKey(k, rip, 8080)
	c, r := tbl.Insert(&k, 3, FwdMasq, 0, EvSyn)
	if r != Inserted || c.State != SynRecv {
		t.Fatalf("insert: %v %v", r, c.State)
	}
	if !tbl.InsertReply(&rk, &c, 0xabc) {
		t.Fatal("InsertReply failed")
	}
	steps := []struct {
		reply bool
		ev    Event
		want  State
	}{
		{true, EvSyn, SynRecv},      // SYN-ACK
		{false, EvAck, Established}, // handshake done
		{true, EvAck, Established},  // data
		{false, EvFin, CloseWait},   // client closes first
		{true, EvFin, TimeWait},     // server's FIN
		{false, EvAck, TimeWait},
	}
	dt := DefaultTimeouts()
	def := dt.byState()
	for i, s := range steps {
		var got Conn
		var res Result
		if s.reply {
			rp, ok := tbl.LookupReply(&rk)
			if !ok {
				t.Fatalf("step %d: reply not found", i)
			}
			if rp.Hop != 0xabc || rp.VAddr != k.VAddr || rp.VPort != k.VPort || rp.Conn.Dest != 3 {
				t.Fatalf("step %d: reply %+v", i, rp)
			}
			got = rp.Conn
			res = tbl.TouchReply(&got, ProtoTCP, s.ev)
		} else {
			var ok bool
			if got, ok = tbl.Lookup(&k); !ok {
				t.Fatalf("step %d: lookup failed", i)
			}
			res = tbl.Touch(&got, &k, s.ev)
		}
		if res != Hit || got.State != s.want {
			t.Fatalf("step %d (%+v): %v %v, want hit %v", i, s, res, got.State, s.want)
		}
		active := int64(0)
		if s.want.Active() {
			active = 1
		}
		if a, in := h.active[3].Load(), h.inactive[3].Load(); a != active || in != 1-active {
			t.Fatalf("step %d: active/inactive %d/%d", i, a, in)
		}
		// The state's own timeout plus its slack (the step changed the
		// state, so it wrote): alive 1 ms before, gone at it.
		left := lifetime(def[s.want]) - time.Millisecond
		if s.want == TimeWait && i == len(steps)-1 {
			clk.Advance(left)
			if _, ok := tbl.LookupReply(&rk); !ok {
				t.Fatalf("TIME_WAIT gone before its timeout")
			}
			clk.Advance(time.Millisecond)
			if _, ok := tbl.LookupReply(&rk); ok {
				t.Fatalf("TIME_WAIT still found after its %v timeout", def[s.want])
			}
		}
	}
}

// TestReplyNeverReopens: a SYN from the server side on TIME_WAIT moves by
// the OUTPUT table (SYN_SENT); only a client SYN may reopen.
func TestReplyNeverReopens(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 64, Reverse: 64, Clock: &ManualClock{}})
	k := v4Key(ProtoTCP, 1, 1000, 80)
	rk := replyKey(k, netip.MustParseAddr("198.18.2.11"), 80)
	c, _ := tbl.Insert(&k, 1, FwdMasq, 0, EvSyn)
	tbl.InsertReply(&rk, &c, 0)
	forceState(t, tbl, &c, TimeWait)
	rp, _ := tbl.LookupReply(&rk)
	if res := tbl.TouchReply(&rp.Conn, ProtoTCP, EvSyn); res != Hit || rp.Conn.State != SynSent {
		t.Fatalf("server SYN on TIME_WAIT: %v %v, want hit SYN_SENT", res, rp.Conn.State)
	}
}

// TestReplyIndexFollowsTheConnection: a reply key answers only while its
// connection lives; a reused client port gets a new connection whose
// replies find it; stale index entries are reclaimed, so a full index of
// dead connections takes new ones; a full index of live ones refuses.
func TestReplyIndexFollowsTheConnection(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 64, Reverse: 16, Clock: clk})
	rip := netip.MustParseAddr("198.18.2.11")
	k := v4Key(ProtoUDP, 1, 1000, 53)
	rk := replyKey(k, rip, 5353)
	c, _ := tbl.Insert(&k, 1, FwdMasq, 0, EvNone)
	tbl.InsertReply(&rk, &c, 1)
	clk.Advance(lifetime(DefaultTimeouts().UDP))
	if _, ok := tbl.LookupReply(&rk); ok {
		t.Fatal("reply of an expired connection found")
	}
	c2, r := tbl.Insert(&k, 2, FwdMasq, 0, EvNone)
	if r != Inserted {
		t.Fatalf("re-insert: %v", r)
	}
	if !tbl.InsertReply(&rk, &c2, 2) {
		t.Fatal("InsertReply over a stale entry failed")
	}
	if rp, ok := tbl.LookupReply(&rk); !ok || rp.Conn.Dest != 2 || rp.Hop != 2 {
		t.Fatalf("reply after reuse: %+v %v, want dest 2 hop 2", rp, ok)
	}
	if n := tbl.ReverseLen(); n != 1 {
		t.Fatalf("index holds %d entries, want 1 (the old one replaced)", n)
	}
	// Fill the index with live connections: the 17th is refused.
	var keys []Key
	for i := range uint32(16) {
		ki := v4Key(ProtoUDP, 100+i, 2000, 53)
		keys = append(keys, ki)
	}
	n := 1
	for _, ki := range keys {
		ci, _ := tbl.Insert(&ki, 1, FwdMasq, 0, EvNone)
		rki := replyKey(ki, rip, 5353)
		if tbl.InsertReply(&rki, &ci, 0) {
			n++
		}
	}
	if n != 16 || tbl.ReverseLen() != 16 {
		t.Fatalf("filed %d (index %d), want 16: the index's capacity", n, tbl.ReverseLen())
	}
	// Once they expire, new ones take their place, and Sweep clears the rest.
	clk.Advance(lifetime(DefaultTimeouts().UDP))
	k3 := v4Key(ProtoUDP, 999, 3000, 53)
	c3, _ := tbl.Insert(&k3, 1, FwdMasq, 0, EvNone)
	rk3 := replyKey(k3, rip, 5353)
	if !tbl.InsertReply(&rk3, &c3, 0) {
		t.Fatal("InsertReply into an index of dead connections failed")
	}
	tbl.Sweep(tbl.Slots())
	if got := tbl.ReverseLen(); got != 1 {
		t.Fatalf("index after Sweep holds %d, want 1", got)
	}
	plain := newTestTable(t, Config{Capacity: 8})
	if plain.InsertReply(&rk3, &c3, 0) || plain.HasReverse() {
		t.Fatal("a table without an index filed a reply key")
	}
	if _, ok := plain.LookupReply(&rk3); ok {
		t.Fatal("a table without an index found a reply")
	}
}

// TestNATModel runs random client and reply packets of a few NAT
// connections against a model that applies IPVS's INPUT and OUTPUT
// tables, and compares states and active/inactive counts.
func TestNATModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clk := &ManualClock{}
		h := &countHooks{}
		tbl, err := New(Config{Capacity: 100, Reverse: 100, Clock: clk, Hooks: h})
		if err != nil {
			rt.Fatal(err)
		}
		defer tbl.Close()
		rip := netip.MustParseAddr("198.18.2.11")
		type mc struct {
			state  State
			expiry uint64
		}
		var now uint64
		m := map[Key]*mc{}
		var pool []Key
		for i := range uint32(3) {
			pool = append(pool, v4Key(ProtoTCP, i, 1000, 80))
		}
		genKey := rapid.SampledFrom(pool)
		genEv := rapid.SampledFrom([]Event{EvNone, EvSyn, EvFin, EvAck, EvRst})
		dt := DefaultTimeouts()
		timeouts := dt.byState()
		live := func(k Key) (*mc, bool) {
			c, ok := m[k]
			return c, ok && now < c.expiry
		}
		rt.Repeat(map[string]func(*rapid.T){
			"syn": func(rt *rapid.T) {
				k := genKey.Draw(rt, "key")
				if _, ok := live(k); ok {
					return
				}
				c, r := tbl.Insert(&k, 1, FwdMasq, 0, EvSyn)
				if r != Inserted {
					rt.Fatalf("insert %v: %v", k, r)
				}
				rk := replyKey(k, rip, 8080)
				if !tbl.InsertReply(&rk, &c, 0) {
					rt.Fatal("InsertReply failed")
				}
				m[k] = &mc{SynRecv, now + uint64(lifetime(timeouts[SynRecv])/time.Millisecond)}
			},
			"in": func(rt *rapid.T) {
				k := genKey.Draw(rt, "key")
				ev := genEv.Draw(rt, "ev")
				c, ok := tbl.Lookup(&k)
				want, mok := live(k)
				if ok != mok {
					rt.Fatalf("lookup %v: %v, model %v", k, ok, mok)
				}
				if !ok {
					return
				}
				res := tbl.Touch(&c, &k, ev)
				if ev == EvSyn && (want.state == TimeWait || want.state == Close) {
					if res != Reopen {
						rt.Fatalf("SYN on %v: %v, want reopen", want.state, res)
					}
					tbl.Retire(&c)
					delete(m, k)
					return
				}
				ns := NextDir(want.state, ev, DirInput)
				want.expiry = afterPacket(want.expiry, now, uint64(timeouts[ns]/time.Millisecond), ns == want.state)
				want.state = ns
				if res != Hit || c.State != want.state {
					rt.Fatalf("in %v %d: %v %v, want %v", k, ev, res, c.State, want.state)
				}
			},
			"out": func(rt *rapid.T) {
				k := genKey.Draw(rt, "key")
				ev := genEv.Draw(rt, "ev")
				rk := replyKey(k, rip, 8080)
				rp, ok := tbl.LookupReply(&rk)
				want, mok := live(k)
				if ok != mok {
					rt.Fatalf("reply lookup %v: %v, model %v", k, ok, mok)
				}
				if !ok {
					return
				}
				res := tbl.TouchReply(&rp.Conn, ProtoTCP, ev)
				ns := NextDir(want.state, ev, DirOutput)
				want.expiry = afterPacket(want.expiry, now, uint64(timeouts[ns]/time.Millisecond), ns == want.state)
				want.state = ns
				if res != Hit || rp.Conn.State != want.state {
					rt.Fatalf("out %v %d: %v %v, want %v", k, ev, res, rp.Conn.State, want.state)
				}
			},
			"advance": func(rt *rapid.T) {
				d := rapid.SampledFrom([]time.Duration{time.Second, 10 * time.Second, 60 * time.Second}).Draw(rt, "d")
				clk.Advance(d)
				now += uint64(d / time.Millisecond)
			},
			"": func(rt *rapid.T) {
				var a, in int64
				for _, c := range m { // expired, unswept entries still count
					if c.state.Active() {
						a++
					} else {
						in++
					}
				}
				if h.active[1].Load() != a || h.inactive[1].Load() != in {
					rt.Fatalf("hooks %d/%d, model %d/%d", h.active[1].Load(), h.inactive[1].Load(), a, in)
				}
			},
		})
	})
}

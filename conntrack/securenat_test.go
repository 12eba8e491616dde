package conntrack

import (
	"net/netip"
	"strings"
	"testing"
)

// The INPUT and OUTPUT halves of mainline ip_vs_proto_tcp.c's
// tcp_states_dos, typed in from the kernel source independently of the
// tables in defense.go. The NONE column of the ack row keeps the
// ESTABLISHED of kernelInput (the table AFVS follows for tcp_states).
const kernelDosInput = `
syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SA
fin | CL | CW | SS | TW | TW | TW | CL | CW | LA | LI | SA
ack | ES | ES | SS | SR | FW | TW | CL | CW | CL | LI | SA
rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL`

const kernelDosOutput = `
syn | SS | ES | SS | SA | SS | SS | SS | SS | SS | LI | SA
fin | TW | FW | SS | TW | FW | TW | CL | TW | LA | LI | TW
ack | ES | ES | SS | ES | FW | TW | CL | CW | LA | ES | ES
rst | CL | CL | SS | CL | CL | TW | CL | CL | CL | CL | CL`

const kernelDosInputOnly = `
syn | SA | ES | ES | SR | SA | SA | SA | SA | SA | SA | SA
fin | CL | FW | SS | TW | FW | TW | CL | CW | LA | LI | TW
ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES
rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL`

// dosModel is the kernel's set_tcp_state over the typed-in tables: the
// table for the packet's direction, CLOSE for a packet with none of the
// four flags in the NAT directions.
func dosModel(t *testing.T) func(State, Event, Dir) State {
	t.Helper()
	columns := []State{None, Established, SynSent, SynRecv, FinWait, TimeWait, Close, CloseWait, LastAck, Listen, SynAck}
	events := map[string]Event{"syn": EvSyn, "fin": EvFin, "ack": EvAck, "rst": EvRst}
	var m [3]map[[2]int]State
	for d, table := range []string{kernelDosInputOnly, kernelDosInput, kernelDosOutput} {
		m[d] = map[[2]int]State{}
		for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
			f := strings.Split(line, "|")
			ev, ok := events[strings.TrimSpace(f[0])]
			if !ok || len(f) != 12 {
				t.Fatalf("bad model line %q", line)
			}
			for i, from := range columns {
				m[d][[2]int{int(from), int(ev)}] = abbrev[strings.TrimSpace(f[i+1])]
			}
		}
		if len(m[d]) != 44 {
			t.Fatalf("model %d has %d cells", d, len(m[d]))
		}
	}
	return func(s State, ev Event, d Dir) State {
		if ev == EvNone {
			if d == DirInputOnly {
				return s
			}
			return Close
		}
		return m[d][[2]int{int(s), int(ev)}]
	}
}

// TestNextSecureDirEveryCell checks all three halves of tcp_states_dos,
// cell by cell, against the kernel's tables.
func TestNextSecureDirEveryCell(t *testing.T) {
	model := dosModel(t)
	for _, d := range []Dir{DirInputOnly, DirInput, DirOutput} {
		for s := None; s <= SynAck; s++ {
			for ev := EvNone; ev <= EvRst; ev++ {
				if got, want := NextSecureDir(s, ev, d), model(s, ev, d); got != want {
					t.Errorf("dir %d: %v on %v = %v, want %v", d, ev, s, got, want)
				}
			}
		}
	}
}

// TestSecureTCPNAT drives VS/NAT connections through a table with
// secure_tcp on and checks every state against the kernel's model, both
// directions: the server's SYN-ACK moves SYN_RECV to SYNACK (tcp_states
// keeps SYN_RECV), a client ACK leaves SYNACK alone, and only the
// server's ACK establishes the connection. With secure_tcp off the same
// packets follow tcp_states.
func TestSecureTCPNAT(t *testing.T) {
	model := dosModel(t)
	type pkt struct {
		reply bool
		ev    Event
	}
	handshake := []pkt{{false, EvSyn}, {true, EvSyn}, {false, EvAck}, {false, EvAck}, {true, EvAck},
		{false, EvFin}, {true, EvAck}, {true, EvFin}, {false, EvAck}}
	flood := []pkt{{false, EvSyn}, {false, EvAck}, {false, EvAck}, {false, EvFin}, {false, EvRst}}
	rstAfterSynAck := []pkt{{false, EvSyn}, {true, EvSyn}, {false, EvRst}, {false, EvSyn}}
	for _, secure := range []bool{true, false} {
		for n, seq := range [][]pkt{handshake, flood, rstAfterSynAck} {
			tbl := newTestTable(t, Config{Capacity: 64, Reverse: 64, Clock: &ManualClock{}})
			d := DefaultDefense()
			if secure {
				d.SecureTCP = 3
			}
			if err := tbl.SetDefense(d); err != nil {
				t.Fatal(err)
			}
			k := v4Key(ProtoTCP, uint32(9+n), 40000, 80)
			rk := replyKey(k, netip.MustParseAddr("198.18.2.11"), 8080)
			c, r := tbl.Insert(&k, 1, FwdMasq, 0, seq[0].ev)
			want := NextDir(None, seq[0].ev, DirInput)
			if secure {
				want = model(None, seq[0].ev, DirInput)
			}
			if r != Inserted || c.State != want {
				t.Fatalf("secure=%v seq %d: insert %v in %v, want %v", secure, n, r, c.State, want)
			}
			if !tbl.InsertReply(&rk, &c, 1) {
				t.Fatal("InsertReply failed")
			}
			for i, p := range seq[1:] {
				d := DirInput
				if p.reply {
					d = DirOutput
				}
				if secure {
					want = model(want, p.ev, d)
				} else {
					want = NextDir(want, p.ev, d)
				}
				var res Result
				if p.reply {
					rp, ok := tbl.LookupReply(&rk)
					if !ok {
						t.Fatalf("step %d: reply not found", i)
					}
					c = rp.Conn
					res = tbl.TouchReply(&c, ProtoTCP, p.ev)
				} else {
					var ok bool
					if c, ok = tbl.Lookup(&k); !ok {
						t.Fatalf("step %d: lookup failed", i)
					}
					res = tbl.Touch(&c, &k, p.ev)
				}
				if res == Reopen {
					break
				}
				if res != Hit || c.State != want {
					t.Fatalf("secure=%v seq %d step %d (%+v): %v %v, want hit %v", secure, n, i+1, p, res, c.State, want)
				}
			}
		}
	}
	// The handshake's distinguishing states, spelt out.
	tbl := newTestTable(t, Config{Capacity: 64, Reverse: 64, Clock: &ManualClock{}})
	if err := tbl.SetDefense(Defense{SecureTCP: 3, AmemThresh: DefaultAmemThresh}); err != nil {
		t.Fatal(err)
	}
	k := v4Key(ProtoTCP, 1, 1000, 80)
	c, _ := tbl.Insert(&k, 1, FwdMasq, 0, EvSyn)
	if c.State != SynRecv {
		t.Fatalf("NAT SYN under secure_tcp opens in %v, want SYN_RECV (the DR SYNACK is the input-only half)", c.State)
	}
	if tbl.TouchReply(&c, ProtoTCP, EvSyn); c.State != SynAck {
		t.Fatalf("server SYN-ACK: %v, want SYNACK", c.State)
	}
	if tbl.Touch(&c, &k, EvAck); c.State != SynAck {
		t.Fatalf("client ACK on SYNACK: %v, want SYNACK", c.State)
	}
	if tbl.TouchReply(&c, ProtoTCP, EvAck); c.State != Established {
		t.Fatalf("server ACK: %v, want ESTABLISHED", c.State)
	}
}

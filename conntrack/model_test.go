package conntrack

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// model is the reference the table is checked against: a plain map with
// IPVS's rules written out directly, no hashing, no concurrency.
type model struct {
	now      uint64 // ms
	timeouts [numStates]uint64
	conns    map[Key]*modelConn
	inserted uint64
	expired  uint64
	reopened uint64
}

// modelConn is one connection. expiry is the stored bound the slack
// rule keeps: a packet that leaves the state as it was and finds it no
// earlier than now+timeout and at most timeout/64 later leaves it;
// otherwise, and on a state change, it becomes now+timeout+timeout/64.
// kernel is when IPVS's timer, re-armed by every packet, is due.
type modelConn struct {
	dest   uint32
	state  State
	expiry uint64
	kernel uint64
}

// packet applies the slack rule for a packet at m.now moving c to state
// ns, and checks the rule's promise: never before the kernel's expiry,
// at most the slack after it.
func (m *model) packet(rt *rapid.T, c *modelConn, ns State) {
	to := m.timeouts[ns]
	c.kernel = m.now + to
	if !(ns == c.state && m.now+to <= c.expiry && c.expiry <= m.now+to+to/64) {
		c.state, c.expiry = ns, m.now+to+to/64
	}
	if c.expiry < c.kernel || c.expiry > c.kernel+to/64 {
		rt.Fatalf("model expiry %d, kernel's %d with timeout %d", c.expiry, c.kernel, to)
	}
}

// listed is the time left that Range shows for c: its expiry less the
// slack of its state's timeout now (which --set may have changed since
// the write), none once that has passed.
func (m *model) listed(c *modelConn) time.Duration {
	sl := m.timeouts[c.state] / 64
	if c.expiry <= m.now+sl {
		return 0
	}
	return time.Duration(c.expiry-sl-m.now) * time.Millisecond
}

func (m *model) live(k Key) (*modelConn, bool) {
	c, ok := m.conns[k]
	return c, ok && m.now < c.expiry
}

func (m *model) counts() (active, inactive [64]int64) {
	for _, c := range m.conns { // expired but unswept entries still count
		if c.state.Active() {
			active[c.dest]++
		} else {
			inactive[c.dest]++
		}
	}
	return active, inactive
}

// TestModel runs random operation sequences against the table and the
// model and compares every answer, the Stats and the hooks' active and
// inactive counts after each step. rapid prints the seed and the minimal
// failing sequence.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clk := &ManualClock{}
		h := &countHooks{}
		tbl, err := New(Config{Capacity: 1000, Clock: clk, Hooks: h})
		if err != nil {
			rt.Fatal(err)
		}
		m := &model{conns: map[Key]*modelConn{}}
		def := DefaultTimeouts()
		for i, d := range def.byState() {
			m.timeouts[i] = uint64(d / time.Millisecond)
		}
		var pool []Key
		// Few keys, so operations keep meeting the same entries.
		for i := range uint32(3) {
			pool = append(pool, v4Key(ProtoTCP, i, 1000, 80))
		}
		pool = append(pool, v4Key(ProtoUDP, 0, 1000, 80), v6Key(ProtoTCP, 1, 443), v6Key(ProtoUDP, 1, 443))
		genKey := rapid.SampledFrom(pool)
		genEv := rapid.SampledFrom([]Event{EvNone, EvSyn, EvFin, EvAck, EvRst})
		genDur := rapid.SampledFrom([]time.Duration{
			time.Millisecond, 999 * time.Millisecond, 2 * time.Second, 10 * time.Second,
			30 * time.Second, 60 * time.Second, 120 * time.Second, 300 * time.Second, 900 * time.Second,
		})

		rt.Repeat(map[string]func(*rapid.T){
			"insert": func(rt *rapid.T) {
				k := genKey.Draw(rt, "key")
				dest := rapid.Uint32Range(0, 3).Draw(rt, "dest")
				ev := genEv.Draw(rt, "ev")
				c, r := tbl.Insert(&k, dest, 1, 0, ev)
				if mc, ok := m.live(k); ok {
					if r != Exists || c.Dest != mc.dest || c.State != mc.state {
						rt.Fatalf("Insert(%v) = %+v %v, model has %+v", k, c, r, *mc)
					}
					return
				}
				if _, stale := m.conns[k]; stale {
					m.expired++
				}
				s := initialState(k.Proto, ev)
				to := m.timeouts[s]
				m.conns[k] = &modelConn{dest: dest, state: s, expiry: m.now + to + to/64, kernel: m.now + to}
				m.inserted++
				if r != Inserted || c.Dest != dest || c.State != s || c.Fwd != 1 {
					rt.Fatalf("Insert(%v) = %+v %v, want new %v", k, c, r, s)
				}
			},
			"lookup": func(rt *rapid.T) {
				k := genKey.Draw(rt, "key")
				c, ok := tbl.Lookup(&k)
				mc, mok := m.live(k)
				if ok != mok || ok && (c.Dest != mc.dest || c.State != mc.state) {
					rt.Fatalf("Lookup(%v) = %+v %v, model %+v %v", k, c, ok, mc, mok)
				}
			},
			"touch": func(rt *rapid.T) {
				k := genKey.Draw(rt, "key")
				ev := genEv.Draw(rt, "ev")
				c, ok := tbl.Lookup(&k)
				if !ok {
					return
				}
				mc, _ := m.live(k)
				r := tbl.Touch(&c, &k, ev)
				if k.Proto == ProtoTCP && ev == EvSyn && (mc.state == TimeWait || mc.state == Close) {
					delete(m.conns, k)
					m.reopened++
					if r != Reopen {
						rt.Fatalf("SYN on %v = %v, want reopen", mc.state, r)
					}
					tbl.Retire(&c)
					return
				}
				ns := mc.state
				if k.Proto == ProtoTCP {
					ns = Next(mc.state, ev)
				}
				m.packet(rt, mc, ns)
				if r != Hit || c.State != mc.state {
					rt.Fatalf("Touch(%v, %d) = %v %v, want hit %v", k, ev, r, c.State, mc.state)
				}
			},
			"advance": func(rt *rapid.T) {
				d := genDur.Draw(rt, "d")
				clk.Advance(d)
				m.now += uint64(d / time.Millisecond)
			},
			"sweep": func(rt *rapid.T) {
				want := 0
				for k, c := range m.conns {
					if m.now >= c.expiry {
						delete(m.conns, k)
						want++
					}
				}
				m.expired += uint64(want)
				if got := tbl.Sweep(tbl.Slots()); got != want {
					rt.Fatalf("Sweep = %d, model expired %d", got, want)
				}
			},
			"set": func(rt *rapid.T) {
				var d [3]time.Duration
				for i := range d {
					d[i] = rapid.SampledFrom([]time.Duration{0, time.Second, 5 * time.Second, 100 * time.Second}).Draw(rt, "t")
				}
				tbl.SetTimeouts(d[0], d[1], d[2])
				for i, s := range []State{Established, FinWait, UDP} {
					if d[i] > 0 {
						m.timeouts[s] = uint64(d[i] / time.Millisecond)
					}
				}
			},
			"": func(rt *rapid.T) {
				st := tbl.Stats()
				if st.Entries != uint64(len(m.conns)) || st.Inserted != m.inserted ||
					st.Expired != m.expired || st.Reopened != m.reopened || st.Evicted != 0 || st.Refused != 0 {
					rt.Fatalf("stats %v, model entries=%d inserted=%d expired=%d reopened=%d",
						st, len(m.conns), m.inserted, m.expired, m.reopened)
				}
				active, inactive := m.counts()
				for d := range 4 {
					if a, i := h.active[d].Load(), h.inactive[d].Load(); a != active[d] || i != inactive[d] {
						rt.Fatalf("dest %d: hooks %d/%d, model %d/%d", d, a, i, active[d], inactive[d])
					}
				}
				listed := 0
				tbl.Range(func(k Key, c Conn, left time.Duration, _ bool) bool {
					listed++
					mc, ok := m.live(k)
					if !ok || c.Dest != mc.dest || c.State != mc.state || left != m.listed(mc) {
						rt.Fatalf("Range %v %+v %v, model %+v", k, c, left, mc)
					}
					return true
				})
				want := 0
				for k := range m.conns {
					if _, ok := m.live(k); ok {
						want++
					}
				}
				if listed != want {
					rt.Fatalf("Range listed %d, model has %d live", listed, want)
				}
			},
		})
	})
}

package xsktest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/afvs/afvs/dataplane/xsk"
)

// model is the socket contract a Port keeps, written as plainly as it
// can be: a free stack of chunks (the one returned last is taken first),
// a queue of received frames, the chunks the user holds, the TX ring and
// the sent frames as queues.
type model struct {
	frames, fs int
	txCap      int
	budget     int
	free       []uint64
	rx         []xsk.Desc
	user       map[uint64]bool
	ring, sent []xsk.Desc
	dropped    int
	nSent      int
	misuse     []string // what each misuse report must contain
}

func newModel(frames, fs int) *model {
	m := &model{frames: frames, fs: fs, user: map[uint64]bool{}}
	for i := frames - 1; i >= 0; i-- {
		m.free = append(m.free, uint64(i*fs))
	}
	return m
}

func (m *model) chunk(a uint64) uint64 { return a &^ uint64(m.fs-1) }

func (m *model) pop() uint64 {
	a := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	return a
}

// where names where a chunk the user does not hold is, as a misuse
// report must.
func (m *model) where(a uint64, to string) string {
	c := m.chunk(a)
	if a >= uint64(m.frames*m.fs) {
		return "outside the"
	}
	on := func(ds []xsk.Desc) bool {
		return slices.ContainsFunc(ds, func(d xsk.Desc) bool { return m.chunk(d.Addr) == c })
	}
	w := "free"
	switch {
	case on(m.rx):
		w = "received"
	case on(m.ring):
		w = "on the TX ring"
	case on(m.sent):
		w = "sent"
	}
	return fmt.Sprintf("frame %#x is %s, not with the user (moving it to %s)", c, w, to)
}

func (m *model) receive(n int) []xsk.Desc {
	n = min(n, len(m.rx))
	out := slices.Clone(m.rx[:n])
	m.rx = m.rx[n:]
	for _, d := range out {
		m.user[m.chunk(d.Addr)] = true
	}
	return out
}

func (m *model) release(a uint64) {
	if a >= uint64(m.frames*m.fs) || !m.user[m.chunk(a)] {
		m.misuse = append(m.misuse, m.where(a, "free"))
		return
	}
	delete(m.user, m.chunk(a))
	m.free = append(m.free, m.chunk(a))
}

func (m *model) transmit(ds []xsk.Desc) int {
	limit := m.txCap
	if limit <= 0 {
		limit = m.frames
	}
	ds = ds[:min(len(ds), max(limit-len(m.ring)-len(m.sent), 0))]
	for j, d := range ds {
		within := d.Addr+uint64(d.Len) <= uint64(m.frames*m.fs) && d.Addr&uint64(m.fs-1)+uint64(d.Len) <= uint64(m.fs)
		if !within {
			m.misuse = append(m.misuse, "runs past its chunk")
		}
		if !within || !m.user[m.chunk(d.Addr)] {
			if within {
				m.misuse = append(m.misuse, m.where(d.Addr, "the TX ring"))
			}
			return j
		}
		delete(m.user, m.chunk(d.Addr))
		m.ring = append(m.ring, d)
		m.nSent++
	}
	return len(ds)
}

func (m *model) kick() {
	n := len(m.ring)
	if m.budget > 0 {
		n = min(n, m.budget)
	}
	m.sent = append(m.sent, m.ring[:n]...)
	m.ring = slices.Clone(m.ring[n:])
}

func (m *model) complete() int {
	n := len(m.sent)
	for _, d := range m.sent {
		m.free = append(m.free, m.chunk(d.Addr))
	}
	m.sent = nil
	return n
}

// TestPortKeepsTheModel runs random sequences of every socket call, with
// misuse mixed in (frames released or transmitted that the user does not
// hold, twice in one call, past their chunk or outside the UMEM, and
// descriptors DeliverBatch's fill moves or lengthens), on Ports of sizes
// that are and are not powers of two, with and without a TX ring limit
// and a kick budget, so that every ring wraps many times, and requires
// the same answer from the Port as from the model at every step: which
// chunk each delivery and Alloc takes, what Receive returns, how much
// Transmit and Complete take, each misuse report and where it says the
// frame is, and the counts.
func TestPortKeepsTheModel(t *testing.T) {
	for _, c := range []struct{ frames, txCap, budget int }{
		{1, 0, 0}, {5, 0, 0}, {8, 3, 0}, {13, 0, 2}, {64, 10, 4},
	} {
		t.Run(fmt.Sprintf("frames=%d,txcap=%d,budget=%d", c.frames, c.txCap, c.budget), func(t *testing.T) {
			for seed := range uint64(20) {
				runModel(t, c.frames, c.txCap, c.budget, seed)
			}
		})
	}
}

func runModel(t *testing.T, frames, txCap, budget int, seed uint64) {
	const fs = 512
	r := rand.New(rand.NewPCG(seed, uint64(frames)))
	p, m := New(frames, fs), newModel(frames, fs)
	p.TxCap, m.txCap = txCap, txCap
	p.KickBudget, m.budget = budget, budget
	var got []string
	p.Misuse = func(msg string) { got = append(got, msg) }
	var held []xsk.Desc // what the user holds, as Receive and Alloc gave it
	hold := func(d xsk.Desc) { held = append(held, d) }
	drop := func(a uint64) {
		held = slices.DeleteFunc(held, func(d xsk.Desc) bool { return m.chunk(d.Addr) == m.chunk(a) })
	}
	out := make([]xsk.Desc, frames+2)
	for step := range 400 {
		op := r.IntN(10)
		what := ""
		switch op {
		case 0: // Deliver
			n := r.IntN(fs - Headroom + 2) // sometimes too long
			ok := p.Deliver(make([]byte, n))
			want := len(m.free) > 0 && Headroom+n <= fs
			if want {
				m.rx = append(m.rx, xsk.Desc{Addr: m.pop() + Headroom, Len: uint32(n)})
			} else {
				m.dropped++
			}
			what = fmt.Sprintf("Deliver(%d) = %v", n, ok)
			if ok != want {
				t.Fatalf("seed %d step %d: %s, want %v", seed, step, what, want)
			}
		case 1, 2: // DeliverBatch, now and then with a bad descriptor
			n := r.IntN(frames + 2)
			k := min(n, len(m.free))
			bad, how := -1, 0
			if k > 0 && r.IntN(4) == 0 {
				bad, how = r.IntN(k), r.IntN(2)
			}
			lens := make([]uint32, k)
			for i := range lens {
				lens[i] = uint32(r.IntN(fs - Headroom + 1))
			}
			q := p.DeliverBatch(n, func(_ []byte, ds []xsk.Desc) {
				if len(ds) != k {
					t.Fatalf("seed %d step %d: fill got %d descriptors, want %d", seed, step, len(ds), k)
				}
				for i := range ds {
					ds[i].Len = lens[i]
				}
				if bad >= 0 && how == 0 {
					ds[bad].Addr += fs
				} else if bad >= 0 {
					ds[bad].Len = fs
				}
			})
			if k < n {
				m.dropped++
			}
			wq := k
			if bad >= 0 {
				wq = bad
				m.dropped++
			}
			for i := range wq {
				m.rx = append(m.rx, xsk.Desc{Addr: m.free[len(m.free)-1-i] + Headroom, Len: lens[i]})
			}
			m.free = m.free[:len(m.free)-wq]
			what = fmt.Sprintf("DeliverBatch(%d) = %d", n, q)
			if q != wq {
				t.Fatalf("seed %d step %d: %s, want %d", seed, step, what, wq)
			}
		case 3: // Receive
			n := r.IntN(len(out) + 1)
			k := p.Receive(out[:n])
			want := m.receive(n)
			what = fmt.Sprintf("Receive(%d) = %v", n, out[:k])
			if !slices.Equal(out[:k], want) {
				t.Fatalf("seed %d step %d: %s, want %v", seed, step, what, want)
			}
			for _, d := range want {
				hold(d)
			}
		case 4: // Release: mostly a frame the user holds
			var a uint64
			if len(held) > 0 && r.IntN(4) != 0 {
				a = held[r.IntN(len(held))].Addr
			} else {
				a = uint64(r.IntN((frames + 1) * fs))
			}
			p.Release(a)
			m.release(a)
			if !m.user[m.chunk(a)] {
				drop(a)
			}
			what = fmt.Sprintf("Release(%#x)", a)
		case 5: // Alloc
			a, ok := p.Alloc()
			what = fmt.Sprintf("Alloc() = %#x, %v", a, ok)
			if ok != (len(m.free) > 0) || ok && a != m.free[len(m.free)-1] {
				t.Fatalf("seed %d step %d: %s, model's free stack %#x", seed, step, what, m.free)
			}
			if ok {
				m.pop()
				m.user[a] = true
				hold(xsk.Desc{Addr: a + Headroom, Len: 60})
			}
		case 6, 7: // Transmit some held frames, in random order, with misuse now and then
			r.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
			ds := slices.Clone(held[:r.IntN(len(held)+1)])
			if r.IntN(4) == 0 {
				switch x := (xsk.Desc{Addr: uint64(r.IntN((frames + 1) * fs)), Len: uint32(r.IntN(fs))}); r.IntN(3) {
				case 0:
					ds = append(ds, x) // anywhere, any length
				case 1:
					if len(ds) > 0 {
						ds = append(ds, ds[0]) // twice
					}
				default:
					ds = append([]xsk.Desc{x}, ds...)
				}
			}
			n := p.Transmit(ds)
			want := m.transmit(ds)
			what = fmt.Sprintf("Transmit(%v) = %d", ds, n)
			if n != want {
				t.Fatalf("seed %d step %d: %s, want %d", seed, step, what, want)
			}
			for _, d := range ds[:n] {
				drop(d.Addr)
			}
		case 8:
			p.Kick()
			m.kick()
			what = "Kick"
		case 9:
			if r.IntN(8) == 0 {
				p.DropReceived()
				for _, d := range m.rx {
					m.free = append(m.free, m.chunk(d.Addr))
				}
				m.rx = nil
				what = "DropReceived"
				break
			}
			n, want := p.Complete(), m.complete()
			what = fmt.Sprintf("Complete() = %d", n)
			if n != want {
				t.Fatalf("seed %d step %d: %s, want %d", seed, step, what, want)
			}
		}
		if len(got) != len(m.misuse) {
			t.Fatalf("seed %d step %d: after %s, misuse %q, want reports containing %q", seed, step, what, got, m.misuse)
		}
		for i := range got {
			if !strings.Contains(got[i], m.misuse[i]) {
				t.Fatalf("seed %d step %d: after %s, misuse %q, want one containing %q", seed, step, what, got[i], m.misuse[i])
			}
		}
		got, m.misuse = got[:0], m.misuse[:0]
		if p.Free() != len(m.free) || p.Pending() != len(m.rx) || p.InFlight() != len(m.ring)+len(m.sent) ||
			p.TxPending() != (len(m.ring) > 0) || p.Dropped() != m.dropped || p.Transmitted() != m.nSent {
			t.Fatalf("seed %d step %d: after %s, free %d pending %d in flight %d tx pending %v dropped %d transmitted %d; want %d %d %d %v %d %d",
				seed, step, what, p.Free(), p.Pending(), p.InFlight(), p.TxPending(), p.Dropped(), p.Transmitted(),
				len(m.free), len(m.rx), len(m.ring)+len(m.sent), len(m.ring) > 0, m.dropped, m.nSent)
		}
	}
}

// TestDeliverersRaceTheSocket has three goroutines deliver numbered
// frames, one by one and in batches, while the socket goroutine receives,
// transmits, releases and completes them, with a small port, so that the
// free stack runs dry and every ring wraps: every frame must arrive once,
// each deliverer's in order, and every chunk be free at the end. Under
// the race detector it checks that the rings hand frames and chunks over
// with the ordering they need.
func TestDeliverersRaceTheSocket(t *testing.T) {
	const senders, each = 3, 3000
	p := New(7, 512)
	p.Misuse = func(msg string) { t.Error(msg) }
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				if s == 0 {
					if p.Deliver([]byte{byte(s), byte(i), byte(i >> 8)}) {
						i++
					}
					continue
				}
				i += p.DeliverBatch(min(3, each-i), func(umem []byte, ds []xsk.Desc) {
					for j := range ds {
						v := i + j
						copy(umem[ds[j].Addr:], []byte{byte(s), byte(v), byte(v >> 8)})
						ds[j].Len = 3
					}
				})
			}
		}()
	}
	next := make([]int, senders)
	out := make([]xsk.Desc, 4)
	for total := 0; total < senders*each; {
		p.Complete()
		n := p.Receive(out)
		if n == 0 {
			p.Wait(0)
			continue
		}
		for _, d := range out[:n] {
			f := p.Frame(d)
			s, v := int(f[0]), int(f[1])|int(f[2])<<8
			if s >= senders || v != next[s] {
				t.Fatalf("frame %d of sender %d arrived, want frame %d", v, s, next[s%senders])
			}
			next[s]++
		}
		k := n / 2 // transmit half, release the rest
		if p.Transmit(out[:k]) != k {
			t.Fatalf("Transmit took fewer than %d", k)
		}
		for _, d := range out[k:n] {
			p.Release(d.Addr)
		}
		p.Kick()
		total += n
	}
	wg.Wait()
	p.Complete()
	if p.Free() != p.Frames() || p.Pending() != 0 || p.InFlight() != 0 {
		t.Fatalf("free %d of %d, pending %d, in flight %d at the end", p.Free(), p.Frames(), p.Pending(), p.InFlight())
	}
}

// TestSocketCallsAllocateNothing: a round of the socket calls a worker
// makes for each batch, and deliveries, allocate nothing.
func TestSocketCallsAllocateNothing(t *testing.T) {
	p := New(64, 2048)
	frame := make([]byte, 60)
	out := make([]xsk.Desc, 16)
	fill := func(_ []byte, ds []xsk.Desc) {
		for i := range ds {
			ds[i].Len = 60
		}
	}
	a := testing.AllocsPerRun(200, func() {
		p.Deliver(frame)
		p.DeliverBatch(8, fill)
		p.Complete()
		p.Fill()
		n := p.Receive(out)
		p.Release(out[0].Addr)
		if a, ok := p.Alloc(); ok {
			out[0] = xsk.Desc{Addr: a + Headroom, Len: 60}
		}
		p.Transmit(out[:n])
		p.TxPending()
		p.Kick()
	})
	if a != 0 {
		t.Fatalf("%v allocations a round", a)
	}
}

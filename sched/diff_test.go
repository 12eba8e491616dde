package sched

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// modelLoad is an independent model of one dest's counters and overload
// flag, from ip_vs_bind_dest / ip_vs_unbind_dest / __ip_vs_update_dest.
type modelLoad struct {
	act, inac    int64
	upper, lower uint32
	over         bool
}

type conn struct {
	id     uint32
	active bool
}

// harness drives one scheduler and its reference through random traffic,
// connection churn and admin changes, checking every pick.
type harness struct {
	t     *testing.T
	name  string
	flags Flags
	rng   *rand.Rand
	loads *Loads
	model []modelLoad
	// added is the model's -a order (vs.Table's reals); dests is what the
	// scheduler is built from, KernelOrder(added); klist is the kernel
	// model's svc->destinations, kept by kAddDest/kDelDest/kEditDest
	// independently of KernelOrder.
	added []Dest
	dests []Dest
	klist []Dest
	conns []conn
	next  uint32
	now   time.Duration
	s     Scheduler
	opt   Options
	// reference state
	rr          refRR
	wrr         refWRR
	cache       *refCache
	lastW       map[uint32]int32 // mh last_weight
	refDraw     func(uint32) uint32
	maglevTable []int
	shTable     []int
}

const maxIDs = 256

func newHarness(t *testing.T, name string, flags Flags, seed uint64) *harness {
	h := &harness{t: t, name: name, flags: flags, rng: rand.New(rand.NewPCG(seed, 7)),
		loads: NewLoads(maxIDs), model: make([]modelLoad, maxIDs), lastW: map[uint32]int32{}}
	h.opt = Options{
		MaglevSize:      251,
		LBLCRExpiration: 5 * time.Minute,
		Now:             func() time.Duration { return h.now },
		Rand:            rand.New(rand.NewPCG(seed, 99)).Uint32N,
	}
	h.refDraw = rand.New(rand.NewPCG(seed, 99)).Uint32N
	n := 1 + h.rng.IntN(24)
	for range n {
		h.addDest(h.newDest())
	}
	h.cache = newRefCache(0, int64(24*time.Hour))
	if name == "lblcr" {
		h.cache.expire = int64(h.opt.LBLCRExpiration)
	}
	h.rebuild(nil)
	return h
}

func (h *harness) newDest() Dest {
	id := h.next
	h.next++
	var a [16]byte
	if h.rng.IntN(2) == 0 {
		a = netip.AddrFrom4([4]byte{198, 18, byte(id >> 8), byte(id)}).As16()
	} else {
		a = netip.MustParseAddr(fmt.Sprintf("2001:2::%x", id+1)).As16()
	}
	d := Dest{ID: id, Addr: a, Port: 80, Weight: h.weight()}
	if h.rng.IntN(3) == 0 {
		d.Upper = uint32(1 + h.rng.IntN(6))
		if h.rng.IntN(2) == 0 {
			d.Lower = uint32(h.rng.IntN(int(d.Upper) + 1))
		}
	}
	return d
}

func (h *harness) weight() int32 {
	switch h.rng.IntN(6) {
	case 0:
		return 0
	case 1:
		// Large weights exercise mh's weight shift and 64-bit products.
		return int32(1 + h.rng.IntN(3000))
	}
	return int32(1 + h.rng.IntN(5))
}

// rebuild builds a new scheduler after an admin change and applies the
// kernel's transition to the references.
func (h *harness) rebuild(old []Dest) {
	h.t.Helper()
	h.dests = KernelOrder(h.added)
	for _, d := range h.dests {
		m := &h.model[d.ID]
		if d.Upper == 0 || d.Upper > m.upper {
			m.over = false
		}
		m.upper, m.lower = d.Upper, d.Lower
		if d.Weight != 0 {
			h.lastW[d.ID] = d.Weight
		} else if _, seen := h.lastW[d.ID]; !seen {
			h.lastW[d.ID] = 0
		}
		h.cache.weights[d.ID] = d.Weight
	}
	opt := h.opt
	opt.Prev = h.s
	s, err := New(h.name, h.dests, h.flags, h.loads, opt)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.s = s
	if old != nil {
		h.rr.change(old, h.klist)
	}
	h.wrr.changed(h.klist)
	ds := snapshot(h.klist, h.loads)
	h.shTable = refSHTable(ds)
	last := make([]int32, len(ds))
	for i, d := range h.klist {
		last[i] = h.lastW[d.ID]
	}
	if h.name == "mh" {
		h.maglevTable = refMHTable(ds, last, 251)
	}
}

func (h *harness) flow() Flow {
	f := Flow{Proto: []uint8{6, 17, 1}[h.rng.IntN(3)], CPort: uint16(1024 + h.rng.IntN(8)), VPort: 80}
	c := h.rng.IntN(64)
	if h.rng.IntN(2) == 0 {
		f.CAddr = netip.AddrFrom4([4]byte{198, 19, 1, byte(c)}).As16()
	} else {
		f.CAddr = netip.MustParseAddr(fmt.Sprintf("2001:2:0:1::%x", c)).As16()
	}
	f.VAddr = netip.AddrFrom4([4]byte{198, 19, 0, byte(h.rng.IntN(16))}).As16()
	return f
}

// ref returns the kernel model's pick as an index into klist.
func (h *harness) ref(f Flow) int {
	ds := snapshot(h.klist, h.loads)
	switch h.name {
	case "rr":
		return h.rr.pick(ds)
	case "wrr":
		return h.wrr.pick(ds)
	case "lc":
		return refLC(ds)
	case "wlc":
		return refWLC(ds)
	case "sed":
		return refSED(ds)
	case "nq":
		return refNQ(ds)
	case "fo":
		return refFO(ds)
	case "ovf":
		return refOVF(ds)
	case "twos":
		return refTwos(ds, h.refDraw)
	case "dh":
		return refDH(ds, f.VAddr)
	case "sh":
		return refSH(ds, h.shTable, f, h.flags&FlagSHFallback != 0, h.flags&FlagSHPort != 0)
	case "mh":
		return refMH(ds, h.maglevTable, f, h.flags&FlagMHFallback != 0, h.flags&FlagMHPort != 0)
	case "lblc":
		return refLBLC(h.cache, ds, f, int64(h.now))
	case "lblcr":
		return refLBLCR(h.cache, ds, h.loads, f, int64(h.now), int64(h.opt.LBLCRExpiration))
	}
	h.t.Fatalf("no reference for %s", h.name)
	return 0
}

func (h *harness) bind(id uint32, active bool) {
	h.loads.Bind(id, active)
	m := &h.model[id]
	if active {
		m.act++
	} else {
		m.inac++
	}
	if m.upper != 0 && m.act+m.inac >= int64(m.upper) {
		m.over = true
	}
	h.conns = append(h.conns, conn{id, active})
}

func (h *harness) unbind(i int) {
	c := h.conns[i]
	h.conns = slices.Delete(h.conns, i, i+1)
	h.loads.Unbind(c.id, c.active)
	m := &h.model[c.id]
	if c.active {
		m.act--
	} else {
		m.inac--
	}
	switch {
	case m.lower != 0:
		if m.act+m.inac < int64(m.lower) {
			m.over = false
		}
	case m.upper != 0:
		if (m.act+m.inac)*4 < int64(m.upper)*3 {
			m.over = false
		}
	default:
		m.over = false
	}
}

// addDest is -a: appended to the model, linked at the head of the
// kernel model's list.
func (h *harness) addDest(d Dest) {
	h.added = append(h.added, d)
	h.klist = kAddDest(h.klist, d)
}

// admin makes one ipvsadm change (-a, -d, or -e of thresholds or weight)
// to both the model and the kernel model, then rebuilds.
func (h *harness) admin() {
	old := slices.Clone(h.klist)
	i := h.rng.IntN(len(h.added))
	id := h.added[i].ID
	switch k := h.rng.IntN(5); {
	case k == 4:
		h.reload()
	case k == 0 && len(h.added) < 40 && int(h.next) < maxIDs:
		h.addDest(h.newDest())
	case k == 1 && len(h.added) > 1:
		h.added = slices.Delete(h.added, i, i+1)
		h.klist = kDelDest(h.klist, id)
	case k == 2:
		upper := uint32(h.rng.IntN(6))
		lower := uint32(0)
		if upper > 0 {
			lower = uint32(h.rng.IntN(int(upper) + 1))
		}
		edit := func(d *Dest) { d.Upper, d.Lower = upper, lower }
		edit(&h.added[i])
		h.klist = kEditDest(h.klist, id, edit)
	default:
		w := h.weight()
		edit := func(d *Dest) { d.Weight = w }
		edit(&h.added[i])
		h.klist = kEditDest(h.klist, id, edit)
	}
	h.rebuild(old)
}

func (h *harness) run(steps int) {
	h.t.Helper()
	for step := range steps {
		switch r := h.rng.IntN(100); {
		case r < 55:
			f := h.flow()
			got := h.s.Schedule(&f)
			want := h.ref(f)
			gotID, wantID := int64(-1), int64(-1)
			if got >= 0 {
				gotID = int64(h.dests[got].ID)
			}
			if want >= 0 {
				wantID = int64(h.klist[want].ID)
			}
			if gotID != wantID {
				h.t.Fatalf("step %d: %s picked dest id %d, kernel model %d; scheduler's dests %+v kernel list %+v loads %+v", step, h.name, gotID, wantID, h.dests, h.klist, snapshot(h.klist, h.loads))
			}
			if got >= 0 {
				h.bind(h.dests[got].ID, h.rng.IntN(3) != 0)
			}
		case r < 80 && len(h.conns) > 0:
			h.unbind(h.rng.IntN(len(h.conns)))
		case r < 88 && len(h.conns) > 0:
			i := h.rng.IntN(len(h.conns))
			c := &h.conns[i]
			h.loads.Transfer(c.id, !c.active)
			m := &h.model[c.id]
			if c.active {
				m.act, m.inac = m.act-1, m.inac+1
			} else {
				m.act, m.inac = m.act+1, m.inac-1
			}
			c.active = !c.active
		case r < 91:
			h.admin()
		case r < 96:
			h.now += time.Duration(h.rng.IntN(90)) * time.Second
		default:
			if h.rng.IntN(20) == 0 {
				h.now += time.Duration(h.rng.IntN(48)) * time.Hour
			}
		}
		for id := range h.next {
			m := h.model[id]
			if h.loads.Active(id) != int32(m.act) || h.loads.Inactive(id) != int32(m.inac) || h.loads.Overloaded(id) != m.over {
				h.t.Fatalf("step %d: dest id %d: loads (%d,%d,%v), model %+v", step, id,
					h.loads.Active(id), h.loads.Inactive(id), h.loads.Overloaded(id), m)
			}
		}
	}
}

// TestDifferential runs every scheduler against its kernel reference model
// on random dest sets, weights, thresholds, connection churn and admin
// changes. The seed is logged so a failure can be replayed.
func TestDifferential(t *testing.T) {
	cases := []struct {
		name  string
		flags Flags
	}{
		{"rr", 0}, {"wrr", 0}, {"lc", 0}, {"wlc", 0}, {"sed", 0}, {"nq", 0},
		{"fo", 0}, {"ovf", 0}, {"twos", 0}, {"dh", 0},
		{"sh", 0}, {"sh", FlagSHFallback}, {"sh", FlagSHPort}, {"sh", FlagSHFallback | FlagSHPort},
		{"mh", 0}, {"mh", FlagMHFallback}, {"mh", FlagMHPort}, {"mh", FlagMHFallback | FlagMHPort},
		{"lblc", 0}, {"lblcr", 0},
	}
	base := uint64(time.Now().UnixNano())
	for _, c := range cases {
		t.Run(fmt.Sprintf("sched=%s/flags=%s", c.name, flagLabel(c.flags, c.name)), func(t *testing.T) {
			for k := range uint64(30) {
				seed := base + k
				h := newHarness(t, c.name, c.flags, seed)
				func() {
					defer func() {
						if t.Failed() {
							t.Logf("seed %d", seed)
						}
					}()
					h.run(600)
				}()
				if t.Failed() {
					return
				}
			}
		})
	}
}

func flagLabel(f Flags, s string) string {
	n := f.Names(s)
	if len(n) == 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

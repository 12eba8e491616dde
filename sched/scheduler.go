package sched

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Scheduler picks a real server for a new connection.
type Scheduler interface {
	// Name is the ipvsadm name (-s).
	Name() string
	// Schedule returns an index into the dests slice the scheduler was built
	// with, or -1 if no dest may take the connection. It is safe for
	// concurrent use by several workers and allocates nothing (lblc and
	// lblcr allocate only when they create or change a cache entry, where
	// the kernel kmallocs).
	Schedule(f *Flow) int
}

// Options tune the schedulers; the zero value means the kernel defaults.
type Options struct {
	// MaglevSize is mh's lookup table size, a prime; default 65537.
	MaglevSize int
	// LBLCExpiration is the lblc_expiration sysctl: an unused cache entry is
	// dropped by the periodic full check after this long. Default 24h.
	LBLCExpiration time.Duration
	// LBLCRExpiration is the lblcr_expiration sysctl: both the full-check age
	// of an entry and the age after which a server set sheds its most loaded
	// member. Default 24h.
	LBLCRExpiration time.Duration
	// Now returns a monotonic time; lblc and lblcr use it for cache ages. It
	// lets the simulator run a day of trace in seconds. Default: wall clock.
	Now func() time.Duration
	// Rand returns a uniform integer in [0, n); twos draws its two choices
	// with it. Default: math/rand/v2, which is safe for concurrent use.
	Rand func(n uint32) uint32
	// IPv6 is the service's family: false for an IPv4 service (the zero
	// value), true for an IPv6 one. mh hashes a dest's address folded by
	// the service's family, as ip_vs_mh_permutate does, which matters for a
	// tunnel dest of the other family.
	IPv6 bool
	// Prev is the scheduler this one replaces, when the control plane
	// rebuilds a service after a dest or weight change. New carries over what
	// IPVS keeps across such a change (rr position, wrr current weight, the
	// lblc/lblcr cache, mh's last non-zero weights) and detaches Prev from the
	// load counters. Prev must have been built for the same service.
	Prev Scheduler
}

var processStart = time.Now()

func (o *Options) fill() {
	if o.MaglevSize == 0 {
		o.MaglevSize = 65537
	}
	if o.LBLCExpiration == 0 {
		o.LBLCExpiration = 24 * time.Hour
	}
	if o.LBLCRExpiration == 0 {
		o.LBLCRExpiration = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = func() time.Duration { return time.Since(processStart) }
	}
	if o.Rand == nil {
		o.Rand = rand.Uint32N
	}
}

type builder func(b *base, flags Flags, opt *Options) (Scheduler, error)

var builders = map[string]builder{
	"rr":    newRR,
	"wrr":   newWRR,
	"lc":    newLeastConn,
	"wlc":   newLeastConn,
	"sed":   newLeastConn,
	"nq":    newLeastConn,
	"lblc":  newLBLC,
	"lblcr": newLBLCR,
	"dh":    newDH,
	"sh":    newSH,
	"mh":    newMH,
	"fo":    newFO,
	"ovf":   newOVF,
	"twos":  newTwos,
}

// Names lists the known schedulers, sorted. vs.SchedNames holds the same
// list for validation (vs cannot import sched); a test in ipvsadm/apply
// keeps the two equal.
func Names() []string {
	out := make([]string, 0, len(builders))
	for n := range builders {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// New builds scheduler name over dests. It validates the dests, installs
// their -x/-y thresholds into loads (as editing a dest does in IPVS), and may
// be slow (mh builds its table here); Schedule is the fast part. It is
// Compile followed by Install.
func New(name string, dests []Dest, flags Flags, loads *Loads, opt Options) (Scheduler, error) {
	s, err := Compile(name, dests, flags, loads, opt)
	if err != nil {
		return nil, err
	}
	Install(s, opt.Prev)
	return s, nil
}

// Compile builds scheduler name over dests like New, but changes nothing
// that is in force: it reads Options.Prev's state without detaching it and
// leaves the thresholds in loads alone. The new scheduler already follows
// the load counters; a compiled scheduler that is not put in force must be
// given to Release, one that is to Install.
func Compile(name string, dests []Dest, flags Flags, loads *Loads, opt Options) (Scheduler, error) {
	build, ok := builders[name]
	if !ok {
		return nil, fmt.Errorf("scheduler %q: unknown (known: %s)", name, strings.Join(Names(), ", "))
	}
	if loads == nil {
		return nil, fmt.Errorf("scheduler %s: nil loads", name)
	}
	b := &base{name: name, loads: loads, ids: make([]uint32, len(dests)), weights: make([]int32, len(dests)), dests: slices.Clone(dests)}
	seen := make(map[uint32]int, len(dests))
	for i, d := range dests {
		if uint64(d.ID) >= uint64(loads.Len()) {
			return nil, fmt.Errorf("scheduler %s: dest %d: id %d out of range: loads holds %d ids", name, i, d.ID, loads.Len())
		}
		if j, dup := seen[d.ID]; dup {
			return nil, fmt.Errorf("scheduler %s: dest %d: id %d already used by dest %d: ids must be unique", name, i, d.ID, j)
		}
		seen[d.ID] = i
		if d.Weight < 0 {
			return nil, fmt.Errorf("scheduler %s: dest %d: weight %d: must be >= 0", name, i, d.Weight)
		}
		if d.Lower > d.Upper {
			// ip_vs_add_dest/ip_vs_edit_dest reject this even with no upper
			// threshold.
			return nil, fmt.Errorf("scheduler %s: dest %d: lower threshold %d above upper threshold %d", name, i, d.Lower, d.Upper)
		}
		b.ids[i] = d.ID
		b.weights[i] = d.Weight
	}
	b.index = seen
	if opt.LBLCExpiration < 0 || opt.LBLCRExpiration < 0 {
		return nil, fmt.Errorf("scheduler %s: expiration %v/%v: must not be negative", name, opt.LBLCExpiration, opt.LBLCRExpiration)
	}
	opt.fill()
	if f := flags &^ (FlagSched1 | FlagSched2 | FlagSched3); f != 0 {
		return nil, fmt.Errorf("scheduler %s: flags %#x: unknown bits %#x", name, uint32(flags), uint32(f))
	}
	s, err := build(b, flags, &opt)
	if err != nil {
		return nil, fmt.Errorf("scheduler %s: %w", name, err)
	}
	return s, nil
}

// Install puts a scheduler made by Compile in force: it installs its dests'
// -x/-y thresholds into the load counters and detaches prev (the scheduler
// it replaces, or nil) from them. The new scheduler's trees are attached
// already and see any overload flag this clears.
func Install(s Scheduler, prev Scheduler) {
	if b, ok := s.(interface{ baseOf() *base }); ok {
		bb := b.baseOf()
		for _, d := range bb.dests {
			bb.loads.SetThresholds(d.ID, d.Upper, d.Lower)
		}
	}
	if prev != nil && prev != s {
		Release(prev)
	}
}

// Release detaches s from the load counters it watches (lc, wlc, sed, nq,
// lblc, lblcr keep a tree that Loads refreshes). Call it when a scheduler is
// dropped without a successor built with Options.Prev. Releasing twice, or
// releasing a scheduler that watches nothing, is harmless.
func Release(s Scheduler) {
	if r, ok := s.(interface{ release() }); ok {
		r.release()
	}
}

// base is what every scheduler knows about its dests.
type base struct {
	name    string
	loads   *Loads
	dests   []Dest
	ids     []uint32
	weights []int32
	index   map[uint32]int // dest ID -> index
}

func (b *base) Name() string { return b.name }

func (b *base) baseOf() *base { return b }

func (b *base) overloaded(i int) bool { return b.loads.d[b.ids[i]].overload.Load() }

func (b *base) active(i int) int64 { return int64(b.loads.d[b.ids[i]].active.Load()) }

func (b *base) overhead(i int) int64 { return b.loads.overhead(b.ids[i]) }

// prevOf returns Options.Prev as a T if it is one, for carrying state over.
func prevOf[T any](opt *Options) (T, bool) {
	p, ok := opt.Prev.(T)
	return p, ok
}

// destID maps a pick back to its Loads ID.
func (b *base) destID(i int) uint32 { return b.ids[i] }

package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/afvs/afvs/vs"
)

// DestKey names a real server within its service.
type DestKey struct {
	Svc  vs.Key
	Addr netip.Addr
	Port uint16
}

// TrashPeriod is IP_VS_DEST_TRASH_PERIOD: how long a deleted real server
// stays in the trash after it was first seen without connections. The trash
// timer runs every half period.
const TrashPeriod = 120 * time.Second

// Registry hands out the small stable IDs that index per-worker counters and
// the scheduler's load counters. A real server keeps its ID across reloads as
// long as it stays in its service.
//
// A deleted real server goes to the trash with its ID, as ip_vs_del_dest
// moves a dest to IPVS's dest_trash: its connections keep the ID, so when the
// same server (same service key, address and port) is added again, even
// after its service was deleted and created again, ip_vs_trash_get_dest's
// rule gives it the same ID back, and its connections, counters and
// templates are its own again. A timer every TrashPeriod/2 frees, as
// ip_vs_dest_trash_expire does, an entry that a previous run of the timer
// already found without references and that has stayed so for TrashPeriod;
// its ID then joins the free list.
//
// Freed IDs are reused only after every fresh one has been handed out, and
// a freed ID only once no connection is bound to it any more (busy reports
// that), so a late packet of an old connection can never be counted against
// a new server. Only when no other ID is left is an idle trash entry given
// up early, oldest first (IPVS has no such limit to meet).
//
// Plan computes the IDs a table would get without changing the registry;
// Commit puts a plan in force. A refused table therefore leaves the IDs of
// the table in force, and the trash, untouched.
type Registry struct {
	mu  sync.Mutex
	st  regState
	gen uint64 // bumped by every change, so a stale plan is refused
	now func() time.Duration
}

type regState struct {
	svcs    map[vs.Key]uint32
	svcSeq  map[vs.Key]uint64 // when each service was created: a recreated one is another service
	dests   map[DestKey]uint32
	trash   map[DestKey]*trashEntry
	freeSvc []uint32
	freeDst []uint32
	nextSvc uint32
	nextDst uint32
	seq     uint64        // orders trash entries by when they were trashed
	armed   bool          // the trash timer is pending
	timer   time.Duration // and fires then
}

// trashEntry is a deleted real server waiting to be revived or freed.
type trashEntry struct {
	id        uint32
	svc       uint64 // the service it was deleted from (regState.svcSeq)
	seq       uint64
	idle      bool          // ip_vs_dest_trash_expire saw it unreferenced
	idleStart time.Duration // then
}

func (s *regState) clone() regState {
	c := *s
	c.svcs, c.svcSeq, c.dests = maps.Clone(s.svcs), maps.Clone(s.svcSeq), maps.Clone(s.dests)
	c.trash = make(map[DestKey]*trashEntry, len(s.trash))
	for k, e := range s.trash {
		ec := *e
		c.trash[k] = &ec
	}
	c.freeSvc, c.freeDst = slices.Clone(s.freeSvc), slices.Clone(s.freeDst)
	return c
}

var registryStart = time.Now()

// NewRegistry returns an empty registry on the monotonic clock.
func NewRegistry() *Registry {
	return NewRegistryClock(func() time.Duration { return time.Since(registryStart) })
}

// NewRegistryClock returns an empty registry whose trash timer reads now (a
// monotonic time, such as a simulator's clock).
func NewRegistryClock(now func() time.Duration) *Registry {
	return &Registry{now: now, st: regState{svcs: map[vs.Key]uint32{}, svcSeq: map[vs.Key]uint64{}, dests: map[DestKey]uint32{}, trash: map[DestKey]*trashEntry{}}}
}

func svcMapKey(k vs.Key) vs.Key {
	if k.FWMark != 0 {
		return vs.Key{FWMark: k.FWMark, IPv6: k.IPv6}
	}
	return k
}

// IDPlan is the outcome of Registry.Plan: the IDs of one table, and the
// registry state that committing it installs.
type IDPlan struct {
	Svc  map[vs.Key]uint32
	Dest map[DestKey]uint32
	// Revived lists the real servers taken back from the trash.
	Revived []DestKey
	// Trashed lists the real servers this plan moves to the trash.
	Trashed []DestKey
	// Restarted lists the IDs whose traffic counters start again from 0:
	// revived real servers whose service was deleted and created again
	// meanwhile (__ip_vs_update_dest zeroes the stats of a dest that comes
	// back into another service; its connection counts stay), and IDs
	// that served an earlier, freed real server and now serve a new one.
	Restarted []uint32
	next      regState
	gen       uint64
}

// ErrStalePlan is Commit's answer for a plan made before another change.
var ErrStalePlan = errors.New("registry changed since the plan was made")

// Plan returns IDs for every service and real server in t: the IDs they
// have, those of real servers in the trash for the same key, or new ones;
// the real servers no longer in t go to the trash. It changes nothing; busy
// reports whether an ID still has connections or templates.
func (r *Registry) Plan(t *vs.Table, busy func(id uint32) bool) (*IDPlan, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	st := r.st.clone()
	p := &IDPlan{gen: r.gen}
	wantS := map[vs.Key]bool{}
	wantD := map[DestKey]bool{}
	for _, s := range t.Services {
		wantS[svcMapKey(s.Key)] = true
		for _, d := range s.Reals {
			wantD[DestKey{svcMapKey(s.Key), d.Addr, d.Port}] = true
		}
	}
	gone := make([]DestKey, 0)
	for k := range st.dests {
		if !wantD[k] {
			gone = append(gone, k)
		}
	}
	// Deterministic trash order: by ID.
	slices.SortFunc(gone, func(a, b DestKey) int { return int(st.dests[a]) - int(st.dests[b]) })
	for _, k := range gone {
		// __ip_vs_del_dest: the timer is armed when the trash was empty.
		if len(st.trash) == 0 {
			st.armed, st.timer = true, now+TrashPeriod/2
		}
		st.seq++
		st.trash[k] = &trashEntry{id: st.dests[k], svc: st.svcSeq[k.Svc], seq: st.seq}
		delete(st.dests, k)
		p.Trashed = append(p.Trashed, k)
	}
	for k, id := range st.svcs {
		if !wantS[k] {
			delete(st.svcs, k)
			delete(st.svcSeq, k)
			st.freeSvc = append(st.freeSvc, id)
		}
	}
	slices.Sort(st.freeSvc)
	for _, s := range t.Services {
		k := svcMapKey(s.Key)
		if _, ok := st.svcs[k]; ok {
			continue
		}
		id, _, ok := st.alloc(&st.freeSvc, &st.nextSvc, MaxServices, nil, false)
		if !ok {
			return nil, fmt.Errorf("service %s: more than %d services: Memory allocation problem", k, MaxServices)
		}
		st.svcs[k] = id
		st.seq++
		st.svcSeq[k] = st.seq
	}
	for _, s := range t.Services {
		for _, d := range s.Reals {
			k := DestKey{svcMapKey(s.Key), d.Addr, d.Port}
			if _, ok := st.dests[k]; ok {
				continue
			}
			// ip_vs_add_dest tries ip_vs_trash_get_dest first.
			if e, ok := st.trash[k]; ok {
				delete(st.trash, k)
				st.dests[k] = e.id
				p.Revived = append(p.Revived, k)
				if e.svc != st.svcSeq[k.Svc] {
					p.Restarted = append(p.Restarted, e.id)
				}
				continue
			}
			id, fresh, ok := st.alloc(&st.freeDst, &st.nextDst, MaxDests, busy, true)
			if !ok {
				return nil, fmt.Errorf("real server %s: more than %d real servers (or all freed IDs still have connections): Memory allocation problem", netip.AddrPortFrom(k.Addr, k.Port), MaxDests)
			}
			if !fresh {
				p.Restarted = append(p.Restarted, id)
			}
			st.dests[k] = id
		}
	}
	p.Svc, p.Dest = maps.Clone(st.svcs), maps.Clone(st.dests)
	p.next = st
	return p, nil
}

// Commit puts p in force. It fails, changing nothing, when the registry
// changed since p was planned.
func (r *Registry) Commit(p *IDPlan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.gen != r.gen {
		return ErrStalePlan
	}
	r.st = p.next
	r.gen++
	return nil
}

// Assign is Plan and Commit in one.
func (r *Registry) Assign(t *vs.Table, busy func(id uint32) bool) (svc map[vs.Key]uint32, dst map[DestKey]uint32, err error) {
	p, err := r.Plan(t, busy)
	if err != nil {
		return nil, nil, err
	}
	if err := r.Commit(p); err != nil {
		return nil, nil, err
	}
	return p.Svc, p.Dest, nil
}

func (s *regState) alloc(free *[]uint32, next *uint32, max uint32, busy func(uint32) bool, trash bool) (id uint32, fresh, ok bool) {
	// Fresh IDs first: a reused ID's counters go on from the server that
	// had it before (Restarted marks them for the listings), so freed IDs
	// wait until the space is used up, and then only those with no
	// connection left are taken.
	if *next < max {
		id := *next
		*next++
		return id, true, true
	}
	for i, id := range *free {
		if busy == nil || !busy(id) {
			*free = append((*free)[:i], (*free)[i+1:]...)
			return id, false, true
		}
	}
	if !trash {
		return 0, false, false
	}
	// Out of IDs: give up the oldest trash entry without references.
	var victim DestKey
	var best *trashEntry
	for k, e := range s.trash {
		if (best == nil || e.seq < best.seq) && (busy == nil || !busy(e.id)) {
			victim, best = k, e
		}
	}
	if best == nil {
		return 0, false, false
	}
	delete(s.trash, victim)
	return best.id, false, true
}

// ExpireTrash runs the trash timer's rounds due by now, as
// ip_vs_dest_trash_expire: in each, an entry with references (busy) is
// skipped; one without is marked idle at the round's time the first time,
// and freed at a later round at least TrashPeriod after that. The timer
// re-arms itself every TrashPeriod/2 while the trash is not empty. It
// returns the IDs freed. busy is asked at most once per entry and round.
func (r *Registry) ExpireTrash(busy func(id uint32) bool) []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var freed []uint32
	for r.st.armed && now >= r.st.timer {
		at := r.st.timer
		for k, e := range r.st.trash {
			if busy != nil && busy(e.id) {
				continue
			}
			if !e.idle {
				e.idle, e.idleStart = true, at
				continue
			}
			if at < e.idleStart+TrashPeriod {
				continue
			}
			delete(r.st.trash, k)
			r.st.freeDst = append(r.st.freeDst, e.id)
			freed = append(freed, e.id)
		}
		if len(r.st.trash) > 0 {
			r.st.timer = at + TrashPeriod/2
		} else {
			r.st.armed = false
		}
		r.gen++
	}
	slices.Sort(freed)
	return freed
}

// Now reads the registry's clock, the time NextTrashRound is measured in.
func (r *Registry) Now() time.Duration { return r.now() }

// NextTrashRound reports when the trash timer fires next, if it is armed.
func (r *Registry) NextTrashRound() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.timer, r.st.armed
}

// Trashed returns the key of the real server in the trash with ID id.
func (r *Registry) Trashed(id uint32) (DestKey, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.st.trash {
		if e.id == id {
			return k, true
		}
	}
	return DestKey{}, false
}

// TrashedAddrs returns the address and port of every real server in the
// trash, by ID. A connection's ID is either in the table in force or here:
// an entry leaves the trash only once no connection or template holds it.
func (r *Registry) TrashedAddrs() map[uint32]netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[uint32]netip.AddrPort, len(r.st.trash))
	for k, e := range r.st.trash {
		out[e.id] = netip.AddrPortFrom(k.Addr, k.Port)
	}
	return out
}

// TrashLen is the number of real servers in the trash.
func (r *Registry) TrashLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.st.trash)
}

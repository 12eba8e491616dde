package dataplane

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/afvs/afvs/vs"
)

// DestKey names a real server within its service.
type DestKey struct {
	Svc  vs.Key
	Addr netip.Addr
	Port uint16
}

// Registry hands out the small stable IDs that index per-worker counters and
// the scheduler's load counters. A real server keeps its ID across reloads as
// long as it stays in its service. Freed IDs are reused only after every
// fresh one has been handed out, and a freed dest ID only once no connection
// is bound to it any more (busy reports that), so a late packet of an old
// connection can never be counted against a new server.
type Registry struct {
	mu      sync.Mutex
	svcs    map[vs.Key]uint32
	dests   map[DestKey]uint32
	freeSvc []uint32
	freeDst []uint32
	nextSvc uint32
	nextDst uint32
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{svcs: map[vs.Key]uint32{}, dests: map[DestKey]uint32{}}
}

func svcMapKey(k vs.Key) vs.Key {
	if k.FWMark != 0 {
		return vs.Key{FWMark: k.FWMark}
	}
	return k
}

// Assign returns IDs for every service and real server in t, allocating new
// ones as needed, and frees the IDs of those no longer present. busy reports
// whether a dest ID still has connections.
func (r *Registry) Assign(t *vs.Table, busy func(id uint32) bool) (svc map[vs.Key]uint32, dst map[DestKey]uint32, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// All or nothing: a refused table must leave the IDs of the table
	// still in force untouched.
	saved := Registry{svcs: maps.Clone(r.svcs), dests: maps.Clone(r.dests), freeSvc: slices.Clone(r.freeSvc), freeDst: slices.Clone(r.freeDst), nextSvc: r.nextSvc, nextDst: r.nextDst}
	defer func() {
		if err != nil {
			r.svcs, r.dests, r.freeSvc, r.freeDst, r.nextSvc, r.nextDst = saved.svcs, saved.dests, saved.freeSvc, saved.freeDst, saved.nextSvc, saved.nextDst
		}
	}()
	wantS := map[vs.Key]bool{}
	wantD := map[DestKey]bool{}
	for _, s := range t.Services {
		wantS[svcMapKey(s.Key)] = true
		for _, d := range s.Reals {
			wantD[DestKey{svcMapKey(s.Key), d.Addr, d.Port}] = true
		}
	}
	for k, id := range r.svcs {
		if !wantS[k] {
			delete(r.svcs, k)
			r.freeSvc = append(r.freeSvc, id)
		}
	}
	for k, id := range r.dests {
		if !wantD[k] {
			delete(r.dests, k)
			r.freeDst = append(r.freeDst, id)
		}
	}
	for k := range wantS {
		if _, ok := r.svcs[k]; ok {
			continue
		}
		id, ok := r.alloc(&r.freeSvc, &r.nextSvc, MaxServices, nil)
		if !ok {
			return nil, nil, fmt.Errorf("service %s: more than %d services: Memory allocation problem", k, MaxServices)
		}
		r.svcs[k] = id
	}
	for k := range wantD {
		if _, ok := r.dests[k]; ok {
			continue
		}
		id, ok := r.alloc(&r.freeDst, &r.nextDst, MaxDests, busy)
		if !ok {
			return nil, nil, fmt.Errorf("real server %s: more than %d real servers (or all freed IDs still have connections): Memory allocation problem", netip.AddrPortFrom(k.Addr, k.Port), MaxDests)
		}
		r.dests[k] = id
	}
	svc = make(map[vs.Key]uint32, len(r.svcs))
	for k, v := range r.svcs {
		svc[k] = v
	}
	dst = make(map[DestKey]uint32, len(r.dests))
	for k, v := range r.dests {
		dst[k] = v
	}
	return svc, dst, nil
}

func (r *Registry) alloc(free *[]uint32, next *uint32, max uint32, busy func(uint32) bool) (uint32, bool) {
	// Fresh IDs first: a reused ID would show the traffic counters of the
	// server that had it before, so freed IDs wait until the space is used
	// up, and then only those with no connection left are taken.
	if *next < max {
		id := *next
		*next++
		return id, true
	}
	for i, id := range *free {
		if busy == nil || !busy(id) {
			*free = append((*free)[:i], (*free)[i+1:]...)
			return id, true
		}
	}
	return 0, false
}

package nic

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Neighbour states, the NUD_* bits of <linux/neighbour.h>.
const (
	NudNone       = 0x00
	NudIncomplete = 0x01
	NudReachable  = 0x02
	NudStale      = 0x04
	NudDelay      = 0x08
	NudProbe      = 0x10
	NudFailed     = 0x20
	NudNoARP      = 0x40
	NudPermanent  = 0x80
)

// nudUsable are the states in which the kernel itself would transmit to the
// cached address; in the others the address is absent or known to be dead.
const nudUsable = NudReachable | NudStale | NudDelay | NudProbe | NudPermanent

// nudRefresh are the states in which a wanted entry needs a nudge: STALE
// entries are only confirmed when traffic goes through the kernel, which
// AF_XDP bypasses, and FAILED (or NONE) entries are never retried on their own.
const nudRefresh = NudStale | NudFailed

// NeighEvent is one change of the kernel's neighbour table, or one existing
// entry while a subscription lists them.
type NeighEvent struct {
	Ifindex int
	IP      netip.Addr
	// MAC is all zeros when the kernel has no link-layer address.
	MAC     [6]byte
	State   uint16
	Deleted bool
}

// NeighSource is the kernel side of Neighbors, an interface so that the
// cache logic can be tested without root.
type NeighSource interface {
	// Subscribe starts delivering events: first every existing IPv4 and IPv6
	// entry, then every change. It closes events after done is closed or when
	// the stream breaks (e.g. the socket overflowed); Neighbors then
	// subscribes again.
	Subscribe(events chan<- NeighEvent, done <-chan struct{}) error
	// Resolve asks the kernel to start resolving ip on ifindex, creating the
	// entry if needed, as a locally sent packet would. When the kernel
	// already holds a usable entry with an address, it asks nothing and
	// returns that entry as an event (have true), so that a cache which
	// missed the event that made it usable catches up.
	Resolve(ifindex int, ip netip.Addr) (cur NeighEvent, have bool, err error)
}

// NeighborsOptions tunes a Neighbors cache.
type NeighborsOptions struct {
	// Refresh is how often wanted entries that are missing, STALE or FAILED
	// get another resolution request. Zero means one second.
	Refresh time.Duration
	// OnChange runs after changes that alter what Lookup answers, on the
	// cache's own goroutine; a burst of events yields one call. It may call
	// Lookup but must not block for long or call Close.
	OnChange func()
	// OnError, if set, hears about failed subscriptions and resolution
	// requests, which the cache retries on its own.
	OnError func(error)
}

type neighKey struct {
	ifindex int
	ip      netip.Addr
}

type neighEntry struct {
	mac   [6]byte
	state uint16
}

func (e neighEntry) usable() bool {
	return e.state&nudUsable != 0 && e.mac != [6]byte{}
}

// Neighbors is a cache of the kernel's neighbour table for the control
// plane, which looks up the next-hop MACs it builds forwarding tables from.
// All methods are safe for concurrent use.
type Neighbors struct {
	src  NeighSource
	opts NeighborsOptions

	mu      sync.RWMutex
	entries map[neighKey]neighEntry
	wanted  map[neighKey]struct{}
	// lost is poked when a wanted entry that was usable stops being so
	// (deleted, as by a flush, or FAILED), so that the refresh asks for it
	// again at once rather than at its next tick: the kernel, too,
	// resolves at the first packet to it, not a second later.
	lost chan struct{}

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewNeighbors subscribes to src and starts the cache. The first
// subscription must succeed; later ones are retried.
func NewNeighbors(src NeighSource, opts NeighborsOptions) (*Neighbors, error) {
	if src == nil {
		return nil, errors.New("neighbors: source is nil")
	}
	if opts.Refresh < 0 {
		return nil, fmt.Errorf("neighbors: refresh interval %v must not be negative", opts.Refresh)
	}
	if opts.Refresh == 0 {
		opts.Refresh = time.Second
	}
	n := &Neighbors{
		src:     src,
		opts:    opts,
		entries: map[neighKey]neighEntry{},
		wanted:  map[neighKey]struct{}{},
		lost:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	events, subDone, err := n.subscribe()
	if err != nil {
		return nil, fmt.Errorf("neighbors: subscribe: %w", err)
	}
	n.wg.Add(2)
	go n.receive(events, subDone)
	go n.refresh()
	return n, nil
}

// Neighbors starts a cache of the neighbour table of k's namespace.
func (k *Kernel) Neighbors(opts NeighborsOptions) (*Neighbors, error) {
	return NewNeighbors(&netlinkNeighSource{k: k, onError: opts.OnError}, opts)
}

// Want registers a next hop the dataplane needs. Unless the kernel already
// has it REACHABLE (or is resolving it), resolution starts now, and the cache
// keeps asking while the entry is missing, STALE or FAILED. An error from the
// first request is returned, but the wish stays registered and is retried.
func (n *Neighbors) Want(ifindex int, ip netip.Addr) error {
	key, err := neighKeyOf(ifindex, ip)
	if err != nil {
		return fmt.Errorf("want neighbour: %w", err)
	}
	n.mu.Lock()
	n.wanted[key] = struct{}{}
	e, ok := n.entries[key]
	n.mu.Unlock()
	if ok && !needsNudge(e.state) {
		return nil
	}
	if err := n.resolve(key); err != nil {
		return fmt.Errorf("want neighbour %s on ifindex %d: %w", key.ip, key.ifindex, err)
	}
	return nil
}

// resolve asks the source to resolve key and takes the kernel's usable
// entry when the source reports one the cache does not hold as usable: its
// event was lost (or never sent, as for a kernel entry that was usable all
// along while the cache held it FAILED), and without this the cache would
// keep the next hop unresolved for good, since a REACHABLE kernel entry is
// never asked about again. Only an unusable cache entry is replaced, so an
// answer that raced with a newer event cannot undo it, except in the same
// narrow window in which it could also have gone the other way.
func (n *Neighbors) resolve(key neighKey) error {
	cur, have, err := n.src.Resolve(key.ifindex, key.ip)
	if err != nil || !have || cur.Ifindex != key.ifindex || cur.IP.Unmap() != key.ip {
		return err
	}
	n.mu.RLock()
	e, ok := n.entries[key]
	n.mu.RUnlock()
	if ok && e.usable() {
		return nil
	}
	if n.apply(cur) && n.opts.OnChange != nil {
		n.opts.OnChange()
	}
	return nil
}

// Forget drops a next hop registered with Want; its entry stays cached but
// is no longer refreshed.
func (n *Neighbors) Forget(ifindex int, ip netip.Addr) {
	n.mu.Lock()
	delete(n.wanted, neighKey{ifindex, ip.Unmap()})
	n.mu.Unlock()
}

// Lookup returns the MAC of ip on ifindex when the kernel holds a usable,
// non-zero one (REACHABLE, STALE, DELAY, PROBE or PERMANENT).
func (n *Neighbors) Lookup(ifindex int, ip netip.Addr) (mac [6]byte, ok bool) {
	n.mu.RLock()
	e, found := n.entries[neighKey{ifindex, ip.Unmap()}]
	n.mu.RUnlock()
	if !found || !e.usable() {
		return [6]byte{}, false
	}
	return e.mac, true
}

// Close stops the subscription and the refresh timer and waits for every
// goroutine of the cache to finish. It is safe to call more than once.
func (n *Neighbors) Close() {
	n.closeOnce.Do(func() { close(n.done) })
	n.wg.Wait()
}

func neighKeyOf(ifindex int, ip netip.Addr) (neighKey, error) {
	if ifindex <= 0 {
		return neighKey{}, fmt.Errorf("ifindex %d must be positive", ifindex)
	}
	if !ip.IsValid() {
		return neighKey{}, errors.New("address is not set")
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
		return neighKey{}, fmt.Errorf("address %s must be a unicast, non-loopback address", ip)
	}
	return neighKey{ifindex, ip}, nil
}

// needsNudge: DELAY, PROBE and INCOMPLETE are already being resolved and
// REACHABLE/PERMANENT/NOARP need nothing.
func needsNudge(state uint16) bool {
	return state == NudNone || state&nudRefresh != 0
}

func (n *Neighbors) subscribe() (chan NeighEvent, chan struct{}, error) {
	// Buffered so that the initial dump does not wait on each apply.
	events := make(chan NeighEvent, 256)
	subDone := make(chan struct{})
	if err := n.src.Subscribe(events, subDone); err != nil {
		close(subDone)
		return nil, nil, err
	}
	return events, subDone, nil
}

// receive applies events until Close, resubscribing when a stream breaks.
func (n *Neighbors) receive(events chan NeighEvent, subDone chan struct{}) {
	defer n.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		if n.consume(events) {
			close(subDone)
			for range events {
				// The source closes events once it sees subDone; draining
				// lets it finish a pending send instead of leaking.
			}
			return
		}
		// The stream broke, so events may have been lost: start from an
		// empty cache and let the new subscription's listing refill it.
		close(subDone)
		n.mu.Lock()
		hadUsable := false
		for _, e := range n.entries {
			hadUsable = hadUsable || e.usable()
		}
		clear(n.entries)
		n.mu.Unlock()
		if hadUsable && n.opts.OnChange != nil {
			n.opts.OnChange()
		}
		for {
			select {
			case <-n.done:
				return
			case <-time.After(backoff):
			}
			var err error
			events, subDone, err = n.subscribe()
			if err == nil {
				backoff = 50 * time.Millisecond
				break
			}
			n.reportError(fmt.Errorf("neighbors: resubscribe: %w", err))
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// consume applies events until Close (true) or until the stream ends (false).
func (n *Neighbors) consume(events chan NeighEvent) (closed bool) {
	for {
		select {
		case <-n.done:
			return true
		case ev, ok := <-events:
			if !ok {
				return false
			}
			changed := n.apply(ev)
			// Fold whatever else is already queued into the same callback,
			// so a listing of thousands of entries causes one rebuild.
		batch:
			for {
				select {
				case ev, ok := <-events:
					if !ok {
						break batch
					}
					changed = n.apply(ev) || changed
				default:
					break batch
				}
			}
			if changed && n.opts.OnChange != nil {
				n.opts.OnChange()
			}
		}
	}
}

// apply updates the cache and reports whether Lookup's answer changed.
func (n *Neighbors) apply(ev NeighEvent) bool {
	if ev.Ifindex <= 0 || !ev.IP.IsValid() {
		return false
	}
	key := neighKey{ev.Ifindex, ev.IP.Unmap()}
	n.mu.Lock()
	defer n.mu.Unlock()
	old, had := n.entries[key]
	if ev.Deleted {
		delete(n.entries, key)
		n.noteLost(key, had && old.usable())
		return had && old.usable()
	}
	e := neighEntry{mac: ev.MAC, state: ev.State}
	// The kernel includes NDA_LLADDR whenever the state is NUD_VALID, which
	// covers every usable state, so an update never needs the old address.
	n.entries[key] = e
	if !had {
		return e.usable()
	}
	n.noteLost(key, old.usable() && !e.usable())
	return old.usable() != e.usable() || (e.usable() && old.mac != e.mac)
}

// noteLost pokes the refresh when a wanted entry was usable and is not
// any more; n.mu is held.
func (n *Neighbors) noteLost(key neighKey, lost bool) {
	if _, ok := n.wanted[key]; !ok || !lost {
		return
	}
	select {
	case n.lost <- struct{}{}:
	default:
	}
}

// refresh re-requests resolution for wanted entries that need it, every
// Refresh and as soon as a wanted entry is lost.
func (n *Neighbors) refresh() {
	defer n.wg.Done()
	t := time.NewTicker(n.opts.Refresh)
	defer t.Stop()
	var due []neighKey
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		case <-n.lost:
		}
		due = due[:0]
		n.mu.RLock()
		for key := range n.wanted {
			e, ok := n.entries[key]
			if !ok || needsNudge(e.state) {
				due = append(due, key)
			}
		}
		n.mu.RUnlock()
		for _, key := range due {
			if err := n.resolve(key); err != nil {
				n.reportError(fmt.Errorf("neighbors: resolve %s on ifindex %d: %w", key.ip, key.ifindex, err))
			}
		}
	}
}

func (n *Neighbors) reportError(err error) {
	if n.opts.OnError != nil {
		n.opts.OnError(err)
	}
}

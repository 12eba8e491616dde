package sched

import (
	"sync"
	"sync/atomic"
	"time"
)

// The lblc/lblcr cache constants of ip_vs_lblc.c and ip_vs_lblcr.c.
const (
	cacheBits         = 10 // IP_VS_LBLC_TAB_BITS
	cacheSize         = 1 << cacheBits
	cacheMaxEntries   = cacheSize * 16 // tbl->max_size
	checkExpireTime   = 60 * time.Second
	entryTimeout      = 6 * 60 * time.Second
	countForFullCheck = 30 // COUNT_FOR_FULL_EXPIRATION
	// maxCatchUp bounds how many missed periodic checks one Schedule replays
	// after the clock jumps (a simulator skipping a quiet night).
	maxCatchUp = 100000
)

// Cache is the destination-address cache shared by lblc and lblcr: 1024
// hash buckets of entries keyed by the packet's destination address, with
// the kernel's garbage collection. Lookups are lock-free (the kernel uses
// RCU; here atomic pointers and the Go collector); inserts and collection
// take mu, where the kernel takes svc->sched_lock. The cache outlives
// rebuilds of its scheduler, as the kernel's survives dest changes.
type Cache struct {
	mu      sync.Mutex
	buckets [cacheSize]atomic.Pointer[cacheEntry]
	// entries counts as the kernel does: lblc never decrements it when it
	// replaces an entry, only collection does.
	entries   atomic.Int64
	rover     int // guarded by mu
	counter   int // guarded by mu
	nextCheck atomic.Int64
	expire    time.Duration // guarded by mu
	// weights remembers the last configured weight of every dest ID ever in
	// the service, because lblcr's set_max still reads the weight of a dest
	// that was deleted (the kernel's trashed dest keeps it).
	weights atomic.Pointer[map[uint32]int32]
}

type cacheEntry struct {
	key     [16]byte // immutable after publication
	next    atomic.Pointer[cacheEntry]
	lastuse atomic.Int64
	dest    atomic.Uint32           // lblc
	set     atomic.Pointer[destSet] // lblcr
}

// destSet is an immutable snapshot of an lblcr server set, newest first
// (list_add_rcu inserts at the head).
type destSet struct {
	ids     []uint32
	lastmod int64
}

func newCache(expire time.Duration, now int64, prev *Cache) *Cache {
	if prev != nil {
		// Workers may be running the timer on prev right now.
		prev.mu.Lock()
		prev.expire = expire
		prev.mu.Unlock()
		return prev
	}
	c := &Cache{expire: expire}
	c.counter = 1
	c.nextCheck.Store(now + int64(checkExpireTime))
	return c
}

// cacheHash is ip_vs_lblc_hashkey and ip_vs_lblcr_hashkey: hash_32 of the
// folded address, IP_VS_LBLC_TAB_BITS wide.
func cacheHash(a *[16]byte) uint32 { return hash32(fold(a), cacheBits) }

// remember records the current weights for later set_max calls. Slow path.
func (c *Cache) remember(b *base) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[uint32]int32)
	if old := c.weights.Load(); old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	for i, id := range b.ids {
		m[id] = b.weights[i]
	}
	c.weights.Store(&m)
}

func (c *Cache) get(a *[16]byte) *cacheEntry {
	for e := c.buckets[cacheHash(a)].Load(); e != nil; e = e.next.Load() {
		if e.key == *a {
			return e
		}
	}
	return nil
}

// add links a new entry at the head of its bucket (hlist_add_head_rcu).
// Caller holds mu.
func (c *Cache) add(e *cacheEntry) {
	b := &c.buckets[cacheHash(&e.key)]
	e.next.Store(b.Load())
	b.Store(e)
	c.entries.Add(1)
}

// unlink removes e from its bucket. Caller holds mu. Readers already on e
// still reach the rest of the chain through e.next.
func (c *Cache) unlink(e *cacheEntry) {
	b := &c.buckets[cacheHash(&e.key)]
	if b.Load() == e {
		b.Store(e.next.Load())
		return
	}
	for p := b.Load(); p != nil; p = p.next.Load() {
		if p.next.Load() == e {
			p.next.Store(e.next.Load())
			return
		}
	}
}

// tick runs the periodic check (the kernel's timer, every 60 s) when it is
// due, replaying missed ticks at their own times. Only one caller runs it.
func (c *Cache) tick(now int64) {
	due := c.nextCheck.Load()
	if now < due || !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	for i := 0; i < maxCatchUp; i++ {
		due = c.nextCheck.Load()
		if now < due {
			return
		}
		c.checkExpire(due)
		c.nextCheck.Store(due + int64(checkExpireTime))
	}
	c.nextCheck.Store(now + int64(checkExpireTime))
}

// checkExpire is ip_vs_lblc_check_expire / ip_vs_lblcr_check_expire: every
// 30th run a full sweep drops entries unused for the expiration; otherwise,
// only when the cache holds more than max_size entries, entries unused for
// 6 minutes are dropped, up to a goal, resuming where the last sweep ended.
// Caller holds mu.
func (c *Cache) checkExpire(now int64) {
	if c.counter%countForFullCheck == 0 {
		c.sweep(now, int64(c.expire), false, 0)
		c.counter = 1
		return
	}
	n := c.entries.Load()
	if n <= cacheMaxEntries {
		c.counter++
		return
	}
	goal := (n - cacheMaxEntries) * 4 / 3
	goal = min(goal, cacheMaxEntries/2)
	c.sweep(now, int64(entryTimeout), true, goal)
}

// sweep drops entries with now >= lastuse+age, bucket by bucket from the
// rover; if limited, it stops after the bucket where goal reaches 0.
func (c *Cache) sweep(now, age int64, limited bool, goal int64) {
	j := c.rover
	for i := 0; i < cacheSize; i++ {
		j = (j + 1) & (cacheSize - 1)
		for e := c.buckets[j].Load(); e != nil; e = e.next.Load() {
			if now < e.lastuse.Load()+age {
				continue
			}
			c.unlink(e)
			c.entries.Add(-1)
			goal--
		}
		if limited && goal <= 0 {
			break
		}
	}
	c.rover = j
}

// Len is the number of entries as the kernel counts them.
func (c *Cache) Len() int { return int(c.entries.Load()) }

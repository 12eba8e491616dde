package conntrack

// prefetch asks the CPU to start loading the cache line at each address
// and returns without waiting (PREFETCHT0). Unlike a load, a prefetch
// retires at once, so the core can go on computing while the lines are in
// flight instead of filling its window with loads that wait for DRAM.
// Addresses are hints; an invalid one is harmless.
//
//go:noescape
func prefetch(addrs []uintptr)

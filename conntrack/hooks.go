package conntrack

// Hooks receives exact per-real-server accounting events, the counts
// ipvsadm shows as ActiveConn and InActConn and the least-connection
// schedulers read. Every connection produces exactly one Bind, then any
// number of Transfers, then exactly one Unbind, each from whichever
// goroutine won the atomic update that caused it; so the counts summed
// over all queues are exact whenever the table is quiescent. Between
// goroutines the calls are not ordered: a Transfer may reach the
// implementation after the Unbind of the same connection, so a count can be
// off by the number of in-flight updates for a moment. Implementations
// must be safe for concurrent use, must not allocate and must not call
// back into the table: Bind runs while the table holds the inserting
// bucket's latch.
type Hooks interface {
	// Bind reports a new connection to dest; active is State.Active of its
	// first state.
	Bind(dest uint32, active bool)
	// Transfer reports that a connection to dest moved between the
	// inactive and the active count.
	Transfer(dest uint32, toActive bool)
	// Unbind reports that a connection to dest went away (expired,
	// evicted, or released by a reopening SYN); active is the class it was
	// counted in.
	Unbind(dest uint32, active bool)
}

type noHooks struct{}

func (noHooks) Bind(uint32, bool)     {}
func (noHooks) Transfer(uint32, bool) {}
func (noHooks) Unbind(uint32, bool)   {}

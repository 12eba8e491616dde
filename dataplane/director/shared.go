package director

import (
	"sync"
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
)

// sharedPort is a receiving socket that the workers of the director's
// other receiving interfaces also transmit on (cross-interface TX: a
// VS/NAT reply that arrives on the interface facing the real servers and
// leaves on the one facing the clients, or a client frame for a real
// server behind another receiving interface).
//
// The socket's owner, the worker that receives on it, calls it through
// this wrapper, which holds mu for each call that touches the socket's
// free list or rings. The other workers reach the bare socket through
// TxPort{Port: socket, Mu: mu} and hold mu for a whole Worker.copyOut
// (reap completions, take frames, queue them, kick). Each call keeps the
// socket's frame accounting whole, and a frame taken by Alloc or Receive
// belongs to the caller that took it until it passes it back, so callers
// interleave safely between calls. Wait (poll(2) on the descriptor) and
// the UMEM's geometry touch nothing shared and take no lock, so an owner
// asleep in poll(2) never holds up a sender. No worker holds two sockets'
// locks at once: copyOut runs after the owner's own calls have returned,
// and the owner releases the copied frames afterwards, so workers sending
// to each other's interfaces cannot deadlock.
type sharedPort struct {
	Port
	mu *sync.Mutex
}

func (p sharedPort) Fill() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Port.Fill()
}

func (p sharedPort) Receive(out []xsk.Desc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Port.Receive(out)
}

func (p sharedPort) Release(addr uint64) {
	p.mu.Lock()
	p.Port.Release(addr)
	p.mu.Unlock()
}

func (p sharedPort) Alloc() (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Port.Alloc()
}

func (p sharedPort) Transmit(descs []xsk.Desc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Port.Transmit(descs)
}

func (p sharedPort) Kick() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Port.Kick()
}

func (p sharedPort) Complete() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Port.Complete()
}

func (p sharedPort) TxPending() bool {
	tp, ok := p.Port.(txPender)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return tp.TxPending()
}

// Wait does not lock: see sharedPort.
func (p sharedPort) Wait(timeout time.Duration) error { return p.Port.Wait(timeout) }

// releaseAll gives every frame of q back to p, taking a sharedPort's lock
// once for all of them.
func releaseAll(p Port, q []xsk.Desc) {
	if s, ok := p.(sharedPort); ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		p = s.Port
	}
	for _, d := range q {
		p.Release(d.Addr)
	}
}

// bare is the socket under a sharedPort, or p itself.
func bare(p Port) Port {
	if s, ok := p.(sharedPort); ok {
		return s.Port
	}
	return p
}

package nic

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Kernel answers questions about the interfaces of one network namespace.
// Its methods are safe for concurrent use; it holds a netlink.Handle whose
// sockets live in that namespace and a duplicate of the namespace handle, so
// the caller may close its own handle right after Open.
type Kernel struct {
	h *netlink.Handle
	// ns is netns.None() for the caller's namespace.
	ns netns.NsHandle
	// local reports that ns is the namespace this process started in, the
	// only one whose interfaces /sys/class/net describes.
	local bool
	proc  string
	sys   string
}

// host is the Kernel behind the package-level functions. A zero
// netlink.Handle opens a fresh socket per request in the calling thread's
// namespace, which is what the package-level netlink functions do too.
var host = &Kernel{h: &netlink.Handle{}, ns: netns.None(), local: true, proc: "/proc", sys: "/sys"}

// Current returns the shared Kernel of the caller's namespace, the one
// behind the package-level functions. Closing it is a no-op.
func Current() *Kernel { return host }

// Open returns a Kernel for the namespace ns. netns.None() selects the
// caller's namespace.
func Open(ns netns.NsHandle) (*Kernel, error) {
	if !ns.IsOpen() {
		return &Kernel{h: &netlink.Handle{}, ns: netns.None(), local: true, proc: "/proc", sys: "/sys"}, nil
	}
	fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: duplicate handle: %w", ns, err)
	}
	dup := netns.NsHandle(fd)
	h, err := netlink.NewHandleAt(dup)
	if err != nil {
		dup.Close()
		return nil, fmt.Errorf("open namespace %s: netlink handle: %w", ns, err)
	}
	local := false
	if cur, err := netns.Get(); err == nil {
		local = cur.Equal(dup)
		cur.Close()
	}
	return &Kernel{h: h, ns: dup, local: local, proc: "/proc", sys: "/sys"}, nil
}

// Close releases the netlink sockets and the namespace handle. Neighbors
// created from k must be closed first.
func (k *Kernel) Close() {
	if k == host {
		return
	}
	k.h.Close()
	if k.ns.IsOpen() {
		k.ns.Close()
	}
}

// inNamespace runs fn on a thread switched into k's namespace, for the
// syscalls that netlink.Handle does not cover (socket creation for ioctls).
// A socket keeps the namespace it was created in, so fn only needs to create
// it there; using it afterwards works from any thread.
func (k *Kernel) inNamespace(fn func() error) error {
	if !k.ns.IsOpen() {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(k.ns); err != nil {
		return fmt.Errorf("enter namespace %s: %w", k.ns, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace; leaving it locked makes
		// the runtime destroy it when this goroutine exits instead of reusing it.
		runtime.LockOSThread()
		return fmt.Errorf("return to namespace %s: %w", orig, err)
	}
	return ferr
}

// DoIn runs fn on a new goroutine whose OS thread has entered the network
// namespace called name (a file under /run/netns, as `ip netns add`
// makes it), and waits for it. Sockets fn creates belong to that namespace
// and keep working after DoIn returns. If the thread cannot return to its
// own namespace it stays locked, so the runtime retires it with the
// goroutine instead of reusing it.
func DoIn(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			errc <- fmt.Errorf("namespace %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", name, err)
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

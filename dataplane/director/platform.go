package director

import (
	"net/netip"
	"time"

	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/dataplane/xsk"
)

// Platform is every privileged operation the Director performs: it reads
// interfaces, routes and neighbours, opens AF_XDP sockets, loads and
// attaches the XDP programs, and pins threads to CPUs. Everything else the
// Director does (the connection table, compiling snapshots, the workers'
// per-frame path) is ordinary Go that runs the same on any Platform.
//
// Kernel returns the platform of the caller's network namespace, the only
// one the daemon uses. Package dataplane/platformtest implements Platform in
// memory: its ports exchange frames through a simulated network, so whole
// directors and their real servers run in one test process without root.
//
// A Platform's methods are safe for concurrent use.
type Platform interface {
	// Lookup describes the interface called name.
	Lookup(name string) (nic.Iface, error)

	// Route says how the platform would send a packet to dst: out of
	// which interface and to which next hop. Hop.Local reports that dst
	// is an address of this host.
	Route(dst netip.Addr) (nic.Hop, error)

	// Neighbors starts a neighbour cache. opts.OnChange runs, on the
	// cache's own goroutine, after changes that alter what Lookup
	// answers.
	Neighbors(opts nic.NeighborsOptions) (Neighbors, error)

	// PlanCPUs chooses a CPU for each of dev's first queues, as
	// nic.Kernel.PlanCPUs does; override maps a queue to a fixed CPU.
	PlanCPUs(dev string, queues int, override map[int]int) ([]nic.Assignment, error)

	// Pin restricts the calling OS thread to cpu. The caller has locked
	// its goroutine to the thread.
	Pin(cpu int) error

	// OpenSocket opens an AF_XDP socket bound to queue of the interface
	// with index ifindex, sized by opt. Frames reach it only once it is
	// registered with a steering program attached to that interface; a
	// socket with opt.RxSize 0 only transmits.
	OpenSocket(ifindex, queue int, opt xsk.Options) (Socket, error)

	// LoadSteering loads a steering program for up to maxServices
	// service keys and maxQueues queues. It steers nothing until it has
	// services, sockets and an attachment.
	LoadSteering(maxServices, maxQueues int) (Steering, error)

	// LoadDecap loads the real-server side of VS/TUN: a program that
	// strips the outer header of IPIP packets addressed to one of vips.
	LoadDecap(vips []netip.Addr) (Decap, error)

	// OpenLocal opens the path by which the local node's packets reach
	// this host's own network stack, as if they had arrived on an
	// interface: a TUN device on the kernel (see nic.OpenTun).
	OpenLocal() (LocalStack, error)

	// Close releases what the platform itself holds. Sockets and
	// programs it returned must be closed first.
	Close()
}

// Neighbors is a neighbour cache: *nic.Neighbors on the kernel.
type Neighbors interface {
	// Lookup returns the usable MAC of ip on the interface ifindex.
	Lookup(ifindex int, ip netip.Addr) (mac [6]byte, ok bool)
	// Want registers a next hop the dataplane needs: it is resolved in
	// the background and kept fresh; OnChange reports the result.
	Want(ifindex int, ip netip.Addr) error
	// Close stops the cache and waits for its goroutines.
	Close()
}

// Socket is an AF_XDP socket: *xsk.Socket on the kernel. Port's methods
// belong to one goroutine at a time; Close must not race them.
type Socket interface {
	Port
	Close() error
}

// Steering is a loaded steering program: *xdpprog.Steering on the kernel.
// It redirects frames for its services to the socket registered for the
// queue they arrived on and passes everything else to the kernel.
type Steering interface {
	// RegisterSocket makes s receive queue's steered frames. s must come
	// from the same Platform.
	RegisterSocket(queue int, s Socket) error
	// SetServices replaces the service keys; on error the old set stays.
	SetServices(keys []xdpprog.ServiceKey) error
	// SetOwnerMACs sets the destination MACs (at most
	// xdpprog.MaxOwnerMACs, unicast) whose matched frames are redirected;
	// frames for any other MAC pass to the kernel. Until it is called
	// nothing is redirected; on error the old set stays.
	SetOwnerMACs(macs ...[6]byte) error
	// Attach attaches the program to the interface ifindex.
	Attach(ifindex int, mode xdpprog.Mode) (Attachment, error)
	// Block drops src's frames that would be redirected, in the
	// program, for d (the blocklist): an IPv4 source's, or every source's
	// in an IPv6 source's prefix.
	Block(src netip.Addr, d time.Duration) error
	// SetBlockPrefix6 sets the prefix length IPv6 sources are blocked by.
	SetBlockPrefix6(bits int) error
	// Stats sums the program's counters.
	Stats() (xdpprog.StatsCounters, error)
	// SetLocal turns the local-node flow check on or off.
	SetLocal(on bool) error
	// AllowLocal passes f's frames to the kernel from now on;
	// xdpprog.ErrLocalFull when the flow map is full.
	AllowLocal(f xdpprog.LocalFlow) error
	// ForgetLocal stops passing f.
	ForgetLocal(f xdpprog.LocalFlow) error
	// TakeLocalUse reports every passed flow's use since the last call
	// and resets it.
	TakeLocalUse(fn func(f xdpprog.LocalFlow, u xdpprog.LocalUse)) error
	// Close unloads the program; attachments must be closed first.
	Close() error
}

// LocalStack delivers IPv4 packets to this host's network stack.
type LocalStack interface {
	// Deliver hands one IPv4 packet to the stack; it must not allocate
	// or keep pkt.
	Deliver(pkt []byte) error
	// Name is the device the packets arrive on.
	Name() string
	Close() error
}

// Decap is a loaded decapsulation program: *xdpprog.Decap46 on the kernel.
type Decap interface {
	// Attach attaches the program to the interface ifindex.
	Attach(ifindex int, mode xdpprog.Mode) (Attachment, error)
	// Stats reads the program's counters.
	Stats() (xdpprog.Decap46Stats, error)
	// Close unloads the program; attachments must be closed first.
	Close() error
}

// Attachment is a program attached to an interface.
type Attachment interface {
	// Mode is the mode the program was attached in (never ModeAuto).
	Mode() xdpprog.Mode
	// Close detaches the program.
	Close() error
}

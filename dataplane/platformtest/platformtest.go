// Package platformtest is an in-memory director.Platform, in the spirit
// of wireguard-go's conn/bindtest: a simulated network of hosts whose
// interfaces exchange Ethernet frames, so a whole Director, two of them, or
// a Director with its clients and real servers run in one test process
// without root, XDP or namespaces.
//
// A Network holds segments (Ethernet broadcast domains, like a bridge).
// A Host is one machine's view of it and implements director.Platform: its
// interfaces, routes and neighbour table, the AF_XDP sockets it opens
// (xsktest.Ports) and the XDP programs it attaches. A frame sent out of an
// interface, by a socket's Kick or by the host's stack (Iface.Send), reaches
// every other interface on the segment whose MAC it is addressed to. There
// the interface's steering program, if attached, redirects frames for its
// services to the socket registered for the receiving queue, exactly as the
// real program decides (IPv4 TCP or UDP to a service key, else passed);
// a decapsulation program strips IPIP for its VIPs; everything else goes to
// the host's stack, which the test reads with Iface.Recv or Iface.Handle.
//
// Neighbours resolve the way ARP does: Want for an address that an
// interface on the same segment holds adds the entry and reports the change
// on the cache's goroutine. Tests change neighbours and routes at will
// (SetNeighbor, DelNeighbor, AddRoute, DelRoute) to drive the Director's
// rebuilds.
package platformtest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
)

// Network is a set of segments that hosts' interfaces join.
type Network struct {
	mu        sync.Mutex
	nextIndex int
	ifaces    map[int]*Iface // every interface of every host, by index
	// Misuse receives socket contract violations of every port; nil
	// panics.
	Misuse func(msg string)
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{nextIndex: 1, ifaces: map[int]*Iface{}}
}

// Host is one machine on the network. It implements director.Platform.
type Host struct {
	net  *Network
	Name string
	lo   *Iface

	mu        sync.Mutex
	ifaces    []*Iface
	routes    []route
	neigh     map[neighKey][6]byte
	caches    []*neighbors
	failSteer error
	pins      []int
	sockets   int           // open sockets
	sockOpts  []xsk.Options // the options of every socket opened, in order
	programs  int           // loaded programs
	local     hostLocal
	// ProxyARP makes every address resolve at once, to
	// dataplane.SyntheticMAC, whether or not an interface holds it.
	ProxyARP bool
}

type neighKey struct {
	ifindex int
	ip      netip.Addr
}

type route struct {
	dst netip.Prefix
	dev *Iface
	gw  netip.Addr
}

// Iface is a host's network interface.
type Iface struct {
	host     *Host
	Index    int
	Name     string
	MAC      [6]byte
	MTU      int
	RxQueues int
	// Addrs are the interface's addresses; SetAddrs changes them.
	Addrs   []netip.Prefix
	segment string
	open    int // open sockets, guarded by host.mu

	mu      sync.Mutex
	steer   *steering
	decap   *decap
	handler func(frame []byte)
	inbox   [][]byte
}

// AddHost adds a host with a loopback interface.
func (n *Network) AddHost(name string) *Host {
	h := &Host{net: n, Name: name, neigh: map[neighKey][6]byte{}}
	h.lo = n.addIface(h, "lo", [6]byte{}, "", 1)
	h.lo.Addrs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}
	h.lo.MTU = 65536
	return h
}

func (n *Network) addIface(h *Host, name string, mac [6]byte, segment string, queues int) *Iface {
	n.mu.Lock()
	defer n.mu.Unlock()
	ifc := &Iface{host: h, Index: n.nextIndex, Name: name, MAC: mac, MTU: 1500, RxQueues: queues, segment: segment}
	n.nextIndex++
	n.ifaces[ifc.Index] = ifc
	h.mu.Lock()
	h.ifaces = append(h.ifaces, ifc)
	h.mu.Unlock()
	return ifc
}

// AddIface gives h an interface on segment with the address addr (its
// connected route comes with it) and queues RX queues.
func (h *Host) AddIface(name string, mac [6]byte, addr netip.Prefix, segment string, queues int) *Iface {
	ifc := h.net.addIface(h, name, mac, segment, max(queues, 1))
	if addr.IsValid() {
		ifc.Addrs = append(ifc.Addrs, addr)
		h.AddRoute(addr.Masked(), name, netip.Addr{})
	}
	return ifc
}

// SetAddrs replaces ifc's addresses (not its routes), as when an address
// moves to another host.
func (ifc *Iface) SetAddrs(addrs ...netip.Prefix) {
	n, h := ifc.host.net, ifc.host
	n.mu.Lock()
	h.mu.Lock()
	ifc.Addrs = addrs
	h.mu.Unlock()
	n.mu.Unlock()
}

// Iface returns h's interface called name, or nil.
func (h *Host) Iface(name string) *Iface {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, i := range h.ifaces {
		if i.Name == name {
			return i
		}
	}
	return nil
}

// AddRoute routes dst out of dev, through gw when it is valid.
func (h *Host) AddRoute(dst netip.Prefix, dev string, gw netip.Addr) {
	ifc := h.Iface(dev)
	if ifc == nil {
		panic(fmt.Sprintf("platformtest: route %s: host %s has no interface %s", dst, h.Name, dev))
	}
	h.mu.Lock()
	h.routes = append(h.routes, route{dst.Masked(), ifc, gw})
	h.mu.Unlock()
}

// DelRoute removes the routes to exactly dst.
func (h *Host) DelRoute(dst netip.Prefix) {
	h.mu.Lock()
	h.routes = slices.DeleteFunc(h.routes, func(r route) bool { return r.dst == dst.Masked() })
	h.mu.Unlock()
}

// SetNeighbor puts ip's MAC on dev in h's neighbour table and tells every
// neighbour cache.
func (h *Host) SetNeighbor(dev string, ip netip.Addr, mac [6]byte) {
	ifc := h.Iface(dev)
	h.mu.Lock()
	h.neigh[neighKey{ifc.Index, ip}] = mac
	h.mu.Unlock()
	h.changed()
}

// DelNeighbor removes ip on dev from h's neighbour table.
func (h *Host) DelNeighbor(dev string, ip netip.Addr) {
	ifc := h.Iface(dev)
	h.mu.Lock()
	delete(h.neigh, neighKey{ifc.Index, ip})
	h.mu.Unlock()
	h.changed()
}

func (h *Host) changed() {
	h.mu.Lock()
	cs := slices.Clone(h.caches)
	h.mu.Unlock()
	for _, c := range cs {
		c.notify()
	}
}

// FailSteering makes every later SetServices of h's steering programs fail
// with err (nil: succeed again), as a full map or a kernel refusal would.
func (h *Host) FailSteering(err error) {
	h.mu.Lock()
	h.failSteer = err
	h.mu.Unlock()
}

// Pins lists the CPUs threads were pinned to, in order.
func (h *Host) Pins() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pins)
}

// Open counts the sockets and programs h has open: zero once everything
// that used h closed what it opened.
func (h *Host) Open() (sockets, programs int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sockets, h.programs
}

// Lookup implements director.Platform.
func (h *Host) Lookup(name string) (nic.Iface, error) {
	ifc := h.Iface(name)
	if ifc == nil {
		return nic.Iface{}, fmt.Errorf("interface %s: no such interface on host %s", name, h.Name)
	}
	h.mu.Lock()
	out := nic.Iface{Index: ifc.Index, Name: ifc.Name, Kind: "veth", MAC: ifc.MAC, MTU: ifc.MTU, RxQueues: ifc.RxQueues,
		Addrs: slices.Clone(ifc.Addrs)}
	h.mu.Unlock()
	for _, a := range ifc.Addrs {
		if a.Addr().Is4() {
			out.IPv4 = a.Addr()
			break
		}
	}
	return out, nil
}

// Route implements director.Platform: the longest matching prefix wins,
// and h's own addresses route through lo as local.
func (h *Host) Route(dst netip.Addr) (nic.Hop, error) {
	if !dst.IsValid() {
		return nic.Hop{}, errors.New("route: destination address is not set")
	}
	dst = dst.Unmap()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ifc := range h.ifaces {
		for _, a := range ifc.Addrs {
			if a.Addr() == dst {
				return nic.Hop{Ifindex: h.lo.Index, Dev: "lo", NextHop: dst, Src: dst, MTU: h.lo.MTU, Local: true}, nil
			}
		}
	}
	best := -1
	for i, r := range h.routes {
		if r.dst.Contains(dst) && (best < 0 || r.dst.Bits() > h.routes[best].dst.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return nic.Hop{}, fmt.Errorf("no route to %s: network is unreachable", dst)
	}
	r := h.routes[best]
	hop := nic.Hop{Ifindex: r.dev.Index, Dev: r.dev.Name, NextHop: dst, MTU: r.dev.MTU}
	if r.gw.IsValid() {
		hop.NextHop = r.gw
	}
	for _, a := range r.dev.Addrs {
		if a.Addr().Is4() == dst.Is4() {
			hop.Src = a.Addr()
			break
		}
	}
	return hop, nil
}

// PlanCPUs implements director.Platform: queue q runs on CPU q.
func (h *Host) PlanCPUs(dev string, queues int, override map[int]int) ([]nic.Assignment, error) {
	if h.Iface(dev) == nil {
		return nil, fmt.Errorf("plan cpus: no interface %s", dev)
	}
	var out []nic.Assignment
	for q := range queues {
		a := nic.Assignment{Queue: q, CPU: q, Reason: "platformtest: queue number"}
		if c, ok := override[q]; ok {
			a.CPU, a.Reason = c, "override"
		}
		out = append(out, a)
	}
	return out, nil
}

// Pin implements director.Platform: it records cpu and changes nothing.
func (h *Host) Pin(cpu int) error {
	h.mu.Lock()
	h.pins = append(h.pins, cpu)
	h.mu.Unlock()
	return nil
}

// Close implements director.Platform; a Host holds nothing to release.
func (h *Host) Close() {}

// OpenSocket implements director.Platform with an xsktest.Port whose
// transmitted frames leave through the interface.
func (h *Host) OpenSocket(ifindex, queue int, opt xsk.Options) (director.Socket, error) {
	ifc := h.byIndex(ifindex)
	if ifc == nil {
		return nil, fmt.Errorf("open socket: host %s has no interface %d", h.Name, ifindex)
	}
	if queue < 0 || queue >= ifc.RxQueues {
		return nil, fmt.Errorf("open socket on %s queue %d: the interface has %d queues", ifc.Name, queue, ifc.RxQueues)
	}
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("open socket on %s queue %d: %w", ifc.Name, queue, err)
	}
	p := xsktest.New(opt.NumFrames, opt.FrameSize)
	p.Misuse = h.net.Misuse
	p.Wire = ifc.transmit
	s := &socket{Port: p, host: h, ifc: ifc, queue: queue, rx: opt.RxSize > 0}
	h.mu.Lock()
	h.sockets++
	h.sockOpts = append(h.sockOpts, opt)
	ifc.open++
	h.mu.Unlock()
	return s, nil
}

// SocketOptions returns the options of every socket h opened, in order.
func (h *Host) SocketOptions() []xsk.Options {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]xsk.Options(nil), h.sockOpts...)
}

func (h *Host) byIndex(ifindex int) *Iface {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, i := range h.ifaces {
		if i.Index == ifindex {
			return i
		}
	}
	return nil
}

// socket is a Port bound to an interface's queue.
type socket struct {
	*xsktest.Port
	host   *Host
	ifc    *Iface
	queue  int
	rx     bool
	closed bool
}

func (s *socket) Close() error {
	s.host.mu.Lock()
	defer s.host.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.host.sockets--
	s.ifc.open--
	return s.Port.Close()
}

// Sockets counts the open sockets on h's interface dev, for tests that
// look at what a Director opened.
func (h *Host) Sockets(dev string) int {
	ifc := h.Iface(dev)
	if ifc == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return ifc.open
}

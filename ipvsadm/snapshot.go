package ipvsadm

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// ipvsVersion is the IPVS version ipvsadm reports in its header. afvs
// speaks the same table model, so it reports the version scripts expect.
const ipvsVersion = "1.2.1"

// Snapshot is the director's table at one instant, as the listing
// functions print it. The caller fills it from its own state; nothing
// here reads the kernel or the network.
type Snapshot struct {
	Size     int // connection table size, shown as "(size=N)"
	Services []Service
	Conns    []Conn
	Timeouts Timeouts
	// Daemons are the running sync daemons, at most a master and a
	// backup, with the values they run with.
	Daemons []Daemon
}

// Stats are cumulative counters of a service or real server. Out counters
// are what the director sends on.
type Stats struct {
	Conns    uint64
	InPkts   uint64
	OutPkts  uint64
	InBytes  uint64
	OutBytes uint64
}

// Rate holds the smoothed per-second rates of a service or real server.
type Rate struct {
	CPS    uint64
	InPPS  uint64
	OutPPS uint64
	InBPS  uint64
	OutBPS uint64
}

// Service is one virtual service and its real servers.
type Service struct {
	Virtual
	Sched      string
	SchedFlags []string // printed joined by commas, in the order given
	Persistent bool
	Timeout    uint32 // persistence timeout in seconds
	// Netmask is the persistence granularity as a prefix length. The zero
	// value means /0; a service without -M has 32 (IPv4) or 128 (IPv6).
	Netmask   int
	OnePacket bool
	Stats     Stats
	Rate      Rate
	Dests     []Dest
}

// Dest is one real server of a service.
type Dest struct {
	Addr         netip.Addr
	Port         uint16
	Fwd          Fwd
	Tunnel       TunnelInfo
	Weight       int
	Upper        uint32
	Lower        uint32
	Active       uint32
	Inactive     uint32
	PersistConns uint32
	Stats        Stats
	Rate         Rate
}

// Conn is one entry of the connection table.
type Conn struct {
	Proto   Proto // TCP or UDP
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Dest    netip.AddrPort
	State   string // e.g. ESTABLISHED, FIN_WAIT, UDP, NONE
	Expires time.Duration
	// PEName and PEData are the persistence engine columns of
	// -c --persistent-conn; they are printed only when PEName is set.
	PEName string
	PEData string
}

// The listing order is ipvsadm 1.31's: libipvs's ipvs_cmp_services and
// ipvs_cmp_dests under glibc's qsort, which for tables of this size is a
// stable top-down merge sort (msort_with_tmp). The comparators subtract
// two unsigned 32-bit keys and keep the result as a signed int, so two
// keys 2^31 or more apart compare the "wrong" way: 172.16.x, 192.168.x and
// 198.19.x sort before 10.x, and firewall marks of 2^31 or more before
// every other service. Such a comparison is not transitive (10.x <
// 100.64.x < 192.168.x < 10.x), and then the result depends on the input
// order; the caller passes the order the kernel's dump gives (real servers
// newest first), so the result is what ipvsadm prints.

// wrapDiff is (int)(a - b) for unsigned a and b, as C computes it.
func wrapDiff(a, b uint32) int { return int(int32(a - b)) }

// addrWords returns the address as ipvsadm sees it in union nf_inet_addr:
// four host-order words, an IPv4 address in the first.
func addrWords(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() {
		b := a.As4()
		w[0] = binary.BigEndian.Uint32(b[:])
		return w
	}
	if a.IsValid() {
		b := a.As16()
		for i := range w {
			w[i] = binary.BigEndian.Uint32(b[4*i:])
		}
	}
	return w
}

// cmpAddr compares as ipvs_cmp_services and ipvs_cmp_dests do: all four
// words while they are equal when the first operand is IPv6, else the
// first word only.
func cmpAddr(v6 bool, a, b netip.Addr) int {
	wa, wb := addrWords(a), addrWords(b)
	if !v6 {
		return wrapDiff(wa[0], wb[0])
	}
	r := 0
	for i := 0; r == 0 && i < 4; i++ {
		r = wrapDiff(wa[i], wb[i])
	}
	return r
}

// afNumber is the address family as ipvsadm compares it.
func afNumber(v6 bool) int {
	if v6 {
		return 10 // AF_INET6
	}
	return 2 // AF_INET
}

// compareServices is ipvs_cmp_services: mark, family, protocol, address,
// port. A firewall-mark service comes from the netlink dump with protocol,
// address and port 0.
func compareServices(a, b *Service) int {
	if r := wrapDiff(a.FWMark, b.FWMark); r != 0 {
		return r
	}
	if r := afNumber(a.Is6()) - afNumber(b.Is6()); r != 0 {
		return r
	}
	if r := int(protoNumber(a.Proto)) - int(protoNumber(b.Proto)); r != 0 {
		return r
	}
	if r := cmpAddr(a.Is6(), a.Addr, b.Addr); r != 0 {
		return r
	}
	return int(a.Port) - int(b.Port)
}

// compareDests is ipvs_cmp_dests: address (by the first dest's family),
// then port.
func compareDests(a, b *Dest) int {
	if r := cmpAddr(a.Addr.Is6(), a.Addr, b.Addr); r != 0 {
		return r
	}
	return int(a.Port) - int(b.Port)
}

// protoNumber is the protocol of a service as ipvsadm holds it: 0 for a
// firewall-mark service, whose dump carries no protocol.
func protoNumber(p Proto) Proto {
	if p == FWM {
		return 0
	}
	return p
}

// mergeSort sorts s as glibc's msort_with_tmp does: split into n/2 and the
// rest, sort both, merge taking from the first half while cmp <= 0. With a
// comparator that is not transitive only this exact procedure gives
// ipvsadm's order.
func mergeSort[T any](s []T, cmp func(a, b T) int) {
	if len(s) <= 1 {
		return
	}
	tmp := make([]T, len(s))
	msort(s, tmp, cmp)
}

func msort[T any](b, tmp []T, cmp func(a, b T) int) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	msort(b1, tmp, cmp)
	msort(b2, tmp, cmp)
	out := tmp[:0]
	i, j := 0, 0
	for i < len(b1) && j < len(b2) {
		if cmp(b1[i], b2[j]) <= 0 {
			out = append(out, b1[i])
			i++
		} else {
			out = append(out, b2[j])
			j++
		}
	}
	out = append(out, b1[i:]...)
	// What is left of b2 is already in place at the end of b.
	copy(b, out)
}

// sortedServices returns pointers to the services in listing order,
// leaving the snapshot as it was.
func (s *Snapshot) sortedServices(sorted bool) []*Service {
	out := make([]*Service, len(s.Services))
	for i := range s.Services {
		out[i] = &s.Services[i]
	}
	if sorted {
		mergeSort(out, compareServices)
	}
	return out
}

// sortedDests does the same for one service's real servers.
func sortedDests(svc *Service, sorted bool) []*Dest {
	out := make([]*Dest, len(svc.Dests))
	for i := range svc.Dests {
		out[i] = &svc.Dests[i]
	}
	if sorted {
		mergeSort(out, compareDests)
	}
	return out
}

// find returns the service v names, or nil.
func (s *Snapshot) find(v Virtual) *Service {
	for i := range s.Services {
		if sameVirtual(s.Services[i].Virtual, v) {
			return &s.Services[i]
		}
	}
	return nil
}

// sameVirtual compares service identities; the IPv6 flag matters only for
// firewall-mark services.
func sameVirtual(a, b Virtual) bool {
	if a.Proto == FWM || b.Proto == FWM {
		return a.Proto == b.Proto && a.FWMark == b.FWMark && a.IPv6 == b.IPv6
	}
	return a.Proto == b.Proto && a.Addr == b.Addr && a.Port == b.Port
}

package ipvsadm

import (
	"cmp"
	"net/netip"
	"slices"
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

// family orders IPv4 before IPv6, as AF_INET < AF_INET6.
func family(a netip.Addr) int {
	if a.Is6() {
		return 1
	}
	return 0
}

// compareServices is the order of ipvsadm's listing: firewall mark,
// family, protocol, address, port. Address services have mark 0 and so
// come before all firewall-mark services.
func compareServices(a, b *Service) int {
	if c := cmp.Compare(a.FWMark, b.FWMark); c != 0 {
		return c
	}
	if c := cmp.Compare(boolInt(a.Is6()), boolInt(b.Is6())); c != 0 {
		return c
	}
	if c := cmp.Compare(protoNumber(a.Proto), protoNumber(b.Proto)); c != 0 {
		return c
	}
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// compareDests orders real servers by address, then port.
func compareDests(a, b *Dest) int {
	if c := cmp.Compare(family(a.Addr), family(b.Addr)); c != 0 {
		return c
	}
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// protoNumber maps FWM to TCP, since IPVS stores firewall-mark services
// with protocol TCP and sorts them so.
func protoNumber(p Proto) Proto {
	if p == FWM {
		return TCP
	}
	return p
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortedServices returns pointers to the services in listing order,
// leaving the snapshot as it was.
func (s *Snapshot) sortedServices(sorted bool) []*Service {
	out := make([]*Service, len(s.Services))
	for i := range s.Services {
		out[i] = &s.Services[i]
	}
	if sorted {
		slices.SortStableFunc(out, compareServices)
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
		slices.SortStableFunc(out, compareDests)
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

package dataplane

import (
	"sync/atomic"

	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// Capacity limits of the per-worker counter arrays: every service and real
// server gets a stable small ID (see Registry).
const (
	MaxServices = vs.MaxServices
	MaxDests    = vs.MaxDests
)

// Traffic counts one service's or real server's traffic, as IPVS's
// ip_vs_stats: connections scheduled, packets and IP-layer bytes in (from
// clients, counted when the director passes them to a real server, as
// ip_vs_in_stats) and out (replies from real servers that pass the director
// on their way to clients, as ip_vs_out_stats). With DR and TUN replies go
// from the real server to the client directly, so out stays 0, as Linux's
// ipvsadm -L --stats shows for such services; the director's own frame
// counts (Counters.TX) say what it sent to the real servers.
type Traffic struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
}

func (t *Traffic) add(o *Traffic) {
	t.Conns += o.Conns
	t.InPkts += o.InPkts
	t.OutPkts += o.OutPkts
	t.InBytes += o.InBytes
	t.OutBytes += o.OutBytes
}

// trafficCell is written by one worker and read by the control plane. Plain
// atomic loads and adds on a line no other worker writes cost a few cycles
// and keep the race detector honest.
type trafficCell struct {
	conns, inPkts, outPkts, inBytes, outBytes atomic.Uint64
}

func (c *trafficCell) load() Traffic {
	return Traffic{c.conns.Load(), c.inPkts.Load(), c.outPkts.Load(), c.inBytes.Load(), c.outBytes.Load()}
}

// Counters are one worker's counters. Only that worker writes them.
type Counters struct {
	RX, TX, RXBytes, TXBytes atomic.Uint64
	ICMPSent                 atomic.Uint64
	ICMPForwarded            atomic.Uint64 // ICMP errors passed to the real server of the connection they quote
	Fragmented               atomic.Uint64 // VS/TUN packets split in two inner fragments
	PortErrors               atomic.Uint64 // Kick or Wait on a socket failed (the device went away)
	Local                    LocalCounters
	SYNProxy                 SYNProxyCounters
	Parse                    [header.NumReasons]atomic.Uint64
	Drops                    [NumDrops]atomic.Uint64
	SYNDrops                 [NumDrops]atomic.Uint64 // the TCP SYNs among the drops of packets that would open a connection
	svc                      [MaxServices]trafficCell
	dest                     [MaxDests]trafficCell
	_                        [64]byte
}

// Totals is a sum of counters over workers.
type Totals struct {
	RX, TX, RXBytes, TXBytes, ICMPSent uint64
	Fragmented                         uint64
	ICMPForwarded                      uint64
	PortErrors                         uint64
	LocalDelivered, LocalFlows         uint64
	LocalFull                          uint64
	SYNProxy                           SYNProxyTotals
	Parse                              [header.NumReasons]uint64
	Drops                              [NumDrops]uint64
	SYNDrops                           [NumDrops]uint64
}

// Add sums c into t.
func (t *Totals) Add(c *Counters) {
	t.RX += c.RX.Load()
	t.TX += c.TX.Load()
	t.RXBytes += c.RXBytes.Load()
	t.TXBytes += c.TXBytes.Load()
	t.ICMPSent += c.ICMPSent.Load()
	t.Fragmented += c.Fragmented.Load()
	t.ICMPForwarded += c.ICMPForwarded.Load()
	t.PortErrors += c.PortErrors.Load()
	t.LocalDelivered += c.Local.Delivered.Load()
	t.LocalFlows += c.Local.Flows.Load()
	t.LocalFull += c.Local.Full.Load()
	t.SYNProxy.add(&c.SYNProxy)
	for i := range c.Parse {
		t.Parse[i] += c.Parse[i].Load()
	}
	for i := range c.Drops {
		t.Drops[i] += c.Drops[i].Load()
		t.SYNDrops[i] += c.SYNDrops[i].Load()
	}
}

// Service returns the traffic of service ID id counted by this worker.
func (c *Counters) Service(id uint32) Traffic {
	if int(id) >= MaxServices {
		return Traffic{}
	}
	return c.svc[id].load()
}

// Dest returns the traffic of real server ID id counted by this worker.
func (c *Counters) Dest(id uint32) Traffic {
	if int(id) >= MaxDests {
		return Traffic{}
	}
	return c.dest[id].load()
}

// SumTraffic adds up the traffic of a service or dest over workers.
func SumTraffic(cs []*Counters, f func(*Counters) Traffic) Traffic {
	var t Traffic
	for _, c := range cs {
		x := f(c)
		t.add(&x)
	}
	return t
}

// SYNProxyCounters count the SYN proxy's work (synproxy.go).
type SYNProxyCounters struct {
	Cookies      atomic.Uint64 // SYN-ACKs with a cookie sent to clients
	Opened       atomic.Uint64 // valid cookies: connections made, SYNs sent to real servers
	Established  atomic.Uint64 // real servers' SYN-ACKs answered: connections translated from then on
	Held         atomic.Uint64 // client segments held until their real server answered
	Resent       atomic.Uint64 // SYNs sent again to a real server that had not answered
	HoldReplaced atomic.Uint64 // held segments dropped for a newer connection's in the same hold slot
}

// SYNProxyTotals is SYNProxyCounters summed over workers.
type SYNProxyTotals struct {
	Cookies, Opened, Established, Held, Resent, HoldReplaced uint64
}

func (t *SYNProxyTotals) add(c *SYNProxyCounters) {
	t.Cookies += c.Cookies.Load()
	t.Opened += c.Opened.Load()
	t.Established += c.Established.Load()
	t.Held += c.Held.Load()
	t.Resent += c.Resent.Load()
	t.HoldReplaced += c.HoldReplaced.Load()
}

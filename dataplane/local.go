package dataplane

import (
	"net/netip"
	"sync/atomic"
)

// The local node (IPVS's IP_VS_CONN_F_LOCALNODE): a real server whose
// address is one of the director's own. IPVS hands such a connection's
// packets to the local stack unchanged (ip_vs_null_xmit). Here the
// Processor schedules and tracks the connection like any other, and
// answers VerdictLocal with the frame's IP packet (IPv4 or IPv6, which
// the director's TUN device takes alike); the worker gives
// the packet to the director's network stack and, for the connection's
// first packet, asks the steering program to pass the connection's later
// frames to the kernel itself (see package dataplane/director).

// local answers VerdictLocal for the frame at off: its IP packet, without
// Ethernet header, VLAN tag or padding.
func (p *Processor) local(off int) (Verdict, Out) {
	pk := p.pk
	return VerdictLocal, Out{Off: off + pk.L3, Len: pk.End - pk.L3}
}

// Flow describes the frame the last Process or ProcessParsed call handled:
// its addresses (of its own family), ports and protocol. Workers read it
// after VerdictLocal.
func (p *Processor) Flow() (src, dst netip.Addr, sport, dport uint16, proto uint8) {
	pk := p.pk
	if pk.IPv6 {
		src, dst = netip.AddrFrom16(pk.SrcMapped), netip.AddrFrom16(pk.DstMapped)
	} else {
		src, dst = netip.AddrFrom4(pk.Src), netip.AddrFrom4(pk.Dst)
	}
	return src, dst, pk.SrcPort, pk.DstPort, pk.Proto
}

// HasLocal reports whether a real server of s is local to the director.
func (s *Snapshot) HasLocal() bool {
	if s == nil {
		return false
	}
	for i := range s.Services {
		for _, d := range s.Services[i].Dests {
			if d.Local {
				return true
			}
		}
	}
	return false
}

// LocalCounters count a worker's local-node work.
type LocalCounters struct {
	// Delivered: packets the worker handed to the director's stack (a
	// connection's first, and any that reached the worker before or
	// without the steering program's pass decision).
	Delivered atomic.Uint64
	// Flows: connections the steering program was told to pass.
	Flows atomic.Uint64
	// Full: connections the steering program's flow map had no room
	// for (or refused); the worker delivers all their packets itself.
	Full atomic.Uint64
}

// AddIn counts packets and IP-layer bytes in for service svc and real
// server dest that the director saw without processing them: the local
// node's frames the steering program passed to the kernel. Only a
// Counters no Processor writes may take them (Flush stores over what
// others add).
func (c *Counters) AddIn(svc, dest uint32, pkts, bytes uint64) {
	if svc >= MaxServices || dest >= MaxDests {
		return
	}
	c.svc[svc].inPkts.Add(pkts)
	c.svc[svc].inBytes.Add(bytes)
	c.dest[dest].inPkts.Add(pkts)
	c.dest[dest].inBytes.Add(bytes)
}

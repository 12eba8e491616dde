package dataplane

import "github.com/afvs/afvs/encap"

// fragment4in6 sends an IPv4 packet without DF that is too big for its
// IPv6 tunnel as two inner IPv4 fragments, each in its own IPv6 packet
// (encap.Fragment4in6), as emit does for an IPIP tunnel: the first in
// place, the second from Processor.Second, counted as fragmented. What
// two fragments cannot carry, or a packet with IP options, is dropped as
// too_big.
func (p *Processor) fragment4in6(d *Dest, eg *Iface, buf []byte, off, n int, out Out) (Verdict, Out) {
	c := p.c
	no, nn, n2, ok := encap.Fragment4in6(buf, off, n, p.pk, eg.MTU, eg.Addr6, d.Addr6, eg.MAC, d.MAC, p.second[:])
	if !ok {
		c.Drops[DropTooBig].Add(1)
		return VerdictDrop, Out{}
	}
	p.secondN = n2
	c.Fragmented.Add(1)
	out.Off, out.Len, out.Second = no, nn, true
	return VerdictForward, out
}

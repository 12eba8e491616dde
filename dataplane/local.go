package dataplane

// The local node (IPVS's IP_VS_CONN_F_LOCALNODE): a real server whose
// address is one of the director's own. IPVS hands such a connection's
// packets to the local stack unchanged (ip_vs_null_xmit). Here the
// Processor schedules and tracks the connection like any other, and
// answers VerdictLocal with the frame's IPv4 packet; the worker gives
// the packet to the director's network stack and, for the connection's
// first packet, asks the steering program to pass the connection's later
// frames to the kernel itself (see package dataplane/director).

// local answers VerdictLocal for the frame at off: its IPv4 packet,
// without Ethernet header, VLAN tag or padding.
func (p *Processor) local(off int) (Verdict, Out) {
	pk := p.pk
	return VerdictLocal, Out{Off: off + pk.L3, Len: pk.End - pk.L3}
}

// Flow describes the frame the last Process or ProcessParsed call handled:
// its addresses, ports and protocol. Workers read it after VerdictLocal.
func (p *Processor) Flow() (src, dst [4]byte, sport, dport uint16, proto uint8) {
	pk := p.pk
	return pk.Src, pk.Dst, pk.SrcPort, pk.DstPort, pk.Proto
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

package conntrack

import "fmt"

// Sysctls are the IPVS sysctls (net.ipv4.vs.*) that shape a connection's
// life. The connection table applies ConnReuseMode itself; the other two
// are read by the dataplane on the packets they concern. The zero value
// is not the kernel's default: start from DefaultSysctls.
type Sysctls struct {
	// ConnReuseMode is conn_reuse_mode, a bitmap. 0: a SYN on an existing
	// connection entry is just a packet of it (the state table takes it to
	// SYN_RECV and it stays with its real server). Bit 1 (value 1): a SYN
	// on an entry in TIME_WAIT or CLOSE that no persistence template
	// controls expires the entry and is scheduled as a new connection.
	// Bit 2 (value 2): a SYN on a FIN_WAIT entry that saw no output does
	// the same; the director never sees a real server's replies in VS/DR
	// and VS/TUN, so that is every FIN_WAIT entry. The kernel's
	// ip_vs_in_hook enters its reuse check whenever the value is not 0 and
	// never tests bit 1 itself, so 2 behaves like 3. A non-zero value also
	// gates ExpireNodestConn's rescheduling of a SYN to a quiesced server.
	// Kernel default 1.
	ConnReuseMode int
	// ExpireNodestConn is expire_nodest_conn. When set, a packet of an
	// entry whose real server is no longer available expires the entry at
	// once (a SYN, any UDP packet, or with SloppyTCP any TCP packet but a
	// RST, is then scheduled afresh; other TCP packets are dropped), and with ConnReuseMode non-zero a SYN of an
	// entry whose server has weight 0 is rescheduled. When clear such
	// packets are dropped and the entry runs out its timeout. Kernel
	// default 0.
	ExpireNodestConn bool
	// ExpireQuiescentTemplate is expire_quiescent_template. When set, a
	// persistence template whose real server has weight 0 is dropped at
	// the next connection that would use it, which is then scheduled
	// afresh. When clear such a template keeps sending its clients to the
	// quiesced server until it expires. Kernel default 0.
	ExpireQuiescentTemplate bool
	// SloppyTCP is sloppy_tcp. When set, any TCP packet without an entry
	// except a RST is scheduled and creates one, as tcp_conn_schedule
	// does, instead of only a SYN; the entry starts in the state that
	// packet's flag takes NONE to (an ACK: ESTABLISHED, a FIN: CLOSE, no
	// flag: NONE). It lets a director take over connections it never saw
	// open (a failover whose sync missed them); with a consistent
	// scheduler (mh, sh) they reach the same real server. With
	// ExpireNodestConn it also reschedules a non-SYN packet of an entry
	// whose server is gone. Kernel default 0. UDP needs no such switch:
	// every UDP packet without an entry is scheduled (udp_conn_schedule).
	SloppyTCP bool
}

// DefaultSysctls returns the kernel's defaults: conn_reuse_mode 1,
// expire_nodest_conn 0, expire_quiescent_template 0, sloppy_tcp 0.
func DefaultSysctls() Sysctls { return Sysctls{ConnReuseMode: 1} }

// Validate reports a value outside what the kernel defines, naming the
// sysctl and the rule.
func (s Sysctls) Validate() error {
	if s.ConnReuseMode < 0 || s.ConnReuseMode > 3 {
		return fmt.Errorf("conn_reuse_mode = %d: must be 0 to 3 (bit 1 reschedules a SYN on TIME_WAIT/CLOSE, bit 2 also on FIN_WAIT)", s.ConnReuseMode)
	}
	return nil
}

const (
	sysReuseMask      = 3
	sysExpireNodest   = 1 << 2
	sysExpireQuiesced = 1 << 3
	sysSloppyTCP      = 1 << 4
)

func (s Sysctls) pack() uint32 {
	v := uint32(s.ConnReuseMode) & sysReuseMask
	if s.ExpireNodestConn {
		v |= sysExpireNodest
	}
	if s.ExpireQuiescentTemplate {
		v |= sysExpireQuiesced
	}
	if s.SloppyTCP {
		v |= sysSloppyTCP
	}
	return v
}

func unpackSysctls(v uint32) Sysctls {
	return Sysctls{
		ConnReuseMode:           int(v & sysReuseMask),
		ExpireNodestConn:        v&sysExpireNodest != 0,
		ExpireQuiescentTemplate: v&sysExpireQuiesced != 0,
		SloppyTCP:               v&sysSloppyTCP != 0,
	}
}

// SetSysctls changes the sysctls; they apply from the next packet. An
// invalid value changes nothing.
func (t *Table) SetSysctls(s Sysctls) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	t.sys.Store(s.pack())
	return nil
}

// Sysctls returns the sysctls in force. It is one atomic load.
func (t *Table) Sysctls() Sysctls { return unpackSysctls(t.sys.Load()) }

// newConnExpected is IPVS's is_new_conn_expected for a TCP entry in state
// s, gated by conn_reuse_mode as ip_vs_in_hook gates it: a controlled
// connection never; TIME_WAIT and CLOSE when the mode is not 0; FIN_WAIT
// too with bit 2 (every entry here saw no output).
func (t *Table) newConnExpected(s State, controlled bool) bool {
	mode := t.sys.Load() & sysReuseMask
	if mode == 0 || controlled {
		return false
	}
	return s == TimeWait || s == Close || (mode&2 != 0 && s == FinWait)
}

// NewConnExpected reports whether a SYN on c would make Touch answer
// Reopen under the sysctls in force, without touching the entry.
func (t *Table) NewConnExpected(c *Conn) bool {
	return t.newConnExpected(c.State, c.Controlled())
}

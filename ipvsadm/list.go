package ipvsadm

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrNoService is returned when a listing names a service the snapshot
// does not hold; the text is ipvsadm's.
var ErrNoService = errors.New("No such service")

// Write prints the snapshot as the command asks: a List command in any of
// its forms (all services, one service, -c, --timeout) or a Save.
func (s *Snapshot) Write(w io.Writer, c *Command) error {
	switch c.Kind {
	case Save:
		return s.WriteSave(w)
	case List:
	default:
		return fmt.Errorf("write snapshot: command %s does not print the table", c.Kind)
	}
	switch {
	case c.List.Connection:
		return s.WriteConns(w, c.List)
	case c.HasService:
		return s.WriteService(w, c.Service, c.List)
	case c.List.Timeout:
		return s.WriteTimeouts(w)
	case c.List.Daemon:
		return WriteDaemons(w, s.Daemons)
	}
	return s.WriteList(w, c.List)
}

// WriteList prints every service as ipvsadm -L does, header included.
// Addresses are always numeric.
func (s *Snapshot) WriteList(w io.Writer, o ListOptions) error {
	b := fmt.Appendf(nil, "IP Virtual Server version %s (size=%d)\n", ipvsVersion, s.Size)
	b = appendTitle(b, o)
	for _, svc := range s.sortedServices(!o.NoSort) {
		b = appendService(b, svc, o)
	}
	_, err := w.Write(b)
	return err
}

// WriteService prints one service as ipvsadm -L -t|-u|-f does, without
// the version header.
func (s *Snapshot) WriteService(w io.Writer, v Virtual, o ListOptions) error {
	svc := s.find(v)
	if svc == nil {
		return ErrNoService
	}
	b := appendTitle(nil, o)
	b = appendService(b, svc, o)
	_, err := w.Write(b)
	return err
}

// WriteDaemons prints the -L --daemon listing as ipvsadm 1.31's
// list_daemon does: one line per running daemon, the master's first (the
// order the kernel reports them in), and each optional value only when it
// is set. With no daemon it prints nothing.
func WriteDaemons(w io.Writer, ds []Daemon) error {
	var b []byte
	for _, state := range []DaemonState{Master, Backup} {
		for _, d := range ds {
			if d.State != state {
				continue
			}
			b = fmt.Appendf(b, "%s sync daemon (mcast=%s, syncid=%d", d.State, d.McastIfn, d.SyncID)
			if d.SyncMaxlen != 0 {
				b = fmt.Appendf(b, ", maxlen=%d", d.SyncMaxlen)
			}
			if d.McastGroup.IsValid() {
				b = fmt.Appendf(b, ", group=%s", d.McastGroup)
			}
			if d.McastPort != 0 {
				b = fmt.Appendf(b, ", port=%d", d.McastPort)
			}
			if d.McastTTL != 0 {
				b = fmt.Appendf(b, ", ttl=%d", d.McastTTL)
			}
			b = append(b, ")\n"...)
		}
	}
	_, err := w.Write(b)
	return err
}

// WriteTimeouts prints the --timeout line.
func (s *Snapshot) WriteTimeouts(w io.Writer) error {
	t := s.Timeouts
	_, err := fmt.Fprintf(w, "Timeout (tcp tcpfin udp): %d %d %d\n", t.TCP, t.TCPFin, t.UDP)
	return err
}

// WriteConns prints the connection table as ipvsadm -L -c does, in the
// snapshot's order; with PersistentConn it adds the persistence engine
// columns.
func (s *Snapshot) WriteConns(w io.Writer, o ListOptions) error {
	b := []byte("IPVS connection entries\n")
	if o.PersistentConn {
		b = fmt.Appendf(b, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		b = fmt.Appendf(b, "pro expire %-11s %-18s %-18s %s\n",
			"state", "source", "virtual", "destination")
	}
	for i := range s.Conns {
		c := &s.Conns[i]
		secs := max(int64(c.Expires.Seconds()), 0)
		expire := fmt.Sprintf("%02d:%02d", secs/60, secs%60)
		client := hostPort(c.Client.Addr(), c.Client.Port())
		virtual := hostPort(c.Virtual.Addr(), c.Virtual.Port())
		dest := hostPort(c.Dest.Addr(), c.Dest.Port())
		if o.PersistentConn && c.PEName != "" {
			b = fmt.Appendf(b, "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n",
				c.Proto, expire, c.State, client, virtual, dest, c.PEName, c.PEData)
		} else {
			b = fmt.Appendf(b, "%-3s %-6s %-11s %-18s %-18s %s\n",
				c.Proto, expire, c.State, client, virtual, dest)
		}
	}
	_, err := w.Write(b)
	return err
}

// appendTitle writes the column headings; the first matching option wins,
// in ipvsadm's order of precedence.
func appendTitle(b []byte, o ListOptions) []byte {
	const left = "Prot LocalAddress:Port"
	const dest = "  -> RemoteAddress:Port\n"
	switch {
	case o.Stats:
		b = fmt.Appendf(b, "%-33s %8s %8s %8s %8s %8s\n", left, "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
		return append(b, dest...)
	case o.Rate:
		b = fmt.Appendf(b, "%-33s %8s %8s %8s %8s %8s\n", left, "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
		return append(b, dest...)
	case o.Thresholds:
		b = fmt.Appendf(b, "%-33s %-10s %-10s %-10s %-10s\n", left, "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
		return append(b, dest...)
	case o.PersistentConn:
		b = fmt.Appendf(b, "%-33s %-9s %-11s %-10s %-10s\n", left, "Weight", "PersistConn", "ActiveConn", "InActConn")
		return append(b, dest...)
	case o.TunInfo:
		return append(b, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"...)
	}
	return append(b, "Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"...)
}

// serviceName is the first column of a service line: "TCP  addr:port" or
// "FWM  mark". ipvsadm cuts IPv4 names to 33 bytes and leaves IPv6 ones
// whole, so long IPv6 names push the later columns right.
func serviceName(v *Virtual) string {
	if v.Proto == FWM {
		// "FWM  %u", as print_service_entry writes it.
		s := "FWM  " + strconv.FormatUint(uint64(v.FWMark), 10)
		if v.IPv6 {
			s += " IPv6"
		}
		return s
	}
	s := fmt.Sprintf("%-4s %s", v.Proto, hostPort(v.Addr, v.Port))
	if !v.Is6() && len(s) > 33 {
		s = s[:33]
	}
	return s
}

// destName is the first column of a real-server line. ipvsadm cuts the
// name to 28 bytes when the real server is IPv4 (e->af != AF_INET6, the
// family the kernel's dump gives each real server), which a numeric IPv4
// name never reaches, and leaves IPv6 names whole, in an IPv4 service (a
// 4in6 tunnel) as in an IPv6 one, so long ones push the later columns
// right.
func destName(_ *Service, d *Dest) string {
	s := hostPort(d.Addr, d.Port)
	if !d.Addr.Is6() && len(s) > 28 {
		s = s[:28]
	}
	return s
}

func appendService(b []byte, svc *Service, o ListOptions) []byte {
	name := serviceName(&svc.Virtual)
	switch {
	case o.Stats:
		b = fmt.Appendf(b, "%-33s", name)
		b = appendStats(b, svc.Stats, o.Exact)
	case o.Rate:
		b = fmt.Appendf(b, "%-33s", name)
		b = appendRate(b, svc.Rate, o.Exact)
	default:
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, svc.Sched...)
		if hasSchedFlags(svc.SchedFlags) {
			b = append(b, " ("...)
			b = append(b, schedFlagsText(svc.Sched, svc.SchedFlags)...)
			b = append(b, ')')
		}
		if svc.Persistent {
			b = fmt.Appendf(b, " persistent %d", svc.Timeout)
			if svc.Netmask != svc.bits() {
				b = append(b, " mask "...)
				b = append(b, maskString(svc.Netmask, svc.Is6())...)
			}
		}
		if svc.OnePacket {
			b = append(b, " ops"...)
		}
	}
	b = append(b, '\n')

	for _, d := range sortedDests(svc, !o.NoSort) {
		name := destName(svc, d)
		switch {
		case o.Stats:
			b = fmt.Appendf(b, "  -> %-28s", name)
			b = appendStats(b, d.Stats, o.Exact)
			b = append(b, '\n')
		case o.Rate:
			// ipvsadm never shortens the first three rate columns.
			b = fmt.Appendf(b, "  -> %-28s %8d %8d %8d", name, d.Rate.CPS, d.Rate.InPPS, d.Rate.OutPPS)
			b = appendLargenum(b, d.Rate.InBPS, o.Exact)
			b = appendLargenum(b, d.Rate.OutBPS, o.Exact)
			b = append(b, '\n')
		case o.Thresholds:
			b = fmt.Appendf(b, "  -> %-28s %-10d %-10d %-10d %-10d\n", name, d.Upper, d.Lower, d.Active, d.Inactive)
		case o.PersistentConn:
			b = fmt.Appendf(b, "  -> %-28s %-9d %-11d %-10d %-10d\n", name, d.Weight, d.PersistConns, d.Active, d.Inactive)
		case o.TunInfo:
			b = fmt.Appendf(b, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", name, d.Fwd, tunInfo(d), d.Weight, d.Active, d.Inactive)
		default:
			b = fmt.Appendf(b, "  -> %-28s %-7s %-6d %-10d %-10d\n", name, d.Fwd, d.Weight, d.Active, d.Inactive)
		}
	}
	return b
}

// tunInfo is the TunnelInfo column as fwd_tun_info writes it: "ipip",
// "gue:port:csum", "gre:csum", or "n/a" for a server that is not
// tunnelled.
func tunInfo(d *Dest) string {
	if d.Fwd != Tunnel {
		return "n/a"
	}
	switch d.Tunnel.Type {
	case GUE:
		return fmt.Sprintf("gue:%d:%s", d.Tunnel.Port, d.Tunnel.Csum.short())
	case GRE:
		return "gre:" + d.Tunnel.Csum.short()
	}
	return "ipip"
}

// short is the checksum mode as --tun-info shows it.
func (c TunCsum) short() string {
	switch c {
	case Csum:
		return "+c"
	case RemCsum:
		return "r+c"
	}
	return "-c"
}

// option is the checksum mode as -S writes it.
func (c TunCsum) option() string {
	switch c {
	case Csum:
		return "--tun-csum"
	case RemCsum:
		return "--tun-remcsum"
	}
	return "--tun-nocsum"
}

func appendStats(b []byte, s Stats, exact bool) []byte {
	for _, v := range [...]uint64{s.Conns, s.InPkts, s.OutPkts, s.InBytes, s.OutBytes} {
		b = appendLargenum(b, v, exact)
	}
	return b
}

func appendRate(b []byte, r Rate, exact bool) []byte {
	for _, v := range [...]uint64{r.CPS, r.InPPS, r.OutPPS, r.InBPS, r.OutBPS} {
		b = appendLargenum(b, v, exact)
	}
	return b
}

// appendLargenum writes a counter in a 9-byte column. Without --exact,
// values from 10^8 on are divided down and suffixed K, M, G or T so the
// column never widens; with --exact a value wider than 8 digits gets
// exactly one leading space instead.
func appendLargenum(b []byte, v uint64, exact bool) []byte {
	if exact {
		width := 9
		if n := len(strconv.FormatUint(v, 10)); n > 8 {
			width = n + 1
		}
		return fmt.Appendf(b, "%*d", width, v)
	}
	switch {
	case v < 100_000_000:
		return fmt.Appendf(b, "%9d", v)
	case v < 1_000_000_000:
		return fmt.Appendf(b, "%8dK", v/1_000)
	case v < 100_000_000_000:
		return fmt.Appendf(b, "%8dM", v/1_000_000)
	case v < 100_000_000_000_000:
		return fmt.Appendf(b, "%8dG", v/1_000_000_000)
	}
	return fmt.Appendf(b, "%8dT", v/1_000_000_000_000)
}

// schedFlagsText is ipvsadm's print_sched_flags: the service's flag bits,
// named after its scheduler and joined by commas. ipvsadm keeps bits, not
// the words given to -b, so sh and mh call IP_VS_SVC_F_SCHED1 and SCHED2
// fallback and port whichever name set them (-s sh -b flag-1,flag-2 lists
// as sh-fallback,sh-port) and have no name for SCHED3, which they leave
// out; every other scheduler names the three bits flag-1, flag-2 and
// flag-3. Whether a flag is set at all is hasSchedFlags: ipvsadm prints
// " (" and ")" around the text, or " -b " before it, whenever a bit is
// set, even when the text is empty (-s sh -b flag-3 lists as "sh ()").
func schedFlagsText(sched string, flags []string) string {
	set := schedFlagBits(flags)
	names := [3]string{"flag-1", "flag-2", "flag-3"}
	if sched == "sh" || sched == "mh" {
		names = [3]string{sched + "-fallback", sched + "-port", ""}
	}
	var out []string
	for i, on := range set {
		if on && names[i] != "" {
			out = append(out, names[i])
		}
	}
	return strings.Join(out, ",")
}

// hasSchedFlags reports whether any of the three scheduler flag bits is
// set.
func hasSchedFlags(flags []string) bool {
	return schedFlagBits(flags) != [3]bool{}
}

// schedFlagBits maps -b's words to IP_VS_SVC_F_SCHED1..3.
func schedFlagBits(flags []string) [3]bool {
	var set [3]bool
	for _, f := range flags {
		switch f {
		case "flag-1", "sh-fallback", "mh-fallback":
			set[0] = true
		case "flag-2", "sh-port", "mh-port":
			set[1] = true
		case "flag-3":
			set[2] = true
		}
	}
	return set
}

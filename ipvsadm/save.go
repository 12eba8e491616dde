package ipvsadm

import (
	"fmt"
	"io"
)

// WriteSave prints the table as the commands that rebuild it, as
// ipvsadm -S -n does: one -A line per service, then one -a line per real
// server, in listing order. Like ipvsadm it writes only what -A and -a
// need to recreate the table: thresholds and counters are not saved, and
// -M appears only for persistent services.
func (s *Snapshot) WriteSave(w io.Writer) error {
	var b []byte
	for _, svc := range s.sortedServices(true) {
		name := svc.flag()
		b = fmt.Appendf(b, "-A %s -s %s", name, svc.Sched)
		if svc.Persistent {
			b = fmt.Appendf(b, " -p %d", svc.Timeout)
			if svc.Netmask != svc.bits() {
				b = append(b, " -M "...)
				b = append(b, maskString(svc.Netmask, svc.Is6())...)
			}
		}
		if svc.OnePacket {
			b = append(b, " -o"...)
		}
		if hasSchedFlags(svc.SchedFlags) {
			// A lone flag-3 under sh or mh has no name there, so this
			// writes "-b " and nothing after it, as ipvsadm does.
			b = append(b, " -b "...)
			b = append(b, schedFlagsText(svc.Sched, svc.SchedFlags)...)
		}
		b = append(b, '\n')
		for _, d := range sortedDests(svc, true) {
			b = fmt.Appendf(b, "-a %s -r %s %s -w %d", name, hostPort(d.Addr, d.Port), fwdFlag(d.Fwd), d.Weight)
			if d.Fwd == Tunnel {
				// ipvsadm 1.31 names the tunnel type of every -i server.
				b = append(b, " --tun-type "...)
				b = append(b, d.Tunnel.Type.String()...)
				switch d.Tunnel.Type {
				case GUE:
					b = fmt.Appendf(b, " --tun-port %d %s", d.Tunnel.Port, d.Tunnel.Csum.option())
				case GRE:
					// print_tunnel_rule names GRE's checksum mode too.
					b = append(b, ' ')
					b = append(b, d.Tunnel.Csum.option()...)
				}
			}
			b = append(b, '\n')
		}
	}
	_, err := w.Write(b)
	return err
}

package api

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/vs"
)

// IpvsadmSnapshot fetches from the daemon what an ipvsadm listing or save
// needs (services, real servers, counters, rates, timeouts and, with conns,
// the connection table) in the ipvsadm package's model.
func (c *Client) IpvsadmSnapshot(conns bool) (*ipvsadm.Snapshot, error) {
	st, err := c.Status()
	if err != nil {
		return nil, err
	}
	snap := &ipvsadm.Snapshot{Size: int(st.Table.Capacity)}
	for _, d := range st.Sync.Daemons {
		o := ipvsadm.Daemon{McastIfn: d.Interface, SyncID: d.SyncID, SyncMaxlen: d.MaxLen, McastPort: d.Port, McastTTL: d.TTL}
		switch d.State {
		case "master":
			o.State = ipvsadm.Master
		case "backup":
			o.State = ipvsadm.Backup
		default:
			return nil, fmt.Errorf("afvs sent a bad sync daemon state %q", d.State)
		}
		if d.Group != "" {
			g, err := netip.ParseAddr(d.Group)
			if err != nil {
				return nil, fmt.Errorf("afvs sent a bad sync group %q: %w", d.Group, err)
			}
			o.McastGroup = g
		}
		snap.Daemons = append(snap.Daemons, o)
	}
	to, err := c.Timeouts()
	if err != nil {
		return nil, err
	}
	snap.Timeouts = ipvsadm.Timeouts{TCP: to.TCP, TCPFin: to.TCPFin, UDP: to.UDP}
	svcs, err := c.Services()
	if err != nil {
		return nil, err
	}
	// The daemon's answers are parsed, not trusted: a mismatched daemon
	// gets an error naming the field, never a panic.
	var perr error
	addr := func(what, v string) netip.Addr {
		a, err := netip.ParseAddr(v)
		if err != nil && perr == nil {
			perr = fmt.Errorf("afvs sent a bad %s %q: %w", what, v, err)
		}
		return a
	}
	addrPort := func(what, v string) netip.AddrPort {
		a, err := netip.ParseAddrPort(v)
		if err != nil && perr == nil {
			perr = fmt.Errorf("afvs sent a bad %s %q: %w", what, v, err)
		}
		return a
	}
	for _, s := range svcs {
		o := ipvsadm.Service{Sched: s.Scheduler, SchedFlags: s.SchedFlags, Persistent: s.Persistent, Timeout: s.Timeout, Netmask: 32, OnePacket: s.OnePacket,
			Stats: ipvsadm.Stats(s.Stats), Rate: ipvsadm.Rate(s.Rate)}
		switch s.Proto {
		case "fwm":
			o.Virtual = ipvsadm.Virtual{Proto: ipvsadm.FWM, FWMark: s.FWMark, IPv6: s.IPv6}
		case "udp":
			o.Virtual = ipvsadm.Virtual{Proto: ipvsadm.UDP, Addr: addr("service address", s.Address), Port: s.Port}
		default:
			o.Virtual = ipvsadm.Virtual{Proto: ipvsadm.TCP, Addr: addr("service address", s.Address), Port: s.Port}
		}
		if o.Virtual.Is6() {
			o.Netmask = 128
		}
		if s.Netmask != "" {
			// A contiguous mask of the service's family: dotted for IPv4,
			// an IPv6 prefix mask for IPv6 (listed as -M's prefix length).
			m := addr("netmask", s.Netmask)
			bits, err := vs.MaskBits(m)
			if m.IsValid() && (err != nil || m.Is6() != o.Virtual.Is6()) && perr == nil {
				perr = fmt.Errorf("afvs sent a bad netmask %q for service %s", s.Netmask, o.Virtual.Addr)
			}
			o.Netmask = bits
		}
		for _, r := range s.Reals {
			d := ipvsadm.Dest{Addr: addr("real server address", r.Address), Port: r.Port, Weight: int(r.Weight), Upper: r.Upper, Lower: r.Lower,
				Active: uint32(max(r.Active, 0)), Inactive: uint32(max(r.Inactive, 0)), PersistConns: uint32(max(r.PersistConns, 0)),
				Stats: ipvsadm.Stats(r.Stats), Rate: ipvsadm.Rate(r.Rate)}
			switch r.Forward {
			case "Tunnel":
				d.Fwd = ipvsadm.Tunnel
			case "Masq":
				d.Fwd = ipvsadm.Masq
			case "Local":
				d.Fwd = ipvsadm.Local
			default:
				d.Fwd = ipvsadm.Route
			}
			o.Dests = append(o.Dests, d)
		}
		snap.Services = append(snap.Services, o)
	}
	if conns {
		conns, err := c.Conns()
		if err != nil {
			return nil, err
		}
		for _, x := range conns {
			k := ipvsadm.Conn{State: x.State, Expires: time.Duration(x.Expires * float64(time.Second)),
				Client: addrPort("client", x.Client), Virtual: addrPort("virtual", x.Virtual), Dest: addrPort("destination", x.Dest)}
			switch x.Proto {
			case "udp":
				k.Proto = ipvsadm.UDP
			case "tcp":
				k.Proto = ipvsadm.TCP
			case "ip":
				k.Proto = ipvsadm.IP // a firewall-mark service's template
			default:
				if perr == nil {
					perr = fmt.Errorf("afvs sent a bad connection protocol %q", x.Proto)
				}
			}
			snap.Conns = append(snap.Conns, k)
		}
	}
	if perr != nil {
		return nil, perr
	}
	return snap, nil
}

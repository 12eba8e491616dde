package apply

import (
	"fmt"
	"slices"
	"strings"

	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// ErrSchedNotFound is ipvsadm's wording for an unknown scheduler; it is
// vs.ErrSchedNotFound.
var ErrSchedNotFound = vs.ErrSchedNotFound

// ServiceKey converts ipvsadm's service address into the model's key.
func ServiceKey(v ipvsadm.Virtual) vs.Key {
	if v.Proto == ipvsadm.FWM {
		return vs.Key{FWMark: v.FWMark, IPv6: v.IPv6}
	}
	p, _ := v.Proto.VS()
	return vs.Key{Proto: p, Addr: v.Addr, Port: v.Port}
}

// Command applies one table-changing ipvsadm command to t. Commands
// that do not change the table (list, save, zero, set) are the caller's.
func Command(t *vs.Table, c *ipvsadm.Command) error {
	switch c.Kind {
	case ipvsadm.AddService, ipvsadm.EditService:
		s, err := service(t, c)
		if err != nil {
			return err
		}
		if c.Kind == ipvsadm.AddService {
			return t.AddService(s)
		}
		return t.EditService(s)
	case ipvsadm.DeleteService:
		return t.DeleteService(ServiceKey(c.Service))
	case ipvsadm.Clear:
		t.Services = nil
		return nil
	case ipvsadm.AddServer, ipvsadm.EditServer:
		r, err := real(c)
		if err != nil {
			return err
		}
		if c.Kind == ipvsadm.AddServer {
			return t.AddReal(ServiceKey(c.Service), r)
		}
		return t.EditReal(ServiceKey(c.Service), r)
	case ipvsadm.DeleteServer:
		return t.DeleteReal(ServiceKey(c.Service), c.Server.Addr(), c.Server.Port())
	}
	return fmt.Errorf("command %s does not change the service table", c.Kind)
}

func service(t *vs.Table, c *ipvsadm.Command) (vs.Service, error) {
	s := vs.Service{Key: ServiceKey(c.Service), Sched: c.Sched, SchedFlags: slices.Clone(c.SchedFlags), Persistent: c.Persistent, Timeout: c.Timeout, OnePacket: c.OnePacket}
	if err := vs.CheckSched(c.Sched); err != nil {
		return s, err
	}
	if len(c.SchedFlags) > 0 {
		if _, err := sched.ParseFlags(c.Sched, strings.Join(c.SchedFlags, ",")); err != nil {
			return s, err
		}
	}
	if c.Service.Proto == ipvsadm.FWM {
		if _, ok := t.MarkGroup(c.Service.FWMark); !ok {
			return s, fmt.Errorf("fwmark %d: no firewall-mark group defines it; afvs takes mark groups (address, protocol, ports) from the marks section of its config", c.Service.FWMark)
		}
	}
	if c.Persistent {
		bits, ipv6 := c.Netmask, c.Service.Is6()
		if ipv6 && (bits < 1 || bits > 128) {
			return s, fmt.Errorf("netmask /%d: must be 1..128 for IPv6", bits)
		}
		if !ipv6 && (bits < 0 || bits > 32) {
			return s, fmt.Errorf("netmask /%d: must be 0..32 for IPv4", bits)
		}
		s.Netmask = vs.PrefixMask(bits, ipv6)
	}
	return s, nil
}

func real(c *ipvsadm.Command) (vs.Real, error) {
	r := vs.Real{Addr: c.Server.Addr(), Port: c.Server.Port(), Fwd: c.Fwd, Weight: int32(c.Weight), Upper: c.Upper, Lower: c.Lower}
	if c.Fwd == ipvsadm.Tunnel && c.Tunnel.Type != ipvsadm.IPIP {
		return r, fmt.Errorf("real server %s: tunnel type %s: afvs tunnels with ipip only", c.Server, c.Tunnel.Type)
	}
	if c.Service.Proto != ipvsadm.FWM && r.Port == 0 {
		r.Port = c.Service.Port
	}
	return r, r.Validate()
}

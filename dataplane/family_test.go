package dataplane

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// TestCompileIPv6Families: IPv6 services (by address and by firewall
// mark), IPv6 tunnel dests of an IPv4 service and IPv6 mark matches
// and VS/NAT over IPv6 compile.
func TestCompileIPv6Families(t *testing.T) {
	a := netip.MustParseAddr
	v4 := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: a("198.19.0.1"), Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: a("198.18.0.11"), Port: 80, Weight: 1}}}
	for _, c := range []struct {
		name string
		edit func(*vs.Table)
	}{
		{"ipv6 service", func(t *vs.Table) {
			t.Services = append(t.Services, vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: a("2001:2::1"), Port: 53}, Sched: "rr",
				Reals: []vs.Real{{Addr: a("2001:2::11"), Port: 53, Weight: 1}}})
		}},
		{"ipv6 fwmark service", func(t *vs.Table) {
			t.Marks = []vs.Mark{{Mark: 3, Matches: []vs.Match{{Proto: vs.TCP, Addr: a("2001:2::3")}}}}
			t.Services = append(t.Services, vs.Service{Key: vs.Key{FWMark: 3, IPv6: true}, Sched: "rr", Persistent: true, Timeout: 60})
		}},
		{"ipv6 tunnel dest", func(t *vs.Table) {
			t.Services[0].Reals = append(t.Services[0].Reals, vs.Real{Addr: a("2001:2::11"), Port: 80, Fwd: vs.Tunnel, Weight: 1})
		}},
		{"ipv6 nat real server", func(t *vs.Table) {
			t.Services = append(t.Services, vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: a("2001:2::1"), Port: 80}, Sched: "rr",
				Reals: []vs.Real{{Addr: a("2001:2::11"), Port: 8080, Fwd: vs.Masq, Weight: 1}}})
		}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			tbl := &vs.Table{Services: []vs.Service{v4}}
			tbl.Services[0].Reals = append([]vs.Real(nil), v4.Reals...)
			c.edit(tbl)
			for i := range tbl.Services {
				tbl.Services[i].Normalize()
			}
			if err := tbl.Validate(); err != nil {
				t.Fatalf("the model refuses it: %v", err)
			}
			reg := NewRegistry()
			bo := BuildOptions{Registry: reg, Loads: sched.NewLoads(MaxDests), Resolver: StaticResolver{}, Ifaces: fxIfaces6()}
			p, err := Compile(tbl, bo)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			p.Abort()
		})
	}
}

package apply

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// TestSchedNamesAgree checks that the names vs accepts are exactly the
// schedulers the sched package builds: vs holds the list for every
// validation, sched the builders, and neither imports the other.
func TestSchedNamesAgree(t *testing.T) {
	if got, want := vs.SchedNames(), sched.Names(); !slices.Equal(got, want) {
		t.Errorf("vs.SchedNames() = %v, sched.Names() = %v: add the scheduler to vs's list", got, want)
	}
}

// TestRealForwarding adds one real server per forwarding option and checks
// the model gets ipvsadm's method, and that masquerading (by the model)
// and a GUE tunnel are refused.
func TestRealForwarding(t *testing.T) {
	tbl := &vs.Table{}
	run := func(line string) error {
		c, err := ipvsadm.Parse(strings.Fields(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return Command(tbl, c)
	}
	if err := run("-A -t 198.19.0.1:80 -s rr"); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		opt  string
		want vs.Fwd
	}{{"-g", vs.Route}, {"-i", vs.Tunnel}} {
		addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)})
		if err := run("-a -t 198.19.0.1:80 -r " + addr.String() + " " + c.opt); err != nil {
			t.Fatalf("%s: %v", c.opt, err)
		}
		s := tbl.Services[0]
		if j := s.FindReal(addr, 80); j < 0 || s.Reals[j].Fwd != c.want {
			t.Errorf("%s: real servers %+v, want %s with %v", c.opt, s.Reals, addr, c.want)
		}
	}
	// NAT keeps the real server's own port; -g and -i take the service's,
	// as ipvsadm sets it for them.
	if err := run("-a -t 198.19.0.1:80 -r 198.18.0.19:8080 -m"); err != nil {
		t.Fatalf("-m real server: %v", err)
	}
	if err := run("-a -t 198.19.0.1:80 -r 198.18.0.21:8080 -g"); err != nil {
		t.Fatalf("-g real server with a port: %v", err)
	}
	s := tbl.Services[0]
	if j := s.FindReal(netip.MustParseAddr("198.18.0.19"), 8080); j < 0 || s.Reals[j].Fwd != vs.Masq {
		t.Errorf("real servers %+v, want 198.18.0.19:8080 Masq", s.Reals)
	}
	if j := s.FindReal(netip.MustParseAddr("198.18.0.21"), 80); j < 0 || s.Reals[j].Fwd != vs.Route {
		t.Errorf("real servers %+v, want 198.18.0.21:80 Route (the port of a -g server is the service's)", s.Reals)
	}
	err := run("-a -t 198.19.0.1:80 -r 198.18.0.20 -i --tun-type gue --tun-port 6080")
	if err == nil || !strings.Contains(err.Error(), "ipip only") {
		t.Errorf("GUE real server: %v, want the ipip-only refusal", err)
	}
	if n := len(tbl.Services[0].Reals); n != 4 {
		t.Errorf("%d real servers after the refusal, want 4", n)
	}
}

// TestIPv6Commands: ipvsadm's IPv6 commands reach the model as IPVS keeps
// them: an IPv6 service with -M 64 as a /64 mask, IPv6 real servers, a
// mixed-family tunnel dest, and -f N -6 as its own service next to -f N.
func TestIPv6Commands(t *testing.T) {
	tbl := &vs.Table{Marks: []vs.Mark{{Mark: 7, Matches: []vs.Match{{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.7")}}}}}
	for _, line := range []string{
		"-A -t [2001:2::1]:443 -s mh -p 600 -M 64",
		"-a -t [2001:2::1]:443 -r 2001:2::11 -g -w 2",
		"-a -t [2001:2::1]:443 -r 198.18.0.21 -i",
		"-A -f 7 -s rr",
		"-A -f 7 -6 -s rr -p -M 48",
	} {
		c, err := ipvsadm.Parse(strings.Fields(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if err := Command(tbl, c); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	s := tbl.Services[tbl.Find(vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: 443})]
	if s.Netmask != netip.MustParseAddr("ffff:ffff:ffff:ffff::") || s.Timeout != 600 || len(s.Reals) != 2 ||
		s.Reals[0].Port != 443 || s.Reals[0].Weight != 2 || s.Reals[1].Fwd != vs.Tunnel || !s.Reals[1].Addr.Is4() {
		t.Errorf("IPv6 service %+v", s)
	}
	i4, i6 := tbl.Find(vs.Key{FWMark: 7}), tbl.Find(vs.Key{FWMark: 7, IPv6: true})
	if i4 < 0 || i6 < 0 || i4 == i6 || tbl.Services[i6].Netmask != netip.MustParseAddr("ffff:ffff:ffff::") || tbl.Services[i4].Netmask != netip.MustParseAddr("255.255.255.255") {
		t.Errorf("FWM 7 at %d, FWM 7 IPv6 at %d: %+v", i4, i6, tbl.Services)
	}
}

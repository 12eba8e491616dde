package vs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var vip = netip.MustParseAddr("198.19.0.1")

func svc(port uint16) Service {
	return Service{Key: Key{Proto: TCP, Addr: vip, Port: port}, Sched: "wlc"}
}

func real(last byte, w int32) Real {
	return Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, last}), Port: 80, Weight: w}
}

func TestTableEditsFollowIpvsadm(t *testing.T) {
	var tb Table
	if err := tb.AddService(svc(80)); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddService(svc(80)); !errors.Is(err, ErrServiceExists) {
		t.Fatalf("duplicate service: %v", err)
	}
	if err := tb.AddReal(Key{Proto: TCP, Addr: vip, Port: 81}, real(11, 1)); !errors.Is(err, ErrServiceUndef) {
		t.Fatalf("real to missing service: %v", err)
	}
	k := svc(80).Key
	if err := tb.AddReal(k, real(11, 1)); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddReal(k, real(11, 5)); !errors.Is(err, ErrDestExists) {
		t.Fatalf("duplicate real: %v", err)
	}
	if err := tb.EditReal(k, real(12, 1)); !errors.Is(err, ErrNoDest) {
		t.Fatalf("edit missing real: %v", err)
	}
	if err := tb.EditReal(k, real(11, 7)); err != nil || tb.Services[0].Reals[0].Weight != 7 {
		t.Fatalf("edit real: %v %+v", err, tb.Services[0].Reals)
	}
	e := svc(80)
	e.Sched = "rr"
	if err := tb.EditService(e); err != nil || tb.Services[0].Sched != "rr" || len(tb.Services[0].Reals) != 1 {
		t.Fatalf("edit service must keep the reals: %v %+v", err, tb.Services[0])
	}
	if err := tb.DeleteReal(k, real(11, 0).Addr, 80); err != nil || len(tb.Services[0].Reals) != 0 {
		t.Fatalf("delete real: %v", err)
	}
	if err := tb.DeleteService(Key{Proto: UDP, Addr: vip, Port: 80}); !errors.Is(err, ErrNoService) {
		t.Fatalf("delete missing service: %v", err)
	}
	if err := tb.DeleteService(k); err != nil || len(tb.Services) != 0 {
		t.Fatalf("delete service: %v", err)
	}
}

func TestValidateNamesTheRule(t *testing.T) {
	cases := []struct {
		name string
		s    Service
		want string
	}{
		{"zero port without persistence", svc(0), "requires persistence"},
		{"ipv4-mapped", Service{Key: Key{Proto: TCP, Addr: netip.MustParseAddr("::ffff:198.19.0.1"), Port: 80}}, "no IPv4-mapped form"},
		{"ipv6 dr real of an ipv4 service", Service{Key: svc(80).Key, Reals: []Real{{Addr: netip.MustParseAddr("2001:2::11"), Port: 80, Weight: 1}}},
			"real server [2001:2::11]:80: its address family differs from the service's, which IPVS allows only for tunnel (-i) real servers"},
		{"ipv4 dr real of an ipv6 service", Service{Key: v6svc(80).Key, Reals: []Real{real(11, 1)}}, "service TCP [2001:2::1]:80: real server 198.18.0.11:80: its address family differs"},
		{"ipv4 netmask on an ipv6 service", Service{Key: v6svc(80).Key, Persistent: true, Netmask: netip.MustParseAddr("255.255.255.0")}, "must be an IPv6 mask"},
		{"ipv6 netmask on an ipv4 service", Service{Key: svc(80).Key, Persistent: true, Netmask: PrefixMask(64, true)}, "must be an IPv4 mask"},
		{"ipv6 netmask not contiguous", Service{Key: v6svc(80).Key, Persistent: true, Netmask: netip.MustParseAddr("ffff::ffff")}, "contiguous"},
		{"weight", Service{Key: svc(80).Key, Reals: []Real{real(11, 70000)}}, "weight 70000: must be 0..65535"},
		{"thresholds", Service{Key: svc(80).Key, Reals: []Real{{Addr: real(11, 1).Addr, Port: 80, Weight: 1, Upper: 10, Lower: 20}}}, "lower threshold 20"},
		{"netmask", Service{Key: svc(80).Key, Persistent: true, Netmask: netip.MustParseAddr("255.0.255.0")}, "contiguous"},
	}
	for _, c := range cases {
		var tb Table
		err := tb.AddService(c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
		if len(tb.Services) != 0 {
			t.Errorf("%s: refused service was added", c.name)
		}
	}
}

func TestMarksValidate(t *testing.T) {
	tb := Table{Services: []Service{{Key: Key{FWMark: 7}, Sched: "rr"}}}
	if err := tb.Validate(); err == nil || !strings.Contains(err.Error(), "no firewall-mark group") {
		t.Fatalf("fwmark without a group: %v", err)
	}
	tb.Marks = []Mark{{Mark: 7, Matches: []Match{{Proto: TCP, Addr: vip, PortLo: 90, PortHi: 80}}}}
	if err := tb.Validate(); err == nil || !strings.Contains(err.Error(), "high end below low end") {
		t.Fatalf("reversed range: %v", err)
	}
	tb.Marks[0].Matches[0].PortHi = 100
	if err := tb.Validate(); err != nil {
		t.Fatal(err)
	}
	c := tb.Clone()
	c.Marks[0].Matches[0].PortLo = 1
	if tb.Marks[0].Matches[0].PortLo != 90 {
		t.Fatal("Clone shares the matches slice")
	}
}

func TestMaskBits(t *testing.T) {
	for m, want := range map[string]int{"255.255.255.255": 32, "255.255.255.0": 24, "0.0.0.0": 0, "255.255.128.0": 17,
		"ffff:ffff:ffff:ffff::": 64, "::": 0, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": 128, "ffff:fe00::": 23} {
		if got, err := MaskBits(netip.MustParseAddr(m)); err != nil || got != want {
			t.Errorf("MaskBits(%s) = %d, %v; want %d", m, got, err, want)
		}
	}
}

// TestValidateMarkOverlap: Validate refuses two firewall-mark groups that
// match the same address, protocol and port, as its doc says; disjoint
// ranges, other protocols and overlaps within one group pass.
func TestValidateMarkOverlap(t *testing.T) {
	other := netip.MustParseAddr("198.19.0.2")
	m := func(mark uint32, ms ...Match) Mark { return Mark{Mark: mark, Matches: ms} }
	cases := []struct {
		name  string
		marks []Mark
		want  string // "" = valid
	}{
		{"disjoint", []Mark{m(1, Match{TCP, vip, 80, 89}), m(2, Match{TCP, vip, 90, 99})}, ""},
		{"other proto", []Mark{m(1, Match{TCP, vip, 80, 89}), m(2, Match{UDP, vip, 80, 89})}, ""},
		{"other addr", []Mark{m(1, Match{TCP, vip, 0, 0}), m(2, Match{TCP, other, 80, 80})}, ""},
		{"same group", []Mark{m(1, Match{TCP, vip, 80, 89}, Match{TCP, vip, 85, 95})}, ""},
		{"ranges", []Mark{m(1, Match{TCP, vip, 80, 89}), m(2, Match{TCP, vip, 89, 99})}, "marks[0].matches[0] (mark 1) and marks[1].matches[0] (mark 2) overlap at tcp 198.19.0.1 port 89"},
		{"all ports", []Mark{m(1, Match{UDP, vip, 5000, 5000}), m(2, Match{UDP, vip, 0, 0})}, "marks[0].matches[0] (mark 1) and marks[1].matches[0] (mark 2) overlap at udp 198.19.0.1 port 5000"},
		{"hidden behind a long range", []Mark{m(1, Match{TCP, vip, 1, 100}, Match{TCP, vip, 10, 20}), m(3, Match{TCP, vip, 200, 300}), m(2, Match{TCP, vip, 50, 60})}, "marks[0].matches[0] (mark 1) and marks[2].matches[0] (mark 2) overlap at tcp 198.19.0.1 port 50"},
	}
	for _, tc := range cases {
		tb := Table{Marks: tc.marks}
		err := tb.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

var vip6 = netip.MustParseAddr("2001:2::1")

func v6svc(port uint16) Service {
	return Service{Key: Key{Proto: TCP, Addr: vip6, Port: port}, Sched: "wlc"}
}

// TestIPv6Model: the model holds IPv6 services, IPv6 reals, mixed-family
// tunnel reals (and only those, as ip_vs_genl_set_cmd allows), IPv6
// firewall-mark services next to IPv4 ones of the same mark, and an IPv6
// persistence netmask that defaults to /128.
func TestIPv6Model(t *testing.T) {
	var tb Table
	s := v6svc(80)
	s.Persistent = true
	if err := tb.AddService(s); err != nil {
		t.Fatal(err)
	}
	if got := tb.Services[0].Netmask; got != FullMask(true) {
		t.Errorf("default IPv6 netmask %s, want /128", got)
	}
	k := s.Key
	r6 := Real{Addr: netip.MustParseAddr("2001:2::11"), Port: 80, Weight: 1}
	if err := tb.AddReal(k, r6); err != nil {
		t.Fatal(err)
	}
	r4 := Real{Addr: netip.MustParseAddr("198.18.0.11"), Port: 80, Weight: 1}
	if err := tb.AddReal(k, r4); err == nil || !strings.Contains(err.Error(), "only for tunnel (-i)") {
		t.Errorf("IPv4 DR real of an IPv6 service: %v", err)
	}
	r4.Fwd = Tunnel
	if err := tb.AddReal(k, r4); err != nil {
		t.Fatalf("IPv4 tunnel real of an IPv6 service: %v", err)
	}
	r4.Fwd = Route
	if err := tb.EditReal(k, r4); err == nil || len(tb.Services[0].Reals) != 2 || tb.Services[0].Reals[1].Fwd != Tunnel {
		t.Errorf("editing the tunnel real to DR: %v, reals %+v", err, tb.Services[0].Reals)
	}
	e := s
	e.Netmask = PrefixMask(64, true)
	if err := tb.EditService(e); err != nil || tb.Services[0].Netmask != netip.MustParseAddr("ffff:ffff:ffff:ffff::") {
		t.Errorf("-M 64: %v %s", err, tb.Services[0].Netmask)
	}
	if err := tb.Validate(); err != nil {
		t.Fatal(err)
	}
	// An IPv4 service with an IPv6 tunnel real.
	if err := tb.AddService(Service{Key: svc(80).Key, Reals: []Real{{Addr: r6.Addr, Port: 80, Fwd: Tunnel, Weight: 1}}}); err != nil {
		t.Fatalf("IPv6 tunnel real of an IPv4 service: %v", err)
	}
	// FWM 1 and FWM 1 IPv6 are two services.
	tb.Marks = []Mark{{Mark: 1, Matches: []Match{{Proto: TCP, Addr: vip6, PortLo: 443, PortHi: 443}}}}
	if err := tb.AddService(Service{Key: Key{FWMark: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddService(Service{Key: Key{FWMark: 1, IPv6: true}}); err != nil {
		t.Fatalf("FWM 1 IPv6 next to FWM 1: %v", err)
	}
	if err := tb.AddService(Service{Key: Key{FWMark: 1, IPv6: true}}); !errors.Is(err, ErrServiceExists) {
		t.Errorf("FWM 1 IPv6 twice: %v", err)
	}
	if i := tb.Find(Key{FWMark: 1, IPv6: true}); i < 0 || tb.Services[i].Netmask != FullMask(true) || tb.Services[i].Key.String() != "FWM 1 IPv6" {
		t.Errorf("FWM 1 IPv6: index %d", i)
	}
	if err := tb.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPrefixMask(t *testing.T) {
	for _, c := range []struct {
		bits int
		v6   bool
		want string
	}{{64, true, "ffff:ffff:ffff:ffff::"}, {128, true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, {1, true, "8000::"},
		{24, false, "255.255.255.0"}, {32, false, "255.255.255.255"}, {0, false, "0.0.0.0"}} {
		if got := PrefixMask(c.bits, c.v6); got != netip.MustParseAddr(c.want) {
			t.Errorf("PrefixMask(%d, %v) = %s, want %s", c.bits, c.v6, got, c.want)
		}
	}
}

// TestRealMustBeUnicast: real server addresses IPVS refuses in
// ip_vs_new_dest are refused by name with the rule, in both families and
// however the server arrives (a service's reals, -a), and a refused -a
// changes nothing; unicast ones,
// loopback (the local node) and IPv4-compatible IPv6 pass.
func TestRealMustBeUnicast(t *testing.T) {
	v6 := Service{Key: Key{Proto: TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: 80}, Sched: "rr"}
	for _, c := range []struct {
		addr string
		want string // "" = accepted
	}{
		{"224.0.0.1", "a multicast address"},
		{"239.255.255.250", "a multicast address"},
		{"0.0.0.0", "a broadcast address"},
		{"0.1.2.3", "a broadcast address"},
		{"255.255.255.255", "a broadcast address"},
		{"ff02::1", "a multicast address"},
		{"ff05::2", "a multicast address"},
		{"::", "the unspecified address"},
		{"fe80::11", "a link-local address"},
		{"febf::1", "a link-local address"},
		{"198.18.0.11", ""},
		{"127.0.0.1", ""},
		{"240.0.0.1", ""},
		{"2001:2::11", ""},
		{"fd00::11", ""},
		{"::1", ""},
		{"::198.18.0.11", ""},
		{"fec0::1", ""},
	} {
		a := netip.MustParseAddr(c.addr)
		s := svc(80)
		if a.Is6() {
			s = v6
		}
		r := Real{Addr: a, Port: 80, Weight: 1}
		errs := []error{r.Validate()}
		withReal := s
		withReal.Reals = []Real{r}
		errs = append(errs, (&Table{}).AddService(withReal))
		tbl := &Table{}
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
		errs = append(errs, tbl.AddReal(s.Key, r))
		ok := netip.MustParseAddr("2001:2::99")
		if a.Is4() {
			ok = netip.MustParseAddr("198.18.0.99")
		}
		if err := tbl.AddReal(s.Key, Real{Addr: ok, Port: 80, Weight: 1}); err != nil {
			t.Fatal(err)
		}
		if c.want != "" && len(tbl.Services[0].Reals) != 1 {
			t.Errorf("%s: a refused -a changed the service: %+v", c.addr, tbl.Services[0].Reals)
		}
		for i, err := range errs {
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s (way %d): refused: %v", c.addr, i, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.addr)):
				t.Errorf("%s (way %d): error %v, want one naming it and saying %q", c.addr, i, err, c.want)
			}
		}
	}
}

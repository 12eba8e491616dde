package control_test

import (
	"bytes"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/vs"
)

// TestListConnFwmarkTemplate: ip_vs_sched_persist makes a firewall-mark
// service's template with protocol IPPROTO_IP, which -L -c prints as "IP"
// (ip_vs_proto_name), with the mark as its virtual address.
func TestListConnFwmarkTemplate(t *testing.T) {
	s := controltest.Serve(t)
	vip := netip.MustParseAddr("198.19.0.1")
	err := s.Server.Update(func(tb *vs.Table) error {
		tb.Marks = []vs.Mark{{Mark: 7, Matches: []vs.Match{{Proto: vs.TCP, Addr: vip, PortLo: 80, PortHi: 80}}}}
		return tb.AddService(vs.Service{Key: vs.Key{FWMark: 7}, Sched: "rr", Persistent: true, Timeout: 360,
			Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Weight: 1}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Director.Feed(frame(t, 1000, true, 0))
	snap, err := s.Client().IpvsadmSnapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ipvsadm.Parse(strings.Fields("-L -n -c"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.Write(&b, c); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	tmpl := regexp.MustCompile(`(?m)^IP  \d\d:\d\d  NONE        198\.18\.0\.10:0 +0\.0\.0\.7:0 +198\.18\.0\.11:0$`)
	if !tmpl.MatchString(out) {
		t.Errorf("-L -n -c lacks the template as IP 198.18.0.10:0 0.0.0.7:0 198.18.0.11:0:\n%s", out)
	}
	if !strings.Contains(out, "\nTCP ") || strings.Contains(out, "?") {
		t.Errorf("-L -n -c: the connection should be TCP and nothing unnamed:\n%s", out)
	}
}

// TestListConnFwmarkTemplate6: an IPv6 firewall-mark service's template is
// listed as ipvsadm lists the kernel's: protocol IP, the client's address
// (masked by -M), and as the virtual address the union nf_inet_addr
// { .ip = htonl(fwmark) } of ip_vs_sched_persist read as IPv6, 0:7::.
func TestListConnFwmarkTemplate6(t *testing.T) {
	s := controltest.Serve(t)
	// The fake host reaches IPv6 real servers on-link, with their MACs
	// known, as the IPv4 ones.
	s.Director.Host().AddRoute(netip.MustParsePrefix("::/0"), "fake0", netip.Addr{})
	s.Director.Host().SetNeighbor("fake0", netip.MustParseAddr("2001:2::11"), [6]byte{2, 0, 0, 0, 0, 0x11})
	vip := netip.MustParseAddr("2001:2:0:1::1")
	err := s.Server.Update(func(tb *vs.Table) error {
		tb.Marks = []vs.Mark{{Mark: 7, Matches: []vs.Match{{Proto: vs.TCP, Addr: vip, PortLo: 80, PortHi: 80}}}}
		return tb.AddService(vs.Service{Key: vs.Key{FWMark: 7, IPv6: true}, Sched: "rr", Persistent: true, Timeout: 360,
			Netmask: vs.PrefixMask(64, true), Reals: []vs.Real{{Addr: netip.MustParseAddr("2001:2::11"), Weight: 1}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: net.ParseIP("2001:2:0:9::10"), DstIP: vip.AsSlice()}
	tcp := testsupport.TCP(1000, 80, testsupport.SYN)
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	f := testsupport.Build(t, testsupport.Eth(net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, controltest.DirectorMAC[:]), ip, tcp)
	if v := s.Director.Feed(f); v != dataplane.VerdictForward {
		st, _ := s.Client().Status()
		t.Fatalf("IPv6 SYN: verdict %d, drops %v", v, st.Drops)
	}
	snap, err := s.Client().IpvsadmSnapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ipvsadm.Parse(strings.Fields("-L -n -c"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.Write(&b, c); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	tmpl := regexp.MustCompile(`(?m)^IP  \d\d:\d\d  NONE        \[2001:2:0:9::\]:0   \[0:7::\]:0          \[2001:2::11\]:0$`)
	if !tmpl.MatchString(out) {
		t.Errorf("-L -n -c lacks the template as IP [2001:2:0:9::]:0 [0:7::]:0 [2001:2::11]:0:\n%s", out)
	}
}

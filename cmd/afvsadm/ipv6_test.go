package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/vs"
)

// TestRestoreIPv6Refused: a -R batch that adds IPv6 services, while the
// dataplane cannot forward them (dataplane.CheckForwardable), is refused
// whole, naming the service and the rule, and changes nothing: the IPv4
// services and real servers in force stay, listed as before, and the
// batch's own IPv4 commands do not take effect either. Once the dataplane
// forwards IPv6 the same batch applies, and -S gives it back.
func TestRestoreIPv6Refused(t *testing.T) {
	s := serve(t)
	mustRestore(t, "-A -t 198.19.0.1:80 -s rr\n-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1\n")
	before := mustAdm(t, "-L", "-n")
	applied := s.Director.Applied()
	batch := "-A -t 198.19.0.2:80 -s wlc\n" +
		"-a -t 198.19.0.2:80 -r 198.18.0.12 -g -w 2\n" +
		"-A -t [2001:2::1]:80 -s mh -p 300 -M 64\n" +
		"-a -t [2001:2::1]:80 -r [2001:2::11]:80 -g -w 3\n" +
		"-a -t [2001:2::1]:80 -r 198.18.0.13:80 -i -w 1\n"
	v6 := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: 80}, Sched: "mh",
		Reals: []vs.Real{{Addr: netip.MustParseAddr("2001:2::11"), Port: 80, Weight: 3}}}
	refusal := dataplane.CheckForwardable(&vs.Table{Services: []vs.Service{v6}})
	_, errOut, code := adm(t, batch, "-R")
	if refusal == nil {
		if code != 0 {
			t.Fatalf("the dataplane forwards IPv6, but -R failed: %s", errOut)
		}
		if got := mustAdm(t, "-S", "-n"); !strings.Contains(got, "-A -t [2001:2::1]:80 -s mh -p 300 -M 64\n") ||
			!strings.Contains(got, "-a -t [2001:2::1]:80 -r [2001:2::11]:80 -g -w 3\n") {
			t.Fatalf("-S after the IPv6 batch:\n%s", got)
		}
		return
	}
	if code == 0 || !strings.Contains(errOut, "service TCP [2001:2::1]:80") || !strings.Contains(errOut, "IPv6") {
		t.Fatalf("-R with IPv6 services: exit %d, stderr %q; want a refusal naming service TCP [2001:2::1]:80 (%v)", code, errOut, refusal)
	}
	if after := mustAdm(t, "-L", "-n"); after != before {
		t.Errorf("a refused batch changed the listing:\n%s\nwas\n%s", after, before)
	}
	if n := s.Director.Applied(); n != applied {
		t.Errorf("a refused batch reached the director (%d tables applied, was %d)", n, applied)
	}
}

// TestAddRealNotUnicast: -a with a real server IPVS refuses (multicast,
// broadcast, IPv6 link-local) fails naming it and the rule, and changes
// nothing.
func TestAddRealNotUnicast(t *testing.T) {
	serve(t)
	mustRestore(t, "-A -t 198.19.0.1:80 -s rr\n-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1\n")
	before := mustAdm(t, "-S", "-n")
	for _, c := range []struct{ cmd, want string }{
		{"-a -t 198.19.0.1:80 -r 224.0.0.5 -g", "real server 224.0.0.5:80: a multicast address"},
		{"-a -t 198.19.0.1:80 -r 255.255.255.255 -g", "real server 255.255.255.255:80: a broadcast address"},
		{"-a -t 198.19.0.1:80 -r [fe80::11]:80 -i", "real server [fe80::11]:80: a link-local address"},
	} {
		_, errOut, code := adm(t, "", sh(c.cmd)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %q", c.cmd, code, errOut, c.want)
		}
	}
	if after := mustAdm(t, "-S", "-n"); after != before {
		t.Errorf("refused commands changed the table:\n%s\nwas\n%s", after, before)
	}
}

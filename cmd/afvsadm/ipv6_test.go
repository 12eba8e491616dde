package main

import (
	"strings"
	"testing"
)

// TestRestoreIPv6: a -R batch that adds IPv6 services (DR, a mixed-family
// tunnel dest and VS/NAT) to the IPv4 ones in force applies, and -S gives
// it back.
func TestRestoreIPv6(t *testing.T) {
	serve(t)
	mustRestore(t, "-A -t 198.19.0.1:80 -s rr\n-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1\n")
	batch := "-A -t 198.19.0.2:80 -s wlc\n" +
		"-a -t 198.19.0.2:80 -r 198.18.0.12 -g -w 2\n" +
		"-A -t [2001:2::1]:80 -s mh -p 300 -M 64\n" +
		"-a -t [2001:2::1]:80 -r [2001:2::11]:80 -g -w 3\n" +
		"-a -t [2001:2::1]:80 -r 198.18.0.13:80 -i -w 1\n" +
		"-A -t [2001:2::2]:80 -s rr\n" +
		"-a -t [2001:2::2]:80 -r [2001:2::12]:8080 -m -w 1\n"
	if _, errOut, code := adm(t, batch, "-R"); code != 0 {
		t.Fatalf("-R with IPv6 services: exit %d: %s", code, errOut)
	}
	got := mustAdm(t, "-S", "-n")
	for _, want := range []string{"-A -t [2001:2::1]:80 -s mh -p 300 -M 64\n", "-a -t [2001:2::1]:80 -r [2001:2::11]:80 -g -w 3\n",
		"-a -t [2001:2::2]:80 -r [2001:2::12]:8080 -m -w 1\n", "-a -t 198.19.0.2:80 -r 198.18.0.12:80 -g -w 2\n"} {
		if !strings.Contains(got, want) {
			t.Fatalf("-S after the IPv6 batch lacks %q:\n%s", want, got)
		}
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

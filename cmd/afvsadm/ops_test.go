package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testsupport"
)

// datagram is a UDP datagram from client:sport to vip:53 with payload
// bytes of data.
func datagram(t *testing.T, client string, sport uint16, vip string, payload int) []byte {
	t.Helper()
	return testsupport.Build(t, testsupport.Eth(net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, controltest.DirectorMAC[:]),
		testsupport.IPv4(netip.MustParseAddr(client), netip.MustParseAddr(vip)),
		testsupport.UDP(sport, 53), testsupport.Payload(payload))
}

const opsTable = "-A -u 198.19.0.9:53 -s rr -o\n" +
	"-a -u 198.19.0.9:53 -r 198.18.0.11 -g -w 1\n" +
	"-a -u 198.19.0.9:53 -r 198.18.0.12 -g -w 1\n" +
	"-a -u 198.19.0.9:53 -r 198.18.0.13 -g -w 1\n"

// TestOnePacketListSaveRestore: -o on -A lists as "ops" and saves as -o,
// as ipvsadm 1.31's print_service_entry writes them, and -S output
// restores the same table; with -p the flag follows the persistence.
func TestOnePacketListSaveRestore(t *testing.T) {
	serve(t)
	mustRestore(t, opsTable+"-A -u 198.19.0.10:53 -s wlc -p 60 -M 255.255.255.0 -o\n-a -u 198.19.0.10:53 -r 198.18.0.14 -g -w 1\n")
	list := mustAdm(t, "-L", "-n")
	for _, line := range []string{
		"UDP  198.19.0.9:53 rr ops\n",
		"UDP  198.19.0.10:53 wlc persistent 60 mask 255.255.255.0 ops\n",
	} {
		if !strings.Contains(list, line) {
			t.Errorf("-L -n lacks %q:\n%s", line, list)
		}
	}
	saved := mustAdm(t, "-S", "-n")
	for _, line := range []string{
		"-A -u 198.19.0.9:53 -s rr -o\n",
		"-A -u 198.19.0.10:53 -s wlc -p 60 -M 255.255.255.0 -o\n",
	} {
		if !strings.Contains(saved, line) {
			t.Errorf("-S -n lacks %q:\n%s", line, saved)
		}
	}
	mustAdm(t, "-C")
	mustRestore(t, saved)
	if got := mustAdm(t, "-S", "-n"); got != saved {
		t.Errorf("-S after -R printed\n%s\nwant\n%s", got, saved)
	}
	if got := mustAdm(t, "-L", "-n"); got != list {
		t.Errorf("-L -n after -R printed\n%s\nwant\n%s", got, list)
	}
}

// TestOnePacketTraffic: through the daemon's own dataplane, six
// datagrams from one client socket to an rr -o service go two to each
// real server, count as six connections and six packets (--stats), and
// leave no connection (-L -c) and no ActiveConn or InActConn. -E without
// -o turns it off, as ipvsadm sends the service's flags whole: the
// socket's next datagrams make one connection and stay on one server;
// -E -o turns it back on.
func TestOnePacketTraffic(t *testing.T) {
	s := serve(t)
	mustRestore(t, opsTable)
	feed := func(sport uint16, n int) {
		t.Helper()
		for i := range n {
			if v := s.Director.Feed(datagram(t, "198.18.0.10", sport, "198.19.0.9", 32)); v != dataplane.VerdictForward {
				t.Fatalf("datagram %d: verdict %v", i, v)
			}
		}
	}
	feed(40000, 6)
	// 60 IP bytes each: 20 IPv4, 8 UDP, 32 of data.
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n" +
		"  -> RemoteAddress:Port\n" +
		"UDP  198.19.0.9:53                       6        6        0      360        0\n" +
		"  -> 198.18.0.11:53                      2        2        0      120        0\n" +
		"  -> 198.18.0.12:53                      2        2        0      120        0\n" +
		"  -> 198.18.0.13:53                      2        2        0      120        0\n"
	if got := mustAdm(t, "-L", "-n", "--stats"); got != want {
		t.Fatalf("--stats printed\n%s\nwant\n%s", got, want)
	}
	list := mustAdm(t, "-L", "-n")
	for _, rs := range []string{"198.18.0.11", "198.18.0.12", "198.18.0.13"} {
		if line := "  -> " + rs + ":53               Route   1      0          0         \n"; !strings.Contains(list, line) {
			t.Errorf("-L -n lacks %q:\n%s", line, list)
		}
	}
	if got := mustAdm(t, "-L", "-n", "-c"); strings.Count(got, "\n") != 2 {
		t.Errorf("-L -n -c lists connections:\n%s", got)
	}

	mustAdm(t, sh("-E -u 198.19.0.9:53 -s rr")...)
	if got := mustAdm(t, "-L", "-n"); strings.Contains(got, "ops") {
		t.Fatalf("-E without -o left it on:\n%s", got)
	}
	feed(40001, 4)
	stats := mustAdm(t, "-L", "-n", "--stats")
	if !strings.Contains(stats, "UDP  198.19.0.9:53                       7       10") {
		t.Fatalf("after -E without -o four datagrams should make one connection:\n%s", stats)
	}
	if got := mustAdm(t, "-L", "-n", "-c"); strings.Count(got, "\n") != 3 {
		t.Errorf("-L -n -c after -E without -o:\n%s", got)
	}

	mustAdm(t, sh("-E -u 198.19.0.9:53 -s rr -o")...)
	if got := mustAdm(t, "-L", "-n"); !strings.Contains(got, "UDP  198.19.0.9:53 rr ops\n") {
		t.Fatalf("-E -o did not turn it on:\n%s", got)
	}
	feed(40002, 3)
	stats = mustAdm(t, "-L", "-n", "--stats")
	if !strings.Contains(stats, "UDP  198.19.0.9:53                      10       13") {
		t.Fatalf("after -E -o three datagrams should count three connections:\n%s", stats)
	}
}

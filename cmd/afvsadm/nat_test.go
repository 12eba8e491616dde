package main

import (
	"strings"
	"testing"
)

// TestMasqServers: -m is accepted beside -g and -i in one service, keeps
// the real server's port (ipvsadm gives -g and -i servers the service's),
// lists as Masq and round-trips through -S and -R byte for byte.
func TestMasqServers(t *testing.T) {
	serve(t)
	mustRestore(t, "-A -t 198.19.0.1:80 -s rr\n"+
		"-a -t 198.19.0.1:80 -r 198.18.0.11:8080 -g -w 1\n"+
		"-a -t 198.19.0.1:80 -r 198.18.0.12 -i -w 2\n"+
		"-a -t 198.19.0.1:80 -r 198.18.2.13:8080 -m -w 3\n")
	want := header + "TCP  198.19.0.1:80 rr\n" +
		"  -> 198.18.0.11:80               Route   1      0          0         \n" +
		"  -> 198.18.0.12:80               Tunnel  2      0          0         \n" +
		"  -> 198.18.2.13:8080             Masq    3      0          0         \n"
	if got := mustAdm(t, "-L", "-n"); got != want {
		t.Fatalf("listing:\n%s\nwant\n%s", got, want)
	}
	saved := mustAdm(t, "-S", "-n")
	if !strings.Contains(saved, "-a -t 198.19.0.1:80 -r 198.18.2.13:8080 -m -w 3\n") {
		t.Fatalf("-S output lacks the Masq server with its port:\n%s", saved)
	}
	mustAdm(t, "-C")
	mustRestore(t, saved)
	if again := mustAdm(t, "-S", "-n"); again != saved {
		t.Errorf("-S after -R of -S:\n%s\nwant\n%s", again, saved)
	}
	mustAdm(t, "-e", "-t", "198.19.0.1:80", "-r", "198.18.2.13:8080", "-m", "-w", "0")
	if got := mustAdm(t, "-L", "-n"); !strings.Contains(got, "  -> 198.18.2.13:8080             Masq    0      ") {
		t.Errorf("after -e -w 0:\n%s", got)
	}
}

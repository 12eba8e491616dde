package main

import (
	"bytes"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testsupport"
)

// serve starts the control API over the in-memory director and points
// afvsadm at it.
func serve(t *testing.T) *controltest.Served {
	t.Helper()
	s := controltest.Serve(t)
	t.Setenv("AFVS_SOCKET", s.Socket)
	return s
}

// adm runs afvsadm's main logic with stdin and returns what it printed.
func adm(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, strings.NewReader(stdin), &o, &e)
	return o.String(), e.String(), code
}

// mustAdm runs afvsadm and fails the test unless it succeeds silently on
// stderr.
func mustAdm(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := adm(t, "", args...)
	if code != 0 || errOut != "" {
		t.Fatalf("afvsadm %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	return out
}

func mustRestore(t *testing.T, stdin string) {
	t.Helper()
	_, errOut, code := adm(t, stdin, "-R")
	if code != 0 || errOut != "" {
		t.Fatalf("afvsadm -R: exit %d, stderr %q", code, errOut)
	}
}

func sh(cmd string) []string { return strings.Fields(cmd) }

const header = "IP Virtual Server version 1.2.1 (size=4096)\n" +
	"Prot LocalAddress:Port Scheduler Flags\n" +
	"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"

func TestBuildTableStepByStep(t *testing.T) {
	serve(t)
	steps := []struct {
		cmd, list string
	}{
		{"-A -t 198.19.0.1:80 -s wlc", "TCP  198.19.0.1:80 wlc\n"},
		{"-a -t 198.19.0.1:80 -r 198.18.0.11:80 -g -w 1", "TCP  198.19.0.1:80 wlc\n" +
			"  -> 198.18.0.11:80               Route   1      0          0         \n"},
		{"--add-server --tcp-service 198.19.0.1:80 --real-server 198.18.0.12 --ipip --weight 2", "TCP  198.19.0.1:80 wlc\n" +
			"  -> 198.18.0.11:80               Route   1      0          0         \n" +
			"  -> 198.18.0.12:80               Tunnel  2      0          0         \n"},
		{"-e -t 198.19.0.1:80 -r 198.18.0.11:80 -g -w 5", "TCP  198.19.0.1:80 wlc\n" +
			"  -> 198.18.0.11:80               Route   5      0          0         \n" +
			"  -> 198.18.0.12:80               Tunnel  2      0          0         \n"},
		{"-E -t 198.19.0.1:80 -s rr -p 600 -M 255.255.255.0", "TCP  198.19.0.1:80 rr persistent 600 mask 255.255.255.0\n" +
			"  -> 198.18.0.11:80               Route   5      0          0         \n" +
			"  -> 198.18.0.12:80               Tunnel  2      0          0         \n"},
		{"-A -u 198.19.0.2:53 -s sh -b sh-port", "TCP  198.19.0.1:80 rr persistent 600 mask 255.255.255.0\n" +
			"  -> 198.18.0.11:80               Route   5      0          0         \n" +
			"  -> 198.18.0.12:80               Tunnel  2      0          0         \n" +
			"UDP  198.19.0.2:53 sh (sh-port)\n"},
		{"-d -t 198.19.0.1:80 -r 198.18.0.11:80", "TCP  198.19.0.1:80 rr persistent 600 mask 255.255.255.0\n" +
			"  -> 198.18.0.12:80               Tunnel  2      0          0         \n" +
			"UDP  198.19.0.2:53 sh (sh-port)\n"},
		{"-D -t 198.19.0.1:80", "UDP  198.19.0.2:53 sh (sh-port)\n"},
		{"-C", ""},
	}
	for _, st := range steps {
		mustAdm(t, sh(st.cmd)...)
		if got, want := mustAdm(t, "-L", "-n"), header+st.list; got != want {
			t.Fatalf("after %q, -L -n printed\n%s\nwant\n%s", st.cmd, got, want)
		}
	}
}

// richTable covers every option the save format carries.
const richTable = `-A -t 198.19.0.1:80 -s wlc -p 300 -M 255.255.255.0
-a -t 198.19.0.1:80 -r 198.18.1.2:80 -g -w 1
-a -t 198.19.0.1:80 -r 198.18.1.3:80 -i -w 2
-a -t 198.19.0.1:80 -r 198.18.1.4:80 -g -w 0
-A -u 198.19.0.2:53 -s mh -b mh-port
-a -u 198.19.0.2:53 -r 198.18.2.1:53 -g -w 3
-A -t 198.19.0.3:0 -s sh -p 3600
-a -t 198.19.0.3:0 -r 198.18.3.1:0 -i -w 1
-A -t 198.19.0.4:443 -s wrr
`

func TestSaveClearRestoreRebuildsTheTable(t *testing.T) {
	serve(t)
	mustRestore(t, richTable)
	saved := mustAdm(t, "-S", "-n")
	list := mustAdm(t, "-L", "-n")
	if !strings.Contains(saved, "-r 198.18.1.3:80 -i -w 2") || !strings.Contains(saved, "-b mh-port") || !strings.Contains(saved, "-p 300 -M 255.255.255.0") {
		t.Fatalf("-S lost options:\n%s", saved)
	}
	mustAdm(t, "-C")
	if got := mustAdm(t, "-S", "-n"); got != "" {
		t.Fatalf("-S after -C printed\n%s", got)
	}
	if got := mustAdm(t, "-L", "-n"); got != header {
		t.Fatalf("-L -n after -C printed\n%s", got)
	}
	mustRestore(t, saved)
	if got := mustAdm(t, "-S", "-n"); got != saved {
		t.Errorf("-S after -R printed\n%s\nwant\n%s", got, saved)
	}
	if got := mustAdm(t, "-L", "-n"); got != list {
		t.Errorf("-L -n after -R printed\n%s\nwant\n%s", got, list)
	}
}

func TestRestoreSeedExample(t *testing.T) {
	serve(t)
	mustRestore(t, "# saved by hand\n/sbin/ipvsadm -A -t 172.16.81.141:80 -s wlc\n\n/sbin/ipvsadm -a -t 172.16.81.141:80 -r 172.19.81.139 -i -w 1\n")
	want := header + "TCP  172.16.81.141:80 wlc\n" +
		"  -> 172.19.81.139:80             Tunnel  1      0          0         \n"
	if got := mustAdm(t, "-L", "-n"); got != want {
		t.Errorf("-L -n printed\n%s\nwant\n%s", got, want)
	}
	wantSave := "-A -t 172.16.81.141:80 -s wlc\n-a -t 172.16.81.141:80 -r 172.19.81.139:80 -i -w 1 --tun-type ipip\n"
	if got := mustAdm(t, "-S", "-n"); got != wantSave {
		t.Errorf("-S printed\n%s\nwant\n%s", got, wantSave)
	}
}

func TestSetTimeouts(t *testing.T) {
	serve(t)
	if got, want := mustAdm(t, "-L", "--timeout"), "Timeout (tcp tcpfin udp): 900 120 300\n"; got != want {
		t.Errorf("default timeouts: %q, want %q", got, want)
	}
	mustAdm(t, "--set", "100", "20", "30")
	if got, want := mustAdm(t, "-L", "--timeout"), "Timeout (tcp tcpfin udp): 100 20 30\n"; got != want {
		t.Errorf("after --set 100 20 30: %q, want %q", got, want)
	}
	// ipvsadm: a zero leaves that timeout as it was.
	mustAdm(t, "--set", "0", "60", "0")
	if got, want := mustAdm(t, "-L", "--timeout"), "Timeout (tcp tcpfin udp): 100 60 30\n"; got != want {
		t.Errorf("after --set 0 60 0: %q, want %q", got, want)
	}
}

// segment builds a client's TCP segment to vip:80.
func segment(t *testing.T, client string, sport uint16, vip string, syn bool, payload int) []byte {
	t.Helper()
	flags := testsupport.ACK
	if syn {
		flags = testsupport.SYN
	}
	return testsupport.Build(t, testsupport.Eth(net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, controltest.DirectorMAC[:]),
		testsupport.IPv4(netip.MustParseAddr(client), netip.MustParseAddr(vip)),
		testsupport.TCP(sport, 80, flags), testsupport.Payload(payload))
}

func TestStatsConnsAndZero(t *testing.T) {
	s := serve(t)
	mustRestore(t, "-A -t 198.19.0.1:80 -s rr\n-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1\n-a -t 198.19.0.1:80 -r 198.18.0.12 -g -w 1\n"+
		"-A -t 198.19.0.5:80 -s rr\n-a -t 198.19.0.5:80 -r 198.18.0.13 -g -w 1\n")
	// Four connections to the first service (a SYN and one 100-byte data
	// segment each), one to the second.
	for i := range 4 {
		for _, f := range [][]byte{segment(t, "198.18.0.10", uint16(40000+i), "198.19.0.1", true, 0), segment(t, "198.18.0.10", uint16(40000+i), "198.19.0.1", false, 100)} {
			if v := s.Director.Feed(f); v != dataplane.VerdictForward {
				t.Fatalf("frame %d: verdict %v", i, v)
			}
		}
	}
	if v := s.Director.Feed(segment(t, "198.18.0.10", 50000, "198.19.0.5", true, 0)); v != dataplane.VerdictForward {
		t.Fatalf("verdict %v", v)
	}
	// Bytes are IP-layer bytes, as IPVS counts them: a SYN is 40, a
	// segment with 100 bytes of data 140; per connection 2 packets and 180
	// bytes in. Nothing is counted out: as on Linux with DR, the replies go
	// from the real servers to the clients without the director.
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n" +
		"  -> RemoteAddress:Port\n" +
		"TCP  198.19.0.1:80                       4        8        0      720        0\n" +
		"  -> 198.18.0.11:80                      2        4        0      360        0\n" +
		"  -> 198.18.0.12:80                      2        4        0      360        0\n" +
		"TCP  198.19.0.5:80                       1        1        0       40        0\n" +
		"  -> 198.18.0.13:80                      1        1        0       40        0\n"
	if got := mustAdm(t, "-L", "-n", "--stats"); got != want {
		t.Fatalf("--stats printed\n%s\nwant\n%s", got, want)
	}
	// Established connections count as active. (IPVS would count the
	// SYN_RECV one on 198.18.0.13 as inactive; conntrack counts it active,
	// see the report, so it is not asserted here.)
	list := mustAdm(t, "-L", "-n")
	for _, line := range []string{
		"  -> 198.18.0.11:80               Route   1      2          0         \n",
		"  -> 198.18.0.12:80               Route   1      2          0         \n",
	} {
		if !strings.Contains(list, line) {
			t.Errorf("-L -n lacks %q:\n%s", line, list)
		}
	}
	conns := mustAdm(t, "-L", "-n", "-c")
	lines := strings.Split(strings.TrimSuffix(conns, "\n"), "\n")
	if len(lines) != 2+5 || lines[0] != "IPVS connection entries" {
		t.Fatalf("-L -n -c printed %d lines, want 2+5:\n%s", len(lines), conns)
	}
	// Expiry counts down from the state's timeout (15 min established, 1
	// min SYN_RECV), so allow a few seconds of a slow machine. rr starts
	// at .12, the head of the kernel's list (added last).
	if !regexp.MustCompile(`(?m)^TCP (14:5\d|15:00)  ESTABLISHED 198\.18\.0\.10:40000  198\.19\.0\.1:80      198\.18\.0\.12:80$`).MatchString(conns) ||
		!regexp.MustCompile(`(?m)^TCP (00:5\d|01:00)  SYN_RECV    198\.18\.0\.10:50000  198\.19\.0\.5:80      198\.18\.0\.13:80$`).MatchString(conns) {
		t.Errorf("-L -n -c lacks the connections:\n%s", conns)
	}

	mustAdm(t, "-Z", "-t", "198.19.0.5:80")
	got := mustAdm(t, "-L", "-n", "--stats")
	if !strings.Contains(got, "TCP  198.19.0.5:80                       0        0        0        0        0\n") ||
		!strings.Contains(got, "TCP  198.19.0.1:80                       4        8        0      720        0\n") {
		t.Errorf("-Z -t 198.19.0.5:80 should zero that service only:\n%s", got)
	}
	mustAdm(t, "-Z")
	got = mustAdm(t, "-L", "-n", "--stats")
	if strings.Count(got, "0        0        0        0        0\n") != 5 {
		t.Errorf("-Z should zero every counter:\n%s", got)
	}
	// Counting goes on from zero.
	s.Director.Feed(segment(t, "198.18.0.10", 40000, "198.19.0.1", false, 100))
	got = mustAdm(t, "-L", "-n", "--stats", "-t", "198.19.0.1:80")
	if !strings.Contains(got, "TCP  198.19.0.1:80                       0        1        0      140        0\n") {
		t.Errorf("after -Z and one more segment:\n%s", got)
	}
}

// TestRate samples the estimator around 100 new connections, as two ticks
// 2 s apart would, and checks --rate against the IPVS arithmetic: growth 100
// in 2 s is 100<<9 = 51200, a quarter of it 12800, read as
// (12800+0x1FF)>>10 = 12 per second; 100 SYNs of 40 IP bytes are 4000<<4 =
// 64000, a quarter 16000, read as (16000+0xF)>>5 = 500 bytes per second.
func TestRate(t *testing.T) {
	s := serve(t)
	mustRestore(t, "-A -t 198.19.0.1:80 -s rr\n-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1\n")
	s.Server.SampleRates()
	for i := range 100 {
		if v := s.Director.Feed(segment(t, "198.18.0.10", uint16(30000+i), "198.19.0.1", true, 0)); v != dataplane.VerdictForward {
			t.Fatalf("verdict %v", v)
		}
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n" +
		"  -> RemoteAddress:Port\n" +
		"TCP  198.19.0.1:80                      12       12        0      500        0\n" +
		"  -> 198.18.0.11:80                     12       12        0      500        0\n"
	s.Server.SampleRates()
	if got := mustAdm(t, "-L", "-n", "--rate"); got != want {
		t.Errorf("--rate printed\n%s\nwant\n%s", got, want)
	}
}

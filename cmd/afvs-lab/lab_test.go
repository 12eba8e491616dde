package main

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/afvs/afvs/internal/configfile"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/internal/testsupport"
)

// TestDispatch: afvs-lab runs its four commands and, asked for a daemon
// command, names the afvs command to run instead.
func TestDispatch(t *testing.T) {
	for _, c := range []string{"run", "check", "reload", "realserver"} {
		var out bytes.Buffer
		if code := run([]string{c}, &out); code != 2 || !strings.Contains(out.String(), `run "afvs `+c+`"`) {
			t.Errorf("afvs-lab %s: exit %d, %q; want 2 and a pointer to afvs %s", c, code, out.String(), c)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"frobnicate"}, &out); code != 2 || !strings.Contains(out.String(), `unknown command "frobnicate"`) {
		t.Errorf("afvs-lab frobnicate: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"help"}, &out); code != 0 {
		t.Errorf("afvs-lab help: exit %d", code)
	}
	for _, c := range []string{"demo", "bench", "sim", "replay"} {
		if !strings.Contains(out.String(), "\n  "+c+" ") {
			t.Errorf("usage does not list %s:\n%s", c, out.String())
		}
	}
	// A lab command's own errors come back as exit status 1.
	out.Reset()
	if code := run([]string{"sim"}, &out); code != 1 || !strings.Contains(out.String(), "afvs-lab sim: --trace is required") {
		t.Errorf("afvs-lab sim without --trace: exit %d, %q", code, out.String())
	}
}

// TestSimOnAGeneratedWorkload runs `afvs-lab sim` on a workload it
// generates, without root: the simulator works from the lab binary with
// the config file reader it shares with the daemon.
func TestSimOnAGeneratedWorkload(t *testing.T) {
	dir := t.TempDir()
	trace, cfg, dec := filepath.Join(dir, "trace.csv"), filepath.Join(dir, "gen.yaml"), filepath.Join(dir, "out.csv")
	if err := runSim([]string{"--generate", "--trace", trace, "--gen-config", cfg, "--seed", "7", "--rate", "50", "--length", "2s"}); err != nil {
		t.Fatal(err)
	}
	sum := filepath.Join(dir, "summary.txt")
	if err := runSim([]string{"--config", cfg, "--trace", trace, "--out", dec, "--summary", sum}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dec)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines < 50 {
		t.Errorf("decisions: %d lines for about 100 generated connections", lines)
	}
	if s, err := os.ReadFile(sum); err != nil || len(s) == 0 {
		t.Errorf("summary: %q, %v", s, err)
	}
	// The config reader rejects what afvs check rejects.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("servics: []\n"), 0o644)
	if err := runSim([]string{"--config", bad, "--trace", trace, "--out", dec}); err == nil || !strings.Contains(err.Error(), "servics: unknown key") {
		t.Errorf("sim with a misspelt key: %v", err)
	}
}

// TestSimGeneratedIPv6Workload: --generate with an IPv6 --vip writes an
// IPv6 trace and a config the shared config reader takes (an IPv6 service
// and real servers). Replaying it is refused naming the service while
// the dataplane cannot forward IPv6, and gives IPv6 decision lines once
// it can.
func TestSimGeneratedIPv6Workload(t *testing.T) {
	dir := t.TempDir()
	trace, cfg, dec := filepath.Join(dir, "trace.csv"), filepath.Join(dir, "gen.yaml"), filepath.Join(dir, "out.csv")
	if err := runSim([]string{"--generate", "--trace", trace, "--gen-config", cfg, "--seed", "7", "--rate", "50", "--length", "2s", "--vip", "[2001:2::1]:443", "--scheduler", "mh"}); err != nil {
		t.Fatal(err)
	}
	c, err := configfile.Load(cfg, nil)
	if err != nil {
		t.Fatalf("the generated IPv6 config: %v", err)
	}
	tbl, err := c.VS()
	if err != nil {
		t.Fatalf("the generated IPv6 config: %v", err)
	}
	if s := tbl.Services[0]; s.Key.String() != "TCP [2001:2::1]:443" || len(s.Reals) == 0 || !s.Reals[0].Addr.Is6() {
		t.Fatalf("generated service %+v", s)
	}
	err = runSim([]string{"--config", cfg, "--trace", trace, "--out", dec})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dec)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines < 50 || !strings.Contains(string(b), ",2001:2:0:64::") || !strings.Contains(string(b), ",[2001:2::1:") {
		t.Errorf("IPv6 decisions (%d lines):\n%.500s", lines, b)
	}
	if bad := []string{"--generate", "--trace", trace, "--gen-config", cfg, "--vip", "[fe80::1%eth0]:80"}; runSim(bad) == nil {
		t.Error("--vip with a zone accepted")
	}
}

// TestReplayForwardsASyn pushes one TCP SYN to the built-in config's VIP
// through `afvs-lab replay` and reads the forwarded frame back: rewritten
// to the chosen real server's MAC, as VS/DR does.
func TestReplayForwardsASyn(t *testing.T) {
	dir := t.TempDir()
	in, outPath := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap")
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{198, 18, 0, 10}, DstIP: net.IP{198, 19, 0, 1}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 1024}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	var pcap bytes.Buffer
	w := pcapgo.NewWriter(&pcap)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes())
	if err := os.WriteFile(in, pcap.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runReplay([]string{"--in", in, "--out", outPath, "--neigh", "198.18.0.11=02:00:00:00:00:11", "--neigh", "198.18.0.12=02:00:00:00:00:12", "--neigh", "198.18.0.13=02:00:00:00:00:13"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := r.ReadPacketData()
	if err != nil {
		t.Fatalf("no forwarded frame: %v", err)
	}
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	e, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	got, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if e == nil || got == nil || !bytes.HasPrefix(e.DstMAC, []byte{2, 0, 0, 0, 0}) || e.DstMAC[5] < 0x11 || e.DstMAC[5] > 0x13 || !got.DstIP.Equal(ip.DstIP) {
		t.Errorf("forwarded frame is not the SYN rewritten to a real server's MAC: %v", p)
	}
	if _, _, err := r.ReadPacketData(); err == nil {
		t.Errorf("more than one frame out for one in")
	}
}

// TestDemoRunsTheDaemonBinary builds afvs and afvs-lab side by side, as
// `make build` does, and runs a short `afvs-lab demo` of VS/DR over IPv4
// and of each IPv6 mode (dr6, tun6, nat6): afvs-lab finds the afvs next
// to it and runs it as the director and the real servers.
func TestDemoRunsTheDaemonBinary(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	if testing.Short() {
		t.Skip("builds two binaries and a namespace lab")
	}
	bin := t.TempDir()
	for _, b := range []string{"afvs", "afvs-lab"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, b), "github.com/afvs/afvs/cmd/"+b).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", b, err, out)
		}
	}
	const n = 120
	cmd := exec.Command(filepath.Join(bin, "afvs-lab"), "demo", "--modes", "dr,dr6,tun6,nat6", "--requests", fmt.Sprint(n), "--concurrency", "4")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		err = fmt.Errorf("still running after 3 minutes: %v", <-done)
	}
	// The demo removes its namespaces itself; whatever a killed demo left
	// is this test's to remove.
	prefix := fmt.Sprintf("afvs-%d-", cmd.Process.Pid)
	if left := testnet.Leftovers(prefix); len(left) > 0 {
		testnet.ReapStale()
		t.Errorf("the demo left namespaces behind: %v", left)
	}
	if err != nil {
		t.Fatalf("afvs-lab demo: %v\n%s", err, out.String())
	}
	// Every IPv6 address the demo prints is in 2001:2::/48, as issue 13
	// asks of its IPv6 runs.
	if bad := ipv6Outside(out.String(), netip.MustParsePrefix("2001:2::/48")); len(bad) > 0 {
		t.Errorf("afvs-lab demo prints IPv6 addresses outside 2001:2::/48: %v", bad)
	}
	runs := map[string]string{}
	for _, sec := range strings.Split(out.String(), "\n== ")[1:] {
		title, _, _ := strings.Cut(sec, " ==")
		runs[title] = sec
	}
	v4 := runs["VS/DR (MAC rewrite): afvs on its built-in default config"]
	if !regexp.MustCompile(`sent 120 HTTP requests from the client: 120 answered, 0 failed`).MatchString(v4) ||
		!strings.Contains(v4, "TCP  198.19.0.1:80") {
		t.Errorf("afvs-lab demo output lacks the IPv4 run's answers or listing:\n%s", out.String())
	}
	// Each IPv6 run: the service added by the afvsadm commands it prints
	// (the mode's forwarding flag; NAT real servers on their own port and
	// subnet), every request answered, by the three real servers in
	// proportion to their weights 1, 2, 3 (wrr), and the IPv6 listing.
	for _, m := range []struct {
		title, flag, subnet string
		port                uint16
	}{
		{"VS/DR of IPv6 (MAC rewrite)", "-g", "2001:2::", 80},
		{"VS/TUN of IPv6 (IPv6-in-IPv6)", "-i", "2001:2::", 80},
		{"VS/NAT of IPv6 (address and port rewrite, both directions)", "-m", "2001:2:0:3::", testnet.NATPort},
	} {
		v6, ok := runs[m.title+": afvs started with no services, afvsadm adds one"]
		if !ok {
			t.Errorf("afvs-lab demo shows no %s run:\n%s", m.title, out.String())
			continue
		}
		for _, want := range []string{
			"$ afvsadm -A -t [2001:2:0:1::1]:80 -s wrr\n",
			fmt.Sprintf("$ afvsadm -a -t [2001:2:0:1::1]:80 -r [%s13]:%d %s -w 3\n", m.subnet, m.port, m.flag),
			fmt.Sprintf("sent %d HTTP requests from the client: %d answered, 0 failed", n, n),
			"TCP  [2001:2:0:1::1]:80",
			fmt.Sprintf("  -> [%s11]:%d", m.subnet, m.port),
		} {
			if !strings.Contains(v6, want) {
				t.Errorf("the %s run lacks %q:\n%s", m.title, want, v6)
			}
		}
		// The real servers were added while the director's link-local
		// address was still in duplicate address detection: their
		// neighbour entries must still be resolved before the service
		// goes live, so no first SYN is dropped for want of a MAC.
		if strings.Contains(v6, "neighbor_unresolved") {
			t.Errorf("the %s run dropped frames for unresolved neighbours:\n%s", m.title, v6)
		}
		for i, w := range []int{1, 2, 3} {
			re := fmt.Sprintf(`(?m)^  rs%d +%s1%d +%d +(\d+) `, i+1, regexp.QuoteMeta(m.subnet), i+1, w)
			got := regexp.MustCompile(re).FindStringSubmatch(v6)
			if got == nil {
				t.Errorf("the %s run has no answers row for rs%d:\n%s", m.title, i+1, v6)
				continue
			}
			k, _ := strconv.Atoi(got[1])
			if want := float64(n*w) / 6; math.Abs(float64(k)-want) > 0.02*n {
				t.Errorf("%s run: rs%d (weight %d) answered %d, want %v ± %v", m.title, i+1, w, k, want, 0.02*n)
			}
		}
	}
}

// ipv6Outside returns the IPv6 addresses in text (bare, in brackets or
// with a prefix length) that are not in p.
func ipv6Outside(text string, p netip.Prefix) []string {
	var bad []string
	for _, tok := range regexp.MustCompile(`[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*`).FindAllString(text, -1) {
		a, err := netip.ParseAddr(strings.TrimRight(tok, "."))
		if err == nil && a.Is6() && !p.Contains(a) {
			bad = append(bad, tok)
		}
	}
	return bad
}

func TestIPv6Outside(t *testing.T) {
	p := netip.MustParsePrefix("2001:2::/48")
	text := "client 2001:2::10, [2001:2:0:1::1]:80 on 2001:2:0:3::/64 at 12:05, mac 02:00:00:00:00:01, 198.18.0.2:80"
	if bad := ipv6Outside(text, p); len(bad) != 0 {
		t.Errorf("ipv6Outside(%q) = %v, want none", text, bad)
	}
	text = "VIP [2001:db8::1]:80, router fe80::1, client 2001:3::10, real 2001:2::11 on 2001:3::/48."
	if bad := ipv6Outside(text, p); strings.Join(bad, " ") != "2001:db8::1 fe80::1 2001:3::10 2001:3::" {
		t.Errorf("ipv6Outside(%q) = %q, want the four outside 2001:2::/48", text, bad)
	}
}

// TestDemoRefusesBadModes: a mode the demo does not know is refused,
// naming it and the modes there are, before any namespace is made.
func TestDemoRefusesBadModes(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"demo", "--afvs", "/nonexistent/afvs", "--modes", "dr,dr7"}, &out); code != 1 || !strings.Contains(out.String(), `--modes "dr7": must be dr, tun, nat, dr6, tun6 or nat6`) {
		t.Errorf("afvs-lab demo --modes dr,dr7: exit %d, %q", code, out.String())
	}
}

// TestBenchRefusesBadFlags: flags bench cannot honour are refused before
// any namespace is made.
func TestBenchRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--plot", dir + "/chart.svg"}, "must end in .png"},
		{[]string{"--plot", dir + "/none/chart.png"}, "directory " + dir + "/none does not exist"},
		{[]string{"--scenarios", "dr,warp"}, `scenario "warp"`},
		{[]string{"now"}, `unexpected argument "now"`},
	} {
		if err := runBench(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bench %v = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestDemoHA runs `afvs-lab demo --ha` as the README shows it: two
// directors with keepalived and connection sync, the master killed under
// load, and the sync counters, the takeover, the gap and the survivors
// printed; it must leave nothing behind.
func TestDemoHA(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute, testsupport.Keepalived)
	if testing.Short() {
		t.Skip("builds three binaries and an HA lab")
	}
	bin := t.TempDir()
	for _, b := range []string{"afvs", "afvsadm", "afvs-lab"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, b), "github.com/afvs/afvs/cmd/"+b).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", b, err, out)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "afvs-lab"), "demo", "--ha", "--conns", "20")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		err = fmt.Errorf("still running after 2 minutes: %v", <-done)
	}
	prefix := fmt.Sprintf("afvs-%d-", cmd.Process.Pid)
	if left := testnet.Leftovers(prefix); len(left) > 0 {
		testnet.ReapStale()
		t.Errorf("the demo left namespaces behind: %v", left)
	}
	if err != nil {
		t.Fatalf("afvs-lab demo --ha: %v\n%s", err, out.String())
	}
	for _, re := range []string{
		`both directors: scheduler rr, sloppy_tcp off, connection sync on`,
		`keepalived: director A holds 198\.18\.0\.1 \(MASTER\), director B is BACKUP`,
		`connection sync over \d+\.\ds: A sent \d+ messages? \(\d+\.\d/s\) with \d+ entr(y|ies); B received \d+ messages?`,
		`killed director A's afvs and keepalived \(SIGKILL\)`,
		`director B holds 198\.18\.0\.1 after \d+ ms; the VIP answered a new connection after \d+ ms \(rs\d\)`,
		`survivors: 20 of 20 connections kept answering from their real server \(0 failed, 0 with a reset, 0 moved to another server\)`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("afvs-lab demo --ha output lacks %s:\n%s", re, out.String())
		}
	}
}

// TestDemoHAFlags: bad --ha settings are refused before anything is built.
func TestDemoHAFlags(t *testing.T) {
	for _, args := range [][]string{{"--ha", "--conns", "0"}, {"--ha", "--rounds", "0"}, {"--ha", "--sync-window", "1ms"}} {
		var out bytes.Buffer
		if code := run(append([]string{"demo"}, args...), &out); code != 1 || !strings.Contains(out.String(), "--conns must be 1..1000, --rounds at least 1 and --sync-window at least 100ms") {
			t.Errorf("afvs-lab demo %v: exit %d, %q", args, code, out.String())
		}
	}
}

// TestHASummary: the --rounds summary gives the median (of an even
// number of rounds, the mean of the middle two) and the maximum of the
// takeover and the gap, the survivors of all rounds, and the median,
// least and greatest sync message rate, which the README reports.
func TestHASummary(t *testing.T) {
	ms := time.Millisecond
	rounds := []haRound{
		{takeover: 330 * ms, gap: 334 * ms, survived: 50, syncRate: 0.7},
		{takeover: 300 * ms, gap: 310 * ms, survived: 50, syncRate: 0.3},
		{takeover: 366 * ms, gap: 361 * ms, survived: 49, syncRate: 0.7},
		{takeover: 320 * ms, gap: 330 * ms, survived: 50, syncRate: 0.4},
	}
	want := "\nover 4 rounds: takeover median 325 ms, max 366 ms; gap to a new connection's answer median 332 ms, max 361 ms; 199 of 200 connections survived\n" +
		"sync messages per second from the master at this load: median 0.6, min 0.3, max 0.7\n"
	if got := haSummary(rounds, 50, true); got != want {
		t.Errorf("summary of 4 rounds:\n%q\nwant\n%q", got, want)
	}
	want = "\nover 3 rounds: takeover median 330 ms, max 366 ms; gap to a new connection's answer median 334 ms, max 361 ms; 149 of 150 connections survived\n"
	if got := haSummary(rounds[:3], 50, false); got != want {
		t.Errorf("summary of 3 rounds without sync:\n%q\nwant\n%q", got, want)
	}
}

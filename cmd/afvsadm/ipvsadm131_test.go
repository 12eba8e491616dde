package main

import (
	"strings"
	"testing"
)

// TestIPVSSvcPersistentTimeout: a bare -p takes libipvs's
// IPVS_SVC_PERSISTENT_TIMEOUT, 6*60 (parse_timeout in ipvsadm.c), so
// ipvsadm 1.31 sends, lists and saves 360, whatever its man page says.
func TestIPVSSvcPersistentTimeout(t *testing.T) {
	serve(t)
	mustAdm(t, sh("-A -t 198.19.0.1:80 -s rr -p")...)
	mustAdm(t, sh("-A -t 198.19.0.2:0 -p -M 255.255.255.0")...)
	if got, want := mustAdm(t, "-L", "-n"), header+
		"TCP  198.19.0.1:80 rr persistent 360\n"+
		"TCP  198.19.0.2:0 wlc persistent 360 mask 255.255.255.0\n"; got != want {
		t.Fatalf("-L -n printed\n%s\nwant\n%s", got, want)
	}
	if got, want := mustAdm(t, "-S", "-n"), "-A -t 198.19.0.1:80 -s rr -p 360\n-A -t 198.19.0.2:0 -s wlc -p 360 -M 255.255.255.0\n"; got != want {
		t.Fatalf("-S -n printed\n%s\nwant\n%s", got, want)
	}
	if out, _, _ := adm(t, "", "-h"); !strings.Contains(out, "(360 if not given)") {
		t.Errorf("usage does not give the bare -p timeout as 360:\n%s", out)
	}
}

// listedDests returns the real servers of the one service in a -L -n
// listing, in the order printed.
func listedDests(t *testing.T) string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(mustAdm(t, "-L", "-n"), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			out = append(out, f[1])
		}
	}
	return strings.Join(out, " ")
}

// TestIPVSCmpDestsRoundTrip: ipvsadm sorts the kernel's dump (newest
// first) with ipvs_cmp_dests, which compares 10.x < 100.64.x < 192.168.x
// < 10.x, under glibc's merge sort; so the listing depends on the order
// the servers were added, and -S then -R gives the order ipvsadm itself
// would list after a restore. The orders were worked out by hand from
// msort_with_tmp (split [x] [y z], sort [y z], merge).
func TestIPVSCmpDestsRoundTrip(t *testing.T) {
	serve(t)
	mustRestore(t, "-A -t 10.0.0.1:80 -s rr\n"+
		"-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n"+
		"-a -t 10.0.0.1:80 -r 100.64.0.1:80 -g -w 1\n"+
		"-a -t 10.0.0.1:80 -r 192.168.0.1:80 -g -w 1\n")
	// Dumped 192.168.0.1, 100.64.0.1, 10.0.0.2.
	if got, want := listedDests(t), "192.168.0.1:80 10.0.0.2:80 100.64.0.1:80"; got != want {
		t.Fatalf("-L -n lists %s, want %s", got, want)
	}
	saved := mustAdm(t, "-S", "-n")
	if want := "-A -t 10.0.0.1:80 -s rr\n" +
		"-a -t 10.0.0.1:80 -r 192.168.0.1:80 -g -w 1\n" +
		"-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n" +
		"-a -t 10.0.0.1:80 -r 100.64.0.1:80 -g -w 1\n"; saved != want {
		t.Fatalf("-S -n printed\n%s\nwant\n%s", saved, want)
	}
	mustAdm(t, "-C")
	mustRestore(t, saved)
	// Dumped 100.64.0.1, 10.0.0.2, 192.168.0.1 now.
	if got, want := listedDests(t), "100.64.0.1:80 192.168.0.1:80 10.0.0.2:80"; got != want {
		t.Fatalf("after -S, -C, -R: -L -n lists %s, want %s", got, want)
	}
	// --nosort prints the dump itself.
	out := mustAdm(t, "-L", "-n", "--nosort")
	if i, j, k := strings.Index(out, "100.64.0.1"), strings.Index(out, "10.0.0.2"), strings.Index(out, "192.168.0.1"); !(i < j && j < k) {
		t.Errorf("--nosort is not the kernel's newest-first order:\n%s", out)
	}
}

// TestPrintSchedFlags: ipvsadm keeps -b as bits and print_sched_flags
// names them after the scheduler, in -L and in -S.
func TestPrintSchedFlags(t *testing.T) {
	serve(t)
	mustAdm(t, sh("-A -t 198.19.0.1:80 -s sh -b flag-1,flag-2")...)
	mustAdm(t, sh("-A -t 198.19.0.2:80 -s mh -b flag-2,mh-fallback")...)
	mustAdm(t, sh("-A -t 198.19.0.3:80 -s rr -b flag-3,flag-1")...)
	if got, want := mustAdm(t, "-L", "-n"), header+
		"TCP  198.19.0.1:80 sh (sh-fallback,sh-port)\n"+
		"TCP  198.19.0.2:80 mh (mh-fallback,mh-port)\n"+
		"TCP  198.19.0.3:80 rr (flag-1,flag-3)\n"; got != want {
		t.Fatalf("-L -n printed\n%s\nwant\n%s", got, want)
	}
	if got, want := mustAdm(t, "-S", "-n"), "-A -t 198.19.0.1:80 -s sh -b sh-fallback,sh-port\n"+
		"-A -t 198.19.0.2:80 -s mh -b mh-fallback,mh-port\n"+
		"-A -t 198.19.0.3:80 -s rr -b flag-1,flag-3\n"; got != want {
		t.Fatalf("-S -n printed\n%s\nwant\n%s", got, want)
	}
}

// TestListDaemonNone: -L --daemon with no sync daemon prints nothing and
// exits 0, as ipvsadm's list_daemon does.
func TestListDaemonNone(t *testing.T) {
	serve(t)
	out, errOut, code := adm(t, "", "-L", "--daemon")
	if out != "" || errOut != "" || code != 0 {
		t.Fatalf("-L --daemon: exit %d, stdout %q, stderr %q; want exit 0 and nothing", code, out, errOut)
	}
}

// TestErrorTexts: errors name what is wrong. A DR real server of the
// other family is refused as ipvsadm refuses it. --tun-type gre is valid ipvsadm 1.31,
// refused when applied like gue.
func TestErrorTexts(t *testing.T) {
	serve(t)
	mustAdm(t, sh("-A -t 198.19.0.1:80 -s rr")...)
	mustAdm(t, sh("-A -t [2001:2::1]:80 -s rr")...)
	for _, c := range []struct{ cmd, want string }{
		{"-A -f 3 -6", "fwmark 3: no firewall-mark group defines it"},
		{"-a -t 198.19.0.1:80 -r [2001:2::11]:80 -g", "Different address family is allowed only for tunneling servers: 2001:2::11"}, // ipvsadm 1.31 checks this itself
		{"-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gre", "tunnel type gre: afvs tunnels with ipip only"},
		{"-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gre --tun-csum", "tunnel type gre: afvs tunnels with ipip only"},
		{"-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gue --tun-port 6080", "tunnel type gue: afvs tunnels with ipip only"},
	} {
		_, errOut, code := adm(t, "", sh(c.cmd)...)
		if code == 0 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "invalid IP") {
			t.Errorf("%s: exit %d, stderr %q; want an error saying %q", c.cmd, code, errOut, c.want)
		}
	}
	if got := listedDests(t); got != "" {
		t.Errorf("a refused command left real servers: %s", got)
	}
}

// TestListConnDeletedServer: IPVS keeps a connection's server address in
// the connection (cp->daddr), so -L -c shows it after -d.
func TestListConnDeletedServer(t *testing.T) {
	s := serve(t)
	mustRestore(t, "-A -t 198.19.0.1:80 -s rr\n-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1\n")
	s.Director.Feed(segment(t, "198.18.0.10", 40000, "198.19.0.1", true, 0))
	mustAdm(t, sh("-d -t 198.19.0.1:80 -r 198.18.0.11")...)
	conns := mustAdm(t, "-L", "-n", "-c")
	if !strings.Contains(conns, "198.18.0.10:40000  198.19.0.1:80      198.18.0.11:80\n") {
		t.Errorf("-L -n -c after -d lost the server's address:\n%s", conns)
	}
}

// TestExitStatus: afvsadm exits as ipvsadm 1.31 does: 255 for what popt
// refuses and for a command the kernel (here afvs) refuses (main returns
// libipvs's -1), 2 for what ipvsadm refuses itself (fail(2, ...)), 1 when
// a listing names no service (list_service's exit(1)); and a refused
// command changes nothing.
func TestExitStatus(t *testing.T) {
	serve(t)
	mustAdm(t, sh("-A -t 198.19.0.1:80 -s rr")...)
	before := mustAdm(t, "-S", "-n")
	for _, c := range []struct {
		args string
		code int
		want string
	}{
		{"-A -t 198.19.0.1:80 --bogus", 255, "--bogus: unknown option"},
		{"-t 198.19.0.1:80", 255, "-t given before any command"},
		{"-A -t 198.19.0.1:80", 255, "already exists"},
		{"-d -t 198.19.0.1:80 -r 198.18.0.1", 255, ""},
		{"-A -f -1", 2, "invalid fwmark value `-1' specified"},
		{"-A -6 -f 1", 2, "-6 used before -f"},
		{"-L -t 198.19.0.2:80", 1, "No such service"},
	} {
		out, errOut, code := adm(t, "", sh(c.args)...)
		if code != c.code || out != "" || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
	if out, errOut, code := adm(t, "-C\n-A -t 198.19.0.3:80\n-A -t 198.19.0.3:80\n", "-R"); code != 255 || out != "" || !strings.Contains(errOut, "restore line 3") {
		t.Errorf("-R with a refused line: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if after := mustAdm(t, "-S", "-n"); after != before {
		t.Errorf("refused commands changed the table:\n%s\nwas\n%s", after, before)
	}
}

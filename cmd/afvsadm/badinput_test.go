package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/api"
)

// base is the table every bad command is tried against.
const base = `-A -t 198.19.0.1:80 -s wlc
-a -t 198.19.0.1:80 -r 198.18.0.11:80 -g -w 1
-a -t 198.19.0.1:80 -r 198.18.0.12:80 -i -w 2
-A -u 198.19.0.2:53 -s rr -p 60
`

// checkRefused runs afvsadm and checks the bad-input contract: a non-zero
// exit, exactly one line on stderr that contains want, nothing on stdout,
// and a table that neither -S nor the dataplane saw change.
func checkRefused(t *testing.T, applied func() int64, stdin, want string, args ...string) {
	t.Helper()
	before := mustAdm(t, "-S", "-n")
	n := applied()
	out, errOut, code := adm(t, stdin, args...)
	t.Logf("afvsadm %s: %s", strings.Join(args, " "), strings.TrimSpace(errOut))
	if code == 0 {
		t.Errorf("exit 0, want non-zero")
	}
	if strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
		t.Errorf("stderr is not one line: %q", errOut)
	}
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr %q does not say %q", errOut, want)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	if after := mustAdm(t, "-S", "-n"); after != before {
		t.Errorf("table changed:\n%s\nwas\n%s", after, before)
	}
	if applied() != n {
		t.Errorf("the dataplane was handed %d new tables", applied()-n)
	}
}

func TestBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		name, cmd, want string
	}{
		{"unknown scheduler", "-A -t 198.19.0.9:80 -s nosuch", "Scheduler or persistence engine not found"},
		{"unknown scheduler on edit", "-E -t 198.19.0.1:80 -s nosuch", "Scheduler or persistence engine not found"},
		{"bad address", "-A -t 198.19.0.300:80 -s rr", "198.19.0.300"},
		{"bad port", "-A -t 198.19.0.9:99999 -s rr", "99999"},
		{"missing -t", "-A -s rr", "service"},
		{"missing -r", "-a -t 198.19.0.1:80 -w 1", "server"},
		{"add to missing service", "-a -t 198.19.0.99:80 -r 198.18.0.11 -g", "Service not defined"},
		{"duplicate service", "-A -t 198.19.0.1:80 -s rr", "Service already exists"},
		{"duplicate real server", "-a -t 198.19.0.1:80 -r 198.18.0.11:80 -g", "Destination already exists"},
		{"weight too big", "-a -t 198.19.0.1:80 -r 198.18.0.13 -w 65536", "65536"},
		{"weight negative", "-a -t 198.19.0.1:80 -r 198.18.0.13 -w -1", "-1"},
		{"weight not a number", "-e -t 198.19.0.1:80 -r 198.18.0.11 -w heavy", "heavy"},
		{"edit missing real server", "-e -t 198.19.0.1:80 -r 198.18.0.99 -w 1", "No such destination"},
		{"delete missing real server", "-d -t 198.19.0.1:80 -r 198.18.0.99", "No such destination"},
		{"delete missing service", "-D -t 198.19.0.99:80", "No such service"},
		{"edit missing service", "-E -t 198.19.0.99:80 -s rr", "No such service"},
		{"zero missing service", "-Z -t 198.19.0.99:80", "No such service"},
		{"bad netmask", "-A -t 198.19.0.9:80 -s rr -p -M 255.0.255.0", "255.0.255.0"},
		{"thresholds reversed", "-a -t 198.19.0.1:80 -r 198.18.0.13 -x 10 -y 20", "threshold"},
		{"unknown option", "-A -t 198.19.0.9:80 --bogus", "bogus"},
		{"two commands", "-A -D -t 198.19.0.9:80", "-D"},
		{"firewall mark without group", "-A -f 7 -s rr", "fwmark 7"},
		{"IPv6 NAT real server of an IPv4 service", "-a -t 198.19.0.1:80 -r [2001:2::11]:80 -m", "2001:2::11"},
		{"one-packet scheduling of a TCP service", "-A -t 198.19.0.9:80 -s rr -o", "One-Packet Scheduling is only for UDP virtual services"},
		{"bad sched flag", "-A -t 198.19.0.9:80 -s rr -b sh-port", "sh-port"},
		{"port 0 without persistence", "-A -t 198.19.0.9:0 -s rr", "non-persistent"},
		{"set with two values", "--set 1 2", "--set"},
		{"set not a number", "--set 1 x 3", "x"},
		{"restore with arguments", "-R -t 198.19.0.1:80", "service-address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t)
			mustRestore(t, base)
			checkRefused(t, s.Director.Applied, "", tc.want, sh(tc.cmd)...)
		})
	}
}

func TestBadRestoreChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name, stdin, want string
	}{
		{"unparsable line", "-A -t 198.19.0.7:80 -s rr\n-a -t 198.19.0.7:80 -r 198.18.0.11 -w 1\n-a -t 198.19.0.7:80 -r 198.18.0.300\n", "line 3"},
		{"line the table refuses", "# comment\n-A -t 198.19.0.7:80 -s rr\n\n-a -t 198.19.0.7:80 -r 198.18.0.11 -w 1 # weight\n-D -t 198.19.0.1:80\n/sbin/ipvsadm -A -t 198.19.0.1:80 -s nosuch\n", "restore line 6: Scheduler or persistence engine not found"},
		{"duplicate inside the stream", "-A -t 198.19.0.7:80 -s rr\n-A -t 198.19.0.7:80 -s wlc\n", "restore line 2: Service already exists"},
		{"clear then a bad line", "-C\n-A -t 198.19.0.7:80 -s rr\n-a -t 198.19.0.8:80 -r 198.18.0.11\n", "Service not defined"},
		{"listing inside the stream", "-A -t 198.19.0.7:80 -s rr\n-L -n\n", "not a change"},
		{"nested restore", "-A -t 198.19.0.7:80 -s rr\n-R\n", "nested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t)
			mustRestore(t, base)
			checkRefused(t, s.Director.Applied, tc.stdin, tc.want, "-R")
		})
	}
}

func TestDataplaneRefusalChangesNothing(t *testing.T) {
	s := serve(t)
	mustRestore(t, base)
	snap := s.Director.Snapshot()
	s.Director.RefuseApply(errString("Memory allocation problem"))
	checkRefused(t, s.Director.Applied, "", "Memory allocation problem", sh("-a -t 198.19.0.1:80 -r 198.18.0.13 -g -w 1")...)
	if s.Director.Snapshot() != snap {
		t.Errorf("the refused change replaced the dataplane's snapshot")
	}
	// The same change, accepted, is applied exactly once: the counter and
	// the snapshot checkRefused watched do move when a table lands.
	s.Director.RefuseApply(nil)
	n := s.Director.Applied()
	mustAdm(t, sh("-a -t 198.19.0.1:80 -r 198.18.0.13 -g -w 1")...)
	if got := s.Director.Applied() - n; got != 1 {
		t.Errorf("an accepted change handed the dataplane %d tables, want 1", got)
	}
	if s.Director.Snapshot() == snap {
		t.Errorf("an accepted change left the old snapshot in force")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestUnreachableDaemon(t *testing.T) {
	t.Setenv("AFVS_SOCKET", t.TempDir()+"/none.sock")
	for _, args := range [][]string{{"-L", "-n"}, {"-A", "-t", "198.19.0.1:80"}, {"-R"}} {
		out, errOut, code := adm(t, "-C\n", args...)
		if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "cannot reach afvs") {
			t.Errorf("afvsadm %v without a daemon: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// A daemon that answers nonsense gets an error, not a panic.
func TestMalformedDaemonAnswers(t *testing.T) {
	for _, tc := range []struct{ name, services, conns string }{
		{"service address", `[{"proto":"tcp","address":"nowhere","port":80,"scheduler":"rr","reals":[]}]`, `[]`},
		{"netmask", `[{"proto":"tcp","address":"198.19.0.1","port":80,"scheduler":"rr","persistent":true,"netmask":"2001:2::","reals":[]}]`, `[]`},
		{"real address", `[{"proto":"tcp","address":"198.19.0.1","port":80,"scheduler":"rr","reals":[{"address":"x"}]}]`, `[]`},
		{"connection", `[]`, `[{"proto":"tcp","client":"1.2.3.4","virtual":"198.19.0.1:80","dest":"198.18.0.11:80","state":"NONE"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "fake.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
			mux.HandleFunc("GET /v1/timeouts", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
			mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.services) })
			mux.HandleFunc("GET /v1/conns", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.conns) })
			hs := &http.Server{Handler: mux}
			go hs.Serve(l)
			t.Cleanup(func() { hs.Close() })
			t.Setenv("AFVS_SOCKET", sock)
			out, errOut, code := adm(t, "", "-L", "-n", "-c")
			if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "afvs sent a bad") {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}

// TestRestoreSizeLimit: -R refuses input past maxRestore (here an endless
// stream of comment lines, which would parse to nothing), naming the
// limit, and changes nothing; the daemon refuses a batch past its own
// limit the same way, naming it.
func TestRestoreSizeLimit(t *testing.T) {
	s := serve(t)
	mustRestore(t, base)
	line := "# " + strings.Repeat("x", 97) + "\n"
	big := strings.Repeat(line, maxRestore/len(line)+1)
	checkRefused(t, s.Director.Applied, big, fmt.Sprintf("larger than %d bytes", maxRestore), "-R")
	// Just under the limit, the same comments restore (to nothing).
	mustRestore(t, big[:maxRestore-maxRestore%len(line)])

	body := `{"commands": [["-C"]], "pad": "` + strings.Repeat("x", api.MaxCommandsBytes) + `"}`
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "unix", s.Socket)
	}}}
	resp, err := hc.Post("http://afvs/v1/commands", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), fmt.Sprintf("larger than %d bytes", api.MaxCommandsBytes)) {
		t.Errorf("a batch over the daemon's limit: %s %s", resp.Status, msg)
	}
	if got := mustAdm(t, "-S", "-n"); !strings.Contains(got, "198.19.0.1:80") {
		t.Errorf("the table changed:\n%s", got)
	}
}

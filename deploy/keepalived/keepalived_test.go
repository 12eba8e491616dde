package keepalived

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeAdm is an afvsadm stand-in for the notify script: it appends its
// arguments to $CALLS, keeps the running daemons in $RUNNING (answering
// -L --daemon from it, after $LIST_DELAY seconds), and fails
// --start-daemon when $FAIL_START is set.
const fakeAdm = `#!/bin/sh
echo "$*" >>"$CALLS"
case "$*" in
"-L --daemon") cat "$RUNNING"; sleep "${LIST_DELAY:-0}" ;;
--start-daemon*)
	if [ -n "${FAIL_START:-}" ]; then echo "afvsadm: $FAIL_START" >&2; exit 1; fi
	echo "$2 sync daemon (mcast=$4, syncid=$6)" >>"$RUNNING" ;;
--stop-daemon*)
	grep -v "^$2 sync daemon" "$RUNNING" >"$RUNNING.new"
	mv "$RUNNING.new" "$RUNNING" ;;
esac
`

// notifySetup is the shipped notify script installed in a directory with
// the shipped settings file, changed only in its values, and fakeAdm.
type notifySetup struct {
	dir, calls, log, running string
	env                      []string
}

func newNotify(t *testing.T, syncIf, running, failStart string) *notifySetup {
	t.Helper()
	dir := t.TempDir()
	n := &notifySetup{dir: dir, calls: filepath.Join(dir, "calls"), log: filepath.Join(dir, "notify.log"), running: filepath.Join(dir, "running")}
	script, err := Files.ReadFile(Notify)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, Notify), script, 0o755))
	env, err := Files.ReadFile(NotifyEnv)
	if err != nil {
		t.Fatal(err)
	}
	adm := filepath.Join(dir, "afvsadm")
	must(t, os.WriteFile(adm, []byte(fakeAdm), 0o755))
	must(t, os.WriteFile(n.running, []byte(running), 0o644))
	// VRRP_ADDRESS empty: the STATE argument decides (TestNotifyFollowsTheAddress
	// sets it).
	set := map[string]string{"AFVSADM": adm, "SYNC_INTERFACE": syncIf, "LOG_FILE": n.log, "SYNC_OPTIONS": "--sync-maxlen 1472",
		"LOCK_FILE": filepath.Join(dir, "lock"), "VRRP_ADDRESS": ""}
	lines := strings.Split(string(env), "\n")
	for i, l := range lines {
		if name, _, ok := strings.Cut(l, "="); ok {
			if v, ok := set[name]; ok {
				lines[i] = name + "='" + v + "'"
				delete(set, name)
			}
		}
	}
	if len(set) > 0 {
		t.Fatalf("%s lacks the settings %v", NotifyEnv, set)
	}
	must(t, os.WriteFile(filepath.Join(dir, NotifyEnv), []byte(strings.Join(lines, "\n")), 0o644))
	n.env = append(os.Environ(), "CALLS="+n.calls, "RUNNING="+n.running, "FAIL_START="+failStart)
	return n
}

// command is the notify script run as keepalived runs it.
func (n *notifySetup) command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(n.dir, Notify), args...)
	cmd.Env = n.env
	return cmd
}

func (n *notifySetup) read(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

type notifyRun struct {
	calls []string
	log   string
	code  int
}

// runNotify runs the notify script once with args.
func runNotify(t *testing.T, syncIf, running, failStart string, args ...string) notifyRun {
	t.Helper()
	n := newNotify(t, syncIf, running, failStart)
	out, err := n.command(args...).CombinedOutput()
	r := notifyRun{}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", Notify, err)
	}
	if len(out) > 0 {
		t.Errorf("%s wrote to its output (keepalived discards it; it must log): %q", Notify, out)
	}
	if c := strings.TrimSpace(n.read(n.calls)); c != "" {
		r.calls = strings.Split(c, "\n")
	}
	r.log = n.read(n.log)
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNotifySwitchesSyncRole: the notify script follows keepalived's
// state with the sync daemon: MASTER stops a running backup daemon and
// starts the master one, BACKUP and FAULT the other way round; a daemon
// already in the right role is left alone; with sync off, or for a state
// it does not know, it runs nothing.
func TestNotifySwitchesSyncRole(t *testing.T) {
	const backupRunning = "backup sync daemon (mcast=eth0, syncid=51)\n"
	const masterRunning = "master sync daemon (mcast=eth0, syncid=51)\n"
	for _, tc := range []struct {
		name, syncIf, running, failStart string
		args                             []string
		code                             int
		calls                            []string
		logs                             []string
	}{
		{"master from backup", "eth0", backupRunning, "", []string{"INSTANCE", "AFVS", "MASTER", "150"}, 0,
			[]string{"-L --daemon", "--stop-daemon backup", "--start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"INSTANCE AFVS is MASTER (priority 150): sync role master", "afvsadm --stop-daemon backup: ok", "afvsadm --start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472: ok"}},
		{"backup at start", "eth0", "", "", []string{"INSTANCE", "AFVS", "BACKUP", "100"}, 0,
			[]string{"-L --daemon", "--start-daemon backup --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"AFVS is BACKUP (priority 100): sync role backup", "--start-daemon backup --mcast-interface eth0 --syncid 51 --sync-maxlen 1472: ok"}},
		{"fault from master", "eth0", masterRunning, "", []string{"INSTANCE", "AFVS", "FAULT", "150"}, 0,
			[]string{"-L --daemon", "--stop-daemon master", "--start-daemon backup --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"AFVS is FAULT", "--stop-daemon master: ok"}},
		{"master already", "eth0", masterRunning, "", []string{"INSTANCE", "AFVS", "MASTER", "150"}, 0,
			[]string{"-L --daemon"}, []string{"master sync daemon already running"}},
		{"start refused", "eth0", "", "connection sync is not implemented", []string{"INSTANCE", "AFVS", "MASTER", "150"}, 1,
			[]string{"-L --daemon", "--start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"--start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472: exit 1: afvsadm: connection sync is not implemented"}},
		{"sync off", "", backupRunning, "", []string{"INSTANCE", "AFVS", "MASTER", "150"}, 0,
			nil, []string{"AFVS is MASTER", "connection sync is off (SYNC_INTERFACE is empty): nothing to switch"}},
		{"unknown state", "eth0", "", "", []string{"INSTANCE", "AFVS", "SLEEPY", "150"}, 2,
			nil, []string{"INSTANCE AFVS: unknown state SLEEPY: nothing changed"}},
		{"no arguments", "eth0", "", "", nil, 2, nil, []string{"usage:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runNotify(t, tc.syncIf, tc.running, tc.failStart, tc.args...)
			if r.code != tc.code || strings.Join(r.calls, "|") != strings.Join(tc.calls, "|") {
				t.Errorf("exit %d, afvsadm calls %q; want exit %d, %q\nlog:\n%s", r.code, r.calls, tc.code, tc.calls, r.log)
			}
			for _, want := range tc.logs {
				if !strings.Contains(r.log, want) {
					t.Errorf("log lacks %q:\n%s", want, r.log)
				}
			}
		})
	}
}

// TestNotifyRunsTakeTurns: keepalived starts the MASTER notification's
// script while the BACKUP one still runs. The runs take turns on the
// lock, so the second sees the daemon the first started and the last
// state wins: only the master sync daemon runs at the end. Without the
// lock both would find nothing running and each start its own role.
func TestNotifyRunsTakeTurns(t *testing.T) {
	n := newNotify(t, "eth0", "", "")
	n.env = append(n.env, "LIST_DELAY=0.5")
	first := n.command("INSTANCE", "AFVS", "BACKUP", "150")
	must(t, first.Start())
	// The first run holds the lock once it has asked what runs.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(n.read(n.calls), "-L --daemon"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first run never asked afvsadm what runs; log:\n%s", n.read(n.log))
		}
	}
	second := n.command("INSTANCE", "AFVS", "MASTER", "150")
	must(t, second.Start())
	if err := errors.Join(first.Wait(), second.Wait()); err != nil {
		t.Fatalf("%v; log:\n%s", err, n.read(n.log))
	}
	if got, want := n.read(n.running), "master sync daemon (mcast=eth0, syncid=51)\n"; got != want {
		t.Errorf("running at the end: %q; want %q\ncalls:\n%s", got, want, n.read(n.calls))
	}
	want := []string{"-L --daemon", "--start-daemon backup --mcast-interface eth0 --syncid 51 --sync-maxlen 1472",
		"-L --daemon", "--stop-daemon backup", "--start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"}
	if got := strings.Split(strings.TrimSpace(n.read(n.calls)), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("afvsadm calls %q; want %q", got, want)
	}
}

// TestCheckScript: afvs-check.sh passes while afvsadm reaches afvs and
// fails when it does not, with the socket from the settings file.
func TestCheckScript(t *testing.T) {
	n := newNotify(t, "eth0", "", "")
	script, err := Files.ReadFile(Check)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(n.dir, Check), script, 0o755))
	// A stand-in afvsadm that reaches afvs only when the socket named in
	// the settings file exists.
	sock := filepath.Join(n.dir, "afvs.sock")
	adm := "#!/bin/sh\necho \"$AFVS_SOCKET $*\" >>\"$CALLS\"\ntest -e \"$AFVS_SOCKET\"\n"
	must(t, os.WriteFile(filepath.Join(n.dir, "afvsadm"), []byte(adm), 0o755))
	env := n.read(filepath.Join(n.dir, NotifyEnv))
	env = regexp.MustCompile(`(?m)^AFVS_SOCKET=.*$`).ReplaceAllString(env, "AFVS_SOCKET='"+sock+"'")
	must(t, os.WriteFile(filepath.Join(n.dir, NotifyEnv), []byte(env), 0o644))
	check := func() int {
		cmd := exec.Command(filepath.Join(n.dir, Check))
		cmd.Env = n.env
		out, err := cmd.CombinedOutput()
		if len(out) > 0 {
			t.Errorf("%s printed %q", Check, out)
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := check(); code == 0 {
		t.Errorf("%s passed with afvs down", Check)
	}
	must(t, os.WriteFile(sock, nil, 0o600))
	if code := check(); code != 0 {
		t.Errorf("%s failed (exit %d) with afvs up", Check, code)
	}
	if calls := n.read(n.calls); strings.Count(calls, sock+" -L --daemon\n") != 2 {
		t.Errorf("afvsadm calls %q; want two -L --daemon on %s", calls, sock)
	}
}

// fakeIP is an ip(8) stand-in: "ip -o addr show dev IF to ADDR/32" prints
// $HELD's content (a line when the address is held), or fails when $HELD
// is missing.
const fakeIP = `#!/bin/sh
echo "$*" >>"$IP_CALLS"
cat "$HELD"
`

// TestNotifyFollowsTheAddress: with the shipped VRRP_ADDRESS, a run takes
// the role from whether the director holds the address when it runs, so
// a notification that a later one overtook does not undo it.
func TestNotifyFollowsTheAddress(t *testing.T) {
	for _, tc := range []struct {
		name, state, held string
		heldMissing       bool
		running           string
		calls, logs       []string
	}{
		{"master, overtaken by backup", "MASTER", "", false, "",
			[]string{"-L --daemon", "--start-daemon backup --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"AFVS was MASTER, but 198.18.0.1 is not on eth0 now: a later notification overtook this one", "AFVS is MASTER (priority 150): sync role backup"}},
		{"backup, overtaken by master", "BACKUP", "2: eth0    inet 198.18.0.1/24 scope global secondary eth0\n", false, "backup sync daemon (mcast=eth0, syncid=51)\n",
			[]string{"-L --daemon", "--stop-daemon backup", "--start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"AFVS was BACKUP, but 198.18.0.1 is on eth0 now", "sync role master"}},
		{"master, holds it", "MASTER", "2: eth0    inet 198.18.0.1/24 scope global secondary eth0\n", false, "",
			[]string{"-L --daemon", "--start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"AFVS is MASTER (priority 150): sync role master"}},
		{"ip fails", "MASTER", "", true, "",
			[]string{"-L --daemon", "--start-daemon master --mcast-interface eth0 --syncid 51 --sync-maxlen 1472"},
			[]string{"ip addr show dev eth0 failed", "going by the state", "sync role master"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNotify(t, "eth0", tc.running, "")
			env := n.read(filepath.Join(n.dir, NotifyEnv))
			env = regexp.MustCompile(`(?m)^VRRP_ADDRESS=.*$`).ReplaceAllString(env, "VRRP_ADDRESS=198.18.0.1")
			must(t, os.WriteFile(filepath.Join(n.dir, NotifyEnv), []byte(env), 0o644))
			bin := filepath.Join(n.dir, "bin")
			must(t, os.Mkdir(bin, 0o755))
			must(t, os.WriteFile(filepath.Join(bin, "ip"), []byte(fakeIP), 0o755))
			held, ipCalls := filepath.Join(n.dir, "held"), filepath.Join(n.dir, "ip-calls")
			if !tc.heldMissing {
				must(t, os.WriteFile(held, []byte(tc.held), 0o644))
			}
			n.env = append(n.env, "PATH="+bin+":"+os.Getenv("PATH"), "HELD="+held, "IP_CALLS="+ipCalls)
			out, err := n.command("INSTANCE", "AFVS", tc.state, "150").CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Fatalf("%v, output %q; log:\n%s", err, out, n.read(n.log))
			}
			if got := strings.Split(strings.TrimSpace(n.read(n.calls)), "\n"); strings.Join(got, "|") != strings.Join(tc.calls, "|") {
				t.Errorf("afvsadm calls %q; want %q\nlog:\n%s", got, tc.calls, n.read(n.log))
			}
			for _, want := range tc.logs {
				if !strings.Contains(n.read(n.log), want) {
					t.Errorf("log lacks %q:\n%s", want, n.read(n.log))
				}
			}
			if got := n.read(ipCalls); got != "-o addr show dev eth0 to 198.18.0.1/32\n" {
				t.Errorf("ip called as %q", got)
			}
		})
	}
}

// keyword returns the word after the first line of a config that starts
// with key ("" for a bare keyword).
func keyword(conf, key string) string {
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `(?:[ \t]+(\S+))?[ \t]*(?:$|[ \t])`).FindStringSubmatch(conf)
	if m == nil {
		return "<missing>"
	}
	return m[1]
}

// uncomment drops a config's comment lines.
func uncomment(conf string) string {
	var keep []string
	for _, l := range strings.Split(conf, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestConfigs checks the properties the README promises of the shipped
// keepalived configs, and has keepalived check them (keepalived -t) where
// it is installed (CI installs it: make deps).
func TestConfigs(t *testing.T) {
	master, err := Files.ReadFile(MasterConf)
	must(t, err)
	backup, err := Files.ReadFile(BackupConf)
	must(t, err)
	m, b := uncomment(string(master)), uncomment(string(backup))
	for name, c := range map[string]string{MasterConf: m, BackupConf: b} {
		for key, want := range map[string]string{"state": "BACKUP", "nopreempt": "", "vrrp_version": "3", "interface": "eth0",
			"virtual_router_id": "51", "notify": NotifyPath, "198.18.0.1/24": "dev", "enable_script_security": "", "vrrp_rt_priority": "50", "vrrp_higher_prio_send_advert": "",
			"script": CheckPath, "afvs_alive": "", "fall": "1"} {
			if got := keyword(c, key); got != want {
				t.Errorf("%s: %s %q; want %q", name, key, got, want)
			}
		}
		// The check's timeout bounds only a hung afvs (a dead one fails
		// at once); one that a busy machine's slow fork and exec can
		// reach puts a healthy director in FAULT (seen: a backup in
		// FAULT when the master died, and a takeover of 1.4 s).
		if iv, to := keyword(c, "interval"), keyword(c, "timeout"); iv != "1" || to != "3" {
			t.Errorf("%s: vrrp_script interval %q, timeout %q; want a check every second with 3 s to answer", name, iv, to)
		}
		adv, err := strconv.ParseFloat(keyword(c, "advert_int"), 64)
		if err != nil || adv <= 0 || adv > 0.25 {
			t.Errorf("%s: advert_int %q: want a short VRRPv3 interval (at most 0.25s) so that failover takes well under a second", name, keyword(c, "advert_int"))
		}
		for _, banned := range []string{"virtual_server", "use_vmac", "lvs_sync_daemon"} {
			if strings.Contains(c, banned) {
				t.Errorf("%s uses %s: keepalived only does VRRP here", name, banned)
			}
		}
	}
	if pm, pb := keyword(m, "priority"), keyword(b, "priority"); pm <= pb || len(pm) != len(pb) {
		t.Errorf("priorities: master %s, backup %s; want the master's higher", pm, pb)
	}
	if keyword(m, "router_id") == keyword(b, "router_id") {
		t.Errorf("both configs have router_id %s", keyword(m, "router_id"))
	}
	kd, err := exec.LookPath("keepalived")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("keepalived is not installed (make deps installs it): %v", err)
		}
		t.Skipf("keepalived -t not run: %v", err)
	}
	for _, name := range []string{MasterConf, BackupConf} {
		// The scripts must exist for keepalived's script checks.
		dir := t.TempDir()
		for _, s := range []string{Notify, Check} {
			script, _ := Files.ReadFile(s)
			must(t, os.WriteFile(filepath.Join(dir, s), script, 0o755))
		}
		c, _ := Files.ReadFile(name)
		conf := filepath.Join(dir, name)
		must(t, os.WriteFile(conf, []byte(strings.ReplaceAll(string(c), Dir, dir+"/")), 0o644))
		if out, err := exec.Command(kd, "-t", "-f", conf).CombinedOutput(); err != nil {
			t.Errorf("keepalived -t -f %s: %v\n%s", name, err, out)
		}
	}
}

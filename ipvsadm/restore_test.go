package ipvsadm

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// TestRestoreSeed restores the example from issue 5. The addresses are
// configuration text only; nothing here sends traffic.
func TestRestoreSeed(t *testing.T) {
	in := "/sbin/ipvsadm -A -t 172.16.81.141:80 -s wlc\n" +
		"/sbin/ipvsadm -a -t 172.16.81.141:80 -r 172.19.81.139 -i -w 1\n"
	cmds, err := ParseRestore(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	svc := Virtual{Proto: TCP, Addr: netip.MustParseAddr("172.16.81.141"), Port: 80}
	add := base(AddService)
	add.HasService, add.Service, add.Sched = true, svc, "wlc"
	srv := base(AddServer)
	srv.HasService, srv.Service, srv.Fwd = true, svc, Tunnel
	srv.Server = netip.MustParseAddrPort("172.19.81.139:80")
	want := []*Command{&add, &srv}
	if !reflect.DeepEqual(cmds, want) {
		t.Errorf("seed restore:\n got %+v\n     %+v\nwant %+v\n     %+v", *cmds[0], *cmds[1], add, srv)
	}
}

func TestRestoreSyntax(t *testing.T) {
	in := strings.Join([]string{
		"# saved by hand",
		"",
		"   \t  ",
		"ipvsadm -A -t 198.19.0.1:80 -s rr   # trailing comment",
		"-a -t 198.19.0.1:80 -r 198.18.1.2:80 -g -w 1",
		"\t-a\t-t 198.19.0.1:80  -r 198.18.1.3 -w 2\r",
		"afvsadm --set 900 120 300",
		"/usr/sbin/ipvsadm -Z",
		"#-C",
	}, "\n") // no final newline: the last line still counts
	cmds, err := ParseRestore(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []Kind
	for _, c := range cmds {
		kinds = append(kinds, c.Kind)
	}
	want := []Kind{AddService, AddServer, AddServer, SetTimeout, Zero}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	if cmds[2].Weight != 2 || cmds[2].Server != netip.MustParseAddrPort("198.18.1.3:80") {
		t.Errorf("tab-separated line parsed as %+v", *cmds[2])
	}
}

func TestRestoreErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"-A -t 198.19.0.1:80\n-a -t 198.19.0.1:80 -r 198.18.1.2 -w 70000\n", `restore line 2: illegal weight specified: "70000"`},
		{"\n\n# c\n-A -t 198.19.0.1:80 --bogus\n", "restore line 4: --bogus: unknown option"},
		{"-R\n", "restore line 1: -R cannot be nested"},
		{"-A -t 198.19.0.1:80 -p --pe sip\n", "restore line 1: --pe: persistence engines is not supported by afvs"},
		{"-A -t 198.19.0.1:80\n" + strings.Repeat("x", maxRestoreLine+1) + "\n", "restore: read"},
	}
	for _, tt := range tests {
		cmds, err := ParseRestore(strings.NewReader(tt.in))
		if err == nil {
			t.Errorf("ParseRestore(%.40q) = %d commands, want error %q", tt.in, len(cmds), tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRestore(%.40q) error %q, want one line containing %q", tt.in, err, tt.want)
		}
	}
	if _, err := ParseRestore(strings.NewReader("-A -t 198.19.0.1:80 -p --pe sip\n")); !errors.Is(err, ErrNotSupported) {
		t.Errorf("unsupported option in restore lost ErrNotSupported: %v", err)
	}
	if _, err := ParseRestore(iotest.ErrReader(errors.New("disk on fire"))); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("read error not reported: %v", err)
	}
}

// apply builds a table from commands the way a director would, enough to
// check that -S output restores to the same table.
func apply(t *testing.T, cmds []*Command) *Snapshot {
	t.Helper()
	s := &Snapshot{}
	for _, c := range cmds {
		switch c.Kind {
		case AddService:
			s.Services = append(s.Services, Service{
				Virtual: c.Service, Sched: c.Sched, SchedFlags: c.SchedFlags,
				Persistent: c.Persistent, Timeout: c.Timeout, Netmask: c.Netmask, OnePacket: c.OnePacket,
			})
		case AddServer:
			svc := s.find(c.Service)
			if svc == nil {
				t.Fatalf("-a to missing service %v", c.Service)
			}
			svc.Dests = append(svc.Dests, Dest{
				Addr: c.Server.Addr(), Port: c.Server.Port(), Fwd: c.Fwd, Tunnel: c.Tunnel,
				Weight: c.Weight, Upper: c.Upper, Lower: c.Lower,
			})
		default:
			t.Fatalf("unexpected %s in saved table", c.Kind)
		}
	}
	return s
}

// config strips what -S does not carry (counters, thresholds, the Local
// method, which is saved as -g) and sorts, leaving the configuration.
func config(s *Snapshot) []Service {
	var out []Service
	for _, svc := range s.sortedServices(true) {
		c := Service{Virtual: svc.Virtual, Sched: svc.Sched, SchedFlags: svc.SchedFlags, Persistent: svc.Persistent,
			Timeout: svc.Timeout, Netmask: svc.Netmask, OnePacket: svc.OnePacket}
		for _, d := range sortedDests(svc, true) {
			fwd := d.Fwd
			if fwd == Local {
				fwd = Route
			}
			c.Dests = append(c.Dests, Dest{Addr: d.Addr, Port: d.Port, Fwd: fwd, Tunnel: d.Tunnel, Weight: d.Weight})
		}
		out = append(out, c)
	}
	return out
}

// TestSaveRestoreRoundTrip: -S output fed to -R on an empty director
// rebuilds the same table, and saving that table gives the same text.
func TestSaveRestoreRoundTrip(t *testing.T) {
	orig := fixture()
	var saved bytes.Buffer
	if err := orig.WriteSave(&saved); err != nil {
		t.Fatal(err)
	}
	cmds, err := ParseRestore(bytes.NewReader(saved.Bytes()))
	if err != nil {
		t.Fatalf("restore of our own save: %v\n%s", err, saved.String())
	}
	rebuilt := apply(t, cmds)
	if got, want := config(rebuilt), config(orig); !reflect.DeepEqual(got, want) {
		t.Errorf("restored table differs:\n got %+v\nwant %+v", got, want)
	}
	var again bytes.Buffer
	if err := rebuilt.WriteSave(&again); err != nil {
		t.Fatal(err)
	}
	if again.String() != saved.String() {
		t.Errorf("save after restore differs:\n%s\nwant\n%s", again.String(), saved.String())
	}

	// Same commands both ways: each saved line, re-rendered with Args and
	// parsed, is the command the line parsed to.
	for i, c := range cmds {
		back, err := Parse(c.Args())
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("command %d: Args %q reparsed to %+v, %v; want %+v", i, c.Args(), back, err, *c)
		}
	}
}

// TestRestoreGoldenSave restores the hand-written expected -S output,
// which is ipvsadm's format and not this package's.
func TestRestoreGoldenSave(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "save.golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmds, err := ParseRestore(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := config(apply(t, cmds)), config(fixture()); !reflect.DeepEqual(got, want) {
		t.Errorf("restored golden save differs from fixture:\n got %+v\nwant %+v", got, want)
	}
}

// TestMixedFamilyRoundTrip: the tunnel dests of the other family (4in6:
// an IPv6 real server of an IPv4 service; 6in4: the reverse), an IPv6
// firewall-mark service with -M as a prefix length and an IPv4-compatible
// address, which inet_ntop dots, come back from -S through -R unchanged;
// -L cuts no name, since ipvsadm cuts only IPv4 real servers' names
// (e->af != AF_INET6), which are never long enough. (198.18.0.12 lists
// before ::198.18.0.13: ipvs_cmp_dests takes the first dest's family and
// subtracts the first 32 bits into a signed int.)
func TestMixedFamilyRoundTrip(t *testing.T) {
	in := "-A -t 198.19.0.1:80 -s rr\n" +
		"-a -t 198.19.0.1:80 -r [2001:2::1111:2222:3333:4444]:80 -i -w 1 --tun-type ipip\n" +
		"-A -t [2001:2::1]:443 -s sh -p 600 -M 56\n" +
		"-a -t [2001:2::1]:443 -r 198.18.0.12:443 -i -w 2 --tun-type ipip\n" +
		"-a -t [2001:2::1]:443 -r [::198.18.0.13]:443 -g -w 3\n" +
		"-A -f 1 -6 -s wlc -p 300 -M 48\n" +
		"-a -f 1 -6 -r 198.18.0.14:0 -i -w 4 --tun-type ipip\n"
	cmds, err := ParseRestore(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	s := apply(t, cmds)
	s.Size = 4096
	var saved bytes.Buffer
	if err := s.WriteSave(&saved); err != nil {
		t.Fatal(err)
	}
	if saved.String() != in {
		t.Errorf("-S after -R:\n%s\nwant\n%s", saved.String(), in)
	}
	var list bytes.Buffer
	if err := s.WriteList(&list, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  198.19.0.1:80 rr\n" +
		"  -> [2001:2::1111:2222:3333:4444]:80 Tunnel  1      0          0         \n" +
		"TCP  [2001:2::1]:443 sh persistent 600 mask 56\n" +
		"  -> 198.18.0.12:443              Tunnel  2      0          0         \n" +
		"  -> [::198.18.0.13]:443          Route   3      0          0         \n" +
		"FWM  1 IPv6 wlc persistent 300 mask 48\n" +
		"  -> 198.18.0.14:0                Tunnel  4      0          0         \n"
	if list.String() != want {
		t.Errorf("-L -n:\n%s\nwant\n%s", list.String(), want)
		diffLines(t, list.String(), want)
	}
}

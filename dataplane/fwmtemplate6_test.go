package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// The VIPs of fwmRig's firewall mark 7.
var (
	fxVIP6FWM = netip.MustParseAddr("2001:2:0:1::70")
	fxVIPFWM  = netip.MustParseAddr("198.19.0.70")
)

// fwmRig is a sync-enabled rig whose table adds firewall mark 7 of both
// families, persistent, over fxVIP6FWM and fxVIPFWM port 80: the IPv6
// service to fxRS6Pers1 and fxRS6Pers2, the IPv4 one to fxRSDR.
func fwmRig(t *testing.T, s *ipvssync.Settings) (*fxRig, *ipvssync.Queue) {
	t.Helper()
	r, q := syncRig6(t, s)
	tbl := fixtureTable6(t)
	tbl.Marks = append(tbl.Marks, vs.Mark{Mark: 7, Matches: []vs.Match{
		{Proto: vs.TCP, Addr: fxVIP6FWM, PortLo: 80, PortHi: 80},
		{Proto: vs.TCP, Addr: fxVIPFWM, PortLo: 80, PortHi: 80},
	}})
	for _, svc := range []vs.Service{
		{Key: vs.Key{FWMark: 7, IPv6: true}, Sched: "rr", Persistent: true, Timeout: 300, Netmask: vs.PrefixMask(128, true),
			Reals: []vs.Real{{Addr: fxRS6Pers1, Fwd: vs.Route, Weight: 1}, {Addr: fxRS6Pers2, Fwd: vs.Route, Weight: 1}}},
		{Key: vs.Key{FWMark: 7}, Sched: "rr", Persistent: true, Timeout: 300, Netmask: vs.FullMask(false),
			Reals: []vs.Real{{Addr: fxRSDR, Fwd: vs.Route, Weight: 1}}},
	} {
		if err := tbl.AddService(svc); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := Build(tbl, BuildOptions{Registry: r.reg, Loads: r.loads, Prev: r.snap,
		Resolver: StaticResolver{MACs: map[netip.Addr][6]byte{fxRS6Unres: {}}}, Ifaces: fxIfaces6()})
	if err != nil {
		t.Fatal(err)
	}
	r.snap = snap
	return r, q
}

// TestFwmarkTemplateVAddr6: a persistent firewall-mark service's template
// has, as its virtual address, ip_vs_sched_persist's union nf_inet_addr
// { .ip = htonl(fwmark) } in the service's family: 0.0.0.7 for mark 7 of
// IPv4, and the IPv6 address 0:7:: (the mark in the first 32 bits) for
// mark 7 of IPv6. That is what ipvsadm -L -c lists, what the kernel's
// sync master sends and what a kernel backup looks the template up by.
// A master here sends it so, and a template a kernel master sent this
// way steers new connections on a backup here.
func TestFwmarkTemplateVAddr6(t *testing.T) {
	master, q := fwmRig(t, &ipvssync.DefaultSettings)
	master.send(t, "IPv6 FWM 7", frame6(t, fxVIP6FWM, 80))
	master.send(t, "IPv4 FWM 7", seg(t, fxVIPFWM, 80))
	want := map[bool]netip.Addr{true: netip.MustParseAddr("0:7::"), false: netip.MustParseAddr("::ffff:0.0.0.7")}
	seen := 0
	master.ct.Range(func(k conntrack.Key, _ conntrack.Conn, _ time.Duration, template bool) bool {
		if !template {
			return true
		}
		seen++
		v6 := !netip.AddrFrom16(k.CAddr).Is4In6()
		if got := netip.AddrFrom16(k.VAddr); k.Proto != 0 || k.VPort != 0 || got != want[v6] {
			t.Errorf("template %v: virtual %s protocol %d, want %s protocol 0 (IPPROTO_IP)", k, got, k.Proto, want[v6])
		}
		return true
	})
	if seen != 2 {
		t.Fatalf("%d templates, want one per family", seen)
	}
	var tmpl6 *ipvssync.Conn
	for _, c := range popConns(q) {
		if c.Flags&ipvssync.FlagTemplate != 0 && c.IPv6() {
			tmpl6 = &c
		}
	}
	if tmpl6 == nil || tmpl6.FWMark != 7 || tmpl6.VAddr != want[true] || tmpl6.CAddr != fxClient6 {
		t.Fatalf("IPv6 template sent as %+v, want FWM 7, virtual 0:7::, client %s", tmpl6, fxClient6)
	}

	// A kernel master's IPv6 template for another client, to the server
	// rr would not pick first: the client's new connections follow it.
	client := netip.MustParseAddr("2001:2:0:9::10")
	for _, rs := range []netip.Addr{fxRS6Pers2, fxRS6Pers1} {
		backup, _ := fwmRig(t, nil)
		c := ipvssync.Conn{Protocol: 0, Flags: ipvssync.FlagDRoute | ipvssync.FlagTemplate, FWMark: 7, Timeout: 300,
			CAddr: client, VAddr: want[true], DAddr: rs}
		if _, d := InstallSynced(backup.snap, backup.ct, &c, 2); d != SyncOK {
			t.Fatalf("install %+v: %v", c, d)
		}
		for p := uint16(41000); p < 41003; p++ {
			v, out, _ := backup.run(frame6(t, fxVIP6FWM, 80, f6From(client), f6Sport(p)), 256)
			if v != VerdictForward || [6]byte(out[:6]) != SyntheticMAC(rs) || !backup.p.Last.Template {
				t.Fatalf("SYN from %s port %d after a synced template to %s: verdict %d, to %x, decision %+v", client, p, rs, v, out[:6], backup.p.Last)
			}
		}
	}
}

// TestFwmarkTemplate6Allocs: an IPv6 firewall-mark SYN that makes its
// template, and one that finds it, allocate nothing.
func TestFwmarkTemplate6Allocs(t *testing.T) {
	r, _ := fwmRig(t, nil)
	b := make([]byte, 2048)
	for _, c := range []struct {
		what string
		hi   byte // the client address's byte 14 when not step
		step bool // a new client address (so a new template) each run
	}{{"new template", 0, true}, {"template hit", 0x42, false}} {
		syn := frame6(t, fxVIP6FWM, 80)
		n := uint16(0)
		allocs := testing.AllocsPerRun(1000, func() {
			n++
			copy(b[256:], syn)
			b[256+54], b[256+55] = byte(n>>8), byte(n) // a new connection: the TCP source port
			// Netmask 128: the client address itself keys the template.
			b[256+22+14], b[256+22+15] = c.hi, 0
			if c.step {
				b[256+22+14], b[256+22+15] = byte(n>>8), byte(n)
			}
			if v, _ := r.p.Process(r.snap, b, 256, len(syn)); v != VerdictForward {
				t.Fatalf("%s: verdict %d", c.what, v)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per frame", c.what, allocs)
		}
		if d := r.p.Last; !d.New || d.Template == c.step {
			t.Errorf("%s: last decision %+v", c.what, d)
		}
	}
}

package director_test

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// dirMACB is the second director's MAC in a pair.
var dirMACB = [6]byte{0x02, 0, 0, 0, 0, 0x03}

// pair is a fake network with two directors, A (198.18.0.2, 2001:2::2)
// and B (198.18.0.3, 2001:2::3), a client (198.18.0.10, 2001:2::10) and
// real servers, all on segment "lan" (198.18.0.0/24, 2001:2::/64): a sync
// master and its backup.
type pair struct {
	t      *testing.T
	net    *platformtest.Network
	a, b   *platformtest.Host
	client *platformtest.Iface
	reals  map[netip.Addr]*platformtest.Iface
	log    *syncBuffer
}

// dualIface gives h an interface on "lan" with an IPv4 and an IPv6
// address.
func dualIface(h *platformtest.Host, mac [6]byte, v4, v6 string) *platformtest.Iface {
	p4, p6 := netip.MustParsePrefix(v4), netip.MustParsePrefix(v6)
	ifc := h.AddIface("eth0", mac, p4, "lan", 1)
	ifc.SetAddrs(p4, p6)
	h.AddRoute(p6.Masked(), "eth0", netip.Addr{})
	return ifc
}

func newPair(t *testing.T, reals ...string) *pair {
	t.Helper()
	n := platformtest.NewNetwork()
	n.Misuse = func(msg string) { t.Error(msg) }
	p := &pair{t: t, net: n, a: n.AddHost("director-a"), b: n.AddHost("director-b"), reals: map[netip.Addr]*platformtest.Iface{}, log: &syncBuffer{}}
	dualIface(p.a, dirMAC, "198.18.0.2/24", "2001:2::2/64")
	dualIface(p.b, dirMACB, "198.18.0.3/24", "2001:2::3/64")
	p.client = dualIface(n.AddHost("client"), clientMAC, "198.18.0.10/24", "2001:2::10/64")
	for i, s := range reals {
		a := netip.MustParseAddr(s)
		bits := 24
		if a.Is6() {
			bits = 64
		}
		p.reals[a] = n.AddHost("rs-"+s).AddIface("eth0", [6]byte{0x02, 0, 0, 0, 0xee, byte(i + 1)}, netip.PrefixFrom(a, bits), "lan", 1)
	}
	return p
}

// start runs a director on host h.
func (p *pair) start(h *platformtest.Host, t *vs.Table) *director.Director {
	p.t.Helper()
	d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
		Platform: h, Log: slog.New(slog.NewTextHandler(p.log, nil))}, t)
	if err != nil {
		p.t.Fatal(err)
	}
	d.Start()
	p.t.Cleanup(func() {
		d.Close()
		if s, n := h.Open(); s != 0 || n != 0 {
			p.t.Errorf("after Close: %d sockets and %d programs still open on %s", s, n, h.Name)
		}
	})
	resolved(p.t, d)
	return d
}

// recv waits for n frames at the real server a.
func (p *pair) recv(a netip.Addr, n int) [][]byte {
	p.t.Helper()
	var got [][]byte
	platformtest.Eventually(2*time.Second, func() bool { got = append(got, p.reals[a].Recv()...); return len(got) >= n })
	time.Sleep(10 * time.Millisecond)
	got = append(got, p.reals[a].Recv()...)
	if len(got) != n {
		p.t.Fatalf("real server %v got %d frames, want %d", a, len(got), n)
	}
	return got
}

// transfer packs what q holds into sync messages, as a master's sender
// does, and installs them on the backup b, as its receiver does; it
// returns the entries sent.
func transfer(t *testing.T, q *ipvssync.Queue, b *director.Director) []ipvssync.Conn {
	t.Helper()
	var sent []ipvssync.Conn
	var rec ipvssync.Record
	platformtest.Eventually(2*time.Second, func() bool {
		for q.Pop(&rec) {
			var c ipvssync.Conn
			rec.Conn(&c)
			sent = append(sent, c)
		}
		return len(sent) > 0
	})
	enc, err := ipvssync.NewEncoder(make([]byte, 1500), 1472, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sent {
		if err := enc.Append(&sent[i]); err != nil {
			t.Fatal(err)
		}
	}
	dec := ipvssync.Decoder{SyncID: 1}
	if err := dec.Decode(enc.Bytes(), func(c *ipvssync.Conn) {
		if _, drop := b.InstallSynced(c, 3); drop != dataplane.SyncOK {
			t.Fatalf("backup refused %+v: %v", c, drop)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return sent
}

// tcp6 is a TCP segment src:sport -> dst:dport over IPv6 between two
// MACs.
func tcp6(t *testing.T, from, to [6]byte, src, dst netip.Addr, sport, dport uint16, syn, fin bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(from[:]), DstMAC: net.HardwareAddr(to[:]), EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: !syn, FIN: fin, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// entries lists d's connection table as afvsadm -L -c shows it: client,
// virtual address, real server and state, sorted.
func entries(d *director.Director) []string {
	var out []string
	snap := d.Snapshot()
	d.CT.Range(func(k conntrack.Key, c conntrack.Conn, _ time.Duration, template bool) bool {
		rs := "?"
		if _, ds, ok := snap.DestByID(c.Dest); ok {
			rs = ds.IP().String()
		}
		out = append(out, k.String()+" -> "+rs+" "+c.State.String())
		return true
	})
	slices.Sort(out)
	return out
}

// TestDirectorSync6: two directors, A a sync master and B its backup, with
// the same IPv6 VS/DR service. A's workers queue the client's IPv6
// connections as IPv6 entries; installed on B from the wire form, they
// are B's entries too, with the same real server counts; a connection
// closing on A is sent at its FIN and is inactive on B. When the client's
// frames move to B (a takeover), B forwards the established connection at
// once, with no SYN, to the same real server.
func TestDirectorSync6(t *testing.T) {
	vip6, rs := netip.MustParseAddr("2001:2:0:1::1"), netip.MustParseAddr("2001:2::11")
	client := netip.MustParseAddr("2001:2::10")
	p := newPair(t, rs.String())
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip6, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: rs, Port: 80, Weight: 1, Fwd: vs.Route}}}
	a := p.start(p.a, table(t, svc))
	b := p.start(p.b, table(t, svc))
	qs, err := a.StartSync(ipvssync.DefaultSettings, 64)
	if err != nil {
		t.Fatal(err)
	}
	// Two connections: 6000 stays open, 6001 closes (a FIN at its 3rd
	// packet, sent at once as FIN_WAIT).
	for _, sport := range []uint16{6000, 6001} {
		p.client.Send(tcp6(t, clientMAC, dirMAC, client, vip6, sport, 80, true, false))
		p.client.Send(tcp6(t, clientMAC, dirMAC, client, vip6, sport, 80, false, false))
		p.client.Send(tcp6(t, clientMAC, dirMAC, client, vip6, sport, 80, false, sport == 6001))
	}
	p.recv(rs, 6)
	sent := transfer(t, qs[0], b)
	if len(sent) != 2 {
		t.Fatalf("master sent %+v, want both connections once", sent)
	}
	for _, c := range sent {
		if !c.IPv6() || c.CAddr != client || c.VAddr != vip6 || c.DAddr != rs {
			t.Errorf("entry %+v: want IPv6 %v -> %v via %v", c, client, vip6, rs)
		}
	}
	if ea, eb := entries(a), entries(b); len(ea) != 2 || !slices.Equal(ea, eb) {
		t.Fatalf("entries differ:\nmaster %q\nbackup %q", ea, eb)
	}
	da, db := a.Snapshot().Services[0].Dests[0].ID, b.Snapshot().Services[0].Dests[0].ID
	if a.Loads.Active(da) != 1 || a.Loads.Inactive(da) != 1 || b.Loads.Active(db) != 1 || b.Loads.Inactive(db) != 1 {
		t.Errorf("active/inactive: master %d/%d, backup %d/%d; want 1/1 on both",
			a.Loads.Active(da), a.Loads.Inactive(da), b.Loads.Active(db), b.Loads.Inactive(db))
	}
	// Takeover: the client's next segment goes to B.
	p.client.Send(tcp6(t, clientMAC, dirMACB, client, vip6, 6000, 80, false, false))
	got := p.recv(rs, 1)[0]
	if [6]byte(got[6:12]) != dirMACB || [6]byte(got[0:6]) != p.reals[rs].MAC {
		t.Fatalf("after the takeover the real server got a frame %x -> %x, want from B's MAC to its own", got[6:12], got[0:6])
	}
	var drops uint64
	for _, c := range b.Counters() {
		drops += c.Drops[dataplane.DropNoConnection].Load()
	}
	if drops != 0 {
		t.Errorf("backup dropped %d frames as no_connection", drops)
	}
}

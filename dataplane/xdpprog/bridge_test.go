package xdpprog

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestSteeringTwoDirectorsOnABridge: a client and two directors share a
// bridge, each director with the steering program for the same UDP
// service attached to its port. The client sends to the VIP with a MAC
// the bridge has never seen, so the bridge floods every frame to both
// directors; neither redirects one (each counts them as PassOtherMAC).
// Sent to the first director's MAC instead, the frames match on the first
// director only.
func TestSteeringTwoDirectorsOnABridge(t *testing.T) {
	n := pairSeq.Add(1)
	pid := os.Getpid() % 100000
	name := func(role string) string { return fmt.Sprintf("afvs-xdpbr-%d-%d-%s", pid, n, role) }
	nsBr := newNamedNS(t, name("br"))
	hBr, err := netlink.NewHandleAt(nsBr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hBr.Close)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := hBr.LinkAdd(br); err != nil {
		t.Fatalf("create bridge: %v", err)
	}
	if err := hBr.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}

	vip := netip.MustParseAddr("198.18.201.10")
	const port = 9
	type host struct {
		ns   *nsHost
		addr netip.Addr
	}
	hosts := map[string]host{}
	for i, role := range []string{"client", "dir1", "dir2"} {
		h := newNSHost(t, name(role))
		addr := netip.AddrFrom4([4]byte{198, 18, 201, byte(1 + i)})
		port := fmt.Sprintf("xb%d%d%c", pid, n, 'a'+i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(h.ns)}
		if err := hBr.LinkAdd(veth); err != nil {
			t.Fatalf("veth for %s: %v", role, err)
		}
		if err := hBr.LinkSetUp(veth); err != nil {
			t.Fatal(err)
		}
		h.up(t, "eth0", addr)
		hosts[role] = host{h, addr}
	}

	type director struct {
		s   *Steering
		mac [6]byte
	}
	var dirs []director
	for _, role := range []string{"dir1", "dir2"} {
		h := hosts[role].ns
		s, err := LoadSteering(4, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.SetServices([]ServiceKey{{Addr: vip, Proto: ipProtoUDP, Port: port}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetOwnerMACs(h.mac); err != nil {
			t.Fatal(err)
		}
		var a Attachment
		if err := inNS(h.ns, func() error {
			var err error
			a, err = s.Attach(h.index, ModeAuto)
			return err
		}); err != nil {
			t.Fatalf("attach on %s: %v", role, err)
		}
		t.Cleanup(func() { a.Close() })
		dirs = append(dirs, director{s, h.mac})
	}

	// send makes the client reach the VIP through mac and sends count
	// datagrams at a time; it returns each director's counter delta once
	// done says enough have arrived where they must (or after 5 s), plus a
	// moment for any stray copy to arrive too.
	client := hosts["client"].ns
	send := func(mac [6]byte, count int, done func([2]StatsCounters) bool) [2]StatsCounters {
		t.Helper()
		if err := client.h.NeighSet(&netlink.Neigh{LinkIndex: client.index, State: netlink.NUD_PERMANENT,
			IP: vip.AsSlice(), HardwareAddr: net.HardwareAddr(mac[:])}); err != nil {
			t.Fatalf("neighbour %s -> %x: %v", vip, mac, err)
		}
		var before [2]StatsCounters
		for i, d := range dirs {
			before[i] = steeringStats(t, d.s)
		}
		burst := func() {
			if err := inNS(client.ns, func() error {
				c, err := net.Dial("udp4", netip.AddrPortFrom(vip, port).String())
				if err != nil {
					return err
				}
				defer c.Close()
				for range count {
					if _, err := c.Write([]byte("afvs")); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		// The frames cross the bridge asynchronously, and a port that has
		// just come up may still lose some: send bursts until every frame
		// of one has been counted where it must be.
		var got [2]StatsCounters
		deadline := time.Now().Add(5 * time.Second)
		for {
			burst()
			time.Sleep(50 * time.Millisecond)
			for i, d := range dirs {
				got[i] = steeringStats(t, d.s).minus(before[i])
			}
			if done(got) || time.Now().After(deadline) {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
		for i, d := range dirs {
			got[i] = steeringStats(t, d.s).minus(before[i])
		}
		return got
	}

	const count = 20
	unknown := [6]byte{0x02, 0xaf, 0x05, 0, 0, 0x99}
	arrived := func(g StatsCounters) uint64 { return g.PassOtherMAC + g.PassNoSocket + g.Redirected }
	got := send(unknown, count, func(g [2]StatsCounters) bool { return arrived(g[0]) >= count && arrived(g[1]) >= count })
	for i, g := range got {
		if g.PassOtherMAC < count || g.PassNoSocket != 0 || g.Redirected != 0 {
			t.Errorf("director %d, frames for an unknown MAC: %+v; want all %d flooded to it and passed as other_mac, none matched", i+1, g, count)
		}
	}

	got = send(dirs[0].mac, count, func(g [2]StatsCounters) bool { return arrived(g[0]) >= count })
	if got[0].PassNoSocket < count || got[0].PassOtherMAC != 0 {
		t.Errorf("director 1, frames for its MAC: %+v; want %d matched", got[0], count)
	}
	if got[1].PassNoSocket != 0 || got[1].Redirected != 0 {
		t.Errorf("director 2 matched frames for director 1's MAC: %+v", got[1])
	}
}

// nsHost is a namespace of the test's own with one interface, eth0.
type nsHost struct {
	ns    netns.NsHandle
	h     *netlink.Handle
	index int
	mac   [6]byte
}

func newNSHost(t *testing.T, name string) *nsHost {
	t.Helper()
	ns := newNamedNS(t, name)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &nsHost{ns: ns, h: h}
}

// up addresses eth0 with addr/24, brings it up and records its index and
// MAC.
func (n *nsHost) up(t *testing.T, ifName string, addr netip.Addr) {
	t.Helper()
	l, err := n.h.LinkByName(ifName)
	if err != nil {
		t.Fatal(err)
	}
	ipnet := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(24, 32)}
	if err := n.h.AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
		t.Fatal(err)
	}
	if err := n.h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	n.index, n.mac = l.Attrs().Index, [6]byte(l.Attrs().HardwareAddr)
}

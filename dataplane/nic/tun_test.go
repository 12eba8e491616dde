package nic

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/vishvananda/netlink"
)

// TestTunDelivers: an IPv4 packet written into a Tun reaches a socket of
// the namespace listening on its destination, a local address, although
// its source routes out of another interface; closing removes the device.
func TestTunDelivers(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	tn := newTestNS(t)
	err := DoIn(tn.name, func() error {
		tun, err := OpenTun("afvst%d")
		if err != nil {
			return err
		}
		defer tun.Close()
		if tun.Name != "afvst0" || tun.Index == 0 {
			t.Errorf("tun %q index %d: want afvst0 and an index", tun.Name, tun.Index)
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: mustCIDR(t, "198.18.77.1/32")}); err != nil {
			return err
		}
		pc, err := net.ListenPacket("udp4", "198.18.77.1:5353")
		if err != nil {
			return err
		}
		defer pc.Close()
		pkt := testsupport.Build(t, testsupport.IPv4(netip.MustParseAddr("198.18.78.9"), netip.MustParseAddr("198.18.77.1")),
			testsupport.UDP(40000, 5353), gopacket.Payload("through the tun"))
		if err := tun.Write(pkt); err != nil {
			return err
		}
		buf := make([]byte, 100)
		_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Errorf("nothing arrived: %v", err)
			return nil
		}
		if string(buf[:n]) != "through the tun" || from.String() != "198.18.78.9:40000" {
			t.Errorf("got %q from %s", buf[:n], from)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.h.LinkByName("afvst0"); err == nil {
		t.Error("the tun outlived Close")
	}
}

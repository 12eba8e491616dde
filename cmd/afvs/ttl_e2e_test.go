package main

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testnet"
)

// checkTimeExceeded is traceroute's first hop through the director: a TCP
// SYN to the VIP sent with TTL 1 dies there (decrement_ttl), and the
// client gets ICMP Time Exceeded, code 0, from the VIP, quoting the SYN;
// the director counts it as ttl_exceeded and as an ICMP message sent.
func checkTimeExceeded(t *testing.T, lab *testnet.Lab) {
	t.Helper()
	before, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	var msg *layers.ICMPv4
	var from netip.Addr
	err = lab.Client.Do(func() error {
		ic, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer ic.Close()
		d := net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, 1) }); err != nil {
				return err
			}
			return serr
		}}
		if c, err := d.Dial("tcp", net.JoinHostPort(lab.VIP.String(), strconv.Itoa(int(lab.Port)))); err == nil {
			c.Close()
			t.Errorf("a connection with TTL 1 reached a real server through the director")
		}
		if err := ic.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for {
			n, a, err := ic.ReadFrom(buf)
			if err != nil {
				return err
			}
			p := gopacket.NewPacket(buf[:n], layers.LayerTypeICMPv4, gopacket.Default)
			if m, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && m.TypeCode.Type() == layers.ICMPv4TypeTimeExceeded {
				msg = m
				from, _ = netip.ParseAddr(a.String())
				return nil
			}
		}
	})
	if err != nil {
		t.Fatalf("no ICMP Time Exceeded for a SYN with TTL 1: %v", err)
	}
	if from != lab.VIP || msg.TypeCode.Code() != 0 {
		t.Errorf("Time Exceeded code %d from %s, want code 0 from the VIP %s", msg.TypeCode.Code(), from, lab.VIP)
	}
	q := gopacket.NewPacket(msg.Payload, layers.LayerTypeIPv4, gopacket.Default)
	if ip, ok := q.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ok || !ip.DstIP.Equal(lab.VIP.AsSlice()) || ip.TTL != 1 || ip.Protocol != layers.IPProtocolTCP {
		t.Errorf("Time Exceeded quotes %v, want the SYN to the VIP with TTL 1", q)
	}
	after, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if after.Drops["ttl_exceeded"] <= before.Drops["ttl_exceeded"] || after.ICMPSent <= before.ICMPSent {
		t.Errorf("ttl_exceeded %d -> %d, icmp sent %d -> %d: want both counted", before.Drops["ttl_exceeded"], after.Drops["ttl_exceeded"],
			before.ICMPSent, after.ICMPSent)
	}
}

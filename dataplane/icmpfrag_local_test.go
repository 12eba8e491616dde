package dataplane

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
)

// TestFragmentsAndICMPToALocalRealServer: with the director itself among
// the real servers (the local node), a datagram's fragments and an ICMP
// error about a local connection go to the director's own stack
// (VerdictLocal, held fragments with LocalSlot), as the IPv4 packet, and
// none of them reads as a new connection (Last.New), which would make the
// worker ask the steering program to pass a flow with no ports.
func TestFragmentsAndICMPToALocalRealServer(t *testing.T) {
	r, _ := localRig(t)
	client := [4]byte{198, 18, 0, 10}
	buf := make([]byte, maxFrame)
	run := func(f []byte) (Verdict, Out) {
		copy(buf[headroom:], f)
		return r.p.Process(r.snap, buf, headroom, len(f))
	}
	// rr over three remote real servers and the local one: find the
	// client ports whose connections go local.
	var local []uint16
	for port := uint16(6000); len(local) < 2; port++ {
		fs := fragsOf(tcpFrame(t, client, port, true, false, false, false, 3000), 1480)
		if port == 6000+40 {
			t.Fatal("no local connection in 40 tries")
		}
		if v, _ := run(fs[0]); v == VerdictLocal {
			local = append(local, port)
			if !r.p.Last.New {
				t.Fatal("a local connection's first fragment is not a new connection")
			}
			for _, f := range fs[1:] {
				v, out := run(f)
				if v != VerdictLocal || out.Len != len(f)-14 || r.p.Last.New {
					t.Fatalf("later fragment: verdict %d, %d bytes of %d, new %v", v, out.Len, len(f)-14, r.p.Last.New)
				}
			}
		}
	}
	// Out of order, to a local real server: held, then released for the
	// local stack.
	fs := fragsOf(tcpFrame(t, client, local[1], true, false, false, false, 3000), 1480)
	for i := range fs {
		ip := header.IPv4(fs[i][14:])
		ip.SetID(0x7777) // a new datagram
		ip.SetChecksum(0)
		ip.SetChecksum(ip.CalculateChecksum())
	}
	if v, _ := run(fs[2]); v != VerdictHeld {
		t.Fatalf("later fragment first: verdict %d", v)
	}
	if v, _ := run(fs[0]); v != VerdictLocal {
		t.Fatalf("first fragment: verdict %d", v)
	}
	b, second, slot, ok := r.p.Released()
	if !ok || slot != LocalSlot || second != nil || len(b) != len(fs[2])-14 || b[0]>>4 != 4 {
		t.Fatalf("released: ok %v, slot %d, %d bytes (want the %d-byte IPv4 packet)", ok, slot, len(b), len(fs[2])-14)
	}
	if _, _, _, ok := r.p.Released(); ok {
		t.Fatal("released twice")
	}
	// An ICMP error about the local connection's reply goes to the local
	// stack too.
	quoted := ts.Build(t, ts.IPv4(vip, netip.AddrFrom4(client)), ts.TCP(80, local[0], ts.ACK), ts.Payload(100))[:28]
	icmp := ts.Build(t, ts.Eth(clientMAC, dirMAC[:]), ts.IPv4(netip.MustParseAddr("198.18.5.1"), vip),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}, ts.RawPayload(quoted))
	r.p.Last.New = true // as if the previous frame had opened a connection
	before := r.c.ICMPForwarded.Load()
	if v, out := run(icmp); v != VerdictLocal || out.Len != len(icmp)-14 || r.p.Last.New {
		t.Fatalf("ICMP error about a local connection: verdict %d, %d bytes, new %v", v, out.Len, r.p.Last.New)
	}
	if r.c.ICMPForwarded.Load() != before+1 {
		t.Fatal("ICMP error to the local stack not counted as forwarded")
	}
}

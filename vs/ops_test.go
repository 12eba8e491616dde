package vs

import (
	"net/netip"
	"strings"
	"testing"
)

// TestOnePacketValidate: -o needs a UDP or firewall-mark service, as
// ipvsadm checks; a TCP address service is refused with ipvsadm's words,
// and -E with -o on one is refused and leaves the service as it was.
func TestOnePacketValidate(t *testing.T) {
	a := netip.MustParseAddr("198.19.0.1")
	tbl := &Table{}
	for _, s := range []Service{
		{Key: Key{Proto: UDP, Addr: a, Port: 53}, OnePacket: true},
		{Key: Key{FWMark: 5}, OnePacket: true},
		{Key: Key{Proto: TCP, Addr: a, Port: 80}},
	} {
		if err := tbl.AddService(s); err != nil {
			t.Fatalf("%s: %v", s.Key, err)
		}
	}
	tcp := Service{Key: Key{Proto: TCP, Addr: a, Port: 80}, OnePacket: true}
	if err := tbl.EditService(tcp); err == nil || !strings.Contains(err.Error(), "One-Packet Scheduling is only for UDP virtual services") {
		t.Fatalf("-E -o on a TCP service: %v", err)
	}
	if tbl.Services[2].OnePacket {
		t.Fatal("the refused edit changed the service")
	}
	tcp.Port = 81
	if err := tbl.AddService(tcp); err == nil {
		t.Fatal("-A -o of a TCP service accepted")
	}
}

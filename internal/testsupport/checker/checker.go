// Package checker checks packets in tests, in the manner of gVisor's
// pkg/tcpip/checker: a test names the fields it cares about and the checker
// decodes the packet with gopacket, verifies its checksums, and reports
// every mismatch against the field's name.
//
//	checker.Frame(t, out, checker.DstMAC(rsMAC),
//		checker.IPv4(checker.SrcAddr(client), checker.TTL(64),
//			checker.TCP(checker.DstPort(80), checker.TCPFlags(checker.SYN))))
package checker

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

// Packet is a decoded packet as the checks see it.
type Packet struct {
	Eth  *layers.Ethernet // nil when checked from the IP header
	VLAN *layers.Dot1Q    // nil without an 802.1Q tag
	// IPs are the IPv4 headers, outermost first: two for an IPIP packet.
	IPs []*layers.IPv4
	// Transport is the TCP, UDP or ICMPv4 layer after the last IPv4 header,
	// or nil.
	Transport gopacket.Layer
	// Payload is what follows the transport header.
	Payload []byte
}

// Checker checks one aspect of a packet.
type Checker func(testing.TB, *Packet)

// Frame decodes b as an Ethernet frame and runs checks on it.
func Frame(t testing.TB, b []byte, checks ...Checker) {
	t.Helper()
	run(t, b, layers.LayerTypeEthernet, checks)
}

// IPv4Packet decodes b as an IPv4 packet (no link header) and runs checks
// on it.
func IPv4Packet(t testing.TB, b []byte, checks ...Checker) {
	t.Helper()
	run(t, b, layers.LayerTypeIPv4, checks)
}

func run(t testing.TB, b []byte, first gopacket.LayerType, checks []Checker) {
	t.Helper()
	p, ok := decode(t, b, first, true)
	if !ok {
		return
	}
	for _, c := range checks {
		c(t, p)
	}
}

// decode fills a Packet; strict also requires the whole packet to decode
// and every checksum to be right.
func decode(t testing.TB, b []byte, first gopacket.LayerType, strict bool) (*Packet, bool) {
	t.Helper()
	pkt := gopacket.NewPacket(b, first, gopacket.Default)
	p := &Packet{}
	var failed error // a header up to the transport's did not decode
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *gopacket.DecodeFailure:
			// gopacket leaves a half-decoded transport layer with no
			// contents before the failure; past a whole transport header
			// the failure is the application's (a short DNS message) and
			// no concern of these checks.
			if p.Transport != nil && len(p.Transport.LayerContents()) == 0 {
				p.Transport = nil
			}
			if p.Transport == nil {
				failed = l.Error()
			}
		case *layers.Ethernet:
			p.Eth = l
		case *layers.Dot1Q:
			p.VLAN = l
		case *layers.IPv4:
			p.IPs = append(p.IPs, l)
		case *layers.TCP, *layers.UDP, *layers.ICMPv4:
			p.Transport = l
			p.Payload = l.LayerPayload()
		}
	}
	if !strict {
		return p, true
	}
	if failed != nil {
		t.Errorf("checker: packet does not decode: %v\n%x", failed, b)
		return nil, false
	}
	for i, ip := range p.IPs {
		if got := sum(ip.Contents); got != 0 {
			t.Errorf("checker: IPv4 header %d of %d: bad header checksum %#04x", i+1, len(p.IPs), ip.Checksum)
		}
	}
	if len(p.IPs) > 0 && p.Transport != nil {
		ip := p.IPs[len(p.IPs)-1]
		seg := append(append([]byte(nil), p.Transport.LayerContents()...), p.Transport.LayerPayload()...)
		switch p.Transport.(type) {
		case *layers.TCP, *layers.UDP:
			if int(ip.Length) == len(ip.Contents)+len(seg) && pseudoSum(ip, seg) != 0 {
				t.Errorf("checker: bad %v checksum", p.Transport.LayerType())
			}
		case *layers.ICMPv4:
			if sum(seg) != 0 {
				t.Errorf("checker: bad ICMPv4 checksum")
			}
		}
	}
	return p, true
}

// sum is the Internet checksum of b: zero over data that carries a right
// checksum.
func sum(b []byte) uint16 { return fold(add(0, b)) }

func add(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return ^uint16(acc)
}

func pseudoSum(ip *layers.IPv4, seg []byte) uint16 {
	acc := add(0, ip.SrcIP.To4())
	acc = add(acc, ip.DstIP.To4())
	acc += uint32(ip.Protocol) + uint32(len(seg))
	return fold(add(acc, seg))
}

// Ethernet checks.

// SrcMAC checks the Ethernet source address.
func SrcMAC(want net.HardwareAddr) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.Eth == nil || !bytes.Equal(p.Eth.SrcMAC, want) {
			t.Errorf("checker: source MAC %v, want %v", macOf(p, true), want)
		}
	}
}

// DstMAC checks the Ethernet destination address.
func DstMAC(want net.HardwareAddr) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.Eth == nil || !bytes.Equal(p.Eth.DstMAC, want) {
			t.Errorf("checker: destination MAC %v, want %v", macOf(p, false), want)
		}
	}
}

func macOf(p *Packet, src bool) any {
	switch {
	case p.Eth == nil:
		return "none"
	case src:
		return p.Eth.SrcMAC
	}
	return p.Eth.DstMAC
}

// VLAN checks the 802.1Q tag's VLAN ID and priority.
func VLAN(id uint16, prio uint8) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		switch {
		case p.VLAN == nil:
			t.Errorf("checker: no 802.1Q tag, want VLAN %d", id)
		case p.VLAN.VLANIdentifier != id || p.VLAN.Priority != prio:
			t.Errorf("checker: VLAN %d priority %d, want %d priority %d", p.VLAN.VLANIdentifier, p.VLAN.Priority, id, prio)
		}
	}
}

// NoVLAN checks the frame has no 802.1Q tag.
func NoVLAN() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.VLAN != nil {
			t.Errorf("checker: 802.1Q tag with VLAN %d, want none", p.VLAN.VLANIdentifier)
		}
	}
}

// IPv4 checks.

// IPv4 requires an IPv4 header and runs checks on the outermost one; TCP,
// UDP and ICMPv4 inside it check the transport after the innermost.
func IPv4(checks ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if len(p.IPs) == 0 {
			t.Errorf("checker: no IPv4 header")
			return
		}
		for _, c := range checks {
			c(t, p)
		}
	}
}

// IPIP checks the packet is IPv4 in IPv4 and runs checks on the inner
// header (and what follows it) as IPv4 runs them on the outer.
func IPIP(checks ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if len(p.IPs) < 2 {
			t.Errorf("checker: %d IPv4 headers, want IPv4 in IPv4", len(p.IPs))
			return
		}
		if p.IPs[0].Protocol != layers.IPProtocolIPv4 {
			t.Errorf("checker: outer protocol %v, want IPIP (4)", p.IPs[0].Protocol)
		}
		inner := *p
		inner.IPs = p.IPs[1:]
		for _, c := range checks {
			c(t, &inner)
		}
	}
}

// NotTunnelled checks there is exactly one IPv4 header.
func NotTunnelled() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if len(p.IPs) != 1 {
			t.Errorf("checker: %d IPv4 headers, want 1", len(p.IPs))
		}
	}
}

func ip(p *Packet) *layers.IPv4 { return p.IPs[0] }

func addrOf(b net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(b.To4())
	return a
}

// SrcAddr checks the IPv4 source address.
func SrcAddr(want netip.Addr) Checker {
	return ipField("source address", func(h *layers.IPv4) any { return addrOf(h.SrcIP) }, want)
}

// DstAddr checks the IPv4 destination address.
func DstAddr(want netip.Addr) Checker {
	return ipField("destination address", func(h *layers.IPv4) any { return addrOf(h.DstIP) }, want)
}

// TTL checks the IPv4 time to live.
func TTL(want uint8) Checker {
	return ipField("TTL", func(h *layers.IPv4) any { return h.TTL }, want)
}

// TOS checks the IPv4 type of service byte (DSCP and ECN).
func TOS(want uint8) Checker {
	return ipField("TOS", func(h *layers.IPv4) any { return h.TOS }, want)
}

// ID checks the IPv4 identification.
func ID(want uint16) Checker {
	return ipField("ID", func(h *layers.IPv4) any { return h.Id }, want)
}

// DontFragment checks the IPv4 DF flag.
func DontFragment(want bool) Checker {
	return ipField("DF", func(h *layers.IPv4) any { return h.Flags&layers.IPv4DontFragment != 0 }, want)
}

// MoreFragments checks the IPv4 MF flag.
func MoreFragments(want bool) Checker {
	return ipField("MF", func(h *layers.IPv4) any { return h.Flags&layers.IPv4MoreFragments != 0 }, want)
}

// FragmentOffset checks the IPv4 fragment offset, in bytes.
func FragmentOffset(want int) Checker {
	return ipField("fragment offset", func(h *layers.IPv4) any { return int(h.FragOffset) * 8 }, want)
}

// TotalLength checks the IPv4 total length.
func TotalLength(want int) Checker {
	return ipField("total length", func(h *layers.IPv4) any { return int(h.Length) }, want)
}

// Protocol checks the IPv4 protocol number.
func Protocol(want layers.IPProtocol) Checker {
	return ipField("protocol", func(h *layers.IPv4) any { return h.Protocol }, want)
}

// HeaderLength checks the IPv4 header length in bytes (20 without options).
func HeaderLength(want int) Checker {
	return ipField("header length", func(h *layers.IPv4) any { return int(h.IHL) * 4 }, want)
}

func ipField(name string, get func(*layers.IPv4) any, want any) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if len(p.IPs) == 0 {
			t.Errorf("checker: no IPv4 header for %s", name)
			return
		}
		if got := get(ip(p)); got != want {
			t.Errorf("checker: IPv4 %s %v, want %v", name, got, want)
		}
	}
}

// Transport checks.

// TCP requires a TCP segment after the innermost IPv4 header and runs
// checks on it.
func TCP(checks ...Checker) Checker { return transport(layers.LayerTypeTCP, checks) }

// UDP requires a UDP datagram after the innermost IPv4 header and runs
// checks on it.
func UDP(checks ...Checker) Checker { return transport(layers.LayerTypeUDP, checks) }

// ICMPv4 requires an ICMPv4 message after the innermost IPv4 header and
// runs checks on it.
func ICMPv4(checks ...Checker) Checker { return transport(layers.LayerTypeICMPv4, checks) }

func transport(lt gopacket.LayerType, checks []Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.Transport == nil || p.Transport.LayerType() != lt {
			got := "nothing"
			if p.Transport != nil {
				got = p.Transport.LayerType().String()
			}
			t.Errorf("checker: transport %s, want %v", got, lt)
			return
		}
		for _, c := range checks {
			c(t, p)
		}
	}
}

func ports(p *Packet) (src, dst uint16, ok bool) {
	switch l := p.Transport.(type) {
	case *layers.TCP:
		return uint16(l.SrcPort), uint16(l.DstPort), true
	case *layers.UDP:
		return uint16(l.SrcPort), uint16(l.DstPort), true
	}
	return 0, 0, false
}

// SrcPort checks the TCP or UDP source port.
func SrcPort(want uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if got, _, ok := ports(p); !ok || got != want {
			t.Errorf("checker: source port %d, want %d", got, want)
		}
	}
}

// DstPort checks the TCP or UDP destination port.
func DstPort(want uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if _, got, ok := ports(p); !ok || got != want {
			t.Errorf("checker: destination port %d, want %d", got, want)
		}
	}
}

// TCPFlags checks the TCP flags are exactly want.
func TCPFlags(want testsupport.TCPFlags) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		l, _ := p.Transport.(*layers.TCP)
		if l == nil {
			t.Errorf("checker: no TCP header for the flags")
			return
		}
		var got testsupport.TCPFlags
		for f, on := range map[testsupport.TCPFlags]bool{testsupport.FIN: l.FIN, testsupport.SYN: l.SYN,
			testsupport.RST: l.RST, testsupport.PSH: l.PSH, testsupport.ACK: l.ACK} {
			if on {
				got |= f
			}
		}
		if got != want {
			t.Errorf("checker: TCP flags %#x, want %#x", got, want)
		}
	}
}

// PayloadLen checks the length of what follows the transport header.
func PayloadLen(want int) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if len(p.Payload) != want {
			t.Errorf("checker: payload of %d bytes, want %d", len(p.Payload), want)
		}
	}
}

// Payload checks what follows the transport header byte for byte.
func Payload(want []byte) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if !bytes.Equal(p.Payload, want) {
			t.Errorf("checker: payload differs (%d bytes, want %d)", len(p.Payload), len(want))
		}
	}
}

// ICMPType checks the ICMPv4 type and code.
func ICMPType(typ, code uint8) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		l, _ := p.Transport.(*layers.ICMPv4)
		if l == nil || l.TypeCode.Type() != typ || l.TypeCode.Code() != code {
			got := "none"
			if l != nil {
				got = l.TypeCode.String()
			}
			t.Errorf("checker: ICMP %s, want type %d code %d", got, typ, code)
		}
	}
}

// ICMPMTU checks the next-hop MTU of an ICMPv4 fragmentation-needed
// message (RFC 1191), the low half of the word after the checksum.
func ICMPMTU(want uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		l, _ := p.Transport.(*layers.ICMPv4)
		if l == nil || l.Seq != want {
			got := -1
			if l != nil {
				got = int(l.Seq)
			}
			t.Errorf("checker: ICMP next-hop MTU %d, want %d", got, want)
		}
	}
}

// Embedded decodes the ICMP error's payload, the offending packet's IP
// header and first bytes, and runs checks on it as IPv4 would. The
// embedded packet is usually truncated, so only its IPv4 header must
// decode and only that header's checksum is verified.
func Embedded(checks ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if _, ok := p.Transport.(*layers.ICMPv4); !ok {
			t.Errorf("checker: no ICMPv4 message to look inside")
			return
		}
		e, _ := decode(t, p.Payload, layers.LayerTypeIPv4, false)
		if len(e.IPs) == 0 {
			t.Errorf("checker: ICMP payload %x holds no IPv4 header", p.Payload)
			return
		}
		if sum(e.IPs[0].Contents) != 0 {
			t.Errorf("checker: embedded IPv4 header has a bad checksum")
		}
		if e.Transport == nil && len(e.IPs[0].Payload) >= 4 {
			// A truncated TCP or UDP header still carries its ports.
			e.Transport = &layers.UDP{SrcPort: layers.UDPPort(binary.BigEndian.Uint16(e.IPs[0].Payload)),
				DstPort: layers.UDPPort(binary.BigEndian.Uint16(e.IPs[0].Payload[2:]))}
		}
		for _, c := range checks {
			c(t, e)
		}
	}
}

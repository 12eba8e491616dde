package encap

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/afvs/afvs/internal/header"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// headroom is what the XDP and AF_XDP paths reserve before a frame
// (XDP_PACKET_HEADROOM).
const headroom = 256

var routerAlert = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}

// checkIPIP decodes out with gopacket and verifies every field of the outer
// headers against the original frame orig.
func checkIPIP(t *testing.T, out, orig []byte, s spec) {
	t.Helper()
	po := parse(t, orig)
	inner := orig[po.L3:po.End]
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.DstMAC, rsMAC[:]) || !bytes.Equal(eth.SrcMAC, egressMAC[:]) {
		t.Errorf("MACs dst %v src %v", eth.DstMAC, eth.SrcMAC)
	}
	if s.vlan {
		q, _ := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		if q == nil || q.VLANIdentifier != s.vlanID || q.Priority != 2 || q.Type != layers.EthernetTypeIPv4 {
			t.Errorf("VLAN tag lost: %+v", q)
		}
	} else if eth.EthernetType != layers.EthernetTypeIPv4 {
		t.Errorf("ethertype %v", eth.EthernetType)
	}
	ips := pkt.Layers()
	var outer, in *layers.IPv4
	for _, l := range ips {
		if ip, ok := l.(*layers.IPv4); ok {
			if outer == nil {
				outer = ip
			} else {
				in = ip
			}
		}
	}
	if outer == nil || in == nil {
		t.Fatalf("want two IPv4 layers, got %v", ips)
	}
	wantFlags := layers.IPv4Flag(0)
	wantID := s.id
	if s.df {
		wantFlags, wantID = layers.IPv4DontFragment, 0
	}
	if outer.Version != 4 || outer.IHL != 5 || outer.TOS != s.tos || int(outer.Length) != len(inner)+20 ||
		outer.Id != wantID || outer.Flags != wantFlags || outer.FragOffset != 0 || outer.TTL != in.TTL ||
		outer.Protocol != layers.IPProtocolIPv4 || !outer.SrcIP.Equal(directorIP[:]) || !outer.DstIP.Equal(rsIP[:]) {
		t.Errorf("outer header: %+v", outer)
	}
	if sum16(outer.Contents) != 0xffff {
		t.Errorf("outer checksum %#04x does not verify", outer.Checksum)
	}
	if want := gopacketIPChecksum(t, outer); outer.Checksum != want {
		t.Errorf("outer checksum %#04x, gopacket computes %#04x", outer.Checksum, want)
	}
	l2 := po.L3
	if len(out) != l2+20+len(inner) {
		t.Errorf("frame %d bytes, want %d (padding must go)", len(out), l2+20+len(inner))
	}
	if !bytes.Equal(out[l2+20:], inner) {
		t.Error("inner packet changed")
	}
	if in.Id != s.id || in.TOS != s.tos || sum16(in.Contents) != 0xffff {
		t.Errorf("inner header: %+v", in)
	}
	// The inner L4 checksum still verifies: nothing it covers changed.
	var l4 gopacket.Layer
	if s.udp {
		l4 = pkt.Layer(layers.LayerTypeUDP)
	} else {
		l4 = pkt.Layer(layers.LayerTypeTCP)
	}
	seg := append(append([]byte(nil), l4.LayerContents()...), l4.LayerPayload()...)
	pseudo := header.PseudoHeaderChecksum(po.Proto, po.Src, po.Dst, uint16(len(seg)))
	if header.Checksum(seg, pseudo) != 0xffff {
		t.Error("inner L4 checksum broken")
	}
}

func TestIPIP(t *testing.T) {
	specs := []spec{
		{payload: 100, df: true, tos: 0x10, id: 0x4242},
		{payload: 1400, tos: 0xb8, id: 0x1111},
		{udp: true, id: 9}, // 28-byte packet: gopacket padded the frame to 60
		{vlan: true, vlanID: 300, df: true, payload: 10},
		{ipOpts: routerAlert, tos: 0x03, id: 0xffff, payload: 5},
		{vlan: true, vlanID: 1, udp: true, ipOpts: routerAlert},
	}
	for _, s := range specs {
		for _, off := range []int{headroom, 20, 19, 7, 0} {
			t.Run(fmt.Sprintf("%+v/off=%d", s, off), func(t *testing.T) {
				f := build(t, s)
				buf := make([]byte, off+len(f)+20)
				copy(buf[off:], f)
				p := parse(t, f)
				newOff, newN, ok := IPIP(buf, off, len(f), &p, directorIP, rsIP, egressMAC, rsMAC)
				if !ok {
					t.Fatal("IPIP refused")
				}
				if want := max(off-20, 0); newOff != want {
					t.Errorf("newOff %d, want %d", newOff, want)
				}
				checkIPIP(t, buf[newOff:newOff+newN], f, s)
			})
		}
	}
}

// TestIPIPZeroCopy proves that with headroom the inner packet is not copied:
// its first byte, its payload and its last byte are at the same addresses in
// the output frame as in the input.
func TestIPIPZeroCopy(t *testing.T) {
	for _, s := range []spec{{payload: 1400}, {vlan: true, vlanID: 5, payload: 1400}} {
		f := build(t, s)
		buf := make([]byte, headroom+len(f))
		copy(buf[headroom:], f)
		p := parse(t, f)
		innerBefore := &buf[headroom+p.L3]
		payloadBefore := &buf[headroom+p.Payload]
		lastBefore := &buf[headroom+p.End-1]
		newOff, newN, ok := IPIP(buf, headroom, len(f), &p, directorIP, rsIP, egressMAC, rsMAC)
		if !ok {
			t.Fatal("IPIP refused")
		}
		out := buf[newOff : newOff+newN]
		if &out[p.L3+20] != innerBefore || &out[p.Payload+20] != payloadBefore || &out[newN-1] != lastBefore {
			t.Error("inner packet moved")
		}
		if newOff != headroom-20 {
			t.Errorf("newOff %d", newOff)
		}
	}
}

// TestIPIPWritesOnlyHeaders checks that with headroom IPIP writes nothing
// but the new Ethernet and outer IPv4 headers: every byte of the inner packet
// and of the rest of the buffer is as it was.
func TestIPIPWritesOnlyHeaders(t *testing.T) {
	f := build(t, spec{payload: 1000})
	buf := make([]byte, headroom+len(f)+64)
	for i := range buf {
		buf[i] = 0xa5
	}
	copy(buf[headroom:], f)
	before := append([]byte(nil), buf...)
	p := parse(t, f)
	newOff, _, ok := IPIP(buf, headroom, len(f), &p, directorIP, rsIP, egressMAC, rsMAC)
	if !ok {
		t.Fatal("IPIP refused")
	}
	// Only [newOff, headroom+L3) may differ: L2 header and outer IPv4 header.
	for i := range buf {
		if buf[i] != before[i] && (i < newOff || i >= headroom+p.L3) {
			t.Fatalf("byte %d changed outside the headers", i)
		}
	}
}

func TestIPIPRefuses(t *testing.T) {
	f := build(t, spec{payload: 50})
	p := parse(t, f)
	badL3 := p
	badL3.L3 = 15
	badEnd := p
	badEnd.End++
	badLen := p
	badLen.TotalLen = 10
	cases := []struct {
		name   string
		buf    []byte
		off, n int
		p      *header.Packet
	}{
		{"no_room", make([]byte, len(f)+19), 0, len(f), &p},
		{"no_room_some_headroom", make([]byte, 10+len(f)+9), 10, len(f), &p},
		{"negative_off", make([]byte, 400), -1, len(f), &p},
		{"negative_n", make([]byte, 400), 100, -1, &p},
		{"n_past_buf", make([]byte, 100+len(f)-1), 100, len(f), &p},
		{"off_past_buf", make([]byte, 10), 11, 0, &p},
		{"frame_shorter_than_packet", make([]byte, 400), 100, p.End - 1, &p},
		{"nil_packet", make([]byte, 400), 100, len(f), nil},
		{"bad_l3", make([]byte, 400), 100, len(f), &badL3},
		{"end_mismatch", make([]byte, 400), 100, len(f), &badEnd},
		{"total_too_small", make([]byte, 400), 100, len(f), &badLen},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.off >= 0 && c.off <= len(c.buf) {
				copy(c.buf[c.off:], f)
			}
			before := append([]byte(nil), c.buf...)
			newOff, newN, ok := IPIP(c.buf, c.off, c.n, c.p, directorIP, rsIP, egressMAC, rsMAC)
			if ok {
				t.Fatal("IPIP accepted")
			}
			if newOff != c.off || newN != c.n {
				t.Errorf("returned %d,%d for a refused frame", newOff, newN)
			}
			if !bytes.Equal(c.buf, before) {
				t.Error("buffer changed although IPIP refused")
			}
		})
	}
	// A 65516-byte packet cannot grow by 20.
	big := parse(t, build(t, spec{payload: 65535 - 40}))
	if _, _, ok := IPIP(make([]byte, 70000), 100, 65535+14, &big, directorIP, rsIP, egressMAC, rsMAC); ok {
		t.Error("IPIP built a packet over 65535 bytes")
	}
}

// TestIPIPRandom encapsulates random frames at random offsets in random
// buffers; whenever IPIP accepts, gopacket must agree on every field.
func TestIPIPRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	accepted := 0
	for range 500 {
		s := spec{vlan: r.IntN(2) == 0, vlanID: uint16(r.IntN(4095)), udp: r.IntN(2) == 0, tos: uint8(r.Uint32()),
			df: r.IntN(2) == 0, id: uint16(r.Uint32()), payload: r.IntN(1500)}
		f := build(t, s)
		off := r.IntN(60)
		buf := make([]byte, off+len(f)+r.IntN(40))
		copy(buf[off:], f)
		p := parse(t, f)
		newOff, newN, ok := IPIP(buf, off, len(f), &p, directorIP, rsIP, egressMAC, rsMAC)
		fits := max(off-20, 0)+p.L3+20+int(p.TotalLen) <= len(buf)
		if ok != fits {
			t.Fatalf("off %d buf %d frame %d: ok=%v, fits=%v", off, len(buf), len(f), ok, fits)
		}
		if ok {
			accepted++
			checkIPIP(t, buf[newOff:newOff+newN], f, s)
		}
	}
	if accepted == 0 {
		t.Error("no frame accepted")
	}
}

func TestIPIPAllocs(t *testing.T) {
	f := build(t, spec{payload: 100})
	p := parse(t, f)
	buf := make([]byte, headroom+len(f))
	n := testing.AllocsPerRun(100, func() {
		copy(buf[headroom:], f[:p.L3])
		IPIP(buf, headroom, len(f), &p, directorIP, rsIP, egressMAC, rsMAC)
	})
	if n != 0 {
		t.Errorf("IPIP allocates %v times", n)
	}
}

// BenchmarkIPIP measures encapsulation with headroom (the zero-copy case) and
// without (the inner packet is shifted). Between iterations the headroom case
// restores only the Ethernet header, as the packet itself never moved; the
// no-headroom case must restore the whole frame, and that copy is part of its
// figure.
func BenchmarkIPIP(b *testing.B) {
	for _, size := range []int{64, 1500} {
		f := build(b, spec{udp: true, payload: size - 14 - 28})
		p := parse(b, f)
		b.Run(fmt.Sprintf("size=%d/headroom=%d", len(f), headroom), func(b *testing.B) {
			buf := make([]byte, headroom+len(f))
			copy(buf[headroom:], f)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[headroom:], f[:p.L3])
				if _, _, ok := IPIP(buf, headroom, len(f), &p, directorIP, rsIP, egressMAC, rsMAC); !ok {
					b.Fatal("refused")
				}
			}
		})
		b.Run(fmt.Sprintf("size=%d/headroom=0", len(f)), func(b *testing.B) {
			buf := make([]byte, len(f)+20)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, f)
				if _, _, ok := IPIP(buf, 0, len(f), &p, directorIP, rsIP, egressMAC, rsMAC); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

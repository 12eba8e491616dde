package header

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b, 0); got != 0xddf2 {
		t.Errorf("Checksum = %#04x, want 0xddf2", got)
	}
}

func TestChecksumMatchesReference(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for range 5000 {
		b := make([]byte, r.IntN(1600))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if r.IntN(8) == 0 { // long runs of 0xff stress the carries
			for i := range b {
				b[i] = 0xff
			}
		}
		init := uint16(r.Uint32())
		want := refChecksum(append([]byte{byte(init >> 8), byte(init)}, b...))
		if got := Checksum(b, init); got != want {
			t.Fatalf("len %d init %#x: Checksum = %#x, reference %#x", len(b), init, got, want)
		}
		// Summing in two even-aligned pieces gives the same result.
		cut := r.IntN(len(b)/2+1) * 2
		if got := ChecksumCombine(Checksum(b[:cut], 0), Checksum(b[cut:], init)); got != want {
			t.Fatalf("combine at %d: %#x, want %#x", cut, got, want)
		}
	}
}

// TestPseudoHeaderChecksum verifies TCP and UDP checksums that gopacket wrote.
func TestPseudoHeaderChecksum(t *testing.T) {
	for _, udp := range []bool{false, true} {
		for _, n := range []int{0, 1, 17, 1000} {
			f := build(t, spec{udp: udp, sport: 1234, dport: 80, payload: make([]byte, n)})
			for i := range n {
				f[len(f)-n+i] = byte(i * 7)
			}
			var p Packet
			if Parse(f, &p) != OK {
				t.Fatal("parse")
			}
			// Parse cannot see the payload changes above; recompute with gopacket.
			pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			var l4 gopacket.SerializableLayer
			if udp {
				u := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
				_ = u.SetNetworkLayerForChecksum(ip)
				l4 = u
			} else {
				tc := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
				_ = tc.SetNetworkLayerForChecksum(ip)
				l4 = tc
			}
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, l4, gopacket.Payload(f[p.Payload:p.End])); err != nil {
				t.Fatal(err)
			}
			seg := buf.Bytes()
			sum := Checksum(seg, PseudoHeaderChecksum(p.Proto, p.Src, p.Dst, uint16(len(seg))))
			if sum != 0xffff {
				t.Errorf("udp=%v n=%d: segment with pseudo-header sums to %#x, want 0xffff", udp, n, sum)
			}
		}
	}
}

// TestChecksumUpdate rewrites fields of valid IPv4 headers incrementally and
// compares with a full recomputation.
func TestChecksumUpdate(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	for range 5000 {
		h := IPv4(make([]byte, 20))
		for i := range h {
			h[i] = byte(r.Uint32())
		}
		h[0] = 0x45
		if r.IntN(4) == 0 {
			h[2], h[3] = 0xff, 0xff // extremes for the -0 case
		}
		h.SetChecksum(h.CalculateChecksum())

		oldTTL := binary.BigEndian.Uint16(h[8:10])
		h.SetTTL(uint8(r.Uint32()))
		check := ChecksumUpdate16(h.Checksum(), oldTTL, binary.BigEndian.Uint16(h[8:10]))
		oldDst := h.Dst()
		newDst := [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		h.SetDst(newDst)
		check = ChecksumUpdateAddr(check, oldDst, newDst)
		h.SetChecksum(check)
		if !h.IsChecksumValid() {
			t.Fatalf("incremental update gives invalid header % x", []byte(h))
		}
		if want := h.CalculateChecksum(); check != want && !(check == 0xffff && want == 0) && !(check == 0 && want == 0xffff) {
			// 0x0000 and 0xffff are both valid encodings of the same sum.
			t.Fatalf("incremental %#x, full %#x", check, want)
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 1500} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				Checksum(buf, 0)
			}
		})
	}
}

// TestHeaderChecksumValidMatchesChecksum checks the 20-byte fast path
// against Checksum on random headers, half of them given a valid checksum,
// including the sums that fold to 0xffff from 0xffff words.
func TestHeaderChecksumValidMatchesChecksum(t *testing.T) {
	x := uint64(7)
	valid := 0
	for i := range 20000 {
		h := make([]byte, IPv4MinLen)
		for j := range h {
			x = x*6364136223846793005 + 1442695040888963407
			h[j] = byte(x >> 56)
		}
		switch i % 4 {
		case 1:
			h[10], h[11] = 0, 0
			binary.BigEndian.PutUint16(h[10:12], ^Checksum(h, 0))
		case 2:
			for j := range h {
				h[j] = 0xff
			}
		}
		want := Checksum(h, 0) == 0xffff
		if want {
			valid++
		}
		if got := headerChecksumValid(h); got != want {
			t.Fatalf("header % x: headerChecksumValid %v, Checksum says %v", h, got, want)
		}
	}
	if valid < 5000 {
		t.Fatalf("only %d valid headers: the test does not exercise the valid case", valid)
	}
	// An options header goes the general way.
	h := build(t, spec{ipOpts: routerAlert, sport: 1, dport: 80})[EthernetLen:]
	hl := IPv4(h).HeaderLen()
	if !headerChecksumValid(h[:hl]) {
		t.Fatal("a valid header with options judged invalid")
	}
}

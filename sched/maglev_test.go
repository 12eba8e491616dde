package sched

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"testing"
)

func maglevDests(n int, weight func(i int) int32) []Dest {
	ds := make([]Dest, n)
	for i := range ds {
		ds[i] = Dest{ID: uint32(i), Port: 80, Weight: weight(i),
			Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).As16()}
	}
	return ds
}

func buildMH(t testing.TB, ds []Dest, opt Options) *Maglev {
	t.Helper()
	s, err := New("mh", ds, 0, NewLoads(len(ds)+1), opt)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Maglev)
}

func tableDigest(m *Maglev) string {
	h := sha256.New()
	for _, d := range m.table {
		binary.Write(h, binary.LittleEndian, d)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestSipHashVectors checks the SipHash core against the published
// SipHash-2-4 test vectors (key 00..0f, message 00..len-1), and the mh fast
// path against the generic byte-wise SipHash-1-3 it specialises.
func TestSipHashVectors(t *testing.T) {
	k0 := binary.LittleEndian.Uint64([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	k1 := binary.LittleEndian.Uint64([]byte{8, 9, 10, 11, 12, 13, 14, 15})
	msg := make([]byte, 16)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, v := range []struct {
		n    int
		want uint64
	}{{0, 0x726fdb47dd0e0e31}, {1, 0x74f839c593dc67fd}, {8, 0x93f5f5799a932462}, {15, 0xa129ca6149be45e5}} {
		if got := sipHash(2, 4, k0, k1, msg[:v.n]); got != v.want {
			t.Errorf("siphash-2-4 of %d bytes: %#x, want %#x", v.n, got, v.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v, k := rng.Uint32(), rng.Uint64()
		if got, want := hsiphash32(v, k, k), refHsip(v, k); got != want {
			t.Fatalf("hsiphash32(%#x, %#x) = %#x, generic %#x", v, k, got, want)
		}
	}
}

// TestMaglevDeterministicAcrossProcesses: a second process with the same
// config builds the same table, so two directors agree on every flow.
func TestMaglevDeterministicAcrossProcesses(t *testing.T) {
	ds := maglevDests(50, func(i int) int32 { return int32(1 + i%4) })
	digest := tableDigest(buildMH(t, ds, Options{}))
	if os.Getenv("SCHED_MAGLEV_CHILD") == "1" {
		fmt.Printf("digest=%s\n", digest)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestMaglevDeterministicAcrossProcesses$", "-test.v")
	cmd.Env = append(os.Environ(), "SCHED_MAGLEV_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var child string
	for _, line := range splitLines(string(out)) {
		if _, e := fmt.Sscanf(line, "digest=%s", &child); e == nil {
			break
		}
	}
	if child != digest {
		t.Fatalf("child table digest %q, parent %q", child, digest)
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func TestMaglevSingleBackendFillsTable(t *testing.T) {
	m := buildMH(t, maglevDests(1, func(int) int32 { return 1 }), Options{})
	if got := m.Slots()[0]; got != int(m.size) {
		t.Fatalf("single backend owns %d of %d slots", got, m.size)
	}
}

// TestMaglevWeightShare: each dest's share of slots is its share of weight
// within 1% (of the table), for weights the kernel's 8-bit ratio keeps.
func TestMaglevWeightShare(t *testing.T) {
	for _, n := range []int{3, 10, 100} {
		ws := func(i int) int32 { return int32(1 + i%5) }
		m := buildMH(t, maglevDests(n, ws), Options{})
		total := 0
		for i := range n {
			total += int(ws(i))
		}
		for i, slots := range m.Slots() {
			want := float64(ws(i)) / float64(total)
			got := float64(slots) / float64(m.size)
			if d := got - want; d > 0.01 || d < -0.01 {
				t.Errorf("n=%d dest %d weight %d: share %.4f, want %.4f", n, i, ws(i), got, want)
			}
		}
	}
}

// TestMaglevMinimalDisruption: removing one of N backends moves at most
// 1/N + 1% of the slots (and so of the flows); quiescing one (weight 0
// keeps its last weight) moves nobody else's.
func TestMaglevMinimalDisruption(t *testing.T) {
	for _, n := range []int{5, 20, 100} {
		ds := maglevDests(n, func(int) int32 { return 1 })
		before := buildMH(t, ds, Options{})
		victim := n / 2
		after := buildMH(t, append(ds[:victim:victim], ds[victim+1:]...), Options{})
		moved := 0
		for slot, d := range before.table {
			a := int(after.table[slot])
			if a >= victim {
				a++ // index in the shorter list
			}
			if int(d) != a {
				moved++
			}
		}
		frac := float64(moved) / float64(before.size)
		if limit := 1/float64(n) + 0.01; frac > limit {
			t.Errorf("n=%d: removing one moved %.4f of slots, limit %.4f", n, frac, limit)
		}

		loads := NewLoads(n)
		s1, _ := New("mh", ds, 0, loads, Options{})
		q := append([]Dest(nil), ds...)
		q[victim].Weight = 0
		s2, _ := New("mh", q, 0, loads, Options{Prev: s1})
		for slot := range s1.(*Maglev).table {
			if s1.(*Maglev).table[slot] != s2.(*Maglev).table[slot] {
				t.Fatalf("n=%d: quiescing dest %d changed slot %d", n, victim, slot)
			}
		}
		var f Flow
		for c := range 2000 {
			f.CAddr = netip.AddrFrom4([4]byte{198, 19, byte(c >> 8), byte(c)}).As16()
			if s2.Schedule(&f) == victim {
				t.Fatalf("n=%d: quiesced dest picked", n)
			}
		}
	}
}

func TestMaglevSizeValidation(t *testing.T) {
	for _, size := range []int{-1, 1, 4, 65536, 1<<24 + 1} {
		_, err := New("mh", maglevDests(2, func(int) int32 { return 1 }), 0, NewLoads(2), Options{MaglevSize: size})
		if err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
	// The kernel's default table: 4093 slots, 6 bits of weight ratio.
	if _, err := New("mh", maglevDests(2, func(int) int32 { return 1 }), 0, NewLoads(2), Options{MaglevSize: 4093}); err != nil {
		t.Errorf("kernel size 4093: %v", err)
	}
}

package sched

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

// A model of how IPVS's hash schedulers key on an address, written from
// mainline's ip_vs_sh_hashkey, ip_vs_dh_hashkey, ip_vs_lblc_hashkey,
// ip_vs_lblcr_hashkey and ip_vs_mh_hashkey. Each takes the service's af and
// a union nf_inet_addr; ip_vs_addr_copy stores an IPv4 address in its first
// word and the dest is kzalloc'ed, so the other three words are zero. With
// af AF_INET6 the key is the XOR of the four words, with AF_INET the first
// word (addr->ip); either way ntohl'ed.

// kInetAddr is a union nf_inet_addr as four host-order words.
type kInetAddr [4]uint32

func kAddr(s string) kInetAddr {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		b := a.As4()
		return kInetAddr{binary.BigEndian.Uint32(b[:])}
	}
	b := a.As16()
	var k kInetAddr
	for i := range k {
		k[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return k
}

func (k kInetAddr) fold(af6 bool) uint32 {
	if af6 {
		return k[0] ^ k[1] ^ k[2] ^ k[3]
	}
	return k[0]
}

// kHash32 is hash_32(val, bits): GOLDEN_RATIO_32 in 32 bits, top bits.
func kHash32(v uint32, bits uint) uint32 { return v * 0x61C88647 >> (32 - bits) }

// afvsAddr is the address as sched.Flow and sched.Dest hold it.
func afvsAddr(s string) [16]byte { return netip.MustParseAddr(s).As16() }

var v6Clients = []string{"2001:2::1", "2001:2::2", "2001:2:0:1::abcd", "2001:2:ffff:ffff:ffff:ffff:ffff:ffff",
	"fe80::1", "2001:db8::1:0:0:1", "::2"}

// oneDestPerBucket returns n IPv6 dests of weight 1, so sh's table and dh's
// bucket map bucket i to dest i.
func oneDestPerBucket(n int) []Dest {
	ds := make([]Dest, n)
	for i := range ds {
		ds[i] = Dest{ID: uint32(i), Addr: afvsAddr(fmt.Sprintf("2001:2:0:2::%x", i+1)), Port: 80, Weight: 1}
	}
	return ds
}

// TestKernelIPv6SHKey: an IPv6 service's sh bucket is ip_vs_sh_hashkey's,
// (offset + hash_32(ntohs(port) + ntohl(fold), 8)) & 255, with and without
// sh-port.
func TestKernelIPv6SHKey(t *testing.T) {
	for _, flags := range []Flags{0, FlagSHPort} {
		s, err := New("sh", oneDestPerBucket(256), flags, NewLoads(256), Options{IPv6: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range v6Clients {
			f := Flow{Proto: protoTCP, CAddr: afvsAddr(c), CPort: 40000}
			var port uint32
			if flags == FlagSHPort {
				port = 40000
			}
			want := int(kHash32(port+kAddr(c).fold(true), 8) & 255)
			if got := s.Schedule(&f); got != want {
				t.Errorf("sh flags %v: client %s: bucket %d, want %d", flags, c, got, want)
			}
		}
	}
}

// TestKernelIPv6DHKey: dh's bucket for an IPv6 destination is
// ip_vs_dh_hashkey's hash_32(ntohl(fold), 8). The first case was worked out
// by hand: 2001:2::1 folds to 0x20010002 ^ 1 = 0x20010003, times 0x61C88647
// is 0x8BA092D5 in 32 bits, whose top byte is 0x8B = 139.
func TestKernelIPv6DHKey(t *testing.T) {
	s, err := New("dh", oneDestPerBucket(256), 0, NewLoads(256), Options{IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	f := Flow{Proto: protoTCP, VAddr: afvsAddr("2001:2::1")}
	if got := s.Schedule(&f); got != 139 {
		t.Errorf("dh: 2001:2::1: bucket %d, want 139", got)
	}
	for _, v := range v6Clients {
		f := Flow{Proto: protoTCP, VAddr: afvsAddr(v)}
		if got, want := s.Schedule(&f), int(kHash32(kAddr(v).fold(true), 8)); got != want {
			t.Errorf("dh: daddr %s: bucket %d, want %d", v, got, want)
		}
	}
}

// TestKernelIPv6LBLCKey: lblc's and lblcr's cache bucket for an IPv6
// destination is hash_32(ntohl(fold), IP_VS_LBLC_TAB_BITS = 10). The bucket
// decides the order the periodic check walks entries in, so it shows.
func TestKernelIPv6LBLCKey(t *testing.T) {
	for _, v := range append(v6Clients, "198.19.0.1", "10.0.0.1") {
		a := afvsAddr(v)
		if got, want := cacheHash(&a), kHash32(kAddr(v).fold(netip.MustParseAddr(v).Is6()), 10); got != want {
			t.Errorf("lblc: daddr %s: bucket %d, want %d", v, got, want)
		}
	}
}

// TestKernelMHMixedFamilies: mh's permutation hashes each dest by the
// service's family (ip_vs_mh_permutate passes svc->af), so an IPv4 service
// with IPv6 tunnel dests hashes only their first word, and an IPv6 service
// with IPv4 dests their IPv4 address. The whole table and the picks for
// clients of the service's family must match the model.
func TestKernelMHMixedFamilies(t *testing.T) {
	const m = 251
	cases := []struct {
		name    string
		v6      bool
		dests   []string
		clients []string
	}{
		{"ipv4 service, ipv6 dests", false, []string{"198.18.0.11", "2001:2::11", "2001:2:0:1::12", "198.18.0.12", "2001:2:1::13"},
			[]string{"198.19.1.1", "198.19.1.2", "10.1.2.3", "203.0.113.7"}},
		{"ipv6 service, ipv4 dests", true, []string{"2001:2::11", "198.18.0.11", "198.18.0.12", "2001:2::12"}, v6Clients},
		{"ipv6 service, ipv6 dests", true, []string{"2001:2::11", "2001:2::12", "2001:2:0:1::13"}, v6Clients},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := make([]Dest, len(c.dests))
			kd := make([]kInetAddr, len(c.dests))
			for i, a := range c.dests {
				ds[i] = Dest{ID: uint32(i), Addr: afvsAddr(a), Port: 80, Weight: int32(1 + i%3)}
				kd[i] = kAddr(a)
			}
			s, err := New("mh", ds, 0, NewLoads(len(ds)), Options{MaglevSize: m, IPv6: c.v6})
			if err != nil {
				t.Fatal(err)
			}
			snap := snapshot(ds, s.(*Maglev).loads)
			last := make([]int32, len(ds))
			for i, d := range ds {
				last[i] = d.Weight
			}
			byAddr := map[[16]byte]kInetAddr{}
			for i, d := range ds {
				byAddr[d.Addr] = kd[i]
			}
			want := refMHTableAs(snap, last, m, func(a [16]byte) uint32 { return byAddr[a].fold(c.v6) })
			got := s.(*Maglev).table
			for i := range want {
				if int(got[i]) != want[i] {
					t.Fatalf("slot %d: dest %d, model dest %d", i, got[i], want[i])
				}
			}
			for _, cl := range c.clients {
				f := Flow{Proto: protoTCP, CAddr: afvsAddr(cl)}
				// ip_vs_mh_get: hsiphash(0 + 0 + ntohl(fold)) % size.
				w := want[refHsip(kAddr(cl).fold(c.v6), mhKey1)%m]
				if g := s.Schedule(&f); g != w {
					t.Errorf("client %s: dest %d, model %d", cl, g, w)
				}
			}
		})
	}
}

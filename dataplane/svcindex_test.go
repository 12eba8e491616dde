package dataplane

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// mapLookup is the service lookup the flat table replaced: a Go map keyed
// by the struct, exact port first, then port 0. It is the reference the
// property test compares with and the baseline of the benchmark.
func mapLookup(m map[svcKey]int32, addr [4]byte, proto uint8, port uint16) (int32, bool) {
	if i, ok := m[svcKey{addr, port, proto}]; ok {
		return i, true
	}
	i, ok := m[svcKey{addr, 0, proto}]
	return i, ok
}

// randomSvcKeys draws n keys from small pools of addresses, protocols and
// ports (port 0 among them), so that sets share addresses, have port-0
// keys beside exact ones, and repeat keys.
func randomSvcKeys(rng *rand.Rand, n int) []svcKey {
	addrs := make([][4]byte, 1+rng.IntN(8))
	for i := range addrs {
		addrs[i] = [4]byte{198, 18 + byte(rng.IntN(2)), byte(rng.IntN(4)), byte(rng.IntN(256))}
	}
	protos := []uint8{6, 17, 132}
	ports := []uint16{0, 80, 443, 8080, 65535, 1}
	out := make([]svcKey, n)
	for i := range out {
		k := svcKey{addr: addrs[rng.IntN(len(addrs))], proto: protos[rng.IntN(len(protos))]}
		if rng.IntN(3) == 0 {
			k.port = uint16(rng.Uint32())
		} else {
			k.port = ports[rng.IntN(len(ports))]
		}
		out[i] = k
	}
	return out
}

// TestSvcTableMatchesMap fills the flat table and a map with the same
// random keys (repeats overwrite) and requires the same answer from both
// for every stored key, the same key on other ports (the port-0 fallback
// or a miss), other protocols, unknown addresses and port 0 itself; and
// the same key set from each and len.
func TestSvcTableMatchesMap(t *testing.T) {
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 14))
		n := rng.IntN(300)
		if seed%50 == 0 {
			n = 5000 // several doublings
		}
		keys := randomSvcKeys(rng, n)
		var tab svcTable
		ref := map[svcKey]int32{}
		for i, k := range keys {
			v := int32(rng.IntN(1 << 20))
			if i%7 == 0 {
				v = int32(i) // small indexes too
			}
			tab.set(k, v)
			ref[k] = v
		}
		if tab.len() != len(ref) {
			t.Fatalf("seed %d: table holds %d keys, map %d", seed, tab.len(), len(ref))
		}
		seen := map[svcKey]bool{}
		tab.each(func(k svcKey, v int32) {
			if seen[k] {
				t.Fatalf("seed %d: each gave %v twice", seed, k)
			}
			seen[k] = true
			if rv, ok := ref[k]; !ok || rv != v {
				t.Fatalf("seed %d: each gave %v=%d, map has %d, %v", seed, k, v, rv, ok)
			}
		})
		if len(seen) != len(ref) {
			t.Fatalf("seed %d: each gave %d keys, map holds %d", seed, len(seen), len(ref))
		}
		check := func(addr [4]byte, proto uint8, port uint16) {
			gv, gok := tab.lookup(addr, proto, port)
			wv, wok := mapLookup(ref, addr, proto, port)
			if gok != wok || (gok && gv != wv) {
				t.Fatalf("seed %d: lookup %v/%d:%d = %d, %v; the map says %d, %v", seed, netip.AddrFrom4(addr), proto, port, gv, gok, wv, wok)
			}
			gv, gok = tab.get(svcKey{addr, port, proto})
			wv, wok = ref[svcKey{addr, port, proto}]
			if gok != wok || (gok && gv != wv) {
				t.Fatalf("seed %d: get %v/%d:%d = %d, %v; the map says %d, %v", seed, netip.AddrFrom4(addr), proto, port, gv, gok, wv, wok)
			}
		}
		for _, k := range keys {
			check(k.addr, k.proto, k.port)
			check(k.addr, k.proto, 0)
			check(k.addr, k.proto, k.port+1)
			check(k.addr, k.proto, uint16(rng.Uint32()))
			check(k.addr, k.proto^1, k.port)
		}
		for range 200 {
			q := randomSvcKeys(rng, 1)[0]
			check(q.addr, q.proto, q.port)
			u := rng.Uint32()
			check([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}, q.proto, q.port)
		}
	}
}

// TestSnapshotLookupMatchesModel builds snapshots of random tables (port-0
// services beside exact ones, and a firewall-mark group with a port range
// and an all-ports match) and requires Snapshot.lookup to name, for every
// probe, the service the table's own rules pick: the exact (address,
// protocol, port) first, then the address's port-0 service, each either a
// plain service or a mark's match.
func TestSnapshotLookupMatchesModel(t *testing.T) {
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 41))
		tbl := &vs.Table{}
		markAddr := netip.AddrFrom4([4]byte{198, 19, 9, byte(rng.IntN(3))})
		lo := uint16(8000 + rng.IntN(10))
		tbl.Marks = []vs.Mark{{Mark: 7, Matches: []vs.Match{
			{Proto: vs.TCP, Addr: markAddr, PortLo: lo, PortHi: lo + uint16(rng.IntN(20))},
			{Proto: vs.UDP, Addr: markAddr},
		}}}
		ms := vs.Service{Key: vs.Key{FWMark: 7}, Sched: "rr", Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Fwd: vs.Route, Weight: 1}}}
		if err := tbl.AddService(ms); err != nil {
			t.Fatal(err)
		}
		for _, k := range randomSvcKeys(rng, 1+rng.IntN(40)) {
			if k.proto == 132 {
				k.proto = 6
			}
			s := vs.Service{Key: vs.Key{Proto: vs.Proto(k.proto), Addr: netip.AddrFrom4(k.addr), Port: k.port}, Sched: "rr",
				Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.12"), Port: k.port, Fwd: vs.Route, Weight: 1}}}
			_ = tbl.AddService(s) // repeats are refused; the table stays as it was
		}
		snap, err := Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: sched.NewLoads(MaxDests), Resolver: StaticResolver{}})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		// The model: which service key answers (addr, proto, port), read
		// from the table itself.
		model := func(addr netip.Addr, proto vs.Proto, port uint16) (vs.Key, bool) {
			for _, exact := range []bool{true, false} {
				p := port
				if !exact {
					p = 0
				}
				for _, s := range tbl.Services {
					if s.FWMark == 0 && s.Addr == addr && s.Proto == proto && s.Port == p {
						return s.Key, true
					}
				}
				for _, m := range tbl.Marks[0].Matches {
					if m.Addr != addr || m.Proto != proto {
						continue
					}
					if (m.PortLo == 0 && p == 0) || (m.PortLo != 0 && p != 0 && p >= m.PortLo && p <= m.PortHi) {
						return vs.Key{FWMark: 7}, true
					}
				}
			}
			return vs.Key{}, false
		}
		var probes []svcKey
		for _, s := range tbl.Services {
			if s.FWMark == 0 {
				a := s.Addr.As4()
				probes = append(probes, svcKey{a, s.Port, uint8(s.Proto)}, svcKey{a, s.Port + 1, uint8(s.Proto)}, svcKey{a, 0, uint8(s.Proto)},
					svcKey{a, s.Port, uint8(vs.UDP + vs.TCP - s.Proto)})
			}
		}
		for p := lo - 2; p < lo+25; p++ {
			probes = append(probes, svcKey{markAddr.As4(), p, uint8(vs.TCP)}, svcKey{markAddr.As4(), p, uint8(vs.UDP)})
		}
		probes = append(probes, randomSvcKeys(rng, 100)...)
		for _, q := range probes {
			want, wok := model(netip.AddrFrom4(q.addr), vs.Proto(q.proto), q.port)
			si, ok := snap.lookup(q.addr, q.proto, q.port)
			if ok != wok || (ok && snap.Services[si].Key != want) {
				got := "none"
				if ok {
					got = snap.Services[si].Key.String()
				}
				t.Fatalf("seed %d: %v/%d:%d is served by %s, the table says %v (%v)", seed, netip.AddrFrom4(q.addr), q.proto, q.port, got, want, wok)
			}
		}
	}
}

// TestSvcTableLookupAllocatesNothing: a lookup allocates nothing, hit,
// fallback or miss.
func TestSvcTableLookupAllocatesNothing(t *testing.T) {
	var tab svcTable
	tab.set(svcKey{[4]byte{198, 18, 0, 1}, 80, 6}, 1)
	tab.set(svcKey{[4]byte{198, 18, 0, 1}, 0, 17}, 2)
	found := 0
	if n := testing.AllocsPerRun(1000, func() {
		for _, q := range []svcKey{{[4]byte{198, 18, 0, 1}, 80, 6}, {[4]byte{198, 18, 0, 1}, 53, 17}, {[4]byte{198, 18, 0, 2}, 80, 6}} {
			if _, ok := tab.lookup(q.addr, q.proto, q.port); ok {
				found++
			}
		}
	}); n != 0 {
		t.Fatalf("lookup allocates %v times", n)
	}
	if found != 2*1001 {
		t.Fatalf("%d lookups found a service, want %d", found, 2*1001)
	}
}

// BenchmarkServiceLookup compares the old map lookup with the flat table
// in one run, over services on distinct addresses (port 80, TCP), for
// probes that hit, that fall back to a port-0 service, and that miss.
func BenchmarkServiceLookup(b *testing.B) {
	for _, n := range []int{1, 16, 1024} {
		m := map[svcKey]int32{}
		var tab svcTable
		addr := func(i int) [4]byte { return [4]byte{198, 18, byte(i >> 8), byte(i)} }
		for i := range n {
			k := svcKey{addr(i), 80, 6}
			m[k] = int32(i)
			tab.set(k, int32(i))
			if i%2 == 1 || n == 1 {
				k = svcKey{addr(i), 0, 17}
				m[k] = int32(i)
				tab.set(k, int32(i))
			}
		}
		const nq = 1024
		for _, kind := range []string{"hit", "port0", "miss"} {
			qs := make([]svcKey, nq)
			for j := range qs {
				i := (j * 7919) % n
				switch kind {
				case "hit":
					qs[j] = svcKey{addr(i), 80, 6}
				case "port0":
					qs[j] = svcKey{addr(i | 1), 53, 17}
					if n == 1 {
						qs[j] = svcKey{addr(0), 53, 17}
					}
				case "miss":
					qs[j] = svcKey{addr(i), 81, 6}
				}
			}
			for _, impl := range []string{"map", "flat"} {
				b.Run(fmt.Sprintf("services=%d/%s/%s", n, kind, impl), func(b *testing.B) {
					found := 0
					j := 0
					for b.Loop() {
						q := qs[j&(nq-1)]
						j++
						var ok bool
						if impl == "map" {
							_, ok = mapLookup(m, q.addr, q.proto, q.port)
						} else {
							_, ok = tab.lookup(q.addr, q.proto, q.port)
						}
						if ok {
							found++
						}
					}
					if want := kind != "miss"; (found == j) != want || (found != 0) != want {
						b.Fatalf("%d of %d probes found a service", found, j)
					}
				})
			}
		}
	}
}

// TestServiceLookupRemembersSnapshot: the processor answers a frame's
// service from its last lookup only for the same snapshot. Snapshot a has
// the frames' VIP as its second service; snapshot b has two services, but
// not that VIP, so a frame processed against b after frames against a
// must find no service, not a's index.
func TestServiceLookupRemembersSnapshot(t *testing.T) {
	svc := func(addr netip.Addr, real byte) vs.Service {
		return vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: addr, Port: 80}, Sched: "rr",
			Reals: []vs.Real{{Addr: netip.AddrFrom4([4]byte{198, 18, 0, real}), Port: 80, Fwd: vs.Route, Weight: 1}}}
	}
	build := func(svcs ...vs.Service) *Snapshot {
		tbl := &vs.Table{}
		for _, s := range svcs {
			if err := tbl.AddService(s); err != nil {
				t.Fatal(err)
			}
		}
		r := newRig(t, tbl, 64)
		return r.snap
	}
	other, third := netip.MustParseAddr("198.19.0.2"), netip.MustParseAddr("198.19.0.3")
	a := build(svc(other, 21), svc(vip, 22))
	b := build(svc(other, 31), svc(third, 32))
	if si, ok := a.lookup(vip.As4(), 6, 80); !ok || si != 1 {
		t.Fatalf("snapshot a: the VIP is service %d (%v), want 1", si, ok)
	}
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	for i, step := range []struct {
		snap *Snapshot
		want Verdict
	}{{a, VerdictForward}, {a, VerdictForward}, {b, VerdictDrop}, {a, VerdictForward}, {b, VerdictDrop}} {
		f := tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(6000+i), true, false, false, true, 0)
		if v, _ := r.p.Process(step.snap, chunk(f), headroom, len(f)); v != step.want {
			t.Fatalf("frame %d: verdict %d, want %d", i, v, step.want)
		}
	}
	if got := r.c.Drops[DropNoService].Load(); got != 2 {
		t.Fatalf("no_service drops = %d, want 2", got)
	}
}

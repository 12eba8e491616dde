package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

func src16(a [4]byte) [16]byte { return netip.AddrFrom4(a).As16() }

// otherSource returns a client address whose bucket differs from a's.
func otherSource(l *SYNLimiter, a [16]byte) [16]byte {
	for i := byte(1); ; i++ {
		b := src16([4]byte{198, 18, 7, i})
		if l.st.Load().slot(&b) != l.st.Load().slot(&a) {
			return b
		}
	}
}

func TestSYNLimiterPerSourceBurstThenRate(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewSYNLimiter(SYNLimits{PerSource: 10, Burst: 5}, clk)
	if err != nil {
		t.Fatal(err)
	}
	a := src16([4]byte{198, 18, 0, 10})
	b := otherSource(l, a)
	for i := range 5 {
		if v := l.admit(&a, 0); v != synAllow {
			t.Fatalf("burst SYN %d: %v", i, v)
		}
	}
	if v := l.admit(&a, 0); v != synSourceLimited {
		t.Fatalf("SYN 6 of a burst of 5: %v, want limited", v)
	}
	if v := l.admit(&b, 0); v != synAllow {
		t.Fatalf("another source: %v, want its own budget", v)
	}
	// The refused SYN counted as demand: after one interval the bucket
	// is still one over, after two it has room again.
	clk.Advance(100 * time.Millisecond)
	if v := l.admit(&a, 0); v != synSourceLimited {
		t.Fatalf("one interval after a refusal: %v, want still limited", v)
	}
	clk.Advance(time.Second)
	got := 0
	for range 20 {
		if l.admit(&a, 0) == synAllow {
			got++
		}
	}
	if got < 1 || got > 5 {
		t.Fatalf("after a second of silence %d allowed, want between 1 and the burst (5)", got)
	}
}

func TestSYNLimiterPerService(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewSYNLimiter(SYNLimits{PerService: 100, Burst: 10}, clk)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[uint32]int{}
	for i := range 1000 {
		a := src16([4]byte{198, 18, byte(i >> 8), byte(i)})
		for _, svc := range []uint32{3, 4} {
			if l.admit(&a, svc) == synAllow {
				allowed[svc]++
			}
		}
		clk.Advance(time.Millisecond) // 1000 SYNs a second to each
	}
	// A second at 100 a second plus the burst of 10, for each service.
	for _, svc := range []uint32{3, 4} {
		if n := allowed[svc]; n < 105 || n > 112 {
			t.Fatalf("service %d: %d of 1000 SYNs in one second allowed, want 100 plus the burst", svc, n)
		}
	}
}

// blockRecorder is a Blocker that remembers what it was told.
type blockRecorder struct {
	mu  sync.Mutex
	got map[[16]byte]int
}

func (b *blockRecorder) Block(src [16]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.got == nil {
		b.got = map[[16]byte]int{}
	}
	b.got[src]++
}

// TestSYNLimiterBlocksFarOverRate: a source asking for 50 times its rate
// is reported for the blocklist; one asking for twice its rate is only
// limited.
func TestSYNLimiterBlocksFarOverRate(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewSYNLimiter(SYNLimits{PerSource: 10, Burst: 10, BlockFactor: 10}, clk)
	if err != nil {
		t.Fatal(err)
	}
	hot := src16([4]byte{198, 18, 0, 66})
	warm := otherSource(l, hot)
	seen := map[synVerdict]map[[16]byte]int{}
	for i := range 2000 { // two seconds, 1 ms apart
		for _, s := range []struct {
			a     *[16]byte
			every int
		}{{&hot, 2}, {&warm, 50}} { // 500 a second and 20 a second
			if i%s.every == 0 {
				v := l.admit(s.a, 0)
				if seen[v] == nil {
					seen[v] = map[[16]byte]int{}
				}
				seen[v][*s.a]++
			}
		}
		clk.Advance(time.Millisecond)
	}
	if seen[synSourceBlocked][hot] == 0 {
		t.Fatalf("a source at 50 times its rate was never reported for blocking: %v", seen)
	}
	if seen[synSourceBlocked][warm] != 0 || seen[synSourceLimited][warm] == 0 {
		t.Fatalf("a source at twice its rate: blocked %d times, limited %d; want limited only",
			seen[synSourceBlocked][warm], seen[synSourceLimited][warm])
	}
	// The flood counted as demand: it stays refused for a while after it
	// stops, then gets its rate back.
	if v := l.admit(&hot, 0); v == synAllow {
		t.Fatal("the flooding source was allowed right after its flood")
	}
	clk.Advance(time.Minute)
	if v := l.admit(&hot, 0); v != synAllow {
		t.Fatalf("a minute after the flood stopped: %v, want allowed", v)
	}
}

func TestSYNLimitsValidate(t *testing.T) {
	for _, c := range []struct {
		l    SYNLimits
		want string
	}{
		{SYNLimits{PerSource: -1}, "defense.syn_rate_per_source = -1"},
		{SYNLimits{PerService: MaxSYNRate + 1}, "defense.syn_rate_per_service = 100000001"},
		{SYNLimits{Burst: -3}, "defense.burst = -3"},
		{SYNLimits{BlockFactor: 1001}, "defense.block_factor = 1001"},
	} {
		if _, err := NewSYNLimiter(c.l, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.l, err, c.want)
		}
	}
}

// TestProcessSYNDefence runs SYNs through the processor with both limits
// and a blocker: the drops are counted by reason, among the SYN drops too,
// and established flows are not limited.
func TestProcessSYNDefence(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	l, err := NewSYNLimiter(SYNLimits{PerSource: 2, PerService: 3, Burst: 2, BlockFactor: 2}, r.clock)
	if err != nil {
		t.Fatal(err)
	}
	var br blockRecorder
	r.p.SetSYNLimiter(l, &br)
	verdicts := func(client [4]byte, n int, syn bool) (fwd int) {
		for i := range n {
			f := tcpFrame(t, client, uint16(1000+i), syn, !syn, false, true, 0)
			if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v == VerdictForward {
				fwd++
			}
		}
		return fwd
	}
	a := [4]byte{198, 18, 0, 10}
	if n := verdicts(a, 10, true); n != 2 {
		t.Fatalf("source burst 2: %d of 10 SYNs forwarded", n)
	}
	if n := r.c.Drops[DropSYNRateSource].Load(); n != 8 || r.c.SYNDrops[DropSYNRateSource].Load() != 8 {
		t.Fatalf("%d drops and %d SYN drops of %s, want 8", n, r.c.SYNDrops[DropSYNRateSource].Load(), DropSYNRateSource)
	}
	if len(br.got) != 1 || br.got[src16(a)] == 0 {
		t.Fatalf("blocker heard %v, want the source asking 5 times its burst", br.got)
	}
	// Established flows of the limited source still pass.
	if n := verdicts(a, 2, false); n != 2 {
		t.Fatalf("ACKs of the source's two connections: %d of 2 forwarded", n)
	}
	// Source a spent the service's burst; a third of a second gives the
	// service one token, which another source gets.
	r.clock.Advance(400 * time.Millisecond)
	b, a16 := src16([4]byte{198, 18, 0, 11}), src16(a)
	if l.st.Load().slot(&b) == l.st.Load().slot(&a16) {
		t.Skip("the two test sources share a bucket under this run's hash key")
	}
	if n := verdicts([4]byte{198, 18, 0, 11}, 2, true); n != 1 {
		t.Fatalf("another source: %d of 2 forwarded, want the service's one new token", n)
	}
	if r.c.Drops[DropSYNRateService].Load() != 1 || r.c.SYNDrops[DropSYNRateService].Load() != 1 {
		t.Fatalf("service drops %d, SYN drops %d, want 1", r.c.Drops[DropSYNRateService].Load(), r.c.SYNDrops[DropSYNRateService].Load())
	}
}

// TestProcessDropPacketAndTableFullSYNDrops: drop_packet drops one new
// connection in its rate, and a SYN the full table refuses is a SYN drop
// as well as a table_full drop.
func TestProcessDropPacketAndTableFullSYNDrops(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 4)
	if err := r.ct.SetDefense(conntrack.Defense{DropPacket: 3, AmDropRate: 2}); err != nil {
		t.Fatal(err)
	}
	fwd := 0
	for i := range 10 {
		f := tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(2000+i), true, false, false, true, 0)
		if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v == VerdictForward {
			fwd++
		}
	}
	// Rate 2 drops every second new connection; the table holds 4 and
	// its half-open entries give way, so every admitted SYN is forwarded.
	if n := r.c.Drops[DropDefensePacket].Load(); n != 5 || fwd != 5 {
		t.Fatalf("drop_packet rate 2: %d dropped and %d forwarded of 10", n, fwd)
	}
	if err := r.ct.SetDefense(conntrack.DefaultDefense()); err != nil {
		t.Fatal(err)
	}
	for i := range 4 { // fill the table with established connections
		f := tcpFrame(t, [4]byte{198, 18, 1, byte(i)}, 3000, false, true, false, true, 0)
		f2 := tcpFrame(t, [4]byte{198, 18, 1, byte(i)}, 3000, true, false, false, true, 0)
		r.p.Process(r.snap, chunk(f2), headroom, len(f2))
		r.p.Process(r.snap, chunk(f), headroom, len(f))
	}
	before := r.c.SYNDrops[DropTableFull].Load()
	f := tcpFrame(t, [4]byte{198, 18, 2, 1}, 4000, true, false, false, true, 0)
	if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v != VerdictDrop {
		t.Fatalf("SYN into a table full of established connections: verdict %d", v)
	}
	if r.c.SYNDrops[DropTableFull].Load() != before+1 {
		t.Fatal("the SYN the full table refused is not among the SYN drops")
	}
}

// TestProcessSYNLimitAllocs: the limited path allocates nothing, whether
// it allows or refuses.
func TestProcessSYNLimitAllocs(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "wlc", 1, 2, 3), 1<<16)
	l, err := NewSYNLimiter(SYNLimits{PerSource: 1000, PerService: 100000, Burst: 50, BlockFactor: 4}, r.clock)
	if err != nil {
		t.Fatal(err)
	}
	var br blockRecorder
	r.p.SetSYNLimiter(l, &br)
	if err := r.ct.SetDefense(conntrack.Defense{DropPacket: 3, AmDropRate: 7}); err != nil {
		t.Fatal(err)
	}
	syn := tcpFrame(t, [4]byte{198, 18, 1, 10}, 0, true, false, false, true, 0)
	b := make([]byte, 2048)
	port := uint16(0)
	allocs := testing.AllocsPerRun(2000, func() {
		port++
		copy(b[headroom:], syn)
		b[headroom+34], b[headroom+35] = byte(port>>8), byte(port)
		r.p.Process(r.snap, b, headroom, len(syn))
	})
	if allocs != 0 {
		t.Fatalf("limited new flows: %v allocs per frame", allocs)
	}
	if r.c.Drops[DropSYNRateSource].Load() == 0 || r.c.Drops[DropDefensePacket].Load() == 0 {
		t.Fatal("the alloc run never took the refusing paths")
	}
}

// BenchmarkSYN is the cost of a new connection's SYN through the
// processor, without limits and with both SYN limits and drop_packet
// armed (rate 0: in force but dropping none); and of the limiter alone.
func BenchmarkSYN(b *testing.B) {
	for _, limited := range []bool{false, true} {
		name := "limits=off"
		if limited {
			name = "limits=on"
		}
		b.Run(name, func(b *testing.B) {
			r := newRig(b, oneService(vs.Route, "wlc", 1, 2, 3), 1<<20)
			if limited {
				l, err := NewSYNLimiter(SYNLimits{PerSource: MaxSYNRate, PerService: MaxSYNRate, Burst: MaxSYNBurst}, r.clock)
				if err != nil {
					b.Fatal(err)
				}
				r.p.SetSYNLimiter(l, nil)
			}
			syn := tcpFrame(b, [4]byte{198, 18, 0, 10}, 0, true, false, false, true, 0)
			buf := make([]byte, 2048)
			var n uint32
			b.ReportAllocs()
			for b.Loop() {
				n++
				copy(buf[headroom:], syn)
				buf[headroom+28], buf[headroom+29] = byte(n>>16), byte(n>>8)
				buf[headroom+34], buf[headroom+35] = byte(n>>8), byte(n)
				ip := header.IPv4(buf[headroom+14 : headroom+34])
				ip.SetChecksum(ip.CalculateChecksum())
				if v, _ := r.p.Process(r.snap, buf, headroom, len(syn)); v != VerdictForward {
					b.Fatalf("new flow %d dropped", n)
				}
				if n%(1<<18) == 0 {
					r.clock.Advance(time.Hour)
					r.ct.Sweep(1 << 22)
				}
			}
		})
	}
	// A flood source over its rate: every SYN refused by the limiter,
	// before the table.
	b.Run("limits=refused", func(b *testing.B) {
		r := newRig(b, oneService(vs.Route, "wlc", 1, 2, 3), 1<<16)
		l, err := NewSYNLimiter(SYNLimits{PerSource: 1, Burst: 1}, r.clock)
		if err != nil {
			b.Fatal(err)
		}
		r.p.SetSYNLimiter(l, nil)
		syn := tcpFrame(b, [4]byte{198, 18, 0, 10}, 0, true, false, false, true, 0)
		buf := make([]byte, 2048)
		var n uint16
		send := func() {
			n++
			copy(buf[headroom:], syn)
			buf[headroom+34], buf[headroom+35] = byte(n>>8), byte(n)
			r.p.Process(r.snap, buf, headroom, len(syn))
		}
		// Spend the bucket first, so that every timed SYN is refused
		// even when the loop runs once.
		send()
		send()
		b.ReportAllocs()
		for b.Loop() {
			send()
		}
		if r.c.Drops[DropSYNRateSource].Load() == 0 {
			b.Fatal("nothing refused")
		}
	})
	b.Run("admit-only", func(b *testing.B) {
		l, err := NewSYNLimiter(SYNLimits{PerSource: 1000, PerService: 100000, Burst: 100}, conntrack.SystemClock())
		if err != nil {
			b.Fatal(err)
		}
		var a [16]byte
		var n uint32
		for b.Loop() {
			n++
			a[12], a[13], a[14], a[15] = 198, 18, byte(n>>8), byte(n)
			l.admit(&a, 1)
		}
	})
}

// TestSYNLimiterSet: a reload's new limits apply at once, a refused one
// changes nothing, and zero rates turn the limiter off.
func TestSYNLimiterSet(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewSYNLimiter(SYNLimits{PerSource: 1, Burst: 1}, clk)
	if err != nil {
		t.Fatal(err)
	}
	a := src16([4]byte{198, 18, 0, 10})
	l.admit(&a, 0)
	if v := l.admit(&a, 0); v != synSourceLimited {
		t.Fatalf("second SYN at 1/s: %v", v)
	}
	if err := l.Set(SYNLimits{PerSource: -5}); err == nil {
		t.Fatal("a negative rate was accepted")
	}
	if got := l.Limits(); got != (SYNLimits{PerSource: 1, Burst: 1}) {
		t.Fatalf("a refused Set changed the limits to %+v", got)
	}
	if err := l.Set(SYNLimits{PerSource: 100, Burst: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if v := l.admit(&a, 0); v != synAllow {
			t.Fatalf("SYN %d under the new burst of 3: %v", i, v)
		}
	}
	if err := l.Set(SYNLimits{}); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if v := l.admit(&a, 0); v != synAllow {
			t.Fatalf("limits off: %v", v)
		}
	}
}

// TestProcessTrustedSourceSkipsServiceRate: a client that completed a
// handshake is not held to the service's SYN rate for TrustFor, while a
// source that never did (a spoofed one) is.
func TestProcessTrustedSourceSkipsServiceRate(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	l, err := NewSYNLimiter(SYNLimits{PerService: 1, Burst: 1}, r.clock)
	if err != nil {
		t.Fatal(err)
	}
	r.p.SetSYNLimiter(l, nil)
	send := func(client [4]byte, port uint16, syn bool) Verdict {
		f := tcpFrame(t, client, port, syn, !syn, false, true, 0)
		v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f))
		return v
	}
	known, spoofed := [4]byte{198, 18, 0, 10}, [4]byte{198, 18, 200, 7}
	k16, s16 := src16(known), src16(spoofed)
	if l.st.Load().slot(&k16) == l.st.Load().slot(&s16) {
		t.Skip("the two test sources share a slot under this run's hash key")
	}
	if v := send(known, 1000, true); v != VerdictForward {
		t.Fatalf("first SYN: verdict %d", v)
	}
	if v := send(known, 1000, false); v != VerdictForward { // the handshake's ACK
		t.Fatalf("ACK: verdict %d", v)
	}
	for i := range 5 {
		if v := send(known, uint16(1001+i), true); v != VerdictForward {
			t.Fatalf("SYN %d of a client that completed a handshake: verdict %d, want it past the service's rate", i, v)
		}
	}
	if v := send(spoofed, 2000, true); v != VerdictDrop || r.c.Drops[DropSYNRateService].Load() != 1 {
		t.Fatalf("a source that never completed a handshake: verdict %d, %d service drops", v, r.c.Drops[DropSYNRateService].Load())
	}
	r.clock.Advance(TrustFor + time.Second)
	send(known, 3000, true) // the service's one new token
	if v := send(known, 3001, true); v != VerdictDrop {
		t.Fatalf("after TrustFor without a handshake: verdict %d, want the service's rate again", v)
	}
}

// TestSYNLimiterBlocksOnlyTheFlooder: a source that shares its bucket
// with a flooding one (their hashes collide) is refused with it, but
// only the flooder is reported for the blocklist.
func TestSYNLimiterBlocksOnlyTheFlooder(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewSYNLimiter(SYNLimits{PerSource: 10, Burst: 10, BlockFactor: 2}, clk)
	if err != nil {
		t.Fatal(err)
	}
	tb := l.st.Load()
	hot := src16([4]byte{198, 18, 0, 66})
	// Another source in the flooder's slot: 65536 slots, so one in about
	// that many addresses; 2^24 candidates leave no real chance to miss.
	var mate [16]byte
	found := false
	for i := uint32(1); i < 1<<24 && !found; i++ {
		mate = src16([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) // hashed only, never sent
		found = mate != hot && tb.slot(&mate) == tb.slot(&hot)
	}
	if !found {
		t.Fatal("no address shares the flooder's slot")
	}
	for range 200 {
		l.admit(&hot, 0)
	}
	if v := l.admit(&hot, 0); v != synSourceBlocked {
		t.Fatalf("the flooder: %v, want blocked", v)
	}
	if v := l.admit(&mate, 0); v != synSourceLimited {
		t.Fatalf("a source sharing the flooder's bucket: %v, want limited, not blocked", v)
	}
	l.admit(&hot, 0)
	if v := l.admit(&hot, 0); v != synSourceBlocked {
		t.Fatalf("the flooder again: %v, want blocked", v)
	}
}

// TestSYNLimiterServiceRates: a service with a rate of its own is held to
// it, another keeps syn_rate_per_service, and the rates follow the
// service IDs of the snapshot applied, including a service that has one
// while the default is off.
func TestSYNLimiterServiceRates(t *testing.T) {
	tbl := oneService(vs.Route, "rr", 1)
	other := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 81}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Port: 81, Fwd: vs.Route, Weight: 1}}}
	if err := tbl.AddService(other); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, tbl, 1024)
	l, err := NewSYNLimiter(SYNLimits{PerService: 3, Burst: 1}, r.clock)
	if err != nil {
		t.Fatal(err)
	}
	r.p.SetSYNLimiter(l, nil)
	if err := l.SetServiceRates(map[vs.Key]int{other.Key: 0}); err == nil || !strings.Contains(err.Error(), "= 0") {
		t.Fatalf("rate 0: %v, want refused", err)
	}
	if err := l.SetServiceRates(map[vs.Key]int{other.Key: 1000}); err != nil {
		t.Fatal(err)
	}
	l.Apply(r.snap)
	sport := uint16(5000)
	forwarded := func(port uint16, n int) int {
		fwd := 0
		for i := range n {
			sport++ // a new connection each time
			f := tcpFrame(t, [4]byte{198, 18, 3, byte(i)}, sport, true, false, false, true, 0)
			f[14+20+2], f[14+20+3] = byte(port>>8), byte(port) // destination port
			if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v == VerdictForward {
				fwd++
			}
		}
		return fwd
	}
	if n := forwarded(80, 5); n != 1 {
		t.Fatalf("port 80 (syn_rate_per_service 3, burst 1): %d of 5 forwarded, want 1", n)
	}
	if n := forwarded(81, 5); n != 1 {
		t.Fatalf("port 81 (its own rate 1000, burst 1): %d of 5 forwarded, want 1", n)
	}
	r.clock.Advance(10 * time.Millisecond) // 10 tokens at 1000/s, none at 3/s
	if n := forwarded(81, 5); n != 1 {
		t.Fatalf("port 81 after 10ms: %d of 5 forwarded, want its one-deep bucket refilled", n)
	}
	if n := forwarded(80, 5); n != 0 {
		t.Fatalf("port 80 after 10ms: %d forwarded, want none", n)
	}
	// Default off: only the service with a rate of its own is limited.
	if err := l.Set(SYNLimits{Burst: 2}); err != nil {
		t.Fatal(err)
	}
	if n := forwarded(80, 5); n != 5 {
		t.Fatalf("port 80 without a rate: %d of 5 forwarded", n)
	}
	if n := forwarded(81, 5); n != 2 {
		t.Fatalf("port 81 with its own rate, burst 2: %d of 5 forwarded", n)
	}
}

// TestSYNLimiterPrefix6: with SetPrefix6(64) an IPv6 host that changes
// its address within its /64 at every SYN is one source: held to the
// rate, and reported for blocking when far over it; another /64 and an
// IPv4 source keep their own budgets. Without it (or with 128) every
// address has its own.
func TestSYNLimiterPrefix6(t *testing.T) {
	addr := func(prefix uint16, host uint64) [16]byte {
		a := netip.MustParseAddr("2001:2::").As16()
		a[6], a[7] = byte(prefix>>8), byte(prefix)
		binary.BigEndian.PutUint64(a[8:], host)
		return a
	}
	for _, bits := range []int{0, 128, 64, 48} {
		clk := &conntrack.ManualClock{}
		l, err := NewSYNLimiter(SYNLimits{PerSource: 10, Burst: 5, BlockFactor: 4}, clk)
		if err != nil {
			t.Fatal(err)
		}
		if bits != 0 {
			if err := l.SetPrefix6(bits); err != nil {
				t.Fatal(err)
			}
		}
		byPrefix := bits != 0 && bits < 128
		var seen [4]int
		for i := range uint64(100) { // 100 SYNs at once, each from another address of 2001:2:0:77::/64
			a := addr(0x77, 0x1000+i*0x10001)
			seen[l.admit(&a, 0)]++
		}
		if byPrefix {
			if seen[synAllow] != 5 || seen[synSourceBlocked] == 0 {
				t.Errorf("/%d: a /64 rotating its addresses: %v (allowed, limited, blocked, service), want 5 allowed, then blocked", bits, seen)
			}
		} else if seen[synAllow] < 95 {
			t.Errorf("/%d: 100 addresses of a /64: %v, want each allowed (but for slot collisions)", bits, seen)
		}
		other, v4 := addr(0x78, 1), src16([4]byte{198, 18, 0, 7})
		if bits == 48 {
			// 2001:2:0:78::/64 is in the same /48.
			if v := l.admit(&other, 0); v == synAllow {
				t.Errorf("/48: another /64 of the same /48 allowed")
			}
		} else if v := l.admit(&other, 0); v != synAllow {
			t.Errorf("/%d: another /64: %v, want allowed", bits, v)
		}
		if v := l.admit(&v4, 0); v != synAllow {
			t.Errorf("/%d: an IPv4 source: %v, want allowed", bits, v)
		}
	}
	l, err := NewSYNLimiter(SYNLimits{PerSource: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int{0, -1, 129} {
		if err := l.SetPrefix6(bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("= %d", bad)) {
			t.Errorf("SetPrefix6(%d): %v, want refused naming it", bad, err)
		}
	}
	if err := l.SetPrefix6(64); err != nil {
		t.Fatal(err)
	}
	a := addr(0x79, 5)
	if n := testing.AllocsPerRun(100, func() { l.admit(&a, 0); l.trust(&a) }); n != 0 {
		t.Errorf("an IPv6 source keyed by its prefix: %v allocations", n)
	}
}

// TestSYNLimiterPrefix6Trust: a handshake completed from one address of
// a /64 exempts the prefix from the service's rate, as the prefix is one
// source.
func TestSYNLimiterPrefix6Trust(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewSYNLimiter(SYNLimits{PerService: 1, Burst: 1}, clk)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetPrefix6(64); err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("2001:2:0:77::1").As16(), netip.MustParseAddr("2001:2:0:77::2").As16()
	if v := l.admit(&a, 0); v != synAllow {
		t.Fatalf("first SYN: %v", v)
	}
	if v := l.admit(&b, 0); v != synServiceLimited {
		t.Fatalf("second SYN over the service's rate: %v", v)
	}
	l.trust(&a)
	if v := l.admit(&b, 0); v != synAllow {
		t.Fatalf("another address of the trusted /64: %v, want allowed", v)
	}
}

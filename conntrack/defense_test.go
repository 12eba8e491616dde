package conntrack

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// kernelDefense is a model of the kernel's defence bookkeeping, written
// the way ip_vs_ctl.c's update_defense_level and ip_vs_core.c's
// ip_vs_todrop are: three switches over the sysctl values, with
// available memory replaced by free entries.
type kernelDefense struct {
	dropEntrySysctl, dropPacketSysctl, secureTCPSysctl int
	amemthresh, amDroprate                             int

	dropentry             int
	dropRate, dropCounter int
	oldSecureTCP          int
	secureTable           bool
}

func (k *kernelDefense) update(availmem int) {
	amemthresh := max(k.amemthresh, 0)
	nomem := availmem < amemthresh
	toChange := -1

	switch k.dropEntrySysctl {
	case 0:
		k.dropentry = 0
	case 1:
		if nomem {
			k.dropentry = 1
			k.dropEntrySysctl = 2
		} else {
			k.dropentry = 0
		}
	case 2:
		if nomem {
			k.dropentry = 1
		} else {
			k.dropentry = 0
			k.dropEntrySysctl = 1
		}
	case 3:
		k.dropentry = 1
	}

	switch k.dropPacketSysctl {
	case 0:
		k.dropRate = 0
	case 1:
		if nomem {
			k.dropRate = amemthresh / (amemthresh - availmem)
			k.dropCounter = k.dropRate
			k.dropPacketSysctl = 2
		} else {
			k.dropRate = 0
		}
	case 2:
		if nomem {
			k.dropRate = amemthresh / (amemthresh - availmem)
			k.dropCounter = k.dropRate
		} else {
			k.dropRate = 0
			k.dropPacketSysctl = 1
		}
	case 3:
		k.dropRate = k.amDroprate
	}

	switch k.secureTCPSysctl {
	case 0:
		if k.oldSecureTCP >= 2 {
			toChange = 0
		}
	case 1:
		if nomem {
			if k.oldSecureTCP < 2 {
				toChange = 1
			}
			k.secureTCPSysctl = 2
		} else if k.oldSecureTCP >= 2 {
			toChange = 0
		}
	case 2:
		if nomem {
			if k.oldSecureTCP < 2 {
				toChange = 1
			}
		} else {
			if k.oldSecureTCP >= 2 {
				toChange = 0
			}
			k.secureTCPSysctl = 1
		}
	case 3:
		if k.oldSecureTCP < 2 {
			toChange = 1
		}
	}
	k.oldSecureTCP = k.secureTCPSysctl
	if toChange >= 0 {
		k.secureTable = k.secureTCPSysctl > 1
	}
}

func (k *kernelDefense) todrop() bool {
	if k.dropRate == 0 {
		return false
	}
	if k.dropCounter--; k.dropCounter > 0 {
		return false
	}
	k.dropCounter = k.dropRate
	return true
}

// TestDefenseFollowsKernelModel drives a table and the kernel model
// through the same random writes of the sysctls, table fills and new
// connections, and requires the same values, the same strategies on and
// the same packets dropped at every step.
func TestDefenseFollowsKernelModel(t *testing.T) {
	const capacity = 200
	clk := new(ManualClock)
	tbl := newTestTable(t, Config{Capacity: capacity, Clock: clk})
	var model kernelDefense
	model.amemthresh, model.amDroprate = DefaultAmemThresh, DefaultAmDropRate
	rng := rand.New(rand.NewPCG(1, 2))
	var conns []Conn
	next := uint32(0)
	fill := func(n int) {
		for len(conns) < n {
			k := v4Key(ProtoTCP, next, uint16(next), 80)
			next++
			// ESTABLISHED entries refreshed now: drop_entry leaves them
			// alone, so the fill is what the test sets.
			c, res := tbl.Insert(&k, 1, 0, 0, EvAck)
			if res != Inserted {
				t.Fatalf("insert: %v", res)
			}
			conns = append(conns, c)
		}
		for len(conns) > n {
			c := conns[len(conns)-1]
			if !tbl.ExpireNow(&c) {
				t.Fatal("ExpireNow refused a live entry")
			}
			tbl.Retire(&c)
			conns = conns[:len(conns)-1]
		}
	}
	sawOn := [3]bool{}
	for step := range 4000 {
		switch op := rng.IntN(10); {
		case op == 0:
			d := Defense{DropEntry: rng.IntN(4), DropPacket: rng.IntN(4), SecureTCP: rng.IntN(4),
				AmemThresh: rng.IntN(capacity + 1), AmDropRate: rng.IntN(20)}
			if err := tbl.SetDefense(d); err != nil {
				t.Fatal(err)
			}
			model.dropEntrySysctl, model.dropPacketSysctl, model.secureTCPSysctl = d.DropEntry, d.DropPacket, d.SecureTCP
			model.amemthresh, model.amDroprate = d.AmemThresh, d.AmDropRate
			model.update(capacity - len(conns))
		case op < 5:
			fill(rng.IntN(capacity + 1))
			if n := tbl.DefenseTick(); n != 0 {
				t.Fatalf("step %d: drop_entry dropped %d fresh ESTABLISHED entries", step, n)
			}
			model.update(capacity - len(conns))
		default:
			for i := range 1 + rng.IntN(30) {
				if got, want := tbl.ToDropPacket(), model.todrop(); got != want {
					t.Fatalf("step %d packet %d: table drops %v, kernel model %v (rate %d)", step, i, got, want, model.dropRate)
				}
			}
		}
		st := tbl.Defense()
		want := DefenseState{Defense: Defense{DropEntry: model.dropEntrySysctl, DropPacket: model.dropPacketSysctl,
			SecureTCP: model.secureTCPSysctl, AmemThresh: model.amemthresh, AmDropRate: model.amDroprate},
			DropEntryOn: model.dropentry == 1, DropRate: model.dropRate, SecureTCPOn: model.secureTable,
			Free: uint64(capacity - len(conns))}
		if st != want {
			t.Fatalf("step %d:\n got %+v\nwant %+v", step, st, want)
		}
		sawOn[0] = sawOn[0] || st.DropEntryOn && st.DropEntry == 2
		sawOn[1] = sawOn[1] || st.DropRate > 0 && st.DropPacket == 2
		sawOn[2] = sawOn[2] || st.SecureTCPOn && st.SecureTCP == 2
	}
	if sawOn != [3]bool{true, true, true} {
		t.Fatalf("the walk never switched an automatic defence on: %v", sawOn)
	}
}

// TestDefenseAutomaticTransitions walks one strategy through the kernel's
// documented life: 1 turns into 2 under pressure and back to 1 after it;
// 3 stays; 0 never acts.
func TestDefenseAutomaticTransitions(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 100})
	fill := func(n int) {
		for i := range n {
			k := v4Key(ProtoTCP, uint32(i), uint16(i), 80)
			tbl.Insert(&k, 1, 0, 0, EvAck)
		}
	}
	if err := tbl.SetDefense(Defense{DropEntry: 1, DropPacket: 1, SecureTCP: 1, AmemThresh: 10, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	if st := tbl.Defense(); st.DropEntry != 1 || st.DropEntryOn || st.DropRate != 0 || st.SecureTCPOn {
		t.Fatalf("empty table: %+v", st)
	}
	fill(95) // 5 free < 10
	tbl.DefenseTick()
	st := tbl.Defense()
	if st.DropEntry != 2 || st.DropPacket != 2 || st.SecureTCP != 2 || !st.DropEntryOn || !st.SecureTCPOn {
		t.Fatalf("under pressure: %+v", st)
	}
	if st.DropRate != 10/(10-5) {
		t.Fatalf("drop rate %d, want amemthresh/(amemthresh-free) = 2", st.DropRate)
	}
	// Every second new connection is dropped at rate 2.
	drops := 0
	for range 10 {
		if tbl.ToDropPacket() {
			drops++
		}
	}
	if drops != 5 {
		t.Fatalf("%d of 10 dropped at rate 2", drops)
	}
	k := v4Key(ProtoTCP, 5000, 1, 80)
	c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
	if c.State != SynAck {
		t.Fatalf("a SYN under secure_tcp opened %v, want SYNACK (tcp_states_dos)", c.State)
	}
	tbl.ExpireNow(&c)
	tbl.Retire(&c)
	// Mode 3 keeps everything on whatever the fill.
	if err := tbl.SetDefense(Defense{DropEntry: 3, DropPacket: 3, SecureTCP: 3, AmemThresh: 0, AmDropRate: 4}); err != nil {
		t.Fatal(err)
	}
	if st := tbl.Defense(); st.DropEntry != 3 || !st.DropEntryOn || st.DropRate != 4 || !st.SecureTCPOn {
		t.Fatalf("mode 3: %+v", st)
	}
	// Back to automatic with room: 2 reads 1 again and nothing acts.
	if err := tbl.SetDefense(Defense{DropEntry: 2, DropPacket: 2, SecureTCP: 2, AmemThresh: 1}); err != nil {
		t.Fatal(err)
	}
	if st := tbl.Defense(); st.DropEntry != 1 || st.DropPacket != 1 || st.SecureTCP != 1 || st.DropEntryOn || st.DropRate != 0 || st.SecureTCPOn {
		t.Fatalf("automatic with room: %+v", st)
	}
	k = v4Key(ProtoTCP, 5001, 1, 80)
	if c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn); c.State != SynRecv {
		t.Fatalf("a SYN without secure_tcp opened %v, want SYN_RECV", c.State)
	}
}

func TestDefenseValidate(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 10})
	for _, c := range []struct {
		d    Defense
		want string
	}{
		{Defense{DropEntry: 4}, "drop_entry = 4"},
		{Defense{DropPacket: -1}, "drop_packet = -1"},
		{Defense{SecureTCP: 7}, "secure_tcp = 7"},
		{Defense{AmemThresh: -5}, "amemthresh = -5"},
		{Defense{AmDropRate: -1}, "am_droprate = -1"},
	} {
		err := tbl.SetDefense(c.d)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want one naming %q", c.d, err, c.want)
		}
		if st := tbl.Defense(); st.Defense != DefaultDefense() {
			t.Fatalf("a refused SetDefense changed the defence: %+v", st.Defense)
		}
	}
}

// TestSecureTCPTable checks NextSecure against tcp_states_dos's
// input-only rows: only the syn row differs from tcp_states.
func TestSecureTCPTable(t *testing.T) {
	syn := [...]State{SynAck, Established, Established, SynRecv, SynAck, SynAck, SynAck, SynAck, SynAck, SynAck, SynAck}
	for s := None; s <= SynAck; s++ {
		if got := NextSecure(s, EvSyn); got != syn[s] {
			t.Errorf("syn on %v: %v, want %v", s, got, syn[s])
		}
		for _, ev := range []Event{EvFin, EvAck, EvRst, EvNone} {
			if got, want := NextSecure(s, ev), Next(s, ev); got != want {
				t.Errorf("%d on %v: %v, want %v (same as tcp_states)", ev, s, got, want)
			}
		}
	}
}

// TestDropEntry checks ip_vs_random_dropentry's choice: half-open entries
// go, busy established ones stay, and idle established ones with few
// packets go only after 60 s of silence.
func TestDropEntry(t *testing.T) {
	clk := new(ManualClock)
	tbl := newTestTable(t, Config{Capacity: 3000, Clock: clk})
	if err := tbl.SetDefense(Defense{DropEntry: 3, SecureTCP: 3}); err != nil {
		t.Fatal(err)
	}
	var halfOpen, busy, idle []Key
	for i := range 1000 {
		k := v4Key(ProtoTCP, uint32(i), uint16(i), 80)
		if _, res := tbl.Insert(&k, 1, 0, 0, EvSyn); res != Inserted {
			t.Fatal(res)
		}
		halfOpen = append(halfOpen, k)
	}
	for i := range 500 {
		k := v4Key(ProtoTCP, uint32(10000+i), uint16(i), 80)
		c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
		for range 12 { // handshake and data: more than 8 packets
			tbl.Touch(&c, &k, EvAck)
		}
		busy = append(busy, k)
		k2 := v4Key(ProtoTCP, uint32(20000+i), uint16(i), 80)
		c2, _ := tbl.Insert(&k2, 1, 0, 0, EvSyn)
		tbl.Touch(&c2, &k2, EvAck) // two packets, then silence
		idle = append(idle, k2)
	}
	alive := func(ks []Key) int {
		n := 0
		for i := range ks {
			if _, ok := tbl.Lookup(&ks[i]); ok {
				n++
			}
		}
		return n
	}
	// Each tick visits a random 1/32 of the buckets: after 600 a given
	// bucket is missed with odds of about 1e-8.
	for range 600 {
		tbl.DefenseTick()
	}
	if n := alive(halfOpen); n != 0 {
		t.Fatalf("%d of 1000 SYNACK entries survived 600 drop_entry ticks", n)
	}
	if b, i := alive(busy), alive(idle); b != 500 || i != 500 {
		t.Fatalf("before 60 s idle: %d busy and %d idle ESTABLISHED entries of 500 each survive, want all", b, i)
	}
	// An entry is idle 60 s after its stored expiry less its timeout:
	// the last write plus the slack, no earlier than its last packet.
	// Just before, none of the idle entries goes.
	clk.Advance(60*time.Second + slackOf(DefaultTimeouts().Established) - time.Millisecond)
	for range 600 {
		tbl.DefenseTick()
	}
	if i := alive(idle); i != 500 {
		t.Fatalf("%d of 500 idle two-packet entries survive before 60 s of silence after the last write and the slack, want all", i)
	}
	clk.Advance(time.Second + time.Millisecond)
	// A two-packet entry goes at about every second visit, and a bucket
	// is visited once in 32 ticks: after 1500 ticks one survives with
	// odds of about e^-23.
	for range 1500 {
		tbl.DefenseTick()
	}
	if n := alive(busy); n != 500 {
		t.Fatalf("%d of 500 ESTABLISHED entries with more than 8 packets survive, want all (todrop_entry spares them)", n)
	}
	if n := alive(idle); n != 0 {
		t.Fatalf("%d of 500 idle two-packet entries survive 1500 ticks after 60 s of silence, want none", n)
	}
	if st := tbl.Defense(); st.Dropped < 1000 {
		t.Fatalf("Dropped = %d, want at least the 1000 half-open entries", st.Dropped)
	}
	if st := tbl.Stats(); st.Entries != uint64(alive(busy)) {
		t.Fatalf("table holds %d entries, lookups find %d", st.Entries, alive(busy)+alive(idle))
	}
}

// TestSynAckEvictable: a SYNACK entry is half-open and gives way to a new
// connection in a full table, as SYN_RECV does.
func TestSynAckEvictable(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 50})
	if err := tbl.SetDefense(Defense{SecureTCP: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		k := v4Key(ProtoTCP, uint32(i), uint16(i), 80)
		if c, res := tbl.Insert(&k, 1, 0, 0, EvSyn); res != Inserted || c.State != SynAck {
			t.Fatalf("insert %d: %v %v", i, res, c.State)
		}
	}
	k := v4Key(ProtoTCP, 999, 9, 80)
	if _, res := tbl.Insert(&k, 1, 0, 0, EvSyn); res != Inserted {
		t.Fatalf("a full table of SYNACK entries refused a new connection: %v", res)
	}
}

// TestTodropEntryRate: todrop_entry drops an idle entry with i packets
// once in i of the times it meets one, and never one refreshed within
// 60 s or with more than 8 packets.
func TestTodropEntryRate(t *testing.T) {
	clk := new(ManualClock)
	tbl := newTestTable(t, Config{Capacity: 10, Clock: clk})
	clk.Advance(time.Hour)
	now := tbl.now()
	est := tbl.timeouts.of(Established)
	idle := makeMeta(0, statusLive, Established, now-61_000+est)  // refreshed 61 s ago
	fresh := makeMeta(0, statusLive, Established, now-59_000+est) // 59 s ago
	for i := 1; i <= 9; i++ {
		ports := uint64(i - 1) // the count excludes the first packet
		drops := 0
		for range 36 {
			if tbl.todropEntry(idle, ports, now) {
				drops++
			}
			if tbl.todropEntry(fresh, ports, now) {
				t.Fatalf("%d packets, refreshed 59 s ago: dropped", i)
			}
		}
		want := 0
		if i <= 8 {
			want = (36 + i - 1) / i // the first one met goes, then every i-th
		}
		if drops != want {
			t.Errorf("%d packets: %d of 36 dropped, want %d", i, drops, want)
		}
	}
}

// TestPacketCountOnlyWithDropEntry: with drop_entry 0 a new connection's
// packets never write its packet count (nobody reads it), and it counts
// as more than 8 packets should drop_entry come on later; a connection
// made while drop_entry is on counts its packets exactly.
func TestPacketCountOnlyWithDropEntry(t *testing.T) {
	clk := new(ManualClock)
	tbl := newTestTable(t, Config{Capacity: 100, Clock: clk})
	ports := func(c Conn) uint64 { return tbl.conns.entry(uint32(c.ref>>32) - 1).ports.Load() }
	k := v4Key(ProtoTCP, 1, 1000, 80)
	c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
	before := ports(c)
	for range 3 {
		if r := tbl.Touch(&c, &k, EvAck); r != Hit {
			t.Fatalf("touch = %v", r)
		}
	}
	if p := ports(c); p != before || inPackets(p) != 9 {
		t.Fatalf("drop_entry 0: ports word %#x after 3 packets, was %#x (count %d, want untouched, counted as 9)", p, before, inPackets(p))
	}
	if err := tbl.SetDefense(Defense{DropEntry: 1}); err != nil {
		t.Fatal(err)
	}
	k2 := v4Key(ProtoTCP, 2, 1000, 80)
	c2, _ := tbl.Insert(&k2, 1, 0, 0, EvSyn)
	for i := 2; i <= 11; i++ {
		tbl.Touch(&c2, &k2, EvAck)
		if got, want := inPackets(ports(c2)), min(i, 9); got != want {
			t.Fatalf("drop_entry 1: count %d after %d packets, want %d", got, i, want)
		}
	}
	// Both idle past 60 s and the slack: drop_entry (on from now, mode
	// 3) takes a few-packet entry made while it was on, never the one
	// made before, which counts as more than 8 packets.
	k3 := v4Key(ProtoTCP, 3, 1000, 80)
	c3, _ := tbl.Insert(&k3, 1, 0, 0, EvSyn)
	tbl.Touch(&c3, &k3, EvAck)
	clk.Advance(61*time.Second + slackOf(DefaultTimeouts().Established))
	if err := tbl.SetDefense(Defense{DropEntry: 3}); err != nil {
		t.Fatal(err)
	}
	for range 3000 {
		tbl.DefenseTick()
	}
	if _, ok := tbl.Lookup(&k); !ok {
		t.Fatal("a connection made while drop_entry was 0 was dropped for its packet count")
	}
	if _, ok := tbl.Lookup(&k3); ok {
		t.Fatal("an idle two-packet connection made while drop_entry was on survived 3000 ticks")
	}
}

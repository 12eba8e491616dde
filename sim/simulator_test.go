package sim

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/vs"
)

var vip = netip.MustParseAddr("198.19.0.1")

// table returns one TCP (or UDP) service on 198.19.0.1:80 with real servers
// 198.18.1.1, 198.18.1.2, ... of the given weights.
func table(t testing.TB, proto vs.Proto, schedName string, weights ...int32) *vs.Table {
	t.Helper()
	s := vs.Service{Key: vs.Key{Proto: proto, Addr: vip, Port: 80}, Sched: schedName}
	// Added last first: the kernel's list is newest first, so the
	// schedulers meet 198.18.1.1, .2, .3 in that order, weights[0] first.
	for i := len(weights) - 1; i >= 0; i-- {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(1 + i)}), Port: 80, Weight: weights[i]})
	}
	tb := &vs.Table{}
	if err := tb.AddService(s); err != nil {
		t.Fatal(err)
	}
	return tb
}

func persistent(tb *vs.Table, timeout uint32, mask string) *vs.Table {
	s := &tb.Services[0]
	s.Persistent, s.Timeout = true, timeout
	if mask != "" {
		s.Netmask = netip.MustParseAddr(mask)
	}
	return tb
}

// run simulates trace (a multi-line string) and returns the decisions.
func run(t testing.TB, tb *vs.Table, trace string, opt Options) (string, *Summary) {
	t.Helper()
	var out bytes.Buffer
	sum, err := Run(tb, strings.NewReader(trace), &out, opt)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return out.String(), sum
}

func TestRunDecisions(t *testing.T) {
	cases := []struct {
		name  string
		tbl   *vs.Table
		trace string
		want  string
		drops map[string]uint64
	}{{
		// rr continues from its last pick; ACKs of known flows and a
		// stray ACK without a connection write nothing.
		name: "rr",
		tbl:  table(t, vs.TCP, "rr", 1, 1, 1),
		trace: `# a comment, then a blank line

0,tcp,198.18.64.1,40000,198.19.0.1,80,S
1,tcp,198.18.64.1,40000,198.19.0.1,80,A
2,tcp,198.18.64.2,40000,198.19.0.1,80,S
3,tcp,198.18.64.3,40000,198.19.0.1,80,S
3,tcp,198.18.64.9,50000,198.19.0.1,80,A
4,tcp,198.18.64.4,40000,198.19.0.1,80,S
`,
		want: `0,tcp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:80
2,tcp,198.18.64.2,40000,198.19.0.1,80,198.18.1.2:80
3,tcp,198.18.64.3,40000,198.19.0.1,80,198.18.1.3:80
4,tcp,198.18.64.4,40000,198.19.0.1,80,198.18.1.1:80
`,
		drops: map[string]uint64{"no_connection": 1},
	}, {
		// ip_vs_wrr.c with weights 4,3,2: di 1, mw 4, cw 4,3,2,1 gives
		// A A B A B C A B C.
		name:  "wrr 4,3,2",
		tbl:   table(t, vs.TCP, "wrr", 4, 3, 2),
		trace: syns(0, 9),
		want: decisions(0, 9, func(i int) string {
			return "198.18.1." + string("112123123"[i]) + ":80"
		}),
	}, {
		// -p with a /32 mask: one client's connections stick to one
		// server whatever its port; another client gets the next pick.
		name: "persistence -p",
		tbl:  persistent(table(t, vs.TCP, "rr", 1, 1, 1), 300, ""),
		trace: `0,tcp,198.18.64.1,40000,198.19.0.1,80,S
10,tcp,198.18.64.1,40001,198.19.0.1,80,S
20,tcp,198.18.64.2,40000,198.19.0.1,80,S
30,tcp,198.18.64.1,40002,198.19.0.1,80,S
40,tcp,198.18.64.2,40001,198.19.0.1,80,S
`,
		want: `0,tcp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:80
10,tcp,198.18.64.1,40001,198.19.0.1,80,198.18.1.1:80
20,tcp,198.18.64.2,40000,198.19.0.1,80,198.18.1.2:80
30,tcp,198.18.64.1,40002,198.19.0.1,80,198.18.1.1:80
40,tcp,198.18.64.2,40001,198.19.0.1,80,198.18.1.2:80
`,
	}, {
		// -M 255.255.255.0: the /24 shares a template; another /24 does
		// not. Long after the connections and the template's 300 s have
		// expired, the /24 is scheduled afresh (rr's next pick, .3, not
		// the template's .1).
		name: "persistence -M /24 and expiry",
		tbl:  persistent(table(t, vs.TCP, "rr", 1, 1, 1), 300, "255.255.255.0"),
		trace: `0,tcp,198.18.64.1,40000,198.19.0.1,80,S
5,tcp,198.18.64.200,40000,198.19.0.1,80,S
7,tcp,198.18.65.1,40000,198.19.0.1,80,S
400000,tcp,198.18.64.7,40000,198.19.0.1,80,S
`,
		want: `0,tcp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:80
5,tcp,198.18.64.200,40000,198.19.0.1,80,198.18.1.1:80
7,tcp,198.18.65.1,40000,198.19.0.1,80,198.18.1.2:80
400000,tcp,198.18.64.7,40000,198.19.0.1,80,198.18.1.3:80
`,
	}, {
		// Expiry reaches the load counters through the sweep: after the
		// first connection's 60 s SYN_RECV timeout, .1 is idle again and
		// wlc's first-of-equals picks it; unswept, it would pick .2.
		name: "expiry frees the server for wlc",
		tbl:  table(t, vs.TCP, "wlc", 1, 1),
		trace: `0,tcp,198.18.64.1,40000,198.19.0.1,80,S
100000,tcp,198.18.64.2,40000,198.19.0.1,80,S
100001,tcp,198.18.64.3,40000,198.19.0.1,80,S
`,
		want: `0,tcp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:80
100000,tcp,198.18.64.2,40000,198.19.0.1,80,198.18.1.1:80
100001,tcp,198.18.64.3,40000,198.19.0.1,80,198.18.1.2:80
`,
	}, {
		// A port-0 service is persistent across every port of the VIP:
		// one template per client, whichever port it connects to.
		name: "persistence port 0",
		tbl: func() *vs.Table {
			tb := table(t, vs.TCP, "rr", 1, 1)
			tb.Services[0].Port, tb.Services[0].Persistent, tb.Services[0].Timeout = 0, true, 300
			for i := range tb.Services[0].Reals {
				tb.Services[0].Reals[i].Port = 0
			}
			return tb
		}(),
		trace: `0,tcp,198.18.64.1,40000,198.19.0.1,80,S
1,tcp,198.18.64.1,40001,198.19.0.1,443,S
2,tcp,198.18.64.2,40000,198.19.0.1,443,S
3,tcp,198.18.64.2,40001,198.19.0.1,22,S
`,
		want: `0,tcp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:0
1,tcp,198.18.64.1,40001,198.19.0.1,443,198.18.1.1:0
2,tcp,198.18.64.2,40000,198.19.0.1,443,198.18.1.2:0
3,tcp,198.18.64.2,40001,198.19.0.1,22,198.18.1.2:0
`,
	}, {
		// Weight 0 quiesces: the existing flow to .2 keeps flowing
		// (no drop), new connections skip it.
		name: "weight 0 quiesces mid-trace",
		tbl:  table(t, vs.TCP, "rr", 1, 1, 1),
		trace: syns(0, 3) + `100,admin,-e -t 198.19.0.1:80 -r 198.18.1.2:80 -w 0
110,tcp,198.18.64.2,40000,198.19.0.1,80,A
120,tcp,198.18.64.10,40000,198.19.0.1,80,S
130,tcp,198.18.64.11,40000,198.19.0.1,80,S
140,tcp,198.18.64.12,40000,198.19.0.1,80,S
`,
		want: decisions(0, 3, func(i int) string { return "198.18.1." + string("123"[i]) + ":80" }) +
			`120,tcp,198.18.64.10,40000,198.19.0.1,80,198.18.1.1:80
130,tcp,198.18.64.11,40000,198.19.0.1,80,198.18.1.3:80
140,tcp,198.18.64.12,40000,198.19.0.1,80,198.18.1.1:80
`,
	}, {
		// A deleted dest's flows are dropped, never rescheduled: the ACK
		// and even a SYN of its flow write nothing and count as
		// dest_unavailable, while a new flow goes to the survivor.
		name: "deleted dest drops its flows",
		tbl:  table(t, vs.TCP, "rr", 1, 1),
		trace: syns(0, 2) + `50,admin,-d -t 198.19.0.1:80 -r 198.18.1.2:80
60,tcp,198.18.64.2,40000,198.19.0.1,80,A
61,tcp,198.18.64.2,40000,198.19.0.1,80,S
62,tcp,198.18.64.1,40000,198.19.0.1,80,A
70,tcp,198.18.64.3,40000,198.19.0.1,80,S
`,
		want: decisions(0, 2, func(i int) string { return "198.18.1." + string("12"[i]) + ":80" }) +
			"70,tcp,198.18.64.3,40000,198.19.0.1,80,198.18.1.1:80\n",
		drops: map[string]uint64{"dest_unavailable": 2},
	}, {
		// UDP: the first datagram of a flow is a new connection; the
		// next ones follow it until the 300 s UDP timeout, after which
		// the same flow is scheduled again (rr moves on).
		name: "udp",
		tbl:  table(t, vs.UDP, "rr", 1, 1),
		trace: `0,udp,198.18.64.1,5353,198.19.0.1,80,-
1000,udp,198.18.64.1,5353,198.19.0.1,80,-
2000,udp,198.18.64.2,5353,198.19.0.1,80,-
250000,udp,198.18.64.1,5353,198.19.0.1,80,-
560000,udp,198.18.64.1,5353,198.19.0.1,80,-
`,
		want: `0,udp,198.18.64.1,5353,198.19.0.1,80,198.18.1.1:80
2000,udp,198.18.64.2,5353,198.19.0.1,80,198.18.1.2:80
560000,udp,198.18.64.1,5353,198.19.0.1,80,198.18.1.1:80
`,
	}, {
		// --set changes the UDP timeout to 5 s: the same flow 10 s later
		// is a new connection.
		name: "admin --set",
		tbl:  table(t, vs.UDP, "rr", 1, 1),
		trace: `0,admin,--set 0 0 5
1,udp,198.18.64.1,5353,198.19.0.1,80,-
10001,udp,198.18.64.1,5353,198.19.0.1,80,-
`,
		want: `1,udp,198.18.64.1,5353,198.19.0.1,80,198.18.1.1:80
10001,udp,198.18.64.1,5353,198.19.0.1,80,198.18.1.2:80
`,
	}, {
		// Packets for a VIP or port no service has are dropped by the
		// lookup and are not connections: no line.
		name: "no such service",
		tbl:  table(t, vs.TCP, "rr", 1),
		trace: `0,tcp,198.18.64.1,40000,198.19.0.1,80,S
1,tcp,198.18.64.2,40000,198.19.0.2,80,S
2,tcp,198.18.64.3,40000,198.19.0.1,81,S
3,udp,198.18.64.4,40000,198.19.0.1,80,-
`,
		want:  "0,tcp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:80\n",
		drops: map[string]uint64{"no_service": 3},
	}, {
		name:  "no dest: dropped decision",
		tbl:   table(t, vs.TCP, "wlc", 0, 0),
		trace: syns(0, 2),
		want:  decisions(0, 2, func(int) string { return "-" }),
		drops: map[string]uint64{"no_dest": 2},
	}, {
		// An admin event that adds a dest: wlc sends new work to the
		// empty server until it catches up.
		name: "added dest",
		tbl:  table(t, vs.TCP, "wlc", 1),
		trace: syns(0, 2) + `5,admin,-a -t 198.19.0.1:80 -r 198.18.1.2:80 -w 1
` + syns(10, 3),
		// .2 goes to the head of the list, so it wins the tie at 2:2 too.
		want: decisions(0, 2, func(int) string { return "198.18.1.1:80" }) +
			decisions(10, 3, func(i int) string { return "198.18.1.2:80" }),
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, sum := run(t, c.tbl, c.trace, Options{})
			if got != c.want {
				t.Errorf("decisions:\n%s\nwant:\n%s", got, c.want)
			}
			for r, n := range c.drops {
				if sum.Drops[r] != n {
					t.Errorf("drops[%s] = %d, want %d (all: %v)", r, sum.Drops[r], n, sum.Drops)
				}
			}
		})
	}
}

// syns returns n SYN lines at times start, start+1, ..., from clients
// 198.18.64.1.. port 40000.
func syns(start, n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(itoa(start+i) + ",tcp,198.18.64." + itoa(start+i+1) + ",40000,198.19.0.1,80,S\n")
	}
	return b.String()
}

func decisions(start, n int, real func(i int) string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(itoa(start+i) + ",tcp,198.18.64." + itoa(start+i+1) + ",40000,198.19.0.1,80," + real(i) + "\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestRunSummary(t *testing.T) {
	// wrr 1,3: of 8 connections, .1 takes 2 and .2 takes 6, the weight
	// shares exactly. Then .1's weight goes to 3 and 8 more arrive: the
	// weight share of .1 over all 16 is (8*1/4 + 8*3/6)/16 = 6/16.
	trace := syns(0, 8) + "20,admin,-e -t 198.19.0.1:80 -r 198.18.1.1:80 -w 3\n" + syns(30, 8)
	_, sum := run(t, table(t, vs.TCP, "wrr", 1, 3), trace, Options{})
	if sum.Conns != 16 || sum.Dropped != 0 || sum.Packets != 16 || sum.Admin != 1 || sum.Start != 0 || sum.End != 37 {
		t.Fatalf("counts: %+v", sum)
	}
	if len(sum.Services) != 1 || len(sum.Services[0].Servers) != 2 {
		t.Fatalf("services: %+v", sum.Services)
	}
	s := sum.Services[0]
	a, b := s.Servers[0], s.Servers[1]
	if a.Conns+b.Conns != 16 || a.Conns != 2+4 {
		t.Errorf("conns %d, %d: want 6, 10", a.Conns, b.Conns)
	}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if !near(a.WeightShare, 6.0/16) || !near(b.WeightShare, 10.0/16) {
		t.Errorf("weight shares %v, %v: want 6/16, 10/16", a.WeightShare, b.WeightShare)
	}
	if !near(a.Share, 6.0/16) || !near(b.Share, 10.0/16) {
		t.Errorf("shares %v, %v", a.Share, b.Share)
	}
	// Every connection is still open (SYN_RECV counts as active).
	if a.PeakActive != 6 || b.PeakActive != 10 {
		t.Errorf("peak active %d, %d: want 6, 10", a.PeakActive, b.PeakActive)
	}
	if !near(s.Imbalance.MaxMean, 1) || !near(s.Imbalance.CV, 0) {
		t.Errorf("imbalance %+v: want exact weighting", s.Imbalance)
	}
	if s.Sched != "wrr" || a.Weight != 3 || !a.Present {
		t.Errorf("service %+v", s)
	}
	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"new connections 16", "198.18.1.1:80", "37.50%", "max/mean 1.0000  cv 0.0000", "line 9 at 20 ms"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestImbalance(t *testing.T) {
	// rr over 2 servers with weights 1 and 3 ignores the weights: shares
	// 1/2, 1/2 against 1/4, 3/4 give ratios 2 and 2/3, mean 4/3.
	_, sum := run(t, table(t, vs.TCP, "rr", 1, 3), syns(0, 8), Options{})
	im := sum.Services[0].Imbalance
	if math.Abs(im.MaxMean-1.5) > 1e-9 || math.Abs(im.CV-0.5) > 1e-9 {
		t.Errorf("imbalance %+v: want max/mean 1.5, cv 0.5", im)
	}
}

func TestPeakActiveFollowsExpiry(t *testing.T) {
	// Three flows open and close (ACK, then FIN: FIN_WAIT, inactive);
	// then three more: the peak stays 3 because the first ones were no
	// longer active, and the active count goes back to zero.
	var b strings.Builder
	for i := range 3 {
		b.WriteString(itoa(i) + ",tcp,198.18.64." + itoa(i+1) + ",40000,198.19.0.1,80,S\n")
	}
	for i := range 3 {
		b.WriteString(itoa(10+i) + ",tcp,198.18.64." + itoa(i+1) + ",40000,198.19.0.1,80,A\n")
		b.WriteString(itoa(10+i) + ",tcp,198.18.64." + itoa(i+1) + ",40000,198.19.0.1,80,FA\n")
	}
	for i := range 3 {
		b.WriteString(itoa(20+i) + ",tcp,198.18.64." + itoa(i+10) + ",40000,198.19.0.1,80,S\n")
	}
	_, sum := run(t, table(t, vs.TCP, "rr", 1), b.String(), Options{})
	if p := sum.Services[0].Servers[0].PeakActive; p != 3 {
		t.Errorf("peak active %d, want 3", p)
	}
	ser := sum.Series
	if len(ser.TimesMS) == 0 || ser.Active[0][len(ser.Active[0])-1] != 3 {
		t.Errorf("series %+v", ser)
	}
}

func TestAdminMoved(t *testing.T) {
	// rr over A, B, C with six live flows; deleting C. The probe before
	// assigns the sorted flows A B C A B C, after A B A B A B: positions
	// 3..6 differ, 4 of 6 moved; the two flows on C are orphaned.
	trace := syns(0, 6) + "10,admin,-d -t 198.19.0.1:80 -r 198.18.1.3:80\n"
	_, sum := run(t, table(t, vs.TCP, "rr", 1, 1, 1), trace, Options{})
	if len(sum.AdminEvents) != 1 {
		t.Fatalf("admin events %+v", sum.AdminEvents)
	}
	a := sum.AdminEvents[0]
	if a.Flows != 6 || a.FlowsMoved != 4 || a.FlowsOrphaned != 2 || a.Templates != 0 || a.Line != 7 || a.TimeMS != 10 {
		t.Errorf("effect %+v: want 6 flows, 4 moved, 2 orphaned", a)
	}
	if math.Abs(a.FlowsMovedFrac()-4.0/6) > 1e-9 {
		t.Errorf("moved fraction %v", a.FlowsMovedFrac())
	}
}

func TestAdminMovedTemplates(t *testing.T) {
	// Persistent rr with 4 clients on A B C A; quiescing B. Templates are
	// probed with their keys: before A B C A, after A C A C: 3 of 4
	// moved; nothing is orphaned (B still exists).
	trace := syns(0, 4) + "10,admin,-e -t 198.19.0.1:80 -r 198.18.1.2:80 -w 0\n"
	_, sum := run(t, persistent(table(t, vs.TCP, "rr", 1, 1, 1), 300, ""), trace, Options{})
	a := sum.AdminEvents[0]
	if a.Templates != 4 || a.TemplatesMoved != 3 || a.TemplatesOrphaned != 0 || a.Flows != 4 || a.FlowsMoved != 3 {
		t.Errorf("effect %+v", a)
	}
}

func TestAdminMovedMaglev(t *testing.T) {
	// Maglev's minimal disruption seen through the simulator: removing
	// one of 4 equal servers moves about 1/4 of 2000 live flows, which is
	// exactly the orphaned share plus at most 1% of the table.
	var b strings.Builder
	for i := range 2000 {
		b.WriteString(itoa(i) + ",tcp,198.18." + itoa(64+i/250) + "." + itoa(1+i%250) + ",40000,198.19.0.1,80,S\n")
	}
	b.WriteString("3000,admin,-d -t 198.19.0.1:80 -r 198.18.1.4:80\n")
	_, sum := run(t, table(t, vs.TCP, "mh", 1, 1, 1, 1), b.String(), Options{})
	a := sum.AdminEvents[0]
	if a.Flows != 2000 {
		t.Fatalf("flows %d", a.Flows)
	}
	if a.FlowsMoved < a.FlowsOrphaned || a.FlowsMoved > a.FlowsOrphaned+20 {
		t.Errorf("moved %d, orphaned %d: mh should move the removed server's flows and almost nothing else", a.FlowsMoved, a.FlowsOrphaned)
	}
	if f := a.FlowsMovedFrac(); math.Abs(f-0.25) > 0.05 {
		t.Errorf("moved fraction %.3f, want about 1/4", f)
	}
}

func TestRunErrors(t *testing.T) {
	ok := "0,tcp,198.18.64.1,40000,198.19.0.1,80,S\n"
	cases := []struct{ line, want string }{
		{"x,tcp,198.18.64.1,40000,198.19.0.1,80,S", `time_ms "x"`},
		{"-5,tcp,198.18.64.1,40000,198.19.0.1,80,S", `time_ms "-5"`},
		{"5,icmp,198.18.64.1,40000,198.19.0.1,80,S", `proto "icmp"`},
		{"5,tcp,198.18.64,40000,198.19.0.1,80,S", `client_ip "198.18.64"`},
		{"5,tcp,198.18.064.1,40000,198.19.0.1,80,S", `client_ip "198.18.064.1"`},
		{"5,tcp,2001:2::1,40000,198.19.0.1,80,S", "client_ip 2001:2::1 and vip 198.19.0.1: must be of one family"},
		{"5,tcp,198.18.64.1,40000,2001:2::1,80,S", "client_ip 198.18.64.1 and vip 2001:2::1: must be of one family"},
		{"5,tcp,[2001:2::99],40000,2001:2::1,80,S", `client_ip "[2001:2::99]": must be an IPv4 address (dotted quad) or an IPv6 address (without brackets or zone)`},
		{"5,tcp,fe80::99%eth0,40000,2001:2::1,80,S", `client_ip "fe80::99%eth0"`},
		{"5,tcp,2001:2::99,40000,2001:2::1::,80,S", `vip "2001:2::1::"`},
		{"5,tcp,198.18.64.1,0,198.19.0.1,80,S", `client_port "0"`},
		{"5,tcp,198.18.64.1,70000,198.19.0.1,80,S", `client_port "70000"`},
		{"5,tcp,198.18.64.1,40000,198.19.0.256,80,S", `vip "198.19.0.256"`},
		{"5,tcp,198.18.64.1,40000,198.19.0.1,http,S", `vport "http"`},
		{"5,tcp,198.18.64.1,40000,198.19.0.1,80,SX", `flags "SX"`},
		{"5,tcp,198.18.64.1,40000,198.19.0.1,80,SS", `flags "SS"`},
		{"5,tcp,198.18.64.1,40000,198.19.0.1,80,-", `flags "-"`},
		{"5,udp,198.18.64.1,40000,198.19.0.1,80,S", `flags "S"`},
		{"5,tcp,198.18.64.1,40000,198.19.0.1,80", "6 fields"},
		{"5,tcp,198.18.64.1,40000,198.19.0.1,80,S,extra", "8 fields"},
		{"5,admin,", "without ipvsadm arguments"},
		{"5,admin,--bogus", `admin "--bogus"`},
		{"5,admin,-d -t 198.19.0.1:80 -r 198.18.9.9:80", "No such destination"},
		{"5,admin,-L", "does not change the service table"},
	}
	for _, c := range cases {
		_, err := Run(table(t, vs.TCP, "rr", 1), strings.NewReader(ok+"# comment\n"+c.line+"\n"), io.Discard, Options{})
		if err == nil {
			t.Errorf("%q: no error", c.line)
			continue
		}
		if !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %q: want line 3 and %q", c.line, err, c.want)
		}
	}
	_, err := Run(table(t, vs.TCP, "rr", 1), strings.NewReader("10,tcp,198.18.64.1,40000,198.19.0.1,80,S\n9,tcp,198.18.64.1,40000,198.19.0.1,80,A\n"), io.Discard, Options{})
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "time order") {
		t.Errorf("out of order: %v", err)
	}
	if _, err := Run(table(t, vs.TCP, "rr", 1), strings.NewReader(""), io.Discard, Options{MaxSamples: 1}); err == nil {
		t.Error("max samples 1 accepted")
	}
}

func TestRunLeavesTableAlone(t *testing.T) {
	tb := table(t, vs.TCP, "rr", 1, 1)
	run(t, tb, "0,admin,-d -t 198.19.0.1:80 -r 198.18.1.2:80\n", Options{})
	if len(tb.Services[0].Reals) != 2 {
		t.Fatal("Run changed the caller's table")
	}
}

func TestTwosSeedDeterminism(t *testing.T) {
	tb := func() *vs.Table { return table(t, vs.TCP, "twos", 1, 2, 3, 4) }
	a, _ := run(t, tb(), syns(0, 50), Options{Seed: 7})
	b, _ := run(t, tb(), syns(0, 50), Options{Seed: 7})
	if a != b {
		t.Error("same seed, different decisions")
	}
}

func TestFrameParsesWithGopacketChecksums(t *testing.T) {
	for _, c := range [][2]string{{"198.18.64.1", "198.19.0.1"}, {"2001:2:0:64::1", "2001:2::1"}} {
		ev := Event{Proto: 6, Client: netip.MustParseAddr(c[0]), CPort: 40000, VIP: netip.MustParseAddr(c[1]), VPort: 80, Flags: 0x12}
		checkFrame(t, &ev)
		ev.Proto, ev.Flags = 17, 0
		checkFrame(t, &ev)
	}
}

func TestPacketAllocs(t *testing.T) {
	s, err := newSimulator(table(t, vs.TCP, "wlc", 1, 2, 3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(io.Discard)
	var ev Event
	port := 1
	syn := []byte("0,tcp,198.18.64.1,40000,198.19.0.1,80,S")
	ack := []byte("1,tcp,198.18.64.1,40000,198.19.0.1,80,A")
	step := func(line []byte) {
		if err := parseEvent(line, 1, &ev); err != nil {
			t.Fatal(err)
		}
		s.advance(ev.TimeMS)
		s.packet(&ev, w)
	}
	step(syn)
	if n := testing.AllocsPerRun(1000, func() { step(ack) }); n != 0 {
		t.Errorf("established flow: %v allocs per event", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		port++
		ev := ev
		ev.CPort, ev.Flags, ev.TimeMS = uint16(port), 0x02, 1
		s.packet(&ev, w)
	}); n != 0 {
		t.Errorf("new connection: %v allocs per event", n)
	}
	// An IPv6 line parses without allocating too, and its frame goes
	// through the processor (dropped here: the table has no IPv6 service).
	syn6 := []byte("2,tcp,2001:2:0:64::1,40000,2001:2::1,80,S")
	if n := testing.AllocsPerRun(1000, func() { step(syn6) }); n != 0 {
		t.Errorf("IPv6 event: %v allocs per event", n)
	}
}

func TestParseAdminKeepsCommas(t *testing.T) {
	var ev Event
	line := "12, admin, -E -t 198.19.0.1:80 -s sh -b sh-fallback,sh-port "
	if err := parseEvent([]byte(line), 4, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.TimeMS != 12 || ev.Admin != "-E -t 198.19.0.1:80 -s sh -b sh-fallback,sh-port" || ev.Line != 4 {
		t.Fatalf("event %+v", ev)
	}
	// and the simulator applies it: the service becomes sh with both flags
	_, sum := run(t, table(t, vs.TCP, "rr", 1, 1), line+"\n"+"13,tcp,198.18.64.1,40000,198.19.0.1,80,S\n", Options{})
	if sum.Services[0].Sched != "sh" || sum.Conns != 1 || sum.Dropped != 0 {
		t.Fatalf("summary %+v", sum.Services)
	}
}

func TestDeletedAndReAdded(t *testing.T) {
	// .2 takes two connections, is deleted (its flows orphaned, still
	// counted active until they expire) and added again with weight 1:
	// one server row, its connections and peak kept across the gap. The
	// re-added .2 is the same dest taken back from the trash
	// (ip_vs_trash_get_dest), so its two old connections count again and
	// the new one makes three.
	trace := syns(0, 4) + `10,admin,-d -t 198.19.0.1:80 -r 198.18.1.2:80
20,admin,-a -t 198.19.0.1:80 -r 198.18.1.2:80 -w 1
` + syns(30, 2)
	out, sum := run(t, table(t, vs.TCP, "rr", 1, 1), trace, Options{})
	// rr's position was on .2; deleting it moves the position back to .1
	// (ip_vs_rr_del_dest), so the re-added .2 is next.
	if !strings.HasSuffix(out, "30,tcp,198.18.64.31,40000,198.19.0.1,80,198.18.1.2:80\n31,tcp,198.18.64.32,40000,198.19.0.1,80,198.18.1.1:80\n") {
		t.Errorf("decisions:\n%s", out)
	}
	ss := sum.Services[0].Servers
	if len(ss) != 2 || ss[1].Conns != 3 || ss[1].PeakActive != 3 || !ss[1].Present {
		t.Errorf("servers %+v", ss)
	}
	if a := sum.AdminEvents[0]; a.Flows != 4 || a.FlowsOrphaned != 2 {
		t.Errorf("delete: %+v", a)
	}
	if a := sum.AdminEvents[1]; a.Flows != 2 || a.FlowsOrphaned != 0 {
		t.Errorf("add: %+v (the orphans are no longer counted)", a)
	}
}

// TestConnExpireExactInSim follows ip_vs_conn_expire's per-connection
// timers: the simulator releases a connection at its expiry millisecond,
// its timeout plus the table's slack (timeout/64), so lc at 1015 ms sees
// the first connection (SYN_RECV, 1 s here) gone, and at 1014 ms not.
// Three SYNs at 0, 1, 2 ms put two connections on the first server and
// one on the second; at 1015 ms the first has expired and the servers
// tie, so the fourth goes to the first server again (with an expiry seen
// late it would see 2 against 1 and pick the second, as it does at 1014).
func TestConnExpireExactInSim(t *testing.T) {
	to := conntrack.DefaultTimeouts()
	to.SynRecv = time.Second
	for _, c := range []struct {
		at   string
		gone bool
	}{{"1014", false}, {"1015", true}} {
		trace := syns(0, 3) + c.at + ",tcp,198.18.64.9,40000,198.19.0.1,80,S\n"
		out, _ := run(t, table(t, vs.TCP, "lc", 1, 1), trace, Options{Timeouts: to})
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 {
			t.Fatalf("decisions:\n%s", out)
		}
		first := lines[0][strings.LastIndexByte(lines[0], ',')+1:]
		if got := lines[3][strings.LastIndexByte(lines[3], ',')+1:]; (got == first) != c.gone {
			t.Fatalf("at %s ms lc chose %s; the first server is %s, and the connection due at 1015 ms gone: %v:\n%s", c.at, got, first, c.gone, out)
		}
	}
}

// TestSimTakesSysctls: the simulator runs the processor under the sysctls
// it is given; with conn_reuse_mode 0 a SYN on a TIME_WAIT connection is
// no new decision.
func TestSimTakesSysctls(t *testing.T) {
	trace := "0,tcp,198.18.64.1,40000,198.19.0.1,80,S\n1,tcp,198.18.64.1,40000,198.19.0.1,80,F\n2,tcp,198.18.64.1,40000,198.19.0.1,80,S\n"
	out, _ := run(t, table(t, vs.TCP, "rr", 1, 1), trace, Options{})
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("default conn_reuse_mode 1: %d decisions, want 2:\n%s", n, out)
	}
	off := conntrack.Sysctls{}
	out, _ = run(t, table(t, vs.TCP, "rr", 1, 1), trace, Options{Sysctls: &off})
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("conn_reuse_mode 0: %d decisions, want 1:\n%s", n, out)
	}
	bad := conntrack.Sysctls{ConnReuseMode: 9}
	if _, err := Run(table(t, vs.TCP, "rr", 1), strings.NewReader(""), io.Discard, Options{Sysctls: &bad}); err == nil || !strings.Contains(err.Error(), "conn_reuse_mode = 9") {
		t.Fatalf("bad sysctls: %v", err)
	}
}

// TestFullTableSameSeedSameOutput: with a table too small for the trace,
// which entry an insert evicts follows the table's hash; the hash key comes
// from the seed, so the same seed gives the same decisions and summary.
func TestFullTableSameSeedSameOutput(t *testing.T) {
	var trace bytes.Buffer
	w := Workload{Seed: 3, Length: 20 * time.Second, Rate: 400, MeanDuration: 30 * time.Second, Clients: 5000}
	if _, err := Generate(&trace, w); err != nil {
		t.Fatal(err)
	}
	runOnce := func() (string, string) {
		var out, sum bytes.Buffer
		s, err := Run(table(t, vs.TCP, "wlc", 1, 2, 3), bytes.NewReader(trace.Bytes()), &out, Options{Seed: 9, Capacity: 512})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WriteText(&sum); err != nil {
			t.Fatal(err)
		}
		return out.String(), sum.String()
	}
	out1, sum1 := runOnce()
	for range 3 {
		out2, sum2 := runOnce()
		if out1 != out2 || sum1 != sum2 {
			t.Fatalf("same seed, different output:\n%s\n---\n%s", sum1, sum2)
		}
	}
	if !strings.Contains(sum1, "198.18.1.") {
		t.Fatalf("summary names no server:\n%s", sum1)
	}
}

// TestSimSloppyTCPFailover replays a failover: the same mh table on two
// simulated directors. Connections opened with SYNs on the first continue
// on the second with only their ACKs: with sloppy_tcp each ACK is a new
// decision naming the real server the SYN got on the first director, and
// without it every ACK is dropped as no_connection and decides nothing.
func TestSimSloppyTCPFailover(t *testing.T) {
	const n = 40
	var syn, ack strings.Builder
	for i := range n {
		c := "198.18.64." + itoa(i+1) + "," + itoa(41000+i) + ",198.19.0.1,80,"
		syn.WriteString(itoa(i) + ",tcp," + c + "S\n")
		ack.WriteString(itoa(i) + ",tcp," + c + "A\n")
	}
	master, _ := run(t, table(t, vs.TCP, "mh", 1, 1, 1), syn.String(), Options{})
	if got := strings.Count(master, "\n"); got != n {
		t.Fatalf("master: %d decisions, want %d:\n%s", got, n, master)
	}
	servers := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(master), "\n") {
		servers[l[strings.LastIndexByte(l, ',')+1:]] = true
	}
	if len(servers) < 2 || servers["-"] {
		t.Fatalf("mh spread the flows over %v; the test needs at least two servers:\n%s", servers, master)
	}
	sloppy := conntrack.DefaultSysctls()
	sloppy.SloppyTCP = true
	backup, _ := run(t, table(t, vs.TCP, "mh", 1, 1, 1), ack.String(), Options{Sysctls: &sloppy})
	if backup != master {
		t.Fatalf("sloppy_tcp backup decided\n%s\nthe master decided\n%s", backup, master)
	}
	strict, sum := run(t, table(t, vs.TCP, "mh", 1, 1, 1), ack.String(), Options{})
	if strict != "" {
		t.Fatalf("without sloppy_tcp the ACKs decided:\n%s", strict)
	}
	if got := sum.Drops["no_connection"]; got != n {
		t.Fatalf("without sloppy_tcp: no_connection = %d, want %d (summary %+v)", got, n, sum.Drops)
	}
}

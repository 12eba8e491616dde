package sim

import (
	"strings"
	"testing"

	"github.com/afvs/afvs/vs"
)

// natTable is table with every real server a VS/NAT one on port 8080.
func natTable(t testing.TB, weights ...int32) *vs.Table {
	tb := table(t, vs.TCP, "rr", weights...)
	for i := range tb.Services[0].Reals {
		r := &tb.Services[0].Reals[i]
		r.Fwd, r.Port = vs.Masq, 8080
	}
	return tb
}

// TestNATReplies: the simulator runs VS/NAT services, decisions naming
// the real server's own port, and a trace's replies ("<" flags) move the
// connection by IPVS's OUTPUT table. A client FIN on an ESTABLISHED NAT
// connection is CLOSE_WAIT, whose 60 s timeout ends it where the DR
// (input-only) FIN_WAIT would last 120 s; a reply's FIN then makes it
// TIME_WAIT. Replies of flows without a NAT connection are dropped and
// counted.
func TestNATReplies(t *testing.T) {
	trace := `0,tcp,198.18.64.1,40000,198.19.0.1,80,S
1,tcp,198.18.64.1,40000,198.19.0.1,80,<SA
2,tcp,198.18.64.1,40000,198.19.0.1,80,A
3,tcp,198.18.64.1,40000,198.19.0.1,80,FA
61004,tcp,198.18.64.2,40000,198.19.0.1,80,S
61005,tcp,198.18.64.2,40000,198.19.0.1,80,<SA
61006,tcp,198.18.64.2,40000,198.19.0.1,80,A
61007,tcp,198.18.64.2,40000,198.19.0.1,80,<FA
61008,tcp,198.18.64.9,40000,198.19.0.1,80,<A
`
	type counts struct{ active, inactive int32 }
	var got []counts
	opt := Options{Observe: func(st *Step) {
		var c counts
		for _, d := range st.Dests {
			c.active += d.Active
			c.inactive += d.Inactive
		}
		got = append(got, c)
	}}
	out, sum := run(t, natTable(t, 1, 1), trace, opt)
	want := "0,tcp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:8080\n61004,tcp,198.18.64.2,40000,198.19.0.1,80,198.18.1.2:8080\n"
	if out != want {
		t.Fatalf("decisions:\n%s\nwant\n%s", out, want)
	}
	wantCounts := []counts{{1, 0}, {1, 0}, {1, 0}, {0, 1}, // SYN_RECV, SYN_RECV, ESTABLISHED, CLOSE_WAIT
		{1, 0}, {1, 0}, {1, 0}, {0, 1}, {0, 1}} // the first expired at 60003; FIN from the server: FIN_WAIT
	if len(got) != len(wantCounts) {
		t.Fatalf("%d steps", len(got))
	}
	for i := range got {
		if got[i] != wantCounts[i] {
			t.Errorf("after line %d: active/inactive %v, want %v", i+1, got[i], wantCounts[i])
		}
	}
	if sum.Drops["reply_no_connection"] != 0 || sum.Drops["no_service"] != 1 {
		t.Errorf("drops %v: want the stray reply as no_service", sum.Drops)
	}

	// The same trace on DR: the first connection (FIN_WAIT, 120 s) is
	// still there at 61004; replies never reach a DR director's table.
	got = nil
	_, sum = run(t, table(t, vs.TCP, "rr", 1, 1), trace, opt)
	if got[4] != (counts{1, 1}) {
		t.Errorf("DR after line 5: %v, want the first connection still inactive beside the new one", got[4])
	}
	if sum.Drops["no_service"] != 4 {
		t.Errorf("DR drops %v: want the four replies as no_service", sum.Drops)
	}
	if _, err := Run(natTable(t, 1), strings.NewReader("0,tcp,198.18.64.1,40000,198.19.0.1,80,<X\n"), &strings.Builder{}, Options{}); err == nil ||
		!strings.Contains(err.Error(), "leading <") {
		t.Errorf("bad reply flags: %v", err)
	}
}

package control_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane"
)

// TestDefenseInStatusAndMetrics: SYNs the limits drop show in the status's
// SYN drops and in afvs_syn_drops_total, and the defence's levels, fill
// and limits in the status and the gauges.
func TestDefenseInStatusAndMetrics(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1")
	if err := s.Director.SetSYNLimits(dataplane.SYNLimits{PerSource: 1, Burst: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Director.CT.SetDefense(conntrack.Defense{DropEntry: 3, DropPacket: 1, SecureTCP: 1, AmemThresh: 5000, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // one source: 2 pass, 3 over its rate
		s.Director.Feed(frame(t, uint16(3000+i), true, 0))
	}
	st := s.Server.Status()
	if st.SYNDrops["syn_rate_source"] != 3 || st.Drops["syn_rate_source"] != 3 {
		t.Fatalf("syn drops %v, drops[syn_rate_source] %d: want 3", st.SYNDrops, st.Drops["syn_rate_source"])
	}
	d := st.Defense
	// 4096 entries free of 4096 (the fake's table), below amemthresh
	// 5000: the automatic modes are on and read 2.
	if d == nil || d.DropEntry != 3 || !d.DropEntryOn || d.DropPacket != 2 || d.DropRate != 5000/(5000-4096) ||
		d.SecureTCP != 2 || !d.SecureTCPOn || d.AmemThresh != 5000 || d.SYNRateSource != 1 || d.SYNBurst != 2 {
		t.Fatalf("defence status %+v", d)
	}
	rec := httptest.NewRecorder()
	control.MetricsHandler(s.Server, s.Director).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, line := range []string{
		`afvs_syn_drops_total{reason="syn_rate_source"} 3`,
		`afvs_drops_total{reason="syn_rate_source"} 3`,
		`afvs_drops_total{reason="drop_packet"} 0`,
		`afvs_defense_level{strategy="drop_entry"} 3`,
		`afvs_defense_level{strategy="drop_packet"} 2`,
		`afvs_defense_level{strategy="secure_tcp"} 2`,
		`afvs_defense_active{strategy="secure_tcp"} 1`,
		`afvs_defense_drop_rate 5`,
		`afvs_defense_amemthresh 5000`,
		`afvs_conntrack_free_entries 4096`,
		`afvs_defense_entries_dropped_total 0`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}

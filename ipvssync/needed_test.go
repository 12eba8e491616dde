package ipvssync

import "testing"

// TestNeeded walks ip_vs_sync_conn_needed's rules case by case.
func TestNeeded(t *testing.T) {
	const to = 900 * HZ // tcp timeout
	def := DefaultSettings
	refresh := Settings{Threshold: 3, Period: 50, RefreshPeriod: 60 * HZ, Retries: 2}
	refreshOnly := Settings{Threshold: 3, Period: 0, RefreshPeriod: 60 * HZ}
	once := Settings{Threshold: 3, Period: 0}
	persist := Settings{Threshold: 3, Period: 50, PersistMode: true}
	for _, tc := range []struct {
		name  string
		s     Settings
		c     ConnInfo
		st    SyncState
		pkts  int
		now   Ticks
		want  bool
		after SyncState // st after the call when want is true
	}{
		{"tcp syn_recv is never sent", def, ConnInfo{Protocol: ProtoTCP, State: TCPSynRecv, Timeout: to}, SyncState{}, 3, 1000, false, SyncState{}},
		{"tcp established at threshold", def, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{OldState: TCPEstablished}, 3, 1000, true, SyncState{TCPEstablished, (1000 + to) &^ 3}},
		{"tcp established, not at threshold", def, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{OldState: TCPEstablished}, 4, 1000, false, SyncState{}},
		{"tcp established every period", def, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{OldState: TCPEstablished}, 53, 1000, true, SyncState{TCPEstablished, (1000 + to) &^ 3}},
		// A change to ESTABLISHED is not forced: it still needs the count.
		{"tcp change to established off threshold", def, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{OldState: TCPSynRecv}, 2, 1000, false, SyncState{}},
		{"tcp change to fin_wait is sent at once", def, ConnInfo{Protocol: ProtoTCP, State: TCPFinWait, Timeout: 120 * HZ}, SyncState{OldState: TCPEstablished}, 7, 1001, true, SyncState{TCPFinWait, (1001 + 120*HZ) &^ 3}},
		{"tcp change to close is sent at once", def, ConnInfo{Protocol: ProtoTCP, State: TCPClose, Timeout: 10 * HZ}, SyncState{OldState: TCPFinWait}, 9, 2000, true, SyncState{TCPClose, (2000 + 10*HZ) &^ 3}},
		{"tcp change to time_wait", def, ConnInfo{Protocol: ProtoTCP, State: TCPTimeWait, Timeout: 120 * HZ}, SyncState{OldState: TCPClose}, 9, 2000, true, SyncState{TCPTimeWait, (2000 + 120*HZ) &^ 3}},
		{"tcp close_wait unchanged off threshold", def, ConnInfo{Protocol: ProtoTCP, State: TCPCloseWait, Timeout: 60 * HZ}, SyncState{OldState: TCPCloseWait}, 9, 2000, false, SyncState{}},
		{"tcp last_ack never", def, ConnInfo{Protocol: ProtoTCP, State: TCPLastAck, Timeout: 30 * HZ}, SyncState{OldState: TCPCloseWait}, 3, 2000, false, SyncState{}},
		{"udp at threshold", def, ConnInfo{Protocol: ProtoUDP, Timeout: 300 * HZ}, SyncState{}, 3, 5000, true, SyncState{0, (5000 + 300*HZ) &^ 3}},
		{"udp off threshold", def, ConnInfo{Protocol: ProtoUDP, Timeout: 300 * HZ}, SyncState{}, 4, 5000, false, SyncState{}},
		{"template skips the count with a period", def, ConnInfo{Protocol: ProtoTCP, Flags: FlagTemplate, State: TemplateAssured, Timeout: 300 * HZ}, SyncState{}, 17, 5000, true, SyncState{TemplateAssured, (5000 + 300*HZ) &^ 3}},
		{"template once without a period", once, ConnInfo{Protocol: ProtoTCP, Flags: FlagTemplate, Timeout: 300 * HZ}, SyncState{}, 4, 5000, false, SyncState{}},
		{"persist mode skips controlled conns", persist, ConnInfo{Protocol: ProtoTCP, State: TCPFinWait, Timeout: to, InPersistence: true}, SyncState{OldState: TCPEstablished}, 3, 5000, false, SyncState{}},
		{"persist mode sends free conns", persist, ConnInfo{Protocol: ProtoTCP, State: TCPFinWait, Timeout: to}, SyncState{OldState: TCPEstablished}, 3, 5000, true, SyncState{TCPFinWait, (5000 + to) &^ 3}},
		{"period 0 sends once at threshold", once, ConnInfo{Protocol: ProtoUDP, Timeout: 300 * HZ}, SyncState{}, 53, 5000, false, SyncState{}},
		// Refresh: the last copy ends at 100s+900s; now (110s) the new end
		// differs by 10s < min(60s, 450s): limited, retried after 60/8 s.
		{"refresh limits an unchanged conn", refresh, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{TCPEstablished, 100*HZ + to}, 53, 101 * HZ, false, SyncState{}},
		{"refresh retry after period/8", refresh, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{TCPEstablished, 100*HZ + to}, 53, 110 * HZ, true, SyncState{TCPEstablished, (110*HZ+to)&^3 | 1}},
		{"refresh retries used up", refresh, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{TCPEstablished, 100*HZ + to | 2}, 53, 110 * HZ, false, SyncState{}},
		{"refresh past the period resends", refresh, ConnInfo{Protocol: ProtoTCP, State: TCPEstablished, Timeout: to}, SyncState{TCPEstablished, 100*HZ + to | 2}, 53, 200 * HZ, true, SyncState{TCPEstablished, (200*HZ + to) &^ 3}},
		{"refresh alone ignores the count", refreshOnly, ConnInfo{Protocol: ProtoUDP, Timeout: 300 * HZ}, SyncState{0, 0}, 1234, 400 * HZ, true, SyncState{0, (400*HZ + 300*HZ) &^ 3}},
		{"sctp established at threshold", def, ConnInfo{Protocol: ProtoSCTP, State: SCTPEstablished, Timeout: to}, SyncState{OldState: SCTPEstablished}, 3, 1000, true, SyncState{SCTPEstablished, (1000 + to) &^ 3}},
		{"sctp change to shutdown_sent", def, ConnInfo{Protocol: ProtoSCTP, State: SCTPShutdownSent, Timeout: to}, SyncState{OldState: SCTPEstablished}, 8, 1000, true, SyncState{SCTPShutdownSent, (1000 + to) &^ 3}},
		{"sctp cookie_wait never", def, ConnInfo{Protocol: ProtoSCTP, State: SCTPCookieWait, Timeout: to}, SyncState{}, 3, 1000, false, SyncState{}},
		{"out-of-range tcp state", def, ConnInfo{Protocol: ProtoTCP, State: 40, Timeout: to}, SyncState{}, 3, 1000, false, SyncState{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.st
			got := Needed(&tc.s, &tc.c, &st, tc.pkts, tc.now)
			if got != tc.want {
				t.Fatalf("Needed = %v, want %v", got, tc.want)
			}
			if !got && st != tc.st {
				t.Errorf("a no changed the state: %+v -> %+v", tc.st, st)
			}
			if got && st != tc.after {
				t.Errorf("state after %+v, want %+v", st, tc.after)
			}
		})
	}
}

// TestMaxLen follows start_sync_thread's derivation of sync_maxlen.
func TestMaxLen(t *testing.T) {
	for _, tc := range []struct {
		backup     bool
		mtu, given int
		v6         bool
		want       int
	}{
		{false, 9000, 0, false, 1472}, // a master assumes 1500
		{false, 1500, 0, true, 1452},
		{true, 9000, 0, false, 8972}, // a backup reads up to its MTU
		{true, 1280, 0, false, 1472}, // ... at least 1500
		{false, 0, 200, false, 200},
		{true, 0, 200, false, 1024}, // a backup reads at least 1024
		{false, 0, 70000, false, 65507},
		{false, 0, 70000, true, 65487},
	} {
		if got := MaxLen(tc.backup, tc.mtu, tc.given, tc.v6); got != tc.want {
			t.Errorf("MaxLen(backup %v, mtu %d, sync_maxlen %d, v6 %v) = %d, want %d", tc.backup, tc.mtu, tc.given, tc.v6, got, tc.want)
		}
	}
}

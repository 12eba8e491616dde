package control_test

import (
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/syncd"
)

// syncCounts is a sync daemon without sockets whose counters each hold a
// value of their own, so that a status field or a metric read from the
// wrong counter shows.
type syncCounts struct {
	controltest.Sync
	stats syncd.Stats
}

func (s *syncCounts) Stats() syncd.Stats { return s.stats }

// TestSyncCountersReported: every sync counter reaches /v1/status and
// Prometheus with its own value and label: messages and entries sent and
// received, entries installed and refreshed, and drops by reason
// (the daemon's, and queue_full, send_error and receive_error).
func TestSyncCountersReported(t *testing.T) {
	sc := &syncCounts{Sync: controltest.Sync{MTU: 1500}, stats: syncd.Stats{
		SentMessages: 11, SentEntries: 12, SendErrors: 13, QueueFull: 14,
		RecvMessages: 15, RecvEntries: 16, Installed: 17, Updated: 18, ReceiveErrors: 19,
		Drops: map[string]uint64{"wrong_syncid": 21, "truncated": 22, "unknown_dest": 23, syncd.UnsentMixedFamily: 24},
	}}
	s := controltest.ServeWithSync(t, sc)
	commands(t, s, "--start-daemon master --mcast-interface lo --syncid 4")

	st, err := s.Client().Status()
	if err != nil {
		t.Fatal(err)
	}
	got := st.Sync
	want := sc.stats
	for name, v := range map[string][2]uint64{
		"sent_messages": {got.SentMessages, want.SentMessages}, "sent_entries": {got.SentEntries, want.SentEntries},
		"send_errors": {got.SendErrors, want.SendErrors}, "queue_full": {got.QueueFull, want.QueueFull},
		"received_messages": {got.RecvMessages, want.RecvMessages}, "received_entries": {got.RecvEntries, want.RecvEntries},
		"installed": {got.Installed, want.Installed}, "updated": {got.Updated, want.Updated},
		"receive_errors": {got.ReceiveErrors, want.ReceiveErrors},
	} {
		if v[0] != v[1] {
			t.Errorf("status sync.%s = %d, want %d", name, v[0], v[1])
		}
	}
	if !reflect.DeepEqual(got.Drops, want.Drops) {
		t.Errorf("status sync.drops = %v, want %v", got.Drops, want.Drops)
	}
	if len(got.Daemons) != 1 || got.Daemons[0].State != "master" || got.Daemons[0].SyncID != 4 {
		t.Errorf("status sync.daemons = %+v, want the master with syncid 4", got.Daemons)
	}

	rec := httptest.NewRecorder()
	control.MetricsHandler(s.Server, s.Director).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	if rec.Code != 200 {
		t.Fatalf("/metrics answered %d:\n%s", rec.Code, text)
	}
	for _, line := range []string{
		`afvs_sync_messages_total{direction="sent"} 11`,
		`afvs_sync_messages_total{direction="received"} 15`,
		`afvs_sync_entries_total{direction="sent"} 12`,
		`afvs_sync_entries_total{direction="received"} 16`,
		`afvs_sync_installed_total{result="inserted"} 17`,
		`afvs_sync_installed_total{result="updated"} 18`,
		`afvs_sync_drops_total{reason="send_error"} 13`,
		`afvs_sync_drops_total{reason="queue_full"} 14`,
		`afvs_sync_drops_total{reason="receive_error"} 19`,
		`afvs_sync_drops_total{reason="wrong_syncid"} 21`,
		`afvs_sync_drops_total{reason="truncated"} 22`,
		`afvs_sync_drops_total{reason="unknown_dest"} 23`,
		`afvs_sync_drops_total{reason="unsent_mixed_family"} 24`,
		`afvs_sync_daemon_running{state="master"} 1`,
		`afvs_sync_daemon_running{state="backup"} 0`,
		`afvs_sync_daemon_info{mcast_group="224.0.0.81",mcast_interface="lo",mcast_port="8848",mcast_ttl="1",state="master",sync_maxlen="1472",syncid="4"} 1`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	// Each drop reason is one series: no reason is reported twice.
	if n := strings.Count(text, "\nafvs_sync_drops_total{"); n != 7 {
		t.Errorf("%d afvs_sync_drops_total series, want 7 (4 reasons of the daemon and queue_full, send_error, receive_error)", n)
	}
}

package syncd

import (
	"log/slog"
	"testing"
	"time"

	"github.com/afvs/afvs/ipvsadm"
)

// TestMasterWokenByFullQueue: with its timer an hour long, a master sends
// nothing while a worker's queue holds less than WakeupRate messages'
// worth of records, and sends the full messages as soon as it holds that
// much, as the kernel's master thread is woken after IPVS_SYNC_WAKEUP_RATE
// queued buffers instead of waiting for IPVS_SYNC_SEND_DELAY.
func TestMasterWokenByFullQueue(t *testing.T) {
	p := newPair(t)
	mh, bh := &fakeHost{}, &fakeHost{}
	quiet := slog.New(slog.DiscardHandler)
	master := New(mh, Options{FlushAfter: time.Hour, Log: quiet, sendDelay: time.Hour})
	backup := New(bh, Options{Log: quiet})
	t.Cleanup(master.Close)
	t.Cleanup(backup.Close)
	in(t, p.b, func() error {
		return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", SyncID: 4})
	})
	// maxlen 200: 5 entries of 36 bytes a message, so 40 records wake it.
	in(t, p.a, func() error {
		return master.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "synca", SyncID: 4, SyncMaxlen: 200})
	})
	every := wakeEvery(200)
	if every != WakeupRate*5 {
		t.Fatalf("wakeEvery(200) = %d, want %d", every, WakeupRate*5)
	}
	q := mh.queues[0]
	push := func(from, n int) {
		for i := range n {
			r := record(from + i)
			if !q.Push(&r) {
				t.Fatal("queue full")
			}
		}
		q.Publish()
	}
	push(0, every-1)
	time.Sleep(200 * time.Millisecond)
	if s := master.Stats(); s.SentMessages != 0 {
		t.Fatalf("sent %d messages with %d records queued, fewer than %d: want none before the timer", s.SentMessages, every-1, every)
	}
	push(every-1, 1)
	// The master packs the 40 records at once and sends each message as
	// the next entry finds it full: 7 of 5 entries; the eighth waits for
	// an entry that does not fit, or for FlushAfter, as a kernel buffer
	// is queued only when the next entry does not fit in it.
	const sent = (WakeupRate - 1) * 5
	waitFor(t, "the backup to install the woken master's entries", func() bool { return bh.count() == sent })
	if s := master.Stats(); s.SentMessages != WakeupRate-1 || s.SentEntries != sent {
		t.Errorf("master sent %d messages of %d entries, want %d of %d", s.SentMessages, s.SentEntries, WakeupRate-1, sent)
	}
}

package control_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/vs"
)

func TestHealthQuiescesAndRestores(t *testing.T) {
	d, err := controltest.NewDirector(4096)
	if err != nil {
		t.Fatal(err)
	}
	tbl := &vs.Table{}
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "wrr"}
	for i, w := range []int32{1, 2} {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), Port: 80, Weight: w})
	}
	if err := tbl.AddService(s); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	srv := control.New(d, d.CT, tbl, nil, nil)
	var mu sync.Mutex
	failing := map[netip.AddrPort]bool{}
	var events []string
	dial := func(ctx context.Context, a netip.AddrPort) error {
		mu.Lock()
		defer mu.Unlock()
		if failing[a] {
			return errors.New("connection refused")
		}
		return nil
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		srv.RunHealth(control.HealthOptions{Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond, Rise: 2, Fall: 3, Dial: dial,
			OnChange: func(a netip.AddrPort, up bool) {
				mu.Lock()
				events = append(events, a.String()+map[bool]string{true: " up", false: " down"}[up])
				mu.Unlock()
			}}, stop)
		close(done)
	}()
	defer func() { close(stop); <-done }()
	rs2 := netip.MustParseAddrPort("198.18.0.12:80")
	weightOf := func() int32 {
		for _, r := range d.Snapshot().Table.Services[0].Reals {
			if r.AddrPort() == rs2 {
				return r.Weight
			}
		}
		return -1
	}
	wait := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for weightOf() != want {
			if time.Now().After(deadline) {
				t.Fatalf("dataplane weight of %s is %d, want %d (events %v)", rs2, weightOf(), want, events)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	mu.Lock()
	failing[rs2] = true
	mu.Unlock()
	wait(0)
	if srv.Up(rs2) {
		t.Fatal("Up reports a quiesced server as up")
	}
	// The configured table keeps the weight; only the dataplane sees 0.
	if w := srv.Table().Services[0].Reals[1].Weight; w != 2 {
		t.Fatalf("configured weight changed to %d", w)
	}
	mu.Lock()
	failing[rs2] = false
	mu.Unlock()
	wait(2)
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0] != "198.18.0.12:80 down" || events[1] != "198.18.0.12:80 up" {
		t.Fatalf("events %v", events)
	}
}

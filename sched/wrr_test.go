package sched

import (
	"slices"
	"sync"
	"testing"
)

func weighted(ws ...int32) []Dest {
	ds := make([]Dest, len(ws))
	for i, w := range ws {
		ds[i] = Dest{ID: uint32(i), Weight: w, Port: 80}
		ds[i].Addr[15] = byte(i + 1)
	}
	return ds
}

func picks(s Scheduler, n int) []int {
	out := make([]int, n)
	var f Flow
	for i := range out {
		out[i] = s.Schedule(&f)
	}
	return out
}

// TestWRRSequence checks the kernel's sequence for weights 4,3,2 (A,B,C):
// di = 1, mw = 4, and cw steps 4,3,2,1, giving AABABCABC per cycle when the
// service is built with all three. Added one by one with ipvsadm, each
// ip_vs_wrr_dest_changed keeps the previous cw (1 after the first dest, whose
// gcd is 4), so the first pass is a cw=1 pass: ABC, then the cycle.
func TestWRRSequence(t *testing.T) {
	const A, B, C = 0, 1, 2
	cycle := []int{A, A, B, A, B, C, A, B, C}
	s, err := New("wrr", weighted(4, 3, 2), 0, NewLoads(3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(cycle, cycle, cycle)
	if got := picks(s, len(want)); !slices.Equal(got, want) {
		t.Errorf("built at once: got %v, want %v", got, want)
	}

	loads := NewLoads(3)
	ds := weighted(4, 3, 2)
	var prev Scheduler
	for n := 1; n <= 3; n++ {
		prev, err = New("wrr", ds[:n], 0, loads, Options{Prev: prev})
		if err != nil {
			t.Fatal(err)
		}
	}
	want = slices.Concat([]int{A, B, C}, cycle, cycle)
	if got := picks(prev, len(want)); !slices.Equal(got, want) {
		t.Errorf("added one by one: got %v, want %v", got, want)
	}
}

func TestWRRSkipsOverloadedAndQuiesced(t *testing.T) {
	loads := NewLoads(3)
	ds := weighted(4, 0, 2)
	ds[2].Upper = 1
	s, err := New("wrr", ds, 0, loads, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// di = 2, mw = 4 - (2-1) = 3; cw 3 takes A, cw 1 takes A and C.
	if got, want := picks(s, 6), []int{0, 0, 2, 0, 0, 2}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	loads.Bind(2, true) // reaches -x 1: overloaded
	for _, p := range picks(s, 6) {
		if p != 0 {
			t.Fatalf("picked %d while dest 2 is overloaded and dest 1 quiesced", p)
		}
	}
}

// TestWLCTieBreaking: equal overhead/weight ratios keep the first dest;
// only a strictly lower ratio moves the choice, and a quiesced or
// overloaded dest never wins however idle it is.
func TestWLCTieBreaking(t *testing.T) {
	loads := NewLoads(4)
	ds := weighted(1, 2, 2, 4)
	ds[3].Upper = 100
	s, err := New("wlc", ds, 0, loads, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var f Flow
	steps := []struct {
		bind  []uint32 // active connections to add
		want  int
		about string
	}{
		{nil, 0, "all idle: 0/1 = 0/2 = 0/4, the first wins"},
		{[]uint32{0}, 1, "256/1 > 0/2: dest 1, the first of the idle"},
		{[]uint32{1, 2}, 3, "256/2 = 256/2 > 0/4"},
		{[]uint32{3, 3}, 1, "512/4 = 256/2 = 256/2: dest 1 by position, not dest 3"},
		{[]uint32{1}, 2, "512/2 > 256/2: dest 2"},
	}
	for _, st := range steps {
		for _, id := range st.bind {
			loads.Bind(id, true)
		}
		if got := s.Schedule(&f); got != st.want {
			t.Fatalf("%s: got %d, want %d", st.about, got, st.want)
		}
	}
	loads.SetThresholds(2, 1, 0) // dest 2 has 1 conn: stays as is until the next bind
	loads.Bind(2, false)
	if got := s.Schedule(&f); got == 2 {
		t.Fatalf("overloaded dest 2 picked")
	}
}

// TestConcurrentRR: concurrent workers hand out exactly the sequence one
// worker would, as a multiset: every dest the same number of times.
func TestConcurrentRR(t *testing.T) {
	for _, name := range []string{"rr", "wrr"} {
		s, err := New(name, weighted(1, 1, 1, 1, 1), 0, NewLoads(5), Options{})
		if err != nil {
			t.Fatal(err)
		}
		const workers, each = 4, 5000
		counts := make([][5]int, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				var f Flow
				for range each {
					counts[w][s.Schedule(&f)]++
				}
			})
		}
		wg.Wait()
		for d := range 5 {
			sum := 0
			for w := range workers {
				sum += counts[w][d]
			}
			if sum != workers*each/5 {
				t.Errorf("%s: dest %d picked %d times, want %d", name, d, sum, workers*each/5)
			}
		}
	}
}

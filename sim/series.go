package sim

// series holds active connections per server over time for the plot. It
// keeps at most max samples: when full, it drops every other one and
// doubles its step, so any trace length fits and the samples stay evenly
// spaced.
type series struct {
	max    int
	step   int64 // ms between samples; starts at 1
	next   int64 // time_ms of the next sample
	times  []int64
	active [][]int32 // [server record][sample]
}

func (s *series) addServer() {
	s.active = append(s.active, make([]int32, len(s.times), cap(s.times)))
}

// sample records every server's active count at ms if a sample is due.
func (s *series) sample(ms int64, sim *simulator) {
	if len(s.times) > 0 && ms < s.next {
		return
	}
	if s.step == 0 {
		s.step = 1
	}
	if len(s.times) == s.max {
		s.halve()
	}
	s.times = append(s.times, ms)
	for i, r := range sim.servers {
		var a int32
		if sim.owner[r.id] == int32(i) {
			a = sim.loads.Active(r.id)
		}
		s.active[i] = append(s.active[i], a)
	}
	s.next = ms + s.step
}

func (s *series) halve() {
	keep := func(n int) int { return (n + 1) / 2 }
	for i := range s.times[:keep(len(s.times))] {
		s.times[i] = s.times[2*i]
	}
	s.times = s.times[:keep(len(s.times))]
	for j := range s.active {
		a := s.active[j]
		for i := range a[:keep(len(a))] {
			a[i] = a[2*i]
		}
		s.active[j] = a[:keep(len(a))]
	}
	s.step *= 2
}

package sim

import "github.com/afvs/afvs/sched"

// peakHooks sits between the connection table and sched.Loads. It forwards
// every call unchanged, so the schedulers read exactly the counts they
// would live, and after each increase of a server's active count records
// the new peak. Decreases cannot raise a peak, so watching increases is
// the same as sampling every server after every event.
type peakHooks struct {
	loads *sched.Loads
	peak  []int32 // by dest ID, since the ID's current owner took it
}

func (h *peakHooks) Bind(dest uint32, active bool) {
	h.loads.Bind(dest, active)
	if active {
		h.see(dest)
	}
}

func (h *peakHooks) Transfer(dest uint32, toActive bool) {
	h.loads.Transfer(dest, toActive)
	if toActive {
		h.see(dest)
	}
}

func (h *peakHooks) Unbind(dest uint32, active bool) { h.loads.Unbind(dest, active) }

func (h *peakHooks) see(dest uint32) {
	if int(dest) < len(h.peak) {
		if a := h.loads.Active(dest); a > h.peak[dest] {
			h.peak[dest] = a
		}
	}
}

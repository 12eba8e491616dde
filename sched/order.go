package sched

// KernelOrder returns a service's dests in the order of the kernel's
// svc->destinations list, given them in the order they were added: the -a
// order that vs.Table and a config file's reals list keep.
//
// __ip_vs_update_dest links a new dest, or one revived from the trash, at
// the head of svc->destinations (list_add_rcu), and ip_vs_edit_dest changes
// a dest where it stands. So the list is the reverse of the order of
// addition, and every scheduler that walks it (rr, wrr, lc, wlc, sed, nq,
// fo, ovf, twos, mh's populate, the sh and dh bucket layouts) meets the
// newest dest first: rr on a fresh service with A, B, C and D added in
// that order picks D first. The result is a new slice; added is unchanged.
func KernelOrder[T any](added []T) []T {
	out := make([]T, len(added))
	for i, d := range added {
		out[len(added)-1-i] = d
	}
	return out
}

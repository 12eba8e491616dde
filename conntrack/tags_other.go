//go:build !amd64

package conntrack

// candidates sets cand[i] to store.candidate(&pl[i]) for every i.
func (s *store) candidates(pl []placement, cand []uint32) {
	for i := range pl {
		cand[i] = s.candidate(&pl[i])
	}
}

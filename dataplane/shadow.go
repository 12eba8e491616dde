package dataplane

import "github.com/afvs/afvs/internal/plainstore"

// shadow is a processor's private copy of its traffic counters. The hot
// path increments plain integers here; Flush copies the ones a batch
// touched into the atomic Counters that the control plane reads. Values are
// absolute totals (this processor is their only writer), so a Flush is a
// store, never a read-modify-write, and a reader sees each counter as of
// the end of some batch.
type shadow struct {
	rx, rxBytes uint64
	svc         [MaxServices]Traffic
	dest        [MaxDests]Traffic
	svcDirty    [MaxServices]bool
	destDirty   [MaxDests]bool
	dirtySvc    []uint32
	dirtyDest   []uint32
}

func (s *shadow) svcT(id uint32) *Traffic {
	if !s.svcDirty[id] {
		s.svcDirty[id] = true
		s.dirtySvc = append(s.dirtySvc, id)
	}
	return &s.svc[id]
}

func (s *shadow) destT(id uint32) *Traffic {
	if !s.destDirty[id] {
		s.destDirty[id] = true
		s.dirtyDest = append(s.dirtyDest, id)
	}
	return &s.dest[id]
}

// store publishes t. Each word is a count its readers take whole, with no
// order against other memory, so it is written with plainstore.Unordered64,
// which inlines, rather than Store64, a call per word.
func (c *trafficCell) store(t *Traffic) {
	plainstore.Unordered64(&c.conns, t.Conns)
	plainstore.Unordered64(&c.inPkts, t.InPkts)
	plainstore.Unordered64(&c.outPkts, t.OutPkts)
	plainstore.Unordered64(&c.inBytes, t.InBytes)
	plainstore.Unordered64(&c.outBytes, t.OutBytes)
}

// Flush publishes the counters changed since the last Flush. A worker calls
// it once per batch; a processor not in batch mode (replay, simulation,
// tests) flushes after every frame on its own. It also drops the held
// fragments whose time ran out, so they are counted without waiting for
// another fragment.
func (p *Processor) Flush() {
	if p.frag.nheld > 0 {
		p.expireHeld(p.ct.Now())
	}
	s := &p.sh
	plainstore.Unordered64(&p.c.RX, s.rx)
	plainstore.Unordered64(&p.c.RXBytes, s.rxBytes)
	for _, id := range s.dirtySvc {
		p.c.svc[id].store(&s.svc[id])
		s.svcDirty[id] = false
	}
	for _, id := range s.dirtyDest {
		p.c.dest[id].store(&s.dest[id])
		s.destDirty[id] = false
	}
	s.dirtySvc = s.dirtySvc[:0]
	s.dirtyDest = s.dirtyDest[:0]
	if sk := p.sync.Load(); sk != nil {
		sk.Queue.Publish()
	}
}

// SetBatching makes Process leave publishing to explicit Flush calls.
func (p *Processor) SetBatching(on bool) { p.deferred = on }

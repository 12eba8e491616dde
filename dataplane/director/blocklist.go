package director

import (
	"net/netip"
	"time"

	"github.com/afvs/afvs/dataplane/xdpprog"
)

// blockQueue is how many sources the workers may hand the blocklist
// writer at once; beyond that they are dropped (the workers keep
// refusing those sources' SYNs, and ask again at their next one).
const blockQueue = 256

// blocker is the workers' dataplane.Blocker: Block queues a source for
// the goroutine that writes the steering programs' blocklists, without
// blocking or allocating, so it may run on the packet path.
type blocker struct {
	ch chan [16]byte
}

func (b *blocker) Block(src [16]byte) {
	select {
	case b.ch <- src:
	default:
	}
}

// blockPrefix6 is the prefix length IPv6 sources are blocked by.
func (d *Director) blockPrefix6() int {
	if d.opt.BlockPrefix6 == 0 {
		return xdpprog.DefaultBlockPrefix6
	}
	return d.opt.BlockPrefix6
}

// runBlocklist writes the sources the workers report into every ingress
// interface's blocklist for the configured time, once per half of that
// time per source (per prefix for IPv6, which is what is blocked), until
// the director stops.
func (d *Director) runBlocklist() {
	defer d.wg.Done()
	last := map[[16]byte]time.Time{}
	for {
		select {
		case <-d.stop:
			return
		case src := <-d.block.ch:
			a := netip.AddrFrom16(src).Unmap()
			what := netip.PrefixFrom(a, a.BitLen())
			if a.Is6() {
				what = netip.PrefixFrom(a, d.blockPrefix6()).Masked()
				src = what.Addr().As16()
			}
			every := d.opt.BlockFor / 2
			now := time.Now()
			if t, ok := last[src]; ok && now.Sub(t) < every {
				continue
			}
			if len(last) >= blockQueue*64 {
				for k, t := range last {
					if now.Sub(t) >= every {
						delete(last, k)
					}
				}
			}
			last[src] = now
			for i, st := range d.steer {
				if err := st.Block(what.Addr(), d.opt.BlockFor); err != nil {
					d.log.Warn("blocklist", "dev", d.ifaces[i].Name, "source", a, "err", err)
				}
			}
			d.blocks.Add(1)
			d.log.Info("source blocked in XDP: far over its SYN rate", "source", a, "blocked", what, "for", d.opt.BlockFor)
		}
	}
}

// Blocks is how many times a source was put in the blocklist.
func (d *Director) Blocks() uint64 { return d.blocks.Load() }

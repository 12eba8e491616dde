package control

import (
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
)

// estimator follows IPVS's rate estimator (net/netfilter/ipvs/ip_vs_est.c):
// every 2 seconds it takes the counters' growth, scales it to a per-second
// fixed-point rate, and moves the estimate a quarter of the way towards it
// (an exponentially weighted moving average with weight 1/4). Connection and
// packet rates keep 10 fraction bits, byte rates 5, as the kernel does.
type estimator struct {
	last               dataplane.Traffic
	cps, inpps, outpps int64 // scaled by 2^10
	inbps, outbps      int64 // scaled by 2^5
	primed             bool
}

// EstimatorInterval is the sampling period, 2 s as in IPVS.
const estimatorSeconds = 2

// sample feeds the counters read now; call it every 2 seconds.
func (e *estimator) sample(t dataplane.Traffic) {
	if !e.primed {
		e.last, e.primed = t, true
		return
	}
	// Growth over 2 s, scaled: <<9 is (x/2)<<10 and <<4 is (x/2)<<5.
	step := func(est *int64, now, last uint64, shift uint) {
		rate := int64(now-last) << shift
		*est += (rate - *est) >> 2
	}
	step(&e.cps, t.Conns, e.last.Conns, 9)
	step(&e.inpps, t.InPkts, e.last.InPkts, 9)
	step(&e.outpps, t.OutPkts, e.last.OutPkts, 9)
	step(&e.inbps, t.InBytes, e.last.InBytes, 4)
	step(&e.outbps, t.OutBytes, e.last.OutBytes, 4)
	e.last = t
}

// rate rounds the estimates as ip_vs_read_estimator does.
func (e *estimator) rate() api.Rate {
	r10 := func(x int64) uint64 { return uint64((x + 0x1FF) >> 10) }
	r5 := func(x int64) uint64 { return uint64((x + 0xF) >> 5) }
	return api.Rate{CPS: r10(e.cps), InPPS: r10(e.inpps), OutPPS: r10(e.outpps), InBPS: r5(e.inbps), OutBPS: r5(e.outbps)}
}

package control

import (
	"testing"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
)

// The expected figures are worked by hand from ip_vs_est.c: each 2 s
// sample adds (growth<<9 - est)>>2 (packets, connections) or
// (growth<<4 - est)>>2 (bytes), and reading rounds with +0x1FF >> 10 or
// +0xF >> 5.
func TestEstimatorMatchesIPVS(t *testing.T) {
	var e estimator
	at := func(conns, pkts, bytes uint64) dataplane.Traffic {
		return dataplane.Traffic{Conns: conns, InPkts: pkts, OutPkts: pkts / 2, InBytes: bytes, OutBytes: bytes / 2}
	}
	e.sample(at(1000, 5000, 1_000_000)) // primes: no rate from the first reading
	if r := e.rate(); r != (api.Rate{}) {
		t.Fatalf("after the first sample: %+v, want zero", r)
	}
	// 100 conns, 1000 packets (500 out), 100000 bytes (50000 out) in 2 s:
	// 50 cps, 500 pps, 250 out pps, 50000 Bps, 25000 out Bps.
	e.sample(at(1100, 6000, 1_100_000))
	// cps: 100<<9 = 51200, est 12800 (12.5 in 2^10 units), and
	// (12800+511)>>10 = 12: the kernel's rounding takes exact halves down.
	// inpps: 1000<<9 = 512000, est 128000, (128000+511)>>10 = 125.
	// outpps: 500<<9 = 256000, est 64000, (64000+511)>>10 = 62.
	// inbps: 100000<<4 = 1600000, est 400000, (400000+15)>>5 = 12500.
	// outbps: 50000<<4 = 800000, est 200000, 6250.
	want := api.Rate{CPS: 12, InPPS: 125, OutPPS: 62, InBPS: 12500, OutBPS: 6250}
	if r := e.rate(); r != want {
		t.Fatalf("after one interval: %+v, want %+v", r, want)
	}
	e.sample(at(1200, 7000, 1_200_000))
	// cps: 12800 + (51200-12800)>>2 = 22400, (22400+511)>>10 = 22.
	// inpps: 128000 + 96000 = 224000, (224000+511)>>10 = 219.
	// outpps: 64000 + 48000 = 112000, (112511)>>10 = 109.
	// inbps: 400000 + 300000 = 700000, (700015)>>5 = 21875.
	// outbps: 200000 + 150000 = 350000, (350015)>>5 = 10937.
	want = api.Rate{CPS: 22, InPPS: 219, OutPPS: 109, InBPS: 21875, OutBPS: 10937}
	if r := e.rate(); r != want {
		t.Fatalf("after two intervals: %+v, want %+v", r, want)
	}
	// A steady rate converges to the true per-second figure.
	c, p, b := uint64(1200), uint64(7000), uint64(1_200_000)
	for range 60 {
		c, p, b = c+100, p+1000, b+100_000
		e.sample(at(c, p, b))
	}
	want = api.Rate{CPS: 50, InPPS: 500, OutPPS: 250, InBPS: 50000, OutBPS: 25000}
	if r := e.rate(); r != want {
		t.Fatalf("steady: %+v, want %+v", r, want)
	}
	// Traffic stops: the estimate decays by a quarter each interval.
	e.sample(at(c, p, b))
	// cps est 51200 -> 51200 - 12800 = 38400, (38400+511)>>10 = 37.
	if r := e.rate(); r.CPS != 37 || r.InBPS != (1_200_000+15)>>5 {
		t.Fatalf("one idle interval: %+v, want cps 37, inbps %d", r, (1_200_000+15)>>5)
	}
	for range 60 {
		e.sample(at(c, p, b))
	}
	if r := e.rate(); r != (api.Rate{}) {
		t.Fatalf("long idle: %+v, want zero", r)
	}
}

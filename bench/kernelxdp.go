package bench

import (
	"errors"
	"fmt"

	"github.com/afvs/afvs/dataplane/xdpprog"
)

// startKernelXDP loads the in-kernel XDP load balancer and attaches it to
// the director's ingress interface: one UDP service on the VIP whose only
// real server is the sink, forwarded by MAC rewrite (mode "dr") or IPIP
// (mode "tun") out of eth1 through XDP_REDIRECT. flows sizes its flow
// table. stop detaches and unloads it.
func startKernelXDP(t *topology, mode string, flows int) (lb *xdpprog.KernelLB, stop func() error, err error) {
	if mode != "dr" && mode != "tun" {
		return nil, nil, fmt.Errorf("kernel xdp mode %q: must be dr or tun", mode)
	}
	// The device map resolves the egress ifindex in the namespace of the
	// thread that fills it: the director's.
	err = t.dir.Do(func() (err error) {
		lb, err = xdpprog.LoadKernelLB(xdpprog.KernelLBOptions{EgressIfindex: t.dirOut.index, EgressMAC: t.dirOut.mac,
			TunnelSource: DirOutAddr, MaxFlows: max(flows+flows/4, 1024)})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	real := xdpprog.KernelLBReal{MAC: t.sinkIf.mac, Addr: SinkAddr, Tunnel: mode == "tun"}
	if err := lb.SetService(xdpprog.ServiceKey{Addr: VIP, Proto: 17, Port: VIPPort}, []xdpprog.KernelLBReal{real}); err != nil {
		lb.Close()
		return nil, nil, err
	}
	var att xdpprog.Attachment
	if err := t.dir.Do(func() (err error) { att, err = lb.Attach(t.dirIn.index, xdpprog.ModeAuto); return err }); err != nil {
		lb.Close()
		return nil, nil, fmt.Errorf("attach kernel xdp load balancer to %s: %w", t.dirIn.name, err)
	}
	stop = func() error { return errors.Join(att.Close(), lb.Close()) }
	return lb, stop, nil
}

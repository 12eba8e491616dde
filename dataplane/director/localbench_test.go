package director

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// ownResolver is StaticResolver with the director's own address local.
type ownResolver struct{ dataplane.StaticResolver }

func (r ownResolver) Route(dst netip.Addr) (dataplane.Route, error) {
	if dst == netip.AddrFrom4(dirAddr) {
		return dataplane.Route{Local: true}, nil
	}
	return r.StaticResolver.Route(dst)
}

// benchNS makes a network namespace of the benchmark's own, with the VIP
// on its lo, and removes it when the benchmark ends.
func benchNS(b *testing.B) string {
	b.Helper()
	name := fmt.Sprintf("afvs-localbench-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	b.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			b.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", vip.String() + "/32", "dev", "lo"}} {
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			b.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	return name
}

// BenchmarkWorkerLocal measures, per frame and in one run, what a
// worker spends on the local node against VS/DR: a new connection's
// first packet (DR: schedule and rewrite; local: schedule, one bpf(2)
// update of the steering program's flow map and one write(2) into a TUN
// device, which includes the kernel's receive path for the packet), and
// a later packet that still reaches the worker (DR: the table hit and
// rewrite; local: the table hit and the TUN write, the path of a
// connection the full flow map refused). The local node's later frames
// normally never reach a worker: BenchmarkPrograms in dataplane/xdpprog
// measures what the steering program spends on them.
func BenchmarkWorkerLocal(b *testing.B) {
	testsupport.RequirePrivileged(b, testsupport.NetNS, testsupport.IPRoute)
	ns := benchNS(b)
	var tun *nic.Tun
	if err := nic.DoIn(ns, func() (err error) { tun, err = nic.OpenTun("afvsb%d"); return err }); err != nil {
		b.Fatal(err)
	}
	defer tun.Close()
	st, err := xdpprog.LoadSteering(4, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var stack atomic.Pointer[localBox]
	stack.Store(&localBox{kernelTun{tun}})

	own := netip.AddrFrom4(dirAddr)
	remote := oneService(vs.Route, "rr", 1)
	local := &vs.Table{}
	if err := local.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: own, Port: 80, Fwd: vs.Route, Weight: 1}}}); err != nil {
		b.Fatal(err)
	}
	const capacity = 1 << 19
	const perClient = 60000
	for _, tc := range []struct {
		name  string
		tbl   *vs.Table
		new   bool
		local bool
	}{
		{"dr/first", remote, true, false},
		{"local/first", local, true, true},
		{"dr/later", remote, false, false},
		{"local/later", local, false, true},
	} {
		b.Run("path="+tc.name, func(b *testing.B) {
			loads := sched.NewLoads(dataplane.MaxDests)
			ct, err := conntrack.New(conntrack.Config{Capacity: capacity, Templates: 64, Timeouts: conntrack.DefaultTimeouts(), Hooks: loads})
			if err != nil {
				b.Fatal(err)
			}
			defer ct.Close()
			snap, err := dataplane.Build(tc.tbl, dataplane.BuildOptions{Registry: dataplane.NewRegistry(), Loads: loads, Resolver: ownResolver{},
				Ifaces: []dataplane.Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: dirMAC, MTU: 1500, Addr: dirAddr}}})
			if err != nil {
				b.Fatal(err)
			}
			var sp atomic.Pointer[dataplane.Snapshot]
			sp.Store(snap)
			c := new(dataplane.Counters)
			p := newFakePort(b, 256)
			w := NewWorker(0, -1, p, 0, []TxPort{{Port: p}}, &sp, dataplane.NewProcessor(ct, c, 0), c, nil)
			w.localStack, w.localSteer = &stack, kernelSteering{st}
			forget := func() {
				_ = st.TakeLocalUse(func(f xdpprog.LocalFlow, _ xdpprog.LocalUse) { _ = st.ForgetLocal(f) })
			}
			forget()

			clients := capacity/perClient + 1
			syns := make([][]byte, clients)
			acks := make([][]byte, clients)
			for i := range clients {
				syns[i] = tcpFrame(b, [4]byte{198, 18, byte(i), 10}, 0, true, false, false, true, 0)
				acks[i] = tcpFrame(b, [4]byte{198, 18, byte(i), 10}, 0, false, true, false, true, 18)
			}
			setPort := func(f []byte, i int) {
				pt := 1024 + i%perClient
				f[34], f[35] = byte(pt>>8), byte(pt)
			}
			// The later-packet paths run over established connections.
			const flows = 4096
			if !tc.new {
				for i := range flows {
					setPort(syns[0], i)
					p.Deliver(syns[0])
					if i%dataplane.Batch == dataplane.Batch-1 {
						w.Poll()
						p.Complete()
					}
				}
				w.Poll()
				p.Complete()
				forget() // their later frames reach the worker, as when the map was full
			}
			n := 0 // connections opened by the timed loop
			// untimed is the CPU time spent with the timer stopped, left
			// out of cpu-ns/frame as the timer leaves it out of ns/frame.
			var untimed time.Duration
			pause := func(fn func()) {
				b.StopTimer()
				c0 := processCPU()
				fn()
				untimed += processCPU() - c0
				b.StartTimer()
			}
			del0, tx0 := c.Local.Delivered.Load(), c.TX.Load()
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if tc.new && n+dataplane.Batch > capacity/2 {
					pause(func() {
						ct.Close()
						if ct, err = conntrack.New(conntrack.Config{Capacity: capacity, Templates: 64, Timeouts: conntrack.DefaultTimeouts(), Hooks: loads}); err != nil {
							b.Fatal(err)
						}
						w.proc = dataplane.NewProcessor(ct, c, 0)
						w.proc.SetBatching(true)
						n = 0
						forget()
					})
				}
				for range dataplane.Batch {
					if tc.new {
						f := syns[n/perClient]
						setPort(f, n)
						p.Deliver(f)
						n++
						continue
					}
					setPort(acks[0], n%flows)
					p.Deliver(acks[0])
					n++
				}
				w.Poll()
				p.Complete()
				if tc.local && tc.new && n%perClient < dataplane.Batch {
					// Keep the flow map (MaxLocalFlows) from filling.
					pause(forget)
				}
			}
			reportCPUPerFrame(b, cpu+untimed, b.N*dataplane.Batch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*dataplane.Batch), "ns/frame")
			frames := uint64(b.N * dataplane.Batch)
			if tc.local {
				if got := c.Local.Delivered.Load() - del0; got != frames {
					b.Fatalf("%d of %d frames delivered to the stack (local_deliver drops %d)", got, frames, c.Drops[dataplane.DropLocalDeliver].Load())
				}
				if tc.new && c.Local.Full.Load() != 0 {
					b.Fatalf("the flow map refused %d flows", c.Local.Full.Load())
				}
			} else if got := c.TX.Load() - tx0; got != frames {
				b.Fatalf("%d of %d frames forwarded", got, frames)
			}
		})
	}
}

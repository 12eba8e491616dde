package sched_test

// A model of the kernel's dest trash, written from mainline
// net/netfilter/ipvs/ip_vs_ctl.c (ip_vs_add_dest, ip_vs_trash_get_dest,
// ip_vs_del_dest/__ip_vs_del_dest, __ip_vs_del_service,
// ip_vs_dest_trash_expire) and the connection's reference on its dest
// (ip_vs_bind_dest/ip_vs_unbind_dest in ip_vs_conn.c), compared step by
// step with afvs's own code: ipvsadm commands through ipvsadm/apply.Command,
// dataplane.Build with the shared Registry, the conntrack table and the
// dataplane Processor, on one manual clock.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvsadm/apply"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

const (
	trPeriod      = 120 * time.Second // IP_VS_DEST_TRASH_PERIOD
	trEstablished = 900 * time.Second // tcp_timeouts[IP_VS_TCP_S_ESTABLISHED]
	// trSlack is how late the connection table lets an ESTABLISHED timer
	// run (conntrack's expiry slack, timeout/64 in whole ms), within the
	// lateness the kernel's timer wheel allows for that timeout.
	trSlack = trEstablished / time.Millisecond / 64 * time.Millisecond
)

// trRearm is the timer a packet at now leaves on an ESTABLISHED
// connection: as it was while it is within the slack of now+timeout,
// else now+timeout+slack.
func trRearm(expires, now time.Duration) time.Duration {
	if now+trEstablished <= expires && expires <= now+trEstablished+trSlack {
		return expires
	}
	return now + trEstablished + trSlack
}

// trDest is a struct ip_vs_dest: its identity is the pointer.
type trDest struct {
	obj       int
	svc       string // the service key it belongs to
	addr      string
	refs      int // connections holding it (refcnt minus the list's own)
	idleStart time.Duration
	trashed   bool
}

type trConn struct {
	dest    *trDest
	expires time.Duration
	alive   bool
}

// trKernel is the model: services and their dest lists, the trash list and
// its timer, and connections with their own timers.
type trKernel struct {
	now   time.Duration
	svcs  map[string]map[string]*trDest
	trash []*trDest
	armed bool
	timer time.Duration
	conns map[uint16]*trConn
	objs  int
}

func newTrKernel() *trKernel {
	return &trKernel{svcs: map[string]map[string]*trDest{}, conns: map[uint16]*trConn{}}
}

// addDest is ip_vs_add_dest: a dest from the trash with the same service
// key, address and port comes back; otherwise a new one.
func (k *trKernel) addDest(svc, addr string) *trDest {
	for i, d := range k.trash {
		if d.svc == svc && d.addr == addr { // ip_vs_trash_get_dest
			k.trash = slices.Delete(k.trash, i, i+1)
			d.trashed = false
			k.svcs[svc][addr] = d
			return d
		}
	}
	k.objs++
	d := &trDest{obj: k.objs, svc: svc, addr: addr}
	k.svcs[svc][addr] = d
	return d
}

// delDest is ip_vs_del_dest → __ip_vs_del_dest.
func (k *trKernel) delDest(svc, addr string) {
	d := k.svcs[svc][addr]
	delete(k.svcs[svc], addr)
	if len(k.trash) == 0 {
		k.armed, k.timer = true, k.now+trPeriod/2 // mod_timer
	}
	k.trash = append([]*trDest{d}, k.trash...) // list_add
	d.idleStart, d.trashed = 0, true
}

// delService is __ip_vs_del_service: every dest goes to the trash.
func (k *trKernel) delService(svc string) {
	addrs := make([]string, 0, len(k.svcs[svc]))
	for a := range k.svcs[svc] {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		k.delDest(svc, a)
	}
	delete(k.svcs, svc)
}

// nextEvent is the earliest timer (a connection's or the trash's) due by
// until.
func (k *trKernel) nextEvent(until time.Duration) (time.Duration, bool) {
	at, ok := time.Duration(0), false
	for _, c := range k.conns {
		if c.alive && c.expires <= until && (!ok || c.expires < at) {
			at, ok = c.expires, true
		}
	}
	if k.armed && k.timer <= until && (!ok || k.timer < at) {
		at, ok = k.timer, true
	}
	return at, ok
}

// fire runs the timers due at k.now: ip_vs_conn_expire unbinds the dest;
// ip_vs_dest_trash_expire frees idle dests.
func (k *trKernel) fire() {
	for _, c := range k.conns {
		if c.alive && c.expires == k.now {
			c.alive = false
			c.dest.refs--
		}
	}
	if !k.armed || k.timer != k.now {
		return
	}
	kept := k.trash[:0]
	for _, d := range k.trash {
		switch {
		case d.refs > 0:
		case d.idleStart == 0:
			d.idleStart = max(k.now, 1)
		case k.now < d.idleStart+trPeriod:
		default:
			continue // freed
		}
		kept = append(kept, d)
	}
	k.trash = kept
	if len(k.trash) > 0 {
		k.timer = k.now + trPeriod/2
	} else {
		k.armed = false
	}
}

// trAFVS is the code under test.
type trAFVS struct {
	clock *conntrack.ManualClock
	loads *sched.Loads
	ct    *conntrack.Table
	reg   *dataplane.Registry
	proc  *dataplane.Processor
	snap  *dataplane.Snapshot
	table *vs.Table
	buf   []byte
}

var trMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}

func newTrAFVS(t *testing.T) *trAFVS {
	a := &trAFVS{clock: &conntrack.ManualClock{}, loads: sched.NewLoads(dataplane.MaxDests), table: &vs.Table{}, buf: make([]byte, 4096)}
	var err error
	a.ct, err = conntrack.New(conntrack.Config{Capacity: 4096, Templates: 64, Clock: a.clock, Hooks: a.loads})
	if err != nil {
		t.Fatal(err)
	}
	a.reg = dataplane.NewRegistryClock(a.clock.Now)
	a.proc = dataplane.NewProcessor(a.ct, new(dataplane.Counters), 0)
	if err := a.apply(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *trAFVS) apply() error {
	snap, err := dataplane.Build(a.table, dataplane.BuildOptions{Registry: a.reg, Loads: a.loads, Resolver: dataplane.StaticResolver{},
		Ifaces: []dataplane.Iface{{Slot: 0, Index: 1, Name: "k0", MAC: trMAC, MTU: 1500, Addr: [4]byte{198, 18, 0, 1}}}, Prev: a.snap})
	if err != nil {
		return err
	}
	a.snap = snap
	return nil
}

func (a *trAFVS) admin(line string) error {
	cmd, err := ipvsadm.Parse(strings.Fields(line))
	if err != nil {
		return err
	}
	next := a.table.Clone()
	if err := apply.Command(next, cmd); err != nil {
		return err
	}
	prev := a.table
	a.table = next
	if err := a.apply(); err != nil {
		a.table = prev
		return err
	}
	return nil
}

// advance moves the clock and lets the housekeeping run: a full sweep
// (expiries reach the load counters) and the trash timer.
func (a *trAFVS) advance(to time.Duration) {
	a.clock.Set(to)
	a.ct.Sweep(a.ct.Slots())
	tmpl := map[uint32]bool{}
	a.ct.Range(func(_ conntrack.Key, c conntrack.Conn, _ time.Duration, template bool) bool {
		if template {
			tmpl[c.Dest] = true
		}
		return true
	})
	a.reg.ExpireTrash(func(id uint32) bool { return a.loads.Active(id) != 0 || a.loads.Inactive(id) != 0 || tmpl[id] })
}

func (a *trAFVS) packet(t *testing.T, vport, sport uint16, syn bool) (dataplane.Verdict, dataplane.Decision) {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, DstMAC: net.HardwareAddr(trMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{198, 18, 64, 1}, DstIP: net.IP{198, 19, 0, 1}}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(vport), SYN: syn, ACK: !syn, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	b := gopacket.NewSerializeBuffer()
	var payload []byte
	if !syn {
		payload = make([]byte, 10)
	}
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	n := copy(a.buf[256:], b.Bytes())
	a.proc.Last = dataplane.Decision{}
	v, _ := a.proc.Process(a.snap, a.buf, 256, n)
	return v, a.proc.Last
}

// trashRun drives the model and afvs through one sequence of operations
// and compares them after every step.
type trashRun struct {
	t    *testing.T
	k    *trKernel
	a    *trAFVS
	ids  map[int]uint32 // model dest -> afvs ID it has had
	used map[uint32]int // afvs ID -> model dest that had it
	port uint16
	log  []string
}

func (r *trashRun) failf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nafter:\n  %s", fmt.Sprintf(format, args...), strings.Join(r.log, "\n  "))
}

func trSvcPort(svc string) uint16 {
	var p uint16
	fmt.Sscanf(svc[strings.LastIndex(svc, ":")+1:], "%d", &p)
	return p
}

// to moves both to time at, running each model timer at its instant and
// letting afvs's housekeeping run just after it.
func (r *trashRun) to(at time.Duration) {
	for {
		e, ok := r.k.nextEvent(at)
		if !ok {
			break
		}
		r.k.now = e
		r.k.fire()
		r.a.advance(e + time.Millisecond)
		r.compare(fmt.Sprintf("timers at %v", e))
	}
	r.k.now = at
	r.a.advance(at)
}

func (r *trashRun) cmd(line string, model func()) {
	r.t.Helper()
	r.log = append(r.log, fmt.Sprintf("%v: %s", r.k.now, line))
	model()
	if err := r.a.admin(line); err != nil {
		r.failf("%s: afvs refused: %v", line, err)
	}
	r.compare(line)
}

func (r *trashRun) open(svc string) {
	r.t.Helper()
	r.port++
	p := r.port
	v, d := r.a.packet(r.t, trSvcPort(svc), p, true)
	r.log = append(r.log, fmt.Sprintf("%v: SYN :%d to %s", r.k.now, p, svc))
	if v != dataplane.VerdictForward || !d.Found {
		r.failf("SYN to %s with %d dests not forwarded", svc, len(r.k.svcs[svc]))
	}
	_, dest, ok := r.a.snap.DestByID(d.Dest)
	if !ok {
		r.failf("SYN scheduled to ID %d, not in the snapshot", d.Dest)
	}
	addr := netip.AddrFrom4(dest.Addr).String()
	kd := r.k.svcs[svc][addr]
	if kd == nil {
		r.failf("afvs scheduled %s to %s, which the model's service does not have", svc, addr)
	}
	if v, _ := r.a.packet(r.t, trSvcPort(svc), p, false); v != dataplane.VerdictForward {
		r.failf("ACK of the new connection :%d not forwarded", p)
	}
	kd.refs++
	r.k.conns[p] = &trConn{dest: kd, expires: r.k.now + trEstablished + trSlack, alive: true}
	r.compare("open")
}

func (r *trashRun) data(p uint16, svc string) {
	r.t.Helper()
	c := r.k.conns[p]
	v, _ := r.a.packet(r.t, trSvcPort(svc), p, false)
	// ip_vs_in_hook: a packet of a connection whose dest is not
	// AVAILABLE (not in a service) is dropped without refreshing it.
	want := c.alive && !c.dest.trashed && r.k.svcs[c.dest.svc][c.dest.addr] == c.dest
	r.log = append(r.log, fmt.Sprintf("%v: data :%d (model forwards: %v)", r.k.now, p, want))
	if got := v == dataplane.VerdictForward; got != want {
		r.failf("data on :%d (dest %s of %s, alive %v, trashed %v): afvs forwards %v, the kernel %v", p, c.dest.addr, c.dest.svc, c.alive, c.dest.trashed, got, want)
	}
	if want {
		c.expires = trRearm(c.expires, r.k.now)
	}
}

// compare checks identities, counters, the trash and its timer.
func (r *trashRun) compare(what string) {
	r.t.Helper()
	for svc, dests := range r.k.svcs {
		for addr, kd := range dests {
			cs, ok := r.a.snap.ServiceByKey(trKeyOf(svc))
			if !ok {
				r.failf("%s: afvs has no service %s", what, svc)
			}
			var id uint32
			found := false
			for _, d := range cs.Dests {
				if netip.AddrFrom4(d.Addr).String() == addr {
					id, found = d.ID, true
				}
			}
			if !found {
				r.failf("%s: afvs's %s has no dest %s", what, svc, addr)
			}
			if old, seen := r.ids[kd.obj]; seen && old != id {
				r.failf("%s: %s in %s is the same kernel dest as before (trash) but afvs gave it ID %d, was %d", what, addr, svc, id, old)
			} else if !seen {
				if other, taken := r.used[id]; taken && other != kd.obj {
					r.failf("%s: %s in %s is a new kernel dest but afvs gave it ID %d of an earlier dest", what, addr, svc, id)
				}
				r.ids[kd.obj], r.used[id] = id, kd.obj
			}
			if got := r.a.loads.Active(id); int(got) != kd.refs {
				r.failf("%s: %s in %s: afvs counts %d active connections, the kernel %d", what, addr, svc, got, kd.refs)
			}
		}
	}
	if r.a.reg.TrashLen() != len(r.k.trash) {
		r.failf("%s: afvs's trash holds %d dests, the kernel's %d", what, r.a.reg.TrashLen(), len(r.k.trash))
	}
	for _, kd := range r.k.trash {
		id, seen := r.ids[kd.obj]
		if !seen {
			continue
		}
		key, ok := r.a.reg.Trashed(id)
		if !ok || key.Addr.String() != kd.addr || trSvcString(key.Svc) != kd.svc {
			r.failf("%s: the kernel's trash holds %s of %s (ID %d); afvs's has %v %v", what, kd.addr, kd.svc, id, key, ok)
		}
	}
	at, armed := r.a.reg.NextTrashRound()
	if armed != r.k.armed || (armed && at != r.k.timer) {
		r.failf("%s: afvs's trash timer %v (armed %v), the kernel's %v (armed %v)", what, at, armed, r.k.timer, r.k.armed)
	}
}

func trKeyOf(svc string) vs.Key {
	ap := netip.MustParseAddrPort(strings.TrimPrefix(svc, "tcp "))
	return vs.Key{Proto: vs.TCP, Addr: ap.Addr(), Port: ap.Port()}
}

func trSvcString(k vs.Key) string { return "tcp " + netip.AddrPortFrom(k.Addr, k.Port).String() }

var (
	trSvcs  = []string{"tcp 198.19.0.1:80", "tcp 198.19.0.1:81"}
	trAddrs = []string{"198.18.0.11", "198.18.0.12", "198.18.0.13"}
)

func newTrashRun(t *testing.T) *trashRun {
	return &trashRun{t: t, k: newTrKernel(), a: newTrAFVS(t), ids: map[int]uint32{}, used: map[uint32]int{}, port: 1000}
}

func (r *trashRun) addService(svc string) {
	r.cmd("-A -t "+strings.TrimPrefix(svc, "tcp ")+" -s rr", func() { r.k.svcs[svc] = map[string]*trDest{} })
}

func (r *trashRun) delService(svc string) {
	r.cmd("-D -t "+strings.TrimPrefix(svc, "tcp "), func() { r.k.delService(svc) })
}

func (r *trashRun) addDest(svc, addr string) {
	r.cmd(fmt.Sprintf("-a -t %s -r %s:%d -g", strings.TrimPrefix(svc, "tcp "), addr, trSvcPort(svc)), func() { r.k.addDest(svc, addr) })
}

func (r *trashRun) delDest(svc, addr string) {
	r.cmd(fmt.Sprintf("-d -t %s -r %s:%d", strings.TrimPrefix(svc, "tcp "), addr, trSvcPort(svc)), func() { r.k.delDest(svc, addr) })
}

// at moves to second s plus frac: packets happen at .250, admin commands
// at .750, so no timer of one ever ties with the other's.
func (r *trashRun) at(s int, frac time.Duration) {
	r.to(time.Duration(s)*time.Second + frac)
}

// TestKernelTrashTargeted: the sequences, each against the model.
func TestKernelTrashTargeted(t *testing.T) {
	const pkt, adm = 250 * time.Millisecond, 750 * time.Millisecond
	t.Run("del_readd", func(t *testing.T) {
		r := newTrashRun(t)
		svc := trSvcs[0]
		r.at(1, adm)
		r.addService(svc)
		r.addDest(svc, trAddrs[0])
		r.addDest(svc, trAddrs[1])
		r.at(2, pkt)
		for range 12 {
			r.open(svc)
		}
		r.at(3, adm)
		r.delDest(svc, trAddrs[1])
		r.at(3, adm+200*time.Millisecond) // 0.2 s later
		r.addDest(svc, trAddrs[1])
		r.at(4, pkt)
		for p := uint16(1001); p <= 1012; p++ {
			r.data(p, svc)
		}
	})
	t.Run("svc_recreate", func(t *testing.T) {
		r := newTrashRun(t)
		svc := trSvcs[0]
		r.at(1, adm)
		r.addService(svc)
		r.addDest(svc, trAddrs[0])
		r.at(2, pkt)
		r.open(svc)
		r.at(10, adm)
		r.delService(svc)
		r.at(11, pkt)
		r.data(1001, svc)
		r.at(50, adm)
		r.addService(svc)
		r.addDest(svc, trAddrs[0])
		r.at(51, pkt)
		r.data(1001, svc)
	})
	t.Run("expire_then_readd", func(t *testing.T) {
		r := newTrashRun(t)
		svc := trSvcs[0]
		r.at(1, adm)
		r.addService(svc)
		r.addDest(svc, trAddrs[0])
		r.addDest(svc, trAddrs[1])
		r.at(2, pkt)
		r.open(svc)
		r.open(svc)
		r.at(5, adm)
		r.delDest(svc, trAddrs[0])
		// Its connection expires at 916.312 (902.25 and the slack);
		// the rounds after it mark and then free it.
		r.at(1100, adm)
		r.addDest(svc, trAddrs[0])
		r.at(1101, pkt)
		r.open(svc)
		r.open(svc)
	})
}

// TestKernelTrashRandom: random sequences of -A/-D/-a/-d, new connections,
// packets on old ones and waits, with fixed seeds.
func TestKernelTrashRandom(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 0x7a5c))
			r := newTrashRun(t)
			sec := 1
			connSvc := map[uint16]string{}
			for range 120 {
				switch op := rng.IntN(10); {
				case op < 2: // wait
					sec += []int{1, 5, 30, 61, 119, 200, 900}[rng.IntN(7)]
				case op < 4: // admin
					r.at(sec, 750*time.Millisecond)
					svc := trSvcs[rng.IntN(len(trSvcs))]
					addr := trAddrs[rng.IntN(len(trAddrs))]
					dests, present := r.k.svcs[svc]
					switch {
					case !present:
						r.addService(svc)
					case rng.IntN(8) == 0:
						r.delService(svc)
					case dests[addr] == nil:
						r.addDest(svc, addr)
					default:
						r.delDest(svc, addr)
					}
					sec++
				case op < 6: // new connection
					r.at(sec, 250*time.Millisecond)
					svc := trSvcs[rng.IntN(len(trSvcs))]
					if len(r.k.svcs[svc]) > 0 {
						r.open(svc)
						connSvc[r.port] = svc
					}
					sec++
				default: // a packet on an earlier connection
					if r.port == 1000 {
						continue
					}
					r.at(sec, 250*time.Millisecond)
					p := uint16(1001 + rng.IntN(int(r.port-1000)))
					r.data(p, connSvc[p])
					sec++
				}
			}
		})
	}
}

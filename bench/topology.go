package bench

import (
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"

	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/internal/testnet"
)

// NamePrefix starts the name of every namespace the harness makes; the
// full prefix of one process is NamePrefix-<pid>-.
const NamePrefix = "afvsb"

// Prefix is the namespace-name prefix of this process's benchmark
// networks, for checking that none is left behind.
func Prefix() string { return fmt.Sprintf("%s-%d-", NamePrefix, os.Getpid()) }

var netSeq atomic.Int64

// Addresses of the benchmark network, all in 198.18.0.0/15.
var (
	GenAddr    = netip.MustParseAddr("198.18.0.2")
	DirInAddr  = netip.MustParseAddr("198.18.0.1")
	DirOutAddr = netip.MustParseAddr("198.18.1.1")
	SinkAddr   = netip.MustParseAddr("198.18.1.2")
	VIP        = netip.MustParseAddr("198.19.0.1")
	VIPPort    = uint16(9) // discard
	// NATRealPort is the real server's port in the VS/NAT scenarios: the
	// director maps VIPPort to it and back.
	NATRealPort = uint16(8009)
	ingressName = "eth0"
	egressName  = "eth1"
)

// link is one end of a veth as the harness needs it.
type link struct {
	ns    *testnet.NS
	name  string
	index int
	mac   [6]byte
}

// topology is the two-interface layout every scenario runs on:
//
//	gen eth0 --veth-- eth0 dir eth1 --veth-- eth0 sink
//	198.18.0.2        198.18.0.1  198.18.1.1    198.18.1.2
//
// The sink's interface drops everything in XDP, so it never answers ARP;
// the director instead holds a permanent neighbour entry for 198.18.1.2.
// IPv6 is off in every namespace so that no router solicitation or MLD
// report lands on a counted interface.
type topology struct {
	net                  *testnet.Net
	gen, dir, sink       *testnet.NS
	genIf, dirIn, dirOut link
	sinkIf               link
	queues               int // TX and RX queues of every veth
}

// newTopology builds the network for one scenario, each veth with queues
// TX and RX queues. On error it removes what it made.
func newTopology(scenario string, queues int) (t *topology, err error) {
	n := &testnet.Net{Prefix: fmt.Sprintf("%s%d-%s", Prefix(), netSeq.Add(1), scenario)}
	t = &topology{net: n, queues: queues}
	defer func() {
		if err != nil {
			n.Close()
			t = nil
		}
	}()
	for _, p := range []struct {
		dst  **testnet.NS
		name string
	}{{&t.gen, "gen"}, {&t.dir, "dir"}, {&t.sink, "sink"}} {
		ns, err := n.NS(p.name)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", p.name, err)
		}
		for _, key := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
			if err := ns.Sysctl(key, "1"); err != nil {
				return nil, fmt.Errorf("namespace %s: %w", p.name, err)
			}
		}
		*p.dst = ns
	}
	if err := testnet.VethQueues(t.gen, ingressName, t.dir, ingressName, queues); err != nil {
		return nil, err
	}
	if err := testnet.VethQueues(t.dir, egressName, t.sink, ingressName, queues); err != nil {
		return nil, err
	}
	addrs := []struct {
		ns   *testnet.NS
		dev  string
		addr netip.Addr
	}{
		{t.gen, ingressName, GenAddr},
		{t.dir, ingressName, DirInAddr},
		{t.dir, egressName, DirOutAddr},
		{t.sink, ingressName, SinkAddr},
	}
	for _, a := range addrs {
		if err := a.ns.IP("addr", "add", a.addr.String()+"/24", "dev", a.dev); err != nil {
			return nil, err
		}
	}
	for _, l := range []struct {
		dst *link
		ns  *testnet.NS
		dev string
	}{{&t.genIf, t.gen, ingressName}, {&t.dirIn, t.dir, ingressName}, {&t.dirOut, t.dir, egressName}, {&t.sinkIf, t.sink, ingressName}} {
		var ifc nic.Iface
		if err := l.ns.Do(func() (err error) { ifc, err = nic.Lookup(l.dev); return err }); err != nil {
			return nil, fmt.Errorf("look up %s in %s: %w", l.dev, l.ns.Name, err)
		}
		*l.dst = link{ns: l.ns, name: l.dev, index: ifc.Index, mac: ifc.MAC}
	}
	mac := macString(t.sinkIf.mac)
	if err := t.dir.IP("neigh", "replace", SinkAddr.String(), "lladdr", mac, "dev", egressName, "nud", "permanent"); err != nil {
		return nil, err
	}
	return t, nil
}

// frame is the generator's frame: from the generator to the VIP, through
// the director's ingress interface.
func (t *topology) frame() Frame {
	return Frame{SrcMAC: t.genIf.mac, DstMAC: t.dirIn.mac, Src: GenAddr, Dst: VIP, DstPort: VIPPort, SrcPort: FirstSourcePort, Len: MinFrameLen}
}

// replyFrame is the VS/NAT real server's reply to the generator's frame:
// from the sink's NATRealPort to the generator, through the director's
// eth1 (NewReplyGenerator sets each flow's destination port).
func (t *topology) replyFrame() Frame {
	return Frame{SrcMAC: t.sinkIf.mac, DstMAC: t.dirOut.mac, Src: SinkAddr, Dst: GenAddr, SrcPort: NATRealPort, DstPort: FirstSourcePort, Len: MinFrameLen}
}

func (t *topology) close() error { return t.net.Close() }

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

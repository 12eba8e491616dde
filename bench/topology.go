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

// Addresses of the IPv6 scenarios, all in 2001:2::/48: the same segments
// as above, 2001:2::/64 between the generator and the director and
// 2001:2:0:1::/64 between the director and the sink.
var (
	GenAddr6    = netip.MustParseAddr("2001:2::2")
	DirInAddr6  = netip.MustParseAddr("2001:2::1")
	DirOutAddr6 = netip.MustParseAddr("2001:2:0:1::1")
	SinkAddr6   = netip.MustParseAddr("2001:2:0:1::2")
	VIP6        = netip.MustParseAddr("2001:2:0:100::1")
)

// dirIPv6Sysctls keep the director's kernel quiet on the IPv6 scenarios'
// links, so that what the sink counts is what the forwarder sent: no
// duplicate address detection or router solicitation, and the MLD reports
// for the groups its addresses join all sent at once, while the topology
// is built, rather than retransmitted up to a second later into the
// measured run.
var dirIPv6Sysctls = [][2]string{
	{"net.ipv6.conf.default.accept_dad", "0"},
	{"net.ipv6.conf.default.accept_ra", "0"},
	{"net.ipv6.conf.default.router_solicitations", "0"},
	{"net.ipv6.conf.default.mldv2_unsolicited_report_interval", "1"},
	{"net.ipv6.conf.default.mldv1_unsolicited_report_interval", "1"},
}

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
// report lands on a counted interface; except, for the IPv6 scenarios, in
// the director's, whose interfaces then also have 2001:2::1/64 and
// 2001:2:0:1::1/64 (without duplicate address detection) and a permanent
// neighbour entry for the sink's 2001:2:0:1::2. The generator and the sink
// need no IPv6 stack: one sends with AF_XDP, the other drops in XDP.
type topology struct {
	net                  *testnet.Net
	gen, dir, sink       *testnet.NS
	genIf, dirIn, dirOut link
	sinkIf               link
	queues               int  // TX and RX queues of every veth
	v6                   bool // the IPv6 scenarios' addresses and frames
}

// newTopology builds the network for one scenario, each veth with queues
// TX and RX queues, with the IPv6 addresses when v6. On error it removes
// what it made.
func newTopology(scenario string, queues int, v6 bool) (t *topology, err error) {
	n := &testnet.Net{Prefix: fmt.Sprintf("%s%d-%s", Prefix(), netSeq.Add(1), scenario)}
	t = &topology{net: n, queues: queues, v6: v6}
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
		sysctls := [][2]string{{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv6.conf.default.disable_ipv6", "1"}}
		if v6 && p.name == "dir" {
			sysctls = dirIPv6Sysctls
		}
		for _, kv := range sysctls {
			if err := ns.Sysctl(kv[0], kv[1]); err != nil {
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
	if v6 {
		addrs = append(addrs, []struct {
			ns   *testnet.NS
			dev  string
			addr netip.Addr
		}{{t.dir, ingressName, DirInAddr6}, {t.dir, egressName, DirOutAddr6}}...)
	}
	for _, a := range addrs {
		args := []string{"addr", "add", a.addr.String() + "/24", "dev", a.dev}
		if a.addr.Is6() {
			args = []string{"-6", "addr", "add", a.addr.String() + "/64", "dev", a.dev, "nodad"}
		}
		if err := a.ns.IP(args...); err != nil {
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
	if v6 {
		if err := t.dir.IP("-6", "neigh", "replace", SinkAddr6.String(), "lladdr", mac, "dev", egressName, "nud", "permanent"); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// frame is the generator's frame: from the generator to the VIP, through
// the director's ingress interface; over IPv6 in an IPv6 topology, and
// then the shortest IPv6 frame.
func (t *topology) frame() Frame {
	if t.v6 {
		return Frame{SrcMAC: t.genIf.mac, DstMAC: t.dirIn.mac, Src: GenAddr6, Dst: VIP6, DstPort: VIPPort, SrcPort: FirstSourcePort, Len: MinFrameLen6}
	}
	return Frame{SrcMAC: t.genIf.mac, DstMAC: t.dirIn.mac, Src: GenAddr, Dst: VIP, DstPort: VIPPort, SrcPort: FirstSourcePort, Len: MinFrameLen}
}

// vip and sinkAddr are the service's VIP and its real server's address
// in the topology's family.
func (t *topology) vip() netip.Addr {
	if t.v6 {
		return VIP6
	}
	return VIP
}

func (t *topology) sinkAddr() netip.Addr {
	if t.v6 {
		return SinkAddr6
	}
	return SinkAddr
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

package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/afvs/afvs/internal/testnet"
)

// directorConfig is the afvs config for one forwarding mode: one UDP
// service on the VIP with the sink as its only real server. afvs finds
// the egress interface (eth1) through the route to the sink, and the
// sink's MAC through the permanent neighbour entry. In mode nat afvs
// receives on eth1 too, where the real server's replies arrive, and the
// real server listens on NATRealPort.
// poll, when set, is the config's poll section (such as "{mode: busy}").
func directorConfig(mode, socket string, flows int, poll string) string {
	return directorConfigAddrs(mode, socket, flows, poll, VIP, SinkAddr)
}

// directorConfigAddrs is directorConfig with the VIP and the real
// server's address given: IPv6 ones for the IPv6 scenarios (quoted, so
// that no YAML reader takes the colons for anything else).
func directorConfigAddrs(mode, socket string, flows int, poll string, vip, real netip.Addr) string {
	capacity := 1 << 16
	for capacity < 2*flows {
		capacity <<= 1
	}
	var b strings.Builder
	ifs := ingressName
	if mode == "nat" {
		ifs += ", " + egressName
	}
	fmt.Fprintf(&b, "interfaces: [%s]\nxdp_mode: auto\n", ifs)
	// Each namespace has its own loopback, so the default metrics port
	// cannot clash with another afvs.
	fmt.Fprintf(&b, "metrics:\n  address: 127.0.0.1:9469\ncontrol:\n  socket: %s\nlog:\n  level: info\n", socket)
	fmt.Fprintf(&b, "table:\n  capacity: %d\n", capacity)
	if poll != "" {
		fmt.Fprintf(&b, "poll: %s\n", poll)
	}
	fmt.Fprintf(&b, "services:\n  - proto: udp\n    address: %q\n    port: %d\n    scheduler: rr\n    forward: %s\n", vip, VIPPort, mode)
	if mode == "nat" {
		fmt.Fprintf(&b, "    reals:\n      - {address: %q, port: %d, weight: 1}\n", real, NATRealPort)
	} else {
		fmt.Fprintf(&b, "    reals:\n      - {address: %q, weight: 1}\n", real)
	}
	return b.String()
}

// startDirector writes the config and starts afvs, returning once its
// control socket answers. stop stops it and removes the scratch directory.
func startDirector(t *topology, afvs, mode string, flows int) (d *testnet.Daemon, stop func() error, err error) {
	d, _, stop, err = startDirectorPoll(t, afvs, mode, flows, "")
	return d, stop, err
}

// startDirectorPoll is startDirector with a poll section; it also
// returns a function that rewrites the config with another poll section
// and has afvs reload it (SIGHUP).
func startDirectorPoll(t *topology, afvs, mode string, flows int, poll string) (d *testnet.Daemon, reload func(poll string) error, stop func() error, err error) {
	tmp, err := os.MkdirTemp("", "afvs-bench-")
	if err != nil {
		return nil, nil, nil, err
	}
	socket := filepath.Join(tmp, "afvs.sock")
	cfg := filepath.Join(tmp, "afvs.yaml")
	config := func(poll string) []byte {
		return []byte(directorConfigAddrs(mode, socket, flows, poll, t.vip(), t.sinkAddr()))
	}
	if err := os.WriteFile(cfg, config(poll), 0o644); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, nil, err
	}
	reload = func(poll string) error {
		if err := os.WriteFile(cfg, config(poll), 0o644); err != nil {
			return err
		}
		return d.Process().Signal(syscall.SIGHUP)
	}
	d, err = testnet.StartDaemon(t.dir, afvs, socket, "run", "--config", cfg)
	stop = func() error {
		defer os.RemoveAll(tmp)
		if d == nil {
			return nil
		}
		if os.Getenv("AFVS_BENCH_LOG") != "" {
			fmt.Fprintln(os.Stderr, d.Log.String())
		}
		return d.Stop(syscall.SIGTERM)
	}
	if err != nil {
		_ = stop()
		return nil, nil, nil, err
	}
	return d, reload, stop, nil
}

// tail is the last part of afvs's output, enough to show why it failed.
func tail(d *testnet.Daemon) string {
	s := strings.TrimSpace(d.Log.String())
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

package bench

import (
	"fmt"
	"slices"
	"strings"
)

// Scenario is one measured path.
type Scenario string

const (
	// Offered: the generator straight into a drop sink on the director's
	// ingress interface: what the path carries with no forwarder.
	Offered Scenario = "offered"
	// Baseline: the plain MAC-rewriting AF_XDP forwarder on the director.
	Baseline Scenario = "baseline"
	// DR: afvs run forwarding in VS/DR mode.
	DR Scenario = "dr"
	// TUN: afvs run forwarding in VS/TUN (IPIP) mode.
	TUN Scenario = "tun"
	// Offered6, Baseline6, DR6 and TUN6 are offered, baseline, dr and
	// tun with IPv6 frames (MinFrameLen6 bytes) to an IPv6 VIP, whose
	// real server is the sink's IPv6 address; tun6 sends IPv6-in-IPv6.
	// Each is reported beside its IPv4 scenario, as a ratio from the
	// same rounds.
	Offered6  Scenario = "offered6"
	Baseline6 Scenario = "baseline6"
	DR6       Scenario = "dr6"
	TUN6      Scenario = "tun6"
	// NAT: afvs in VS/NAT mode receiving on both of the director's
	// interfaces (the LVS manual's two-interface NAT layout): the client
	// -> real server direction, VIP:9 rewritten to the sink's address and
	// NATRealPort.
	NAT Scenario = "nat"
	// NATReply: the same director, the real server -> client direction:
	// with every flow opened by the client's generator, a second
	// generator on the sink's side sends each flow's reply, from the
	// sink's NATRealPort to the client's port, and a drop sink on the
	// client's interface counts them, rewritten to come from VIP:9.
	NATReply Scenario = "nat-reply"
	// KernelXDPDR and KernelXDPTUN: the in-kernel XDP load balancer
	// (xdpprog.KernelLB) on the director's eth0, forwarding by MAC rewrite
	// or IPIP through XDP_REDIRECT: what a Katran user gets.
	KernelXDPDR  Scenario = "kernel-xdp-dr"
	KernelXDPTUN Scenario = "kernel-xdp-tun"
	// DR2Q: afvs in VS/DR mode on veths with two queues: two workers,
	// each fed by a generator of its own on the matching queue.
	DR2Q Scenario = "dr-2q"
	// NewFlows: afvs in VS/DR mode with every frame a new flow (the
	// generator cycles through MaxFlows, more than a run sends): new
	// connections per second, scheduling and insertion included.
	NewFlows Scenario = "new-flows"
	// Latency: UDP request/response round trips at low load, direct and
	// through afvs in VS/DR mode in each poll mode (with the idle CPU cost
	// of each mode) and through the kernel XDP load balancer.
	Latency Scenario = "latency"
)

// AllScenarios is every scenario in the order the harness runs them.
var AllScenarios = []Scenario{Offered, Offered6, Baseline, Baseline6, DR, DR6, TUN, TUN6, NAT, NATReply, DR2Q, KernelXDPDR, KernelXDPTUN, NewFlows, Latency}

// scenarioNames lists AllScenarios for error messages.
func scenarioNames() string {
	var b strings.Builder
	for i, s := range AllScenarios {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// NeedsAFVS reports whether the scenario runs the afvs binary.
func (s Scenario) NeedsAFVS() bool {
	return s == DR || s == TUN || s == DR6 || s == TUN6 || s == NAT || s == NATReply || s == DR2Q || s == NewFlows || s == Latency
}

// ipv4Peers maps each IPv6 scenario to its IPv4 one.
var ipv4Peers = map[Scenario]Scenario{Offered6: Offered, Baseline6: Baseline, DR6: DR, TUN6: TUN}

// IPv6 reports whether the scenario sends IPv6 frames.
func (s Scenario) IPv6() bool { _, ok := ipv4Peers[s]; return ok }

// IPv4Peer is the IPv4 scenario an IPv6 one is compared with; "" for the
// others.
func (s Scenario) IPv4Peer() Scenario { return ipv4Peers[s] }

// base is the scenario with the family taken away: dr for dr6.
func (s Scenario) base() Scenario {
	if p := s.IPv4Peer(); p != "" {
		return p
	}
	return s
}

// baseline is the forwarder scenario a scenario's rate is paired with,
// round by round: baseline6 for the IPv6 ones, baseline for the other
// forwarders, "" for the offered loads, the baselines themselves and
// latency.
func (s Scenario) baseline() Scenario {
	switch s {
	case Offered, Offered6, Baseline, Baseline6, Latency:
		return ""
	}
	if s.IPv6() {
		return Baseline6
	}
	return Baseline
}

// ParseScenarios reads a comma-separated list such as "offered,dr". An
// empty string or "all" selects every scenario.
func ParseScenarios(s string) ([]Scenario, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return slices.Clone(AllScenarios), nil
	}
	var out []Scenario
	for _, f := range strings.Split(s, ",") {
		sc := Scenario(strings.TrimSpace(f))
		if !slices.Contains(AllScenarios, sc) {
			return nil, fmt.Errorf("scenario %q: must be one of %s (or all)", f, scenarioNames())
		}
		if slices.Contains(out, sc) {
			return nil, fmt.Errorf("scenario %q: listed twice", f)
		}
		out = append(out, sc)
	}
	return out, nil
}

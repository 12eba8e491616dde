package sim

import (
	"bufio"
	"container/heap"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Workload describes a synthetic trace: connections arrive as a Poisson
// process, last a random time drawn from Dist with mean MeanDuration, and
// come from Clients client addresses. Servers and Weights describe the
// real servers of the config WriteConfig writes for it.
type Workload struct {
	Seed         uint64
	Length       time.Duration // arrivals happen in [0, Length)
	Rate         float64       // connections per second
	Dist         string        // exponential, lognormal or pareto
	MeanDuration time.Duration
	// Shape is lognormal's sigma (default 1) or Pareto's alpha (default
	// 2.5; it must exceed 1 for the mean to exist).
	Shape   float64
	Clients int
	Proto   string         // tcp or udp
	VIP     netip.AddrPort // the virtual service
	// Packets is how many packets each connection sends between its first
	// and last (ACK lines for TCP, datagrams for UDP); default 2. The first
	// follows 1 ms after the SYN, the others spread over the duration.
	Packets int
	// Servers real servers with these weights (cycled when shorter), for
	// WriteConfig; the addresses are 198.18.1.1, 198.18.1.2, ... for an
	// IPv4 VIP and 2001:2::1:1, 2001:2::1:2, ... for an IPv6 one.
	Servers   int
	Weights   []int
	Scheduler string // for WriteConfig; default wlc
}

// Distributions the generator knows.
var Dists = []string{"exponential", "lognormal", "pareto"}

// clientBase is where generated client addresses start: 198.18.64.0,
// inside the RFC 2544 benchmark range; IPv6 clients are 2001:2:0:64::1
// on, inside RFC 5180's benchmark range.
var (
	clientBase  = [4]byte{198, 18, 64, 0}
	clientBase6 = netip.MustParseAddr("2001:2:0:64::").As16()
)

// clientAddr is generated client ci (0..65535) of the VIP's family.
func clientAddr(ci int, v6 bool) netip.Addr {
	if v6 {
		a := clientBase6
		n := uint32(ci) + 1
		a[13], a[14], a[15] = byte(n>>16), byte(n>>8), byte(n)
		return netip.AddrFrom16(a)
	}
	a := clientBase
	a[2] += byte(ci >> 8)
	a[3] = byte(ci)
	return netip.AddrFrom4(a)
}

func (w *Workload) fill() error {
	if w.Dist == "" {
		w.Dist = "exponential"
	}
	if w.Proto == "" {
		w.Proto = "tcp"
	}
	if !w.VIP.IsValid() {
		w.VIP = netip.MustParseAddrPort("198.19.0.1:80")
	}
	if w.Packets == 0 {
		w.Packets = 2
	}
	if w.Scheduler == "" {
		w.Scheduler = "wlc"
	}
	switch w.Dist {
	case "exponential":
	case "lognormal":
		if w.Shape == 0 {
			w.Shape = 1
		}
		if w.Shape < 0 || w.Shape > 5 {
			return fmt.Errorf("workload: lognormal sigma %g: must be in (0, 5]", w.Shape)
		}
	case "pareto":
		if w.Shape == 0 {
			w.Shape = 2.5
		}
		if w.Shape <= 1 {
			return fmt.Errorf("workload: pareto alpha %g: must exceed 1 for the mean to exist", w.Shape)
		}
	default:
		return fmt.Errorf("workload: distribution %q: must be one of %s", w.Dist, strings.Join(Dists, ", "))
	}
	switch {
	case w.Proto != "tcp" && w.Proto != "udp":
		return fmt.Errorf("workload: proto %q: must be tcp or udp", w.Proto)
	case w.Length <= 0:
		return fmt.Errorf("workload: length %v: must be positive", w.Length)
	case !(w.Rate > 0) || math.IsInf(w.Rate, 0):
		return fmt.Errorf("workload: rate %g: must be a positive number of connections per second", w.Rate)
	case w.MeanDuration < time.Millisecond:
		return fmt.Errorf("workload: mean duration %v: must be at least 1ms", w.MeanDuration)
	case w.Clients < 1 || w.Clients > 1<<16:
		return fmt.Errorf("workload: clients %d: must be 1..65536", w.Clients)
	case w.Packets < 0 || w.Packets > 1000:
		return fmt.Errorf("workload: packets %d: must be 0..1000", w.Packets)
	case !(w.VIP.Addr().Is4() || w.VIP.Addr().Is6() && !w.VIP.Addr().Is4In6() && w.VIP.Addr().Zone() == "") || w.VIP.Port() == 0:
		return fmt.Errorf("workload: vip %s: must be an IPv4 or IPv6 address (no zone, not IPv4-mapped) with a non-zero port", w.VIP)
	case w.Rate*w.Length.Seconds() > 1e8:
		return fmt.Errorf("workload: rate %g over %v is %.3g connections: at most 1e8", w.Rate, w.Length, w.Rate*w.Length.Seconds())
	}
	return nil
}

// Duration draws one connection duration in seconds.
func (w *Workload) duration(r *rand.Rand) float64 {
	m := w.MeanDuration.Seconds()
	u := 1 - r.Float64() // (0, 1]
	switch w.Dist {
	case "lognormal":
		// mean = exp(mu + sigma^2/2)
		mu := math.Log(m) - w.Shape*w.Shape/2
		return math.Exp(mu + w.Shape*r.NormFloat64())
	case "pareto":
		// mean = alpha*xm/(alpha-1)
		xm := m * (w.Shape - 1) / w.Shape
		return xm / math.Pow(u, 1/w.Shape)
	}
	return -m * math.Log(u)
}

// pending is a packet line of a connection that has already begun, waiting
// for its time.
type pending struct {
	ms     int64
	seq    uint64 // ties in time keep generation order, so output is stable
	client netip.Addr
	port   uint16
	flags  string
}

type pendingHeap []pending

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].ms != h[j].ms {
		return h[i].ms < h[j].ms
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// GenStats describes a generated trace.
type GenStats struct {
	Conns int // connections
	Lines int // packet lines
}

// Generate writes the trace for w to out. The same Workload (seed
// included) always writes the same bytes.
func Generate(out io.Writer, w Workload) (GenStats, error) {
	var st GenStats
	if err := w.fill(); err != nil {
		return st, err
	}
	r := rand.New(rand.NewPCG(w.Seed, w.Seed^0xda3e39cb94b95bdb))
	bw := bufio.NewWriterSize(out, 64<<10)
	fmt.Fprintf(bw, "# afvs-lab sim --generate seed=%d rate=%g/s length=%v dist=%s mean=%v shape=%g clients=%d proto=%s vip=%s packets=%d\n",
		w.Seed, w.Rate, w.Length, w.Dist, w.MeanDuration, w.Shape, w.Clients, w.Proto, w.VIP, w.Packets)
	fmt.Fprintf(bw, "# time_ms,proto,client_ip,client_port,vip,vport,flags\n")
	vip := w.VIP.Addr()
	nextPort := make([]uint16, w.Clients)
	var h pendingHeap
	var seq uint64
	var line []byte
	emit := func(p pending) {
		line = strconv.AppendInt(line[:0], p.ms, 10)
		line = append(line, ',')
		line = append(line, w.Proto...)
		line = append(line, ',')
		line = p.client.AppendTo(line)
		line = append(line, ',')
		line = strconv.AppendUint(line, uint64(p.port), 10)
		line = append(line, ',')
		line = vip.AppendTo(line)
		line = append(line, ',')
		line = strconv.AppendUint(line, uint64(w.VIP.Port()), 10)
		line = append(line, ',')
		line = append(line, p.flags...)
		line = append(line, '\n')
		_, _ = bw.Write(line)
		st.Lines++
	}
	push := func(p pending) {
		p.seq = seq
		seq++
		heap.Push(&h, p)
	}
	end := w.Length.Seconds()
	t := 0.0
	for {
		t += r.ExpFloat64() / w.Rate
		if t >= end {
			break
		}
		start := int64(t * 1000)
		for len(h) > 0 && h[0].ms <= start {
			emit(heap.Pop(&h).(pending))
		}
		st.Conns++
		ci := r.IntN(w.Clients)
		client := clientAddr(ci, vip.Is6())
		// Ephemeral ports as Linux hands them out (32768-60999), one
		// after another per client.
		port := 32768 + nextPort[ci]
		nextPort[ci] = (nextPort[ci] + 1) % (60999 - 32768 + 1)
		d := int64(math.Round(w.duration(r) * 1000))
		first, middle, last := "S", "A", "FA"
		if w.Proto == "udp" {
			first, middle, last = "-", "-", "-"
		}
		push(pending{ms: start, client: client, port: port, flags: first})
		for k := 1; k <= w.Packets; k++ {
			// The first follows at once, as a handshake's ACK does (a
			// SYN_RECV entry lives only 60 s); the rest spread evenly.
			at := start + d*int64(k-1)/int64(w.Packets)
			if k == 1 {
				at = start + min(1, d)
			}
			push(pending{ms: at, client: client, port: port, flags: middle})
		}
		push(pending{ms: start + d, client: client, port: port, flags: last})
	}
	for len(h) > 0 {
		emit(heap.Pop(&h).(pending))
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("write trace: %w", err)
	}
	return st, nil
}

// WriteConfig writes an afvs config (YAML) with the workload's virtual
// service and its Servers real servers, weighted by Weights.
func WriteConfig(out io.Writer, w Workload) error {
	if err := w.fill(); err != nil {
		return err
	}
	if w.Servers < 1 || w.Servers > 253*250 {
		return fmt.Errorf("workload: servers %d: must be 1..63250", w.Servers)
	}
	if len(w.Weights) == 0 {
		w.Weights = []int{1}
	}
	for _, x := range w.Weights {
		if x < 0 || x > 65535 {
			return fmt.Errorf("workload: weight %d: must be 0..65535", x)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# afvs-lab sim --generate: %d real servers, weights %v\n", w.Servers, w.Weights)
	// IPv6 addresses are quoted: YAML would not read them as plain words
	// in every position.
	quote := func(a netip.Addr) string {
		if a.Is6() {
			return strconv.Quote(a.String())
		}
		return a.String()
	}
	fmt.Fprintf(&b, "interfaces: [sim0]\nservices:\n  - proto: %s\n    address: %s\n    port: %d\n    scheduler: %s\n    forward: dr\n    reals:\n",
		w.Proto, quote(w.VIP.Addr()), w.VIP.Port(), w.Scheduler)
	for i := range w.Servers {
		a := netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(1 + i%250)})
		if w.VIP.Addr().Is6() {
			b6 := netip.MustParseAddr("2001:2::1:0").As16()
			b6[14], b6[15] = byte((i+1)>>8), byte(i+1)
			a = netip.AddrFrom16(b6)
		}
		fmt.Fprintf(&b, "      - {address: %s, weight: %d}\n", quote(a), w.Weights[i%len(w.Weights)])
	}
	_, err := io.WriteString(out, b.String())
	return err
}

package sim

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/vs"
)

func TestGenerateDeterministicBySeed(t *testing.T) {
	w := Workload{Seed: 42, Length: 20 * time.Second, Rate: 50, MeanDuration: 2 * time.Second, Clients: 30}
	gen := func(w Workload) []byte {
		var b bytes.Buffer
		if _, err := Generate(&b, w); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := gen(w), gen(w)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different traces")
	}
	w.Seed = 43
	if bytes.Equal(a, gen(w)) {
		t.Fatal("different seeds, same trace")
	}
	if !bytes.HasPrefix(a, []byte("# afvs-lab sim --generate seed=42 ")) {
		t.Fatalf("trace does not record its seed: %.80s", a)
	}
}

// flowStats parses a generated trace and returns the connections' start
// times (ms) in arrival order and their durations (SYN or first datagram to FIN or
// last datagram), checking time order and line shapes on the way.
func flowStats(t *testing.T, trace []byte, proto string) (starts []int64, durs []float64) {
	t.Helper()
	type flow struct{ start, last int64 }
	open := map[string]*flow{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(trace))
	var ev Event
	n, prev := 0, int64(-1)
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if err := parseEvent(line, n, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.TimeMS < prev {
			t.Fatalf("line %d: time %d before %d", n, ev.TimeMS, prev)
		}
		prev = ev.TimeMS
		f := strings.Split(string(line), ",")
		if f[1] != proto {
			t.Fatalf("line %d: proto %s", n, f[1])
		}
		key := f[2] + ":" + f[3]
		fl, ok := open[key]
		switch {
		case !ok && (f[6] == "S" || proto == "udp"):
			open[key] = &flow{start: ev.TimeMS, last: ev.TimeMS}
			order = append(order, key)
			starts = append(starts, ev.TimeMS)
		case ok:
			fl.last = ev.TimeMS
			if f[6] == "FA" {
				durs = append(durs, float64(fl.last-fl.start)/1000)
				delete(open, key)
			}
		default:
			t.Fatalf("line %d: %s without an open flow", n, f[6])
		}
	}
	if proto == "udp" {
		for _, k := range order {
			durs = append(durs, float64(open[k].last-open[k].start)/1000)
		}
	} else if len(open) != 0 {
		t.Fatalf("%d flows never closed", len(open))
	}
	return starts, durs
}

func TestGenerateDistributions(t *testing.T) {
	const rate, length = 400.0, 100 * time.Second // about 40000 connections
	for _, c := range []struct {
		dist  string
		shape float64
	}{{"exponential", 0}, {"lognormal", 1}, {"pareto", 2.5}} {
		t.Run("dist="+c.dist, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			w := Workload{Seed: seed, Length: length, Rate: rate, Dist: c.dist, Shape: c.shape, MeanDuration: 2 * time.Second, Clients: 5000, Packets: 3}
			var b bytes.Buffer
			st, err := Generate(&b, w)
			if err != nil {
				t.Fatal(err)
			}
			starts, durs := flowStats(t, b.Bytes(), "tcp")
			if len(starts) != st.Conns || st.Lines != st.Conns*5 {
				t.Fatalf("parsed %d flows, generator reports %d conns and %d lines", len(starts), st.Conns, st.Lines)
			}
			// Poisson: the count has sd sqrt(40000) = 200, 0.5%.
			if want := rate * length.Seconds(); math.Abs(float64(len(starts))-want) > 0.03*want {
				t.Errorf("%d connections, want about %.0f", len(starts), want)
			}
			var gaps []float64
			for i := 1; i < len(starts); i++ {
				gaps = append(gaps, float64(starts[i]-starts[i-1])/1000)
			}
			if m := mean(gaps); math.Abs(m-1/rate) > 0.05/rate {
				t.Errorf("mean inter-arrival %.5f s, want %.5f", m, 1/rate)
			}
			// Exponential inter-arrivals: the coefficient of variation
			// is 1 (ms rounding adds little at 2.5 ms mean).
			if cv := stddev(gaps) / mean(gaps); math.Abs(cv-1) > 0.1 {
				t.Errorf("inter-arrival cv %.3f, want about 1", cv)
			}
			// Mean duration within 5%: the standard errors are about
			// 0.5% (exponential), 0.7% (lognormal) and 0.5% (Pareto).
			if m := mean(durs); math.Abs(m-2) > 0.1 {
				t.Errorf("mean duration %.3f s, want 2", m)
			}
			// The shapes differ where the distributions do: the share
			// of connections under a quarter of the mean.
			short := 0
			for _, d := range durs {
				if d < 0.5 {
					short++
				}
			}
			want := map[string]float64{
				"exponential": 1 - math.Exp(-0.25),
				"lognormal":   normCDF((math.Log(0.25) + 0.5) / 1),
				"pareto":      0, // xm = 1.2 s: nothing is shorter
			}[c.dist]
			if got := float64(short) / float64(len(durs)); math.Abs(got-want) > 0.02 {
				t.Errorf("share under 0.5 s %.3f, want %.3f", got, want)
			}
		})
	}
}

func TestGenerateUDP(t *testing.T) {
	w := Workload{Seed: 1, Length: 10 * time.Second, Rate: 20, MeanDuration: time.Second, Clients: 10, Proto: "udp", Packets: 1}
	var b bytes.Buffer
	st, err := Generate(&b, w)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 3*st.Conns || !strings.Contains(b.String(), ",udp,") || strings.Contains(b.String(), ",tcp,") {
		t.Fatalf("udp trace: %+v\n%.300s", st, b.String())
	}
	if _, err := Run(table(t, vs.UDP, "rr", 1, 1), &b, io.Discard, Options{}); err != nil {
		t.Fatalf("simulating the generated trace: %v", err)
	}
}

func TestGenerateRuns(t *testing.T) {
	// A generated trace runs through the simulator; with wlc over
	// weights 1,2,3,4 the connection shares follow the weights.
	w := Workload{Seed: 9, Length: 60 * time.Second, Rate: 200, MeanDuration: 5 * time.Second, Clients: 500, Servers: 4, Weights: []int{1, 2, 3, 4}}
	var b bytes.Buffer
	if _, err := Generate(&b, w); err != nil {
		t.Fatal(err)
	}
	_, sum := run(t, table(t, vs.TCP, "wlc", 1, 2, 3, 4), b.String(), Options{})
	if sum.Dropped != 0 || sum.Conns < 11000 {
		t.Fatalf("summary %+v", sum)
	}
	for _, s := range sum.Services[0].Servers {
		if math.Abs(s.Share-s.WeightShare) > 0.02 {
			t.Errorf("%s: share %.3f, weight share %.3f", s.Addr, s.Share, s.WeightShare)
		}
	}
	var png bytes.Buffer
	if err := sum.WritePlot(&png); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png.Bytes(), []byte("\x89PNG\r\n\x1a\n")) || len(sum.Series.TimesMS) > 2048 || len(sum.Series.TimesMS) < 1024 {
		t.Fatalf("plot: %d bytes, %d samples", png.Len(), len(sum.Series.TimesMS))
	}
}

func TestWorkloadErrors(t *testing.T) {
	ok := Workload{Length: time.Second, Rate: 1, MeanDuration: time.Second, Clients: 1}
	cases := []struct {
		name string
		mod  func(*Workload)
		want string
	}{
		{"dist", func(w *Workload) { w.Dist = "weibull" }, `distribution "weibull"`},
		{"pareto alpha", func(w *Workload) { w.Dist, w.Shape = "pareto", 1 }, "pareto alpha 1"},
		{"sigma", func(w *Workload) { w.Dist, w.Shape = "lognormal", -1 }, "lognormal sigma -1"},
		{"proto", func(w *Workload) { w.Proto = "sctp" }, `proto "sctp"`},
		{"length", func(w *Workload) { w.Length = 0 }, "length 0s"},
		{"rate", func(w *Workload) { w.Rate = math.NaN() }, "rate NaN"},
		{"mean", func(w *Workload) { w.MeanDuration = 0 }, "mean duration 0s"},
		{"clients", func(w *Workload) { w.Clients = 0 }, "clients 0"},
		{"vip", func(w *Workload) { w.VIP = netip.MustParseAddrPort("[::ffff:198.19.0.1]:80") }, "vip [::ffff:198.19.0.1]:80"},
		{"vip zone", func(w *Workload) { w.VIP = netip.MustParseAddrPort("[fe80::1%eth0]:80") }, "vip [fe80::1%eth0]:80"},
		{"vip port", func(w *Workload) { w.VIP = netip.MustParseAddrPort("[2001:2::1]:0") }, "vip [2001:2::1]:0"},
		{"huge", func(w *Workload) { w.Rate, w.Length = 1e6, time.Hour }, "at most 1e8"},
	}
	for _, c := range cases {
		w := ok
		c.mod(&w)
		if _, err := Generate(io.Discard, w); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	w := ok
	w.Servers, w.Weights = 2, []int{70000}
	if err := WriteConfig(io.Discard, w); err == nil || !strings.Contains(err.Error(), "weight 70000") {
		t.Errorf("weight: %v", err)
	}
}

func TestWriteConfig(t *testing.T) {
	w := Workload{Length: time.Second, Rate: 1, MeanDuration: time.Second, Clients: 1, Servers: 3, Weights: []int{1, 5}, Scheduler: "mh"}
	var b bytes.Buffer
	if err := WriteConfig(&b, w); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scheduler: mh", "address: 198.19.0.1", "port: 80", "{address: 198.18.1.1, weight: 1}", "{address: 198.18.1.2, weight: 5}", "{address: 198.18.1.3, weight: 1}"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("config lacks %q:\n%s", want, b.String())
		}
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func stddev(xs []float64) float64 {
	m := mean(xs)
	var s float64
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(xs)))
}

func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// TestWorkloadIPv6: with an IPv6 VIP the generator writes IPv6 clients
// (2001:2:0:64::1 on) that the trace parser reads back, and the config
// has the IPv6 service and IPv6 real servers, quoted for YAML.
func TestWorkloadIPv6(t *testing.T) {
	w := Workload{Seed: 3, Length: 2 * time.Second, Rate: 200, MeanDuration: 100 * time.Millisecond, Clients: 70000 >> 2, Proto: "udp",
		VIP: netip.MustParseAddrPort("[2001:2::1]:53"), Servers: 3, Weights: []int{1, 2}}
	var b bytes.Buffer
	st, err := Generate(&b, w)
	if err != nil {
		t.Fatal(err)
	}
	client6 := netip.MustParsePrefix("2001:2:0:64::/64")
	lines := 0
	for i, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		var ev Event
		if err := parseEvent([]byte(line), i+1, &ev); err != nil {
			t.Fatal(err)
		}
		if !client6.Contains(ev.Client) || ev.Client == client6.Addr() || ev.VIP != w.VIP.Addr() || ev.VPort != 53 || ev.Proto != 17 {
			t.Fatalf("line %q parsed as %+v", line, ev)
		}
		lines++
	}
	if lines != st.Lines || st.Conns < 300 {
		t.Fatalf("%d lines parsed, generator says %+v", lines, st)
	}
	if got, want := clientAddr(65535, true), netip.MustParseAddr("2001:2:0:64::1:0"); got != want {
		t.Errorf("client 65535 is %s, want %s", got, want)
	}
	b.Reset()
	if err := WriteConfig(&b, w); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`address: "2001:2::1"`, "port: 53", `{address: "2001:2::1:1", weight: 1}`, `{address: "2001:2::1:2", weight: 2}`, `{address: "2001:2::1:3", weight: 1}`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("config lacks %q:\n%s", want, b.String())
		}
	}
}

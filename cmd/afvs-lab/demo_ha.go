package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// haDemo is `afvs-lab demo --ha`'s settings.
type haDemo struct {
	daemon    string
	conns     int
	rounds    int
	scheduler string
	sloppy    bool
	sync      bool
	settle    time.Duration // how long the connections run after the takeover
	window    time.Duration // how long the sync counters are read before the kill
}

// haRound is one failover's figures.
type haRound struct {
	takeover, gap            time.Duration
	survived, failed, resets int
	switched                 int
	syncRate                 float64 // sync messages per second from A
}

// runHADemo builds the HA lab (two directors with afvs and keepalived),
// holds keep-alive connections, kills the master's afvs and keepalived,
// and prints the takeover, the gap until a new connection is answered and
// the survivors; with rounds > 1 it does so on a fresh lab each round and
// ends with the median and maximum.
func runHADemo(o haDemo) error {
	start := time.Now()
	var rounds []haRound
	for i := range o.rounds {
		if o.rounds > 1 {
			fmt.Printf("\n-- round %d of %d --\n", i+1, o.rounds)
		}
		r, err := haDemoRound(o, i == 0)
		if err != nil {
			return err
		}
		rounds = append(rounds, r)
	}
	if o.rounds > 1 {
		fmt.Print(haSummary(rounds, o.conns, o.sync))
	}
	fmt.Printf("demo finished in %.1fs; every namespace and process it made is gone\n", time.Since(start).Seconds())
	for _, r := range rounds {
		if r.survived != o.conns && o.expectSurvival() {
			return fmt.Errorf("%d of %d connections did not survive a failover", o.conns-r.survived, o.conns)
		}
	}
	return nil
}

// expectSurvival: with sync, or sloppy_tcp and a consistent scheduler,
// every connection should survive.
func (o haDemo) expectSurvival() bool {
	return o.sync || (o.sloppy && (o.scheduler == "mh" || o.scheduler == "sh"))
}

// haSummary is the --rounds summary: the median and maximum takeover and
// gap, the survivors of all rounds and, with sync, the median, least and
// greatest sync message rate.
func haSummary(rounds []haRound, conns int, sync bool) string {
	gaps := make([]time.Duration, 0, len(rounds))
	takes := make([]time.Duration, 0, len(rounds))
	rates := make([]float64, 0, len(rounds))
	all, surv := 0, 0
	for _, r := range rounds {
		gaps, takes = append(gaps, r.gap), append(takes, r.takeover)
		all += conns
		surv += r.survived
		rates = append(rates, r.syncRate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nover %d rounds: takeover median %d ms, max %d ms; gap to a new connection's answer median %d ms, max %d ms; %d of %d connections survived\n",
		len(rounds), median(takes).Milliseconds(), slices.Max(takes).Milliseconds(), median(gaps).Milliseconds(), slices.Max(gaps).Milliseconds(), surv, all)
	if sync {
		fmt.Fprintf(&b, "sync messages per second from the master at this load: median %.1f, min %.1f, max %.1f\n", median(rates), slices.Min(rates), slices.Max(rates))
	}
	return b.String()
}

// median is the middle value of ds, or the mean of the two middle values
// when there is an even number of them.
func median[T time.Duration | float64](ds []T) T {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// haSyncRate reads the sync counters of master a and backup b over d
// while the held connections run, prints them, and returns a's messages
// per second.
func haSyncRate(a, b *testnet.HADirector, d time.Duration) (float64, error) {
	sa0, err := a.Control().Status()
	if err != nil {
		return 0, err
	}
	sb0, err := b.Control().Status()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(d)
	sa1, err := a.Control().Status()
	if err != nil {
		return 0, err
	}
	sb1, err := b.Control().Status()
	if err != nil {
		return 0, err
	}
	el := time.Since(t0).Seconds()
	msgs := sa1.Sync.SentMessages - sa0.Sync.SentMessages
	rate := float64(msgs) / el
	fmt.Printf("connection sync over %.1fs: A sent %s (%.1f/s) with %s; B received %s, installed %s and refreshed %d\n",
		el, plural(msgs, "message"), rate, plural(sa1.Sync.SentEntries-sa0.Sync.SentEntries, "entry"), plural(sb1.Sync.RecvMessages-sb0.Sync.RecvMessages, "message"),
		plural(sb1.Sync.Installed-sb0.Sync.Installed, "entry"), sb1.Sync.Updated-sb0.Sync.Updated)
	var drops []string
	for r, v := range sb1.Sync.Drops {
		if v > sb0.Sync.Drops[r] {
			drops = append(drops, fmt.Sprintf("%s=%d", r, v-sb0.Sync.Drops[r]))
		}
	}
	if e := sb1.Sync.ReceiveErrors - sb0.Sync.ReceiveErrors; e > 0 {
		drops = append(drops, fmt.Sprintf("receive_errors=%d", e))
	}
	if len(drops) > 0 {
		slices.Sort(drops)
		fmt.Printf("  B's sync drops: %s\n", strings.Join(drops, " "))
	}
	return rate, nil
}

// haWaitSynced waits until backup b's connection table holds n
// ESTABLISHED connections to the lab's VIP (entries only the sync daemon
// puts on a director that forwards nothing), for at most limit.
func haWaitSynced(h *testnet.HALab, b *testnet.HADirector, n int, limit time.Duration) error {
	got := 0
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		conns, err := b.Control().Conns()
		if err != nil {
			return err
		}
		got = 0
		for _, c := range conns {
			if !c.Template && c.State == "ESTABLISHED" && strings.HasPrefix(c.Virtual, h.VIP.String()+":") {
				got++
			}
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("director %s holds %d of the %d held connections from the sync daemon after %v", b.Name, got, n, limit)
		}
	}
}

func haDemoRound(o haDemo, verbose bool) (haRound, error) {
	var r haRound
	if verbose {
		fmt.Printf("\n== HA pair: two directors, each running afvs and keepalived (VRRPv3, deploy/keepalived) ==\n")
	}
	h, err := testnet.NewHALab(testnet.HAOptions{AFVS: o.daemon, Scheduler: o.scheduler, SloppyTCP: o.sloppy, Sync: o.sync})
	if err != nil {
		return r, err
	}
	defer h.Close()
	a, b := h.Directors[0], h.Directors[1]
	if verbose {
		fmt.Printf("lab: client %s, director A %s, director B %s, real servers %s-%s on one bridge; VIP %s:%d routed via %s, the address keepalived moves\n",
			h.ClientAddr, a.Addr, b.Addr, h.RealAddrs[0], h.RealAddrs[len(h.RealAddrs)-1], h.VIP, h.Port, h.NextHop)
		fmt.Printf("both directors: scheduler %s, sloppy_tcp %s, connection sync %s\n", o.scheduler, onOff(o.sloppy), onOff(o.sync))
	}
	owner, err := h.Owner()
	if err != nil {
		return r, err
	}
	if owner != 0 {
		return r, errors.New("director A does not hold the next hop after start-up")
	}
	fmt.Printf("keepalived: director A holds %s (MASTER), director B is BACKUP\n", h.NextHop)
	hold, err := h.Hold(o.conns, 200*time.Millisecond, 5*time.Second)
	if err != nil {
		return r, err
	}
	defer hold.Stop()
	fmt.Printf("holding %d HTTP keep-alive connections to the VIP, a request every 200ms on each\n", o.conns)
	if o.sync {
		if r.syncRate, err = haSyncRate(a, b, o.window); err != nil {
			return r, err
		}
		// The kill must find B knowing every held connection, however
		// late a busy machine made the sync messages.
		if err := haWaitSynced(h, b, o.conns, 15*time.Second); err != nil {
			return r, err
		}
	} else {
		time.Sleep(time.Second)
	}
	f, err := h.KillOwner(5 * time.Second)
	if err != nil {
		return r, fmt.Errorf("failover: %w", err)
	}
	r.takeover, r.gap = f.Takeover, f.Gap
	fmt.Printf("killed director %s's afvs and keepalived (SIGKILL)\n", f.Killed.Name)
	fmt.Printf("director %s holds %s after %d ms; the VIP answered a new connection after %d ms (%s)\n",
		f.Took.Name, h.NextHop, f.Takeover.Milliseconds(), f.Gap.Milliseconds(), f.Answer)
	settled := time.Now().Add(500 * time.Millisecond)
	time.Sleep(o.settle)
	s := testnet.Summarize(hold.Stop(), settled)
	r.survived, r.failed, r.resets, r.switched = s.Survived, s.Failed, s.Resets, s.Switched
	fmt.Printf("survivors: %d of %d connections kept answering from their real server (%d failed, %d with a reset, %d moved to another server)\n",
		s.Survived, s.Total, s.Failed, s.Resets, s.Switched)
	for _, e := range s.FirstErrors {
		fmt.Printf("  %s\n", e)
	}
	if verbose {
		st, err := f.Took.Control().Status()
		if err != nil {
			return r, err
		}
		fmt.Printf("director %s after the failover:\n", f.Took.Name)
		printCounters(st)
	}
	return r, nil
}

// plural is "1 message", "2 messages", "1 entry", "3 entries".
func plural(n uint64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(word, "y"))
	}
	return fmt.Sprintf("%d %ss", n, word)
}

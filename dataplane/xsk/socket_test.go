package xsk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func testOptions() Options {
	o := DefaultOptions()
	o.NumFrames = 1024
	o.FillSize, o.CompletionSize, o.RxSize, o.TxSize = 512, 512, 512, 512
	o.Copy = true
	return o
}

// openA opens a socket on queue 0 of A and closes it when the test ends.
func openA(t testing.TB, p *pair, opt Options) *Socket {
	t.Helper()
	var s *Socket
	var err error
	in(t, p.nsA, func() { s, err = Open(p.ifA, 0, opt) })
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// receiveN collects n test frames, releasing anything else, or fails after
// timeout. The caller owns the returned frames.
func receiveN(t testing.TB, s *Socket, n int, timeout time.Duration) []Desc {
	t.Helper()
	var got []Desc
	batch := make([]Desc, 64)
	deadline := time.Now().Add(timeout)
	for len(got) < n {
		s.Fill()
		k := s.Receive(batch)
		for _, d := range batch[:k] {
			f := s.Frame(d)
			if len(f) >= 14 && binary.BigEndian.Uint16(f[12:14]) == testEtherType {
				got = append(got, d)
			} else {
				s.Release(d.Addr)
			}
		}
		if k == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("received %d of %d frames before the %v timeout; counters %+v", len(got), n, timeout, s.Counters())
			}
			if err := s.Wait(10 * time.Millisecond); err != nil {
				t.Fatalf("wait: %v", err)
			}
		}
	}
	return got
}

// drainTx kicks and completes until every queued frame is back.
func drainTx(t testing.TB, s *Socket) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Account().Tx > 0 {
		if err := s.Kick(); err != nil {
			t.Fatalf("kick: %v", err)
		}
		s.Complete()
		if time.Now().After(deadline) {
			t.Fatalf("%d frames never completed; counters %+v", s.Account().Tx, s.Counters())
		}
	}
}

func checkAccount(t testing.TB, s *Socket) {
	t.Helper()
	if err := s.Account().Check(s.NumFrames()); err != nil {
		t.Fatalf("frame accounting: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	mod := func(f func(*Options)) Options { o := DefaultOptions(); f(&o); return o }
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"default", DefaultOptions(), ""},
		{"tx only", mod(func(o *Options) { o.RxSize = 0 }), ""},
		{"frame not pow2", mod(func(o *Options) { o.FrameSize = 3000 }), "frame size 3000"},
		{"frame too small", mod(func(o *Options) { o.FrameSize = 1024 }), "frame size 1024"},
		{"frame beyond page", mod(func(o *Options) { o.FrameSize = 2 * os.Getpagesize() }), "frame size"},
		{"no frames", mod(func(o *Options) { o.NumFrames = 0 }), "frame count 0"},
		{"fill not pow2", mod(func(o *Options) { o.FillSize = 1000 }), "fill size 1000"},
		{"no completion ring", mod(func(o *Options) { o.CompletionSize = 0 }), "completion size 0"},
		{"rx negative", mod(func(o *Options) { o.RxSize = -4 }), "rx size -4"},
		{"no rx no tx", mod(func(o *Options) { o.RxSize, o.TxSize = 0, 0 }), "at least one ring"},
		{"copy and zero-copy", mod(func(o *Options) { o.Copy, o.ZeroCopy = true, true }), "choose at most one"},
		{"negative budget", mod(func(o *Options) { o.TxBudget = -1 }), "tx budget -1"},
		{"budget beyond ring", mod(func(o *Options) { o.TxBudget = 4096 }), "tx budget 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opt.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestOpenRejectsBadArguments(t *testing.T) {
	if _, err := Open(0, 0, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "ifindex 0") {
		t.Errorf("Open(ifindex 0) = %v, want an error naming ifindex 0", err)
	}
	if _, err := Open(1, -1, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "queue -1") {
		t.Errorf("Open(queue -1) = %v, want an error naming queue -1", err)
	}
	bad := DefaultOptions()
	bad.TxSize = 3
	if _, err := Open(1, 0, bad); err == nil || !strings.Contains(err.Error(), "tx size 3") {
		t.Errorf("Open(tx size 3) = %v, want an error naming tx size 3", err)
	}
}

func TestOpenNoSuchInterface(t *testing.T) {
	p := newPair(t)
	var err error
	in(t, p.nsA, func() {
		var s *Socket
		s, err = Open(p.ifA+1000, 0, testOptions())
		if s != nil {
			s.Close()
		}
	})
	if err == nil || !strings.Contains(err.Error(), "bind") {
		t.Fatalf("Open on a missing interface = %v, want a bind error", err)
	}
}

// TestReceive sends frames of many sizes from B through a packet socket
// and checks they arrive in A's socket intact, in order, after the
// headroom the kernel promises.
func TestReceive(t *testing.T) {
	p := newPair(t)
	s := openA(t, p, testOptions())
	attachRedirect(t, p, s.FD())
	if s.ZeroCopy() {
		t.Fatalf("socket bound zero-copy with Copy set")
	}
	s.Fill()
	tx := openPacket(t, p.nsB, p.ifB)
	const n = 300 // more than a batch, less than the RX ring
	want := make([][]byte, n)
	for i := range want {
		want[i] = testFrame(p.macA, p.macB, uint32(i), frameLen(uint32(i)))
		tx.send(t, want[i])
	}
	got := receiveN(t, s, n, 5*time.Second)
	for i, d := range got {
		if off := int(d.Addr & uint64(s.FrameSize()-1)); off != s.Headroom() || off != 256 {
			t.Errorf("frame %d at offset %d in its chunk, want headroom %d (256 in copy mode)", i, off, s.Headroom())
		}
		if f := s.Frame(d); !bytes.Equal(f, want[i]) {
			t.Errorf("frame %d: got %d bytes, want %d; first 18 got %x want %x", i, len(f), len(want[i]), f[:min(18, len(f))], want[i][:18])
		}
		if c := s.Chunk(d.Addr); len(c) != s.FrameSize() || &c[0] != &s.UMEM()[d.Addr&^uint64(s.FrameSize()-1)] {
			t.Errorf("frame %d: chunk does not cover the frame's UMEM chunk", i)
		}
		s.Release(d.Addr)
	}
	if c := s.Counters(); c.RX < n || c.BadRelease != 0 {
		t.Errorf("counters %+v: want RX >= %d and no bad releases", c, n)
	}
	checkAccount(t, s)
	if st, err := s.KernelStats(); err != nil || st.RxInvalidDescs != 0 {
		t.Errorf("kernel stats %+v, %v: want no invalid descriptors", st, err)
	}
}

// TestTransmit builds frames in allocated UMEM frames, sends them from A and
// reads them on B.
func TestTransmit(t *testing.T) {
	p := newPair(t)
	opt := testOptions()
	opt.TxBudget = 256
	s := openA(t, p, opt)
	rx := openPacket(t, p.nsB, p.ifB)
	const n = 400
	var descs []Desc
	for i := uint32(0); i < n; i++ {
		addr, ok := s.Alloc()
		if !ok {
			t.Fatalf("alloc frame %d failed with %d frames", i, s.NumFrames())
		}
		l := frameLen(i)
		writeTestFrame(s.Chunk(addr)[:l], p.macB, p.macA, i)
		descs = append(descs, Desc{Addr: addr, Len: uint32(l)})
	}
	for sent := 0; sent < n; {
		q := s.Transmit(descs[sent:])
		sent += q
		if err := s.Kick(); err != nil {
			t.Fatalf("kick: %v", err)
		}
		s.Complete()
	}
	drainTx(t, s)
	buf := make([]byte, 2048)
	for i := uint32(0); i < n; i++ {
		f := rx.recv(t, buf)
		if f == nil {
			t.Fatalf("peer received %d of %d frames; counters %+v", i, n, s.Counters())
		}
		if want := testFrame(p.macB, p.macA, i, frameLen(i)); !bytes.Equal(f, want) {
			t.Fatalf("peer frame %d: got %d bytes %x..., want %d bytes %x...", i, len(f), f[:18], len(want), want[:18])
		}
	}
	c := s.Counters()
	if c.TX != n || c.Completed != n || c.Kicks == 0 {
		t.Errorf("counters %+v: want TX = Completed = %d and some kicks", c, n)
	}
	t.Logf("tx budget accepted: %d; kicks %d, kick errors %d", s.TxBudget(), c.Kicks, c.KickErrors)
	checkAccount(t, s)
	if a := s.Account(); a.Free != s.NumFrames() {
		t.Errorf("after all completions %d of %d frames free", a.Free, s.NumFrames())
	}
}

// TestTxOnly opens a socket with no RX ring: it transmits, KernelStats
// works, and the RX verbs refuse politely.
func TestTxOnly(t *testing.T) {
	p := newPair(t)
	opt := testOptions()
	opt.RxSize = 0
	s := openA(t, p, opt)
	rx := openPacket(t, p.nsB, p.ifB)
	if n := s.Fill(); n != 0 {
		t.Errorf("Fill on a TX-only socket moved %d frames, want 0", n)
	}
	if n := s.Receive(make([]Desc, 8)); n != 0 {
		t.Errorf("Receive on a TX-only socket = %d, want 0", n)
	}
	if err := s.Wait(time.Millisecond); err == nil || !strings.Contains(err.Error(), "no rx ring") {
		t.Errorf("Wait on a TX-only socket = %v, want an error about the missing rx ring", err)
	}
	addr, ok := s.Alloc()
	if !ok {
		t.Fatal("alloc failed on a fresh socket")
	}
	writeTestFrame(s.Chunk(addr)[:100], p.macB, p.macA, 7)
	if s.Transmit([]Desc{{Addr: addr, Len: 100}}) != 1 {
		t.Fatal("transmit refused one frame")
	}
	drainTx(t, s)
	if f := rx.recv(t, make([]byte, 2048)); !bytes.Equal(f, testFrame(p.macB, p.macA, 7, 100)) {
		t.Fatalf("peer got %x, want the test frame", f)
	}
	if _, err := s.KernelStats(); err != nil {
		t.Fatalf("kernel stats on a TX-only socket: %v", err)
	}
	checkAccount(t, s)
}

// TestOwnership checks that the frame state machine refuses what would put
// a frame in two places: double release, transmitting a released frame,
// frames that overrun their chunk, and addresses outside the UMEM.
func TestOwnership(t *testing.T) {
	p := newPair(t)
	s := openA(t, p, testOptions())
	fs := uint64(s.FrameSize())
	a, _ := s.Alloc()
	b, _ := s.Alloc()
	s.Release(a + 300) // any address inside the chunk releases it
	s.Release(a)
	if c := s.Counters(); c.BadRelease != 1 {
		t.Errorf("double release: BadRelease = %d, want 1", c.BadRelease)
	}
	s.Release(uint64(s.NumFrames()) * fs)
	if c := s.Counters(); c.BadRelease != 2 {
		t.Errorf("release outside the UMEM: BadRelease = %d, want 2", c.BadRelease)
	}
	end := uint64(s.NumFrames()) * fs
	if s.Chunk(end) != nil || s.Frame(Desc{Addr: end - 10, Len: 20}) != nil || s.Frame(Desc{Addr: ^uint64(0), Len: 2}) != nil {
		t.Error("Chunk or Frame returned memory for an address outside the UMEM")
	}
	tests := []struct {
		name string
		d    Desc
	}{
		{"released frame", Desc{Addr: a, Len: 60}},
		{"empty frame", Desc{Addr: b, Len: 0}},
		{"overruns chunk", Desc{Addr: b + 1000, Len: uint32(fs - 999)}},
		{"outside umem", Desc{Addr: uint64(s.NumFrames()) * fs, Len: 60}},
	}
	for i, tt := range tests {
		if n := s.Transmit([]Desc{tt.d}); n != 0 {
			t.Errorf("%s: Transmit queued %d, want 0", tt.name, n)
		}
		if c := s.Counters(); c.TxInvalid != uint64(i+1) {
			t.Errorf("%s: TxInvalid = %d, want %d", tt.name, c.TxInvalid, i+1)
		}
	}
	// A valid frame before an invalid one is queued; the rest stay ours.
	if n := s.Transmit([]Desc{{Addr: b + 1000, Len: uint32(fs - 1000)}, {Addr: a, Len: 60}}); n != 1 {
		t.Errorf("Transmit(valid, released) = %d, want 1", n)
	}
	drainTx(t, s)
	checkAccount(t, s)
	if a := s.Account(); a.Free != s.NumFrames() {
		t.Errorf("%d of %d frames free at the end", a.Free, s.NumFrames())
	}
}

// TestExhaustion runs the free list dry and checks the counted events.
func TestExhaustion(t *testing.T) {
	p := newPair(t)
	opt := testOptions()
	opt.NumFrames = 64
	opt.FillSize, opt.CompletionSize, opt.RxSize, opt.TxSize = 32, 32, 32, 16
	s := openA(t, p, opt)
	if n := s.Fill(); n != 32 {
		t.Fatalf("Fill = %d, want the fill ring's 32", n)
	}
	var held []Desc
	for {
		addr, ok := s.Alloc()
		if !ok {
			break
		}
		held = append(held, Desc{Addr: addr, Len: 60})
	}
	if len(held) != 32 {
		t.Fatalf("allocated %d frames, want the 32 not in the fill ring", len(held))
	}
	if c := s.Counters(); c.AllocEmpty != 1 {
		t.Errorf("AllocEmpty = %d, want 1", c.AllocEmpty)
	}
	for _, d := range held {
		writeTestFrame(s.Frame(d), p.macB, p.macA, 0)
	}
	// The TX ring holds 16: the rest stay with the caller.
	if n := s.Transmit(held); n != 16 {
		t.Errorf("Transmit of 32 into a 16-slot ring = %d, want 16", n)
	}
	if c := s.Counters(); c.TxFull != 1 {
		t.Errorf("TxFull = %d, want 1", c.TxFull)
	}
	checkAccount(t, s)
	drainTx(t, s)
	for _, d := range held[16:] {
		s.Release(d.Addr)
	}
	checkAccount(t, s)
	if a := s.Account(); a.Free != 32 || a.Fill != 32 {
		t.Errorf("account %+v: want 32 free and 32 in the fill ring", a)
	}
}

// TestForwardAccounting runs traffic through A the way a worker does:
// receive a batch, prepend bytes into the headroom of some frames and send
// them back out, copy others into allocated frames, drop the rest. At the
// end every frame must be in exactly one place, and the peer must see the
// frames with the prepended bytes.
func TestForwardAccounting(t *testing.T) {
	p := newPair(t)
	s := openA(t, p, testOptions())
	attachRedirect(t, p, s.FD())
	peer := openPacket(t, p.nsB, p.ifB)
	s.Fill()
	const n = 2000 // several times the UMEM's turnover through the rings
	const prepend = 20
	sent, forwarded, copied := 0, 0, 0
	batch := make([]Desc, 64)
	out := make([]Desc, 0, 64)
	buf := make([]byte, 2048)
	var wantBack []uint32
	deadline := time.Now().Add(10 * time.Second)
	for seq := uint32(0); sent < n || s.Counters().RX < uint64(n); {
		if time.Now().After(deadline) {
			t.Fatalf("stuck after %d sent; counters %+v", sent, s.Counters())
		}
		for i := 0; i < 50 && sent < n; i++ {
			peer.send(t, testFrame(p.macA, p.macB, seq, 60+int(seq%200)))
			seq++
			sent++
		}
		s.Fill()
		k := s.Receive(batch)
		if k == 0 {
			s.Wait(time.Millisecond)
		}
		out = out[:0]
		for _, d := range batch[:k] {
			f := s.Frame(d)
			if len(f) < 18 || binary.BigEndian.Uint16(f[12:14]) != testEtherType {
				s.Release(d.Addr)
				continue
			}
			seq := binary.BigEndian.Uint32(f[14:18])
			switch seq % 3 {
			case 0: // prepend in the headroom, send the same frame
				d.Addr -= prepend
				d.Len += prepend
				g := s.Frame(d)
				copy(g[0:6], p.macB)
				copy(g[6:12], p.macA)
				binary.BigEndian.PutUint16(g[12:14], testEtherType)
				binary.BigEndian.PutUint32(g[14:18], seq)
				out = append(out, d)
				forwarded++
				wantBack = append(wantBack, seq)
			case 1: // copy into a fresh frame, release the original
				if addr, ok := s.Alloc(); ok {
					c := s.Chunk(addr)
					m := copy(c, f)
					copy(c[0:6], p.macB)
					copy(c[6:12], p.macA)
					out = append(out, Desc{Addr: addr, Len: uint32(m)})
					copied++
					wantBack = append(wantBack, seq)
				}
				s.Release(d.Addr)
			default:
				s.Release(d.Addr)
			}
		}
		q := s.Transmit(out)
		for _, d := range out[q:] {
			s.Release(d.Addr)
			t.Errorf("tx ring full with %d queued", q)
		}
		if err := s.Kick(); err != nil {
			t.Fatalf("kick: %v", err)
		}
		s.Complete()
		// The kernel may be mid-copy, so the rings may lag; the places
		// must add up at every instant.
		if a := s.Account(); a.Free+a.Fill+a.Caller+a.Tx != s.NumFrames() || a.FreeList != a.Free {
			t.Fatalf("frame accounting mid-run: %+v does not add up to %d", a, s.NumFrames())
		}
	}
	drainTx(t, s)
	checkAccount(t, s)
	a := s.Account()
	if a.Caller != 0 || a.Tx != 0 {
		t.Errorf("account %+v: the caller holds or the kernel sends frames after the run", a)
	}
	c := s.Counters()
	if c.BadRelease != 0 || c.TxInvalid != 0 || c.TX != c.Completed {
		t.Errorf("counters %+v: want no bad releases or invalid tx, and TX = Completed", c)
	}
	t.Logf("sent %d, forwarded %d in place, %d copied; account %+v", sent, forwarded, copied, a)
	// The peer sees them in the order they were transmitted.
	for i, seq := range wantBack {
		f := peer.recv(t, buf)
		if f == nil {
			t.Fatalf("peer received %d of %d forwarded frames", i, len(wantBack))
		}
		if got := binary.BigEndian.Uint32(f[14:18]); got != seq {
			t.Fatalf("forwarded frame %d has seq %d, want %d", i, got, seq)
		}
		orig := testFrame(p.macA, p.macB, seq, 60+int(seq%200))
		body := f[18:]
		if seq%3 == 0 {
			// The new 18-byte header and 2 spare bytes fill the
			// prepended 20; the original frame follows untouched.
			body = f[18+prepend:]
		}
		if !bytes.Equal(body, orig[18:]) {
			t.Fatalf("forwarded frame seq %d: payload differs", seq)
		}
	}
	st, err := s.KernelStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RxInvalidDescs != 0 || st.TxInvalidDescs != 0 {
		t.Errorf("kernel stats %+v: want no invalid descriptors", st)
	}
}

// TestCloseReleases opens and closes sockets and checks that no file
// descriptor or mapping survives, and that Close twice is harmless.
func TestCloseReleases(t *testing.T) {
	p := newPair(t)
	countFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	// The rings are mappings of the socket itself ("socket:[inode]" in
	// /proc/self/maps); counting those alone leaves out the mappings the
	// Go runtime adds meanwhile (heap, and the stacks of the threads a
	// busy machine makes it start), which no tolerance bounds. The UMEM,
	// anonymous memory, is checked by its address below.
	countMaps := func() int {
		b, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range bytes.Split(b, []byte("\n")) {
			if bytes.HasSuffix(l, []byte("]")) && bytes.Contains(l, []byte(" socket:[")) {
				n++
			}
		}
		return n
	}
	// Warm up once so lazily created runtime state is not counted.
	var s *Socket
	var err error
	in(t, p.nsA, func() { s, err = Open(p.ifA, 0, testOptions()) })
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fds, maps := countFDs(), countMaps()
	for i := 0; i < 5; i++ {
		in(t, p.nsA, func() { s, err = Open(p.ifA, 0, testOptions()) })
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		s.Fill()
		s.Alloc()
		umemAt := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&s.UMEM()[0])))
		if err := s.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
		if b, _ := os.ReadFile("/proc/self/maps"); bytes.Contains(append([]byte("\n"), b...), []byte("\n"+umemAt)) {
			t.Errorf("close %d: the UMEM mapping at %s is still mapped", i, umemAt)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second close %d: %v", i, err)
		}
	}
	if got := countFDs(); got != fds {
		t.Errorf("open fds %d after 5 open/close, want %d", got, fds)
	}
	// Each socket maps its four rings from the socket: a leak would add
	// four per cycle.
	if got := countMaps(); got != maps {
		t.Errorf("ring mappings %d after 5 open/close, want %d", got, maps)
	}
	if _, err := s.KernelStats(); err == nil {
		t.Error("KernelStats on a closed socket succeeded")
	}
}

// TestZeroAllocs asserts the batch verbs allocate nothing, with frames
// actually moving through every ring.
func TestZeroAllocs(t *testing.T) {
	p := newPair(t)
	s := openA(t, p, testOptions())
	attachRedirect(t, p, s.FD())
	peer := openPacket(t, p.nsB, p.ifB)
	s.Fill()
	for i := uint32(0); i < 400; i++ {
		peer.send(t, testFrame(p.macA, p.macB, i, 60))
	}
	time.Sleep(50 * time.Millisecond) // let the frames reach the RX ring
	batch := make([]Desc, 64)
	out := make([]Desc, 0, 64)
	var rx, tx int
	allocs := testing.AllocsPerRun(20, func() {
		s.Fill()
		k := s.Receive(batch)
		rx += k
		out = append(out[:0], batch[:k]...)
		for len(out) < cap(out) {
			addr, ok := s.Alloc()
			if !ok {
				break
			}
			writeTestFrame(s.Chunk(addr)[:60], p.macB, p.macA, 1)
			out = append(out, Desc{Addr: addr, Len: 60})
		}
		q := s.Transmit(out)
		tx += q
		for _, d := range out[q:] {
			s.Release(d.Addr)
		}
		s.Kick()
		s.Complete()
		s.Wait(0)
		s.Counters()
	})
	if allocs != 0 {
		t.Errorf("a receive/transmit/complete cycle allocates %v times, want 0", allocs)
	}
	if rx == 0 || tx == 0 {
		t.Errorf("the cycle moved rx %d and tx %d frames; both must be exercised", rx, tx)
	}
	drainTx(t, s)
	checkAccount(t, s)
}

// TestFillEmpty checks that a fill ring with room but no free frame to put
// in it is a counted event.
func TestFillEmpty(t *testing.T) {
	p := newPair(t)
	opt := testOptions()
	opt.NumFrames, opt.FillSize = 64, 128
	s := openA(t, p, opt)
	if n := s.Fill(); n != 64 {
		t.Fatalf("first Fill = %d, want all 64 frames", n)
	}
	if c := s.Counters(); c.FillEmpty != 0 || c.Filled != 64 {
		t.Fatalf("after the first Fill counters %+v, want Filled 64 and FillEmpty 0", c)
	}
	if n := s.Fill(); n != 0 {
		t.Fatalf("second Fill = %d, want 0", n)
	}
	if c := s.Counters(); c.FillEmpty != 1 {
		t.Fatalf("FillEmpty = %d after filling with an empty free list, want 1", c.FillEmpty)
	}
	if _, ok := s.Alloc(); ok {
		t.Fatal("Alloc succeeded with every frame in the fill ring")
	}
	checkAccount(t, s)
}

// TestKickPastBudget queues more frames than one copy-mode sendto may send
// (32 by default) and checks that a single Kick sends them all.
func TestKickPastBudget(t *testing.T) {
	p := newPair(t)
	s := openA(t, p, testOptions())
	rx := openPacket(t, p.nsB, p.ifB)
	const n = 200
	descs := make([]Desc, 0, n)
	for i := uint32(0); i < n; i++ {
		addr, ok := s.Alloc()
		if !ok {
			t.Fatalf("alloc frame %d", i)
		}
		writeTestFrame(s.Chunk(addr)[:60], p.macB, p.macA, i)
		descs = append(descs, Desc{Addr: addr, Len: 60})
	}
	if q := s.Transmit(descs); q != n {
		t.Fatalf("Transmit queued %d of %d", q, n)
	}
	if err := s.Kick(); err != nil {
		t.Fatalf("kick: %v", err)
	}
	if a := s.Account(); a.TxRing != 0 {
		t.Fatalf("%d frames still in the TX ring after one Kick; counters %+v", a.TxRing, s.Counters())
	}
	if c := s.Counters(); c.Kicks < n/32 || c.KickErrors != 0 {
		t.Errorf("counters %+v: want at least %d sendto calls and no kick errors", c, n/32)
	}
	buf := make([]byte, 2048)
	for i := 0; i < n; i++ {
		if rx.recv(t, buf) == nil {
			t.Fatalf("peer received %d of %d frames", i, n)
		}
	}
	drainTx(t, s)
	checkAccount(t, s)
}

// TestReceiveCountsBatches: RxBatches counts the Receive calls that
// returned frames, and no others, so RX over RxBatches is the mean batch.
func TestReceiveCountsBatches(t *testing.T) {
	p := newPair(t)
	s := openA(t, p, testOptions())
	attachRedirect(t, p, s.FD())
	s.Fill()
	tx := openPacket(t, p.nsB, p.ifB)
	const n = 50
	for i := range n {
		tx.send(t, testFrame(p.macA, p.macB, uint32(i), frameLen(uint32(i))))
	}
	c0 := s.Counters()
	out := make([]Desc, 7) // several Receives per burst
	// Frames the kernel sends of its own accord count alike: the test
	// compares calls and frames, whatever they hold.
	var calls, frames uint64
	deadline := time.Now().Add(5 * time.Second)
	for frames < n {
		k := s.Receive(out)
		if k > 0 {
			calls++
			frames += uint64(k)
			for _, d := range out[:k] {
				s.Release(d.Addr)
			}
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d frames; counters %+v", frames, n, s.Counters())
		}
		if err := s.Wait(10 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	c := s.Counters()
	if got := c.RxBatches - c0.RxBatches; got != calls || calls < n/7 {
		t.Fatalf("rx_batches went up by %d, want %d (calls that returned frames)", got, calls)
	}
	if got := c.RX - c0.RX; got != frames {
		t.Fatalf("rx went up by %d, want %d", got, frames)
	}
}

package ipvssync

import (
	"reflect"
	"sync"
	"testing"
	"unsafe"
)

// TestRecordIsFlat: a Record holds no pointers (the queue's array is
// never scanned by the garbage collector) and has a fixed size.
func TestRecordIsFlat(t *testing.T) {
	var check func(reflect.Type)
	check = func(ty reflect.Type) {
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				check(ty.Field(i).Type)
			}
		case reflect.Array:
			check(ty.Elem())
		case reflect.Bool, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			t.Errorf("Record holds a %s", ty)
		}
	}
	check(reflect.TypeFor[Record]())
	if n := unsafe.Sizeof(Record{}); n != 72 {
		t.Errorf("Record is %d bytes, want 72", n)
	}
}

// TestRecordConn: a record carries an entry through to the encoder.
func TestRecordConn(t *testing.T) {
	for _, c := range []Conn{connV4, connTemplate, connV6, connFWMark} {
		var r Record
		r.Set(&c)
		var back Conn
		r.Conn(&back)
		if !reflect.DeepEqual(back, c) {
			t.Errorf("through a Record:\n%+v\nwant\n%+v", back, c)
		}
	}
	// Sequence flags are dropped with the data they would need.
	var r Record
	r.Set(&connSeq)
	var back Conn
	r.Conn(&back)
	if back.Flags != FlagTunnel || back.HasSeq {
		t.Errorf("seq conn through a Record: flags %#x, HasSeq %v", back.Flags, back.HasSeq)
	}
}

func TestNewQueue(t *testing.T) {
	for _, n := range []int{0, -1, 3, 1000, 1 << 31} {
		if _, err := NewQueue(n); err == nil {
			t.Errorf("NewQueue(%d) accepted", n)
		}
	}
	if q, err := NewQueue(1); err != nil || q.Cap() != 1 {
		t.Errorf("NewQueue(1) = %v, %v", q, err)
	}
}

// TestQueueFull: a full queue drops and counts, keeps what it holds, and
// takes records again once the consumer frees a slot.
func TestQueueFull(t *testing.T) {
	q, _ := NewQueue(4)
	var r Record
	for i := range 4 {
		r.CPort = uint16(i)
		if !q.Push(&r) {
			t.Fatalf("push %d into a queue of 4 refused", i)
		}
	}
	r.CPort = 99
	for i := range 2 {
		if q.Push(&r) {
			t.Fatalf("a full queue took a record (try %d)", i+1)
		}
	}
	var got Record
	if q.Len() != 0 || q.Dropped() != 0 || q.Pop(&got) {
		t.Fatal("records or drops visible before Publish")
	}
	q.Publish()
	if q.Dropped() != 2 || q.Len() != 4 {
		t.Fatalf("dropped %d, len %d; want 2, 4", q.Dropped(), q.Len())
	}
	if !q.Pop(&got) || got.CPort != 0 {
		t.Fatalf("pop: %v %d", got, got.CPort)
	}
	r.CPort = 4
	if !q.Push(&r) {
		t.Fatal("a freed slot was not reused")
	}
	q.Publish()
	for want := uint16(1); want <= 4; want++ {
		if !q.Pop(&got) || got.CPort != want {
			t.Fatalf("pop: got %d, want %d", got.CPort, want)
		}
	}
	if q.Pop(&got) {
		t.Fatal("popped from an empty queue")
	}
}

// TestQueueConcurrent: one producer and one consumer at full speed (run
// with -race): every record arrives whole and in order, or was counted
// as dropped.
func TestQueueConcurrent(t *testing.T) {
	const n = 200000
	q, _ := NewQueue(64)
	var wg sync.WaitGroup
	wg.Add(1)
	pushed := 0
	go func() {
		defer wg.Done()
		var r Record
		for i := range n {
			// Every field derives from i, so a torn copy shows.
			r.FWMark, r.Timeout, r.Flags = uint32(i), uint32(i)*3, uint32(i)^0x5555
			r.CAddr[15], r.DAddr[0] = byte(i), byte(i>>8)
			if q.Push(&r) {
				pushed++
			}
			if i%16 == 15 || i == n-1 {
				q.Publish() // once per batch, as a worker does
			}
		}
	}()
	var got Record
	received, last := 0, -1
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		if q.Pop(&got) {
			i := int(got.FWMark)
			if i <= last || got.Timeout != uint32(i)*3 || got.Flags != uint32(i)^0x5555 || got.CAddr[15] != byte(i) || got.DAddr[0] != byte(i>>8) {
				t.Fatalf("record %d after %d arrived torn or out of order: %+v", i, last, got)
			}
			last = i
			received++
			continue
		}
		if finished {
			break
		}
		select {
		case <-done:
			finished = true // drain what is left, then stop
		default:
		}
	}
	if received != pushed || uint64(n-pushed) != q.Dropped() {
		t.Errorf("pushed %d, received %d, dropped %d of %d", pushed, received, q.Dropped(), n)
	}
	if received == 0 {
		t.Error("nothing got through")
	}
}

// TestQueueAllocs: pushing and popping allocate nothing.
func TestQueueAllocs(t *testing.T) {
	q, _ := NewQueue(8)
	var r, got Record
	n := testing.AllocsPerRun(1000, func() {
		q.Push(&r)
		q.Push(&r)
		q.Publish()
		q.Pop(&got)
		q.Pop(&got)
		q.Pop(&got)
	})
	if n != 0 {
		t.Errorf("push/pop allocate %.1f times", n)
	}
}

// BenchmarkEnqueue measures a worker's cost to hand one record over,
// against a buffered channel of Records (the obvious alternative): with
// room (each op one push; every 64, a publish and a drain of 64 on the
// same goroutine, the batch rhythm of a worker), into a full queue (the
// drop path), and with a consumer draining on another goroutine.
func BenchmarkEnqueue(b *testing.B) {
	var r, got Record
	r.Set(&connV4)
	b.Run("room/queue", func(b *testing.B) {
		q, _ := NewQueue(4096)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			q.Push(&r)
			if i++; i&63 == 0 {
				q.Publish()
				for q.Pop(&got) {
				}
			}
		}
	})
	b.Run("room/chan", func(b *testing.B) {
		ch := make(chan Record, 4096)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			select {
			case ch <- r:
			default:
			}
			if i++; i&63 == 0 {
				for range 64 {
					got = <-ch
				}
			}
		}
	})
	b.Run("full/queue", func(b *testing.B) {
		q, _ := NewQueue(1)
		q.Push(&r)
		b.ReportAllocs()
		for b.Loop() {
			q.Push(&r)
		}
	})
	b.Run("full/chan", func(b *testing.B) {
		ch := make(chan Record, 1)
		ch <- r
		b.ReportAllocs()
		for b.Loop() {
			select {
			case ch <- r:
			default:
			}
		}
	})
	b.Run("consumer/queue", func(b *testing.B) {
		q, _ := NewQueue(4096)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got Record
			for {
				select {
				case <-stop:
					return
				default:
				}
				for q.Pop(&got) {
				}
			}
		}()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			q.Push(&r)
			if i++; i&63 == 0 {
				q.Publish()
			}
		}
		q.Publish()
		close(stop)
		wg.Wait()
		b.ReportMetric(float64(q.Dropped())/float64(b.N), "drops/op")
	})
	b.Run("consumer/chan", func(b *testing.B) {
		ch := make(chan Record, 4096)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-ch:
				}
			}
		}()
		b.ReportAllocs()
		dropped := 0
		for b.Loop() {
			select {
			case ch <- r:
			default:
				dropped++
			}
		}
		close(stop)
		wg.Wait()
		b.ReportMetric(float64(dropped)/float64(b.N), "drops/op")
	})
}

// TestQueueSkip: skips count apart from drops and records, visible after
// Publish.
func TestQueueSkip(t *testing.T) {
	q, err := NewQueue(2)
	if err != nil {
		t.Fatal(err)
	}
	q.Skip()
	q.Skip()
	if q.Skipped() != 0 {
		t.Fatal("skips visible before Publish")
	}
	q.Publish()
	if q.Skipped() != 2 || q.Dropped() != 0 || q.Len() != 0 {
		t.Fatalf("skipped %d, dropped %d, len %d; want 2, 0, 0", q.Skipped(), q.Dropped(), q.Len())
	}
}

// TestQueueWake: with SetWake, Publish signals the consumer once at least
// every records have been published since the last signal, never more
// than one signal pending, and nothing after SetWake(nil, 0); the
// producer's and consumer's fields stay on separate cache lines.
func TestQueueWake(t *testing.T) {
	q, err := NewQueue(64)
	if err != nil {
		t.Fatal(err)
	}
	if h, p := unsafe.Offsetof(q.head), unsafe.Offsetof(q.waker); h/cacheLine == p/cacheLine {
		t.Errorf("head at %d shares a cache line with the producer's waker at %d", h, p)
	}
	wake := make(chan struct{}, 1)
	q.SetWake(wake, 5)
	pending := func() bool {
		select {
		case <-wake:
			return true
		default:
			return false
		}
	}
	var r Record
	push := func(n int) {
		for range n {
			if !q.Push(&r) {
				t.Fatal("queue full")
			}
		}
		q.Publish()
	}
	push(4)
	if pending() {
		t.Fatal("signalled after 4 records, every 5")
	}
	push(1)
	if !pending() {
		t.Fatal("no signal after 5 records")
	}
	push(3)
	q.Publish() // nothing new: no signal either
	if pending() {
		t.Fatal("signalled 3 records after the last signal")
	}
	push(2) // 5 since the last signal
	push(5) // 5 more, while the first is still pending: one signal
	if !pending() || pending() {
		t.Fatal("want exactly one pending signal after two due publishes")
	}
	q.SetWake(nil, 0)
	push(20)
	if pending() {
		t.Fatal("signalled after SetWake(nil, 0)")
	}
	for q.Pop(&r) {
	}
	if a := testing.AllocsPerRun(100, func() { push(1); q.Pop(&r) }); a != 0 {
		t.Errorf("Push, Publish and Pop allocate %v times", a)
	}
}

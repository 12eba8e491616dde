package ipvssync

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

var fixtures = []struct {
	name   string
	hex    string
	syncID uint8
	conns  []Conn
}{
	{"v4", fixV4, 7, []Conn{connV4}},
	{"seq+template", fixSeqAndTemplate, 7, []Conn{connSeq, connTemplate}},
	{"pe", fixPE, 7, []Conn{connPE}},
	{"v6", fixV6, 0, []Conn{connV6}},
	{"fwmark", fixFWMark, 1, []Conn{connFWMark}},
}

func decodeAll(t *testing.T, d *Decoder, msg []byte) ([]Conn, error) {
	t.Helper()
	var got []Conn
	err := d.Decode(msg, func(c *Conn) {
		x := *c
		x.PEData = bytes.Clone(c.PEData)
		x.PEName = bytes.Clone(c.PEName)
		got = append(got, x)
	})
	return got, err
}

func normalize(cs []Conn) []Conn {
	out := make([]Conn, len(cs))
	for i, c := range cs {
		if len(c.PEData) == 0 {
			c.PEData = nil
		}
		if len(c.PEName) == 0 {
			c.PEName = nil
		}
		out[i] = c
	}
	return out
}

// TestEncodeFixtures checks that the encoder writes exactly the bytes of
// each hand-written fixture.
func TestEncodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			want := fixture(t, f.hex)
			e, err := NewEncoder(make([]byte, 0, 1500), 1472, f.syncID)
			if err != nil {
				t.Fatal(err)
			}
			for i := range f.conns {
				if err := e.Append(&f.conns[i]); err != nil {
					t.Fatalf("Append %d: %v", i, err)
				}
			}
			if got := e.Bytes(); !bytes.Equal(got, want) {
				t.Errorf("encoded\n% x\nwant\n% x", got, want)
			}
		})
	}
}

// TestDecodeFixtures checks that each fixture decodes to its connections.
func TestDecodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			d := Decoder{SyncID: f.syncID}
			got, err := decodeAll(t, &d, fixture(t, f.hex))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(f.conns)) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, f.conns)
			}
			if d.Messages != 1 || d.Entries != uint64(len(f.conns)) || d.Drops != [NumReasons]uint64{} {
				t.Errorf("counters: messages %d entries %d drops %v", d.Messages, d.Entries, d.Drops)
			}
		})
	}
}

// TestEncoderStripsHashed checks the kernel's "flags & ~IP_VS_CONN_F_HASHED".
func TestEncoderStripsHashed(t *testing.T) {
	c := connV4
	c.Flags |= FlagHashed | FlagNFCT
	e, _ := NewEncoder(make([]byte, 0, 1500), 1472, 7)
	if err := e.Append(&c); err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(t, &Decoder{}, e.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Flags != FlagDRoute|FlagNFCT {
		t.Errorf("flags sent %#x, want %#x (HASHED stripped, the rest kept)", got[0].Flags, FlagDRoute|FlagNFCT)
	}
	if f := BackupFlags(got[0].Flags); f != FlagDRoute|FlagSync {
		t.Errorf("BackupFlags = %#x, want DROUTE|SYNC", f)
	}
	if f := UpdateFlags(FlagDRoute|FlagSync|FlagInactive, FlagDRoute); f != FlagDRoute|FlagSync {
		t.Errorf("UpdateFlags cleared INACTIVE to %#x", f)
	}
}

// TestEncoderMaxLen checks the sync_buff rules: entries go in while the
// message (with padding) stays within maxLen, the first entry always goes
// in, and the message is unchanged by a refused entry.
func TestEncoderMaxLen(t *testing.T) {
	// 8 + 36 + 36 = 80 fits in 80, a third entry does not.
	e, err := NewEncoder(make([]byte, 0, 512), 80, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := e.Append(&connV4); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	before := bytes.Clone(e.Bytes())
	if err := e.Append(&connV4); !errors.Is(err, ErrFull) {
		t.Fatalf("third entry: %v, want ErrFull", err)
	}
	if !bytes.Equal(before, e.Bytes()) {
		t.Error("a refused entry changed the message")
	}
	// Padding counts: 8 + 62 = 70, +2 pad +36 = 108 > 100.
	e, _ = NewEncoder(make([]byte, 0, 512), 106, 1)
	if err := e.Append(&connSeq); err != nil {
		t.Fatal(err)
	}
	if err := e.Append(&connTemplate); !errors.Is(err, ErrFull) {
		t.Fatalf("entry needing padding past maxlen: %v, want ErrFull", err)
	}
	// The first entry of a message goes in even past maxLen.
	e, _ = NewEncoder(make([]byte, 0, 512), 20, 1)
	if err := e.Append(&connV4); err != nil {
		t.Fatalf("first entry in a small message: %v", err)
	}
	if err := e.Append(&connV4); !errors.Is(err, ErrFull) {
		t.Fatalf("second entry: %v, want ErrFull", err)
	}
	e.Reset()
	if e.Len() != HeaderLen || e.Count() != 0 {
		t.Errorf("after Reset: len %d count %d", e.Len(), e.Count())
	}
	// nr_conns is one byte.
	e, _ = NewEncoder(make([]byte, 0, 65535), 65535, 1)
	for range MaxConns {
		if err := e.Append(&connV4); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Append(&connV4); !errors.Is(err, ErrFull) {
		t.Fatalf("entry %d: %v, want ErrFull", MaxConns+1, err)
	}
}

func TestEncoderRefuses(t *testing.T) {
	if _, err := NewEncoder(make([]byte, 0, 100), 1472, 1); err == nil {
		t.Error("a buffer smaller than maxLen was accepted")
	}
	if _, err := NewEncoder(make([]byte, 0, 70000), 0, 1); err == nil {
		t.Error("maxLen 0 was accepted")
	}
	e, _ := NewEncoder(make([]byte, 0, 1500), 1472, 1)
	for name, mod := range map[string]func(*Conn){
		"mixed families": func(c *Conn) { c.DAddr = ip("2001:2::1") },
		"no address":     func(c *Conn) { c.VAddr = netip.Addr{} },
		"pe data":        func(c *Conn) { c.PEData = make([]byte, 256) },
		"pe name":        func(c *Conn) { c.PEName = []byte("seventeen-chars!!") },
	} {
		c := connV4
		mod(&c)
		if err := e.Append(&c); err == nil || errors.Is(err, ErrFull) {
			t.Errorf("%s: Append = %v, want a refusal", name, err)
		}
		if e.Count() != 0 || e.Len() != HeaderLen {
			t.Errorf("%s: a refused entry changed the message", name)
		}
	}
}

// TestEncodeAllocs checks that appending allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	e, _ := NewEncoder(make([]byte, 0, 1500), 1472, 1)
	cs := []Conn{connV4, connSeq, connTemplate, connPE, connV6, connFWMark}
	n := testing.AllocsPerRun(200, func() {
		for i := range cs {
			if e.Append(&cs[i]) != nil {
				e.Reset()
			}
		}
	})
	if n != 0 {
		t.Errorf("Append allocates %.1f times per run", n)
	}
}

// TestDecodeAllocs checks that decoding a good message allocates nothing.
func TestDecodeAllocs(t *testing.T) {
	msg := fixture(t, fixSeqAndTemplate)
	var d Decoder
	var sum int
	visit := func(c *Conn) { sum += int(c.CPort) }
	n := testing.AllocsPerRun(200, func() {
		if err := d.Decode(msg, visit); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Decode allocates %.1f times per run", n)
	}
}

package ipvssync

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode: decoding never panics, and a message that decodes
// re-encodes to one that decodes to the same entries and re-encodes to
// the same bytes (the encoder's form is canonical: no stray padding
// bytes, known options only, in the kernel's order).
func FuzzDecode(f *testing.F) {
	for _, h := range []string{fixV4, fixSeqAndTemplate, fixPE, fixV6, fixFWMark, fixV0} {
		f.Add(fixture(f, h))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var d Decoder
		var conns []Conn
		err := d.Decode(msg, func(c *Conn) {
			x := *c
			x.PEData, x.PEName = bytes.Clone(c.PEData), bytes.Clone(c.PEName)
			conns = append(conns, x)
		})
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Decode returned %T %v", err, err)
		}
		if err != nil && !e.Reason.EntryOnly() {
			if len(conns) != 0 {
				t.Fatalf("a refused message handed over %d entries", len(conns))
			}
			return
		}
		enc, err := NewEncoder(make([]byte, 0, 65535), 65535, msg[1])
		if err != nil {
			t.Fatal(err)
		}
		for i := range conns {
			if err := enc.Append(&conns[i]); err != nil {
				t.Fatalf("re-encoding entry %d: %v", i, err)
			}
		}
		first := bytes.Clone(enc.Bytes())
		var again []Conn
		var d2 Decoder
		if err := d2.Decode(first, func(c *Conn) {
			x := *c
			x.PEData, x.PEName = bytes.Clone(c.PEData), bytes.Clone(c.PEName)
			again = append(again, x)
		}); err != nil {
			t.Fatalf("re-encoded message does not decode: %v\n% x", err, first)
		}
		for i := range conns {
			conns[i].Flags &^= FlagHashed // the encoder never sends it, as the kernel
		}
		if !reflect.DeepEqual(normalize(conns), normalize(again)) {
			t.Fatalf("round trip changed the entries:\n%+v\n%+v", conns, again)
		}
		enc.Reset()
		for i := range again {
			if err := enc.Append(&again[i]); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(first, enc.Bytes()) {
			t.Fatalf("encoding is not stable:\n% x\n% x", first, enc.Bytes())
		}
		if d.Drops == [NumReasons]uint64{} && bytes.Equal(first, msg) == false && canonical(msg) {
			t.Fatalf("a canonical message re-encoded differently:\n% x\n% x", msg, first)
		}
	})
}

// canonical reports whether msg is what the encoder would write for its
// entries: the fixtures are, so the fuzzer's byte-for-byte check starts
// from them.
func canonical(msg []byte) bool {
	for _, h := range []string{fixV4, fixSeqAndTemplate, fixPE, fixV6, fixFWMark} {
		if bytes.Equal(msg, fixture(nil, h)) {
			return true
		}
	}
	return false
}

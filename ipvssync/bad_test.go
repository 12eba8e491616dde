package ipvssync

import (
	"bytes"
	"errors"
	"testing"
)

// A version-0 message (struct ip_vs_sync_mesg_v0 and one struct
// ip_vs_sync_conn_v0), as a kernel with sync_version 0 sends it.
const fixV0 = `
01                # nr_conns 1 (where v1 has its reserved 0)
07                # syncid 7
00 1c             # size 4 + 24 = 28
00 06             # reserved, protocol TCP
c3 50 00 50 00 50 # cport, vport, dport
c6 12 00 64 c6 13 00 01 c6 12 00 0b   # caddr, vaddr, daddr
00 03             # flags (16 bits in v0): DROUTE
00 01             # state ESTABLISHED
`

func mutate(t *testing.T, hex string, f func(b []byte) []byte) []byte {
	t.Helper()
	return f(fixture(t, hex))
}

// TestDecodeBad checks each drop reason on a message broken in one way:
// the right reason is counted, the error names the value, and a message
// dropped whole hands no entry over.
func TestDecodeBad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		msg     []byte
		d       Decoder
		reason  Reason
		visited int    // entries still read (only for entry-only drops)
		detail  string // a piece of the error message
	}{
		{"short header", fixture(t, fixV4)[:3], Decoder{}, Truncated, 0, "3 bytes"},
		{"oversized", fixture(t, fixV4), Decoder{MaxLen: 40}, Oversized, 0, "44 bytes"},
		{"size mismatch", append(fixture(t, fixV4), 0), Decoder{}, SizeMismatch, 0, "size field 44 in a 45-byte"},
		{"wrong syncid", fixture(t, fixV4), Decoder{SyncID: 8}, WrongSyncID, 0, "syncid 7"},
		{"version 0", fixture(t, fixV0), Decoder{SyncID: 7}, Version0, 0, "first byte 1"},
		{"version 2", mutate(t, fixV4, func(b []byte) []byte { b[5] = 2; return b }), Decoder{}, WrongVersion, 0, "version 2"},
		{"spare set", mutate(t, fixV4, func(b []byte) []byte { b[7] = 1; return b }), Decoder{}, WrongVersion, 0, "spare 1"},
		{"nr_conns past end", mutate(t, fixV4, func(b []byte) []byte { b[4] = 2; return b }), Decoder{}, Truncated, 0, "0 bytes left"},
		{"entry past end", mutate(t, fixV4, func(b []byte) []byte { b[11] = 40; return b }), Decoder{}, Truncated, 0, "entry length 40"},
		{"entry version", mutate(t, fixV4, func(b []byte) []byte { b[10] = 0x10; return b }), Decoder{}, EntryVersion, 0, "entry version 1"},
		{"entry type", mutate(t, fixV4, func(b []byte) []byte { b[8] = 2; return b }), Decoder{}, EntryType, 0, "type 0x2"},
		{"entry too short", mutate(t, fixV4, func(b []byte) []byte { b[11] = 32; return b }), Decoder{}, EntrySize, 0, "entry length 32"},
		{"v6 type on a v4 entry", mutate(t, fixV4, func(b []byte) []byte { b[8] = 1; return b }), Decoder{}, EntrySize, 0, "fixed part of this entry type is 72"},
		{"option past entry", mutate(t, fixPE, func(b []byte) []byte { b[56] = 4; return b }), Decoder{}, OptionTruncated, 0, "length 4"},
		{"option length 0", mutate(t, fixPE, func(b []byte) []byte { b[45] = 0; return b }), Decoder{}, OptionTruncated, 0, "length 0"},
		{"option header cut", mutate(t, fixV4, func(b []byte) []byte {
			b[3], b[11] = 45, 37 // one byte of option header after the fixed part
			return append(b, 1)
		}), Decoder{}, OptionTruncated, 0, "only 1 byte left"},
		{"seq option 23 bytes", mutate(t, fixSeqAndTemplate, func(b []byte) []byte { b[45] = 23; return b }), Decoder{}, BadSeqOption, 0, "length 23"},
		{"pe data twice", mutate(t, fixPE, func(b []byte) []byte { b[55] = 2; return b }), Decoder{}, BadPEData, 0, "twice"},
		{"pe name twice", mutate(t, fixPE, func(b []byte) []byte { b[44] = 3; return b }), Decoder{}, BadPEName, 0, "once"},
		{"unknown mandatory option", mutate(t, fixPE, func(b []byte) []byte { b[55] = 5; return b }), Decoder{}, UnknownOption, 0, "type 5"},
		{"pe data without name", mutate(t, fixPE, func(b []byte) []byte { b[55] = 0x45; return b }), Decoder{}, PEWithoutName, 0, "9 bytes of PE data"},
		{"unknown protocol", mutate(t, fixV4, func(b []byte) []byte { b[9] = 1; return b }), Decoder{}, UnknownProtocol, 0, "protocol 1"},
		{"tcp state 11", mutate(t, fixV4, func(b []byte) []byte { b[17] = 11; return b }), Decoder{}, BadState, 0, "state 11"},
		{"template state 2", mutate(t, fixPE, func(b []byte) []byte { b[17] = 2; return b }), Decoder{}, BadState, 0, "template state 2"},
		{"first entry dropped, second read", mutate(t, fixSeqAndTemplate, func(b []byte) []byte { b[9] = 99; return b }), Decoder{}, UnknownProtocol, 1, "protocol 99"},
		{"second entry broken, nothing read", mutate(t, fixSeqAndTemplate, func(b []byte) []byte { b[72+2] = 0x20; return b }), Decoder{}, EntryVersion, 0, "entry 1 at byte 72"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			n := 0
			err := d.Decode(tc.msg, func(*Conn) { n++ })
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode = %v, want an *Error", err)
			}
			if e.Reason != tc.reason {
				t.Errorf("reason %s, want %s (%v)", e.Reason, tc.reason, err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.detail)) {
				t.Errorf("error %q does not say %q", err, tc.detail)
			}
			if n != tc.visited {
				t.Errorf("%d entries visited, want %d", n, tc.visited)
			}
			if d.Drops[tc.reason] != 1 {
				t.Errorf("Drops[%s] = %d, want 1", tc.reason, d.Drops[tc.reason])
			}
			if tc.reason.EntryOnly() != (d.Messages == 1) {
				t.Errorf("Messages = %d for a drop of kind %s", d.Messages, tc.reason)
			}
		})
	}
}

// TestDecodeOptionalUnknown checks that an unknown option with the
// IPVS_OPT_F_PARAM bit is skipped and the entry read.
func TestDecodeOptionalUnknown(t *testing.T) {
	// Append an optional option (type 0x47, 2 bytes) to the v4 entry.
	msg := mutate(t, fixV4, func(b []byte) []byte {
		b[3], b[11] = 48, 40
		return append(b, 0x47, 2, 0xde, 0xad)
	})
	var d Decoder
	got, err := decodeAll(t, &d, msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].CAddr != connV4.CAddr {
		t.Errorf("got %+v", got)
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := Reason(1); r < NumReasons; r++ {
		s := r.String()
		if s == "" || seen[s] || bytes.HasPrefix([]byte(s), []byte("reason(")) {
			t.Errorf("reason %d has name %q", r, s)
		}
		seen[s] = true
	}
}

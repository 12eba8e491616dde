package ipvssync

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Reason is why a message or an entry was dropped. Every reason is a
// counter of Decoder.Drops.
type Reason uint8

// Drop reasons. The first group drops the whole message, as the kernel's
// "BACKUP, Dropping buffer" paths do; the second drops one entry and the
// message's other entries are still read, as the kernel's "Single msg
// dropped" path does.
const (
	_ Reason = iota
	// Truncated: shorter than the 4-byte version-0 header, or an entry
	// runs past the end of the message.
	Truncated
	// Oversized: longer than the receiver's maximum message length.
	Oversized
	// SizeMismatch: the header's size is not the datagram's length.
	SizeMismatch
	// WrongSyncID: a syncid other than the one this backup follows.
	WrongSyncID
	// Version0: a version-0 message (first byte, its nr_conns, not 0).
	Version0
	// WrongVersion: a version byte other than 1 (or a non-zero spare).
	WrongVersion
	// EntrySize: an entry's length is shorter than its fixed part.
	EntrySize
	// EntryVersion: an entry's version (top 4 bits of ver_size) is not 0.
	EntryVersion
	// EntryType: an entry's type is neither IPv4 (0) nor IPv6 (bit 0).
	EntryType
	// OptionTruncated: an option's header or data runs past its entry, or
	// its length is 0.
	OptionTruncated
	// BadSeqOption: a sequence option that is not 24 bytes or appears
	// twice.
	BadSeqOption
	// BadPEData: PE data that appears twice.
	BadPEData
	// BadPEName: a PE name longer than 16 bytes or that appears twice.
	BadPEName

	// UnknownOption: an option type the decoder does not know, without
	// the optional bit (IPVS_OPT_F_PARAM). The entry is dropped.
	UnknownOption
	// UnknownProtocol: a protocol IPVS does not sync. The entry is
	// dropped.
	UnknownProtocol
	// BadState: a state beyond the protocol's (or a template's) last. The
	// entry is dropped.
	BadState
	// PEWithoutName: PE data with no PE name. The entry is dropped.
	PEWithoutName

	// NumReasons bounds the reasons, for counter arrays.
	NumReasons
)

var reasonNames = [NumReasons]string{
	Truncated: "truncated", Oversized: "oversized", SizeMismatch: "size_mismatch",
	WrongSyncID: "wrong_syncid", Version0: "version0", WrongVersion: "wrong_version",
	EntrySize: "entry_size", EntryVersion: "entry_version", EntryType: "entry_type",
	OptionTruncated: "option_truncated", BadSeqOption: "bad_seq_option",
	BadPEData: "bad_pe_data", BadPEName: "bad_pe_name", UnknownOption: "unknown_option",
	UnknownProtocol: "unknown_protocol", BadState: "bad_state", PEWithoutName: "pe_without_name",
}

// String is the reason's counter label.
func (r Reason) String() string {
	if r < NumReasons && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// EntryOnly reports whether the reason drops one entry rather than the
// message.
func (r Reason) EntryOnly() bool { return r >= UnknownOption && r < NumReasons }

// Error is a dropped message or entry: the reason, where, and the value
// that broke the rule.
type Error struct {
	Reason Reason
	Entry  int // 0-based entry index; -1 for the header
	Offset int // byte offset in the message
	Detail string
}

func (e *Error) Error() string {
	where := "header"
	if e.Entry >= 0 {
		where = fmt.Sprintf("entry %d at byte %d", e.Entry, e.Offset)
	}
	return fmt.Sprintf("ipvssync: %s: %s: %s", e.Reason, where, e.Detail)
}

// Decoder reads messages as a backup's ip_vs_process_message does and
// counts what it reads and drops.
type Decoder struct {
	// SyncID is the syncid this backup follows; 0 accepts any, as in
	// the kernel.
	SyncID uint8
	// MaxLen is the receiver's maximum message length (MaxLen); 0 means
	// 65535. A longer datagram is Oversized (the kernel's read would cut
	// it short, and its size would then not match).
	MaxLen int

	Messages uint64             // messages accepted
	Entries  uint64             // entries handed to the visitor
	Drops    [NumReasons]uint64 // drops by reason, messages and entries

	conn Conn // handed to the visitor; kept here so it is not allocated per call
}

// Decode checks msg and, if it is well formed, calls visit for each
// entry in order with a Conn valid only during the call. A malformed
// message returns an *Error and visit is never called; entries dropped
// alone are counted in Drops and skipped. The first such entry's error is
// returned after the others were visited, so the caller may log it.
func (d *Decoder) Decode(msg []byte, visit func(*Conn)) error {
	if err := d.check(msg); err != nil {
		d.Drops[err.Reason]++
		return err
	}
	d.Messages++
	var first *Error
	c := &d.conn
	off := HeaderLen
	for i := range int(msg[4]) {
		next, err := parseEntry(msg, i, off, c)
		if err != nil {
			d.Drops[err.Reason]++
			if first == nil {
				first = err
			}
		} else {
			d.Entries++
			visit(c)
		}
		off = next
	}
	d.conn = Conn{} // drop the references into msg
	if first != nil {
		return first
	}
	return nil
}

// check validates the header and the structure of every entry, so that
// a message is either read or refused whole.
func (d *Decoder) check(msg []byte) *Error {
	hdr := func(r Reason, f string, a ...any) *Error {
		return &Error{Reason: r, Entry: -1, Detail: fmt.Sprintf(f, a...)}
	}
	maxLen := d.MaxLen
	if maxLen <= 0 {
		maxLen = 65535
	}
	switch {
	case len(msg) > maxLen:
		return hdr(Oversized, "%d bytes: the maximum message length is %d", len(msg), maxLen)
	case len(msg) < HeaderV0Len:
		return hdr(Truncated, "%d bytes: shorter than the %d-byte header", len(msg), HeaderV0Len)
	}
	if size := int(binary.BigEndian.Uint16(msg[2:])); size != len(msg) {
		return hdr(SizeMismatch, "size field %d in a %d-byte message", size, len(msg))
	}
	if d.SyncID != 0 && msg[1] != d.SyncID {
		return hdr(WrongSyncID, "syncid %d: this backup follows syncid %d", msg[1], d.SyncID)
	}
	if msg[0] != 0 || len(msg) < HeaderLen {
		return hdr(Version0, "a version-0 message (first byte %d): only version 1 is read", msg[0])
	}
	if msg[5] != Version || msg[6] != 0 || msg[7] != 0 {
		return hdr(WrongVersion, "version %d, spare %d: want version %d, spare 0", int8(msg[5]), binary.BigEndian.Uint16(msg[6:]), Version)
	}
	off := HeaderLen
	for i := range int(msg[4]) {
		next, err := parseEntry(msg, i, off, &d.conn)
		if err != nil && !err.Reason.EntryOnly() {
			return err
		}
		off = next
	}
	return nil
}

// parseEntry reads the entry at off into c, returning where the next one
// starts. Its checks and their order are ip_vs_process_message's and
// ip_vs_proc_sync_conn's.
func parseEntry(msg []byte, i, off int, c *Conn) (int, *Error) {
	bad := func(r Reason, f string, a ...any) *Error {
		return &Error{Reason: r, Entry: i, Offset: off, Detail: fmt.Sprintf(f, a...)}
	}
	// The kernel checks room for an IPv4 entry before it knows the type.
	if off+EntryV4Len > len(msg) {
		return off, bad(Truncated, "%d bytes left: an entry needs at least %d", len(msg)-min(off, len(msg)), EntryV4Len)
	}
	vs := binary.BigEndian.Uint16(msg[off+2:])
	size := int(vs & sverMask)
	end := off + size
	if end > len(msg) {
		return off, bad(Truncated, "entry length %d runs past the message end at byte %d", size, len(msg))
	}
	if v := vs >> sverShift; v != 0 {
		return off, bad(EntryVersion, "entry version %d: want 0", v)
	}
	next := off + (size+3)&^3
	typ := msg[off]
	fixed := EntryV4Len
	switch {
	case typ&typeInet6 != 0:
		fixed = EntryV6Len
	case typ != 0:
		return next, bad(EntryType, "type %#x: want 0 (IPv4) or 1 (IPv6)", typ)
	}
	if size < fixed {
		return next, bad(EntrySize, "entry length %d: the fixed part of this entry type is %d", size, fixed)
	}
	p := msg[off:end]
	*c = Conn{
		Protocol: p[1],
		Flags:    binary.BigEndian.Uint32(p[4:]),
		State:    binary.BigEndian.Uint16(p[8:]),
		CPort:    binary.BigEndian.Uint16(p[10:]),
		VPort:    binary.BigEndian.Uint16(p[12:]),
		DPort:    binary.BigEndian.Uint16(p[14:]),
		FWMark:   binary.BigEndian.Uint32(p[16:]),
		Timeout:  binary.BigEndian.Uint32(p[20:]),
	}
	if fixed == EntryV6Len {
		c.CAddr = netip.AddrFrom16([16]byte(p[24:40]))
		c.VAddr = netip.AddrFrom16([16]byte(p[40:56]))
		c.DAddr = netip.AddrFrom16([16]byte(p[56:72]))
	} else {
		c.CAddr = netip.AddrFrom4([4]byte(p[24:28]))
		c.VAddr = netip.AddrFrom4([4]byte(p[28:32]))
		c.DAddr = netip.AddrFrom4([4]byte(p[32:36]))
	}
	var seen uint8
	for o := fixed; o < len(p); {
		if o+2 > len(p) {
			return next, bad(OptionTruncated, "option header at entry byte %d: only %d byte left", o, len(p)-o)
		}
		typ, n := p[o], int(p[o+1])
		o += 2
		if n == 0 || o+n > len(p) {
			return next, bad(OptionTruncated, "option %d of length %d at entry byte %d: %d bytes left", typ, n, o-2, len(p)-o)
		}
		data := p[o : o+n]
		switch typ &^ optFParam {
		case optSeqData:
			if n != SeqOptLen || seen&(1<<optSeqData) != 0 {
				return next, bad(BadSeqOption, "sequence option of length %d (want %d, once)", n, SeqOptLen)
			}
			c.HasSeq = true
			for j, s := range [2]*Seq{&c.InSeq, &c.OutSeq} {
				q := data[12*j:]
				*s = Seq{binary.BigEndian.Uint32(q), binary.BigEndian.Uint32(q[4:]), binary.BigEndian.Uint32(q[8:])}
			}
		case optPEData:
			if seen&(1<<optPEData) != 0 {
				return next, bad(BadPEData, "PE data given twice")
			}
			c.PEData = data
		case optPEName:
			if n > PENameMax || seen&(1<<optPEName) != 0 {
				return next, bad(BadPEName, "PE name of %d bytes (at most %d, once)", n, PENameMax)
			}
			c.PEName = data
		default:
			if typ&optFParam == 0 {
				return next, bad(UnknownOption, "mandatory option type %d is unknown", typ)
			}
		}
		if t := typ &^ optFParam; t < 8 {
			seen |= 1 << t
		}
		o += n
	}
	if c.Flags&BackupMask&FlagTemplate == 0 {
		ns := numStates(c.Protocol)
		if ns == 0 {
			return next, bad(UnknownProtocol, "protocol %d is not one IPVS syncs", c.Protocol)
		}
		if c.State >= ns {
			return next, bad(BadState, "state %d of protocol %d: its states are 0..%d", c.State, c.Protocol, ns-1)
		}
	} else if c.State >= templateLast {
		return next, bad(BadState, "template state %d: template states are 0..%d", c.State, templateLast-1)
	}
	if len(c.PEData) > 0 && len(c.PEName) == 0 {
		return next, bad(PEWithoutName, "%d bytes of PE data with no PE name", len(c.PEData))
	}
	return next, nil
}

package ipvssync

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrFull says an entry does not fit in the message being built: send
// the message (Bytes), Reset, and append the entry again.
var ErrFull = errors.New("ipvssync: message full")

// Encoder builds one message at a time in a caller's buffer, as
// ip_vs_sync_conn fills a sync_buff: entries are appended while the
// message stays within its maximum length, except that the first entry of
// a message always goes in (the kernel sizes such a buffer to fit it).
// Appending never allocates.
type Encoder struct {
	buf    []byte
	maxLen int
	syncID uint8
}

// NewEncoder returns an encoder writing into buf for messages of at most
// maxLen bytes (see MaxLen) with the given syncid. buf's capacity must
// hold the larger of maxLen and a header with one longest entry.
func NewEncoder(buf []byte, maxLen int, syncID uint8) (*Encoder, error) {
	if maxLen < 1 || maxLen > 65535 {
		return nil, fmt.Errorf("ipvssync: maximum message length %d: must be 1..65535", maxLen)
	}
	if need := max(maxLen, HeaderLen+MaxEntryLen); cap(buf) < need {
		return nil, fmt.Errorf("ipvssync: buffer capacity %d: a %d-byte message needs %d", cap(buf), maxLen, need)
	}
	e := &Encoder{buf: buf[:0], maxLen: maxLen, syncID: syncID}
	e.Reset()
	return e, nil
}

// Reset starts a new, empty message.
func (e *Encoder) Reset() {
	b := e.buf[:HeaderLen]
	b[0] = 0 // reserved: a version-0 receiver reads it as nr_conns
	b[1] = e.syncID
	binary.BigEndian.PutUint16(b[2:], HeaderLen)
	b[4] = 0 // nr_conns
	b[5] = Version
	b[6], b[7] = 0, 0 // spare
	e.buf = b
}

// Count is the number of entries in the message.
func (e *Encoder) Count() int { return int(e.buf[4]) }

// Len is the message's length so far.
func (e *Encoder) Len() int { return len(e.buf) }

// Bytes returns the message: header and entries, its size field set. It
// aliases the encoder's buffer until the next Reset.
func (e *Encoder) Bytes() []byte { return e.buf }

// Append adds c to the message. It returns ErrFull if the message
// already has entries and c would take it past its maximum length (or
// past MaxConns entries), and an error naming the field if c cannot be
// encoded; either way the message is unchanged.
func (e *Encoder) Append(c *Conn) error {
	if err := c.check(); err != nil {
		return err
	}
	n := c.Len()
	pad := (4 - len(e.buf)) & 3
	if e.Count() > 0 && (len(e.buf)+pad+n > e.maxLen || e.Count() == MaxConns) {
		return ErrFull
	}
	start := len(e.buf)
	b := e.buf[:start+pad+n]
	clear(b[start : start+pad])
	p := b[start+pad:]
	typ := byte(0)
	if c.IPv6() {
		typ = typeInet6
	}
	p[0] = typ
	p[1] = c.Protocol
	binary.BigEndian.PutUint16(p[2:], uint16(n)&sverMask) // version 0
	binary.BigEndian.PutUint32(p[4:], c.Flags&^FlagHashed)
	binary.BigEndian.PutUint16(p[8:], c.State)
	binary.BigEndian.PutUint16(p[10:], c.CPort)
	binary.BigEndian.PutUint16(p[12:], c.VPort)
	binary.BigEndian.PutUint16(p[14:], c.DPort)
	binary.BigEndian.PutUint32(p[16:], c.FWMark)
	binary.BigEndian.PutUint32(p[20:], c.Timeout)
	o := 24
	if c.IPv6() {
		a, v, d := c.CAddr.As16(), c.VAddr.As16(), c.DAddr.As16()
		o += copy(p[o:], a[:])
		o += copy(p[o:], v[:])
		o += copy(p[o:], d[:])
	} else {
		a, v, d := c.CAddr.As4(), c.VAddr.As4(), c.DAddr.As4()
		o += copy(p[o:], a[:])
		o += copy(p[o:], v[:])
		o += copy(p[o:], d[:])
	}
	if c.HasSeq {
		p[o], p[o+1] = optSeqData, SeqOptLen
		o += 2
		for _, s := range [2]*Seq{&c.InSeq, &c.OutSeq} {
			binary.BigEndian.PutUint32(p[o:], s.InitSeq)
			binary.BigEndian.PutUint32(p[o+4:], s.Delta)
			binary.BigEndian.PutUint32(p[o+8:], s.PreviousDelta)
			o += 12
		}
	}
	if len(c.PEData) > 0 {
		p[o], p[o+1] = optPEData, byte(len(c.PEData))
		o += 2 + copy(p[o+2:], c.PEData)
	}
	if len(c.PEName) > 0 {
		p[o], p[o+1] = optPEName, byte(len(c.PEName))
		copy(p[o+2:], c.PEName) // the last option: o is not needed after it
	}
	e.buf = b
	e.buf[4]++
	binary.BigEndian.PutUint16(e.buf[2:], uint16(len(e.buf)))
	return nil
}

// check refuses what the wire cannot carry.
func (c *Conn) check() error {
	switch {
	case !c.CAddr.IsValid() || !c.VAddr.IsValid() || !c.DAddr.IsValid():
		return fmt.Errorf("ipvssync: entry %v -> %v via %v: every address must be set", c.CAddr, c.VAddr, c.DAddr)
	case c.CAddr.Zone() != "" || c.VAddr.Zone() != "" || c.DAddr.Zone() != "":
		return fmt.Errorf("ipvssync: entry %v -> %v via %v: addresses cannot carry a zone", c.CAddr, c.VAddr, c.DAddr)
	case c.CAddr.Is6() != c.VAddr.Is6() || c.CAddr.Is6() != c.DAddr.Is6():
		return fmt.Errorf("ipvssync: entry %v -> %v via %v: addresses must all be IPv4 or all IPv6", c.CAddr, c.VAddr, c.DAddr)
	case len(c.PEData) > PEDataMax:
		return fmt.Errorf("ipvssync: PE data of %d bytes: at most %d", len(c.PEData), PEDataMax)
	case len(c.PEName) > PENameMax:
		return fmt.Errorf("ipvssync: PE name %q: at most %d bytes", c.PEName, PENameMax)
	}
	return nil
}

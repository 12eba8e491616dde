package header

import "encoding/binary"

// UDPLen is the length of a UDP header.
const UDPLen = 8

// UDP is a UDP header. The slice must hold at least UDPLen bytes.
type UDP []byte

// SrcPort returns the source port.
func (h UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(h[0:2]) }

// SetSrcPort sets the source port.
func (h UDP) SetSrcPort(v uint16) { binary.BigEndian.PutUint16(h[0:2], v) }

// DstPort returns the destination port.
func (h UDP) DstPort() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// SetDstPort sets the destination port.
func (h UDP) SetDstPort(v uint16) { binary.BigEndian.PutUint16(h[2:4], v) }

// Length returns the length of header and payload.
func (h UDP) Length() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// SetLength sets the length of header and payload.
func (h UDP) SetLength(v uint16) { binary.BigEndian.PutUint16(h[4:6], v) }

// Checksum returns the checksum field; zero means the sender computed none.
func (h UDP) Checksum() uint16 { return binary.BigEndian.Uint16(h[6:8]) }

// SetChecksum sets the checksum field.
func (h UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[6:8], v) }

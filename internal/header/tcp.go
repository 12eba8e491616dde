package header

import "encoding/binary"

// TCPMinLen is the length of a TCP header without options.
const TCPMinLen = 20

// TCP flag bits, as in the 14th header byte.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// TCP is a TCP header. The slice must hold at least TCPMinLen bytes.
type TCP []byte

// SrcPort returns the source port.
func (h TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(h[0:2]) }

// SetSrcPort sets the source port.
func (h TCP) SetSrcPort(v uint16) { binary.BigEndian.PutUint16(h[0:2], v) }

// DstPort returns the destination port.
func (h TCP) DstPort() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// SetDstPort sets the destination port.
func (h TCP) SetDstPort(v uint16) { binary.BigEndian.PutUint16(h[2:4], v) }

// Seq returns the sequence number.
func (h TCP) Seq() uint32 { return binary.BigEndian.Uint32(h[4:8]) }

// Ack returns the acknowledgement number.
func (h TCP) Ack() uint32 { return binary.BigEndian.Uint32(h[8:12]) }

// HeaderLen returns the data offset in bytes.
func (h TCP) HeaderLen() int { return int(h[12]>>4) * 4 }

// Flags returns the eight flag bits (CWR..FIN).
func (h TCP) Flags() uint8 { return h[13] }

// SetFlags sets the eight flag bits.
func (h TCP) SetFlags(v uint8) { h[13] = v }

// Window returns the receive window.
func (h TCP) Window() uint16 { return binary.BigEndian.Uint16(h[14:16]) }

// Checksum returns the checksum field.
func (h TCP) Checksum() uint16 { return binary.BigEndian.Uint16(h[16:18]) }

// SetChecksum sets the checksum field.
func (h TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[16:18], v) }

package header

import "encoding/binary"

// Ethernet header layout.
const (
	EthernetLen = 14 // destination MAC, source MAC, ethertype
	VLANTagLen  = 4  // TPID 0x8100 is the ethertype, then TCI and the inner ethertype
)

// Ethertypes the director distinguishes.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100 // IEEE 802.1Q
	EtherTypeIPv6 uint16 = 0x86DD
)

// Ethernet is an Ethernet II header at the start of a frame. The slice must hold
// at least EthernetLen bytes; with a VLAN tag, VLANTCI and InnerEtherType need
// EthernetLen+VLANTagLen.
type Ethernet []byte

// DstMAC returns the destination address.
func (e Ethernet) DstMAC() [6]byte { return [6]byte(e[0:6]) }

// SrcMAC returns the source address.
func (e Ethernet) SrcMAC() [6]byte { return [6]byte(e[6:12]) }

// SetDstMAC sets the destination address.
func (e Ethernet) SetDstMAC(m [6]byte) { copy(e[0:6], m[:]) }

// SetSrcMAC sets the source address.
func (e Ethernet) SetSrcMAC(m [6]byte) { copy(e[6:12], m[:]) }

// EtherType returns the outer ethertype, which is EtherTypeVLAN for a tagged frame.
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// SetEtherType sets the outer ethertype.
func (e Ethernet) SetEtherType(t uint16) { binary.BigEndian.PutUint16(e[12:14], t) }

// VLANTCI returns the tag control information (priority, DEI, VLAN ID) of a
// tagged frame.
func (e Ethernet) VLANTCI() uint16 { return binary.BigEndian.Uint16(e[14:16]) }

// SetVLANTCI sets the tag control information of a tagged frame.
func (e Ethernet) SetVLANTCI(tci uint16) { binary.BigEndian.PutUint16(e[14:16], tci) }

// InnerEtherType returns the ethertype that follows the 802.1Q tag.
func (e Ethernet) InnerEtherType() uint16 { return binary.BigEndian.Uint16(e[16:18]) }

// SetInnerEtherType sets the ethertype that follows the 802.1Q tag.
func (e Ethernet) SetInnerEtherType(t uint16) { binary.BigEndian.PutUint16(e[16:18], t) }

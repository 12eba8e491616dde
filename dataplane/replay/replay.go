package replay

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// Options describe the offline director.
type Options struct {
	MAC      [6]byte                // director's interface MAC
	Addr     netip.Addr             // director's IPv4 address (VS/TUN outer source)
	MTU      int                    // egress MTU
	MACs     map[netip.Addr][6]byte // real-server MACs; others are synthetic
	Capacity int                    // connection table size
}

// Summary counts what happened to the input.
type Summary struct {
	In, Forwarded, Replies, Dropped int
	Drops                           map[string]uint64
}

const chunkSize, headroom = 2048, 256

// Run reads pcap from in and writes the transmitted frames as pcap to out.
func Run(t *vs.Table, in io.Reader, out io.Writer, o Options) (Summary, error) {
	sum := Summary{Drops: map[string]uint64{}}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Capacity == 0 {
		o.Capacity = 1 << 16
	}
	if !o.Addr.Is4() {
		return sum, fmt.Errorf("director address %s: must be IPv4", o.Addr)
	}
	r, err := pcapgo.NewReader(in)
	if err != nil {
		return sum, fmt.Errorf("read pcap: %w", err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		return sum, fmt.Errorf("read pcap: link type %s: only Ethernet captures can be replayed", r.LinkType())
	}
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		return sum, err
	}
	clock := &conntrack.ManualClock{}
	loads := sched.NewLoads(dataplane.MaxDests)
	ct, err := conntrack.New(conntrack.Config{Capacity: o.Capacity, Templates: o.Capacity, Reverse: o.Capacity, Timeouts: conntrack.DefaultTimeouts(), Clock: clock, Hooks: loads})
	if err != nil {
		return sum, err
	}
	snap, err := dataplane.Build(t, dataplane.BuildOptions{Registry: dataplane.NewRegistry(), Loads: loads,
		Resolver: dataplane.StaticResolver{MACs: o.MACs},
		Ifaces:   []dataplane.Iface{{Slot: 0, Index: 1, Name: "replay0", MAC: o.MAC, MTU: o.MTU, Addr: o.Addr.As4()}}})
	if err != nil {
		return sum, err
	}
	c := new(dataplane.Counters)
	p := dataplane.NewProcessor(ct, c, 0)
	buf := make([]byte, chunkSize)
	var first time.Time
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("read pcap packet %d: %w", sum.In+1, err)
		}
		sum.In++
		if first.IsZero() {
			first = ci.Timestamp
		}
		clock.Set(ci.Timestamp.Sub(first))
		n := copy(buf[headroom:], data)
		v, o := p.Process(snap, buf, headroom, n)
		write := func(frame []byte) error {
			return w.WritePacket(gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: len(frame), Length: len(frame)}, frame)
		}
		switch v {
		case dataplane.VerdictForward:
			sum.Forwarded++
			if err := write(buf[o.Off : o.Off+o.Len]); err != nil {
				return sum, err
			}
			if o.Second {
				if err := write(p.Second()); err != nil {
					return sum, err
				}
			}
			// Fragments held until this first fragment came follow it.
			for {
				frame, second, _, ok := p.Released()
				if !ok {
					break
				}
				sum.Forwarded++
				if err := write(frame); err != nil {
					return sum, err
				}
				if second != nil {
					if err := write(second); err != nil {
						return sum, err
					}
				}
			}
		case dataplane.VerdictReply:
			sum.Replies++
			if err := write(p.Reply()); err != nil {
				return sum, err
			}
		}
	}
	// Dropped is every frame that did not go out: dropped, or a fragment
	// still held for a first fragment that never came.
	sum.Dropped = sum.In - sum.Forwarded - sum.Replies
	for i := range c.Parse {
		if n := c.Parse[i].Load(); n > 0 && i != int(header.OK) {
			sum.Drops[header.Reason(i).String()] = n
		}
	}
	for i := range c.Drops {
		if n := c.Drops[i].Load(); n > 0 {
			sum.Drops[dataplane.Drop(i).String()] = n
		}
	}
	return sum, nil
}

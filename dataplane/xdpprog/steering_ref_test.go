package xdpprog

import (
	"encoding/binary"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
)

// refSteer is a reference model of the steering decision written straight
// from the specification in doc.go, byte offsets and all, without sharing
// code with the program. It returns the counter delta one frame must cause
// when no socket is registered and owners are the owner MACs.
func refSteer(f []byte, services []ServiceKey, owners ...[6]byte) StatsCounters {
	out := StatsCounters{Total: 1}
	// A matched frame goes on only when its destination MAC is an owner's.
	matched := func() {
		for _, o := range owners {
			if len(f) >= 6 && [6]byte(f[:6]) == o {
				out.PassNoSocket = 1
				return
			}
		}
		out.PassOtherMAC = 1
	}
	has := func(addr [4]byte, proto uint8, port uint16, anyPort bool) bool {
		for _, s := range services {
			if !s.Source && !s.Local && s.Addr.Unmap().Is4() && s.Addr.Unmap().As4() == addr && s.Proto == proto && (anyPort || s.Port == port || s.Port == 0) {
				return true
			}
		}
		return false
	}
	// A VS/NAT real server's frame, by its source, not to the director.
	reply := func(src, dst [4]byte, proto uint8, sport uint16) bool {
		for _, s := range services {
			if s.Local && s.Addr.Unmap().Is4() && s.Addr.Unmap().As4() == dst {
				return false
			}
		}
		for _, s := range services {
			if s.Source && s.Addr.Unmap().Is4() && s.Addr.Unmap().As4() == src && (proto == 0 || s.Proto == proto && (s.Port == sport || s.Port == 0)) {
				return true
			}
		}
		return false
	}
	if len(f) < 14 {
		out.PassTruncated = 1
		return out
	}
	etherType, l3 := binary.BigEndian.Uint16(f[12:]), 14
	if etherType == 0x8100 {
		if len(f) < 18 {
			out.PassTruncated = 1
			return out
		}
		etherType, l3 = binary.BigEndian.Uint16(f[16:]), 18
	}
	if etherType == 0x86dd {
		refSteer6(f, l3, services, &out, matched)
		return out
	}
	if etherType != 0x0800 {
		out.PassNotIPv4 = 1
		return out
	}
	if len(f) < l3+20 {
		out.PassTruncated = 1
		return out
	}
	version, ihl := f[l3]>>4, int(f[l3]&0x0f)
	if version != 4 || ihl < 5 {
		out.PassBadHeader = 1
		return out
	}
	proto := f[l3+9]
	if proto == 1 {
		// ICMP from a VS/NAT real server's address goes the way of its
		// replies; any other ICMP is refSteerICMP's.
		src, dst := [4]byte(f[l3+12:l3+16]), [4]byte(f[l3+16:l3+20])
		natSrc := false
		for _, s := range services {
			natSrc = natSrc || s.Source && s.Addr.Unmap().Is4() && s.Addr.Unmap().As4() == src
		}
		switch {
		case !natSrc:
			refSteerICMP(f, l3, ihl, &out, has, matched)
		case reply(src, dst, 0, 0):
			matched()
		default:
			out.PassNoService = 1
		}
		return out
	}
	if proto != 6 && proto != 17 {
		out.PassNotL4 = 1
		return out
	}
	dst := [4]byte(f[l3+16 : l3+20])
	l4 := l3 + 4*ihl
	if binary.BigEndian.Uint16(f[l3+6:])&0x1fff != 0 {
		switch {
		case len(f) < l4:
			out.PassTruncated = 1
		case has(dst, proto, 0, true):
			out.Fragments = 1
			matched()
		default:
			out.PassNoService = 1
		}
		return out
	}
	need := 8
	if proto == 6 {
		need = 20
	}
	if len(f) < l4+need {
		out.PassTruncated = 1
		return out
	}
	if has(dst, proto, binary.BigEndian.Uint16(f[l4+2:]), false) ||
		reply([4]byte(f[l3+12:l3+16]), dst, proto, binary.BigEndian.Uint16(f[l4:])) {
		matched()
	} else {
		out.PassNoService = 1
	}
	return out
}

// refSteerICMP is the reference for an ICMP frame whose IPv4 header,
// ihl words long, starts at l3 (whole, but not necessarily in the frame):
// an unfragmented error (type 3, 4 or 11) quoting an IPv4 TCP or UDP
// packet, not a non-first fragment, from the message's destination, whose
// quoted source address, protocol and port is a service; or quoting an
// IPIP packet from the message's destination (the director's own VS/TUN
// packet) that carries such a packet whose destination address, protocol
// and port is a service.
func refSteerICMP(f []byte, l3, ihl int, out *StatsCounters, has func([4]byte, uint8, uint16, bool) bool, matched func()) {
	if binary.BigEndian.Uint16(f[l3+6:])&0x3fff != 0 {
		out.PassNotL4 = 1
		return
	}
	dst := [4]byte(f[l3+16 : l3+20])
	ic := l3 + 4*ihl
	if len(f) < ic+8 {
		out.PassTruncated = 1
		return
	}
	if t := f[ic]; t != 3 && t != 4 && t != 11 {
		out.PassNotL4 = 1
		return
	}
	q := ic + 8
	if len(f) < q+20 {
		out.PassTruncated = 1
		return
	}
	qihl := int(f[q] & 0x0f)
	qproto := f[q+9]
	switch {
	case f[q]>>4 != 4 || qihl < 5, qproto != 6 && qproto != 17 && qproto != 4, binary.BigEndian.Uint16(f[q+6:])&0x1fff != 0:
		out.PassNotL4 = 1
		return
	}
	src := [4]byte(f[q+12 : q+16])
	if src != dst {
		out.PassNoService = 1
		return
	}
	if qproto == 4 {
		// About the director's own IPIP packet: the tunnelled packet's
		// destination, protocol and destination port must be a service.
		in := q + 4*qihl
		if len(f) < in+20 {
			out.PassTruncated = 1
			return
		}
		iihl := int(f[in] & 0x0f)
		iproto := f[in+9]
		switch {
		case f[in]>>4 != 4 || iihl < 5, iproto != 6 && iproto != 17, binary.BigEndian.Uint16(f[in+6:])&0x1fff != 0:
			out.PassNotL4 = 1
			return
		}
		ports := in + 4*iihl
		if len(f) < ports+4 {
			out.PassTruncated = 1
			return
		}
		if has([4]byte(f[in+16:in+20]), iproto, binary.BigEndian.Uint16(f[ports+2:]), false) {
			out.ICMPErrors = 1
			matched()
		} else {
			out.PassNoService = 1
		}
		return
	}
	ports := q + 4*qihl
	if len(f) < ports+4 {
		out.PassTruncated = 1
		return
	}
	if has(src, qproto, binary.BigEndian.Uint16(f[ports:]), false) {
		out.ICMPErrors = 1
		matched()
	} else {
		out.PassNoService = 1
	}
}

// FuzzSteering runs the loaded program and the reference model on the same
// frame: verdict, output bytes and counter delta must agree. The seeds are
// the fixture frames; mutations explore the header edges around them.
func FuzzSteering(f *testing.F) {
	testsupport.RequirePrivileged(f)
	for _, tc := range steeringCases(f) {
		f.Add(tc.frame)
	}
	s, err := LoadSteering(16, 4)
	if err != nil {
		f.Fatalf("LoadSteering: %v", err)
	}
	defer s.Close()
	if err := s.SetServices(testServices); err != nil {
		f.Fatal(err)
	}
	if err := s.SetOwnerMACs([6]byte(macDirector), vipMAC); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < ethLen || len(frame) > 1514 {
			t.Skip("BPF_PROG_TEST_RUN needs an Ethernet header; longer frames add nothing")
		}
		before := steeringStats(t, s)
		verdict, out := runXDP(t, s.program(), frame)
		checkVerdict(t, verdict, xdpPass)
		checkBytes(t, out, frame)
		if got, want := steeringStats(t, s).minus(before), refSteer(frame, testServices, [6]byte(macDirector), vipMAC); got != want {
			t.Errorf("frame %x: counter delta %+v, reference says %+v", frame, got, want)
		}
	})
}

package dataplane

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/conntrack"
)

// ICMP rate-limit defaults: Linux's net.ipv4.icmp_msgs_per_sec and
// icmp_msgs_burst for the whole director, and its net.ipv4.icmp_ratelimit
// (1 s) with a burst of 6 (XRLIM_BURST_FACTOR) for each destination.
const (
	DefaultICMPRate      = 1000
	DefaultICMPBurst     = 50
	DefaultICMPHostEvery = time.Second
	DefaultICMPHostBurst = 6
	MaxICMPRate          = 1_000_000
)

// icmpHostSlots is the size of the per-destination table: destinations
// hash into it, so two that collide share a budget. It is fixed, so a
// flood from many sources costs no memory.
const (
	icmpHostBits  = 12
	icmpHostSlots = 1 << icmpHostBits
)

// ICMPLimiter caps the ICMP errors the director sends, as Linux caps a
// host's with icmp_msgs_per_sec and icmp_msgs_burst: a bucket of Burst
// tokens refilled at Rate per second, shared by every worker, so a flood
// of oversized DF packets cannot turn the director into an ICMP source.
//
// It is the generic cell rate algorithm: one atomic word holds the time
// at which the bucket would be full again, and a message is allowed while
// that time is less than Burst intervals ahead. A nil limiter allows
// everything (replay and the simulator run without one).
type ICMPLimiter struct {
	clock conntrack.Clock
	all   gcra
	// hosts limits each destination, as Linux's icmp_ratelimit does; nil
	// when off.
	hosts    *[icmpHostSlots]atomic.Int64
	hostRate gcraRate
	hashSeed uint32
}

// gcraRate is a bucket's shape: ns per token, and how far its full time
// may run ahead of now, (burst-1) intervals.
type gcraRate struct {
	interval, ahead int64
}

// gcra is one bucket: the time at which it would be full again.
type gcra struct {
	gcraRate
	full atomic.Int64
}

// NewICMPLimiter returns a limiter allowing rate messages a second with
// bursts of burst. Errors name the value and the rule.
func NewICMPLimiter(rate, burst int, clock conntrack.Clock) (*ICMPLimiter, error) {
	if rate < 1 || rate > MaxICMPRate {
		return nil, fmt.Errorf("icmp rate %d: must be 1..%d messages a second", rate, MaxICMPRate)
	}
	if burst < 1 || burst > MaxICMPRate {
		return nil, fmt.Errorf("icmp burst %d: must be 1..%d", burst, MaxICMPRate)
	}
	if clock == nil {
		clock = conntrack.SystemClock()
	}
	iv := int64(time.Second) / int64(rate)
	l := &ICMPLimiter{clock: clock}
	l.all.gcraRate = gcraRate{interval: iv, ahead: int64(burst-1) * iv}
	return l, nil
}

// LimitPerHost also limits the messages to each destination to one every
// every, in bursts of burst; every 0 turns that off.
func (l *ICMPLimiter) LimitPerHost(every time.Duration, burst int) error {
	if every < 0 || every > time.Hour {
		return fmt.Errorf("icmp host interval %s: must be 0 (off) to 1h", every)
	}
	if burst < 1 || burst > MaxICMPRate {
		return fmt.Errorf("icmp host burst %d: must be 1..%d", burst, MaxICMPRate)
	}
	if every == 0 {
		l.hosts = nil
		return nil
	}
	l.hosts = new([icmpHostSlots]atomic.Int64)
	l.hostRate = gcraRate{interval: int64(every), ahead: int64(burst-1) * int64(every)}
	l.hashSeed = uint32(time.Now().UnixNano()) | 1
	return nil
}

// Allow takes a token for a message to dst if the destination's bucket
// and the director's both have one.
func (l *ICMPLimiter) Allow(dst [4]byte) bool {
	if l == nil {
		return true
	}
	now := int64(l.clock.Now())
	if l.hosts != nil {
		h := (uint32(dst[0])<<24 | uint32(dst[1])<<16 | uint32(dst[2])<<8 | uint32(dst[3])) * l.hashSeed * 0x9e3779b1
		if !take(&l.hosts[h>>(32-icmpHostBits)], l.hostRate, now) {
			return false
		}
	}
	return take(&l.all.full, l.all.gcraRate, now)
}

// Allow6 is Allow for a message to an IPv6 destination, whose four words
// fold into the per-destination hash; an IPv4-mapped address takes the
// same budget as its IPv4 address.
func (l *ICMPLimiter) Allow6(dst *[16]byte) bool {
	if l == nil {
		return true
	}
	if isMapped(dst) {
		return l.Allow([4]byte(dst[12:]))
	}
	now := int64(l.clock.Now())
	if l.hosts != nil {
		var w uint32
		for i := 0; i < 16; i += 4 {
			w ^= uint32(dst[i])<<24 | uint32(dst[i+1])<<16 | uint32(dst[i+2])<<8 | uint32(dst[i+3])
		}
		h := w * l.hashSeed * 0x9e3779b1
		if !take(&l.hosts[h>>(32-icmpHostBits)], l.hostRate, now) {
			return false
		}
	}
	return take(&l.all.full, l.all.gcraRate, now)
}

// isMapped reports whether a is an IPv4-mapped IPv6 address.
func isMapped(a *[16]byte) bool {
	return a[10] == 0xff && a[11] == 0xff && [10]byte(a[:10]) == [10]byte{}
}

// take takes one token from the bucket whose full time is full.
func take(full *atomic.Int64, r gcraRate, now int64) bool {
	for {
		f := full.Load()
		if f-now > r.ahead {
			return false
		}
		if full.CompareAndSwap(f, max(f, now)+r.interval) {
			return true
		}
	}
}

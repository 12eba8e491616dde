package dataplane

import (
	"encoding/binary"
	"math/bits"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
)

// insertLog remembers the keys a processor inserted lately, as
// fingerprints numbered by a running count, so that a miss LookupBatch
// answered can be trusted later in the batch: it still holds unless this
// processor inserted the same key since (an earlier frame of the batch
// opened the flow). Other queues' inserts race with the lookup itself, as
// they do with Lookup, so they need no record.
//
// Every frame of a batch asks about the inserts since the same count (the
// one LookupBatch saw), so the log also keeps a small Bloom filter of the
// fingerprints inserted since that count: a question costs two bit tests
// instead of a walk over the batch's inserts so far, which made the
// frames of a batch of new connections quadratic. A false positive only
// costs that frame a Lookup.
type insertLog struct {
	seq    uint64        // inserts so far
	fp     [Batch]uint64 // fp[i%Batch]: the fingerprint of insert number i
	base   uint64        // the filter holds every insert numbered from base on
	filter [logFilterBits / 64]uint64
}

// logFilterBits sizes the filter: with two bits a fingerprint and at most
// Batch fingerprints, about 1.4% of the keys not in it test positive.
const logFilterBits = 1024

// probes returns the two filter bits of fingerprint fp.
func probes(fp uint64) (uint64, uint64) {
	h := fp * 0x9e37_79b9_7f4a_7c15
	return h >> (64 - 10), h >> (64 - 20) & (logFilterBits - 1)
}

// add records an insert of a key with fingerprint fp.
func (l *insertLog) add(fp uint64) {
	l.fp[l.seq%Batch] = fp
	l.seq++
	a, b := probes(fp)
	l.filter[a/64] |= 1 << (a % 64)
	l.filter[b/64] |= 1 << (b % 64)
}

// since reports whether an insert numbered from or later may have been of
// a key with fingerprint fp. Once more than Batch inserts have happened
// since from the record is gone, and the answer is yes.
func (l *insertLog) since(from, fp uint64) bool {
	if l.seq-from > Batch {
		return true
	}
	if from < l.base {
		// Older than the filter: walk the record.
		for i := from; i < l.seq; i++ {
			if l.fp[i%Batch] == fp {
				return true
			}
		}
		return false
	}
	if from != l.base {
		// A new batch: the filter starts again at its count, with the
		// inserts made since it (none, when its first frame asks).
		l.base = from
		clear(l.filter[:])
		for i := from; i < l.seq; i++ {
			a, b := probes(l.fp[i%Batch])
			l.filter[a/64] |= 1 << (a % 64)
			l.filter[b/64] |= 1 << (b % 64)
		}
	}
	a, b := probes(fp)
	return l.filter[a/64]&(1<<(a%64)) != 0 && l.filter[b/64]&(1<<(b%64)) != 0
}

// fingerprint folds a key into 64 bits. Equal keys give equal
// fingerprints; two keys that collide only cost a Lookup.
func fingerprint(k *conntrack.Key) uint64 {
	c := binary.LittleEndian.Uint64(k.CAddr[8:]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(k.CAddr[:8]), 23)
	v := binary.LittleEndian.Uint64(k.VAddr[8:]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(k.VAddr[:8]), 41)
	return c ^ bits.RotateLeft64(v, 29) ^ (uint64(k.CPort)<<48 | uint64(k.VPort)<<32 | uint64(k.Proto))
}

// batchedMiss reports whether f carries a miss from LookupBatch that still
// holds for key k: this processor has inserted no key like k since. Then
// the frame is a miss exactly as a Lookup now would say, and forward goes
// straight to scheduling without walking the buckets again.
func (p *Processor) batchedMiss(f *Parsed, k *conntrack.Key) bool {
	return f != nil && f.looked && !f.hit && !p.ins.since(f.seq, fingerprint(k))
}

// PrefetchInsert starts loading, without waiting, the table lines the
// insert of f's connection will touch, when f is a frame that LookupBatch
// found no connection for and that may open one (anything but a TCP
// segment without SYN). A worker calls it a few frames ahead of the frame
// it processes. It changes nothing.
func (p *Processor) PrefetchInsert(f *Parsed) {
	// The frames of established flows, nearly all, return here without
	// a call: this much inlines where the worker calls it.
	if f.looked && !f.hit && f.Reason == header.OK {
		p.prefetchInsert(f)
	}
}

func (p *Processor) prefetchInsert(f *Parsed) {
	if f.Pkt.Proto == header.ProtocolTCP && conntrack.EventOf(f.Pkt.TCPFlags) != conntrack.EvSyn {
		return
	}
	keyOf(&f.Pkt, &p.pkey)
	p.ct.PrefetchInsert(&p.pkey)
}

package main

import "encoding/binary"

// A datagram's sequence number carries its sender's stream in its top
// byte, so that one receiver can check several senders.
const (
	streamShift = 56
	maxStreams  = 4
)

// stamp writes seq into a datagram: big-endian in its first 8 bytes, and
// its low byte in the last one, so that a datagram cut or spliced shows.
func stamp(p []byte, seq uint64) {
	binary.BigEndian.PutUint64(p, seq)
	p[len(p)-1] = byte(seq) // the same byte when len(p) is 8
}

// seqOf is the sequence number stamp wrote into p.
func seqOf(p []byte) uint64 { return binary.BigEndian.Uint64(p) }

// order checks the datagrams one receiver reads: each of the size sent,
// intact, its sequence number above the last one's from the same sender
// (stream); a gap is a drop. A sender held on one CPU, as the recv
// feeders are (pinToCPU says why), arrives in order: a step back is a bug.
type order struct {
	next                       [maxStreams]uint64 // each stream's lowest sequence number still expected
	backwards, resize, corrupt uint64             // datagrams read wrong, by the way they were
}

func (o *order) see(p []byte, size int) {
	if len(p) != size {
		o.resize++
		return
	}
	seq := seqOf(p)
	stream := seq >> streamShift
	switch {
	case p[len(p)-1] != byte(seq) || stream >= maxStreams:
		o.corrupt++
	case seq < o.next[stream]:
		o.backwards++
	default:
		o.next[stream] = seq + 1
	}
}

func (o *order) check(s *sample) {
	for _, c := range []struct {
		n   uint64
		how string
	}{{o.resize, "with the wrong size"}, {o.backwards, "out of order or twice"}, {o.corrupt, "with a corrupted payload"}} {
		if c.n > 0 {
			s.problem("%d datagrams read %s", c.n, c.how)
		}
	}
}

package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/batchconn/batchconn"
)

// recvFeeders is how many senders, each a goroutine with a socket, keep
// the recv scenario's receiver busy.
const recvFeeders = 2

// runRecv measures the conn under test as a receiver: one goroutine reads
// with ReadFrom for the duration while feeders, batchconn senders of their
// own, keep its queue full.
func runRecv(p params) (s sample) {
	rxc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	if err := rxc.SetReadBuffer(readBuffer); err != nil {
		s.problem("SetReadBuffer: %v", err)
	}
	rx := wrap(rxc, p.mode)
	defer rx.Close()

	dst := newDests([]netip.AddrPort{addrPort(rxc)}, false)
	feeders := make([]*feeder, recvFeeders)
	for i := range feeders {
		txc, err := listen()
		if err != nil {
			s.problem("listen: %v", err)
			stopFeeders(feeders[:i], &s)
			return s
		}
		feeders[i] = startFeeder(batchconn.New(txc, nil), dst, p.size, uint64(i), p.duration+grace)
	}
	var ord order
	before := mallocs()
	s.count, s.elapsed, err = readFor(rx, &ord, p.size, p.duration)
	s.allocs = perDatagram(mallocs()-before, s.count)
	if err != nil {
		s.problem("ReadFrom after %d datagrams: %v", s.count, err)
	}
	s.offered = stopFeeders(feeders, &s)
	s.drops, s.dropsKnown = kernelDrops(port(rxc))
	s.arrived, s.arrivals = s.offered-min(s.drops, s.offered), s.dropsKnown
	if err := rx.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(rx)
	checkRead(&s, p.size)
	ord.check(&s)
	return s
}

// checkRead compares what a batchconn receiver returned with what it says
// it received: the difference is what its ring still held.
func checkRead(s *sample, size int) {
	if st := s.stats; st != nil && (st.DatagramsRead < s.count || st.DatagramsRead-s.count > ringHolds(size)) {
		s.problem("ReadFrom returned %d datagrams, Stats says %d received: the ring cannot hold %d",
			s.count, st.DatagramsRead, int64(st.DatagramsRead)-int64(s.count))
	}
}

// ringHolds is the most datagrams of size a batchconn ring can hold: one
// a slot, or with GRO as many as one slot of 64 KiB can take.
func ringHolds(size int) uint64 { return batchSize * uint64(max(1, 65535/size)) }

// readFor reads from pc until d has passed, and returns how many datagrams
// it read.
func readFor(pc net.PacketConn, ord *order, size int, d time.Duration) (uint64, time.Duration, error) {
	buf := make([]byte, maxDatagram)
	start := time.Now()
	if err := pc.SetReadDeadline(start.Add(d)); err != nil {
		return 0, 0, err
	}
	var count uint64
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			return count, time.Since(start), err
		}
		ord.see(buf[:n], size)
		count++
	}
}

// feeder keeps a receiver's queue full from its own goroutine.
type feeder struct {
	quit atomic.Bool
	done chan struct{}
	sent uint64
	err  error
}

// startFeeder starts blasting from pc to dst, then closes pc; it stops by
// itself after limit, or at stopFeeders.
func startFeeder(pc net.PacketConn, dst dests, size int, stream uint64, limit time.Duration) *feeder {
	f := &feeder{done: make(chan struct{})}
	end := time.Now().Add(limit)
	go func() {
		defer close(f.done)
		var errs []error
		if err := pc.SetWriteDeadline(end.Add(grace)); err != nil {
			errs = append(errs, err)
		}
		sent, err := blast(pc, dst, size, stream, end, &f.quit)
		errs = append(errs, err, pc.Close())
		f.sent, f.err = sent, errors.Join(errs...)
	}()
	return f
}

// stopFeeders stops the feeders, adds their errors to s and returns how
// many datagrams they sent.
func stopFeeders(fs []*feeder, s *sample) uint64 {
	for _, f := range fs {
		f.quit.Store(true)
	}
	var sent uint64
	for _, f := range fs {
		<-f.done
		if f.err != nil {
			s.problem("sender: %v", f.err)
		}
		sent += f.sent
	}
	return sent
}

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
// the recv scenario's receiver busy: one sending without offload cannot
// outpace a batching receiver. One sender with offload can, so recvgso
// has one, and on two cores the receiver has a core of its own.
const recvFeeders = 2

// drainIdle is how long the recv scenarios' receiver waits for more once
// the feeders have stopped, to read what its queue still holds.
const drainIdle = 20 * time.Millisecond

// runRecv measures the conn under test as a receiver of ordinary
// datagrams: one goroutine reads with ReadFrom for the duration while
// feeders, batchconn senders with offload off, keep its queue full.
func runRecv(p params) sample {
	return runRecvFrom(p, &batchconn.Config{NoOffload: true}, recvFeeders)
}

// runRecvGSO is runRecv with feeders that send with segmentation offload
// (batchconn's defaults): runs of datagrams leave as one message, which a
// receiver with GRO (batchconn with offload) gets as one buffer and one
// without (plain, nooffload) as the datagrams, cut up by the kernel.
func runRecvGSO(p params) sample { return runRecvFrom(p, nil, 1) }

// runRecvFrom reads from the conn under test for the duration while
// nfeed feeders, batchconns with Config feed, keep its queue full. Then it
// stops them and reads what the queue still holds, so that what found
// room there is counted exactly. In the loop modes the socket is read
// with x/net's ReadBatch or with recvmmsg instead.
func runRecvFrom(p params, feed *batchconn.Config, nfeed int) (s sample) {
	rxc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	if err := rxc.SetReadBuffer(readBuffer); err != nil {
		s.problem("SetReadBuffer: %v", err)
	}
	var ord order
	pc, rx, counts, err := newReceiver(p.mode, rxc, &ord, p.size)
	if err != nil {
		rxc.Close()
		s.problem("%v", err)
		return s
	}
	defer pc.Close()

	dst := newDests([]netip.AddrPort{addrPort(rxc)}, false)
	feeders := make([]*feeder, nfeed)
	for i := range feeders {
		txc, err := listen()
		if err != nil {
			s.problem("listen: %v", err)
			stopFeeders(feeders[:i], &s)
			return s
		}
		feeders[i] = startFeeder(txc, feed, dst, p.size, uint64(i), p.duration+grace)
	}
	m := startMeter()
	s.count, s.elapsed, err = rx.readFor(p.duration)
	m.stop(&s, s.count)
	if err != nil {
		s.problem("ReadFrom after %d datagrams: %v", s.count, err)
	}
	s.offered = stopFeeders(feeders, &s)
	rest, err := rx.drain(port(rxc))
	if err != nil {
		s.problem("ReadFrom after the feeders stopped, after %d datagrams: %v", rest, err)
	}
	s.drops, s.dropsKnown = kernelDrops(port(rxc))
	if err := pc.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(pc)
	if counts != nil {
		c := counts()
		s.calls = &c
	}
	s.arrived, s.arrivals = s.count+rest, true
	checkRead(&s, s.arrived, p.size)
	if st := s.stats; st != nil && feed != nil && feed.NoOffload && st.OffloadReceived != 0 {
		s.problem("the feeders sent without offload, yet %d datagrams came coalesced", st.OffloadReceived)
	}
	if st := s.stats; st != nil && st.DatagramsRead > s.arrived {
		s.arrived = st.DatagramsRead // the ring's rest, should the drain have stopped short
	}
	checkRecvLoss(&s, feed == nil && (p.mode == modeBatch || p.mode == modeRawGRO))
	ord.check(&s)
	return s
}

// receiver is the conn under test as the recv scenarios read it: read
// reads what one call returns (a datagram from a net.PacketConn's
// ReadFrom; a batch from x/net's ReadBatch or raw's and rawgro's
// recvmmsg), checks it and says how many datagrams it got; setDeadline is
// the read deadline of what it reads from.
type receiver struct {
	setDeadline func(time.Time) error
	read        func() (uint64, error)
}

// newReceiver returns what Close closes (the conn under test, or uc for
// the loop modes), the receiver that reads it, checking each datagram
// with ord, and for the loop modes what counts their calls.
func newReceiver(m mode, uc *net.UDPConn, ord *order, size int) (net.PacketConn, receiver, func() callCounts, error) {
	switch m {
	case modeXnet:
		c := newXnetReceiver(uc)
		return uc, receiver{uc.SetReadDeadline, c.reader(ord, size)}, c.counts, nil
	case modeRaw:
		raw, err := newRawReceiver(uc)
		if err != nil {
			return nil, receiver{}, nil, err
		}
		return uc, receiver{uc.SetReadDeadline, raw.reader(ord, size)}, raw.counts, nil
	case modeRawGRO:
		raw, err := newRawGROReceiver(uc)
		if err != nil {
			return nil, receiver{}, nil, err
		}
		return uc, receiver{uc.SetReadDeadline, raw.groReader(ord, size)}, raw.counts, nil
	}
	pc := wrap(uc, m)
	buf := make([]byte, maxDatagram)
	return pc, receiver{pc.SetReadDeadline, func() (uint64, error) {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		ord.see(buf[:n], size)
		return 1, nil
	}}, nil, nil
}

// checkRecvLoss compares the datagrams that found no room in the
// receiver's queue with the kernel's count of drops there. A receiver
// with GRO is handed a GSO sender's datagrams as one buffer, which the
// kernel counts as one drop when it finds no room: coalesced, the count
// is only a lower bound.
func checkRecvLoss(s *sample, coalesced bool) {
	if !s.dropsKnown || s.arrived > s.offered {
		if s.arrived > s.offered {
			s.problem("%d datagrams read, only %d sent", s.arrived, s.offered)
		}
		return
	}
	lost := s.offered - s.arrived
	if lost != s.drops && (!coalesced || s.drops > lost) {
		s.problem("%d sent, %d read, %d dropped by the kernel: %d unaccounted for",
			s.offered, s.arrived, s.drops, int64(lost)-int64(s.drops))
	}
}

// checkRead compares the datagrams a batchconn receiver returned, read,
// with those it says it received: the difference is what its ring still
// held.
func checkRead(s *sample, read uint64, size int) {
	if st := s.stats; st != nil && (st.DatagramsRead < read || st.DatagramsRead-read > ringHolds(size)) {
		s.problem("ReadFrom returned %d datagrams, Stats says %d received: the ring cannot hold %d",
			read, st.DatagramsRead, int64(st.DatagramsRead)-int64(read))
	}
}

// ringHolds is the most datagrams of size a batchconn ring can hold: one
// a slot, or with GRO as many as one slot of 64 KiB can take.
func ringHolds(size int) uint64 { return batchSize * uint64(max(1, 65535/size)) }

// readFor reads until d has passed (the read deadline it sets), and
// returns how many datagrams it read.
func (r receiver) readFor(d time.Duration) (uint64, time.Duration, error) {
	start := time.Now()
	if err := r.setDeadline(start.Add(d)); err != nil {
		return 0, 0, err
	}
	var count uint64
	for {
		n, err := r.read()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			return count, time.Since(start), err
		}
		count += n
	}
}

// drain reads, once the feeders are done, until it has waited drainIdle
// for a datagram and the kernel holds none for port, and returns how many
// it read.
func (r receiver) drain(port int) (uint64, error) {
	var count uint64
	for {
		if err := r.setDeadline(time.Now().Add(drainIdle)); err != nil {
			return count, err
		}
		n, err := r.read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if queued([]int{port}) {
				continue
			}
			return count, nil
		}
		if err != nil {
			return count, err
		}
		count += n
	}
}

// feeder keeps a receiver's queue full from its own goroutine.
type feeder struct {
	conn *batchconn.PacketConn // what it sends through
	quit atomic.Bool
	done chan struct{}
	sent uint64
	err  error
}

// startFeeder starts blasting datagrams of size, numbered in stream, from
// txc to dst through a batchconn with Config feed, then closes it; it
// stops by itself after limit, or at stopFeeders.
//
// Every datagram leaves from the feeder's goroutine, held on one CPU
// (pinToCPU: feeder n on the n-th), so that the kernel delivers them in
// the order sent and the receiver's order check sees what the conn under
// test does, not the feeder: the conn waits longer than the feeder runs
// for a queue to fill, so that batchconn's timer, whose goroutine runs on
// any CPU, never sends one. In a blast loop the queue fills within
// microseconds and leaves when full; what changes is a queue the feeder
// left half full while the scheduler ran something else: the timer sent
// it (half the flushes on a busy machine with two cores), now it waits
// for the feeder to come back.
func startFeeder(txc *net.UDPConn, feed *batchconn.Config, dst dests, size int, stream uint64, limit time.Duration) *feeder {
	var cfg batchconn.Config
	if feed != nil {
		cfg = *feed
	}
	cfg.MaxDelay = limit + 2*grace // it writes until limit, then waits grace at most for a blocked write
	f := &feeder{conn: batchconn.New(txc, &cfg), done: make(chan struct{})}
	end := time.Now().Add(limit)
	go func() {
		defer close(f.done)
		errs := []error{pinToCPU(int(stream))} // for good: the thread ends with the goroutine
		if err := f.conn.SetWriteDeadline(end.Add(grace)); err != nil {
			errs = append(errs, err)
		}
		sent, err := blast(f.conn, dst, size, stream, end, &f.quit)
		errs = append(errs, err, f.conn.Close())
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

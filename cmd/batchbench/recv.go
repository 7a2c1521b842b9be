package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/batchconn/batchconn"
)

// drainIdle is how long the receiver waits for more once the feeders
// stopped, to read what its queue still holds.
const drainIdle = 20 * time.Millisecond

// recv has two feeders without offload: one cannot outpace a batching
// receiver. recvgso has one with batchconn's defaults, sending GSO runs,
// which alone outpaces any receiver.
func runRecv(p params) sample    { return runRecvFrom(p, &batchconn.Config{NoOffload: true}, 2) }
func runRecvGSO(p params) sample { return runRecvFrom(p, nil, 1) }

// runRecvFrom reads from the conn under test for the duration while
// nfeed feeders, batchconns with Config feed, keep its queue full, then
// stops them and reads what the queue still holds, to count it exactly.
func runRecvFrom(p params, feed *batchconn.Config, nfeed int) (s sample) {
	rxc, err := listen()
	if s.problemIf("listen", err) {
		return s
	}
	s.problemIf("SetReadBuffer", rxc.SetReadBuffer(readBuffer))
	var ord order
	pc, read, err := newReceiver(p.mode, rxc, &ord, p.size)
	if err != nil {
		rxc.Close()
		s.problem("%v", err)
		return s
	}
	defer pc.Close()
	feeders := make([]*feeder, nfeed)
	for i := range feeders {
		txc, err := listen()
		if err != nil {
			s.problem("listen: %v", err)
			stopFeeders(feeders[:i], &s)
			return s
		}
		feeders[i] = startFeeder(txc, feed, addrPort(rxc), p.size, uint64(i), p.duration+grace)
	}
	stop := meter()
	s.count, s.elapsed, err = readFor(pc, read, p.duration, 0)
	stop(&s, s.count)
	s.problemIf(fmt.Sprintf("read after %d datagrams", s.count), err)
	s.offered = stopFeeders(feeders, &s)
	rest, _, err := readFor(pc, read, 0, port(rxc))
	s.problemIf(fmt.Sprintf("read after the feeders stopped, after %d datagrams", rest), err)
	_, s.drops, s.dropsKnown = udpQueues(port(rxc))
	s.problemIf("Close", pc.Close())
	s.stats = statsOf(pc)
	s.arrived, s.arrivals = s.count+rest, true
	if st := s.stats; st != nil {
		s.arrived = max(s.arrived, st.DatagramsRead) // what batchconn's ring still held
	}
	s.coalescedDrops = feed == nil && (p.mode == modeBatch || p.mode == modeRawGRO)
	checkSent(&s)
	ord.check(&s)
	return s
}

// newReceiver returns the conn under test (the socket for the loops) and
// a read of it that checks each datagram with ord and says how many.
func newReceiver(m mode, uc *net.UDPConn, ord *order, size int) (net.PacketConn, func() (uint64, error), error) {
	switch m {
	case modeRaw, modeRawGRO:
		newRaw := func(uc *net.UDPConn) (*rawConn, error) { return newRawConn(uc, maxDatagram, nil) }
		if m == modeRawGRO {
			newRaw = newRawGROReceiver
		}
		r, err := newRaw(uc)
		if err != nil {
			return nil, nil, err
		}
		return uc, r.reader(ord, size), nil
	case modeXnet:
		return uc, batchReader(newXnetConn(uc, maxDatagram, nil), ord, size), nil
	}
	pc := wrap(uc, m)
	buf := make([]byte, maxDatagram)
	return pc, func() (uint64, error) {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		ord.see(buf[:n], size)
		return 1, nil
	}, nil
}

// readFor reads until d has passed; or with d 0, once the feeders have
// stopped, until a read has waited drainIdle and the kernel holds no more
// for port. It returns how many datagrams it read, and in what time.
func readFor(pc net.PacketConn, read func() (uint64, error), d time.Duration, port int) (count uint64, elapsed time.Duration, err error) {
	start := time.Now()
	if d > 0 {
		err = pc.SetReadDeadline(start.Add(d))
	}
	for err == nil {
		if d == 0 {
			if err = pc.SetReadDeadline(time.Now().Add(drainIdle)); err != nil {
				break
			}
		}
		var n uint64
		n, err = read()
		count += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
			if q, _, _ := udpQueues(port); d > 0 || q == 0 {
				break
			}
		}
	}
	return count, time.Since(start), err
}

// feeder keeps a receiver's queue full from its own goroutine.
type feeder struct {
	conn *batchconn.PacketConn
	quit atomic.Bool
	done chan struct{}
	sent uint64
	err  error
}

// startFeeder blasts datagrams of size, numbered in stream, from txc to
// dst through a batchconn with Config feed, until limit or stopFeeders,
// all from its goroutine held on one CPU (pinToCPU): its MaxDelay outlasts
// the run, so that batchconn's timer, on any CPU, never sends a queue.
func startFeeder(txc *net.UDPConn, feed *batchconn.Config, dst netip.AddrPort, size int, stream uint64, limit time.Duration) *feeder {
	var cfg batchconn.Config
	if feed != nil {
		cfg = *feed
	}
	cfg.MaxDelay = limit + 2*grace
	f := &feeder{conn: batchconn.New(txc, &cfg), done: make(chan struct{})}
	end := time.Now().Add(limit)
	go func() {
		defer close(f.done)
		errs := []error{pinToCPU(int(stream))} // for good: the thread ends with the goroutine
		if err := f.conn.SetWriteDeadline(end.Add(grace)); err != nil {
			errs = append(errs, err)
		}
		sent, err := blast(f.conn, []netip.AddrPort{dst}, false, size, stream, end, &f.quit)
		f.sent, f.err = sent, errors.Join(append(errs, err, f.conn.Close())...)
	}()
	return f
}

// stopFeeders stops the feeders and returns how many datagrams they sent.
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

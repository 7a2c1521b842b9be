package main

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// loneInterval is the least time from one of lone's datagrams to the next.
const loneInterval = 200 * time.Microsecond

// runLone measures the conn under test as an otherwise idle sender: one
// datagram every loneInterval to a plain receiver, which notes how long
// each took to arrive.
func runLone(p params) (s sample) {
	rx, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	sw := startStopwatch(rx, p.size, int(p.duration/loneInterval)+1)
	txc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		sw.collect(0)
		return s
	}
	tx := wrap(txc, p.mode)

	m := startMeter()
	sent, elapsed, err := trickle(tx, rx.LocalAddr(), p.size, p.duration)
	if err != nil {
		s.problem("WriteTo after %d datagrams: %v", sent, err)
	}
	drops, dropsKnown := kernelDrops(port(rx))
	delays := sw.collect(sent)
	m.stop(&s, uint64(len(delays)))
	if err := tx.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(tx)
	s.count, s.elapsed = sent, elapsed
	s.offered, s.arrived, s.arrivals = sent, uint64(len(delays)), true
	s.drops, s.dropsKnown = drops, dropsKnown
	s.p50, s.p99 = percentile(delays, 0.50), percentile(delays, 0.99)
	sw.check(&s)
	checkSent(&s)
	return s
}

// trickle sends a datagram of size to dst, stamped with the time just
// before its WriteTo, then waits until loneInterval has passed since that
// time, and so on until d has passed.
func trickle(pc net.PacketConn, dst net.Addr, size int, d time.Duration) (sent uint64, elapsed time.Duration, err error) {
	buf := make([]byte, size)
	start := time.Now()
	for {
		stamp(buf, sent)
		t := time.Now()
		if elapsed = t.Sub(start); elapsed >= d {
			return sent, elapsed, nil
		}
		binary.BigEndian.PutUint64(buf[8:], uint64(t.UnixNano()))
		if _, err := pc.WriteTo(buf, dst); err != nil {
			return sent, time.Since(start), err
		}
		sent++
		pause(loneInterval - time.Since(t))
	}
}

// stopwatch reads lone's datagrams on a plain conn, in a goroutine of its
// own, and notes the delay of each: the time it was read less the time it
// carries.
type stopwatch struct {
	conn   *net.UDPConn
	size   int
	delays []time.Duration
	n      atomic.Uint64 // datagrams read so far
	ord    order
	err    error // the read error that stopped it, other than Close
	done   chan struct{}
}

// startStopwatch starts reading from conn, with room for capacity delays.
func startStopwatch(conn *net.UDPConn, size, capacity int) *stopwatch {
	sw := &stopwatch{conn: conn, size: size, delays: make([]time.Duration, 0, capacity), done: make(chan struct{})}
	go sw.read()
	return sw
}

func (sw *stopwatch) read() {
	defer close(sw.done)
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := sw.conn.ReadFromUDPAddrPort(buf)
		at := time.Now().UnixNano()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				sw.err = err
			}
			return
		}
		sw.ord.see(buf[:n], sw.size)
		if n == sw.size {
			sent := int64(binary.BigEndian.Uint64(buf[8:]))
			sw.delays = append(sw.delays, time.Duration(at-sent))
		}
		sw.n.Add(1)
	}
}

// collect waits until want datagrams have arrived, or for grace at most,
// then stops the receiver and returns the delays.
func (sw *stopwatch) collect(want uint64) []time.Duration {
	for end := time.Now().Add(grace); sw.n.Load() < want && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	sw.conn.Close()
	<-sw.done
	return sw.delays
}

func (sw *stopwatch) check(s *sample) {
	if sw.err != nil {
		s.problem("receiver: %v", sw.err)
	}
	sw.ord.check(s)
}

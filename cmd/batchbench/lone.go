package main

import (
	"encoding/binary"
	"net"
	"time"
)

// loneInterval is the least time from one of lone's datagrams to the next.
const loneInterval = 200 * time.Microsecond

// runLone measures the conn under test as an otherwise idle sender: one
// datagram every loneInterval to a plain receiver, which notes how long
// each took to arrive.
func runLone(p params) (s sample) {
	sk, err := startSinks(1, p.size, timedSinks)
	if err != nil {
		s.problem("%v", err)
		return s
	}
	defer sk.close()
	txc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	tx := wrap(txc, p.mode)
	stop := meter()
	sent, elapsed, err := trickle(tx, net.UDPAddrFromAddrPort(sk.addrs[0]), p.size, p.duration)
	if err != nil {
		s.problem("WriteTo after %d datagrams: %v", sent, err)
	}
	stop(&s, sent) // before settle, whose looks at the kernel's queues allocate
	s.arrived, s.drops, s.dropsKnown = sk.settle()
	delays := sk.list[0].delays
	if err := tx.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(tx)
	s.count, s.elapsed, s.offered, s.arrivals = sent, elapsed, sent, true
	s.p50, s.p99 = percentile(delays, 0.50), percentile(delays, 0.99)
	sk.check(&s)
	checkSent(&s)
	return s
}

// trickle sends a datagram of size to dst carrying the time just before
// its WriteTo, then sleeps until loneInterval has passed since then (in
// pause: the runtime's timers oversleep to a millisecond in an idle
// process), and so on until d has passed.
func trickle(pc net.PacketConn, dst net.Addr, size int, d time.Duration) (sent uint64, elapsed time.Duration, err error) {
	buf := make([]byte, size)
	start := time.Now()
	for {
		stamp(buf, sent)
		t := time.Now()
		if elapsed = t.Sub(start); elapsed >= d {
			return sent, elapsed, nil
		}
		binary.BigEndian.PutUint64(buf[8:], uint64(t.Sub(epoch)))
		if _, err := pc.WriteTo(buf, dst); err != nil {
			return sent, time.Since(start), err
		}
		sent++
		pause(loneInterval - time.Since(t))
	}
}

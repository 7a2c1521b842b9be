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
// each took to arrive (timedSinks).
func runLone(p params) sample { return runSendTo(p, 1, false, timedSinks) }

// trickle sends a datagram of size to dst carrying the time before its
// WriteTo, then pauses until loneInterval has passed (the runtime's timers
// oversleep to a millisecond in an idle process), and so on until end.
func trickle(pc net.PacketConn, dst net.Addr, size int, end time.Time) (sent uint64, err error) {
	buf := make([]byte, size)
	for ; ; sent++ {
		stamp(buf, sent)
		t := time.Now()
		if !t.Before(end) {
			return sent, nil
		}
		binary.BigEndian.PutUint64(buf[8:], uint64(t.Sub(epoch)))
		if _, err := pc.WriteTo(buf, dst); err != nil {
			return sent, err
		}
		pause(loneInterval - time.Since(t))
	}
}

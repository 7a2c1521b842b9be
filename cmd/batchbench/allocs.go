package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

// allocOps are the calls the allocs scenario measures, a row each.
var allocOps = []string{"WriteTo", "WriteToUDPAddrPort", "ReadFrom", "ReadFromUDPAddrPort"}

// runAllocs counts the heap objects one call of the conn under test
// allocates per datagram, over 64 batches of batchSize (8 for a -duration
// under 100ms, the tests'), after as many to warm up (batchconn allocates
// its queue and ring then). Writes go to a plain receiver that never
// reads; before each batch of reads, a plain sender fills the queue.
func runAllocs(p params) (s sample) {
	batches := 64
	if p.duration < 100*time.Millisecond {
		batches = 8
	}
	rxc, err := listen()
	if s.problemIf("listen", err) {
		return s
	}
	txc, err := listen()
	if err != nil {
		rxc.Close()
		s.problem("listen: %v", err)
		return s
	}
	reading := strings.HasPrefix(p.op, "Read")
	measured, other := txc, rxc // the conn under test's socket, and the other end
	if reading {
		measured, other = rxc, txc
	}
	defer other.Close()
	pc := wrap(measured, p.mode)
	dst := addrPort(rxc)
	addr := net.UDPAddrFromAddrPort(dst)
	if reading { // a datagram lost on the way must not leave the run waiting
		err = pc.SetReadDeadline(time.Now().Add(2 * grace))
	}
	out, in := make([]byte, p.size), make([]byte, maxDatagram)
	var ord order
	var seq uint64
	start := time.Now()
	allocs := testing.AllocsPerRun(1, func() {
		for range batches * batchSize {
			if seq%batchSize == 0 && reading {
				for i := range uint64(batchSize) {
					stamp(out, seq+i)
					if _, e := other.WriteToUDPAddrPort(out, dst); e != nil && err == nil {
						err = e
					}
				}
			}
			stamp(out, seq)
			seq++
			if err != nil {
				return
			}
			var n int
			switch p.op {
			case "WriteTo":
				_, err = pc.WriteTo(out, addr)
			case "WriteToUDPAddrPort":
				_, err = pc.(addrPortWriter).WriteToUDPAddrPort(out, dst)
			case "ReadFrom":
				n, _, err = pc.ReadFrom(in)
			case "ReadFromUDPAddrPort":
				n, _, err = pc.(addrPortReader).ReadFromUDPAddrPort(in)
			}
			if n > 0 {
				ord.see(in[:n], p.size)
			}
		}
	})
	s.problemIf(p.op, err)
	s.count, s.elapsed = uint64(batches*batchSize), time.Since(start)
	s.allocs = allocs / float64(s.count)
	s.problemIf("Close", pc.Close())
	s.stats = statsOf(pc)
	ord.check(&s)
	return s
}

package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// allocOps are the calls the allocs scenario measures, a row each.
var allocOps = []string{"WriteTo", "WriteToUDPAddrPort", "ReadFrom", "ReadFromUDPAddrPort"}

// runAllocs counts the heap objects one call of the conn under test
// allocates per datagram, over 64 batches of batchSize (8 for a -duration
// under 100ms, the tests'), after as many to warm up (batchconn allocates
// its queue and ring then). One stray allocation in the process adds
// 1/4096 (or 1/512); one in each batch of the call, 1/64. Writes go to a
// plain receiver that never reads; before each batch of reads, a plain
// sender, which allocates nothing, fills the queue.
func runAllocs(p params) (s sample) {
	batches := 64
	if p.duration < 100*time.Millisecond {
		batches = 8
	}
	rxc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
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
	call, err := opFunc(pc, p.op, dst)
	if err == nil && reading { // a datagram lost on the way must not leave the run waiting
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
			n, e := call(out, in)
			if err = e; n > 0 {
				ord.see(in[:n], p.size)
			}
		}
	})
	if err != nil {
		s.problem("%s: %v", p.op, err)
	}
	s.count, s.elapsed = uint64(batches*batchSize), time.Since(start)
	s.allocs = allocs / float64(s.count)
	if err := pc.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(pc)
	ord.check(&s)
	return s
}

// opFunc is the call op on pc: a write of out to dst, or a read into in
// that returns the datagram's length.
func opFunc(pc net.PacketConn, op string, dst netip.AddrPort) (func(out, in []byte) (int, error), error) {
	switch op {
	case "WriteTo":
		addr := net.UDPAddrFromAddrPort(dst)
		return func(out, _ []byte) (int, error) { _, err := pc.WriteTo(out, addr); return 0, err }, nil
	case "WriteToUDPAddrPort":
		w := pc.(addrPortWriter)
		return func(out, _ []byte) (int, error) { _, err := w.WriteToUDPAddrPort(out, dst); return 0, err }, nil
	case "ReadFrom":
		return func(_, in []byte) (int, error) { n, _, err := pc.ReadFrom(in); return n, err }, nil
	case "ReadFromUDPAddrPort":
		r := pc.(addrPortReader)
		return func(_, in []byte) (int, error) { n, _, err := r.ReadFromUDPAddrPort(in); return n, err }, nil
	}
	return nil, fmt.Errorf("no such call: %s", op)
}

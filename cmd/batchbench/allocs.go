package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// allocOps are the calls the allocs scenario measures, a row each.
var allocOps = []string{"WriteTo", "WriteToUDPAddrPort", "ReadFrom", "ReadFromUDPAddrPort"}

// allocBatches is how many batches of batchSize datagrams the allocs
// scenario measures, after one to warm up: 64, or 8 for a -duration under
// 100ms (the tests'). One stray allocation in the process adds 1/4096 (or
// 1/512) per datagram; one in each batch of the call measured, 1/64.
func allocBatches(d time.Duration) int {
	if d < 100*time.Millisecond {
		return 8
	}
	return 64
}

// runAllocs counts the heap allocations of one call of the conn under
// test, per datagram, in a steady loop: the process's MemStats.Mallocs
// before and after, over the datagrams.
func runAllocs(p params) sample {
	if strings.HasPrefix(p.op, "Write") {
		return allocsWrite(p)
	}
	return allocsRead(p)
}

// allocsWrite writes to a plain receiver that never reads: the kernel
// drops what its queue cannot hold, which costs the writer nothing.
func allocsWrite(p params) (s sample) {
	rx, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	defer rx.Close()
	txc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	tx := wrap(txc, p.mode)
	write, err := writeFunc(tx, p.op, addrPort(rx))
	if err != nil {
		tx.Close()
		s.problem("%v", err)
		return s
	}
	buf := make([]byte, p.size)
	batches := allocBatches(p.duration)
	var before uint64
	start := time.Now()
	for i := range (batches + 1) * batchSize {
		if i == batchSize { // the first batch warms up: batchconn allocates its queue
			before, start = mallocs(), time.Now()
		}
		stamp(buf, uint64(i))
		if err := write(buf); err != nil {
			s.problem("%s: %v", p.op, err)
			break
		}
	}
	s.count = uint64(batches * batchSize)
	s.allocs = perDatagram(mallocs()-before, s.count)
	s.elapsed = time.Since(start)
	if err := tx.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(tx)
	return s
}

func writeFunc(pc net.PacketConn, op string, dst netip.AddrPort) (func([]byte) error, error) {
	switch op {
	case "WriteTo":
		addr := net.UDPAddrFromAddrPort(dst)
		return func(b []byte) error { _, err := pc.WriteTo(b, addr); return err }, nil
	case "WriteToUDPAddrPort":
		apw := pc.(addrPortWriter)
		return func(b []byte) error { _, err := apw.WriteToUDPAddrPort(b, dst); return err }, nil
	}
	return nil, fmt.Errorf("no such call: %s", op)
}

// allocsRead has a plain sender put a batch into the receive queue, then
// reads it, batch after batch, and counts the allocations of the reads.
func allocsRead(p params) (s sample) {
	rxc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	rx := wrap(rxc, p.mode)
	defer rx.Close()
	tx, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	defer tx.Close()
	read, err := readFunc(rx, p.op)
	if err != nil {
		s.problem("%v", err)
		return s
	}
	// A datagram lost on the way must not leave the run waiting.
	if err := rx.SetReadDeadline(time.Now().Add(grace)); err != nil {
		s.problem("SetReadDeadline: %v", err)
	}

	dst := addrPort(rxc)
	out, in := make([]byte, p.size), make([]byte, maxDatagram)
	var ord order
	batches := allocBatches(p.duration)
	var allocs uint64
	start := time.Now()
	for batch := range batches + 1 { // the first warms up: batchconn allocates its ring
		for i := range batchSize {
			stamp(out, uint64(batch*batchSize+i))
			if _, err := tx.WriteToUDPAddrPort(out, dst); err != nil {
				s.problem("sender: %v", err)
				return s
			}
		}
		before := mallocs()
		for range batchSize {
			n, err := read(in)
			if err != nil {
				s.problem("%s: %v", p.op, err)
				return s
			}
			ord.see(in[:n], p.size)
		}
		if batch > 0 {
			allocs += mallocs() - before
		}
	}
	s.count, s.elapsed = uint64(batches*batchSize), time.Since(start)
	s.allocs = perDatagram(allocs, s.count)
	if err := rx.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(rx)
	ord.check(&s)
	return s
}

func readFunc(pc net.PacketConn, op string) (func([]byte) (int, error), error) {
	switch op {
	case "ReadFrom":
		return func(b []byte) (int, error) { n, _, err := pc.ReadFrom(b); return n, err }, nil
	case "ReadFromUDPAddrPort":
		apr := pc.(addrPortReader)
		return func(b []byte) (int, error) { n, _, err := apr.ReadFromUDPAddrPort(b); return n, err }, nil
	}
	return nil, fmt.Errorf("no such call: %s", op)
}

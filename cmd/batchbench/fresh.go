package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"time"

	"github.com/batchconn/batchconn"
)

const (
	queryBytes = 40    // fresh's and idle's requests: a small DNS query's
	maxQueries = 20000 // bounds a fresh run, whatever its duration

	// replyTimeout is how long a query waits for its reply: on loopback,
	// one query in flight, a reply this late is a problem.
	replyTimeout = 5 * lossTimeout

	idleConns = 2000 // the conns the idle scenario holds open
)

// runFresh dials a connected socket per query to a plain echo server,
// wraps it in the batchconn modes, exchanges one query and closes it, for
// the duration or maxQueries, counting the bytes allocated per query.
func runFresh(p params) sample { return runQueries(p, false) }

// runIdle opens p.conns conns as fresh does, each staying open after its
// query, and takes the Go heap held after two collections before and
// after, per conn. Then it closes them.
func runIdle(p params) sample { return runQueries(p, true) }

// runQueries makes the queries to a plain echo server that allocates
// nothing a datagram, so that what the process allocates is the client's.
func runQueries(p params, idle bool) (s sample) {
	srv, err := listen()
	if s.problemIf("echo server", err) {
		return s
	}
	done := make(chan error, 1)
	go func() { done <- serveLoop(srv.ReadFromUDPAddrPort, srv.WriteToUDPAddrPort, nil) }()
	defer func() {
		srv.Close()
		s.problemIf("echo server", <-done)
	}()
	req, reply := make([]byte, queryBytes), make([]byte, maxDatagram)
	var conns []net.Conn
	held, allocated := heldHeap(), memStats().TotalAlloc
	stop := meter()
	start := time.Now()
	for idle && len(conns) < p.conns || !idle && s.count < maxQueries && time.Since(start) < p.duration {
		c, err := query(srv.LocalAddr().(*net.UDPAddr), p.mode, req, reply, s.count)
		if err == nil && !idle {
			err = c.Close()
		}
		if err != nil {
			s.problem("query %d: %v", s.count, err)
			break
		}
		if idle {
			conns = append(conns, c)
		}
		s.count++
	}
	s.elapsed = time.Since(start)
	stop(&s, s.count)
	s.bytes = float64(memStats().TotalAlloc-allocated) / float64(max(s.count, 1))
	if idle && s.count > 0 {
		s.bytes = float64(int64(heldHeap())-int64(held)) / float64(s.count)
	}
	var errs []error
	for _, c := range conns {
		errs = append(errs, c.Close())
	}
	s.problemIf("Close", errors.Join(errs...))
	return s
}

// query opens a connected socket to srv, wrapped as mode m's conn, and
// exchanges query seq on it.
func query(srv *net.UDPAddr, m mode, req, reply []byte, seq uint64) (net.Conn, error) {
	uc, err := net.DialUDP("udp4", nil, srv)
	if err != nil {
		return nil, err
	}
	var c net.Conn = uc
	if m.batched() {
		c = batchconn.New(uc, m.config())
	}
	stamp(req, seq)
	err = c.SetReadDeadline(time.Now().Add(replyTimeout))
	if err == nil {
		_, err = c.Write(req)
	}
	var n int
	if err == nil {
		n, err = c.Read(reply)
	}
	if err == nil && (n != len(req) || seqOf(reply) != seq) {
		err = fmt.Errorf("a reply of %d bytes is not the echo of request %d", n, seq)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// heldHeap is the heap's live bytes once three collections in a row free
// under 1%: closed sockets' finalizers run late and free more at the next.
func heldHeap() uint64 {
	held := uint64(math.MaxUint64)
	for still := 0; still < 3; still++ {
		runtime.GC()
		h := memStats().HeapAlloc
		if h < held-held/100 {
			still = -1
		}
		held = min(held, h)
		time.Sleep(5 * time.Millisecond)
	}
	return held
}

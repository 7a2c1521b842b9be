package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/batchconn/batchconn"
)

const (
	// queryBytes is the size of the fresh and idle scenarios' requests:
	// a small DNS query's.
	queryBytes = 40

	// maxQueries bounds a fresh run, whatever its duration.
	maxQueries = 20000

	// replyTimeout is how long a query waits for its reply. On loopback,
	// one query in flight, none is lost: a reply this late is a problem.
	replyTimeout = 5 * lossTimeout

	// defaultIdleConns is how many conns the idle scenario holds open,
	// and maxIdleConns the most it may (each is a file descriptor).
	defaultIdleConns = 2000
	maxIdleConns     = 100000
)

// freshModes are the modes of the fresh scenario: plain, and batchconn
// with and without offload, whose costs at New and Close differ.
var freshModes = []mode{modePlain, modeBatch, modeNoOffload}

// runFresh measures the most common UDP client of all, a socket per
// request: for each query it dials a connected UDP socket to a plain echo
// server, wraps it (batchconn.New) in the batchconn modes, writes a
// request of queryBytes, reads the reply and closes the conn; one query
// after another, for the duration or maxQueries. It counts the queries,
// the process's CPU time and the bytes it allocated meanwhile.
func runFresh(p params) (s sample) {
	q, err := startQuerier()
	if err != nil {
		s.problem("echo server: %v", err)
		return s
	}
	defer q.stop(&s)

	allocated := totalAlloc()
	m := startMeter()
	start := time.Now()
	for s.count < maxQueries && time.Since(start) < p.duration {
		c, err := q.dial(p.mode)
		if err == nil {
			err = c.Close()
		}
		if err != nil {
			s.problem("query %d: %v", s.count, err)
			break
		}
		s.count++
	}
	s.elapsed = time.Since(start)
	m.stop(&s, s.count)
	s.allocBytes = perDatagram(totalAlloc()-allocated, s.count)
	return s
}

// runIdle measures what open conns hold while they are quiet: it opens
// p.conns conns as fresh does, each exchanging one query with the echo
// server and then staying open, and takes the Go heap held after two
// collections before and after, per conn. Then it closes them all.
func runIdle(p params) (s sample) {
	q, err := startQuerier()
	if err != nil {
		s.problem("echo server: %v", err)
		return s
	}
	defer q.stop(&s)
	conns := make([]net.Conn, 0, p.conns)

	before := heldHeap()
	m := startMeter()
	start := time.Now()
	for range p.conns {
		c, err := q.dial(p.mode)
		if err != nil {
			s.problem("conn %d: %v", len(conns), err)
			break
		}
		conns = append(conns, c)
	}
	s.count, s.elapsed = uint64(len(conns)), time.Since(start)
	m.stop(&s, s.count)
	if held := heldHeap(); len(conns) > 0 {
		s.heapBytes = float64(int64(held)-int64(before)) / float64(len(conns))
	}

	var errs []error
	for _, c := range conns {
		errs = append(errs, c.Close())
	}
	if err := errors.Join(errs...); err != nil {
		s.problem("Close: %v", err)
	}
	runtime.KeepAlive(conns)
	return s
}

// querier makes the fresh and idle scenarios' queries to an echo server
// of its own, its buffers allocated once.
type querier struct {
	srv        *plainEcho
	req, reply []byte
	seq        uint64
}

func startQuerier() (*querier, error) {
	srv, err := startPlainEcho()
	if err != nil {
		return nil, err
	}
	return &querier{srv: srv, req: make([]byte, queryBytes), reply: make([]byte, maxDatagram)}, nil
}

// stop stops the echo server and adds to s what went wrong there.
func (q *querier) stop(s *sample) { q.srv.stop(s) }

// dial opens a connected socket to the server, wrapped as mode m's conn,
// and exchanges one query on it: a request and its echo.
func (q *querier) dial(m mode) (net.Conn, error) {
	uc, err := net.DialUDP("udp4", nil, q.srv.addr())
	if err != nil {
		return nil, err
	}
	var c net.Conn = uc
	if m.batched() {
		c = batchconn.New(uc, m.config())
	}
	if err := q.exchange(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// exchange writes the next request on c and reads its reply.
func (q *querier) exchange(c net.Conn) error {
	seq := q.seq
	q.seq++
	stamp(q.req, seq)
	if err := c.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		return err
	}
	if _, err := c.Write(q.req); err != nil {
		return err
	}
	n, err := c.Read(q.reply)
	if err != nil {
		return err
	}
	if n != len(q.req) || seqOf(q.reply) != seq {
		return fmt.Errorf("a reply of %d bytes is not the echo of request %d", n, seq)
	}
	return nil
}

// plainEcho is the fresh and idle scenarios' server, the same in every
// mode: a plain socket that sends each datagram back to its sender, from
// a goroutine of its own, allocating nothing a datagram, so that what the
// process allocates is the client's.
type plainEcho struct {
	uc   *net.UDPConn
	done chan error
}

func startPlainEcho() (*plainEcho, error) {
	uc, err := listen()
	if err != nil {
		return nil, err
	}
	e := &plainEcho{uc: uc, done: make(chan error, 1)}
	go func() { e.done <- e.serve() }()
	return e, nil
}

func (e *plainEcho) addr() *net.UDPAddr { return e.uc.LocalAddr().(*net.UDPAddr) }

func (e *plainEcho) serve() error {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := e.uc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if _, err := e.uc.WriteToUDPAddrPort(buf[:n], from); err != nil {
			return err
		}
	}
}

// stop closes the server and adds to s what went wrong.
func (e *plainEcho) stop(s *sample) {
	e.uc.Close()
	if err := <-e.done; err != nil {
		s.problem("echo server: %v", err)
	}
}

// totalAlloc is the bytes the process allocated on the heap so far.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// heldHeap is the heap the process holds: its live bytes after two
// collections (the first may leave objects with finalizers for the
// second).
func heldHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

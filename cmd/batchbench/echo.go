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

const (
	echoWindow    = 64    // requests the echo client keeps in flight
	maxRoundTrips = 20000 // per pingpong run
)

// echo sends every datagram back to its sender until pc is closed,
// counting them in n: the server loop of the echo and pingpong scenarios,
// the same code on plain and on batchconn.
func echo(pc net.PacketConn, n *atomic.Uint64) error {
	buf := make([]byte, maxDatagram)
	for {
		k, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if _, err := pc.WriteTo(buf[:k], addr); err != nil {
			return err
		}
		n.Add(1)
	}
}

// echoServer runs echo on the conn under test (xnet: xnetEcho on the
// socket) in a goroutine of its own; with -target, it is the -listen
// side's server for the mode.
type echoServer struct {
	addr   netip.AddrPort
	uc     *net.UDPConn // nil for a remote server
	conn   net.PacketConn
	echoed atomic.Uint64
	done   chan error
}

func startEchoServer(p params) (*echoServer, error) {
	if p.remote != nil {
		return &echoServer{addr: p.remote.echo(p.mode)}, nil
	}
	uc, err := listen()
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	srv := &echoServer{addr: addrPort(uc), uc: uc, done: make(chan error, 1)}
	loop := func() error { return echo(srv.conn, &srv.echoed) }
	if p.mode == modeXnet {
		srv.conn = uc
		loop = func() error { return xnetEcho(uc, &srv.echoed) }
	} else {
		srv.conn = wrap(uc, p.mode)
	}
	// A safety net: should nothing close it, the server stops by itself.
	if err := srv.conn.SetReadDeadline(time.Now().Add(p.duration + 2*grace)); err != nil {
		srv.conn.Close()
		return nil, fmt.Errorf("SetReadDeadline: %w", err)
	}
	go func() { srv.done <- loop() }()
	return srv, nil
}

// stop closes a local server and adds to s its Stats and what went wrong.
func (srv *echoServer) stop(s *sample) {
	if srv.uc == nil {
		return
	}
	if err := srv.conn.Close(); err != nil {
		s.problem("server Close: %v", err)
	}
	if err := <-srv.done; err != nil {
		s.problem("server: %v", err)
	}
	s.stats = statsOf(srv.conn)
}

// checkLost compares, on loopback, the requests that got no reply with
// the datagrams the kernel dropped at the server's and the client's
// queues; they must be the same.
func checkLost(s *sample, srv *echoServer, cl *net.UDPConn) {
	if srv.uc == nil {
		return
	}
	s.drops, s.dropsKnown = kernelDrops(port(srv.uc), port(cl))
	if lost := s.offered - s.arrived; s.dropsKnown && lost != s.drops {
		s.problem("%d requests got no reply, the kernel dropped %d datagrams", lost, s.drops)
	}
}

// runEcho measures the conn under test as an echo server under a client
// that keeps echoWindow requests in flight. The client batches (it is a
// batchconn with its defaults, offload on, the same in every mode), so
// that it is not what sets the pace: the server under test is.
func runEcho(p params) (s sample) {
	srv, err := startEchoServer(p)
	if err != nil {
		s.problem("server: %v", err)
		return s
	}
	defer srv.stop(&s)
	uc, err := p.listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	cl := batchconn.New(uc, nil)
	defer cl.Close()

	m := startMeter()
	f, err := flood(cl, srv.addr, p.size, p.duration, lastWait(p))
	m.stop(&s, f.answered)
	if err != nil {
		s.problem("client after %d replies: %v", f.answered, err)
	}
	s.count, s.elapsed = f.inTime, f.elapsed
	s.offered, s.arrived, s.arrivals = f.sent, f.answered, true
	checkLost(&s, srv, uc)
	f.ord.check(&s)
	return s
}

// floodResult is what the echo client saw.
type floodResult struct {
	sent, answered uint64        // requests, and replies to them
	inTime         uint64        // replies read within the duration
	elapsed        time.Duration // the time inTime took
	ord            order
}

// flood keeps echoWindow requests in flight from cl to srv for d, in one
// goroutine: it writes requests while the window has room, then reads a
// reply. When no reply comes for lossTimeout, it takes the requests in
// flight for lost and fills the window anew; should their replies come
// after all, they count as answered. After d, it reads the replies still
// due, waiting lastWait at most for the next.
func flood(cl *batchconn.PacketConn, srv netip.AddrPort, size int, d, lastWait time.Duration) (f floodResult, err error) {
	req := make([]byte, size)
	reply := make([]byte, maxDatagram)
	inFlight := 0
	var givenUp uint64 // requests numbered below it were taken for lost
	start := time.Now()
	end := start.Add(d)
	var armed time.Time        // when the read deadline was last set
	var armedFor time.Duration // and for how long
	for {
		now := time.Now()
		open := now.Before(end)
		if !open && f.elapsed == 0 {
			f.elapsed = now.Sub(start)
		}
		for open && inFlight < echoWindow {
			stamp(req, f.sent)
			if _, err := cl.WriteToUDPAddrPort(req, srv); err != nil {
				return f, err
			}
			f.sent++
			inFlight++
		}
		if inFlight == 0 {
			return f, nil
		}
		wait := lossTimeout
		if !open {
			wait = lastWait
		}
		if wait != armedFor || now.Sub(armed) > wait/4 {
			if err := cl.SetReadDeadline(now.Add(wait)); err != nil {
				return f, err
			}
			armed, armedFor = now, wait
		}
		n, from, err := cl.ReadFromUDPAddrPort(reply)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			inFlight, givenUp = 0, f.sent // lost: the kernel's drop counters say where
			continue
		}
		if err != nil {
			return f, err
		}
		if !sameAddr(from, srv) {
			return f, fmt.Errorf("a reply from %v, not the server", from)
		}
		f.ord.see(reply[:n], size)
		f.answered++
		if n < 8 || seqOf(reply) >= givenUp {
			inFlight--
		}
		if open {
			f.inTime++
		}
	}
}

// sameAddr reports whether a reply from from comes from srv.
func sameAddr(from, srv netip.AddrPort) bool {
	return from.Addr().Unmap() == srv.Addr() && from.Port() == srv.Port()
}

// runPingPong measures the conn under test as an echo server, one request
// in flight at a time from a plain client.
func runPingPong(p params) (s sample) {
	srv, err := startEchoServer(p)
	if err != nil {
		s.problem("server: %v", err)
		return s
	}
	defer srv.stop(&s)
	cl, err := p.listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	defer cl.Close()

	m := startMeter()
	r, err := pingFor(cl, srv.addr, p.size, p.duration, lastWait(p))
	m.stop(&s, r.replies)
	if err != nil {
		s.problem("client after %d round trips: %v", len(r.rtts), err)
	}
	s.count, s.elapsed = uint64(len(r.rtts)), r.elapsed
	s.p50, s.p99 = percentile(r.rtts, 0.50), percentile(r.rtts, 0.99)
	s.offered, s.arrived, s.arrivals = r.sent, r.replies, true
	checkLost(&s, srv, cl)
	return s
}

// lastWait is how long the echo and pingpong clients wait, after the
// duration, for the replies still due. On loopback nothing is lost but
// what the kernel counts: they wait long, so that a process starved of
// CPU for a while does not make late replies look lost. Over a network
// they give up sooner.
func lastWait(p params) time.Duration {
	if p.remote != nil {
		return lossTimeout
	}
	return 5 * lossTimeout
}

// pingResult is what the pingpong client saw.
type pingResult struct {
	rtts          []time.Duration // of the requests answered in time
	sent, replies uint64          // requests, and replies to them, late ones too
	elapsed       time.Duration
}

// pingFor sends one request at a time to srv and times its reply, for d
// or maxRoundTrips round trips, whichever ends first. A request with no
// reply within lossTimeout is given up; should its reply come later, while
// the client waits for another or for lastWait after the end, it counts
// as a reply, with no round trip.
func pingFor(cl *net.UDPConn, srv netip.AddrPort, size int, d, lastWait time.Duration) (r pingResult, err error) {
	req := make([]byte, size)
	reply := make([]byte, maxDatagram)
	r.rtts = make([]time.Duration, 0, maxRoundTrips)
	start := time.Now()
	for err == nil && r.sent < maxRoundTrips && time.Since(start) < d {
		err = ping(cl, srv, req, reply, &r)
	}
	r.elapsed = time.Since(start)
	if err == nil && r.replies < r.sent {
		if err = cl.SetReadDeadline(time.Now().Add(lastWait)); err == nil {
			err = lateReplies(cl, srv, reply, size, &r)
		}
	}
	return r, err
}

// ping sends request r.sent and waits for its reply.
func ping(cl *net.UDPConn, srv netip.AddrPort, req, reply []byte, r *pingResult) error {
	seq := r.sent
	stamp(req, seq)
	if err := cl.SetReadDeadline(time.Now().Add(lossTimeout)); err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := cl.WriteToUDPAddrPort(req, srv); err != nil {
		return err
	}
	r.sent++
	return awaitReply(cl, srv, reply, len(req), seq, t0, r)
}

// awaitReply reads until the reply to request seq, sent at t0, and notes
// its round trip; it skips late replies to earlier requests, and gives up
// at the read deadline.
func awaitReply(cl *net.UDPConn, srv netip.AddrPort, buf []byte, size int, seq uint64, t0 time.Time, r *pingResult) error {
	for {
		n, from, err := cl.ReadFromUDPAddrPort(buf)
		rtt := time.Since(t0)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return err
		}
		if !sameAddr(from, srv) || n != size || seqOf(buf) > seq {
			return fmt.Errorf("request %d: a reply of %d bytes from %v is not its echo", seq, n, from)
		}
		r.replies++
		if seqOf(buf) == seq {
			r.rtts = append(r.rtts, rtt)
			return nil
		}
	}
}

// lateReplies counts the replies still due to requests given up, until
// all are in or the read deadline passes.
func lateReplies(cl *net.UDPConn, srv netip.AddrPort, buf []byte, size int, r *pingResult) error {
	for r.replies < r.sent {
		n, from, err := cl.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return err
		}
		if !sameAddr(from, srv) || n != size || seqOf(buf) >= r.sent {
			return fmt.Errorf("a late reply of %d bytes from %v is not an echo", n, from)
		}
		r.replies++
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"io"
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

// echo is the echo and pingpong server, the same code on every conn.
func echo(pc net.PacketConn) error { return serveLoop(pc.ReadFrom, pc.WriteTo, nil) }

// serveLoop reads datagrams until the socket is closed, counting them in
// n if any, and writes each back to its sender if write is not nil.
func serveLoop[A any](read func([]byte) (int, A, error), write func([]byte, A) (int, error), n *atomic.Uint64) error {
	buf := make([]byte, maxDatagram)
	for {
		k, from, err := read(buf)
		if errors.Is(err, net.ErrClosed) {
			return nil
		} else if err != nil {
			return err
		}
		if write != nil {
			if _, err := write(buf[:k], from); err != nil {
				return err
			}
		}
		if n != nil {
			n.Add(1)
		}
	}
}

// runEchoed runs the echo server on the conn under test (xnet: xnetEcho),
// or with -target uses the -listen side's, and drives it with client,
// which sets s's counts and returns what to close once the drops at the
// server's and the client's queues are counted.
func runEchoed(p params, client func(uc *net.UDPConn, srv netip.AddrPort, s *sample) (io.Closer, error)) (s sample) {
	uc, err := p.listen()
	if s.problemIf("listen", err) {
		return s
	}
	var srv *net.UDPConn // nil with -target
	var conn net.PacketConn
	var addr netip.AddrPort
	done := make(chan error, 1)
	if p.remote != nil {
		addr = p.remote.echo(p.mode)
	} else if srv, err = listen(); err != nil {
		uc.Close()
		s.problem("listen: %v", err)
		return s
	} else {
		addr, conn = addrPort(srv), wrap(srv, p.mode)
		loop := func() error { return echo(conn) }
		if p.mode == modeXnet {
			loop = func() error { return xnetEcho(srv) }
		}
		// A safety net: should nothing close it, the server stops by itself.
		s.problemIf("server SetReadDeadline", conn.SetReadDeadline(time.Now().Add(p.duration+2*grace)))
		go func() { done <- loop() }()
	}
	stop := meter()
	cl, err := client(uc, addr, &s)
	stop(&s, s.arrived)
	s.problemIf(fmt.Sprintf("client after %d replies", s.arrived), err)
	s.arrivals = true
	if srv != nil {
		_, s.drops, s.dropsKnown = udpQueues(port(srv), port(uc))
		if lost := int64(s.offered) - int64(s.arrived) - int64(s.drops); s.dropsKnown && lost != 0 {
			s.problem("%d requests got no reply: %s", lost, whereLost(cl, conn, srv, uc))
		}
		s.problemIf("server Close", conn.Close())
		s.problemIf("server", <-done)
		s.stats = statsOf(conn)
	}
	cl.Close()
	return s
}

// runEcho keeps echoWindow requests in flight from a batchconn client,
// the same in every mode, so that the server sets the pace.
func runEcho(p params) sample {
	return runEchoed(p, func(uc *net.UDPConn, srv netip.AddrPort, s *sample) (io.Closer, error) {
		cl := batchconn.New(uc, nil)
		return cl, flood(cl, srv, p.size, p.duration, lastWait(p), s)
	})
}

// runPingPong sends one request at a time from a plain client.
func runPingPong(p params) sample {
	return runEchoed(p, func(uc *net.UDPConn, srv netip.AddrPort, s *sample) (io.Closer, error) {
		return uc, pingFor(uc, srv, p.size, p.duration, lastWait(p), s)
	})
}

// lastWait is how long the clients wait for the replies still due after
// the duration: on loopback long, so that a process starved of CPU does
// not make late replies look lost.
func lastWait(p params) time.Duration {
	if p.remote != nil {
		return lossTimeout
	}
	return 5 * lossTimeout
}

// readLate reads a reply; where the deadline has passed (a process the
// machine starved of CPU past it may find replies waiting), it reads once
// more, for 20 ms, before the caller takes what is in flight for lost.
func readLate(cl interface {
	addrPortReader
	SetReadDeadline(time.Time) error
}, reply []byte) (int, netip.AddrPort, error) {
	n, from, err := cl.ReadFromUDPAddrPort(reply)
	if errors.Is(err, os.ErrDeadlineExceeded) && cl.SetReadDeadline(time.Now().Add(20*time.Millisecond)) == nil {
		return cl.ReadFromUDPAddrPort(reply)
	}
	return n, from, err
}

// flood keeps echoWindow requests in flight from cl to srv for d, noting
// in s the requests, the replies, and those within d. With no reply for
// lossTimeout, it takes those in flight for lost (late replies still
// count) and refills the window; after d it waits lastWait at most.
func flood(cl *batchconn.PacketConn, srv netip.AddrPort, size int, d, lastWait time.Duration, s *sample) error {
	req, reply := make([]byte, size), make([]byte, maxDatagram)
	var ord order
	defer ord.check(s)
	inFlight := 0
	var givenUp uint64 // requests numbered below it were taken for lost
	start := time.Now()
	var armed time.Time        // when the read deadline was last set
	var armedFor time.Duration // and for how long
	for {
		now := time.Now()
		open := now.Before(start.Add(d))
		if !open && s.elapsed == 0 {
			s.elapsed = now.Sub(start)
		}
		for ; open && inFlight < echoWindow; inFlight++ {
			stamp(req, s.offered)
			if _, err := cl.WriteToUDPAddrPort(req, srv); err != nil {
				return err
			}
			s.offered++
		}
		if inFlight == 0 {
			return nil
		}
		wait := lossTimeout
		if !open {
			wait = lastWait
		}
		if wait != armedFor || now.Sub(armed) > wait/4 { // a deadline set per reply would cost more than the echo
			if err := cl.SetReadDeadline(now.Add(wait)); err != nil {
				return err
			}
			armed, armedFor = now, wait
		}
		n, from, err := readLate(cl, reply)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			inFlight, givenUp = 0, s.offered // lost: the kernel's drop counters say where
			armedFor = 0
			continue
		} else if err != nil {
			return err
		}
		if !sameAddr(from, srv) {
			return fmt.Errorf("a reply from %v, not the server", from)
		}
		ord.see(reply[:n], size)
		s.arrived++
		if n < 8 || seqOf(reply) >= givenUp {
			inFlight--
		}
		if open {
			s.count++
		}
	}
}

// whereLost tells how far requests without a reply got: through the
// client's kernel (a batchconn's Stats), into the server's socket and
// through the server (its Stats), into the client's socket.
func whereLost(cl io.Closer, srvConn net.PacketConn, srv, uc *net.UDPConn) string {
	pc, _ := cl.(net.PacketConn)
	sq, sd, _ := udpQueues(port(srv))
	cq, cd, _ := udpQueues(port(uc))
	return fmt.Sprintf("client Stats %+v; server socket: %d dropped, %d bytes unread; server Stats %+v; client socket: %d dropped, %d bytes unread",
		statsOf(pc), sd, sq, statsOf(srvConn), cd, cq)
}

func sameAddr(from, srv netip.AddrPort) bool {
	return from.Addr().Unmap() == srv.Addr() && from.Port() == srv.Port()
}

// pingFor sends one request at a time to srv and times its reply, for d
// or maxRoundTrips; a request unanswered within lossTimeout is given up,
// and a reply that comes later counts, with no round trip.
func pingFor(cl *net.UDPConn, srv netip.AddrPort, size int, d, lastWait time.Duration, s *sample) (err error) {
	req, reply := make([]byte, size), make([]byte, maxDatagram)
	rtts := make([]time.Duration, 0, maxRoundTrips)
	// replies reads until the deadline or every request has a reply; with
	// t0, when the last request left, it stops at that one's reply.
	replies := func(t0 time.Time) error {
		for s.arrived < s.offered {
			n, from, err := readLate(cl, reply)
			rtt := time.Since(t0)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			} else if err != nil {
				return err
			}
			if !sameAddr(from, srv) || n != size || seqOf(reply) >= s.offered {
				return fmt.Errorf("a reply of %d bytes from %v is not the echo of a request", n, from)
			}
			if s.arrived++; !t0.IsZero() && seqOf(reply) == s.offered-1 {
				rtts = append(rtts, rtt)
				return nil
			}
		}
		return nil
	}
	start := time.Now()
	for err == nil && s.offered < maxRoundTrips && time.Since(start) < d {
		stamp(req, s.offered)
		if err = cl.SetReadDeadline(time.Now().Add(lossTimeout)); err == nil {
			t0 := time.Now()
			if _, err = cl.WriteToUDPAddrPort(req, srv); err == nil {
				s.offered++
				err = replies(t0)
			}
		}
	}
	s.elapsed = time.Since(start)
	if err == nil && s.arrived < s.offered {
		if err = cl.SetReadDeadline(time.Now().Add(lastWait)); err == nil {
			err = replies(time.Time{})
		}
	}
	s.count, s.p50, s.p99 = uint64(len(rtts)), percentile(rtts, 0.50), percentile(rtts, 0.99)
	return err
}

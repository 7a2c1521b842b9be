package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// The -listen side's ports, from the port P it is given: the echo servers
// of echoAt, and sinks that read and discard at P+2 to P+17.
const (
	offSinks    = 2
	remotePorts = offSinks + send16Dests + 2
)

var echoAt = map[int]mode{0: modePlain, 1: modeBatch, remotePorts - 2: modeNoOffload, remotePorts - 1: modeXnet}

// remote is the -listen server a -target client drives.
type remote struct{ base netip.AddrPort }

// resolve resolves the address s of -target or -listen (flag), whose
// port P must leave room for the server's ports after it.
func resolve(flag, s string) (*net.UDPAddr, error) {
	ua, err := net.ResolveUDPAddr("udp", s)
	if err == nil && (ua.Port == 0 || ua.Port+remotePorts > 1<<16) {
		err = fmt.Errorf("%q needs a port P up to %d (the server uses P to P+%d)", s, 1<<16-remotePorts, remotePorts-1)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return ua, nil
}

func parseTarget(s string) (*remote, error) {
	ua, err := resolve("-target", s)
	if err == nil && (ua.IP == nil || ua.IP.IsUnspecified()) {
		err = fmt.Errorf("-target: %q names no host", s)
	}
	if err != nil {
		return nil, err
	}
	ap := ua.AddrPort()
	return &remote{base: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

func (r *remote) at(off int) netip.AddrPort {
	return netip.AddrPortFrom(r.base.Addr(), r.base.Port()+uint16(off))
}

// echo is the address of the server's echo on mode m's conn.
func (r *remote) echo(m mode) netip.AddrPort {
	for off, em := range echoAt {
		if em == m {
			return r.at(off)
		}
	}
	return r.at(0)
}

func (r *remote) sinkAddrs(n int) []netip.AddrPort {
	aps := make([]netip.AddrPort, n)
	for i := range aps {
		aps[i] = r.at(offSinks + i)
	}
	return aps
}

// network is what the client listens on to reach the server.
func (r *remote) network() string {
	if r.base.Addr().Is4() {
		return "udp4"
	}
	return "udp6"
}

// server is the -listen side: the echo servers and the sinks, each in a
// goroutine of its own.
type server struct {
	conns []net.PacketConn
	sunk  atomic.Uint64 // datagrams the sinks read
	errs  chan error
	loops sync.WaitGroup
}

func startServer(addr string) (*server, error) {
	ua, err := resolve("-listen", addr)
	if err != nil {
		return nil, err
	}
	srv := &server{errs: make(chan error, remotePorts)}
	for off := range remotePorts {
		a := *ua
		a.Port += off
		uc, err := net.ListenUDP("udp", &a)
		if err == nil {
			if err = uc.SetReadBuffer(readBuffer); err != nil {
				uc.Close()
			}
		}
		if err != nil {
			srv.close()
			return nil, err
		}
		pc := net.PacketConn(uc)
		loop := func() error { return serveLoop(uc.ReadFromUDPAddrPort, nil, &srv.sunk) }
		if m, ok := echoAt[off]; ok {
			pc = wrap(uc, m)
			loop = func() error { return echo(pc) }
			if m == modeXnet {
				loop = func() error { return xnetEcho(uc) }
			}
		}
		srv.conns = append(srv.conns, pc)
		srv.loops.Go(func() {
			if err := loop(); err != nil {
				srv.errs <- fmt.Errorf("%v: %w", pc.LocalAddr(), err)
			}
		})
	}
	return srv, nil
}

// close closes every port and waits for the loops to end.
func (srv *server) close() {
	for _, pc := range srv.conns {
		pc.Close()
	}
	srv.loops.Wait()
}

// serve runs the -listen side until a loop fails.
func serve(addr string, log io.Writer) error {
	srv, err := startServer(addr)
	if err != nil {
		return err
	}
	defer srv.close()
	fmt.Fprintf(log, "batchbench: serving from %v: echo on plain at P, batchconn P+1, nooffload P+%d, xnet P+%d; sinks P+%d to P+%d\n",
		srv.conns[0].LocalAddr(), remotePorts-2, remotePorts-1, offSinks, offSinks+send16Dests-1)
	return <-srv.errs
}

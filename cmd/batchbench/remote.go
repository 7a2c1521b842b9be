package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchconn/batchconn"
)

// The -listen side's ports, from the port P it is given.
const (
	offEchoPlain     = 0                      // P: echo on a plain *net.UDPConn
	offEchoBatch     = 1                      // P+1: echo on batchconn, offload on
	offSinks         = 2                      // P+2 ... P+17: plain sinks, which read and discard
	offEchoNoOffload = offSinks + send16Dests // P+18: echo on batchconn, offload off
	offEchoXnet      = offEchoNoOffload + 1   // P+19: echo written with x/net's ReadBatch and WriteBatch
	remotePorts      = offEchoXnet + 1
)

// remote is the -listen server a -target client drives.
type remote struct{ base netip.AddrPort }

func parseTarget(s string) (*remote, error) {
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return nil, fmt.Errorf("-target: %w", err)
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !ap.Addr().IsValid() || ap.Addr().IsUnspecified() || ap.Port() == 0 || int(ap.Port())+remotePorts > 1<<16 {
		return nil, fmt.Errorf("-target: %q is not a host and a port P up to %d (the server uses P to P+%d)",
			s, 1<<16-remotePorts, remotePorts-1)
	}
	return &remote{base: ap}, nil
}

func (r *remote) at(off int) netip.AddrPort {
	return netip.AddrPortFrom(r.base.Addr(), r.base.Port()+uint16(off))
}

// echo is the address of the server's echo loop on the conn of mode m.
func (r *remote) echo(m mode) netip.AddrPort {
	switch m {
	case modeBatch:
		return r.at(offEchoBatch)
	case modeNoOffload:
		return r.at(offEchoNoOffload)
	case modeXnet:
		return r.at(offEchoXnet)
	}
	return r.at(offEchoPlain)
}

// sinkAddrs are the addresses of n of the server's sinks.
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

// server is the -listen side: the echo loops and the sinks, on
// consecutive ports, each in a goroutine of its own.
type server struct {
	conns  []net.PacketConn
	echoed [4]atomic.Uint64 // by the plain, batchconn, nooffload and xnet echo loops
	sunk   atomic.Uint64    // by the sinks
	errs   chan error       // the loops' failures
	loops  sync.WaitGroup
}

// startServer opens the ports from addr's on and starts serving them.
func startServer(addr string) (*server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	if ua.Port == 0 || ua.Port+remotePorts > 1<<16 {
		return nil, fmt.Errorf("-listen: %q needs a port P up to %d (the server uses P to P+%d)",
			addr, 1<<16-remotePorts, remotePorts-1)
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
		srv.start(uc, off)
	}
	return srv, nil
}

// start serves the port at offset off from P.
func (srv *server) start(uc *net.UDPConn, off int) {
	var pc net.PacketConn = uc
	var loop func() error
	switch {
	case off == offEchoPlain:
		loop = func() error { return echo(uc, &srv.echoed[0]) }
	case off == offEchoBatch:
		bc := batchconn.New(uc, modeBatch.config())
		pc = bc
		loop = func() error { return echo(bc, &srv.echoed[1]) }
	case off == offEchoNoOffload:
		bc := batchconn.New(uc, modeNoOffload.config())
		pc = bc
		loop = func() error { return echo(bc, &srv.echoed[2]) }
	case off == offEchoXnet:
		loop = func() error { return xnetEcho(uc, &srv.echoed[3]) }
	default:
		loop = func() error { return discard(uc, &srv.sunk) }
	}
	srv.conns = append(srv.conns, pc)
	srv.loops.Go(func() {
		if err := loop(); err != nil {
			srv.errs <- fmt.Errorf("%v: %w", pc.LocalAddr(), err)
		}
	})
}

// close closes every port and waits for the loops to end.
func (srv *server) close() {
	for _, pc := range srv.conns {
		pc.Close()
	}
	srv.loops.Wait()
}

// serve runs the -listen side until a loop fails, and every 10 seconds
// with traffic logs what it echoed and discarded.
func serve(addr string, log io.Writer) error {
	srv, err := startServer(addr)
	if err != nil {
		return err
	}
	defer srv.close()
	first := srv.conns[0].LocalAddr().(*net.UDPAddr)
	fmt.Fprintf(log, "batchbench: serving on %v: echo on plain :%d, on batchconn :%d, on batchconn without offload :%d, with x/net's batches :%d; sinks :%d-%d\n",
		first, first.Port+offEchoPlain, first.Port+offEchoBatch, first.Port+offEchoNoOffload, first.Port+offEchoXnet,
		first.Port+offSinks, first.Port+offSinks+send16Dests-1)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	var last [5]uint64
	for {
		select {
		case err := <-srv.errs:
			return err
		case <-tick.C:
			now := [5]uint64{srv.echoed[0].Load(), srv.echoed[1].Load(), srv.echoed[2].Load(), srv.echoed[3].Load(), srv.sunk.Load()}
			if now != last {
				fmt.Fprintf(log, "batchbench: %s echoed %d on plain, %d on batchconn, %d on nooffload, %d on xnet; %d discarded\n",
					time.Now().Format(time.TimeOnly), now[0], now[1], now[2], now[3], now[4])
				last = now
			}
		}
	}
}

// discard reads and drops datagrams until uc is closed, counting them in n.
func discard(uc *net.UDPConn, n *atomic.Uint64) error {
	buf := make([]byte, maxDatagram)
	for {
		if _, _, err := uc.ReadFromUDPAddrPort(buf); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		n.Add(1)
	}
}

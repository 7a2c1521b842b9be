package batchconn

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// Errors are shaped as a *net.UDPConn shapes its own: a *net.OpError with
// its Op, Net, Source and Addr, wrapping net.ErrClosed,
// os.ErrDeadlineExceeded or an *os.SyscallError, so that errors.Is and
// errors.As answer the same on both.

var networks = [...]string{"udp", "udp4", "udp6"}

// networkName returns the network name plain puts in its errors: the one
// the socket was opened with ("udp", "udp4" or "udp6"), which LocalAddr
// does not tell. A WriteTo with a nil address fails at once with an error
// that carries it, and touches nothing, closed socket or not. It is asked
// at the first error, not in New: most conns never see one.
func (s *socket) networkName() string {
	if p := s.network.Load(); p != nil {
		return *p
	}
	p := &networks[0]
	var oe *net.OpError
	if _, err := s.uc.WriteTo(nil, nil); errors.As(err, &oe) {
		for i := range networks {
			if networks[i] == oe.Net {
				p = &networks[i]
			}
		}
	}
	s.network.Store(p)
	return *p
}

// opError shapes err as *net.UDPConn shapes its errors.
func (s *socket) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: s.networkName(), Source: s.laddr, Addr: addr, Err: err}
}

// connError reports whether err concerns the conn rather than one
// datagram: it is closed, or its deadline has passed.
func connError(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded)
}

// unwrapRaw takes the poller's error out of the *net.OpError that
// syscall.RawConn wraps it in, so that it can be wrapped again with the
// Op plain uses.
func unwrapRaw(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// errnoErr turns a zero errno into a nil error.
func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// unsupported is the error for a setting pc does not have.
func unsupported(pc net.PacketConn) error {
	return &net.OpError{Op: "set", Net: "udp", Source: pc.LocalAddr(), Err: errors.ErrUnsupported}
}

// addrOf is the address to put in an error about a datagram for ap.
func addrOf(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

// sendError is the error Flush and Close report for a queued datagram the
// kernel refused.
func (s *socket) sendError(m *txMsg, err error) error {
	if e, ok := err.(interface{ Timeout() bool }); ok && e.Timeout() {
		return s.opError("write", addrOf(m.addr), err)
	}
	return s.opError("write", addrOf(m.addr), os.NewSyscallError("sendmmsg", err))
}

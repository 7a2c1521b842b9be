package batchconn

import (
	"errors"
	"syscall"
)

// SyscallConn returns a raw connection to the socket for setting and
// reading socket options, as *net.UDPConn's does: its Control runs the
// function on the socket's descriptor. Its Read and Write refuse with an
// error wrapping errors.ErrUnsupported: a read or write beside the ring and
// the queue would take datagrams the ring is owed and send past queued
// ones. Libraries that only set options through it (quic-go's
// don't-fragment, which turns on its path-MTU discovery; DSCP and buffer
// sizes) work as on plain and keep reading and writing through the conn.
//
// Options that change how the socket delivers datagrams (UDP_GRO,
// UDP_SEGMENT) must not be set through it: the conn decides those. On a conn served one datagram at a time it is the
// wrapped conn's SyscallConn, or errors.ErrUnsupported where it has none.
func (c *PacketConn) SyscallConn() (syscall.RawConn, error) {
	if c.bio == nil {
		if s, ok := c.pc.(interface {
			SyscallConn() (syscall.RawConn, error)
		}); ok {
			return s.SyscallConn()
		}
		return nil, c.unsupported()
	}
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return controlOnly{rc}, nil
}

// errBehindRing is what a raw Read or Write on a batched conn returns.
var errBehindRing = errors.Join(errors.ErrUnsupported,
	errors.New("batchconn: reading or writing the socket directly would bypass the read ring and write queue; use the conn's methods, or Unwrap"))

// controlOnly is a syscall.RawConn that reaches the socket only to set or
// read options.
type controlOnly struct{ rc syscall.RawConn }

func (r controlOnly) Control(f func(fd uintptr)) error { return r.rc.Control(f) }
func (controlOnly) Read(func(fd uintptr) bool) error   { return errBehindRing }
func (controlOnly) Write(func(fd uintptr) bool) error  { return errBehindRing }

//go:build !linux

package main

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// rawAvailable says whether the raw modes, raw and rawgro, run here: not
// without Linux's sendmmsg, recvmmsg and UDP_GRO. The scenarios leave
// them out (withRaw, withRawGRO).
const rawAvailable = false

var errRawUnavailable = errors.New("raw modes: sendmmsg, recvmmsg and UDP_GRO are Linux's; not available here")

// rawConn stands in for raw_linux.go's; it does nothing.
type rawConn struct{}

func newRawSender(*net.UDPConn, []netip.AddrPort, int) (*rawConn, error) {
	return nil, errRawUnavailable
}

func newRawReceiver(*net.UDPConn) (*rawConn, error) { return nil, errRawUnavailable }

func newRawGROReceiver(*net.UDPConn) (*rawConn, error) { return nil, errRawUnavailable }

func (*rawConn) counts() callCounts { return callCounts{} }

func (*rawConn) send(time.Time) (uint64, error) { return 0, errRawUnavailable }

func (*rawConn) reader(*order, int) func() (uint64, error) {
	return func() (uint64, error) { return 0, errRawUnavailable }
}

func (*rawConn) groReader(*order, int) func() (uint64, error) {
	return func() (uint64, error) { return 0, errRawUnavailable }
}

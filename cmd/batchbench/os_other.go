//go:build !linux

package main

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// rawAvailable says whether the raw modes run here: not without Linux's
// sendmmsg, recvmmsg, UDP_SEGMENT and UDP_GRO. The scenarios leave them out.
const rawAvailable = false

var errRawUnavailable = errors.New("the raw modes need Linux")

type rawConn struct{ batchLoop }

func newRawConn(*net.UDPConn, int, []netip.AddrPort) (*rawConn, error) {
	return nil, errRawUnavailable
}

func newRawGROReceiver(*net.UDPConn) (*rawConn, error) { return nil, errRawUnavailable }

func (*rawConn) reader(*order, int) func() (uint64, error) { return nil }

type gsoSender struct{}

func newRawGSOSender(*net.UDPConn, int, []netip.AddrPort) (*gsoSender, error) {
	return nil, errRawUnavailable
}

func (*gsoSender) sendUntil(time.Time) (uint64, error) { return 0, errRawUnavailable }

// pinToCPU does nothing: elsewhere batchconn is plain, and its datagrams
// leave from the writer's goroutine alone.
func pinToCPU(int) error { return nil }

func pause(d time.Duration) { time.Sleep(d) }

// processCPU is not measured here.
func processCPU() (time.Duration, bool) { return 0, false }

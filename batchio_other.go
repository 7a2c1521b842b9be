//go:build !linux

package batchconn

import "net"

// newBatchIO: only Linux has recvmmsg and sendmmsg here; elsewhere the conn
// is served one datagram at a time.
func newBatchIO(*net.UDPConn, Config, *counters) (batchIO, sockInfo) { return nil, sockInfo{} }

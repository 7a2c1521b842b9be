//go:build !linux

package batchconn

import "net"

// newBatchIO: only Linux has recvmmsg and sendmmsg here; elsewhere the conn
// is served one datagram at a time.
func newBatchIO(*net.UDPConn, *settings, *counters) (rxIO, txIO, sockInfo) {
	return nil, nil, sockInfo{}
}

// msgTrunc: nothing is batched here, and ReadMsgUDP goes to the wrapped
// conn.
const (
	msgTrunc  = 0
	msgCtrunc = 0
)

// The system's headers: none where nothing is batched.
type (
	rxHeader struct{}
	txHeader struct{ arena []byte }
)

func (*rxHeader) wire([]rxMsg)            {}
func (*rxHeader) aim(int, []byte)         {}
func (*rxHeader) move(int, int)           {}
func (*rxHeader) control(int, int) []byte { return nil }
func (*txHeader) make(int, int)           {}

package main

import (
	"net"
	"net/netip"
	"time"
)

// batchLoop is the socket of a loop mode, xnet or raw: batchSize messages
// of a buffer each, moved a batch a call as a user rewriting their I/O
// would; it waits in the runtime's poller, so the deadlines hold.
type batchLoop interface {
	buf(i int) []byte         // message i's buffer
	to(i, dst int)            // addresses message i to the dst-th destination
	writeBatch() (int, error) // sends every message, in as many calls as it takes
	readBatch() (int, error)  // receives up to batchSize messages
	msg(i int) []byte         // the datagram message i received
}

// newLoop prepares uc for mode m's loop, its messages slot bytes, to send
// to dsts, or to receive if dsts is nil.
func newLoop(m mode, uc *net.UDPConn, slot int, dsts []netip.AddrPort) (batchLoop, error) {
	if m == modeXnet {
		return newXnetConn(uc, slot, dsts), nil
	}
	return newRawConn(uc, slot, dsts)
}

// sendBatches is blast for a loop: it fills the batch with copies of the
// payload, stamped and addressed in turn, sends it, and so on until end
// (looked at before each batch); it returns how many the kernel took.
func sendBatches(l batchLoop, size, ndst int, end time.Time) (uint64, error) {
	payload := make([]byte, size)
	var seq uint64
	for time.Now().Before(end) {
		for i := range batchSize {
			n := seq + uint64(i)
			copy(l.buf(i), payload)
			stamp(l.buf(i)[:size], n)
			l.to(i, int(n%uint64(ndst)))
		}
		sent, err := l.writeBatch()
		seq += uint64(sent)
		if err != nil {
			return seq, err
		}
	}
	return seq, nil
}

// batchReader is a receiver's read for a loop: one readBatch, each
// datagram checked with ord.
func batchReader(l batchLoop, ord *order, size int) func() (uint64, error) {
	return func() (uint64, error) {
		n, err := l.readBatch()
		if err != nil {
			return 0, err // x/net's count is then -1
		}
		for i := range n {
			ord.see(l.msg(i), size)
		}
		return uint64(n), nil
	}
}

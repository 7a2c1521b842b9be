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

// loopSender is blast for mode m's loop on uc, sending datagrams of size
// to dsts in turn until the end it is given.
func loopSender(m mode, uc *net.UDPConn, size int, dsts []netip.AddrPort) (func(end time.Time) (uint64, error), error) {
	if m == modeRawGSO {
		g, err := newRawGSOSender(uc, size, dsts)
		if err != nil {
			return nil, err
		}
		return g.sendUntil, nil
	}
	l, err := newLoop(m, uc, size, dsts)
	if err != nil {
		return nil, err
	}
	return func(end time.Time) (uint64, error) { return sendBatches(l, size, len(dsts), end) }, nil
}

// sendBatches is blast for a loop: it stamps each datagram in the
// caller's buffer and copies it into the next message's, as WriteTo hands
// a conn its payload to copy, addresses it in turn, sends the batch, and
// so on until end (looked at before each batch); it returns how many the
// kernel took.
func sendBatches(l batchLoop, size, ndst int, end time.Time) (uint64, error) {
	buf := make([]byte, size) // the caller's
	var seq uint64
	for time.Now().Before(end) {
		for i := range batchSize {
			n := seq + uint64(i)
			stamp(buf, n)
			copy(l.buf(i), buf)
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

// batchReader is a receiver's read for xnet: one readBatch, each
// datagram checked with ord where x/net's message holds it.
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

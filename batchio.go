package batchconn

import "net/netip"

// batchIO is the system-call layer under the read ring and the write
// queue: one call moves many datagrams. newBatchIO returns nil where the
// system or the socket cannot do that, and the conn is then served one
// datagram at a time.
type batchIO interface {
	// readBatch blocks until the kernel holds at least one datagram, then
	// receives as many as it holds, up to len(ms), into ms in arrival
	// order, setting each one's n and addr. It returns how many, or the
	// poller's error (net.ErrClosed, os.ErrDeadlineExceeded) or the
	// system call's errno. ms is the same ring on every call, but for
	// growing; it never has more than BatchSize slots.
	readBatch(ms []rxMsg) (int, error)

	// writeBatch sends the first datagrams of ms in order, blocking while
	// the socket buffer is full. It returns how many were sent. A
	// non-nil error is the poller's (the conn is closed or its write
	// deadline passed: nothing more can be sent now), or an errno for the
	// message that starts with ms[n], which was not sent: ms[n]'s own
	// failure, or that of the segmentation offload it was sent with.
	writeBatch(ms []txMsg) (int, error)

	// writeWaiting reports whether a writeBatch is waiting for room in
	// the socket buffer. Safe to call from any goroutine.
	writeWaiting() bool

	// batchLimit is how many datagrams the write queue gathers before it
	// is sent: as many as one writeBatch can carry, when they coalesce.
	batchLimit() int
}

// rxMsg is one slot of the read ring.
type rxMsg struct {
	buf  []byte // the slot's room, ReadSlotSize bytes
	n    int    // bytes received: one datagram, or several of one sender
	seg  int    // the size of each of several datagrams (UDP GRO), or 0 for one
	addr netip.AddrPort
}

// txMsg is one queued datagram.
type txMsg struct {
	buf  []byte         // the payload, a slice of the queue's arena
	addr netip.AddrPort // the destination; invalid on a connected socket
}

// sockInfo is what the write path must know of the socket to predict
// which datagrams plain would refuse at once.
type sockInfo struct {
	ipv6   bool // AF_INET6: takes IPv4 destinations as IPv4-mapped ones
	v6only bool // an IPv6 socket that cannot reach IPv4 destinations
}

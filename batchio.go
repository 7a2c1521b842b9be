package batchconn

import "net/netip"

// rxIO and txIO are the two halves of the system-call layer under the
// read ring and the write queue: one call moves many datagrams. On Linux
// one value (mmsgIO) is both; the reader uses only rxIO, the writer only
// txIO. newBatchIO returns nils where the system or the socket cannot
// batch, and the conn is then served one datagram at a time.
type rxIO interface {
	// readBatch receives what the kernel holds, up to a batch: with GRO
	// off the first datagram into p and the rest into blk's slots (blk
	// may be nil: p alone), with GRO on all into blk's slots (blk must
	// not be nil). Where the kernel holds nothing it trades blk through
	// blocks (waitBlocks), waits (res.waited), and then receives one
	// datagram: into p with GRO off, into the traded block's one slot
	// with GRO on. It returns the block that holds what it received in
	// slots, if any. The error is the poller's (net.ErrClosed,
	// os.ErrDeadlineExceeded) or the system call's errno.
	readBatch(p []byte, blk *readBlock, blocks waitBlocks) (rxResult, *readBlock, error)

	// gro reports whether the kernel coalesces received datagrams;
	// enableGRO turns that on where it may be, once a conn shows it
	// receives runs of datagrams from one sender.
	gro() groState
	enableGRO()

	// readControl makes every read call from now on take the control
	// messages the socket delivers, for a caller who reads them (r.mu
	// held); hidden names those that are the conn's own, which the
	// caller must not see (safe from any goroutine).
	readControl()
	hidden() controlHide

	// control runs a caller's function on the socket (SyscallConn's
	// Control), keeping track of which of the conn's own options the
	// caller turns on or off.
	control(f func(fd uintptr)) error

	// receiveDrops asks the kernel how many datagrams it has dropped on
	// the socket's full receive queue, over the socket's life; false
	// where it cannot tell (a closed socket).
	receiveDrops() (uint64, bool)
}

type txIO interface {
	// writeBatch sends the first datagrams of ms in order, through the
	// headers h, blocking while the socket buffer is full. It returns how
	// many were sent. A non-nil error is the poller's (the conn is closed
	// or its write deadline passed: nothing more can be sent now), or an
	// errno for the message that starts with ms[n], which was not sent:
	// ms[n]'s own failure, or that of the segmentation offload it was
	// sent with.
	writeBatch(ms []txMsg, h *txHeader) (int, error)

	// writeWaiting reports whether a writeBatch is waiting for room in
	// the socket buffer. Safe to call from any goroutine.
	writeWaiting() bool

	// batchLimit is how many datagrams the write queue gathers before it
	// is sent: as many as one writeBatch can carry, when they coalesce.
	batchLimit() int

	// segments reports whether writeBatch sends runs as segmented
	// messages (GSO).
	segments() bool

	// segmentsRun reports whether a caller's message of seg-byte
	// segments to dst (all of one length: equal) may go as one segmented
	// message: the kernel's gates and dst's route allow it.
	segmentsRun(dst netip.AddrPort, seg int, equal bool) bool

	// takesSource reports whether the kernel takes src (on ifindex, 0:
	// any) as a datagram's source: the socket received at it lately.
	takesSource(src netip.Addr, ifindex uint32) bool

	// sourceFor returns the control message that sends a datagram to
	// dst from the local address dst last wrote to, on a socket bound to
	// a wildcard address (srcaddr.go), and its length: 0 where the kernel
	// is to choose. By value, so that the caller's copy stays on its
	// stack.
	sourceFor(dst netip.AddrPort) (oob [oobSpaceDirect]byte, n int)
}

// waitBlocks is the read pool's policy, as a read call about to wait for
// the network meets it: forWait takes back the call's block (nil: none)
// and returns the one to read into after the wait, nil for the caller's
// buffer alone; gro says every datagram needs a slot.
type waitBlocks interface {
	forWait(blk *readBlock, gro bool) *readBlock
}

// groState is where a conn stands with UDP GRO.
type groState uint8

const (
	groNever groState = iota // not for this conn: turned off, refused, or slots too small
	groOff                   // off until the conn's traffic asks for it
	groOn                    // the kernel coalesces datagrams of one sender
)

// rxResult is what one read call received.
type rxResult struct {
	msgs    int            // messages received: into p and into slots
	offered int            // messages there was room for
	waited  bool           // the socket had nothing: the call waited, its block went back
	direct  bool           // the first went into p: n bytes from addr
	trunc   bool           // it was longer than p
	n       int            //
	addr    netip.AddrPort //
	ctl     []byte         // and its control data, valid until the block goes back
	ctlCut  bool           // the kernel cut that short
}

// slots is how many of the block's slots the call filled.
func (r rxResult) slots() int {
	if r.direct {
		return r.msgs - 1
	}
	return r.msgs
}

// rxMsg is one slot of the read ring.
type rxMsg struct {
	buf  []byte // the slot's room, ReadSlotSize bytes; fixed with the block
	n    int    // bytes received: one datagram, or several of one sender
	seg  int    // the size of each of several datagrams (UDP GRO), or 0 for one
	addr netip.AddrPort

	oobn   uint16 // bytes of control data received with it (rxHeader.control)
	ctlCut bool   // the kernel had more than room for
}

// txMsg is one queued datagram.
type txMsg struct {
	buf  []byte         // the payload, a slice of the queue's arena
	addr netip.AddrPort // the destination; invalid on a connected socket

	// A datagram of a caller's WriteMsgUDP (msgwrite.go): its control
	// messages, ctlLen bytes at ctl in the arena, and on the first of a
	// message cut into segments (UDP_SEGMENT), how many it makes.
	ctl    int32
	ctlLen uint8
	own    uint8  // txMessage, txSource
	run    uint16 // datagrams in the caller's message, on its first; else 0
}

// What a queued datagram carries of its caller's.
const (
	txMessage uint8 = 1 << iota // part of a caller's message: never joins another's run
	txSource                    // the caller chose its source: the conn adds none
)

// sockInfo is what the write path must know of the socket to predict
// which datagrams plain would refuse at once.
type sockInfo struct {
	ipv6   bool // AF_INET6: takes IPv4 destinations as IPv4-mapped ones
	v6only bool // an IPv6 socket that cannot reach IPv4 destinations
}

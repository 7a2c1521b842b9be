package batchconn

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
)

// Reads with control messages. The socket delivers a datagram's control
// messages (timestamps, TOS, packet info: what the caller turned on
// through SyscallConn, x/net's SetControlMessage or before New) with the
// datagram, into room beside it in the ring. A conn takes them from its
// first message read on (ReadMsgUDP, ReadMsgUDPAddrPort, ReadBatch), so
// that a caller who never reads them pays nothing for them. The conn's
// own (UDP_GRO's segment size, the packet info it turned on to choose
// reply sources) are left out unless the caller turned them on too
// (controlHide); the rest reach the caller as plain's kernel writes them.
// Every datagram of a coalesced (GRO) buffer gets the buffer's messages.

func (c *batched) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, ap, err := c.ReadMsgUDPAddrPort(b, oob)
	return n, oobn, flags, udpAddr(ap), err
}

func (c *batched) ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	mo := msgOut{oob: oob}
	n, ap, trunc, err := c.r.read(b, &mo, "recvmsg")
	if err != nil {
		// Plain returns the unspecified address of the socket's family
		// with its errors here.
		return n, 0, 0, c.s.unspecified(), err
	}
	if trunc {
		mo.flags |= msgTrunc
	}
	return n, mo.oobn, mo.flags, ap, nil
}

// unspecified is the address of the socket's family a *net.UDPConn's
// ReadMsgUDP returns with an error.
func (s *socket) unspecified() netip.AddrPort {
	if s.info.ipv6 {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
}

// ReadBatch serves x/net's batch read from the ring: the first message
// as ReadMsgUDP reads, waiting as it does, then as many as the ring holds
// already, up to len(ms).
func (c *batched) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if flags != 0 {
		return 0, c.s.opError("read", c.s.raddr, errBatchFlags)
	}
	if len(ms) == 0 {
		return 0, nil
	}
	r := &c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range ms {
		if i > 0 && (r.head >= r.n || r.s.closed.Load() || r.deadline.passed()) {
			return i, nil
		}
		if err := r.readMessage(&ms[i], i == 0); err != nil {
			return 0, err
		}
	}
	return len(ms), nil
}

// errBatchFlags is ReadBatch's and WriteBatch's answer to flags: the ring
// and the queue serve calls without them.
var errBatchFlags = errors.New("batchconn: ReadBatch and WriteBatch take no flags")

// readMessage reads the next datagram into m, as x/net fills a message:
// its buffers in order, N, the control messages (OOB, NN), Flags and the
// sender as a *net.UDPAddr. The first of a batch may refill the ring;
// the others are served from it. r.mu is held.
func (r *reader) readMessage(m *ipv4.Message, first bool) error {
	buf, scratch := readRoom(m.Buffers)
	if scratch != nil {
		defer scratchBufs.Put(scratch)
	}
	mo := msgOut{oob: m.OOB}
	var n int
	var ap netip.AddrPort
	var trunc bool
	var err error
	if first && !(r.head < r.n && !r.s.closed.Load() && !r.deadline.passed()) {
		n, ap, trunc, err = r.readSlow(buf, &mo, "recvmmsg")
		if err != nil {
			return err
		}
	} else {
		n, ap, trunc = r.next(buf, &mo)
	}
	if scratch != nil {
		n, trunc = scatter(m.Buffers, buf[:n], trunc)
	}
	m.N, m.NN, m.Flags, m.Addr = n, mo.oobn, mo.flags, udpAddr(ap)
	if trunc {
		m.Flags |= msgTrunc
	}
	return nil
}

// scatter spreads a datagram over bufs, as the kernel spreads it over a
// message's iovecs, and reports how much fitted and whether some did not.
func scatter(bufs [][]byte, d []byte, trunc bool) (int, bool) {
	n := 0
	for _, b := range bufs {
		n += copy(b, d[n:])
	}
	return n, trunc || n < len(d)
}

// readRoom returns where a message's datagram is read into: its one
// buffer, or, for several, a pooled scratch buffer (scratch not nil, to
// give back to scratchBufs) whose datagram scatter then spreads.
func readRoom(bufs [][]byte) (p []byte, scratch *[]byte) {
	switch len(bufs) {
	case 0:
		return nil, nil
	case 1:
		return bufs[0], nil
	}
	scratch = scratchBufs.Get().(*[]byte)
	return *scratch, scratch
}

var scratchBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// msgOut is where a message read puts a datagram's control messages.
type msgOut struct {
	oob   []byte // the caller's room
	oobn  int    // bytes written there
	flags int    // msgCtrunc where some did not fit
}

// take copies the control messages ctl a datagram came with, but those
// hide names, into the caller's room; cut says the kernel cut ctl short.
func (mo *msgOut) take(ctl []byte, cut bool, hide controlHide) {
	n, c := copyControl(mo.oob, ctl, wordSize, hide)
	mo.oobn, mo.flags = n, 0
	if c || cut {
		mo.flags = msgCtrunc
	}
}

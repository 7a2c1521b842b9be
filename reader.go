package batchconn

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// reader is the read ring: the datagrams one readBatch received, handed
// out one per ReadFrom. It refills only when empty, in the goroutine of the
// ReadFrom that found it empty, so that deadlines and Close reach the read
// that blocks: there is no background reader.
type reader struct {
	mu sync.Mutex // held across the refill, as plain holds its fd's read lock

	// guarded by mu
	ring []rxMsg // allocated on the first read
	head int     // the slot holding the next datagram to hand out
	off  int     // where in that slot the next datagram starts
	n    int     // slots filled by the last refill

	buffered atomic.Int32 // n - head, for writers: more requests to answer
}

// ReadFrom reads one datagram into p and returns its length and sender, as
// *net.UDPConn does: a datagram longer than p is truncated to len(p), the
// rest of it discarded, with no error; zero-length datagrams are returned
// as such. Datagrams come in the order the kernel received them.
func (c *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.bio == nil {
		return c.pc.ReadFrom(p)
	}
	n, ap, err := c.read(p)
	if err != nil {
		return n, nil, err
	}
	return n, udpAddr(ap), nil
}

// ReadFromUDP is ReadFrom returning the sender as a *net.UDPAddr, nil on
// an error, as *net.UDPConn does.
func (c *PacketConn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	if c.bio == nil {
		if uc, ok := c.pc.(*net.UDPConn); ok {
			return uc.ReadFromUDP(p)
		}
		n, addr, err := c.pc.ReadFrom(p)
		ua, _ := addr.(*net.UDPAddr)
		return n, ua, err
	}
	n, ap, err := c.read(p)
	if err != nil {
		return n, nil, err
	}
	return n, udpAddr(ap), nil
}

// ReadFromUDPAddrPort is ReadFrom returning the sender as a
// netip.AddrPort, as *net.UDPConn does; it does not allocate.
func (c *PacketConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	if c.bio == nil {
		if uc, ok := c.pc.(*net.UDPConn); ok {
			return uc.ReadFromUDPAddrPort(p)
		}
		n, addr, err := c.pc.ReadFrom(p)
		if ua, ok := addr.(*net.UDPAddr); ok && ua != nil {
			return n, ua.AddrPort(), err
		}
		return n, netip.AddrPort{}, err
	}
	return c.read(p)
}

// Read reads one datagram into p, as *net.UDPConn does: from the peer of
// a connected socket, or from anyone on one that is not. As on plain, a
// zero-length p returns at once and leaves the datagram for the next read.
func (c *PacketConn) Read(p []byte) (int, error) {
	if c.bio == nil {
		if conn, ok := c.pc.(net.Conn); ok {
			return conn.Read(p)
		}
		n, _, err := c.pc.ReadFrom(p)
		return n, err
	}
	if len(p) == 0 {
		if c.closed.Load() {
			return 0, c.opError("read", c.raddr, net.ErrClosed)
		}
		return 0, nil
	}
	n, _, err := c.readAs(p, "read")
	return n, err
}

func (c *PacketConn) read(p []byte) (int, netip.AddrPort, error) {
	return c.readAs(p, "recvfrom")
}

// readAs is read, naming the system call in errors as plain's method
// would: "recvfrom" for ReadFrom, "read" for Read.
func (c *PacketConn) readAs(p []byte, syscallName string) (int, netip.AddrPort, error) {
	r := &c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.closed.Load() {
		return 0, netip.AddrPort{}, c.opError("read", c.raddr, net.ErrClosed)
	}
	if c.readDeadline.passed() {
		return 0, netip.AddrPort{}, c.opError("read", c.raddr, os.ErrDeadlineExceeded)
	}
	if r.head == r.n {
		if err := c.refill(); err != nil {
			if e, ok := err.(syscall.Errno); ok {
				err = os.NewSyscallError(syscallName, e)
			}
			return 0, netip.AddrPort{}, c.opError("read", c.raddr, err)
		}
	}
	m := &r.ring[r.head]
	start := r.off
	end := segment(m.n, m.seg, start)
	if end >= m.n {
		r.head, r.off = r.head+1, 0
	} else {
		r.off = end
	}
	r.buffered.Store(int32(r.n - r.head))
	return copy(p, m.buf[start:end]), m.addr, nil
}

// refill receives the next batch into the empty ring, blocking until at
// least one datagram arrives; its error is the poller's or an errno.
// Whatever the write queue holds goes out first: a caller about to wait
// for the network, as a request/response loop does, must not leave its
// own request waiting for a timer.
func (c *PacketConn) refill() error {
	r := &c.r
	if c.w.queued.Load() > 0 {
		c.flush(causeRead)
	}
	if r.ring == nil {
		r.ring = growRing(nil, 1, c.cfg.ReadSlotSize)
	}
	n, err := c.bio.readBatch(r.ring)
	c.stats.readCalls.Add(1)
	r.head, r.off, r.n = 0, 0, 0
	if err != nil {
		return err
	}
	datagrams, coalesced := 0, 0
	for _, m := range r.ring[:n] {
		k := 1
		if m.seg > 0 && m.n > m.seg {
			k = (m.n + m.seg - 1) / m.seg
			coalesced += k
		}
		datagrams += k
	}
	c.stats.datagramsRead.Add(uint64(datagrams))
	if coalesced > 0 {
		c.stats.offloadReceived.Add(uint64(coalesced))
	}
	r.n = n
	if n == len(r.ring) && n < c.cfg.BatchSize {
		// The kernel had at least as many datagrams as the ring has
		// slots: more slots will pay for their memory. A conn that reads
		// a reply at a time never grows past one slot.
		r.ring = growRing(r.ring, min(2*n, c.cfg.BatchSize), c.cfg.ReadSlotSize)
	}
	return nil
}

// growRing returns ring with slots slots, adding fresh ones after those it
// has: the ring starts with one slot and doubles while the kernel fills
// it, up to BatchSize, so that memory follows the load.
func growRing(ring []rxMsg, slots, slotSize int) []rxMsg {
	added := slots - len(ring)
	mem := make([]byte, added*slotSize)
	for i := range added {
		ring = append(ring, rxMsg{buf: mem[i*slotSize : (i+1)*slotSize : (i+1)*slotSize]})
	}
	return ring
}

package batchconn

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// reader is the read ring: the datagrams one read call received, handed
// out one per ReadFrom. It refills only when empty, in the goroutine of the
// ReadFrom that found it empty, so that deadlines and Close reach the read
// that blocks: there is no background reader.
//
// A refill receives the first datagram straight into the caller's buffer,
// as plain does, and the rest, if the kernel holds more, into a block of
// slots from the process-wide pool (readpool.go), which goes back when the
// ring is drained. With GRO on, every datagram goes through a slot, which
// must have room for a coalesced 64 KiB.
type reader struct {
	s   *socket
	io  rxIO    // the receiving half of the system-call layer
	out *writer // whose queue a read sends before it waits (sendBeforeRead)

	mu sync.Mutex // held across the refill, as plain holds its fd's read lock

	// guarded by mu
	blk   *readBlock // the slots holding datagrams not yet handed out; nil when drained
	head  int        // the slot holding the next datagram to hand out
	off   int        // where in that slot the next datagram starts
	n     int        // slots filled by the last refill
	want  int        // slots the next refill offers: grows while the kernel fills them all
	pool  *readPool  // where blocks come from: the pool for ReadSlotSize
	under int32      // reads in a row that filled less than a quarter of what they offered

	buffered atomic.Bool // the ring holds datagrams: see waiting; beside under, so that a conn stays in its size class
	deadline deadline    // the read deadline, for datagrams served from the ring
}

func (c *batched) ReadFrom(p []byte) (int, net.Addr, error) {
	n, ap, _, err := c.r.read(p, nil, "recvfrom")
	if err != nil {
		return n, nil, err
	}
	return n, udpAddr(ap), nil
}

func (c *batched) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	n, ap, _, err := c.r.read(p, nil, "recvfrom")
	if err != nil {
		return n, nil, err
	}
	return n, udpAddr(ap), nil
}

func (c *batched) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	n, ap, _, err := c.r.read(p, nil, "recvfrom")
	return n, ap, err
}

func (c *batched) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if c.s.closed.Load() {
			return 0, c.s.opError("read", c.s.raddr, net.ErrClosed)
		}
		return 0, nil
	}
	n, _, _, err := c.r.read(p, nil, "read")
	return n, err
}

// waiting reports whether the ring holds datagrams still to hand out: for
// the writer, requests still to answer. Safe to call from any goroutine.
// It changes only when a refill fills the ring and when the ring is
// drained, not at every datagram handed out.
func (r *reader) waiting() bool { return r.buffered.Load() }

// read hands out the ring's next datagram, refilling an empty ring first,
// and reports whether the datagram was longer than p; a message read
// (mo not nil) gets its control messages too. syscallName is the system
// call plain's method would name in its errors: "recvfrom" for ReadFrom,
// "read" for Read, "recvmsg" for ReadMsgUDP.
func (r *reader) read(p []byte, mo *msgOut, syscallName string) (int, netip.AddrPort, bool, error) {
	r.mu.Lock()
	if r.head < r.n && !r.s.closed.Load() && !r.deadline.passed() {
		n, addr, trunc := r.next(p, mo)
		r.mu.Unlock()
		return n, addr, trunc, nil
	}
	defer r.mu.Unlock()
	return r.readSlow(p, mo, syscallName)
}

// readSlow is read where the ring cannot serve at once: a closed conn, a
// passed deadline, an empty ring. r.mu is held.
func (r *reader) readSlow(p []byte, mo *msgOut, syscallName string) (int, netip.AddrPort, bool, error) {
	s := r.s
	if s.closed.Load() {
		return 0, netip.AddrPort{}, false, s.opError("read", s.raddr, net.ErrClosed)
	}
	if r.head < r.n {
		// The ring holds datagrams, and the deadline has passed; an empty
		// ring is refilled through the poller, which tests plain's own
		// deadline.
		return 0, netip.AddrPort{}, false, s.opError("read", s.raddr, os.ErrDeadlineExceeded)
	}
	if s.plainReads.Load() {
		return r.readPlain(p, mo, syscallName)
	}
	if mo != nil {
		r.io.readControl() // from this refill on
	}
	res, err := r.refill(p, mo)
	if callRefused(err) {
		// recvmmsg is missing, or a seccomp filter refuses it: plain's
		// recvfrom reads this datagram and every one after it.
		s.refuseBatchCalls(recvRefused)
		return r.readPlain(p, mo, syscallName)
	}
	if err != nil {
		if e, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError(syscallName, e)
		}
		return 0, netip.AddrPort{}, false, s.opError("read", s.raddr, err)
	}
	if res.direct {
		return res.n, res.addr, res.trunc, nil
	}
	n, addr, trunc := r.next(p, mo)
	return n, addr, trunc, nil
}

// next copies the ring's next datagram into p, and its control messages
// into mo where it is not nil; the ring holds one. r.mu is held.
func (r *reader) next(p []byte, mo *msgOut) (int, netip.AddrPort, bool) {
	slot := r.head
	m := &r.blk.ring[slot]
	start := r.off
	end := segment(m.n, m.seg, start)
	if end >= m.n {
		r.head, r.off = r.head+1, 0
	} else {
		r.off = end
	}
	n, addr := copyUnseen(p, m.buf[start:end]), m.addr
	if mo != nil {
		mo.take(r.blk.hdrs.control(slot, int(m.oobn)), m.ctlCut, r.io.hidden())
	}
	if r.head == r.n {
		r.release()
		r.buffered.Store(false)
	}
	return n, addr, end-start > len(p)
}

// readPlain reads one datagram through plain, for a conn whose kernel
// refuses batch calls; r.mu is held.
func (r *reader) readPlain(p []byte, mo *msgOut, syscallName string) (int, netip.AddrPort, bool, error) {
	uc := r.s.uc
	switch {
	case mo != nil:
		n, oobn, flags, addr, err := uc.ReadMsgUDPAddrPort(p, mo.oob)
		mo.take(mo.oob[:oobn], flags&msgCtrunc != 0, r.io.hidden()) // in place: it only drops and cuts
		return n, addr, flags&msgTrunc != 0, err
	case syscallName == "read":
		n, err := uc.Read(p)
		return n, netip.AddrPort{}, false, err
	}
	n, addr, err := uc.ReadFromUDPAddrPort(p)
	return n, addr, false, err
}

// refill receives the next datagrams, blocking until at least one
// arrives; its error is the poller's or an errno. The first may go
// straight into p (res.direct); the rest are in the ring, r.n slots.
// Whatever the write queue holds goes out first: a caller about to wait
// for the network, as a request/response loop does, must not leave its
// own request waiting for a timer. r.mu is held.
func (r *reader) refill(p []byte, mo *msgOut) (rxResult, error) {
	r.out.sendBeforeRead()
	cfg := &r.s.cfg
	if r.pool == nil {
		r.pool = readPoolFor(cfg.ReadSlotSize)
	}
	r.head, r.off, r.n = 0, 0, 0
	for {
		gro := r.io.gro() == groOn
		// Ask for as many datagrams as the last reads found waiting.
		// Without GRO the first goes into p; with it each needs a slot.
		var blk *readBlock
		if slots := r.want; gro || slots > 0 && cfg.BatchSize > 1 {
			blk = r.pool.get(max(slots, 1), gro)
		}
		res, blk, err := r.io.readBatch(p, blk, r)
		if err == nil && res.msgs == 0 {
			// Every buffer was discarded (ReadDiscards): read again.
			if blk != nil {
				r.pool.put(blk)
			}
			continue
		}
		if res.direct && mo != nil {
			mo.take(res.ctl, res.ctlCut, r.io.hidden()) // before the block can go back
		}
		if !res.waited && err == nil {
			r.learn(res, blk)
		}
		r.s.stats.readCalls.Add(1)
		if err != nil || res.slots() == 0 {
			if blk != nil {
				r.pool.put(blk)
			}
			if err != nil {
				return rxResult{}, err
			}
		} else {
			r.blk, r.n = blk, res.slots()
		}
		if r.countRead(res) > 2*r.n {
			r.want = min(r.want, groRunSlots)
		}
		r.buffered.Store(r.n > 0)
		return res, nil
	}
}

// learn adapts the next refill to what this one, which did not wait,
// found: a read that filled every message it offered says the kernel held
// more, so the next offers twice as many, up to BatchSize; after eight in
// a row that filled less than a quarter, the next offers half (sizes that
// changed often would leave blocks of every size in the pool). And a read
// that brought two datagrams in a row from one sender is the evidence that
// turns GRO on: a conn that reads a reply at a time never pays for it.
func (r *reader) learn(res rxResult, blk *readBlock) {
	switch {
	case res.msgs == res.offered:
		r.want = min(max(2*r.want, 1), r.s.cfg.BatchSize)
		r.under = 0
	case 4*res.msgs >= res.offered:
		r.under = 0
	case r.under < 7:
		r.under++
	default:
		r.want /= 2
		r.under = 0
	}
	if res.msgs < 2 || r.io.gro() != groOff {
		return
	}
	prev := res.addr
	for i, m := range blk.ring[:res.slots()] {
		if (i > 0 || res.direct) && m.addr == prev {
			r.io.enableGRO()
			return
		}
		prev = m.addr
	}
}

// groRunSlots is the most slots a refill offers while the kernel hands
// over coalesced runs (more than two datagrams a slot): 8 of 64 KiB, which
// hold 400 datagrams of 1200 B and stay in the CPU's cache between the
// kernel's copy into them and ReadFrom's copy out, where 64 such slots
// (4 MiB) would not; it also bounds what one conn takes from the read
// pool.
const groRunSlots = 8

// countRead counts what a refill received, coalesced datagrams one by
// one, and returns how many came coalesced.
func (r *reader) countRead(res rxResult) int {
	datagrams, coalesced := 0, 0
	if res.direct {
		datagrams++
	}
	if r.n > 0 {
		for _, m := range r.blk.ring[:r.n] {
			k := 1
			if m.seg > 0 && m.n > m.seg {
				k = (m.n + m.seg - 1) / m.seg
				coalesced += k
			}
			datagrams += k
		}
	}
	stats := &r.s.stats
	stats.datagramsRead.Add(uint64(datagrams))
	if coalesced > 0 {
		stats.offloadReceived.Add(uint64(coalesced))
	}
	return coalesced
}

// forWait gives a read call's block back to the pool as the call is
// about to wait for the network, so that a waiting conn holds no slots,
// and takes the block it reads into after the wait: none (the caller's
// buffer) without GRO, one slot with GRO on, which may bring a
// coalesced 64 KiB. r.mu is held.
func (r *reader) forWait(blk *readBlock, gro bool) *readBlock {
	if blk != nil {
		r.pool.put(blk)
	}
	if gro {
		return r.pool.get(1, true)
	}
	return nil
}

// release gives the drained ring's slots back to the pool; r.mu is held.
func (r *reader) release() {
	if r.blk != nil {
		r.pool.put(r.blk)
		r.blk = nil
	}
	r.head, r.off, r.n = 0, 0, 0
}

// noteDrops records the kernel's count of receive-queue drops as it
// stands, for Stats.
func (r *reader) noteDrops() {
	if d, ok := r.io.receiveDrops(); ok {
		r.s.stats.noteDrops(d)
	}
}

// close gives the slots of datagrams nobody will read back to the pool,
// once the reader, woken by the closed socket, lets go; the read deadline
// needs no timer any more.
func (r *reader) close() {
	r.mu.Lock()
	r.release()
	r.mu.Unlock()
	r.deadline.stop()
}

// udpAddr converts a received address to the *net.UDPAddr plain returns:
// a 4-byte IP from an IPv4 socket, a 16-byte one from an IPv6 socket. The
// address and its IP come in one allocation, where plain makes two.
func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	box := new(struct {
		a  net.UDPAddr
		ip [16]byte
	})
	ip := ap.Addr()
	if ip.Is4() {
		*(*[4]byte)(box.ip[:4]) = ip.As4()
		box.a.IP = box.ip[:4]
	} else {
		box.ip = ip.As16()
		box.a.IP = box.ip[:]
		box.a.Zone = ip.Zone()
	}
	box.a.Port = int(ap.Port())
	return &box.a
}

package batchconn

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// When the queue goes out. Each is counted in Stats.
type flushCause int

const (
	causeFull     flushCause = iota // the queue holds a full batch, or no room for the next datagram
	causeTimer                      // the oldest queued datagram waited MaxDelay
	causeRead                       // a ReadFrom is about to wait for the network
	causeExplicit                   // Flush, or a datagram that goes through plain
	causeClose                      // Close
)

// Flush sends every queued datagram, blocking while the socket buffer is
// full, until the write deadline. It returns the first failure since the
// last Flush or Close: a queued datagram the kernel refused (the others
// were sent), or the deadline or a closed conn that stopped this send
// (what it did not send stays queued).
func (c *PacketConn) Flush() error {
	if c.bio == nil {
		return nil
	}
	w := &c.w
	w.lockForCaller()
	defer w.mu.Unlock()
	if c.closed.Load() {
		return c.opError("write", nil, net.ErrClosed)
	}
	if err := c.flushLocked(causeExplicit); err != nil {
		return c.opError("write", nil, unwrapRaw(err))
	}
	err := w.failed
	w.failed = nil
	return err
}

// flush sends the queue on behalf of a caller that does not wait for the
// outcome: a failure stays recorded for Flush and Close.
func (c *PacketConn) flush(cause flushCause) {
	c.w.mu.Lock()
	c.flushInBackground(cause)
	c.w.mu.Unlock()
}

// flushInBackground sends the queue for the timer or a read: no caller
// waits on this send, so that Close waits for it rather than cutting it
// short (see lockForClose). w.mu is held.
func (c *PacketConn) flushInBackground(cause flushCause) {
	if c.closed.Load() {
		return
	}
	c.w.background.Store(true)
	c.flushLocked(cause)
	c.w.background.Store(false)
}

// flushLocked sends the queue, in order, with as few system calls as the
// kernel allows. A datagram the kernel refuses is tried once more (the
// error may have been a pending one of the socket's, such as an ICMP
// port unreachable, and not this datagram's), then counted, recorded and
// skipped; the rest still go. The returned error is the poller's (closed,
// deadline): then what was not sent stays queued, in order. w.mu is held.
func (c *PacketConn) flushLocked(cause flushCause) error {
	w := &c.w
	if len(w.msgs) == 0 {
		return nil
	}
	c.stats.flushes[cause].Add(1)
	if cause == causeTimer && w.afterSend && len(w.msgs) <= 2 {
		w.eager = eagerRun
	}
	pending := w.msgs
	if c.cfg.GroupByDestination && c.bio.segments() {
		pending = groupByDestination(pending, &w.blk.fan) // fanout.go
	}
	retried := false
	for len(pending) > 0 {
		n, err := c.send(pending)
		c.stats.writeCalls.Add(1)
		c.stats.datagramsWritten.Add(uint64(n))
		pending = pending[n:]
		if n == 0 && err == nil {
			err = io.ErrNoProgress // never seen; must not spin
		}
		switch {
		case err == nil:
			retried = false
		case connError(err):
			w.msgs = w.msgs[:copy(w.msgs, pending)]
			w.runs = len(w.msgs) // at most: full sends them again soon
			w.queued.Store(int32(len(w.msgs)))
			return err
		case !retried:
			retried = true
		default:
			c.stats.writeFailures.Add(1)
			if w.failed == nil {
				w.failed = c.sendError(&pending[0], err)
			}
			pending = pending[1:]
			retried = false
		}
	}
	w.empty()
	w.lastSend = monoNow()
	return nil
}

// send sends the first datagrams of ms, as writeBatch does, in one batch
// call, or one by one through plain where the kernel refuses batch calls.
// w.mu is held.
func (c *PacketConn) send(ms []txMsg) (int, error) {
	if !c.plainWrites.Load() {
		n, err := c.bio.writeBatch(ms, &c.w.blk.hdrs)
		if n > 0 || !callRefused(err) {
			return n, err
		}
		// ENOSYS: the kernel lacks sendmmsg. EPERM: a seccomp filter
		// refuses it, or a firewall rule this datagram; plain tells which.
		if err != syscall.ENOSYS {
			if _, perr := c.sendPlain(&ms[0]); perr != nil {
				return 0, err // the datagram's
			}
			c.refuseBatchCalls(sendRefused)
			return 1, nil
		}
		c.refuseBatchCalls(sendRefused)
	}
	for i := range ms {
		if _, err := c.sendPlain(&ms[i]); err != nil {
			c.stats.writeCalls.Add(uint64(i))
			err = unwrapRaw(err)
			if se, ok := err.(*os.SyscallError); ok {
				err = se.Err
			}
			return i, err
		}
	}
	c.stats.writeCalls.Add(uint64(len(ms) - 1))
	return len(ms), nil
}

// sendPlain sends one queued datagram through plain.
func (c *PacketConn) sendPlain(m *txMsg) (int, error) {
	if c.raddr != nil {
		return c.uc.Write(m.buf)
	}
	return c.uc.WriteToUDPAddrPort(m.buf, m.addr)
}

// empty drops what the queue holds and gives its block back; w.mu is
// held.
func (w *writer) empty() {
	w.afterSend = false
	if w.blk != nil {
		w.pool.Put(w.blk)
		w.blk = nil
	}
	w.msgs = nil
	w.used, w.runs = 0, 0
	w.queued.Store(0)
}

// arm makes sure the timer will fire for the datagram that entered the
// empty queue. A timer already pending is left alone, even when the queue
// it was set for has gone out since: onTimer looks at the queue as it is.
// Setting a timer costs more than a datagram, so a conn whose queue fills
// and empties all the time sets one at most every MaxDelay. w.mu is held.
func (w *writer) arm(c *PacketConn) {
	w.lastArm = monoNow()
	t := w.timer.Load()
	if t == nil { // the first queued datagram, or the first since the timer retired
		t = &timerBox{newFlushTimer(c.onTimer)}
		w.timer.Store(t)
		watchTimer(c)
		w.armed.Store(true)
		t.reset(c.cfg.MaxDelay)
		return
	}
	if w.armed.CompareAndSwap(false, true) {
		t.reset(c.cfg.MaxDelay)
	}
}

// timerBox holds a flushTimer for an atomic.Pointer.
type timerBox struct{ flushTimer }

// rearm fires the timer now after a deadline change, for datagrams that a
// passed deadline held back and that nothing else would send. Like
// plain's, it does not wait for a write that is blocked: it takes no lock.
func (w *writer) rearm() {
	if t := w.timer.Load(); t != nil && w.queued.Load() > 0 {
		w.due.Store(true)
		w.armed.Store(true)
		t.reset(0)
	}
}

// onTimer sends the queue once its oldest datagram has waited MaxDelay,
// and sets the timer again for a queue younger than that. It decides
// without the lock where it can: a writer in a loop holds it often, and
// a timer that finds nothing to do must not slow it down.
func (c *PacketConn) onTimer() {
	w := &c.w
	w.armed.Store(false)
	// Clear, then look: a writer queues, then looks at armed; one of the
	// two sees the other (the atomics are sequentially consistent).
	if w.queued.Load() == 0 {
		return
	}
	wait := int64(c.cfg.MaxDelay) - (monoNow() - w.oldest.Load())
	if w.due.Swap(false) {
		wait = 0
	}
	if wait > 0 {
		if w.armed.CompareAndSwap(false, true) {
			if t := w.timer.Load(); t != nil {
				t.reset(time.Duration(wait))
			} else {
				w.armed.Store(false) // retired meanwhile: the next queued datagram makes a new one
			}
		}
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c.flushInBackground(causeTimer)
}

// counters are the conn's statistics, updated once per system call, not
// per datagram.
type counters struct {
	datagramsRead    atomic.Uint64
	readCalls        atomic.Uint64
	datagramsWritten atomic.Uint64
	writeCalls       atomic.Uint64
	writeFailures    atomic.Uint64
	offloadFallbacks atomic.Uint64
	offloadSent      atomic.Uint64
	offloadReceived  atomic.Uint64
	receiveDrops     atomic.Uint64
	readDiscards     atomic.Uint64
	flushIdle        atomic.Uint64
	flushes          [causeClose + 1]atomic.Uint64
}

// Stats is a snapshot of a conn's counters since New.
type Stats struct {
	DatagramsRead uint64 // datagrams received from the kernel into the ring
	ReadCalls     uint64 // system calls that received them, failed ones included

	DatagramsWritten uint64 // datagrams the kernel accepted
	WriteCalls       uint64 // system calls that sent them, failed ones included
	WriteFailures    uint64 // queued datagrams the kernel refused, or Close dropped
	OffloadFallbacks uint64 // times the kernel refused segmentation offload, which then went off
	OffloadSent      uint64 // datagrams sent as segments of a larger message (GSO)
	OffloadReceived  uint64 // datagrams received coalesced with others (GRO)

	// ReceiveDrops is the kernel's count of datagrams it dropped because
	// the socket's receive queue was full, over the socket's whole life
	// (SO_RXQ_OVFL): what /proc/net/udp shows for the socket, as of the
	// last datagram read after a drop. It is asked for once the conn
	// finds datagrams waiting, and is 0 until the kernel drops one.
	ReceiveDrops uint64
	// ReadDiscards counts received buffers discarded because the kernel
	// cut their control data short (MSG_CTRUNC) while GRO was on, so that
	// the datagrams in them could not be told apart. The control room
	// (256 bytes a message) holds every option a socket can turn on; a
	// non-zero count is a bug to report.
	ReadDiscards uint64

	// Why datagrams left: sent alone at once on an idle conn (Idle), or
	// as a queue that was full, whose oldest datagram waited MaxDelay, that a
	// ReadFrom sent before waiting, that Flush or a datagram plain had to
	// handle sent, or that Close sent.
	FlushIdle, FlushFull, FlushTimer, FlushRead, FlushExplicit, FlushClose uint64
}

// Stats returns the conn's counters. A conn served one datagram at a time
// counts nothing.
func (c *PacketConn) Stats() Stats {
	s := &c.stats
	return Stats{
		DatagramsRead:    s.datagramsRead.Load(),
		ReadCalls:        s.readCalls.Load(),
		DatagramsWritten: s.datagramsWritten.Load(),
		WriteCalls:       s.writeCalls.Load(),
		WriteFailures:    s.writeFailures.Load(),
		OffloadFallbacks: s.offloadFallbacks.Load(),
		OffloadSent:      s.offloadSent.Load(),
		OffloadReceived:  s.offloadReceived.Load(),
		ReceiveDrops:     s.receiveDrops.Load(),
		ReadDiscards:     s.readDiscards.Load(),
		FlushIdle:        s.flushIdle.Load(),
		FlushFull:        s.flushes[causeFull].Load(),
		FlushTimer:       s.flushes[causeTimer].Load(),
		FlushRead:        s.flushes[causeRead].Load(),
		FlushExplicit:    s.flushes[causeExplicit].Load(),
		FlushClose:       s.flushes[causeClose].Load(),
	}
}

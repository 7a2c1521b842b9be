package batchconn

import (
	"io"
	"net"
	"os"
	"syscall"
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
func (c *batched) Flush() error {
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
func (c *batched) flush(cause flushCause) {
	c.w.mu.Lock()
	c.flushInBackground(cause)
	c.w.mu.Unlock()
}

// flushInBackground sends the queue for the timer or a read: no caller
// waits on this send, so that Close waits for it rather than cutting it
// short (see lockForClose). w.mu is held.
func (c *batched) flushInBackground(cause flushCause) {
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
func (c *batched) flushLocked(cause flushCause) error {
	w := &c.w
	if len(w.msgs) == 0 {
		return nil
	}
	c.stats.flushes[cause].Add(1)
	if cause == causeTimer && w.afterSend && len(w.msgs) <= 2 {
		w.eager = eagerRun
	}
	pending := w.msgs
	w.widen(&c.cfg)
	if w.grouped {
		pending = w.blk.fan.arrange(pending)
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
			w.grouped = false    // what is left goes as it is, grouped or not
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
func (c *batched) send(ms []txMsg) (int, error) {
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
func (c *batched) sendPlain(m *txMsg) (int, error) {
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
		w.blk.home.Put(w.blk)
		w.blk = nil
	}
	w.msgs = nil
	w.used, w.runs = 0, 0
	w.queued.Store(0)
}

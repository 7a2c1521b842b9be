package batchconn

import (
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
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

func (c *batched) Flush() error { return c.w.flushForCaller() }

// flushForCaller is Flush: it sends the queue and reports the first
// failure since the last Flush or Close.
func (w *writer) flushForCaller() error {
	s := w.s
	w.lockForCaller()
	defer w.mu.Unlock()
	if s.closed.Load() {
		return s.opError("write", nil, net.ErrClosed)
	}
	if err := w.flushLocked(causeExplicit); err != nil {
		return s.opError("write", nil, unwrapRaw(err))
	}
	err := w.failed
	w.failed = nil
	return err
}

// sendBeforeRead sends the queue for a read about to wait for the
// network, if it holds anything; a failure stays recorded for Flush and
// Close. The reader's lock is held (reader.mu before writer.mu).
func (w *writer) sendBeforeRead() {
	if w.queued.Load() == 0 {
		return
	}
	w.mu.Lock()
	w.flushInBackground(causeRead)
	w.mu.Unlock()
}

// flushInBackground sends the queue for the timer or a read: no caller
// waits on this send, so that Close waits for it rather than cutting it
// short (see lockForClose). w.mu is held.
func (w *writer) flushInBackground(cause flushCause) {
	if w.s.closed.Load() {
		return
	}
	w.background.Store(true)
	w.flushLocked(cause)
	w.background.Store(false)
}

// flushLocked sends the queue, in order, with as few system calls as the
// kernel allows. A datagram the kernel refuses is tried once more (the
// error may have been a pending one of the socket's, such as an ICMP
// port unreachable, and not this datagram's), then counted, recorded and
// skipped; the rest still go. The returned error is the poller's (closed,
// deadline): then what was not sent stays queued, in order. w.mu is held.
func (w *writer) flushLocked(cause flushCause) error {
	if len(w.msgs) == 0 {
		return nil
	}
	stats := &w.s.stats
	stats.flushes[cause].Add(1)
	pending := w.msgs
	w.widen(&w.s.cfg)
	if w.grouped {
		pending = w.blk.fan.arrange(pending)
	}
	retried := false
	for len(pending) > 0 {
		n, err := w.send(pending)
		stats.writeCalls.Add(1)
		stats.datagramsWritten.Add(uint64(n))
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
			stats.writeFailures.Add(1)
			if w.failed == nil {
				w.failed = w.s.sendError(&pending[0], err)
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
func (w *writer) send(ms []txMsg) (int, error) {
	s := w.s
	if !s.plainWrites.Load() {
		n, err := w.io.writeBatch(ms, &w.blk.hdrs)
		if n > 0 || !callRefused(err) {
			return n, err
		}
		// ENOSYS: the kernel lacks sendmmsg. EPERM: a seccomp filter
		// refuses it, or a firewall rule this datagram; plain tells which.
		if err != syscall.ENOSYS {
			if _, perr := s.sendPlain(&ms[0], w.blk.arena); perr != nil {
				return 0, err // the datagram's
			}
			s.refuseBatchCalls(sendRefused)
			return 1, nil
		}
		s.refuseBatchCalls(sendRefused)
	}
	for i := range ms {
		if _, err := s.sendPlain(&ms[i], w.blk.arena); err != nil {
			s.stats.writeCalls.Add(uint64(i))
			err = unwrapRaw(err)
			if se, ok := err.(*os.SyscallError); ok {
				err = se.Err
			}
			return i, err
		}
	}
	s.stats.writeCalls.Add(uint64(len(ms) - 1))
	return len(ms), nil
}

// sendPlain sends one queued datagram through plain, with its caller's
// control messages, which are in arena.
func (s *socket) sendPlain(m *txMsg, arena []byte) (int, error) {
	if m.own != 0 {
		ctl, to := arena[m.ctl:int(m.ctl)+int(m.ctlLen)], m.addr
		if s.raddr != nil {
			to = netip.AddrPort{} // the peer's, as plain takes it
		}
		n, _, err := s.uc.WriteMsgUDPAddrPort(m.buf, ctl, to)
		return n, err
	}
	if s.raddr != nil {
		return s.uc.Write(m.buf)
	}
	return s.uc.WriteToUDPAddrPort(m.buf, m.addr)
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

// close is the writer's part of Close: it sends the queue, records the
// kernel's drop count as it stands (the reader's, reader.noteDrops),
// marks the conn closed, closes the socket and retires the timer.
func (w *writer) close() error {
	s := w.s
	early := w.lockForClose()
	defer w.mu.Unlock()
	if s.closed.Load() {
		return s.uc.Close()
	}
	err := w.flushLocked(causeClose)
	if err != nil {
		err = s.opError("write", nil, unwrapRaw(err))
	} else {
		err, w.failed = w.failed, nil
	}
	if n := len(w.msgs); n > 0 {
		// The final flush was cut short (a passed write deadline): what it
		// could not send is lost, and counted.
		s.stats.writeFailures.Add(uint64(n))
		w.empty()
	}
	w.in.noteDrops()
	s.closed.Store(true)
	w.deadline.stop()
	if cerr := s.uc.Close(); err == nil && !early {
		err = cerr
	}
	if t := w.timer.Load(); t != nil {
		unwatchTimer(w)
		t.stop()
		w.mu.Unlock()
		t.wait() // its function takes w.mu
		w.mu.Lock()
	}
	return err
}

// lockForClose takes the writer's lock for Close. Whoever holds it (a
// writer, the timer, a read sending the queue) normally lets go at once;
// but a send that waits for room in a full socket buffer can hold it for
// as long as the network takes to drain.
//
// Where a caller waits (a WriteTo that must send the full queue before
// its own datagram fits, a Flush, a datagram in plain's hands, or one
// of them waiting for the lock behind the timer's send), Close
// closes the socket first, as plain's Close wakes a blocked WriteTo at
// once: the waiting send fails with net.ErrClosed, and what the queue
// could not send is counted and reported (a datagram in plain's hands
// was never accepted: its WriteTo fails, as on plain). Where nobody waits
// but the timer or a read sending the queue, every datagram queued was
// accepted, as plain's kernel holds datagrams its sendto took: Close waits
// for them to go, up to the write deadline. It reports whether it closed
// the socket first.
//
// Which of the two it is, only the lock's holder knows: hence the three
// flags that exist for Close alone (plainSending, background,
// callersWait), and a loop that polls them, since the holder may be
// blocked in the kernel, where no handshake reaches it.
func (w *writer) lockForClose() (early bool) {
	for !w.mu.TryLock() {
		if w.plainSending.Load() || w.io.writeWaiting() && (!w.background.Load() || w.callersWait.Load() > 0) {
			w.s.uc.Close()
			w.mu.Lock()
			return true
		}
		if w.io.writeWaiting() {
			time.Sleep(50 * time.Microsecond) // the network sets the pace
			continue
		}
		runtime.Gosched()
	}
	return false
}

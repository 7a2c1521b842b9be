package batchconn

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
)

// writer is the write queue: datagrams accepted by WriteTo and not yet
// handed to the kernel, payloads back to back in one arena.
type writer struct {
	s  *socket
	io txIO    // the sending half of the system-call layer
	in *reader // whose waiting requests say more answers are coming

	mu sync.Mutex // held while the queue is sent, as plain holds its fd's write lock

	// guarded by mu
	blk       *writeBlock // room for the queue, from a pool while it holds datagrams (writepool.go)
	used      int         // bytes of blk.arena in use
	msgs      []txMsg     // queued datagrams, in WriteTo order, in blk
	runs      int         // about the messages msgs make when sent: see push
	runSeg    int         // the size of the last run's datagrams
	lastSend  int64       // monoNow at the end of the last send, queued or direct
	lastArm   int64       // monoNow when a datagram last entered the empty queue
	eager     int         // datagrams still to send at once though a send just ended (eagerRun)
	afterSend bool        // the queue began because a send had just ended, not for a full queue or requests in the ring
	grouped   bool        // the queue is grouped by destination as it fills (blk.fan, fanout.go)
	wide      bool        // the next queue takes a fan-out block (writepool.go)
	failed    error       // first flush-time failure not yet reported by Flush or Close

	// Read without mu by readers, the timer and deadline setters.
	timer  atomic.Pointer[timerBox] // set by the first queued datagram
	queued atomic.Int32             // len(msgs)
	oldest atomic.Int64             // monoNow when the oldest queued datagram was queued
	armed  atomic.Bool              // the timer will fire
	due    atomic.Bool              // the timer must send the queue, whatever its age

	plainSending atomic.Bool  // a datagram is in plain's hands, with mu held
	background   atomic.Bool  // the timer or a read holds mu, sending the queue: no caller waits on it
	callersWait  atomic.Int32 // callers waiting for mu
	deadline     deadline     // the write deadline, for queued datagrams
}

func (c *batched) WriteTo(p []byte, addr net.Addr) (int, error) {
	d := dest{via: viaWriteTo, addr: addr}
	ua, _ := addr.(*net.UDPAddr)
	ap, ok := c.s.queueable(ua, len(p))
	if !ok {
		return c.w.writePlain(p, &d, nil)
	}
	d.ap = ap
	return c.w.write(p, &d, nil)
}

func (c *batched) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) {
	return c.WriteTo(p, addr)
}

func (c *batched) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	d := dest{via: viaWriteToUDPAddrPort, ap: addr}
	if !c.s.queueableAddrPort(addr, len(p)) {
		return c.w.writePlain(p, &d, nil)
	}
	return c.w.write(p, &d, nil)
}

func (c *batched) Write(p []byte) (int, error) {
	d := dest{via: viaWrite, ap: c.s.peer}
	if !c.s.peer.IsValid() || len(p) > payloadLimit(c.s.peer) {
		return c.w.writePlain(p, &d, nil)
	}
	return c.w.write(p, &d, nil)
}

// write queues p for d (with the caller's control messages m, where it
// is a WriteMsgUDP), or sends it at once where waiting buys nothing.
func (w *writer) write(p []byte, d *dest, m *callerMsg) (int, error) {
	s := w.s
	cfg := &s.cfg
	// The time of the call, read before waiting for the lock: a writer
	// that waited while another sent is not idle.
	var now int64
	if w.queued.Load() == 0 {
		now = monoNow()
	}
	w.lockForCaller()
	defer w.mu.Unlock()
	if s.closed.Load() || s.plainWrites.Load() {
		return w.writePlainLocked(p, d, m)
	}
	if len(w.msgs) == 0 {
		// Nothing queued. Unless more datagrams are on their way (the
		// last send ended moments ago, or is still going, as in a loop,
		// or the ring holds requests still to answer, and answers come
		// faster than MaxDelay), waiting gains nothing: send now, in this
		// goroutine, exactly as plain would (and through the poller,
		// which tests plain's own deadline).
		var since int64
		recent := now == 0 // the queue held datagrams as this call began: another goroutine sent them meanwhile
		if recent {
			now = monoNow()
		} else {
			since = now - w.lastSend
			recent = since < int64(cfg.idleGap)
		}
		requests := w.in.waiting()
		if recent && w.eager > 0 && !requests {
			recent = false // recent sends were not a loop's: see eagerRun
			w.eager--
		}
		if cfg.BatchSize == 1 || !recent && (!requests || since >= int64(cfg.MaxDelay)) {
			n, err := w.sendNow(p, d, m, true)
			w.lastSend = monoNow()
			return n, err
		}
		w.afterSend = recent
	}
	if w.deadline.passed() {
		return w.writePlainLocked(p, d, m)
	}
	limit := w.io.batchLimit()
	size, count := len(p), 1 // arena bytes and queue entries it takes
	if m != nil {
		size, count = len(p)+m.sc.ctlLen, m.count
		if count > limit { // more segments than a queue holds: plain cuts them
			return w.writePlainLocked(p, d, m)
		}
	}
	if len(w.msgs)+count > limit || w.runs >= cfg.BatchSize || w.blk != nil && w.used+size > len(w.blk.arena) {
		if err := w.flushLocked(causeFull); err != nil {
			return 0, s.opError("write", s.errAddr(d, m), unwrapRaw(err))
		}
	}
	if w.blk == nil {
		w.take(cfg)
		w.grouped = !cfg.StrictOrder && w.io.segments()
	}
	if m != nil {
		w.pushMsg(p, d, m)
	} else {
		w.push(p, d.ap)
	}
	if len(w.msgs) == count {
		if now == 0 { // the queue was full, not empty, when this call began
			now = monoNow()
		}
		w.oldest.Store(now)
		w.arm()
	}
	switch {
	case w.full(limit, cfg):
		// A full batch leaves now. If it cannot (a passed deadline), p
		// stays queued and was accepted: this WriteTo still succeeds.
		w.flushLocked(causeFull)
	case w.ageDue() && monoNow()-w.oldest.Load() >= int64(cfg.MaxDelay):
		// A writer too slow to fill a batch within MaxDelay sends it
		// itself, sparing the timer's goroutine the lock it holds, and not
		// relying on it: where every CPU the process has is busy, the
		// timer's goroutine waits for the scheduler to preempt one, up to
		// tens of milliseconds (BenchmarkQueueWaitUnderContention).
		w.flushLocked(causeTimer)
	}
	return len(p), nil
}

// ageDue reports whether a queued WriteTo looks at the queue's age: at
// every datagram of a short queue, whose writer may stop at any one of
// them (a burst), and at every 16th of a long one, whose writer is in a
// loop that fills it well within MaxDelay, for whom a clock reading at
// every datagram would be a cost of its own. w.mu is held.
func (w *writer) ageDue() bool {
	n := len(w.msgs)
	return n > 1 && (n < 16 || n%16 == 0)
}

// eagerRun is how many datagrams a conn sends at once, though a send
// ended moments ago, after its timer found only one or two datagrams in a
// queue that began because a send had just ended: what made them wait was
// not a writer's loop but writers taking turns (a server answering from a
// goroutine per request), whom waiting only delays. A loop's datagrams
// come back within the idle gap and fill the queue again once the run is
// spent.
const eagerRun = 256

// sendNow sends one datagram through plain, counting it in Stats; idle
// tells a datagram sent at once for want of company from one plain had to
// judge.
func (w *writer) sendNow(p []byte, d *dest, m *callerMsg, idle bool) (int, error) {
	uc, stats := w.s.uc, &w.s.stats
	w.plainSending.Store(true) // plain may block: Close need not wait
	var n int
	var err error
	if m != nil {
		n, err = w.sendMsgNow(p, d, m)
	} else if oob, k := w.io.sourceFor(d.ap); k > 0 && d.via != viaWrite {
		n, _, err = uc.WriteMsgUDPAddrPort(p, oob[:k], d.ap)
	} else {
		n, err = d.plain(uc, p, m)
	}
	w.plainSending.Store(false)
	if idle && (err == nil || !connError(err)) {
		stats.flushIdle.Add(1)
	}
	var se *os.SyscallError
	if err == nil || errors.As(err, &se) { // else plain made no system call
		stats.writeCalls.Add(1)
	}
	if err == nil {
		k := 1
		if m != nil {
			k = max(m.count, 1)
		}
		stats.datagramsWritten.Add(uint64(k))
	}
	return n, err
}

// writePlain hands a datagram that plain treats specially to plain, after
// the queue, so that order holds whatever plain decides.
func (w *writer) writePlain(p []byte, d *dest, m *callerMsg) (int, error) {
	w.lockForCaller()
	defer w.mu.Unlock()
	return w.writePlainLocked(p, d, m)
}

// If the queue cannot go (a passed deadline, a closed socket), plain is
// still asked: it checks the address before the deadline, as the caller
// expects, and cannot send past the queue, since the poller that stopped
// the queue stops it too.
func (w *writer) writePlainLocked(p []byte, d *dest, m *callerMsg) (int, error) {
	if !w.s.closed.Load() && len(w.msgs) > 0 {
		w.flushLocked(causeExplicit)
	}
	return w.sendNow(p, d, m, false)
}

// lockForCaller takes mu for a caller's WriteTo or Flush, letting Close
// know while it waits for it (see lockForClose).
func (w *writer) lockForCaller() {
	if !w.mu.TryLock() {
		w.callersWait.Add(1)
		w.mu.Lock()
		w.callersWait.Add(-1)
	}
}

// full reports whether the queue holds a batch: limit datagrams, or as
// many messages as one call sends. With segmentation offload the queue
// gathers limit = 8 x BatchSize datagrams so that runs fill the messages;
// where the datagrams make no runs (a server answering many peers, each
// once) it would only hold them longer, in more memory, for as many
// messages as without offload. w.mu is held.
func (w *writer) full(limit int, cfg *settings) bool {
	return len(w.msgs) >= limit || w.runs >= cfg.BatchSize
}

// push appends a datagram to the queue, which has a block with room for
// it, and counts the messages the queue makes (w.runs).
func (w *writer) push(p []byte, ap netip.AddrPort) {
	var at int
	if w.grouped {
		if w.blk.fan.add(ap, len(p)) {
			w.runs++
		}
		at = w.place(len(p))
	} else {
		if n := len(w.msgs); n == 0 || w.msgs[n-1].addr != ap || len(p) > w.runSeg || len(w.msgs[n-1].buf) < w.runSeg {
			// A datagram starts a run unless it follows one to the same
			// destination that it is no longer than, and that has not
			// ended with a shorter one: about what coalesce decides.
			w.runs++
			w.runSeg = len(p)
		}
		at = w.used
		w.used += len(p)
	}
	buf := w.blk.arena[at : at+len(p) : at+len(p)]
	copyUnseen(buf, p)
	w.msgs = append(w.msgs, txMsg{buf: buf, addr: ap})
	w.queued.Store(int32(len(w.msgs)))
}

// place finds where in the arena a grouped datagram of n bytes goes, the
// group's last in the queue: right after the group's previous one where
// the group's slab has room, so that its run lies back to back and goes
// to the kernel as one piece (gather); else at the arena's end, taking
// a slab of groupSlab such datagrams for the group's next ones. A
// group's first datagram takes no slab: a peer answered once wastes no
// room. Room kept in slabs and not used is bounded by an eighth of the
// arena (fanout.kept): a queue to many peers, a few datagrams each, fills
// the arena no sooner than without slabs, but for that eighth. The
// arena's end has room for n (write made sure). w.mu is held.
func (w *writer) place(n int) int {
	at := w.used
	f := &w.blk.fan
	g := f.lastGroup()
	switch {
	case g == nil || n == 0:
		w.used += n
	case int(g.room) >= n:
		at = int(g.end)
		g.end, g.room = g.end+int32(n), g.room-int32(n)
		f.kept -= n
	default:
		slab := n
		if g.count > 1 {
			slab = min(groupSlab*n, len(w.blk.arena)-at)
			if f.kept+slab-n > len(w.blk.arena)/8 {
				slab = n
			}
		}
		f.kept += slab - n // a slab left behind stays counted: its room is lost to this queue
		w.used += slab
		g.end, g.room = int32(at+n), int32(slab-n)
	}
	return at
}

// groupSlab is how many datagrams of a run a grouped queue keeps room for
// at once, back to back: a run of 64 goes to the kernel in 8 pieces. The
// room left in a group's last slab is the most a queue wastes for it.
const groupSlab = 8

// oobSpaceDirect is room for one source address control message.
const oobSpaceDirect = 48

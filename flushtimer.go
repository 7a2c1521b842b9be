package batchconn

import (
	"sync"
	"time"
)

// The flush timer sends a queue whose oldest datagram has waited
// MaxDelay. A conn makes it with the first datagram its queue holds (on
// Linux a timerfd and a goroutine parked on it, flushtimer_linux.go) and
// lets it go once its queue has gone unused for flushTimerIdle, so that a
// conn gone quiet costs what an idle *net.UDPConn costs; the next queued
// datagram makes a new one (a few microseconds). One watcher goroutine
// looks at the conns that hold a timer, once a flushTimerIdle, and exists
// only while there are some: nothing on the hot path pays for it but one
// clock reading a queue episode (writer.lastArm).

// A flushTimer calls its function once, d after each reset, in a
// goroutine of its own. It is reset with the writer's lock held.
type flushTimer interface {
	reset(d time.Duration)
	// stop ends the timer for good; the function may still be running,
	// or about to run, and must then find the conn closed.
	stop()
	// wait returns once the function can no longer run. Called without
	// the writer's lock, which the function takes.
	wait()
}

// goTimer is the runtime's timer. It fires on time while the process is
// busy, but late (about a millisecond) when every thread is idle, because
// the runtime then sleeps in the poller with millisecond resolution.
type goTimer struct{ t *time.Timer }

func newGoTimer(f func()) flushTimer {
	t := time.AfterFunc(time.Hour, f)
	t.Stop()
	return goTimer{t}
}

func (g goTimer) reset(d time.Duration) { g.t.Reset(d) }
func (g goTimer) stop()                 { g.t.Stop() }
func (g goTimer) wait()                 {}

// arm makes sure the timer will fire for the datagram that entered the
// empty queue. A timer already pending is left alone, even when the queue
// it was set for has gone out since: onTimer looks at the queue as it is.
// Setting a timer costs more than a datagram, so a conn whose queue fills
// and empties all the time sets one at most every MaxDelay. w.mu is held.
func (w *writer) arm() {
	w.lastArm = monoNow()
	t := w.timer.Load()
	if t == nil { // the first queued datagram, or the first since the timer retired
		t = &timerBox{newFlushTimer(w.onTimer)}
		w.timer.Store(t)
		watchTimer(w)
		w.armed.Store(true)
		t.reset(w.s.cfg.MaxDelay)
		return
	}
	if w.armed.CompareAndSwap(false, true) {
		t.reset(w.s.cfg.MaxDelay)
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
// a timer that finds nothing to do must not slow it down. It looks again
// once it holds the lock: while it waited, the writer may have sent the
// queue it fired for and begun another, which is not due.
func (w *writer) onTimer() {
	w.armed.Store(false)
	// Clear, then look: a writer queues, then looks at armed; one of the
	// two sees the other (the atomics are sequentially consistent).
	if w.queued.Load() == 0 {
		return
	}
	due := w.due.Swap(false)
	if !due && w.notYetDue() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !due && len(w.msgs) > 0 && w.notYetDue() {
		return
	}
	if w.afterSend && len(w.msgs) <= 2 {
		// The writers made one or two datagrams in MaxDelay after a send:
		// they take turns, and waiting only delays them (eagerRun).
		w.eager = int(w.s.cfg.eagerRun)
	}
	w.flushInBackground(causeTimer)
}

// notYetDue sets the timer again for the rest of MaxDelay if the queue's
// oldest datagram has not waited that long, and reports whether it has
// not.
func (w *writer) notYetDue() bool {
	wait := int64(w.s.cfg.MaxDelay) - (monoNow() - w.oldest.Load())
	if wait <= 0 {
		return false
	}
	if w.armed.CompareAndSwap(false, true) {
		if t := w.timer.Load(); t != nil {
			t.reset(time.Duration(wait))
		} else {
			w.armed.Store(false) // retired meanwhile: the next queued datagram makes a new one
		}
	}
	return true
}

// flushTimerIdle is how long a conn's queue goes unused before its timer is
// let go.
const flushTimerIdle = time.Second

var timers struct {
	mu      sync.Mutex
	conns   map[*writer]struct{} // the writers of conns that hold a timer
	running bool                 // the watcher runs
	wake    chan struct{}        // tells the watcher the set went empty
	scratch []*writer
}

// watchTimer adds w, which has just made its timer, to the watched
// writers; w.mu is held.
func watchTimer(w *writer) {
	timers.mu.Lock()
	defer timers.mu.Unlock()
	if timers.conns == nil {
		timers.conns = make(map[*writer]struct{})
		timers.wake = make(chan struct{}, 1)
	}
	timers.conns[w] = struct{}{}
	if !timers.running {
		timers.running = true
		go watchTimers(w.s.cfg.timerIdle)
	}
}

// unwatchTimer drops w, whose timer goes (Close, or retired).
func unwatchTimer(w *writer) {
	timers.mu.Lock()
	defer timers.mu.Unlock()
	delete(timers.conns, w)
	if len(timers.conns) == 0 && timers.running {
		select {
		case timers.wake <- struct{}{}:
		default:
		}
	}
}

// watchTimers retires the timers of conns gone quiet, every period, until
// no conn holds one.
func watchTimers(period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-timers.wake:
		}
		timers.mu.Lock()
		if len(timers.conns) == 0 {
			timers.running = false
			timers.mu.Unlock()
			return
		}
		conns := timers.scratch[:0]
		for w := range timers.conns {
			conns = append(conns, w)
		}
		timers.scratch = conns
		timers.mu.Unlock()
		for _, w := range conns {
			w.retireTimerIfQuiet()
		}
		clear(conns)
	}
}

// retireTimerIfQuiet lets w's timer go if its queue has been unused for
// flushTimerIdle. A conn busy with its lock is not quiet.
func (w *writer) retireTimerIfQuiet() {
	if !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	t := w.timer.Load()
	if t == nil || w.s.closed.Load() || w.queued.Load() > 0 || w.armed.Load() ||
		monoNow()-w.lastArm < int64(w.s.cfg.timerIdle) {
		return
	}
	w.timer.Store(nil)
	t.stop() // its goroutine returns
	unwatchTimer(w)
}

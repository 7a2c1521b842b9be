package batchconn

import (
	"sync"
	"time"
)

// Flush timers of quiet conns. A conn's flush timer (on Linux a timerfd
// and a goroutine parked on it) is made by the first datagram its queue
// holds; a conn whose queue has not been used for timerIdle lets it go,
// so that a conn gone quiet costs what an idle plain socket costs, and
// the next queued datagram makes a new one (a few microseconds). One
// watcher goroutine looks at the conns that hold a timer, once a
// timerIdle, and exists only while there are some: nothing on the hot
// path pays for it but one clock reading a queue episode (writer.lastArm).

// timerIdle is how long a conn's queue goes unused before its timer is
// let go.
const timerIdle = time.Second

var timers struct {
	mu      sync.Mutex
	conns   map[*PacketConn]struct{} // conns that hold a timer
	running bool                     // the watcher runs
	wake    chan struct{}            // tells the watcher the set went empty
	scratch []*PacketConn
}

// watchTimer adds c, which has just made its timer, to the watched conns;
// w.mu is held.
func watchTimer(c *PacketConn) {
	timers.mu.Lock()
	defer timers.mu.Unlock()
	if timers.conns == nil {
		timers.conns = make(map[*PacketConn]struct{})
		timers.wake = make(chan struct{}, 1)
	}
	timers.conns[c] = struct{}{}
	if !timers.running {
		timers.running = true
		go watchTimers(c.cfg.timerIdle)
	}
}

// unwatchTimer drops c, whose timer goes (Close, or retired).
func unwatchTimer(c *PacketConn) {
	timers.mu.Lock()
	defer timers.mu.Unlock()
	delete(timers.conns, c)
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
		for c := range timers.conns {
			conns = append(conns, c)
		}
		timers.scratch = conns
		timers.mu.Unlock()
		for _, c := range conns {
			c.retireTimerIfQuiet()
		}
		clear(conns)
	}
}

// retireTimerIfQuiet lets c's timer go if its queue has been unused for
// timerIdle. A conn busy with its lock is not quiet.
func (c *PacketConn) retireTimerIfQuiet() {
	w := &c.w
	if !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	t := w.timer.Load()
	if t == nil || c.closed.Load() || w.queued.Load() > 0 || w.armed.Load() ||
		monoNow()-w.lastArm < int64(c.cfg.timerIdle) {
		return
	}
	w.timer.Store(nil)
	t.stop() // its goroutine returns
	unwatchTimer(c)
}

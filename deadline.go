package batchconn

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// deadline is a read or write deadline as the runtime's poller keeps one:
// a flag that a timer sets when the time comes, so that the hot path
// tests it with an atomic load and reads no clock, which costs as much as
// a good part of a ReadFrom served from the ring.
//
// The timer is made and set lazily, by the first test of a deadline that
// has not passed: a conn whose calls all reach the poller, which tests
// plain's own deadline (a ring that is empty, a datagram sent at once),
// never makes one. A deadline moved later leaves the timer as it is; when
// it fires early, the next test sets it again, so that a caller who moves
// the deadline before every read sets no timer for each.
type deadline struct {
	state atomic.Uint32 // what passed reads without mu: stateLook, stateExpired; written as mu is let go (unlock)

	mu      sync.Mutex  // serializes set, watch and the timer's fire
	expired bool        // guarded by mu: the deadline has passed; set at once for a past time, else by the timer
	watched bool        // guarded by mu: the timer fires at or before at, or at never comes
	at      int64       // guarded by mu: monoNow of the deadline, 0 for none
	timer   *time.Timer // guarded by mu; made by the first watch
	fires   int64       // guarded by mu: when the timer fires, 0 when it is not set
}

// never is the deadline that does not come: a time beyond the clock's
// range, such as year 9999, saturates to it, as the poller's does.
const never = math.MaxInt64

var monoStart = time.Now()

// monoNow is the time on the clock deadline uses; it never goes back.
func monoNow() int64 { return int64(time.Since(monoStart)) + 1 }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.unlock()
	if t.IsZero() {
		d.at = 0
		d.expired = false
		return
	}
	// Measure from now, as the poller does, so that a step of the wall
	// clock moves neither.
	now, until := monoNow(), int64(time.Until(t))
	at := int64(never)
	if until <= never-now {
		at = max(now+until, 1)
	}
	d.at = at
	d.expired = at <= now
	d.watched = at == never || d.fires != 0 && d.fires <= at
}

// What passed reads: stateLook, the deadline has passed or no timer
// watches it yet; stateExpired, it has passed. Neither: no deadline, or
// one a timer watches, and passed costs one load.
const (
	stateLook uint32 = 1 << iota
	stateExpired
)

// passed reports whether the deadline has passed.
func (d *deadline) passed() bool {
	s := d.state.Load()
	return s != 0 && (s&stateExpired != 0 || d.watch())
}

// unlock sets state from the fields mu guards, then lets mu go.
func (d *deadline) unlock() {
	var s uint32
	if d.expired {
		s = stateLook | stateExpired
	} else if d.at != 0 && !d.watched {
		s = stateLook
	}
	d.state.Store(s)
	d.mu.Unlock()
}

// watch reads the clock for a deadline that no timer watches yet, and sets
// the timer for it if it has not passed.
func (d *deadline) watch() bool {
	d.mu.Lock()
	defer d.unlock()
	at := d.at
	if at == 0 || d.expired {
		return at != 0
	}
	if at == never { // a timer fired for an earlier deadline since set
		d.watched = true
		return false
	}
	now := monoNow()
	if now >= at {
		d.expired = true
		return true
	}
	if d.fires == 0 || d.fires > at {
		if d.timer == nil {
			d.timer = time.AfterFunc(time.Duration(at-now), d.fire)
		} else {
			d.timer.Reset(time.Duration(at - now))
		}
		d.fires = at
	}
	d.watched = true
	return false
}

// fire is the timer's: the deadline it was set for has come. If the
// deadline was moved later meanwhile, the next passed looks again.
func (d *deadline) fire() {
	d.mu.Lock()
	defer d.unlock()
	d.fires = 0
	d.watched = false
	if at := d.at; at != 0 && monoNow() >= at {
		d.expired = true
	}
}

// stop lets the timer go, for Close: a closed conn tests no deadline.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.fires = 0
	d.watched = false
}

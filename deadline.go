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
	expired atomic.Bool  // the deadline has passed: set at once for a past time, else by the timer
	watched atomic.Bool  // the timer fires at or before at, or at never comes
	at      atomic.Int64 // monoNow of the deadline, 0 for none; written under mu

	mu    sync.Mutex  // serializes set, watch and the timer's fire
	timer *time.Timer // guarded by mu; made by the first watch
	fires int64       // guarded by mu: when the timer fires, 0 when it is not set
}

// never is the deadline that does not come: a time beyond the clock's
// range, such as year 9999, saturates to it, as the poller's does.
const never = math.MaxInt64

var monoStart = time.Now()

// monoNow is the time on the clock deadline uses; it never goes back.
func monoNow() int64 { return int64(time.Since(monoStart)) + 1 }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.IsZero() {
		d.at.Store(0)
		d.expired.Store(false)
		return
	}
	// Measure from now, as the poller does, so that a step of the wall
	// clock moves neither.
	now, until := monoNow(), int64(time.Until(t))
	at := int64(never)
	if until <= never-now {
		at = max(now+until, 1)
	}
	d.at.Store(at)
	d.expired.Store(at <= now)
	d.watched.Store(at == never || d.fires != 0 && d.fires <= at)
}

// passed reports whether the deadline has passed.
func (d *deadline) passed() bool {
	if d.expired.Load() {
		return true
	}
	if d.watched.Load() || d.at.Load() == 0 {
		return false
	}
	return d.watch()
}

// watch reads the clock for a deadline that no timer watches yet, and sets
// the timer for it if it has not passed.
func (d *deadline) watch() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at := d.at.Load()
	if at == 0 || d.expired.Load() {
		return at != 0
	}
	if at == never { // a timer fired for an earlier deadline since set
		d.watched.Store(true)
		return false
	}
	now := monoNow()
	if now >= at {
		d.expired.Store(true)
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
	d.watched.Store(true)
	return false
}

// fire is the timer's: the deadline it was set for has come. If the
// deadline was moved later meanwhile, the next passed looks again.
func (d *deadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fires = 0
	d.watched.Store(false)
	if at := d.at.Load(); at != 0 && monoNow() >= at {
		d.expired.Store(true)
	}
}

// stop lets the timer go, for Close: a closed conn tests no deadline.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.fires = 0
	d.watched.Store(false)
}

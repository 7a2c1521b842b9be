package batchconn

import "time"

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

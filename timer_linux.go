package batchconn

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// timerfd is a kernel timer read through the runtime's poller. It fires
// within tens of microseconds even when the process is idle, where the
// runtime's own timers wait about a millisecond: the difference between a
// burst's last datagrams leaving at MaxDelay or at a millisecond.
type timerfd struct {
	fd   int
	f    *os.File
	done chan struct{} // closed when the reading goroutine has returned
}

// newFlushTimer returns a timerfd, or the runtime's timer where the
// kernel refuses one.
func newFlushTimer(f func()) flushTimer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return newGoTimer(f)
	}
	t := &timerfd{fd: fd, f: os.NewFile(uintptr(fd), "batchconn-timerfd"), done: make(chan struct{})}
	go t.run(f)
	return t
}

func (t *timerfd) run(f func()) {
	defer close(t.done)
	var expirations [8]byte
	for {
		if _, err := t.f.Read(expirations[:]); err != nil {
			return // closed by stop
		}
		f()
	}
}

func (t *timerfd) reset(d time.Duration) {
	// A zero value disarms a timerfd: fire at once instead.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	unix.TimerfdSettime(t.fd, 0, &spec, nil)
}

func (t *timerfd) stop() { t.f.Close() }
func (t *timerfd) wait() { <-t.done }

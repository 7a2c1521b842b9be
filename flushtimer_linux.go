package batchconn

import (
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// timerfd is a kernel timer read through the runtime's poller. It fires
// within tens of microseconds even when the process is idle, where the
// runtime's own timers wait about a millisecond: the difference between a
// burst's last datagrams leaving at MaxDelay or at a millisecond.
type timerfd struct {
	f    *os.File
	rc   syscall.RawConn // for setting it: refused once f is closed
	set  func(fd uintptr)
	mu   sync.Mutex      // guards spec; resets may race (a deadline setter's and the timer's)
	spec unix.ItimerSpec // the next setting, for set
	done chan struct{}   // closed when the reading goroutine has returned
}

// newFlushTimer returns a timerfd, or the runtime's timer where the
// kernel refuses one.
func newFlushTimer(f func()) flushTimer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return newGoTimer(f)
	}
	t := &timerfd{f: os.NewFile(uintptr(fd), "batchconn-timerfd"), done: make(chan struct{})}
	if t.rc, err = t.f.SyscallConn(); err != nil {
		t.f.Close()
		return newGoTimer(f)
	}
	t.set = func(fd uintptr) { unix.TimerfdSettime(int(fd), 0, &t.spec, nil) }
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
	t.mu.Lock()
	// A zero value disarms a timerfd: fire at once instead.
	t.spec.Value = unix.NsecToTimespec(max(int64(d), 1))
	t.rc.Control(t.set) // through the poller: never an fd closed and reused
	t.mu.Unlock()
}

func (t *timerfd) stop() { t.f.Close() }
func (t *timerfd) wait() { <-t.done }

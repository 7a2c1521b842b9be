package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pinToCPU keeps the calling goroutine on its thread, and the thread on
// the n-th (modulo their number) of the CPUs it may run on, for good: the
// runtime ends the thread with the goroutine. Loopback delivers through
// the backlog queue of the sending CPU, not always before the send
// returns, so that a datagram sent next from another CPU may overtake; a
// sender held on one CPU has its datagrams arrive in the order sent.
func pinToCPU(n int) error {
	runtime.LockOSThread()
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return os.NewSyscallError("sched_getaffinity", err)
	}
	if allowed.Count() == 0 {
		return fmt.Errorf("sched_getaffinity: no CPU allowed")
	}
	n %= allowed.Count()
	for cpu := 0; ; cpu++ {
		if !allowed.IsSet(cpu) {
			continue
		}
		if n > 0 {
			n--
			continue
		}
		var one unix.CPUSet
		one.Set(cpu)
		return os.NewSyscallError("sched_setaffinity", unix.SchedSetaffinity(0, &one))
	}
}

// processCPU is the CPU time the process has used so far, in user and
// kernel mode, all its threads together (getrusage RUSAGE_SELF).
func processCPU() (cpu time.Duration, ok bool) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// pause sleeps for d in nanosleep, which wakes within tens of
// microseconds, where the runtime's timers, in an otherwise idle process,
// wake about a millisecond late.
func pause(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

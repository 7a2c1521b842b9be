package main

import (
	"syscall"
	"time"
)

// pause sleeps for d, in nanosleep: the thread sleeps, no busy wait, and
// wakes within tens of microseconds, where the runtime's timers, in an
// otherwise idle process, wake about a millisecond late.
func pause(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

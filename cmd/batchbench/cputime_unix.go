//go:build unix

package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// processCPU is the CPU time the process has used so far, in user and
// kernel mode, all its threads together (getrusage RUSAGE_SELF); ok is
// false where that is unknown.
func processCPU() (cpu time.Duration, ok bool) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

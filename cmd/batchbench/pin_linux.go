package main

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// pinToCPU keeps the calling goroutine on its thread, and the thread on
// one CPU: the n-th (modulo their number) of those the thread may run on.
// Its caller must not unlock the thread: the runtime ends the thread with
// the goroutine, so that no other goroutine inherits the pinning.
//
// What it is for: loopback delivers a datagram on the CPU that sent it,
// through that CPU's backlog queue, in turn with what the CPU sent before.
// A send usually delivers before its system call returns, but not always:
// the kernel may leave what one CPU queued for later (seen on 6.18,
// sendmmsg returning with the last messages of its batch still queued),
// and a datagram sent next from another CPU is then delivered at once,
// ahead of them. A sender held on one CPU has one queue, and its datagrams
// arrive in the order sent.
func pinToCPU(n int) error {
	runtime.LockOSThread()
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return os.NewSyscallError("sched_getaffinity", err)
	}
	count := allowed.Count()
	if count == 0 {
		return fmt.Errorf("sched_getaffinity: no CPU allowed")
	}
	n %= count
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

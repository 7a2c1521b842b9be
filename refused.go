package batchconn

import (
	"errors"
	"sync/atomic"
	"syscall"
)

// Batch calls the kernel refuses. recvmmsg and sendmmsg can be missing (on
// 386 and s390x kernels before 4.3 they exist only through socketcall,
// which x/net falls back to and batchconn does not) or refused by a
// seccomp filter (container runtimes and sandboxes refuse system calls
// they do not list, with ENOSYS or EPERM). A conn that meets a refusal
// goes on one datagram at a time through plain's own calls, losing
// nothing, and so does every conn made after it in the process: the
// refusal is the kernel's or the sandbox's, not the socket's.

const (
	recvRefused uint32 = 1 << iota // recvmmsg refused: reads go through plain
	sendRefused                    // sendmmsg refused: writes go through plain
)

// batchRefused holds the refusals seen in this process.
var batchRefused atomic.Uint32

// callRefused reports whether a batch call's error says the call itself
// is refused, rather than a datagram or the conn.
func callRefused(err error) bool {
	return errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM)
}

// refuseBatchCalls turns the conn's reads or writes (which) to plain,
// for good, and those of conns made after it.
func (s *socket) refuseBatchCalls(which uint32) {
	batchRefused.Or(which)
	if which&recvRefused != 0 {
		s.plainReads.Store(true)
	}
	if which&sendRefused != 0 {
		s.plainWrites.Store(true)
	}
}

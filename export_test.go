package batchconn

import (
	"cmp"
	"net"
	"time"
)

// hooks are seams for tests, applied to a conn's settings before it is
// made; a conn made by New has none.
type hooks struct {
	// noBatch serves the conn one datagram at a time, as on systems
	// without recvmmsg and sendmmsg, to run that path on Linux.
	noBatch bool
	// kernel is the kernel release the offload gates are decided from,
	// instead of the running kernel's: tests pretend to run on others.
	kernel string
	// idleGap overrides defaultIdleGap: with an hour every write queues,
	// and no eagerRun undoes it.
	idleGap time.Duration
	// timerIdle overrides flushTimerIdle: tests see the timer go sooner.
	timerIdle time.Duration
}

// newConn is New, with h applied.
func newConn(pc net.PacketConn, cfg *Config, h hooks) *PacketConn {
	return wrap(pc, cfg.resolveWith(h))
}

// resolveWith is resolve, with h applied.
func (c *Config) resolveWith(h hooks) settings {
	s := c.resolve()
	s.idleGap = cmp.Or(max(h.idleGap, 0), s.idleGap)
	if h.idleGap > 0 {
		s.eagerRun = 0
	}
	s.timerIdle = cmp.Or(max(h.timerIdle, 0), s.timerIdle)
	if h.kernel != "" {
		s.gates = gatesFor(h.kernel)
	}
	s.noBatch = s.noBatch || h.noBatch
	return s
}

// b returns what serves a batched conn, for tests that look inside it;
// nil for a conn served one datagram at a time.
func (c *PacketConn) b() *batched {
	b, _ := c.impl.(*batched)
	return b
}

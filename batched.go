package batchconn

import (
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// batched serves a conn through the read ring and the write queue: a
// *net.UDPConn on a system with recvmmsg and sendmmsg. Its halves, r and
// w, own their state; s is what both read.
type batched struct {
	face PacketConn // what New returns; its impl is this conn
	s    socket
	r    reader
	w    writer
}

// socket is what both halves share: the socket, what was fixed at New,
// and the state that concerns the conn as a whole. Read by both without a
// lock: fixed at New, or atomic.
type socket struct {
	uc   *net.UDPConn
	cfg  settings
	info sockInfo

	// For errors shaped as a *net.UDPConn's (errors.go).
	network atomic.Pointer[string] // the Net of its errors; see networkName
	laddr   net.Addr               // Source of its errors
	raddr   net.Addr               // the peer of a connected socket, else nil
	peer    netip.AddrPort         // raddr, for the queue; Write queues only when valid

	closed      atomic.Bool // set by Close under writer.mu, after the final flush
	plainReads  atomic.Bool // the kernel refuses recvmmsg: reads go through uc (refused.go)
	plainWrites atomic.Bool // the kernel refuses sendmmsg: writes go through uc
	stats       counters
}

// newBatched returns a batched conn for uc, or nil where the system or
// the socket cannot batch.
func newBatched(uc *net.UDPConn, cfg settings) *PacketConn {
	c := &batched{s: socket{uc: uc, cfg: cfg}}
	s := &c.s
	rx, tx, info := newBatchIO(uc, &s.cfg, &s.stats)
	if rx == nil {
		return nil
	}
	c.face = PacketConn{impl: c}
	s.info = info
	refused := batchRefused.Load()
	s.plainReads.Store(refused&recvRefused != 0)
	s.plainWrites.Store(refused&sendRefused != 0)
	s.laddr = uc.LocalAddr()
	if ra, ok := uc.RemoteAddr().(*net.UDPAddr); ok && ra != nil {
		s.raddr = ra
		if ra.Zone == "" { // zoned peers go through plain
			s.peer = ra.AddrPort()
		}
	}
	c.r.s, c.r.io, c.r.out = s, rx, &c.w
	c.w.s, c.w.io, c.w.in = s, tx, &c.r
	return &c.face
}

// Close takes the writer's lock (see writer.lockForClose), sends the
// queue, closes the socket and retires the timer; then, without the
// writer's lock, it takes the reader's, which a reader woken by the closed
// socket lets go, and gives the ring's slots back.
func (c *batched) Close() error {
	err := c.w.close()
	c.r.close()
	return err
}

func (c *batched) SetDeadline(t time.Time) error {
	c.r.deadline.set(t)
	c.w.deadline.set(t)
	defer c.w.rearm()
	return c.s.uc.SetDeadline(t)
}

func (c *batched) SetReadDeadline(t time.Time) error {
	c.r.deadline.set(t)
	return c.s.uc.SetReadDeadline(t)
}

func (c *batched) SetWriteDeadline(t time.Time) error {
	c.w.deadline.set(t)
	defer c.w.rearm()
	return c.s.uc.SetWriteDeadline(t)
}

func (c *batched) RemoteAddr() net.Addr { return c.s.raddr }

func (c *batched) unwrap() net.PacketConn { return c.s.uc }

func (c *batched) Batching() bool { return !(c.s.plainReads.Load() && c.s.plainWrites.Load()) }

func (c *batched) SyscallConn() (syscall.RawConn, error) {
	if _, err := c.s.uc.SyscallConn(); err != nil {
		return nil, err
	}
	return controlOnly{c.r.io}, nil
}

func (c *batched) Stats() Stats {
	if !c.s.closed.Load() {
		c.r.noteDrops()
	}
	return c.s.stats.snapshot()
}

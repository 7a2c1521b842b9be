package batchconn

import (
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
)

// PacketConn is a net.PacketConn that moves datagrams in batches. Create
// one with New. All methods are safe for concurrent use, as on
// *net.UDPConn.
type PacketConn struct {
	pc net.PacketConn // the wrapped conn; the socket's owner from New on

	// uc and bio are nil when pc is served one datagram at a time through
	// its own methods (pass-through).
	uc   *net.UDPConn
	bio  batchIO
	sock sockInfo
	cfg  settings

	// Fixed at New, for errors shaped as a *net.UDPConn's (errors.go).
	network atomic.Pointer[string] // the Net of its errors; see networkName
	laddr   net.Addr               // Source of its errors
	raddr   net.Addr               // the peer of a connected socket, else nil
	peer    netip.AddrPort         // raddr, for the queue; Write queues only when valid

	closed        atomic.Bool // set by Close under w.mu, after the final flush
	plainReads    atomic.Bool // the kernel refuses recvmmsg: reads go through uc (refused.go)
	plainWrites   atomic.Bool // the kernel refuses sendmmsg: writes go through uc
	readDeadline  deadline
	writeDeadline deadline

	r     reader
	w     writer
	stats counters
}

// A PacketConn is a drop-in for the *net.UDPConn it wraps.
var (
	_ net.PacketConn = (*PacketConn)(nil)
	_ net.Conn       = (*PacketConn)(nil)
)

// New wraps pc. It never fails. A *PacketConn is returned as is.
//
// A *net.UDPConn on Linux is batched: reads through a ring that one
// recvmmsg refills, writes through a queue that sendmmsg sends. Anything
// else (another net.PacketConn, a wrapper, a socket on a system without
// recvmmsg and sendmmsg) is served one datagram at a time through pc's own
// methods, with pc's behaviour. A nil pc gives a conn whose methods fail
// with syscall.EINVAL, as those of a zero *net.UDPConn do.
//
// From New on, the returned conn owns pc: use pc only through it, and
// close it with the conn's Close so that queued datagrams are sent.
func New(pc net.PacketConn, cfg *Config) *PacketConn { return newConn(pc, cfg, hooks{}) }

// newConn is New, with the seams tests set.
func newConn(pc net.PacketConn, cfg *Config, h hooks) *PacketConn {
	if c, ok := pc.(*PacketConn); ok {
		return c
	}
	if pc == nil {
		pc = new(net.UDPConn) // no socket: every method returns EINVAL
	}
	c := &PacketConn{pc: pc, cfg: cfg.resolve(h)}
	uc, ok := pc.(*net.UDPConn)
	if !ok || uc == nil || c.cfg.noBatch {
		return c
	}
	bio, sock := newBatchIO(uc, &c.cfg, &c.stats)
	if bio == nil {
		return c
	}
	c.uc, c.bio, c.sock = uc, bio, sock
	refused := batchRefused.Load()
	c.plainReads.Store(refused&recvRefused != 0)
	c.plainWrites.Store(refused&sendRefused != 0)
	c.laddr = uc.LocalAddr()
	if ra, ok := uc.RemoteAddr().(*net.UDPAddr); ok && ra != nil {
		c.raddr = ra
		if ra.Zone == "" { // zoned peers go through plain
			c.peer = ra.AddrPort()
		}
	}
	return c
}

// Close sends what is queued, then closes the socket, which wakes any
// blocked ReadFrom or WriteTo with net.ErrClosed. If a queued datagram
// could not be sent, Close still closes the socket and returns that
// failure; the write deadline bounds how long the final send may block. A
// second Close returns plain's error for it.
func (c *PacketConn) Close() error {
	if c.bio == nil {
		return c.pc.Close()
	}
	w := &c.w
	early := c.lockForClose()
	defer c.releaseRing() // after w.mu: a reader may be waiting for it
	defer w.mu.Unlock()
	if c.closed.Load() {
		return c.pc.Close()
	}
	err := c.flushLocked(causeClose)
	if err != nil {
		err = c.opError("write", nil, unwrapRaw(err))
	} else {
		err, w.failed = w.failed, nil
	}
	if n := len(w.msgs); n > 0 {
		// The final flush was cut short (a passed write deadline): what it
		// could not send is lost, and counted.
		c.stats.writeFailures.Add(uint64(n))
		w.empty()
	}
	if d, ok := c.bio.receiveDrops(); ok { // as it stands at Close, for Stats
		c.stats.noteDrops(d)
	}
	c.closed.Store(true)
	c.readDeadline.stop()
	c.writeDeadline.stop()
	if cerr := c.pc.Close(); err == nil && !early {
		err = cerr
	}
	if t := w.timer.Load(); t != nil {
		unwatchTimer(c)
		t.stop()
		w.mu.Unlock()
		t.wait() // its function takes w.mu
		w.mu.Lock()
	}
	return err
}

// releaseRing gives the slots of datagrams nobody will read back to the
// pool, once the reader, woken by the closed socket, lets go.
func (c *PacketConn) releaseRing() {
	c.r.mu.Lock()
	c.r.release()
	c.r.mu.Unlock()
}

// lockForClose takes the writer's lock for Close. Whoever holds it (a
// writer, the timer, a read sending the queue) normally lets go at once;
// but a send that waits for room in a full socket buffer can hold it for
// as long as the network takes to drain.
//
// Where a caller waits (a WriteTo that must send the full queue before
// its own datagram fits, a Flush, a datagram in plain's hands, or one
// of them waiting for the lock behind the timer's send), Close
// closes the socket first, as plain's Close wakes a blocked WriteTo at
// once: the waiting send fails with net.ErrClosed, and what the queue
// could not send is counted and reported (a datagram in plain's hands
// was never accepted: its WriteTo fails, as on plain). Where nobody waits
// but the timer or a read sending the queue, every datagram queued was
// accepted, as plain's kernel holds datagrams its sendto took: Close waits
// for them to go, up to the write deadline. It reports whether it closed
// the socket first.
func (c *PacketConn) lockForClose() (early bool) {
	w := &c.w
	for !w.mu.TryLock() {
		if w.plainSending.Load() || c.bio.writeWaiting() && (!w.background.Load() || w.callersWait.Load() > 0) {
			c.pc.Close()
			w.mu.Lock()
			return true
		}
		if c.bio.writeWaiting() {
			time.Sleep(50 * time.Microsecond) // the network sets the pace
			continue
		}
		runtime.Gosched()
	}
	return false
}

// LocalAddr returns the socket's local address, as the wrapped conn does.
func (c *PacketConn) LocalAddr() net.Addr { return c.pc.LocalAddr() }

// SetDeadline sets the read and write deadlines, as on *net.UDPConn.
func (c *PacketConn) SetDeadline(t time.Time) error {
	if c.bio != nil {
		c.readDeadline.set(t)
		c.writeDeadline.set(t)
		defer c.w.rearm()
	}
	return c.pc.SetDeadline(t)
}

// SetReadDeadline sets the read deadline, as on *net.UDPConn. A passed
// deadline fails ReadFrom even while the ring holds datagrams, as plain
// fails even while the kernel holds them; they are served again once the
// deadline is moved.
func (c *PacketConn) SetReadDeadline(t time.Time) error {
	if c.bio != nil {
		c.readDeadline.set(t)
	}
	return c.pc.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline, as on *net.UDPConn. It bounds
// how long WriteTo, Flush and Close block on a full socket buffer, whoever
// sends the queue. Queued datagrams held back by a passed deadline stay
// queued and go out once it is moved.
func (c *PacketConn) SetWriteDeadline(t time.Time) error {
	if c.bio != nil {
		c.writeDeadline.set(t)
		defer c.w.rearm()
	}
	return c.pc.SetWriteDeadline(t)
}

// RemoteAddr returns the peer of a connected socket, or nil, as
// *net.UDPConn does.
func (c *PacketConn) RemoteAddr() net.Addr {
	if c.bio != nil {
		return c.raddr
	}
	if conn, ok := c.pc.(net.Conn); ok {
		return conn.RemoteAddr()
	}
	return nil
}

// SetReadBuffer sets the socket's receive buffer size, as *net.UDPConn
// does. A conn that has no such setting returns errors.ErrUnsupported.
func (c *PacketConn) SetReadBuffer(bytes int) error {
	if s, ok := c.pc.(interface{ SetReadBuffer(int) error }); ok {
		return s.SetReadBuffer(bytes)
	}
	return c.unsupported()
}

// SetWriteBuffer sets the socket's send buffer size, as *net.UDPConn
// does. A conn that has no such setting returns errors.ErrUnsupported.
func (c *PacketConn) SetWriteBuffer(bytes int) error {
	if s, ok := c.pc.(interface{ SetWriteBuffer(int) error }); ok {
		return s.SetWriteBuffer(bytes)
	}
	return c.unsupported()
}

// Batching reports whether the conn moves datagrams in batches. It is
// false for a conn served one datagram at a time through the wrapped
// conn's own methods: on systems without recvmmsg and sendmmsg, for a conn
// that is not a *net.UDPConn, and where the kernel or a sandbox refused
// the batch calls (then only once a call was refused).
func (c *PacketConn) Batching() bool {
	return c.bio != nil && !(c.plainReads.Load() && c.plainWrites.Load())
}

// Unwrap returns the wrapped conn. Reading from or writing to it directly
// bypasses the ring and the queue.
func (c *PacketConn) Unwrap() net.PacketConn { return c.pc }

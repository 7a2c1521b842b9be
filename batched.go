package batchconn

import (
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// batched serves a conn through the read ring and the write queue: a
// *net.UDPConn on a system with recvmmsg and sendmmsg.
type batched struct {
	face PacketConn // what New returns; its impl is this conn

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

// newBatched returns a batched conn for uc, or nil where the system or
// the socket cannot batch.
func newBatched(uc *net.UDPConn, cfg settings) *PacketConn {
	c := &batched{uc: uc, cfg: cfg}
	bio, sock := newBatchIO(uc, &c.cfg, &c.stats)
	if bio == nil {
		return nil
	}
	c.face = PacketConn{impl: c, pc: uc}
	c.bio, c.sock = bio, sock
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
	return &c.face
}

func (c *batched) Close() error {
	w := &c.w
	early := c.lockForClose()
	defer c.releaseRing() // after w.mu: a reader may be waiting for it
	defer w.mu.Unlock()
	if c.closed.Load() {
		return c.uc.Close()
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
	if cerr := c.uc.Close(); err == nil && !early {
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
func (c *batched) releaseRing() {
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
func (c *batched) lockForClose() (early bool) {
	w := &c.w
	for !w.mu.TryLock() {
		if w.plainSending.Load() || c.bio.writeWaiting() && (!w.background.Load() || w.callersWait.Load() > 0) {
			c.uc.Close()
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

func (c *batched) SetDeadline(t time.Time) error {
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	defer c.w.rearm()
	return c.uc.SetDeadline(t)
}

func (c *batched) SetReadDeadline(t time.Time) error {
	c.readDeadline.set(t)
	return c.uc.SetReadDeadline(t)
}

func (c *batched) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.set(t)
	defer c.w.rearm()
	return c.uc.SetWriteDeadline(t)
}

func (c *batched) RemoteAddr() net.Addr { return c.raddr }

func (c *batched) Batching() bool { return !(c.plainReads.Load() && c.plainWrites.Load()) }

func (c *batched) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return controlOnly{rc}, nil
}

package batchconn

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config tunes a PacketConn. The zero value, or a nil *Config, selects the
// defaults; a zero or negative field selects that field's default.
type Config struct {
	// BatchSize is the most messages one system call moves, each way: a
	// message is one datagram, or with segmentation offload a run of up
	// to 64 (128 where the kernel takes it). The write queue is sent when it holds BatchSize datagrams
	// (8 times as many with offload, which carries them in fewer
	// messages). Default 64: one sendmmsg of 64 small datagrams costs
	// about a third of 64 sendto calls on loopback, and larger batches
	// gain little. Values above 1024, the kernel's limit per call, are
	// lowered to 1024.
	BatchSize int

	// ReadSlotSize is the room for one received datagram in the read ring.
	// Default 65535, so that no UDP datagram, IPv4 or IPv6, is cut short by
	// the ring. A smaller value saves memory (the ring starts with one
	// slot and doubles, up to BatchSize slots, while reads find the kernel
	// holding more datagrams than it has slots) at a price: a datagram
	// longer than the slot is truncated to it, as if the caller's buffer
	// were that short, and GRO stays off.
	ReadSlotSize int

	// MaxDelay is the longest a queued datagram waits for others to join
	// its batch before the queue is sent. Default 50µs. Most datagrams do
	// not wait at all: see the package documentation for when the queue
	// goes out. Go's timers may fire later than asked when the process is
	// otherwise idle.
	MaxDelay time.Duration

	// QueueBytes bounds the payload bytes the write queue holds; a WriteTo
	// that finds the queue full sends it first, blocking as a plain
	// WriteTo blocks on a full socket buffer. Default 256 KiB (2 MiB with
	// GroupByDestination); values below 65535 are raised to it so that any
	// datagram fits, values above 64 MiB lowered to it (no batch carries
	// more).
	QueueBytes int

	// NoOffload turns UDP segmentation offload off: no GSO on send (runs
	// of datagrams to one destination as one message the kernel cuts
	// up), no GRO on receive (datagrams of one sender handed over as one
	// buffer). Offload is on by default where the kernel has it, and
	// turns itself off for a destination or socket the kernel refuses it
	// for.
	NoOffload bool

	// KernelChoosesSource leaves the source address of every datagram to
	// the kernel's route, as plain does. By default, on a socket bound to
	// a wildcard address (0.0.0.0, ::), a datagram to a peer leaves from
	// the local address that peer last wrote to, so that a server on a
	// host with several addresses answers from the one it was asked at
	// (see the package documentation).
	KernelChoosesSource bool

	// GroupByDestination lets each destination's queued datagrams leave
	// together when the queue is sent with segmentation offload, so that
	// a server sending to many peers in turn (A B C A B C: a media relay,
	// a game server) gets runs that GSO carries, as A A B B C C.
	// Datagrams to one destination never change order; datagrams to
	// different destinations may, which a receiver reached at two
	// addresses sees (a socket on this host written to at 127.0.0.1 and
	// at 0.0.0.0, say). Off by default: plain keeps WriteTo order across
	// destinations, and so does batchconn unless asked. A grouped queue
	// gathers twice as many datagrams, so that each destination's share
	// makes a long run, and its QueueBytes default is 2 MiB.
	GroupByDestination bool

	// noBatch serves the conn one datagram at a time, as on systems
	// without recvmmsg and sendmmsg; tests use it to run that path on Linux.
	noBatch bool
	// kernel, if set, is the kernel release the offload gates are decided
	// from instead of the running kernel's: tests pretend to run on others.
	kernel string
	// idleGap overrides defaultIdleGap; tests make every write queue
	// (and no eagerRun undoes it).
	idleGap time.Duration
	// timerIdle overrides the constant; tests see the timer go sooner.
	timerIdle time.Duration
	// queueFactor is how many times BatchSize datagrams the queue
	// gathers with segmentation offload: gsoQueueFactor, twice that for
	// a queue grouped by destination.
	queueFactor int
}

const (
	defaultBatchSize  = 64
	maxBatchSize      = 1024 // UIO_MAXIOV: the kernel's cap on one sendmmsg or recvmmsg
	maxDatagram       = 65535
	defaultMaxDelay   = 50 * time.Microsecond
	defaultQueueBytes = 256 << 10
	groupedQueueBytes = 2 << 20  // GroupByDestination's: see gsoQueueFactor
	maxQueueBytes     = 64 << 20 // more than the largest batch, 1024 messages of 65535 B

	// defaultIdleGap is how long after the last send ended a WriteTo on an
	// empty queue counts as isolated and goes out at once, in the caller's
	// goroutine, as it would on plain. A writer in a loop comes back much
	// sooner, and is batched; a request/response loop, much later.
	defaultIdleGap = 5 * time.Microsecond
)

// kernelGates decides what offload the kernel may be asked for: from the
// running kernel's release, read once per process, or from the release a
// test names.
func (c *Config) kernelGates() kernelGates {
	if c.kernel != "" {
		return gatesFor(c.kernel)
	}
	return runningKernelGates()
}

var runningKernelGates = sync.OnceValue(currentKernelGates)

func (c *Config) resolve() Config {
	var r Config
	if c != nil {
		r = *c
	}
	if r.BatchSize <= 0 {
		r.BatchSize = defaultBatchSize
	}
	r.BatchSize = min(r.BatchSize, maxBatchSize)
	if r.ReadSlotSize <= 0 {
		r.ReadSlotSize = maxDatagram
	}
	r.ReadSlotSize = min(r.ReadSlotSize, maxDatagram)
	if r.MaxDelay <= 0 {
		r.MaxDelay = defaultMaxDelay
	}
	r.queueFactor = gsoQueueFactor
	if r.GroupByDestination {
		r.queueFactor *= 2
	}
	if r.QueueBytes <= 0 {
		r.QueueBytes = defaultQueueBytes
		if r.GroupByDestination {
			r.QueueBytes = groupedQueueBytes
		}
	}
	r.QueueBytes = min(max(r.QueueBytes, maxDatagram), maxQueueBytes)
	if r.idleGap <= 0 {
		r.idleGap = defaultIdleGap
	}
	if r.timerIdle <= 0 {
		r.timerIdle = timerIdle
	}
	return r
}

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
	cfg  Config

	// Fixed at New, for errors shaped as plain's.
	network atomic.Pointer[string] // the Net of plain's errors; see networkName
	laddr   net.Addr               // Source of plain's errors
	raddr   net.Addr               // the peer of a connected socket, else nil
	peer    netip.AddrPort         // raddr, for the queue; Write queues only when valid

	closed        atomic.Bool // set by Close under w.mu, after the final flush
	plainReads    atomic.Bool // the kernel refuses recvmmsg: reads go through plain (refused.go)
	plainWrites   atomic.Bool // the kernel refuses sendmmsg: writes go through plain
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
func New(pc net.PacketConn, cfg *Config) *PacketConn {
	if c, ok := pc.(*PacketConn); ok {
		return c
	}
	if pc == nil {
		pc = new(net.UDPConn) // no socket: every method returns EINVAL
	}
	c := &PacketConn{pc: pc, cfg: cfg.resolve()}
	uc, ok := pc.(*net.UDPConn)
	if !ok || uc == nil || c.cfg.noBatch || operatorDisabled().noBatch() {
		return c
	}
	bio, sock := newBatchIO(uc, c.cfg, &c.stats)
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

var networks = [...]string{"udp", "udp4", "udp6"}

// networkName returns the network name plain puts in its errors: the one
// the socket was opened with ("udp", "udp4" or "udp6"), which LocalAddr
// does not tell. A WriteTo with a nil address fails at once with an error
// that carries it, and touches nothing, closed socket or not. It is asked
// at the first error, not in New: most conns never see one.
func (c *PacketConn) networkName() string {
	if p := c.network.Load(); p != nil {
		return *p
	}
	p := &networks[0]
	var oe *net.OpError
	if _, err := c.uc.WriteTo(nil, nil); errors.As(err, &oe) {
		for i := range networks {
			if networks[i] == oe.Net {
				p = &networks[i]
			}
		}
	}
	c.network.Store(p)
	return *p
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

func (c *PacketConn) unsupported() error {
	return &net.OpError{Op: "set", Net: "udp", Source: c.pc.LocalAddr(), Err: errors.ErrUnsupported}
}

// Unwrap returns the wrapped conn. Reading from or writing to it directly
// bypasses the ring and the queue.
func (c *PacketConn) Unwrap() net.PacketConn { return c.pc }

// opError shapes err as *net.UDPConn shapes its errors.
func (c *PacketConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: c.networkName(), Source: c.laddr, Addr: addr, Err: err}
}

// connError reports whether err concerns the conn rather than one
// datagram: it is closed, or its deadline has passed.
func connError(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded)
}

// unwrapRaw takes the poller's error out of the *net.OpError that
// syscall.RawConn wraps it in, so that it can be wrapped again with the
// Op plain uses.
func unwrapRaw(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// udpAddr converts a received address to the *net.UDPAddr plain returns:
// a 4-byte IP from an IPv4 socket, a 16-byte one from an IPv6 socket. The
// address and its IP come in one allocation, where plain makes two.
func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	box := new(struct {
		a  net.UDPAddr
		ip [16]byte
	})
	ip := ap.Addr()
	if ip.Is4() {
		*(*[4]byte)(box.ip[:4]) = ip.As4()
		box.a.IP = box.ip[:4]
	} else {
		box.ip = ip.As16()
		box.a.IP = box.ip[:]
		box.a.Zone = ip.Zone()
	}
	box.a.Port = int(ap.Port())
	return &box.a
}

// errnoErr turns a zero errno into a nil error.
func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

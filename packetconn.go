package batchconn

import (
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// How the package is built. A PacketConn is a facade: New chooses once
// what serves it, a batched conn (batched.go) or the wrapped conn itself
// (passthrough.go), and every method hands the call to that choice.
//
// A batched conn is two halves that own themselves. The reader (reader.go)
// owns the read ring, its refills, the read-slot pool policy (readpool.go)
// and the receiving half of the system-call layer (recv_linux.go). The
// writer (writer.go) owns the queue, when it goes out (flush.go), its timer
// (flushtimer.go), its block pool (writepool.go) and the sending half of
// the system-call layer (send_linux.go). They meet in three named places:
// the reader tells the writer whether the ring holds requests still to
// answer (reader.waiting), the reader has the writer send its queue before
// a read waits for the network (writer.sendBeforeRead), and Close takes the
// writer first, then the reader (batched.Close).
//
// Goroutines the package starts:
//   - a conn's flush timer: a goroutine parked on a timerfd (or the
//     runtime's timer where the kernel refuses one), from the conn's first
//     queued datagram until its queue goes unused for a second, or Close;
//   - one process-wide watcher that lets quiet conns' timers go, while any
//     conn holds one (flushtimer.go);
//   - the runtime's goroutines for deadline timers (deadline.go) and the
//     read pool's aging after garbage collections (readpool.go);
//   - one refresh of the host's addresses at a time, in the background,
//     once they are a second old (hostaddr.go).
//
// Locks, and what each guards:
//   - reader.mu: the ring and the receiving half; held across a refill, as
//     plain holds its descriptor's read lock.
//   - writer.mu: the queue and the sending half; held while the queue is
//     sent, as plain holds its descriptor's write lock.
//   - deadline.mu, one a deadline: its timer.
//   - timerfd.mu: the next setting of a flush timer.
//   - sources.mu: peers' reply sources on a wildcard socket (srcaddr.go).
//   - readPool.mu: a pool's free lists; timers.mu: the watcher's set.
//   - mmsgIO.ctlMu: a caller's SyscallConn Control call on a wildcard
//     socket, while the conn works out which packet info options are the
//     caller's (srcaddr_linux.go); taken alone.
//
// Order: reader.mu before writer.mu (a refill sends the queue before it
// waits); either of them before deadline.mu, sources.mu and readPool.mu;
// writer.mu before timerfd.mu and timers.mu. Close takes writer.mu, lets
// it go, then takes reader.mu; it never holds both. The watcher takes
// writer.mu only with TryLock, never while it holds timers.mu.

// PacketConn is a net.PacketConn that moves datagrams in batches. Create
// one with New. All methods are safe for concurrent use, as on
// *net.UDPConn.
type PacketConn struct {
	impl impl // what serves the conn: a *batched or a *passThrough
}

// impl is what serves a PacketConn: the methods whose behaviour differs
// between a batched conn and one served through the wrapped conn.
type impl interface {
	ReadFrom(p []byte) (int, net.Addr, error)
	ReadFromUDP(p []byte) (int, *net.UDPAddr, error)
	ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error)
	ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error)
	ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	Read(p []byte) (int, error)
	WriteTo(p []byte, addr net.Addr) (int, error)
	WriteToUDP(p []byte, addr *net.UDPAddr) (int, error)
	WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error)
	WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error)
	WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
	Write(p []byte) (int, error)
	Flush() error
	Close() error
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	RemoteAddr() net.Addr
	SyscallConn() (syscall.RawConn, error)
	Stats() Stats
	Batching() bool
	unwrap() net.PacketConn // the wrapped conn; the socket's owner from New on
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
func New(pc net.PacketConn, cfg *Config) *PacketConn { return wrap(pc, cfg.resolve()) }

// wrap is New with cfg resolved.
func wrap(pc net.PacketConn, s settings) *PacketConn {
	if c, ok := pc.(*PacketConn); ok {
		return c
	}
	if pc == nil {
		pc = new(net.UDPConn) // no socket: every method returns EINVAL
	}
	if uc, ok := pc.(*net.UDPConn); ok && uc != nil && !s.noBatch {
		if c := newBatched(uc, s); c != nil {
			return c
		}
	}
	return newPassThrough(pc)
}

// ReadFrom reads one datagram into p and returns its length and sender, as
// *net.UDPConn does: a datagram longer than p is truncated to len(p), the
// rest of it discarded, with no error; zero-length datagrams are returned
// as such. Datagrams come in the order the kernel received them.
func (c *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) { return c.impl.ReadFrom(p) }

// ReadFromUDP is ReadFrom returning the sender as a *net.UDPAddr, nil on
// an error, as *net.UDPConn does.
func (c *PacketConn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	return c.impl.ReadFromUDP(p)
}

// ReadFromUDPAddrPort is ReadFrom returning the sender as a
// netip.AddrPort, as *net.UDPConn does; it does not allocate.
func (c *PacketConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	return c.impl.ReadFromUDPAddrPort(p)
}

// ReadMsgUDP reads one datagram as ReadFrom does, with the control
// messages the socket delivered with it, as *net.UDPConn does: oobn
// bytes of them in oob, and flags with MSG_TRUNC where the datagram was
// longer than b, MSG_CTRUNC where its control messages did not all fit
// in oob. The control messages are those the caller turned on (through
// SyscallConn, x/net's SetControlMessage, or before New), laid out as the
// kernel lays them out for plain; those the conn turned on for itself
// (UDP_GRO, packet info on a wildcard socket) are not among them unless
// the caller turned them on too. A datagram that came coalesced with
// others (GRO) gets the control messages of its buffer. The conn takes
// control messages from its first message read on: datagrams already in
// the ring then come without them.
func (c *PacketConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	return c.impl.ReadMsgUDP(b, oob)
}

// ReadMsgUDPAddrPort is ReadMsgUDP returning the sender as a
// netip.AddrPort, as *net.UDPConn does.
func (c *PacketConn) ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	return c.impl.ReadMsgUDPAddrPort(b, oob)
}

// ReadBatch reads datagrams into ms, as x/net's ipv4.PacketConn and
// ipv6.PacketConn ReadBatch do on Linux: it waits for the first, as
// ReadMsgUDP does, then returns as many as are there at once, up to
// len(ms), each with N, NN (control messages in OOB, as ReadMsgUDP gives
// them), Flags and Addr (a *net.UDPAddr) set; the Buffers of a message
// are filled in order. ipv6.Message is the same type. flags must be 0.
// Libraries that look for this method (quic-go) read through the ring.
func (c *PacketConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	return c.impl.ReadBatch(ms, flags)
}

// Read reads one datagram into p, as *net.UDPConn does: from the peer of
// a connected socket, or from anyone on one that is not. As on plain, a
// zero-length p returns at once and leaves the datagram for the next read.
func (c *PacketConn) Read(p []byte) (int, error) { return c.impl.Read(p) }

// WriteTo sends p to addr, as *net.UDPConn does, except that the datagram
// may be queued to leave with others in one system call; p may be reused
// as soon as WriteTo returns. Datagrams to one destination leave in
// WriteTo order; across destinations, see the package documentation and
// Config.StrictOrder.
//
// What plain refuses at once (a nil, non-UDP or wrong-family address, a
// datagram too long for the family, a passed write deadline, a closed
// conn) WriteTo refuses at once with plain's error. A queued datagram that
// the kernel refuses when the queue is sent (a firewall rule, a route MTU
// too small) is counted in Stats and reported by the next Flush or Close;
// it never makes WriteTo or another datagram fail. When the queue is full,
// WriteTo sends it first and so blocks, as plain blocks on a full socket
// buffer, until the write deadline.
func (c *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) { return c.impl.WriteTo(p, addr) }

// WriteToUDP is WriteTo with the destination as a *net.UDPAddr, as on
// *net.UDPConn.
func (c *PacketConn) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) {
	return c.impl.WriteToUDP(p, addr)
}

// WriteToUDPAddrPort is WriteTo with the destination as a netip.AddrPort,
// as on *net.UDPConn. It does not allocate.
func (c *PacketConn) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	return c.impl.WriteToUDPAddrPort(p, addr)
}

// WriteMsgUDP sends b to addr with the control messages in oob, as
// *net.UDPConn does, queued as WriteTo queues: a source address
// (IP_PKTINFO, IPV6_PKTINFO), which wins over the one the conn would
// choose, TOS or traffic class (ECN), TTL or hop limit, and a segment
// size (UDP_SEGMENT), with which b leaves as the caller cut it, never
// merged with other datagrams, or, where the kernel or the route refuses
// segmentation offload, as separate datagrams of that size. Control
// messages the queue cannot check at the call as the kernel would (any
// other kind, malformed ones, a source the socket has not received at)
// go through plain at once, after the queue, with plain's answer. On a
// connected socket addr must be nil, as on plain.
func (c *PacketConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	return c.impl.WriteMsgUDP(b, oob, addr)
}

// WriteMsgUDPAddrPort is WriteMsgUDP with the destination as a
// netip.AddrPort, as on *net.UDPConn.
func (c *PacketConn) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	return c.impl.WriteMsgUDPAddrPort(b, oob, addr)
}

// WriteBatch sends the messages ms, as x/net's ipv4.PacketConn and
// ipv6.PacketConn WriteBatch do, through the queue: each as WriteMsgUDP
// sends it (Addr a *net.UDPAddr, nil on a connected socket; OOB its
// control messages; its Buffers joined into one datagram), N and NN set
// for each taken. Where a message is refused, it returns how many were
// taken before it, or, for the first, plain's error. flags must be 0.
func (c *PacketConn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return c.impl.WriteBatch(ms, flags)
}

// Write sends p to the peer of a connected socket, as *net.UDPConn does,
// queued as WriteTo queues. On a socket that is not connected it fails as
// plain fails.
func (c *PacketConn) Write(p []byte) (int, error) { return c.impl.Write(p) }

// Flush sends every queued datagram, blocking while the socket buffer is
// full, until the write deadline. It returns the first failure since the
// last Flush or Close: a queued datagram the kernel refused (the others
// were sent), or the deadline or a closed conn that stopped this send
// (what it did not send stays queued).
func (c *PacketConn) Flush() error { return c.impl.Flush() }

// Close sends what is queued, then closes the socket, which wakes any
// blocked ReadFrom or WriteTo with net.ErrClosed. If a queued datagram
// could not be sent, Close still closes the socket and returns that
// failure; the write deadline bounds how long the final send may block. A
// second Close returns plain's error for it.
func (c *PacketConn) Close() error { return c.impl.Close() }

// LocalAddr returns the socket's local address, as the wrapped conn does.
func (c *PacketConn) LocalAddr() net.Addr { return c.impl.unwrap().LocalAddr() }

// RemoteAddr returns the peer of a connected socket, or nil, as
// *net.UDPConn does.
func (c *PacketConn) RemoteAddr() net.Addr { return c.impl.RemoteAddr() }

// SetDeadline sets the read and write deadlines, as on *net.UDPConn.
func (c *PacketConn) SetDeadline(t time.Time) error { return c.impl.SetDeadline(t) }

// SetReadDeadline sets the read deadline, as on *net.UDPConn. A passed
// deadline fails ReadFrom even while the ring holds datagrams, as plain
// fails even while the kernel holds them; they are served again once the
// deadline is moved.
func (c *PacketConn) SetReadDeadline(t time.Time) error { return c.impl.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline, as on *net.UDPConn. It bounds
// how long WriteTo, Flush and Close block on a full socket buffer, whoever
// sends the queue. Queued datagrams held back by a passed deadline stay
// queued and go out once it is moved.
func (c *PacketConn) SetWriteDeadline(t time.Time) error { return c.impl.SetWriteDeadline(t) }

// SetReadBuffer sets the socket's receive buffer size, as *net.UDPConn
// does. A conn that has no such setting returns errors.ErrUnsupported.
func (c *PacketConn) SetReadBuffer(bytes int) error {
	pc := c.impl.unwrap()
	if s, ok := pc.(interface{ SetReadBuffer(int) error }); ok {
		return s.SetReadBuffer(bytes)
	}
	return unsupported(pc)
}

// SetWriteBuffer sets the socket's send buffer size, as *net.UDPConn
// does. A conn that has no such setting returns errors.ErrUnsupported.
func (c *PacketConn) SetWriteBuffer(bytes int) error {
	pc := c.impl.unwrap()
	if s, ok := pc.(interface{ SetWriteBuffer(int) error }); ok {
		return s.SetWriteBuffer(bytes)
	}
	return unsupported(pc)
}

// SyscallConn returns a raw connection to the socket for setting and
// reading socket options, as *net.UDPConn's does: its Control runs the
// function on the socket's descriptor, showing it the options the caller
// set (the packet info the conn turns on for itself on a wildcard socket
// reads as the caller left it). Its Read and Write refuse with an error
// wrapping errors.ErrUnsupported: a read or write beside the ring and the
// queue would take datagrams the ring is owed and send past queued ones.
// Options that change how the socket delivers datagrams (UDP_GRO,
// UDP_SEGMENT) must not be set through it: the conn decides those. On a
// conn served one datagram at a time it is the wrapped conn's
// SyscallConn, or errors.ErrUnsupported where it has none.
func (c *PacketConn) SyscallConn() (syscall.RawConn, error) { return c.impl.SyscallConn() }

// Stats returns the conn's counters. A conn served one datagram at a time
// counts nothing.
func (c *PacketConn) Stats() Stats { return c.impl.Stats() }

// Batching reports whether the conn moves datagrams in batches. It is
// false for a conn served one datagram at a time through the wrapped
// conn's own methods: on systems without recvmmsg and sendmmsg, for a conn
// that is not a *net.UDPConn, and where the kernel or a sandbox refused
// the batch calls (then only once a call was refused).
func (c *PacketConn) Batching() bool { return c.impl.Batching() }

// Unwrap returns the wrapped conn. Reading from or writing to it directly
// bypasses the ring and the queue.
func (c *PacketConn) Unwrap() net.PacketConn { return c.impl.unwrap() }

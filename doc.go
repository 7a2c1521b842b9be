// Package batchconn is a drop-in net.PacketConn that moves UDP datagrams
// many to a system call.
//
// A program that reads and writes UDP through a net.PacketConn pays one
// system call per datagram. Wrap the socket with New and hand the result
// to the same code: on Linux, ReadFrom then serves datagrams from a ring
// that one recvmmsg refills, and WriteTo copies into a queue that one
// sendmmsg sends.
//
//	pc, err := net.ListenUDP("udp", addr)
//	...
//	conn := batchconn.New(pc, nil) // a net.PacketConn
//	defer conn.Close()             // sends what is queued, then closes
//
// A client of one server can use Dial, which dials with net.Dial and wraps
// the connected socket in one call.
//
// # Behaviour
//
// A *PacketConn behaves as the *net.UDPConn it wraps: the same bytes,
// sender addresses, truncation to the caller's buffer, zero-length
// datagrams, deadlines and errors (a *net.OpError with Op "read" or
// "write", wrapping net.ErrClosed, os.ErrDeadlineExceeded or the
// *os.SyscallError), and the same order of datagrams. It is safe for
// concurrent use.
//
// # When written datagrams leave
//
// WriteTo copies the datagram and returns; the caller may reuse its buffer
// at once. The queue goes out, in WriteTo order:
//   - when it holds a full batch (Config.BatchSize) or has no room for the
//     next datagram (Config.QueueBytes), in the goroutine of the WriteTo
//     that filled it;
//   - when its oldest datagram has waited Config.MaxDelay;
//   - when a ReadFrom finds the ring empty and is about to wait for the
//     network: a request is sent before the wait for its response;
//   - on Flush and on Close.
//
// A WriteTo that finds the queue empty does not queue unless more
// datagrams are evidently on their way: the last send ended a few
// microseconds ago or is still under way (a writer in a loop, or several
// writers), or the read ring still holds datagrams (a server with
// requests left to answer). Otherwise its
// datagram goes out at once, in the caller's goroutine, as on plain: an
// isolated datagram, or the reply of a request/response loop, waits for no
// timer and no other goroutine. Where the timer finds that a queue begun
// because a send had just ended held only one or two datagrams, the sends
// were not a loop's but writers taking turns (a server answering from a
// goroutine per request): the conn then sends the next such datagrams at
// once.
//
// # Segmentation offload
//
// Where the kernel is known to do it right (GSO from Linux 5.0, GRO from
// 5.12: see the README's Offload in production), a run of queued datagrams
// to one destination with one size (the last may be shorter) leaves as one
// message that the kernel cuts into datagrams (UDP GSO), and a receiver
// gets datagrams of one sender coalesced into one buffer (UDP GRO), which
// ReadFrom hands out one datagram at a time, each as plain would have
// returned it. Where the kernel refuses a segmented message, those
// datagrams are resent one by one, and offload is limited for that
// destination: a route that refuses segments as long as these (an MTU
// smaller than a segment, as for a path-MTU probe among shorter packets)
// gets shorter segments still, and no offload after a third refusal; a
// route through IPsec or a device without checksum offload (EIO) gets
// none; a refusal that is the socket's turns it off for the socket. Stats
// counts each. How many
// datagrams one message may carry (64, or 128 on newer kernels) is probed
// once per process, by a message between two loopback sockets of its own.
// Config.NoOffload turns offload off from the start. On Linux 7.0.0 to
// 7.1.4, which mangle segmented messages whose segments are all of one
// length, such runs go one datagram a message; a run whose last datagram
// is shorter keeps GSO.
//
// The environment variable BATCHCONN_DISABLE, read once per process,
// turns features off for every conn: "gso", "gro", "batch" (every conn
// served one datagram at a time), or "all", separated by commas. An
// unknown word is reported once on standard error and ignored.
//
// GRO is turned on for a conn only once a read finds two datagrams in a
// row from one sender waiting: turning it on for the first socket of a
// machine flips a kernel-wide switch (code patched on every CPU, about a
// millisecond), and closing the last such socket flips it back, a price
// that only bulk from one sender repays. A conn that reads replies one at a
// time, or that serves many peers a datagram each, never turns it on. GRO
// changes what the socket itself returns: read it only through the conn.
//
// # Source addresses
//
// On a socket bound to a wildcard address (0.0.0.0 or ::), a datagram to a
// peer leaves from the local address that peer last wrote to, so that a
// server on a host with several addresses (a secondary address, a VIP,
// IPv6 privacy addresses) answers each query from the address it was
// asked at, as clients that check the source (DNS clients among them)
// require. miekg/dns does this itself on a *net.UDPConn, with ReadMsgUDP
// and WriteMsgUDP, which a wrapped conn does not offer; batchconn does it
// for it. The kernel reports each datagram's destination (IP_PKTINFO,
// IPV6_RECVPKTINFO); a query sent to a multicast or broadcast address is
// answered from the receiving interface's own address. A conn remembers
// the peers heard from most recently, at most 2048; a peer not heard
// from, or forgotten, gets the kernel's choice, as on plain. On a host
// with one address nothing changes. Config.KernelChoosesSource turns it
// off.
//
// # Errors
//
// What plain *net.UDPConn refuses at once, WriteTo refuses at once with
// plain's error: a nil, non-UDP or wrong-family address, a datagram too
// long for its family, a passed write deadline, a closed conn. The kernel
// may still refuse a queued datagram when the queue is sent (a firewall
// rule, an unreachable network, a route MTU too small for a datagram that
// must not fragment): that datagram is skipped, the rest of the batch is
// sent, and the failure is counted in Stats and returned by the next Flush
// or Close. WriteTo never returns another datagram's failure. When the
// queue cannot be sent because the socket buffer is full, the WriteTo
// that needs room blocks until the write deadline, as plain blocks; no
// datagram is dropped to make room.
//
// A socket error the kernel reports on reads (ECONNREFUSED on a connected
// socket after an ICMP port unreachable) is returned by ReadFrom once, as
// plain returns it, and the conn keeps working. Datagrams already taken
// into the read ring when the error arrives come before it, as they
// would on plain for a reader that had read them a moment earlier.
//
// Close sends the queue before it closes the socket and returns the first
// failure it has not yet reported. Datagrams still in the read ring when
// the conn is closed are discarded, as are those still in the kernel's
// receive buffer on plain.
//
// # Methods it does not offer
//
// *PacketConn has the methods of *net.UDPConn that keep datagrams going
// through its ring and queue: net.PacketConn and net.Conn,
// ReadFromUDP, WriteToUDP, ReadFromUDPAddrPort, WriteToUDPAddrPort,
// SetReadBuffer and SetWriteBuffer, SyscallConn for socket options (its
// Control reaches the socket; its Read and Write refuse), and ReadMsgUDP
// (from the ring, without control messages), which with SyscallConn lets
// golang.org/x/net/ipv4 and ipv6 set options on the conn (JoinGroup,
// SetTOS). It deliberately lacks File and WriteMsgUDP (and the AddrPort
// forms of ReadMsgUDP and WriteMsgUDP): libraries that find ReadMsgUDP
// and WriteMsgUDP together (quic-go among them) take the socket over and
// read and write it themselves, which would bypass the queue, reorder
// datagrams against it and leave the ring's datagrams unread. Without
// them such libraries use ReadFrom and WriteTo, and are batched; quic-go
// still sets don't-fragment through SyscallConn and discovers the path
// MTU. Unwrap returns the socket for callers that need it anyway.
// Batching tells whether a conn batches or is served one datagram at a
// time.
//
// # Platforms
//
// Batching needs recvmmsg and sendmmsg: Linux. Elsewhere, and for any
// net.PacketConn that is not a *net.UDPConn (a wrapper of the caller's
// own, say), the conn is served one datagram at a time through the
// wrapped conn's own methods, with its behaviour exactly, and Flush has
// nothing to do.
//
// # Memory
//
// A conn's cost follows its traffic. New allocates about 1.2 KiB and, for
// an IPv4 socket, makes no system call (an IPv6 one asks whether it is
// v6-only; one bound to a wildcard address asks for packet info, see
// Source addresses); headers, buffers and the offload probe wait until a
// conn needs them. Measured with cmd/batchbench: a conn that carries one
// query allocates 1.6 KiB where plain allocates 0.36 KiB, and one that
// exchanged a datagram and went quiet holds 1.45 KiB of heap where plain
// holds 0.32 KiB (2000 conns); the tests hold both under 2 KiB more than
// plain.
//
// Reads: a ReadFrom that finds the ring empty receives the first datagram
// straight into the caller's buffer, as plain does. Only when the kernel
// holds more does the ring take slots of ReadSlotSize bytes (64 KiB by
// default), from a pool shared by every conn of the process, for the
// rest; it gives them back once it has handed them out. A conn that reads
// a reply at a time, that waits in ReadFrom, or that is idle holds none.
// How many slots a refill takes follows what the kernel held at the last
// reads: one more than the caller's buffer at first, doubling while reads
// fill all they offer, up to BatchSize (4 MiB with the defaults), and
// halving after eight in a row that fill less than a quarter.
//
// The pool bounds the slots that all conns hold at once at 32 MiB (512
// slots of 64 KiB: eight conns receiving full batches at the same moment);
// a refill that would pass the bound takes fewer slots, down to none (one
// datagram straight into the caller's buffer, as plain reads). Slots given
// back wait for the next refill, up to 32 MiB in all, and are freed when
// they go unused through two ages of the pool, a second or more apart and
// each after a garbage collection: memory taken by a burst goes back
// within seconds once the burst is over. One conn receiving a flood
// of 64 KiB datagrams holds one block of 64 slots (4 MiB) while it reads.
//
// With GRO on, every datagram goes through a slot (a coalesced buffer
// needs 64 KiB), so that a conn receiving bulk holds its slots while it
// has datagrams to hand out, and one while it waits. While the kernel
// hands over coalesced runs, a refill takes at most 8 slots (512 KiB,
// some 400 datagrams of 1200 B): the datagrams stay in the CPU's cache
// between the kernel's copy and ReadFrom's, which made ReadFrom from a
// GSO sender 15% faster than with 64.
//
// Writes: a datagram queued on an empty queue takes a block of QueueBytes
// (256 KiB; 2 MiB with GroupByDestination) and the system call's headers
// from a pool, and the queue gives it back once sent. A conn whose writes go out at once, as isolated
// datagrams and replies do, never takes one. The flush timer (on Linux a
// timerfd and a goroutine parked on it) is made by the first queued
// datagram and let go once the queue has been unused for a second; one
// goroutine per process watches for that while some conn holds a timer.
package batchconn

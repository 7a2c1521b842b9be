// Package batchconn is a drop-in net.PacketConn that moves UDP datagrams
// many to a system call.
//
// New wraps a *net.UDPConn, called plain below: the same socket used
// directly. Callers still read and write one datagram a call; on Linux,
// ReadFrom serves datagrams from a ring that one recvmmsg refills, and
// WriteTo copies each datagram into a queue that one sendmmsg sends, with
// UDP segmentation offload where the kernel does it right.
//
//	pc, err := net.ListenUDP("udp", addr)
//	...
//	conn := batchconn.New(pc, nil) // nil: the defaults
//	defer conn.Close()             // sends what is queued, then closes pc
//
// Dial is net.Dial followed by New, for a client of one server. From New
// on, the conn owns the socket: use it only through the conn, and close
// the conn.
//
// What is not stated otherwise here is as on plain: the bytes, sender
// addresses, truncation of a datagram longer than the caller's buffer
// (the rest discarded, no error), zero-length datagrams, and errors (a
// *net.OpError with plain's Op, Net, Source and Addr, wrapping
// net.ErrClosed, os.ErrDeadlineExceeded or an *os.SyscallError).
//
// # When a written datagram leaves
//
// WriteTo copies the datagram; the caller may reuse its buffer at once. A
// WriteTo that finds the queue empty sends its datagram at once, in the
// caller's goroutine, as plain would, unless more datagrams are evidently
// coming: the last send ended microseconds ago or is still under way (a
// writer in a loop, or several), or the read ring holds requests still to
// answer and the last send ended less than MaxDelay ago. So an isolated datagram, or the reply of a request/response
// loop, waits for nothing. Otherwise the datagram is queued, and the
// queue leaves:
//   - when it holds a full batch or has no room for the next datagram
//     (Config.QueueBytes), in the goroutine of the WriteTo that filled
//     it. A batch is Config.BatchSize datagrams; with GSO, 8 times as
//     many, or fewer where they make BatchSize runs;
//   - when its oldest datagram has waited Config.MaxDelay: on a timer, or
//     at the next WriteTo, should the timer's goroutine be waiting for a
//     CPU the process's other goroutines hold;
//   - when a ReadFrom finds the ring empty and is about to wait for the
//     network: a request leaves before the wait for its answer;
//   - on Flush and on Close.
//
// When the timer finds only one or two datagrams in a queue begun because
// a send had just ended, the writers were taking turns (a server answering
// from a goroutine per request), and the conn sends the next such
// datagrams at once.
//
// # Errors
//
// Where plain fails at once, WriteTo fails at once with plain's error: a
// nil, non-UDP or wrong-family address, a datagram too long for its
// family, a passed write deadline, a closed conn. A datagram sent at once
// fails from its WriteTo, as on plain. A queued datagram the kernel
// refuses when the queue is sent (a firewall rule, an unreachable network,
// a route MTU too small for a datagram that must not fragment) is tried
// once more, then skipped: the rest still go, the datagram is counted in
// Stats.WriteFailures, and the first such failure is returned by the next
// Flush or Close. WriteTo never returns another datagram's failure. A
// WriteTo that must send the queue to make room blocks while the socket
// buffer is full, as plain blocks, up to the write deadline; nothing is
// dropped to make room.
//
// Flush returns the first failure since the last Flush or Close, or the
// passed deadline or closed conn that stopped its own send (what it did
// not send stays queued). Close sends the queue, as far as the write
// deadline allows, closes the socket and returns the first failure not
// yet reported; what it could not send is lost, and counted in
// WriteFailures. Where a WriteTo or Flush is blocked sending, Close
// closes the socket first and that call fails with net.ErrClosed, as
// plain's Close wakes a blocked WriteTo. Datagrams left in the ring are
// discarded, as plain's kernel discards its receive buffer.
//
// An error the kernel reports on reads (ECONNREFUSED on a connected
// socket after an ICMP port unreachable) is returned by one ReadFrom, as
// on plain, after the datagrams already in the ring.
//
// # Deadlines, concurrency and order
//
// Deadlines act as on plain, on blocked calls too: a ReadFrom reads in
// its own goroutine; there is no background reader. One exception: a
// ReadFrom that sends the queue before it waits blocks, as any sender of
// the queue does, while the socket buffer is full, up to the write
// deadline, not the read deadline. A passed read deadline fails ReadFrom
// even while the ring holds datagrams, as plain fails while the kernel
// holds some; they are served once it is moved. The write deadline bounds
// how long WriteTo, Flush and Close block on a full socket buffer,
// whoever sends the queue; what a passed deadline holds back stays queued
// and leaves once it is moved.
//
// All methods are safe for concurrent use. Datagrams are read in the
// order the kernel received them. Datagrams to one destination leave in
// WriteTo order, and so do datagrams to destinations that may be one
// socket on this host: the same port at a loopback, unspecified,
// multicast or broadcast address or at one of the host's own addresses
// (read from its interfaces, and again within about a second of a
// change), an IPv4 address in either form. When the queue goes out with
// GSO, each other destination's datagrams leave together, A B C A B C as
// A A B B C C, so that a server sending to many peers in turn gets runs
// that GSO carries; only a host written to at two of its addresses can
// see the order change. Config.StrictOrder keeps WriteTo order across all
// destinations.
//
// # Segmentation offload
//
// With UDP GSO, a run of queued datagrams to one destination, all of one
// size but the last, which may be shorter, leaves as one message that the
// kernel cuts up; a lone datagram never carries UDP_SEGMENT. With UDP GRO,
// the kernel hands over datagrams of one sender as one buffer, which
// ReadFrom hands out one datagram at a time, as plain would. GRO is turned
// on for a conn only once a read finds two datagrams in a row from one
// sender waiting, and only with the default ReadSlotSize: the machine's
// first GRO socket flips a kernel-wide switch (code patched on every CPU,
// about a millisecond), which only bulk from one sender repays. GRO
// changes what the socket itself returns: read it only through the conn.
//
// Where the kernel refuses segmentation offload for a message, its
// datagrams are resent without it, none lost or doubled, and
// Stats.OffloadFallbacks counts the refusal. A destination whose route refuses segments of some length (an
// MTU below them, as for a path-MTU probe) gets segments that long and
// longer one a message, shorter ones still segmented; a third refusal,
// or EIO (IPsec, a device without checksum offload), turns GSO off for
// it, and once 64 destinations are limited, for the socket. A refusal
// that is the socket's turns GSO off for the socket.
//
// The kernel's release decides what is used: GSO from Linux 5.0, GRO from
// 5.12, neither on a release that cannot be read. From 7.0-rc1 through
// 7.1.4, which corrupt segmented messages whose segments all have one
// length (Linux commit b10b446, fixed in 7.1.5), such runs leave one
// datagram a message, in the same sendmmsg; a run whose last datagram is
// shorter keeps GSO. The segments one message may carry (64, or 128 on
// newer kernels) are probed once per process, between two loopback
// sockets of its own. Config.NoOffload turns offload off for a conn.
//
// The environment variable BATCHCONN_DISABLE, read once per process when
// the first conn is made, turns features off for every conn: "gso",
// "gro", "batch" (every conn served one datagram at a time) or "all",
// separated by commas. An unknown word is reported once on standard error
// and ignored.
//
// # Source addresses
//
// On a socket bound to a wildcard address (0.0.0.0 or ::), a datagram to
// a peer leaves from the local address that peer last wrote to, learnt
// from each received datagram's destination (IP_PKTINFO,
// IPV6_RECVPKTINFO), so that a server on a host with several addresses
// answers from the address it was asked at, as DNS clients require. (Plain
// leaves the source to the kernel's route; miekg/dns sets it itself with
// WriteMsgUDP, on a *net.UDPConn only.) A source a caller sets on a
// write (WriteMsgUDP with IP_PKTINFO or IPV6_PKTINFO) wins. A peer that
// wrote to a multicast or broadcast address is answered from the
// receiving interface's address.
// The conn remembers the most recent peers, at most 2048; any other gets
// the kernel's choice. Config.KernelChoosesSource turns this off.
//
// # Memory
//
// New allocates the conn alone and, for an IPv4 socket, makes no system
// call (an IPv6 one asks whether it is v6-only, a wildcard-bound one
// reads whether its owner turned packet info on and turns it on, the
// first conn of a process reads the kernel release). Buffers, headers and the offload probe wait until traffic
// needs them. An idle conn that exchanged a datagram holds about 1,300
// bytes of heap more than plain (1.6 KB against 0.3 KB), and a fresh conn
// that dials, carries one query and closes allocates about 1,370 bytes
// more (1.8 KB against 0.4 KB): BenchmarkIdleConns, BenchmarkFreshConn.
// The tests hold both under 2 KiB more than plain.
//
// Reads: a ReadFrom that finds the ring empty receives the first datagram
// straight into the caller's buffer, as plain does. Only when the kernel
// holds more does a refill take ReadSlotSize slots (64 KiB by default)
// from a pool shared by every conn of the process, as many as the last
// reads found waiting, up to BatchSize (4 MiB with the defaults) and at
// most 8 (512 KiB) while the kernel hands over coalesced runs; the ring
// gives them back once drained. A conn that reads a reply at a time,
// waits in ReadFrom or is idle holds none; with GRO on, every datagram
// goes through a slot, and a conn waiting in ReadFrom holds one. Slots in
// use in the process are bounded at 32 MiB (a refill that would pass it
// takes fewer, down to none); as many given back are kept for reuse, and
// freed within seconds once unused.
//
// Writes: a datagram entering the empty queue takes a block of QueueBytes
// (by default 256 KiB, or 1 MiB for a conn whose queues fill with
// datagrams to several destinations) and the system call's headers from a
// pool, given back once the queue is sent; a conn whose datagrams all
// leave at once takes none. The flush timer (on Linux a timerfd and a
// goroutine) is made by the first queued datagram and let go once the
// queue has gone unused for a second.
//
// # Control messages
//
// ReadMsgUDP, ReadMsgUDPAddrPort and ReadBatch return with each datagram
// the control messages the socket delivered with it, as plain returns
// them: those the caller turned on (through SyscallConn, x/net's
// SetControlMessage, or before New), with plain's oobn, MSG_TRUNC and
// MSG_CTRUNC. The conn's own (UDP_GRO, and the packet info it turns on
// on a wildcard-bound socket) stay out unless the caller turned them on
// too: SyscallConn's Control shows the caller the options as it left
// them, and the conn watches what the caller changes. A datagram that
// came coalesced (GRO) gets its buffer's messages. The ring takes control
// messages from a conn's first message read on, so a caller who never
// asks for them pays nothing.
//
// WriteMsgUDP, WriteMsgUDPAddrPort and WriteBatch queue a datagram with
// the caller's control messages where the conn can tell at the call that
// the kernel will take them: a source address the socket received at,
// TOS or traffic class (ECN), TTL or hop limit, a segment size
// (UDP_SEGMENT). A segmented message leaves as the caller cut it, in a
// sendmmsg with others, through the offload gates and fallbacks above:
// where offload is off or refused it goes as separate datagrams of that
// size. Anything else goes through plain at once, after the queue, with
// plain's answer, so that a queued datagram never fails for a reason
// plain reports at the call. quic-go, which looks for these methods and
// for ReadBatch, reads and writes through the ring and the queue, with
// its ECN, packet info and GSO.
//
// # What differs from *net.UDPConn
//
// Besides when a queued datagram's failure is reported (Errors), where
// replies leave from on a wildcard-bound socket (Source addresses) and
// the order across destinations (above):
//   - SyscallConn reaches the socket through Control, for options; its
//     Read and Write fail with an error wrapping errors.ErrUnsupported,
//     since reading or writing the descriptor would take datagrams the
//     ring is owed and send past queued ones. x/net's ipv4.PacketConn and
//     ipv6.PacketConn read and write that way: call the conn's own
//     ReadBatch, WriteBatch, ReadMsgUDP and WriteMsgUDP instead (their
//     option helpers, JoinGroup, SetTOS, SetControlMessage, work).
//     UDP_GRO and UDP_SEGMENT are the conn's: do not set them through it;
//     a getsockopt of UDP_GRO may read the conn's setting;
//   - datagrams already in the ring when a conn's first message read
//     comes were received without control messages, and return none;
//   - ReadBatch and WriteBatch take no flags;
//   - there is no File;
//   - Flush, Stats, Batching and Unwrap are the conn's own;
//   - a conn that wraps anything but a *net.UDPConn has a *net.UDPConn's
//     methods all the same (SyscallConn, SetReadBuffer, ReadMsgUDP,
//     WriteMsgUDP, and the rest), and those the wrapped conn lacks fail
//     with an error wrapping errors.ErrUnsupported. A library that looks
//     for them can do worse than on the wrapped conn itself: quic-go's
//     Transport fails on SyscallConn's error, where on the wrapped conn it
//     would read one datagram at a time. Such a conn gains nothing from
//     batchconn: hand it to libraries unwrapped.
//
// # Platforms
//
// Batching needs recvmmsg and sendmmsg: Linux. Elsewhere, for a
// net.PacketConn that is not a *net.UDPConn, and with
// BATCHCONN_DISABLE=batch, every call goes to the wrapped conn's own
// methods, with its behaviour exactly; Flush has nothing to send and
// Stats stays zero. Where the kernel or a seccomp filter refuses recvmmsg
// or sendmmsg (ENOSYS, EPERM), the conn goes on one datagram at a time
// through plain's calls, losing nothing, and so does every conn made
// after it in the process. Batching tells whether a conn batches.
package batchconn

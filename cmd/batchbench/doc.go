// Command batchbench shows what batchconn would gain you over a plain
// *net.UDPConn, and over the batching loop you would otherwise write with
// golang.org/x/net, for the kinds of traffic UDP programs have. It runs
// on loopback, both ends in this process; each figure is set beside
// plain's from the same run.
//
//	go run ./cmd/batchbench [flags]
//
//	-scenarios LIST    scenarios to run, comma-separated (default all)
//	-sizes 64,1200     payload sizes in bytes for send, send16, recv, recvgso
//	-duration 300ms    length of one run of one mode
//	-rounds 3          runs per mode; the table shows the median
//	-json              print JSON (snake_case keys) instead of tables
//	-svg FILE          also write a chart of each mode against plain
//	-v                 a progress line per run on stderr (default: one
//	                   line rewritten in place on a terminal, else quiet)
//	-target HOST:PORT  measure over a network (see below)
//
// A default run takes a minute or two. The modes of a scenario take
// turns (plain, batchconn, ..., plain, ...) so that the machine's drift
// hits them alike. Compare rows of one run; the header gives the load
// average: other programs' load makes the figures noisy.
//
// # Modes
//
//   - plain: the *net.UDPConn itself, a system call per datagram.
//   - batchconn: batchconn.New(conn, nil), with UDP GSO and GRO where the
//     kernel has them.
//   - strict (fanout): Config{StrictOrder: true}: datagrams to different
//     destinations leave in WriteTo order, as from a *net.UDPConn, where
//     batchconn by default lets each destination's queued datagrams leave
//     together, so that GSO carries datagrams sent to many peers in turn.
//   - nooffload: Config{NoOffload: true}: batching alone.
//   - xnet: no batchconn, the scenario's loop written by hand with x/net's
//     ipv4.PacketConn ReadBatch and WriteBatch of 64 messages: the
//     alternative to using batchconn.
//   - raw (Linux, loopback): the same loop calling sendmmsg and recvmmsg
//     directly, 64 datagrams a call, no offload: the batch system calls
//     with nothing in between.
//   - rawgro (Linux, recvgso): raw's receive loop on a socket with UDP_GRO,
//     each buffer split in place: the kernel's GRO with nothing in between.
//
// # Scenarios
//
//   - send: one goroutine writes to one plain receiver as fast as the conn
//     takes datagrams (a bulk sender). send16: the same round-robin to 16
//     receivers, so that no two datagrams in a row share a destination (a
//     server answering many peers).
//   - fanout: send16 with 1200 B datagrams (a media relay or game server)
//     to receivers that read through batchconn, as batching peers do, so
//     that the figure is the sender's.
//   - recv: one goroutine reads while two senders keep its queue full (a
//     busy server). recvgso: the same from one sender using GSO, as
//     quic-go, wireguard-go and batchconn send.
//   - echo: an echo server on the conn, its client keeping 64 requests in
//     flight (a DNS or game server under load).
//   - pingpong: the same server, one request at a time: round-trip time.
//   - lone: one datagram every 200µs (sparse traffic): the delay from
//     WriteTo to the receiver's read.
//   - allocs: heap objects a call allocates per datagram, steady state.
//   - fresh: a connected socket dialed, wrapped, used for one 40 B query
//     and closed, query after query (DNS, NTP, STUN clients).
//   - idle: 2000 conns that each made one query and stay open: the
//     Go heap each holds (kernel buffers not counted).
//
// # Reading the tables
//
// DELIVERED/S counts datagrams that reached the receiving code, not those
// a sender's kernel accepted: past its receiver's pace a sender gains
// nothing, and the kernel drops the rest (KERNEL DROPS, with their share
// of those sent). RESPONSES/S and QUERIES/S count answers. MB/S is payload
// in 10^6 bytes. VS PLAIN is the row's figure over plain's. CPU µs
// (Linux) is the whole process's CPU time, both ends of the traffic (in
// recv and recvgso also the senders, which run flat out), per unit
// delivered. ALLOCS is heap objects per unit. P50 and P99 are delays in
// µs. ALLOCATED/QUERY (fresh) is heap allocated per query; HEAP/CONN
// (idle) heap held per open conn.
// -json has the same, each round's rate, and how often a kernel refused
// batchconn offload (the socket then went on without).
//
// Every datagram carries a sequence number. Receivers check sizes and
// order, and each run checks that every datagram sent arrived or was
// counted as dropped by the kernel. Anything amiss is listed under
// PROBLEMS and the exit status is 1.
//
// # Over a network
//
// On one machine run "batchbench -listen :9000"; on the other,
// "batchbench -target host:9000". The server answers, until killed, on 20
// ports from P: echo servers on plain at P, batchconn at P+1, nooffload at
// P+18 and xnet at P+19, and sinks that read and discard at P+2 to P+17.
// The client runs send, send16, fanout (counting what its kernel sent:
// SENT/S), echo and pingpong against them, without the raw modes; the
// other scenarios need both ends in one process.
package main

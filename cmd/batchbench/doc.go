// Command batchbench shows what batchconn would gain you over a plain
// *net.UDPConn, and over the batching loop you would otherwise write with
// golang.org/x/net, for the kinds of traffic UDP programs have. It runs
// on loopback, both ends in this process, each figure beside plain's
// from the same run:
//
//	go run ./cmd/batchbench [-scenarios send,echo] [-sizes 64,1200] [-json] [-svg FILE]
//
// ("go run ./cmd/batchbench -h" lists every flag.) A default run takes a
// minute or two. The modes of a scenario take turns, so that the
// machine's drift hits them alike: compare rows of one run; the header
// gives the load average, as other programs' load makes figures noisy.
//
// # Modes
//
//   - plain: the *net.UDPConn itself, a system call per datagram.
//   - batchconn: batchconn.New(conn, nil), with UDP GSO and GRO where the
//     kernel has them. nooffload: Config{NoOffload: true}, batching alone.
//   - strict (fanout): Config{StrictOrder: true}: datagrams to different
//     destinations leave in WriteTo order, where batchconn by default
//     lets each destination's queued datagrams leave together for GSO.
//   - xnet: the scenario's loop written by hand with x/net's ReadBatch and
//     WriteBatch of 64 messages: the alternative to batchconn.
//   - raw (Linux): the same loop calling sendmmsg and recvmmsg directly, no
//     offload, doing what a conn must and no more: each payload is copied
//     from the caller's buffer into a message and its destination encoded,
//     each datagram received is copied out of its message into the
//     caller's buffer and its sender decoded. rawgso (send, send16): raw's
//     sends with UDP_SEGMENT, each queue of batchconn's size sent as runs
//     of each destination's datagrams, as batchconn sends them. rawgro
//     (recvgso): raw's reads with UDP_GRO, each run cut into its
//     datagrams, each copied out. The system calls with nothing in
//     between: a ceiling for the conns.
//
// # Scenarios
//
//   - send: one goroutine writes to one receiver as fast as the conn takes
//     datagrams (a bulk sender); send16: round-robin to 16 receivers (a
//     server answering many peers); fanout: send16 with 1200 B datagrams
//     to receivers that read through batchconn, as batching peers do (a
//     media relay or game server).
//   - recv: one goroutine reads while two senders keep its queue full (a
//     busy server); recvgso: from one sender using GSO, as quic-go,
//     wireguard-go and batchconn send.
//   - echo: an echo server on the conn, its client keeping 64 requests in
//     flight; pingpong: one request at a time, round-trip time.
//   - lone: one datagram every 200µs: the delay from WriteTo to the read.
//   - allocs: heap objects a call allocates per datagram.
//   - fresh: a socket dialed, wrapped, used for one 40 B query and closed
//     (DNS, NTP, STUN clients); idle: 2000 conns that made one query each
//     and stay open: the Go heap each holds.
//
// # Reading the tables
//
// DELIVERED/S counts datagrams that reached the receiving code; past its
// receiver's pace a sender gains nothing, and the kernel drops the rest:
// KERNEL DROPS, from /proc/net/udp, with their share of those sent. A
// receiver with GRO (recvgso, fanout) has a coalesced buffer dropped as
// one, however many datagrams it held: there the column is a lower bound.
// MB/S is payload in 10^6 bytes; VS PLAIN the figure over plain's. CPU µs
// (Linux) is the whole process's CPU time, both ends, per unit delivered;
// ALLOCS heap objects per unit; P50 and P99 delays in µs. Every datagram
// carries a sequence number: receivers check sizes and order, and each
// run that every datagram sent arrived or was dropped by the kernel
// (echo: where unanswered requests got to). Anything amiss is listed under
// PROBLEMS, and the exit status is 1.
//
// # Over a network
//
// "batchbench -listen :9000" on one machine serves 20 ports from 9000 (see
// -h); "batchbench -target host:9000" on the other runs send, send16,
// fanout (counting what its kernel sent: SENT/S), echo and pingpong.
package main

// Command batchbench tells someone deciding whether to use batchconn what
// they would gain: for each scenario, what a plain *net.UDPConn delivers
// and at what CPU cost, and the same for batchconn and for the
// alternative they would otherwise write, a loop over golang.org/x/net's
// ReadBatch and WriteBatch, side by side in one run, each against plain.
//
// Usage:
//
//	go run ./cmd/batchbench [-duration 300ms] [-rounds 3] [-sizes 64,1200]
//	        [-scenarios send,send16,fanout,recv,recvgso,echo,pingpong,lone,allocs,fresh,idle]
//	        [-idle-conns 2000] [-json] [-svg FILE] [-target HOST:PORT]
//	go run ./cmd/batchbench -listen [HOST]:PORT
//
// With the defaults the whole run takes about a minute. A line on stderr
// tells which run is under way.
//
// # Modes
//
// The conn under test is, in turn:
//
//   - plain: the *net.UDPConn itself, one system call per datagram;
//   - batchconn: batchconn.New(conn, nil), its defaults, with UDP
//     segmentation offload on where the kernel has it (GSO: a run of
//     queued datagrams of one size to one destination leaves as one
//     message; GRO: datagrams of one sender arrive as one buffer);
//   - grouped: batchconn.New(conn,
//     &batchconn.Config{GroupByDestination: true}), the switch a server
//     that sends to many peers turns on: batchconn's defaults, and when
//     the queue is sent with GSO, each destination's queued datagrams
//     leave together, in WriteTo order, so that datagrams written to many
//     destinations in turn (A B C A B C) leave as runs GSO carries (A A B
//     B C C). Datagrams to different destinations may change order, which
//     only a receiver reached at two addresses sees; that is why it is not
//     the default;
//   - nooffload: batchconn.New(conn, &batchconn.Config{NoOffload: true}),
//     batching alone;
//   - xnet: no net.PacketConn, but the scenario's loop written by hand
//     with golang.org/x/net's ipv4.PacketConn (ipv6 for an IPv6 socket)
//     ReadBatch and WriteBatch of 64 messages, each with a buffer of its
//     own: what a user writes who rewrites their I/O for batching instead
//     of using batchconn. Sending, it copies the payload into each
//     message's buffer, stamps it, addresses it to the next destination
//     in turn and writes the 64 (again for the rest, should the kernel
//     take part); receiving, one ReadBatch takes up to 64 datagrams, with
//     their senders' addresses, which x/net allocates. As an echo server
//     it reads a batch and writes each datagram back to its sender with
//     one WriteBatch. On Linux x/net calls recvmmsg and sendmmsg; on other
//     systems it moves one message a call. No offload.
//   - raw (Linux only): the same loop as xnet's, but calling sendmmsg and
//     recvmmsg directly on the socket's descriptor through
//     syscall.RawConn: batches of 64 messages, one datagram each, no
//     offload, nothing else. raw is the batch system calls alone: what
//     batching without offload can reach in this harness, on this
//     machine. nooffload and xnet sit under it by what their own code
//     costs per datagram (batchconn's queue, ring and lock; x/net's
//     messages and addresses); batchconn with offload can pass it, since
//     GSO and GRO carry many datagrams through the kernel as one.
//   - rawgro (Linux only, recvgso only): raw's receive loop on a socket
//     with UDP_GRO: recvmmsg of 64 messages, each a 64 KiB buffer that
//     the kernel fills with a run of datagrams coalesced at the size its
//     UDP_GRO control message gives, split into them in place, no copy.
//     It is what the kernel's GRO delivers in this harness with nothing in
//     between: the ceiling for batchconn, which turns GRO on, where raw,
//     without it, is none.
//
// xnet, raw and rawgro wait in the runtime's poller, so the socket's
// deadlines hold for them as for the conns.
//
// send, send16 and recv run in plain, batchconn, nooffload, xnet and raw;
// recvgso in those and rawgro; fanout in plain, batchconn, grouped and
// nooffload; echo in plain, batchconn, nooffload and xnet; pingpong in
// plain, batchconn and xnet; fresh in plain, batchconn and nooffload;
// lone, allocs and idle in plain and batchconn. The modes of a scenario
// run interleaved (plain, batchconn, grouped, nooffload, xnet, raw,
// rawgro, plain, ...: those it has),
// for -rounds rounds of -duration each, so that the machine's drift hits
// them alike; each figure is the median of its mode's rounds. Only the
// conn under test changes between the modes: the code that drives it is
// the same, and so is everything around it; xnet's and raw's loops do
// what that code does, a batch at a time.
//
// # Scenarios
//
// All run on loopback (127.0.0.1), each conn in a socket of its own, both
// ends of the traffic in this process.
//
//   - send: one goroutine calls WriteTo in a loop, to one destination, for
//     the duration; the conn is then closed, which sends what batchconn
//     still queues. The receiver is a plain socket drained by a goroutine.
//     DELIVERED/S counts the datagrams the receiver read, over the time
//     from the first write to its last read: a sender faster than its
//     receiver gains nothing past the receiver's pace, and the kernel
//     drops the rest at the receiver's full queue (counted from
//     /proc/net/udp; any other loss is reported as a problem).
//   - send16: send round-robin over 16 plain receivers, each drained by a
//     goroutine of its own, through WriteToUDPAddrPort. No two datagrams
//     in a row go to one destination: offload has no run to carry.
//   - fanout: send16 with 1200-byte datagrams, the traffic of a server
//     that sends each packet to many peers: a media relay (an SFU
//     forwarding each packet to every subscriber), a game server sending
//     state to its players. With its defaults batchconn keeps WriteTo
//     order across destinations, so that its GSO finds runs of one
//     datagram, as in send16; grouped lets each destination's datagrams
//     leave together, as runs GSO carries. The 16 receivers read
//     through batchconn, as a peer running batchconn or quic-go reads
//     (batches, and GRO once runs come from one sender), in every mode:
//     on two cores, receivers that pay a system call a datagram, with
//     the kernel cutting GSO runs up for them on the sender's CPU, take
//     most of the machine and measure themselves, where in the field the
//     peers are other machines. The receivers check, as everywhere, that
//     each gets its datagrams in the order sent.
//   - recv: one goroutine drains the conn under test with ReadFrom for the
//     duration, while two feeders (batchconn conns with offload off, each
//     on a goroutine and a CPU of its own, the same in every mode) keep its
//     receive queue full of ordinary datagrams. DELIVERED/S is the rate
//     ReadFrom returned datagrams at (xnet: ReadBatch, raw and rawgro:
//     recvmmsg, rawgro's datagrams counted after it splits them). Then the
//     feeders stop and the receiver reads what its queue still holds, so
//     that the drops are counted exactly. The feeders are meant to outpace
//     every receiver: the drops show how far each falls behind. Where none
//     are dropped (a short run, a busy machine, two cores shared by three
//     goroutines), the feeders set the pace, and DELIVERED/S only bounds
//     the receiver from below.
//   - recvgso: recv with one feeder that sends with offload (batchconn's
//     defaults): each message it sends carries up to 64 or 128 datagrams.
//     A receiver with GRO (batchconn, rawgro) gets them as one buffer,
//     one without as datagrams the kernel cut up for it. One such feeder
//     outpaces any receiver, and on two cores leaves the receiver a core
//     of its own.
//   - echo: an echo server (ReadFrom, then WriteTo back to the sender; for
//     xnet, ReadBatch then WriteBatch) runs on the conn under test. A
//     client keeps 64 requests of 64 bytes in flight from one goroutine.
//     The client is a batchconn with its defaults in every mode, so that
//     the server, not the client, sets the pace. If no reply comes for
//     200ms, the client takes the requests in flight for lost and refills
//     the window (a reply that comes later still counts as answered).
//     After the duration it waits up to 1s for the replies still due
//     (200ms with -target). RESPONSES/S counts the replies read within the
//     duration; on loopback every request without a reply must have been
//     dropped by the kernel at the server's or the client's queue.
//   - pingpong: the echo server again; a plain client sends one 64-byte
//     request at a time and waits for its reply (200ms at most; a later
//     reply counts as answered, with no round trip), up to 20000 round
//     trips or the duration. P50 and P99 are round-trip times.
//   - lone: the conn under test sends one 64-byte datagram, then sleeps
//     until 200µs have passed since that send began (in nanosleep on
//     Linux: no busy wait, and unlike the runtime's timers, which oversleep
//     to a millisecond in an idle process, it keeps to about 300µs), and
//     so on, to a plain receiver in the process. Each datagram carries the
//     time taken just before its WriteTo; the receiver subtracts it from
//     the time its ReadFrom returned. P50 and P99 are these one-way delays.
//   - allocs: one goroutine calls WriteTo, WriteToUDPAddrPort, ReadFrom or
//     ReadFromUDPAddrPort (a row each) on the conn under test for 64
//     batches of 64 datagrams of 64 bytes, after one batch to warm up,
//     and counts the heap objects the process allocated meanwhile
//     (runtime.MemStats.Mallocs) per datagram. The writes go to a plain
//     socket that never reads; for the reads, a plain sender fills the
//     queue with a batch before each batch of reads, outside the count.
//   - fresh: a socket per query, as DNS resolvers, NTP and STUN clients
//     and health checkers use UDP: for each query it dials a connected UDP
//     socket (net.DialUDP) to a plain echo server, wraps it with
//     batchconn.New in the batchconn modes, writes a 40-byte request, reads
//     the reply and closes the conn; one query after another for the
//     duration, 20000 at most. QUERIES/S counts them; ALLOCATED/QUERY is
//     the heap the process allocated meanwhile (runtime.MemStats.TotalAlloc)
//     per query. The echo server allocates nothing a datagram, so that
//     figure is the client's.
//   - idle: -idle-conns conns (2000) are opened as fresh opens them, each
//     exchanging one query with the echo server, and stay open; HEAP/CONN
//     is the Go heap held (runtime.MemStats.HeapAlloc after two
//     runtime.GC calls) after they opened less before, per conn. Then all
//     are closed. The kernel's socket buffers are not counted. idle runs
//     one round whatever -rounds: its figure is a count, not a rate.
//
// # Reading the report
//
// The report has a block per scenario, a line per size and mode:
//
//   - DELIVERED/S: datagrams that reached the receiving code per second
//     (echo: RESPONSES/S; fresh: QUERIES/S), and MB/S their payload bytes,
//     in 10^6 bytes a second. With -target, send, send16 and fanout show
//     SENT/S, what the sender's kernel accepted: nothing counts the far
//     end.
//   - VS PLAIN: the mode's figure over plain's in the same run, from the
//     medians.
//   - CPU µs/DG: the process's CPU time, user and system
//     (getrusage(RUSAGE_SELF); not measured where there is none), while
//     the run measured, over the datagrams delivered (responses, round
//     trips, queries). Both ends of the traffic run in the process; in
//     recv and recvgso also the feeders, which run flat out in every mode,
//     so there it follows the rate.
//   - ALLOCS/DG: heap objects allocated in the whole process while the run
//     measured, per datagram delivered.
//   - KERNEL DROPS: the datagrams sent that never reached the receiving
//     code, and their share of those sent, over all rounds together; on
//     loopback the kernel dropped them at a full receive queue. echo and
//     pingpong: requests without a reply. "-" where that is not known.
//   - P50 and P99: pingpong's round trips and lone's one-way delays, in
//     microseconds, the median over the rounds of each round's percentile.
//   - fresh's ALLOCATED/QUERY and idle's HEAP/CONN and ALL CONNS: see the
//     scenarios.
//
// The allocs block shows a call's allocations per datagram, plain and
// batchconn side by side. NOTES, if any, tell of a batchconn socket whose
// kernel refused offload (Stats.OffloadFallbacks), which then went
// without it.
//
// A warning heads the report when the machine is busy: a one-minute load
// average above 0.5 per CPU before the run (/proc/loadavg), or more than
// 2% of the CPU time stolen by the hypervisor during it (/proc/stat).
// Other programs then take CPU time from the benchmark and its figures
// move from run to run. Compare rows of one run, not across runs.
//
// The receive queues are asked for 8 MiB (SetReadBuffer); the kernel caps
// that at net.core.rmem_max, which the header shows.
//
// -json prints the same as JSON, every key in snake_case: the machine
// (cpus, load_average, steal_pct, busy), and a result per row with its
// unit, per_sec and each round's, per_sec_vs_plain, sent_per_sec (send,
// send16, fanout: what the sender's kernel accepted), cpu_us_per_unit and
// cpu_vs_plain, p50_us and p99_us with their ratios, allocs_per_unit,
// alloc_bytes_per_query (fresh), heap_bytes_per_conn (idle) and
// bytes_vs_plain, sent, arrived, dropped and the kernel's own count
// (kernel_drops; for a receiver with GRO it counts a coalesced run as
// one), the datagrams per system call, the batchconn modes' summed Stats
// (stats, its counters in snake_case) and their offload shares, and
// xnet's, raw's and rawgro's counts of their batch calls (batch_calls).
//
// -svg FILE also writes a chart of every mode's figures over plain's
// (delivered per second, CPU time per datagram, median delay, memory),
// with a caption that says what it shows; stderr says where it wrote it.
// View it in a browser or convert it (rsvg-convert -o chart.png FILE).
//
// # Checks
//
// Every datagram carries a sequence number; receivers check that each
// datagram has the size sent and that numbers never repeat or go back
// (loopback keeps in order what one CPU sends, and each recv feeder keeps
// to one CPU; gaps are drops), and the scenarios check that every datagram
// sent either arrived or was counted as dropped by the kernel, that
// batchconn's Stats agree with what its caller saw, and that nooffload used
// no offload. xnet and raw stamp their datagrams, and they and rawgro (each
// datagram it splits out) are checked as the other modes are; fresh and
// idle check that each reply is the echo of its request. One exception: a
// receiver with GRO (recvgso's batchconn and rawgro) is handed a run of
// datagrams as one buffer, and where that buffer finds no room the kernel
// counts one drop, not one per datagram; there the kernel's count only
// bounds the loss from below, and the drops are counted from what was read.
// Whatever breaks that, or an unexpected error, is listed under PROBLEMS,
// and the exit status is 1; otherwise it is 0. A run that does not end by
// itself (a hang in the conn under test) prints every goroutine's stack and
// exits with status 3.
//
// # Two machines
//
// To measure a real network path, run on one machine
//
//	batchbench -listen :9000
//
// and on the other
//
//	batchbench -target server-host:9000
//
// The -listen side serves, until killed, 20 consecutive UDP ports from
// the one given, P: at P an echo server on a plain *net.UDPConn, at P+1
// the same echo server on batchconn, at P+18 on nooffload, at P+19 the
// echo loop written with x/net's ReadBatch and WriteBatch (each sends
// every datagram back to its sender, as it is), and at P+2 to P+17
// sinks, plain sockets that read and discard. There is no other
// protocol: nothing to set up, no state. It logs what it echoed and
// discarded every 10 seconds.
//
// The -target side runs the scenarios that need nothing but these:
// send, send16 and fanout, whose sender (the conn under test) writes to
// the first sink and to all 16, and echo and pingpong, whose client
// drives the echo server of the mode measured. The conn under test is
// thus the client's for send, send16 and fanout, and the server's for
// echo and pingpong. Nothing on the far side is counted: send, send16 and
// fanout show what the sender's kernel accepted, and for echo and
// pingpong the drops include losses on the network, CPU time is the
// client's alone. recv, recvgso, lone, allocs, fresh and idle run on
// loopback only.
package main

// Command batchbench measures batchconn against a plain *net.UDPConn, side
// by side in one run, prints a table of the figures and their ratios, and
// says for each of the project's performance bars whether it is met, and
// for three of them what the raw batch system calls reach in the same run
// (the ceiling).
//
// Usage:
//
//	go run ./cmd/batchbench [-duration 300ms] [-rounds 3] [-sizes 64,1200]
//	        [-scenarios send,send16,recv,recvgso,echo,pingpong,lone,allocs]
//	        [-json] [-svg FILE] [-target HOST:PORT]
//	go run ./cmd/batchbench -listen [HOST]:PORT
//
// # Modes
//
// The conn under test is, in turn:
//
//   - plain: the *net.UDPConn itself;
//   - batchconn: batchconn.New(conn, nil), its defaults, with UDP
//     segmentation offload on where the kernel has it (GSO: a run of
//     queued datagrams of one size to one destination leaves as one
//     message; GRO: datagrams of one sender arrive as one buffer);
//   - nooffload: batchconn.New(conn, &batchconn.Config{NoOffload: true}),
//     batching alone;
//   - raw (send, send16 and recv only, on Linux only): no net.PacketConn
//     at all, but the scenario's loop written directly with sendmmsg or
//     recvmmsg on the socket's descriptor, through syscall.RawConn (the
//     runtime's poller waits, and the socket's deadlines hold as in the
//     other modes): batches of 64 messages, one datagram each, no offload
//     (neither UDP_SEGMENT nor UDP_GRO), each message a buffer of its own.
//     Sending, it copies the payload into each message's buffer, stamps
//     the sequence number as the other modes' loop does, addresses it to
//     the next destination in turn, and sends the 64 with one sendmmsg
//     (again for the rest, should the kernel take part, after waiting for
//     room if the socket is full). Receiving, one recvmmsg takes up to 64
//     datagrams into 64 slots of 64 KiB, with their senders' addresses,
//     and the loop checks each as the other modes' loop does.
//
// raw is there to tell what bars 1 to 3 (send, send16, recv) ask of:
// they are defined without offload, and raw is what batching without
// offload reaches in this harness, on this machine, with nothing between
// the loop and the system calls. Should raw miss such a bar too, the
// kernel's work per datagram (on loopback the sender's system call also
// does most of the receiver's) leaves no room for it here, whatever
// batchconn does; should raw meet it and nooffload not, the difference is
// batchconn's. raw is a reference, not a conn under test: it has no
// Stats, and no bar is checked on it.
//
// The scenarios where offload changes what is measured (send, send16,
// recv, recvgso, echo) run in plain, batchconn and nooffload, and send,
// send16 and recv also in raw; pingpong, lone and allocs, which move one
// datagram at a time or count allocations, in plain and batchconn. The
// modes of a scenario run interleaved (plain, batchconn, nooffload, raw,
// plain, ...), for -rounds rounds of -duration each, so that the
// machine's drift hits them alike; each row shows the median of its
// mode's rounds. Only the conn under test changes between the modes: the
// code that drives it is the same, through the net.PacketConn interface
// (or the WriteToUDPAddrPort and ReadFromUDPAddrPort methods all have),
// and so is everything around it; raw's loop does what that code does, a
// batch at a time. With the defaults the whole run takes about 40
// seconds. A line on stderr tells which run is under way.
//
// # Scenarios
//
// All run on loopback (127.0.0.1), each conn in a socket of its own.
//
//   - send: one goroutine calls WriteTo in a loop, to one destination, for
//     the duration; the conn is then closed, which sends what batchconn
//     still queues. PER SEC is the sender's rate: datagrams WriteTo
//     accepted, over the time until Close returned. The receiver is a plain
//     socket drained by a goroutine; ARRIVED is the share of the sent
//     datagrams it read. The rest the kernel dropped at its full receive
//     queue (counted from /proc/net/udp; any other loss is reported as a
//     problem): a sender faster than one plain reader loses datagrams.
//     batchconn's queue, all to one destination with one size, leaves as
//     GSO messages of up to 64 or 128 datagrams, as the kernel takes (and
//     64 KiB), several a call, which the kernel cuts up for the receiver;
//     nooffload's as up to 64 datagrams a call, raw's as 64 a call.
//   - send16: send round-robin over 16 plain receivers, each drained by a
//     goroutine of its own, through WriteToUDPAddrPort (raw: each message
//     of the batch to the next destination). No two datagrams in a row go
//     to one destination: offload has no run to carry.
//   - recv: one goroutine drains the conn under test with ReadFrom for the
//     duration, while two feeders (batchconn conns with offload off,
//     Config{NoOffload: true}, each on a goroutine of its own, the same in
//     every mode) keep its receive queue full of ordinary datagrams: no
//     mode gets them coalesced (a batchconn receiver that did is a
//     problem). PER SEC is the rate ReadFrom returned datagrams at (raw:
//     recvmmsg, until the read deadline set for the duration). Then
//     the feeders stop and the receiver reads what its queue still holds.
//     ARRIVED is the share of the feeders' datagrams that found room in
//     the queue (all those read, in the duration and after): below 100% the
//     receiver, not the feeders, set the pace, as intended; at 100% the
//     feeders did, and PER SEC only bounds the receiver from below. (On
//     loopback the sender's system call does most of the kernel's work,
//     hence two feeders; on a small machine they take CPU from the
//     receiver, in every mode alike.)
//   - recvgso: recv with one feeder that sends with offload (batchconn's
//     defaults): each message it sends carries up to 128 datagrams. A
//     receiver with GRO (batchconn) gets them as one buffer, a receiver
//     without (plain, nooffload) as datagrams the kernel cut up for it.
//     One such feeder outpaces any receiver, and on two cores leaves the
//     receiver a core of its own (with two, the receiver got a third of
//     the CPU, and 1200 B datagrams measured the feeders more than it).
//   - echo: an echo server (ReadFrom, then WriteTo back to the sender, the
//     same loop in every mode) runs on the conn under test. A client keeps
//     64 requests of 64 bytes in flight from one goroutine: it writes
//     while the window has room, then reads a reply. The client is a
//     batchconn with its defaults (offload on) in every mode, so that the
//     server, not the client, sets the pace. If no reply comes for 200ms,
//     the client takes the requests in flight for lost and refills the
//     window, so that losses never stall it (a reply that comes later all
//     the same still counts as answered). After the duration it waits up
//     to 1s for the replies still due (200ms with -target), so that a
//     process starved of CPU for a moment does not make late replies
//     look lost. PER SEC counts the replies read within the duration;
//     ARRIVED is the share of requests answered, and on loopback every
//     request without a reply must have been dropped by the kernel at the
//     server's or the client's queue.
//   - pingpong: the echo server again; the plain client sends one 64-byte
//     request at a time and waits for its reply (200ms at most; a reply
//     later than that counts as answered, with no round trip, and the
//     client waits for the last ones as echo's does), up to 20000 round
//     trips or the duration. PER SEC counts round trips; P50
//     and P99 are round-trip times in microseconds.
//   - lone: the conn under test sends one 64-byte datagram, then sleeps
//     until 200µs have passed since that send began (in nanosleep on
//     Linux: no busy wait, and unlike the runtime's timers, which oversleep
//     to a millisecond in an idle process, it keeps to about 300µs), and
//     so on, to a plain receiver in the process. Each datagram carries the
//     time (time.Now().UnixNano()) taken just before its WriteTo; the
//     receiver subtracts it from the time its ReadFrom returned. P50 and
//     P99 are these one-way delays, in microseconds; PER SEC is the rate
//     they were sent at.
//   - allocs: one goroutine calls WriteTo, WriteToUDPAddrPort, ReadFrom or
//     ReadFromUDPAddrPort (a row each) on the conn under test for 64
//     batches of 64 datagrams of 64 bytes, after one batch to warm up,
//     and counts the heap objects the process allocated meanwhile
//     (runtime.MemStats.Mallocs) per datagram. The writes go to a plain
//     socket that never reads; for the reads, a plain sender fills the
//     queue with a batch before each batch of reads, outside the count.
//
// # Reading the table
//
// The first table has a row per scenario, size and mode:
//
//   - PER SEC: datagrams a second (responses for echo, round trips for
//     pingpong), and MB/S the payload bytes, in 10^6 bytes a second.
//   - RATIO: the mode's figure over plain's, from the medians: of PER SEC
//     (above 1: faster than plain), or for pingpong and lone of P50 (above
//     1: slower).
//   - P50 and P99: pingpong's round trips and lone's one-way delays, in
//     microseconds, the median over the rounds of each round's percentile.
//   - DG/CALL: for batchconn and nooffload, datagrams moved per system
//     call, from Stats: written per write call (send, send16, lone), read
//     per read call (recv, recvgso), read/written by the server (echo,
//     pingpong). With offload one message, and so one call, can carry
//     many datagrams: a call can move more than a batch of 64. For raw,
//     from its loop's own count of its calls (a call that found the
//     socket not ready and waited does not count, as in Stats): 64 for
//     send and send16 unless the kernel took part of a batch, and for
//     recv what each recvmmsg found waiting.
//   - OFFLOAD: for batchconn and nooffload, the share of those datagrams
//     that offload moved, from Stats: received coalesced (OffloadReceived
//     over DatagramsRead), sent as segments of a larger message
//     (OffloadSent over DatagramsWritten), read/written where the conn
//     does both. nooffload's is 0% (else a problem); batchconn's shows
//     where offload applies: not to send16's writes, which alternate
//     destinations, nor to lone datagrams. raw has none ("-").
//   - ALLOCS: heap objects allocated in the whole process while the run
//     measured, per datagram (per response, per round trip); the
//     receivers and clients around the conn under test allocate nothing
//     per datagram, except the echo server's ReadFrom.
//   - ARRIVED: see the scenarios; over all rounds together, as are the
//     counts in the JSON output.
//
// The ALLOCS section shows the allocs scenario: a call's allocations per
// datagram, plain and batchconn side by side. NOTES, if any, tell of a
// batchconn socket whose kernel refused offload (Stats.OffloadFallbacks),
// which then went without it.
//
// # Bars
//
// Two sections check the bars of two of the project's issues against
// this run's medians, one line per bar and size. A figure meets its
// target if it does at the two decimals shown: PASS, else MISS. The bars
// are targets, not checks of correctness: a MISS does not change the exit
// status.
//
// BARS, the performance issue's, for batching as such. Its throughput
// bars are defined without offload (sending without GSO, receiving
// ordinary datagrams), so they are checked on nooffload: 1, send's rate,
// nooffload over plain, >= 3.0; 2, send16's >= 3.0; 3, recv's >= 2.5; 4,
// echo's responses >= 2.0. Its other bars hold for batchconn as New makes
// it, offload on: 5, pingpong's p50 ratio, batchconn over plain, <= 1.05
// and p99 ratio <= 1.25; 6, lone's p50 ratio <= 1.05; 7, batchconn's
// allocations per datagram: 0 for WriteTo, WriteToUDPAddrPort and
// ReadFromUDPAddrPort, no more than plain's for ReadFrom.
//
// Under each of bars 1 to 3, where raw ran, a "raw ceiling" line shows
// raw's rate over plain's (in the MEASURED column, under the bar's
// figure), the share of raw's rate that nooffload reached (nooffload /
// raw), and whether raw misses the target too: a MISS that raw shares is
// the harness's and the machine's, one that raw meets is batchconn's. The
// count of bars met counts the bars alone.
//
// OFFLOAD BARS, the offload issue's, for batchconn with offload on (its
// defaults): G1, send's rate at 1200 B, batchconn over plain, >= 8.0; G2,
// the same at 64 B; G3, recvgso's rate, batchconn over plain, >= 8.0 at
// each size; G4, echo's responses, batchconn over nooffload, above 1.0
// (strictly: 1.00 is a MISS). G1 shows only if -sizes has 1200, G2
// only if it has 64. That issue also asks that pingpong and lone keep their bars with
// offload on: bars 5 and 6 above, which are measured on batchconn.
//
// -json prints the same as JSON: the rows, with each round's rate,
// the summed Stats of batchconn and nooffload and the offload shares,
// raw's summed counts of its calls and datagrams (raw_calls), and the
// bars, each with its set ("performance" or "offload"), the mode measured
// and the mode it is divided by ("versus"); bars 1 to 3 also with the
// ceiling where raw ran (ceiling_mode "raw", ceiling_ratio raw / plain,
// ceiling_met, share_of_ceiling nooffload / raw). The chart has no
// ceilings. -svg FILE also
// writes a bar chart of both sets (each bar's figure, green if it meets
// its target, red if not, the target a black line), to view in a browser
// or convert (rsvg-convert -o bars.png FILE).
//
// # Checks
//
// Every datagram carries a sequence number; receivers check that each
// datagram has the size sent and that numbers never repeat or go back
// (loopback keeps one sender's datagrams in order; gaps are drops), and
// the scenarios check that every datagram sent either arrived or was
// counted as dropped by the kernel, that batchconn's Stats agree with
// what its caller saw, and that nooffload used no offload. raw stamps its
// datagrams, and is checked, as the other modes are. One exception:
// a receiver with GRO (recvgso's batchconn) is handed a run of datagrams
// as one buffer, and where that buffer finds no room the kernel counts
// one drop, not one per datagram; there the count of drops only bounds
// the loss from below, and recv's ARRIVED is counted from what was read. Whatever breaks that, or an unexpected error, is
// listed under PROBLEMS, and the exit status is 1. A run that does not end
// by itself (a hang in the conn under test) prints every goroutine's stack
// and exits with status 3.
//
// The receive queues are asked for 8 MiB (SetReadBuffer); the kernel caps
// that at net.core.rmem_max, which the header shows. The machine's other
// load shows in the results: compare rows from one run, not across runs.
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
// The -listen side serves, until killed, 19 consecutive UDP ports from
// the one given, P: at P an echo server on a plain *net.UDPConn, at P+1
// the same echo server on batchconn, at P+18 on nooffload (each sends
// every datagram back to its sender, as it is), and at P+2 to P+17 sinks,
// plain sockets that read and discard. There is no other protocol: nothing to set up, no state.
// It logs what it echoed and discarded every 10 seconds.
//
// The -target side runs the scenarios that need nothing but these:
// send and send16, whose sender (the conn under test) writes to the first
// sink and to all 16, and echo and pingpong, whose client drives the
// echo server of the mode measured, plain at P, batchconn at P+1,
// nooffload at P+18 (raw runs send and send16 only, to the same sinks).
// The conn under test is thus the client's for send and send16, and the
// server's for echo and pingpong. Nothing on the far side is counted:
// ARRIVED is unknown for send and send16, and for echo and pingpong it
// includes losses on the network. recv, recvgso, lone and allocs run on
// loopback only.
package main

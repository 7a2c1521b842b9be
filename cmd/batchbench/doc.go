// Command batchbench measures batchconn against a plain *net.UDPConn, side
// by side in one run, prints a table of the figures and their ratios, and
// says for each of the project's performance bars whether it is met.
//
// Usage:
//
//	go run ./cmd/batchbench [-duration 500ms] [-rounds 3] [-sizes 64,1200]
//	        [-scenarios send,send16,recv,echo,pingpong,lone,allocs]
//	        [-json] [-svg FILE] [-target HOST:PORT]
//	go run ./cmd/batchbench -listen [HOST]:PORT
//
// Each scenario runs in both modes, interleaved (plain, batchconn, plain,
// batchconn, ...), for -rounds rounds of -duration each, so that the
// machine's drift hits both alike; each row shows the median of its mode's
// rounds. Only the conn under test changes between the modes: the code
// that drives it is the same, through the net.PacketConn interface (or the
// WriteToUDPAddrPort and ReadFromUDPAddrPort methods both have), and so is
// everything around it. With the defaults the whole run takes about half
// a minute. A line on stderr tells which run is under way.
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
//   - send16: send round-robin over 16 plain receivers, each drained by a
//     goroutine of its own, through WriteToUDPAddrPort.
//   - recv: one goroutine drains the conn under test with ReadFrom for the
//     duration, while two senders (batchconn conns, each on a goroutine of
//     its own, the same in both modes) keep its receive queue full. PER
//     SEC is the rate ReadFrom returned datagrams at. ARRIVED is the share
//     of the senders' datagrams that found room in the queue: below 100%
//     the receiver, not the senders, set the pace, as intended; at 100%
//     the senders did, and PER SEC only bounds the receiver from below. (On
//     loopback the sender's system call does most of the kernel's work,
//     hence two senders; on a small machine they take CPU from the
//     receiver, in both modes alike.)
//   - echo: an echo server (ReadFrom, then WriteTo back to the sender, the
//     same loop in both modes) runs on the conn under test. A client keeps
//     64 requests of 64 bytes in flight from one goroutine: it writes
//     while the window has room, then reads a reply. The client is a
//     batchconn in both modes, so that the server, not the client, sets
//     the pace. If no reply comes for 200ms, the client takes the requests
//     in flight for lost and refills the window, so that losses never
//     stall it. PER SEC counts the replies read within the duration;
//     ARRIVED is the share of requests answered, and on loopback every
//     request without a reply must have been dropped by the kernel at the
//     server's or the client's queue.
//   - pingpong: the echo server again; the plain client sends one 64-byte
//     request at a time and waits for its reply (200ms at most), up to
//     20000 round trips or the duration. PER SEC counts round trips; P50
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
//   - RATIO: batchconn's figure over plain's, from the medians: of PER SEC
//     (above 1: batchconn is faster), or for pingpong and lone of P50
//     (above 1: slower).
//   - P50 and P99: pingpong's round trips and lone's one-way delays, in
//     microseconds, the median over the rounds of each round's percentile.
//   - DG/CALL: for batchconn, datagrams moved per system call, from its
//     Stats: written per write call (send, send16, lone), read per read
//     call (recv), read/written by the server (echo, pingpong). With UDP
//     GRO a read call can return more datagrams than a batch.
//   - ALLOCS: heap objects allocated in the whole process while the run
//     measured, per datagram (per response, per round trip); the
//     receivers and clients around the conn under test allocate nothing
//     per datagram, except the echo server's ReadFrom.
//   - ARRIVED: see the scenarios; over all rounds together, as are the
//     counts in the JSON output.
//
// The ALLOCS section shows the allocs scenario: a call's allocations per
// datagram, plain and batchconn side by side.
//
// The BARS section checks the bars of the project's performance issue
// against this run's medians, one line per bar and size: 1, send's rate
// ratio >= 3.0; 2, send16's >= 3.0; 3, recv's >= 2.5; 4, echo's responses
// >= 2.0; 5, pingpong's p50 ratio <= 1.05 and p99 ratio <= 1.25; 6, lone's
// p50 ratio <= 1.05; 7, batchconn's allocations per datagram: 0 for
// WriteTo, WriteToUDPAddrPort and ReadFromUDPAddrPort, no more than
// plain's for ReadFrom. A figure meets its target if it does at the two
// decimals shown: PASS, else MISS. The bars are targets, not checks of
// correctness: a MISS does not change the exit status.
//
// -json prints the same as JSON: the rows, with each round's rate and
// batchconn's summed Stats, and the bars. -svg FILE also writes a bar
// chart of the bars (each bar's figure, green if it meets its target, red
// if not, the target a black line), to view in a browser.
//
// # Checks
//
// Every datagram carries a sequence number; receivers check that each
// datagram has the size sent and that numbers never repeat or go back
// (loopback keeps one sender's datagrams in order; gaps are drops), and
// the scenarios check that every datagram sent either arrived or was
// counted as dropped by the kernel, and that batchconn's Stats agree with
// what its caller saw. Whatever breaks that, or an unexpected error, is
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
// The -listen side serves, until killed, 18 consecutive UDP ports from
// the one given, P: at P an echo server on a plain *net.UDPConn, at P+1
// the same echo server on batchconn (each sends every datagram back to
// its sender, as it is), and at P+2 to P+17 sinks, plain sockets that read
// and discard. There is no other protocol: nothing to set up, no state.
// It logs what it echoed and discarded every 10 seconds.
//
// The -target side runs the scenarios that need nothing but these:
// send and send16, whose sender (the conn under test) writes to the first
// sink and to all 16, and echo and pingpong, whose client drives the
// echo server of the mode measured, plain at P, batchconn at P+1. The
// conn under test is thus the client's for send and send16, and the
// server's for echo and pingpong. Nothing on the far side is counted:
// ARRIVED is unknown for send and send16, and for echo and pingpong it
// includes losses on the network. recv, lone and allocs run on loopback
// only.
package main

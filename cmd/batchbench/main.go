// Command batchbench measures batchconn against a plain *net.UDPConn on
// loopback (127.0.0.1), side by side in one run, and prints a table.
//
// Usage:
//
//	go run ./cmd/batchbench [-duration 1s] [-rounds 3] [-sizes 64,1200]
//	                        [-scenarios send,recv,pingpong] [-json]
//
// Each scenario runs in both modes, interleaved (plain, batchconn, plain,
// batchconn, ...) for -rounds rounds of -duration each, so that the
// machine's drift hits both alike; each row shows the median of its mode's
// rounds. Only the conn under test changes between the modes: the code
// that drives it is the same, through the net.PacketConn interface, and
// so is everything around it.
//
// The scenarios:
//
//   - send: one goroutine calls WriteTo in a loop, to one destination, for
//     the duration; the conn is then closed, which sends what batchconn
//     still queues. DGRAM/S is the sender's rate: datagrams WriteTo
//     accepted, over the time until Close returned. The receiver is a plain
//     socket drained by one goroutine; ARRIVED is the share of the sent
//     datagrams it read. The rest the kernel dropped at its full receive
//     queue (counted from /proc/net/udp; any other loss is reported as a
//     problem): a sender faster than one plain reader loses datagrams.
//   - recv: one goroutine drains the conn under test with ReadFrom for the
//     duration, while two senders (batchconn conns, each on a goroutine of
//     its own, the same in both modes) keep its receive queue full.
//     DGRAM/S is the rate ReadFrom returned datagrams at. ARRIVED is the
//     share of the senders' datagrams that found room in the queue: below
//     100% means the queue overflowed, so the receiver, not the senders,
//     set the pace, as intended; at 100% the senders did, and DGRAM/S
//     only bounds what the receiver could do from below. (On loopback the
//     sender's system call does most of the kernel's work, hence two
//     senders; on a small machine they take CPU from the receiver, in both
//     modes alike.)
//   - pingpong: an echo server (ReadFrom, then WriteTo back to the sender)
//     runs on the conn under test; a plain client sends one 64-byte request
//     at a time and waits for its reply, up to 20000 round trips or the
//     duration. DGRAM/S counts round trips; P50 and P99 are round-trip
//     times in microseconds, the median of each over the rounds.
//
// RATIO is batchconn's figure over plain's: for send and recv the rate
// (above 1 is faster), for pingpong the p50 round trip (above 1 is slower).
// DG/CALL, for batchconn, is the average number of datagrams one system
// call moved, from its Stats: written per write call for send, read per
// read call for recv, and read/written for the pingpong server. MB/S counts
// payload bytes (10^6 bytes a second).
//
// ARRIVED is computed over all rounds together, and the counts in the
// JSON output are summed over them.
//
// Every datagram carries a sequence number; receivers check that each
// datagram has the size sent and that numbers never repeat or go back
// (loopback keeps one sender's datagrams in order; gaps are drops), and
// the send scenario checks that every datagram sent either arrived or was
// counted as dropped by the kernel. Whatever breaks that, or an unexpected
// error, is listed under PROBLEMS, and the exit status is 1. A run that
// does not end by itself (a hang in the conn under test) prints every
// goroutine's stack and exits with status 3.
//
// The receive queues are asked for 8 MiB (SetReadBuffer); the kernel caps
// that at net.core.rmem_max, which the header shows. The machine's other
// load shows in the results: compare rows from one run, not across runs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options are the command line's settings.
type options struct {
	duration  time.Duration
	rounds    int
	sizes     []int
	scenarios []scenario
	json      bool
}

func main() {
	opts, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "batchbench:", err)
		os.Exit(2)
	}
	rep := run(opts, newProgress(os.Stderr))
	if opts.json {
		err = writeJSON(os.Stdout, rep)
	} else {
		err = writeTable(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "batchbench:", err)
		os.Exit(1)
	}
	if rep.hasProblems() {
		os.Exit(1)
	}
}

func parseFlags() (options, error) {
	var (
		opts      options
		sizes     = flag.String("sizes", "64,1200", "datagram payload sizes in bytes for send and recv, comma-separated")
		scenarios = flag.String("scenarios", "send,recv,pingpong", "scenarios to run, comma-separated")
	)
	flag.DurationVar(&opts.duration, "duration", time.Second, "length of one run (one scenario, size and mode)")
	flag.IntVar(&opts.rounds, "rounds", 3, "runs per scenario, size and mode; the median is reported")
	flag.BoolVar(&opts.json, "json", false, "print the results as JSON instead of a table")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(),
			"usage: batchbench [flags]\n\nbatchbench compares plain *net.UDPConn with batchconn on loopback.\n\nFlags:")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	if opts.duration <= 0 {
		return opts, errors.New("-duration must be positive")
	}
	if opts.rounds < 1 {
		return opts, errors.New("-rounds must be at least 1")
	}
	var err error
	if opts.sizes, err = parseSizes(*sizes); err != nil {
		return opts, err
	}
	if opts.scenarios, err = parseScenarios(*scenarios); err != nil {
		return opts, err
	}
	return opts, nil
}

func parseSizes(list string) ([]int, error) {
	var sizes []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < minSize || n > maxPayload {
			return nil, fmt.Errorf("-sizes: %q is not a size from %d to %d", f, minSize, maxPayload)
		}
		if !slices.Contains(sizes, n) {
			sizes = append(sizes, n)
		}
	}
	return sizes, nil
}

func parseScenarios(list string) ([]scenario, error) {
	var picked []scenario
	for f := range strings.SplitSeq(list, ",") {
		name := strings.TrimSpace(f)
		i := slices.IndexFunc(allScenarios, func(s scenario) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (have send, recv, pingpong)", name)
		}
		if !slices.ContainsFunc(picked, func(s scenario) bool { return s.name == name }) {
			picked = append(picked, allScenarios[i])
		}
	}
	return picked, nil
}

// job is one scenario at one size, run in both modes.
type job struct {
	scenario scenario
	size     int
}

func jobs(opts options) []job {
	var js []job
	for _, sc := range opts.scenarios {
		if sc.fixedSize > 0 {
			js = append(js, job{sc, sc.fixedSize})
			continue
		}
		for _, size := range opts.sizes {
			js = append(js, job{sc, size})
		}
	}
	return js
}

// run runs every job for every round, the modes interleaved, and gathers
// the samples into a report.
func run(opts options, prog *progress) *report {
	js := jobs(opts)
	prog.total = len(js) * opts.rounds * len(modes)
	rep := newReport(opts)
	for _, j := range js {
		for round := 1; round <= opts.rounds; round++ {
			for _, m := range modes {
				prog.start(fmt.Sprintf("%s %d B %s, round %d/%d", j.scenario.name, j.size, m, round, opts.rounds))
				s := guarded(func() sample { return j.scenario.run(m, j.size, opts.duration) }, opts.duration)
				prog.done(j.scenario.describe(s, j.size))
				rep.add(j.scenario.name, j.size, m, round, s)
			}
		}
	}
	prog.finish()
	rep.summarize()
	return rep
}

// guarded runs f, which must end by itself within its duration plus the
// grace periods it waits for the network. Should it hang all the same (a
// bug in the conn under test), the goroutines' stacks go to stderr and the
// process exits: a benchmark that never ends reports nothing.
func guarded(f func() sample, d time.Duration) sample {
	limit := 2*d + 4*grace
	ch := make(chan sample, 1)
	go func() { ch <- f() }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case s := <-ch:
		return s
	case <-t.C:
		fmt.Fprintf(os.Stderr, "\nbatchbench: a run did not end within %v; goroutines:\n", limit)
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		os.Exit(3)
		panic("unreachable")
	}
}

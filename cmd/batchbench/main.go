package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
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
	verbose   bool
	svg       string  // the chart's file; none if empty
	remote    *remote // -target
	listen    string  // -listen: serve instead of measuring
}

func main() {
	opts, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "batchbench:", err)
		os.Exit(2)
	}
	if opts.listen != "" {
		fmt.Fprintln(os.Stderr, "batchbench:", serve(opts.listen, os.Stderr))
		os.Exit(1)
	}
	rep := run(opts, newProgress(os.Stderr, opts.verbose))
	if opts.json {
		err = writeJSON(os.Stdout, rep)
	} else {
		err = writeTable(os.Stdout, rep)
	}
	if err == nil && opts.svg != "" {
		if err = writeSVGFile(opts.svg, rep); err == nil {
			fmt.Fprintf(os.Stderr, "batchbench: wrote the chart to %s\n", opts.svg)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "batchbench:", err)
		os.Exit(1)
	}
	os.Exit(rep.exitCode())
}

func parseFlags() (opts options, err error) {
	sizes := flag.String("sizes", "64,1200", "payload sizes in bytes for send, send16, recv and recvgso, comma-separated")
	scenarios := flag.String("scenarios", "", "scenarios to run, comma-separated, of "+strings.Join(scenarioNames(false), ",")+
		"\n(default all; with -target, "+strings.Join(scenarioNames(true), ",")+")")
	target := flag.String("target", "", "measure the path to the `host:port` of a batchbench -listen on another machine")
	flag.DurationVar(&opts.duration, "duration", 300*time.Millisecond, "length of one run (one scenario, size and mode)")
	flag.IntVar(&opts.rounds, "rounds", 3, "runs per scenario, size and mode; the median is reported (idle runs once)")
	flag.BoolVar(&opts.json, "json", false, "print the results as JSON (snake_case keys) instead of a table")
	flag.BoolVar(&opts.verbose, "v", false, "print a line per run and its result on stderr")
	flag.StringVar(&opts.svg, "svg", "", "also write a chart of each mode against plain to `file` (SVG)")
	flag.StringVar(&opts.listen, "listen", "", fmt.Sprintf("serve the `addr`'s port P and the %d after it for a -target client, until killed", remotePorts-1))
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: batchbench [flags] (go doc ./cmd/batchbench tells more)")
		flag.PrintDefaults()
	}
	flag.Parse()
	switch {
	case flag.NArg() > 0:
		return opts, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	case opts.listen != "" && *target != "":
		return opts, errors.New("-listen and -target exclude each other")
	case opts.listen != "":
		return opts, nil
	case opts.duration <= 0:
		return opts, errors.New("-duration must be positive")
	case opts.rounds < 1:
		return opts, errors.New("-rounds must be at least 1")
	}
	if *target != "" {
		if opts.remote, err = parseTarget(*target); err != nil {
			return opts, err
		}
	}
	if opts.sizes, err = parseSizes(*sizes); err == nil {
		opts.scenarios, err = parseScenarios(*scenarios, opts.remote != nil)
	}
	return opts, err
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

// parseScenarios picks the scenarios list names, in its order; an empty
// list picks all those that run where measured (remote: with -target).
func parseScenarios(list string, remote bool) ([]scenario, error) {
	if strings.TrimSpace(list) == "" {
		list = strings.Join(scenarioNames(remote), ",")
	}
	var picked []scenario
	for f := range strings.SplitSeq(list, ",") {
		name := strings.TrimSpace(f)
		i := slices.IndexFunc(allScenarios, func(s scenario) bool { return s.name == name })
		switch {
		case i < 0:
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (have %s)", name, strings.Join(scenarioNames(false), ", "))
		case remote && !allScenarios[i].remoteOK:
			return nil, fmt.Errorf("-scenarios: %s runs on loopback only, not with -target", name)
		case !slices.ContainsFunc(picked, func(s scenario) bool { return s.name == name }):
			picked = append(picked, allScenarios[i])
		}
	}
	return picked, nil
}

// job is one scenario at one size (and for allocs one call), run in each
// of the scenario's modes.
type job struct {
	scenario scenario
	size     int
	op       string
}

func jobs(opts options) []job {
	var js []job
	for _, sc := range opts.scenarios {
		sizes, ops := opts.sizes, sc.ops
		if sc.fixedSize > 0 {
			sizes = []int{sc.fixedSize}
		}
		if ops == nil {
			ops = []string{""}
		}
		for _, size := range sizes {
			for _, op := range ops {
				js = append(js, job{sc, size, op})
			}
		}
	}
	return js
}

func (j job) String() string {
	return strings.Join(strings.Fields(fmt.Sprintf("%s %s %d B", j.scenario.name, j.op, j.size)), " ")
}

// run runs every job for every round, the modes taking turns within each
// round so that the machine's drift hits them alike.
func run(opts options, prog *progress) *report {
	js := jobs(opts)
	for _, j := range js {
		prog.total += j.scenario.rounds(opts.rounds) * len(j.scenario.modesFor(opts.remote))
	}
	rep := newReport(opts)
	for _, j := range js {
		rounds := j.scenario.rounds(opts.rounds)
		for round := 1; round <= rounds; round++ {
			for _, m := range j.scenario.modesFor(opts.remote) {
				prog.start(fmt.Sprintf("%v %s, round %d/%d", j, m, round, rounds))
				p := params{mode: m, size: j.size, op: j.op, duration: opts.duration, conns: idleConns, remote: opts.remote}
				s := j.scenario.measure(p)
				rep.add(j, m, round, s)
			}
		}
	}
	prog.clear()
	rep.summarize()
	return rep
}

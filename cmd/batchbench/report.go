package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/batchconn/batchconn"
)

// report is a whole run's results: what -json prints, and what the table
// shows.
type report struct {
	GoVersion  string       `json:"go_version"`
	Platform   string       `json:"platform"`
	GOMAXPROCS int          `json:"gomaxprocs"`
	Target     string       `json:"target,omitempty"` // the -listen server measured against; loopback if empty
	Duration   string       `json:"duration"`         // of one run
	Rounds     int          `json:"rounds"`           // runs per scenario, size and mode
	ReadBuffer int          `json:"read_buffer"`      // asked of the measured receive queues
	RmemMax    int          `json:"rmem_max,omitempty"`
	Rows       []*row       `json:"results"`
	Bars       []*barResult `json:"bars"`
}

// row is one scenario, size, op and mode over all its rounds: medians, and
// counts summed over the rounds.
type row struct {
	Scenario string `json:"scenario"`
	Op       string `json:"op,omitempty"` // allocs: the call measured
	Size     int    `json:"size"`
	Mode     mode   `json:"mode"`

	// Datagrams a second for send, send16, recv and lone; responses for
	// echo; round trips for pingpong.
	DatagramsPerSec float64   `json:"datagrams_per_sec"`
	MBPerSec        float64   `json:"mb_per_sec"`
	RoundRates      []float64 `json:"round_rates"` // each round's datagrams_per_sec

	// This mode over plain: of the rate, or of p50 where latency.
	Ratio    *float64 `json:"ratio,omitempty"`
	RatioP99 *float64 `json:"ratio_p99,omitempty"` // latency: of p99
	P50us    *float64 `json:"p50_us,omitempty"`
	P99us    *float64 `json:"p99_us,omitempty"`

	// Heap allocations in the whole process while it measured, per
	// datagram (per response, per round trip); for allocs, those of the
	// one call measured.
	AllocsPerDatagram float64 `json:"allocs_per_datagram"`

	// Datagrams (requests) sent, those that reached the receiver (got a
	// reply), and the kernel's drops at the receivers' queues.
	Sent        uint64   `json:"sent,omitempty"`
	Arrived     uint64   `json:"arrived,omitempty"`
	ArrivedPct  *float64 `json:"arrived_pct,omitempty"`
	KernelDrops *uint64  `json:"kernel_drops,omitempty"`

	// batchconn and nooffload only: datagrams per system call, the
	// shares of the datagrams received coalesced (GRO) and sent as
	// segments (GSO), in percent, and the summed Stats. raw has the
	// datagrams per call too, from its own count of its calls (RawCalls,
	// summed); it has no offload.
	ReadPerCall       *float64         `json:"datagrams_per_read_call,omitempty"`
	WritePerCall      *float64         `json:"datagrams_per_write_call,omitempty"`
	OffloadReadPct    *float64         `json:"offload_received_pct,omitempty"`
	OffloadWrittenPct *float64         `json:"offload_sent_pct,omitempty"`
	Stats             *batchconn.Stats `json:"stats,omitempty"`
	Calls             *callCounts      `json:"batch_calls,omitempty"`

	Problems []string `json:"problems,omitempty"`

	latency bool
	samples []sample
}

func newReport(opts options) *report {
	rep := &report{
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Duration:   opts.duration.String(),
		Rounds:     opts.rounds,
		ReadBuffer: readBuffer,
		RmemMax:    rmemMax(),
		Bars:       []*barResult{},
	}
	if opts.remote != nil {
		rep.Target = opts.remote.base.String()
	}
	return rep
}

// add records one run's sample.
func (rep *report) add(j job, m mode, round int, s sample) {
	r := rep.row(j.scenario.name, j.op, j.size, m)
	if r == nil {
		r = &row{Scenario: j.scenario.name, Op: j.op, Size: j.size, Mode: m, latency: j.scenario.latency}
		rep.Rows = append(rep.Rows, r)
	}
	r.samples = append(r.samples, s)
	for _, p := range s.problems {
		r.Problems = append(r.Problems, fmt.Sprintf("round %d: %s", round, p))
	}
}

func (rep *report) row(scenario, op string, size int, m mode) *row {
	i := slices.IndexFunc(rep.Rows, func(r *row) bool {
		return r.Scenario == scenario && r.Op == op && r.Size == size && r.Mode == m
	})
	if i < 0 {
		return nil
	}
	return rep.Rows[i]
}

// summarize computes every row's figures from its samples, the ratios of
// batchconn's rows to plain's, and the bars.
func (rep *report) summarize() {
	for _, r := range rep.Rows {
		r.summarize()
	}
	for _, r := range rep.Rows {
		base := rep.row(r.Scenario, r.Op, r.Size, modePlain)
		if r.Mode == modePlain || base == nil {
			continue
		}
		if r.latency && r.P50us != nil && base.P50us != nil {
			r.Ratio = ratio(*r.P50us, *base.P50us)
			r.RatioP99 = ratio(*r.P99us, *base.P99us)
		} else if !r.latency {
			r.Ratio = ratio(r.DatagramsPerSec, base.DatagramsPerSec)
		}
	}
	rep.Bars = append(rep.Bars[:0], checkBars(rep)...)
}

func (r *row) summarize() {
	var p50s, p99s, allocs []float64
	var stats batchconn.Stats
	var calls callCounts
	var drops uint64
	arrivals, dropsKnown := true, true
	for _, s := range r.samples {
		r.RoundRates = append(r.RoundRates, s.rate())
		allocs = append(allocs, s.allocs)
		r.Sent += s.offered
		r.Arrived += s.arrived
		drops += s.drops
		arrivals = arrivals && s.arrivals
		dropsKnown = dropsKnown && s.dropsKnown
		if r.latency && s.count > 0 {
			p50s = append(p50s, micros(s.p50))
			p99s = append(p99s, micros(s.p99))
		}
		if s.stats != nil {
			addStats(&stats, s.stats)
			r.Stats = &stats
		}
		if s.calls != nil {
			calls.add(s.calls)
			r.Calls = &calls
		}
	}
	r.DatagramsPerSec = median(r.RoundRates)
	r.MBPerSec = r.DatagramsPerSec * float64(r.Size) / 1e6
	r.AllocsPerDatagram = median(allocs)
	if len(p50s) > 0 {
		r.P50us, r.P99us = ptr(median(p50s)), ptr(median(p99s))
	}
	if arrivals && r.Sent > 0 {
		r.ArrivedPct = ptr(100 * float64(r.Arrived) / float64(r.Sent))
		if dropsKnown {
			r.KernelDrops = &drops
		}
	}
	if r.Stats != nil {
		r.ReadPerCall = ratio(float64(stats.DatagramsRead), float64(stats.ReadCalls))
		r.WritePerCall = ratio(float64(stats.DatagramsWritten), float64(stats.WriteCalls))
		r.OffloadReadPct = ratio(100*float64(stats.OffloadReceived), float64(stats.DatagramsRead))
		r.OffloadWrittenPct = ratio(100*float64(stats.OffloadSent), float64(stats.DatagramsWritten))
	}
	if r.Calls != nil {
		r.ReadPerCall = ratio(float64(calls.Read), float64(calls.ReadCalls))
		r.WritePerCall = ratio(float64(calls.Written), float64(calls.WriteCalls))
	}
}

func (rep *report) hasProblems() bool {
	return slices.ContainsFunc(rep.Rows, func(r *row) bool { return len(r.Problems) > 0 })
}

func writeJSON(w io.Writer, rep *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func writeTable(w io.Writer, rep *report) error {
	var b strings.Builder
	where := "loopback"
	if rep.Target != "" {
		where = "the path to " + rep.Target
	}
	fmt.Fprintf(&b, "batchbench: plain *net.UDPConn vs batchconn (offload on) vs nooffload (batchconn, offload off) on %s\n",
		where)
	if hasMode(rep, modeRaw) {
		b.WriteString("raw: sendmmsg/recvmmsg on the socket in the same loop, no offload, the ceiling of bars 1-3\n")
	} else if !rawAvailable && hasScenario(rep, "send", "send16", "recv") {
		b.WriteString("raw, the ceiling of bars 1-3, not measured: it needs Linux's sendmmsg/recvmmsg\n")
	}
	fmt.Fprintf(&b, "%s %s, GOMAXPROCS %d; median of %d round(s) of %s per mode, modes interleaved\n",
		rep.GoVersion, rep.Platform, rep.GOMAXPROCS, rep.Rounds, rep.Duration)
	fmt.Fprintf(&b, "receive queues asked %s (net.core.rmem_max %s)\n", mib(rep.ReadBuffer), mib(rep.RmemMax))
	writeResults(&b, rep)
	writeAllocs(&b, rep)
	writeBars(&b, rep)
	writeNotes(&b, rep)
	b.WriteString(legend)
	if rep.hasProblems() {
		b.WriteString("\nPROBLEMS:\n")
		for _, r := range rep.Rows {
			for _, p := range r.Problems {
				fmt.Fprintf(&b, "  %s %s\n", r.label(), p)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

const resultFormat = "%-9s %5s  %-9s %9s %7s %6s %7s %7s %11s %9s %6s %7s\n"

func writeResults(b *strings.Builder, rep *report) {
	if !slices.ContainsFunc(rep.Rows, func(r *row) bool { return r.Op == "" }) {
		return
	}
	b.WriteString("\n")
	fmt.Fprintf(b, resultFormat, "SCENARIO", "SIZE", "MODE", "PER SEC", "MB/S", "RATIO",
		"P50 µs", "P99 µs", "DG/CALL", "OFFLOAD", "ALLOCS", "ARRIVED")
	for _, r := range rep.Rows {
		if r.Op != "" {
			continue
		}
		fmt.Fprintf(b, resultFormat, r.Scenario, fmt.Sprint(r.Size), r.Mode,
			fmt.Sprintf("%.0f", r.DatagramsPerSec), fmt.Sprintf("%.1f", r.MBPerSec),
			format(r.Ratio, "%.2fx"), format(r.P50us, "%.1f"), format(r.P99us, "%.1f"),
			perCall(r), offloadShare(r), fmt.Sprintf("%.2f", r.AllocsPerDatagram), format(r.ArrivedPct, "%.1f%%"))
	}
}

// writeAllocs shows the allocs scenario's rows: a call's allocations per
// datagram, the modes side by side.
func writeAllocs(b *strings.Builder, rep *report) {
	var ops []string
	var modes []mode
	size := 0
	for _, r := range rep.Rows {
		if r.Op == "" {
			continue
		}
		if !slices.Contains(ops, r.Op) {
			ops = append(ops, r.Op)
		}
		if !slices.Contains(modes, r.Mode) {
			modes = append(modes, r.Mode)
		}
		size = r.Size
	}
	if len(ops) == 0 {
		return
	}
	fmt.Fprintf(b, "\nALLOCS: heap allocations per datagram of one call, steady state, %d B datagrams\n", size)
	fmt.Fprintf(b, "%-22s", "CALL")
	for _, m := range modes {
		fmt.Fprintf(b, " %9s", m)
	}
	b.WriteString("\n")
	for _, op := range ops {
		fmt.Fprintf(b, "%-22s", op)
		for _, m := range modes {
			cell := "-"
			if r := rep.row("allocs", op, size, m); r != nil {
				cell = fmt.Sprintf("%.2f", r.AllocsPerDatagram)
			}
			fmt.Fprintf(b, " %9s", cell)
		}
		b.WriteString("\n")
	}
}

// writeBars shows each bar's target, the figure measured and whether it
// meets it, a section for each set.
func writeBars(b *strings.Builder, rep *report) {
	const f = "%-3s %-19s %-41s %9s %9s  %s\n"
	for _, set := range barSets {
		bars := inSet(rep.Bars, set.set)
		if len(bars) == 0 {
			continue
		}
		fmt.Fprintf(b, "\n%s, from this run's medians\n", set.title)
		fmt.Fprintf(b, f, "BAR", "SCENARIO/CALL", "FIGURE", "TARGET", "MEASURED", "RESULT")
		ceilings := false
		for _, br := range bars {
			fmt.Fprintf(b, f, br.Bar, br.subject(), br.Figure, br.target(), br.measured(), br.result())
			if br.CeilingRatio != nil {
				subject, figure, measured, result := br.ceilingLine()
				fmt.Fprintf(b, f, "", subject, figure, "", measured, result)
				ceilings = true
			}
		}
		fmt.Fprintf(b, "%d of %d met\n", countMet(bars), len(bars))
		if set.note != "" {
			fmt.Fprintf(b, "(%s)\n", set.note)
		}
		if ceilings {
			b.WriteString(ceilingNote)
		}
	}
}

// ceilingNote follows a set of bars with ceilings.
const ceilingNote = `(raw ceiling: raw, the same loop with sendmmsg/recvmmsg of 64 datagrams on the socket, no offload,
 over plain: what batching alone reaches in this harness on this machine. Where raw misses the
 target too, the bar is out of reach here, not batchconn's miss; where raw meets it, the share
 of raw's rate that nooffload reached shows what batchconn's conn costs.)
`

// writeNotes tells of batchconn's offload turning itself off, which
// changes what a batchconn row measures.
func writeNotes(b *strings.Builder, rep *report) {
	first := true
	for _, r := range rep.Rows {
		if r.Stats == nil || r.Stats.OffloadFallbacks == 0 {
			continue
		}
		if first {
			b.WriteString("\nNOTES:\n")
			first = false
		}
		fmt.Fprintf(b, "  %s the kernel refused segmentation offload %d time(s) (Stats.OffloadFallbacks):\n"+
			"    offload went off for that socket, the rest of its run went without\n", r.label(), r.Stats.OffloadFallbacks)
	}
}

const legend = `
MODE:    plain: *net.UDPConn; batchconn: batchconn.New(conn, nil), UDP GSO/GRO offload on;
         nooffload: batchconn.New(conn, &batchconn.Config{NoOffload: true});
         xnet: the same loop written by hand with golang.org/x/net's ReadBatch/WriteBatch of 64;
         raw (send, send16, recv): no net.PacketConn, the same loop written with sendmmsg/recvmmsg
         of 64 datagrams on the socket, no offload: the ceiling of bars 1-3 in this harness.
PER SEC: datagrams a second (send, send16: the sender's, until Close returned; recv, recvgso:
         ReadFrom's, raw's recvmmsg's; lone: sent); echo: responses; pingpong: round trips.
RATIO:   the mode's figure / plain's; of PER SEC (above 1: faster); pingpong, lone: of P50
         (above 1: slower).
P50/P99: pingpong: round trip; lone: one-way delay, send to read.
DG/CALL: datagrams per system call of the conn under test (echo, pingpong: read/write by the
         server); with offload a message carries up to 64 or 128 datagrams; raw: its own count.
OFFLOAD: share of those datagrams moved with offload, from Stats: received coalesced (GRO,
         OffloadReceived/DatagramsRead), sent as segments (GSO, OffloadSent/DatagramsWritten).
ALLOCS:  heap allocations in the whole process while measuring, per datagram (per response,
         per round trip); the ALLOCS section counts one call alone.
ARRIVED, over all rounds: send, send16, lone: share of the sent datagrams read, the rest
         dropped by the kernel; recv, recvgso: share that found room in the receiver's queue
         (below 100%: the receiver set the pace); echo, pingpong: share of requests answered.
`

// hasMode reports whether rep has a row of mode m.
func hasMode(rep *report, m mode) bool {
	return slices.ContainsFunc(rep.Rows, func(r *row) bool { return r.Mode == m })
}

// hasScenario reports whether rep has a row of any of the scenarios.
func hasScenario(rep *report, scenarios ...string) bool {
	return slices.ContainsFunc(rep.Rows, func(r *row) bool { return slices.Contains(scenarios, r.Scenario) })
}

// label names the row in PROBLEMS.
func (r *row) label() string {
	return strings.Join(strings.Fields(fmt.Sprintf("%s %s %d B %s,", r.Scenario, r.Op, r.Size, r.Mode)), " ")
}

// perCall is the DG/CALL cell.
func perCall(r *row) string { return readWrite(r.ReadPerCall, r.WritePerCall, compact) }

// offloadShare is the OFFLOAD cell.
func offloadShare(r *row) string {
	return readWrite(r.OffloadReadPct, r.OffloadWrittenPct, func(v float64) string { return fmt.Sprintf("%.0f%%", v) })
}

// readWrite formats a figure of the reads and one of the writes, either
// nil where the conn did not read or write: "read/write", or the one.
func readWrite(read, write *float64, f func(float64) string) string {
	switch {
	case read != nil && write != nil:
		return f(*read) + "/" + f(*write)
	case read != nil:
		return f(*read)
	case write != nil:
		return f(*write)
	}
	return "-"
}

// compact formats v with three or four significant digits.
func compact(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// format formats *v, or gives "-" for nil.
func format(v *float64, verb string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(verb, *v)
}

func mib(n int) string {
	if n <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%g MiB", float64(n)/(1<<20))
}

// addStats adds s to sum. Every field of Stats is a count: they are added
// one by one, whatever fields the library has.
func addStats(sum, s *batchconn.Stats) {
	dst, src := reflect.ValueOf(sum).Elem(), reflect.ValueOf(s).Elem()
	for i := range dst.NumField() {
		if f := dst.Field(i); f.Kind() == reflect.Uint64 && f.CanSet() {
			f.SetUint(f.Uint() + src.Field(i).Uint())
		}
	}
}

// median returns the median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	mid := len(xs) / 2
	if len(xs)%2 == 0 {
		return (xs[mid-1] + xs[mid]) / 2
	}
	return xs[mid]
}

// ratio returns a/b, or nil where b is 0.
func ratio(a, b float64) *float64 {
	if b == 0 {
		return nil
	}
	return ptr(a / b)
}

func ptr[T any](v T) *T { return &v }

// micros is d in microseconds.
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// progress reports on stderr which run is under way: one line rewritten in
// place on a terminal, a line per finished run otherwise.
type progress struct {
	w       io.Writer
	tty     bool
	n       int
	total   int
	current string
}

func newProgress(f *os.File) *progress {
	fi, err := f.Stat()
	return &progress{w: f, tty: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) start(label string) {
	p.n++
	p.current = fmt.Sprintf("batchbench: [%d/%d] %s", p.n, p.total, label)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s ...", p.current)
	}
}

func (p *progress) done(result string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s: %s", p.current, result)
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", p.current, result)
}

// finish clears the line on a terminal.
func (p *progress) finish() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

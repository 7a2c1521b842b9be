package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/batchconn/batchconn"
)

// report is a whole run's results: what -json prints, and what the table
// shows.
type report struct {
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Duration   string `json:"duration"`           // of one run
	Rounds     int    `json:"rounds"`             // runs per scenario, size and mode
	ReadBuffer int    `json:"read_buffer"`        // asked of the measured receive queues
	RmemMax    int    `json:"rmem_max,omitempty"` // the kernel's cap on it
	Rows       []*row `json:"results"`
}

// row is one scenario, size and mode over all its rounds: medians, and
// counts summed over the rounds.
type row struct {
	Scenario string `json:"scenario"`
	Size     int    `json:"size"`
	Mode     mode   `json:"mode"`

	DatagramsPerSec float64   `json:"datagrams_per_sec"` // round trips for pingpong
	MBPerSec        float64   `json:"mb_per_sec"`
	Ratio           *float64  `json:"ratio,omitempty"` // batchconn over plain: rate, or p50 for pingpong
	P50us           *float64  `json:"p50_us,omitempty"`
	P99us           *float64  `json:"p99_us,omitempty"`
	RoundRates      []float64 `json:"round_rates"` // each round's datagrams_per_sec

	// send and recv: datagrams sent to the receiver, those that reached
	// it, and the kernel's drops at its queue.
	Sent        uint64   `json:"sent,omitempty"`
	Arrived     uint64   `json:"arrived,omitempty"`
	ArrivedPct  *float64 `json:"arrived_pct,omitempty"`
	KernelDrops *uint64  `json:"kernel_drops,omitempty"`

	// batchconn only: datagrams per system call, and the summed Stats.
	ReadPerCall  *float64         `json:"datagrams_per_read_call,omitempty"`
	WritePerCall *float64         `json:"datagrams_per_write_call,omitempty"`
	Stats        *batchconn.Stats `json:"stats,omitempty"`

	Problems []string `json:"problems,omitempty"`

	samples []sample
}

func newReport(opts options) *report {
	return &report{
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Duration:   opts.duration.String(),
		Rounds:     opts.rounds,
		ReadBuffer: readBuffer,
		RmemMax:    rmemMax(),
	}
}

// add records one run's sample.
func (rep *report) add(scenario string, size int, m mode, round int, s sample) {
	r := rep.row(scenario, size, m)
	if r == nil {
		r = &row{Scenario: scenario, Size: size, Mode: m}
		rep.Rows = append(rep.Rows, r)
	}
	r.samples = append(r.samples, s)
	for _, p := range s.problems {
		r.Problems = append(r.Problems, fmt.Sprintf("round %d: %s", round, p))
	}
}

func (rep *report) row(scenario string, size int, m mode) *row {
	i := slices.IndexFunc(rep.Rows, func(r *row) bool {
		return r.Scenario == scenario && r.Size == size && r.Mode == m
	})
	if i < 0 {
		return nil
	}
	return rep.Rows[i]
}

// summarize computes every row's figures from its samples, then the
// ratios of batchconn's rows to plain's.
func (rep *report) summarize() {
	for _, r := range rep.Rows {
		r.summarize()
	}
	for _, r := range rep.Rows {
		base := rep.row(r.Scenario, r.Size, modePlain)
		if r.Mode == modePlain || base == nil {
			continue
		}
		if r.P50us != nil && base.P50us != nil {
			r.Ratio = ratio(*r.P50us, *base.P50us)
		} else {
			r.Ratio = ratio(r.DatagramsPerSec, base.DatagramsPerSec)
		}
	}
}

func (r *row) summarize() {
	var p50s, p99s []float64
	var stats batchconn.Stats
	var drops uint64
	dropsKnown := true
	for _, s := range r.samples {
		r.RoundRates = append(r.RoundRates, s.rate())
		r.Sent += s.offered
		r.Arrived += s.arrived
		drops += s.drops
		dropsKnown = dropsKnown && s.dropsKnown
		if r.Scenario == "pingpong" {
			p50s = append(p50s, micros(s.p50))
			p99s = append(p99s, micros(s.p99))
		}
		if s.stats != nil {
			addStats(&stats, s.stats)
			r.Stats = &stats
		}
	}
	r.DatagramsPerSec = median(r.RoundRates)
	r.MBPerSec = r.DatagramsPerSec * float64(r.Size) / 1e6
	if len(p50s) > 0 {
		r.P50us, r.P99us = ptr(median(p50s)), ptr(median(p99s))
	}
	if r.Sent > 0 {
		r.ArrivedPct = ptr(100 * float64(r.Arrived) / float64(r.Sent))
		if dropsKnown {
			r.KernelDrops = &drops
		}
	}
	if r.Stats != nil {
		r.ReadPerCall = ratio(float64(stats.DatagramsRead), float64(stats.ReadCalls))
		r.WritePerCall = ratio(float64(stats.DatagramsWritten), float64(stats.WriteCalls))
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

const tableFormat = "%-9s %6s  %-9s %10s %8s %7s %8s %8s %11s %8s\n"

func writeTable(w io.Writer, rep *report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "batchbench: plain *net.UDPConn vs batchconn on loopback, %s %s, GOMAXPROCS %d\n",
		rep.GoVersion, rep.Platform, rep.GOMAXPROCS)
	fmt.Fprintf(&b, "median of %d rounds of %s per mode, modes interleaved; receive queues asked %s (net.core.rmem_max %s)\n\n",
		rep.Rounds, rep.Duration, mib(rep.ReadBuffer), mib(rep.RmemMax))
	fmt.Fprintf(&b, tableFormat, "SCENARIO", "SIZE", "MODE", "DGRAM/S", "MB/S", "RATIO", "P50 µs", "P99 µs", "DG/CALL", "ARRIVED")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, tableFormat, r.Scenario, fmt.Sprint(r.Size), r.Mode,
			fmt.Sprintf("%.0f", r.DatagramsPerSec), fmt.Sprintf("%.1f", r.MBPerSec),
			format(r.Ratio, "%.2fx"), format(r.P50us, "%.1f"), format(r.P99us, "%.1f"),
			perCall(r), format(r.ArrivedPct, "%.1f%%"))
	}
	b.WriteString(legend)
	if rep.hasProblems() {
		b.WriteString("\nPROBLEMS:\n")
		for _, r := range rep.Rows {
			for _, p := range r.Problems {
				fmt.Fprintf(&b, "  %s %d %s, %s\n", r.Scenario, r.Size, r.Mode, p)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

const legend = `
DGRAM/S: send: the sender's rate; recv: the rate ReadFrom returned; pingpong: round trips.
RATIO: batchconn / plain; of DGRAM/S (above 1: faster), for pingpong of P50 (above 1: slower).
DG/CALL: batchconn's datagrams per system call (pingpong server: read/write).
ARRIVED, over all rounds: send: share of the sent datagrams the receiver read, the rest
         dropped by the kernel; recv: share of the senders' datagrams that found room in
         the receiver's queue (below 100%: the receiver set the pace; at 100%: the
         senders did, and DGRAM/S is only a lower bound for the receiver).
`

// perCall is the DG/CALL cell.
func perCall(r *row) string {
	switch {
	case r.ReadPerCall != nil && r.WritePerCall != nil:
		return fmt.Sprintf("%.2f/%.2f", *r.ReadPerCall, *r.WritePerCall)
	case r.ReadPerCall != nil:
		return format(r.ReadPerCall, "%.2f")
	default:
		return format(r.WritePerCall, "%.2f")
	}
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

func addStats(sum, s *batchconn.Stats) {
	sum.DatagramsRead += s.DatagramsRead
	sum.ReadCalls += s.ReadCalls
	sum.DatagramsWritten += s.DatagramsWritten
	sum.WriteCalls += s.WriteCalls
	sum.WriteFailures += s.WriteFailures
	sum.FlushIdle += s.FlushIdle
	sum.FlushFull += s.FlushFull
	sum.FlushTimer += s.FlushTimer
	sum.FlushRead += s.FlushRead
	sum.FlushExplicit += s.FlushExplicit
	sum.FlushClose += s.FlushClose
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

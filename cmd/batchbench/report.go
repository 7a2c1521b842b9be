package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"time"

	"github.com/batchconn/batchconn"
)

// report is a whole run's results: what -json prints, every key in
// snake_case, and what the table and the chart show.
type report struct {
	GoVersion  string   `json:"go_version"`
	Platform   string   `json:"platform"`
	GOMAXPROCS int      `json:"gomaxprocs"`
	Machine    *machine `json:"machine"`
	Target     string   `json:"target,omitempty"` // the -listen server measured against; loopback if empty
	Duration   string   `json:"duration"`         // of one run
	Rounds     int      `json:"rounds"`
	IdleConns  int      `json:"idle_conns"`
	ReadBuffer int      `json:"read_buffer"` // asked of the measured receive queues
	RmemMax    int      `json:"rmem_max,omitempty"`
	Rows       []*row   `json:"results"`
}

// row is one scenario, size, op and mode over its rounds: medians, and
// counts summed over the rounds, of the scenario's unit.
type row struct {
	Scenario string `json:"scenario"`
	Op       string `json:"op,omitempty"` // allocs: the call measured
	Size     int    `json:"size"`
	Mode     mode   `json:"mode"`
	Unit     string `json:"unit"` // what the figures per second and "per_unit" count

	PerSec        float64   `json:"per_sec"` // delivered; sent_only: what the sender's kernel took (-target)
	RoundsPerSec  []float64 `json:"rounds_per_sec"`
	SentOnly      bool      `json:"sent_only,omitempty"`
	MBPerSec      float64   `json:"mb_per_sec"` // payload, 10^6 bytes
	PerSecVsPlain *float64  `json:"per_sec_vs_plain,omitempty"`
	SentPerSec    *float64  `json:"sent_per_sec,omitempty"` // send, send16, fanout: what the kernel took

	CPUus      *float64 `json:"cpu_us_per_unit,omitempty"` // the whole process's
	CPUVsPlain *float64 `json:"cpu_vs_plain,omitempty"`
	P50us      *float64 `json:"p50_us,omitempty"`
	P99us      *float64 `json:"p99_us,omitempty"`
	P50VsPlain *float64 `json:"p50_vs_plain,omitempty"`
	P99VsPlain *float64 `json:"p99_vs_plain,omitempty"`

	AllocsPerUnit float64  `json:"allocs_per_unit"`          // heap objects; allocs: the call's
	BytesPerUnit  *float64 `json:"bytes_per_unit,omitempty"` // fresh: heap allocated per query; idle: held per conn
	BytesVsPlain  *float64 `json:"bytes_vs_plain,omitempty"`
	Conns         uint64   `json:"conns,omitempty"`

	// Datagrams (requests) sent and arrived (answered) over the rounds;
	// the rest were dropped, as the kernel's own count tells (which
	// counts a coalesced run dropped at a receiver with GRO as one).
	Sent        uint64   `json:"sent,omitempty"`
	Arrived     uint64   `json:"arrived,omitempty"`
	Dropped     *uint64  `json:"dropped,omitempty"`
	DroppedPct  *float64 `json:"dropped_pct,omitempty"`
	KernelDrops *uint64  `json:"kernel_drops,omitempty"`

	// The batchconn modes: the shares, in percent, of the datagrams sent
	// as GSO segments and received coalesced by GRO.
	OffloadSentPct     *float64 `json:"offload_sent_pct,omitempty"`
	OffloadReceivedPct *float64 `json:"offload_received_pct,omitempty"`

	Problems []string `json:"problems,omitempty"`

	kind    kind
	stats   *batchconn.Stats // summed
	samples []sample
}

func newReport(opts options) *report {
	rep := &report{
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Machine:    &machine{CPUs: runtime.NumCPU()},
		Duration:   opts.duration.String(),
		Rounds:     opts.rounds,
		IdleConns:  opts.idleConns,
		ReadBuffer: readBuffer,
		RmemMax:    rmemMax(),
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
		r = &row{Scenario: j.scenario.name, Op: j.op, Size: j.size, Mode: m, Unit: j.scenario.unit, kind: j.scenario.kind}
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

// summarize computes every row's figures, and their ratios to plain's.
func (rep *report) summarize() {
	for _, r := range rep.Rows {
		r.summarize()
	}
	for _, r := range rep.Rows {
		if base := rep.row(r.Scenario, r.Op, r.Size, modePlain); base != nil {
			if r.kind == kindLatency {
				r.P50VsPlain = ratioOf(r.P50us, base.P50us)
				r.P99VsPlain = ratioOf(r.P99us, base.P99us)
			} else {
				r.PerSecVsPlain = ratio(r.PerSec, base.PerSec)
			}
			r.CPUVsPlain = ratioOf(r.CPUus, base.CPUus)
			r.BytesVsPlain = ratioOf(r.BytesPerUnit, base.BytesPerUnit)
		}
	}
}

func (r *row) summarize() {
	var p50s, p99s, allocs, cpus, sentRates, memory []float64
	var stats batchconn.Stats
	var drops uint64
	arrivals, dropsKnown := true, true
	_, cpuKnown := processCPU()
	for _, s := range r.samples {
		r.RoundsPerSec = append(r.RoundsPerSec, s.rate())
		allocs = append(allocs, s.allocs)
		memory = append(memory, s.bytes)
		if r.kind == kindIdle {
			r.Conns = s.count
		}
		r.SentOnly = r.SentOnly || s.sentOnly
		if s.count > 0 {
			cpus = append(cpus, micros(s.cpu)/float64(s.count))
		}
		if s.sendTime > 0 {
			sentRates = append(sentRates, float64(s.offered)/s.sendTime.Seconds())
		}
		r.Sent += s.offered
		r.Arrived += s.arrived
		drops += s.drops
		arrivals = arrivals && s.arrivals
		dropsKnown = dropsKnown && s.dropsKnown
		if r.kind == kindLatency && s.count > 0 {
			p50s = append(p50s, micros(s.p50))
			p99s = append(p99s, micros(s.p99))
		}
		if s.stats != nil {
			addStats(&stats, s.stats)
			r.stats = &stats
		}
	}
	r.PerSec = median(r.RoundsPerSec)
	r.MBPerSec = r.PerSec * float64(r.Size) / 1e6
	r.AllocsPerUnit = median(allocs)
	if len(sentRates) > 0 {
		r.SentPerSec = ptr(median(sentRates))
	}
	if cpuKnown && len(cpus) > 0 && r.kind != kindAllocs {
		r.CPUus = ptr(median(cpus))
	}
	if len(p50s) > 0 {
		r.P50us, r.P99us = ptr(median(p50s)), ptr(median(p99s))
	}
	if r.kind == kindFresh || r.kind == kindIdle {
		r.BytesPerUnit = ptr(median(memory))
	}
	if arrivals && r.Sent > 0 && r.Arrived <= r.Sent {
		r.Dropped = ptr(r.Sent - r.Arrived)
		r.DroppedPct = ptr(100 * float64(*r.Dropped) / float64(r.Sent))
		if dropsKnown {
			r.KernelDrops = &drops
		}
	}
	if r.stats != nil {
		r.OffloadSentPct = ratio(100*float64(stats.OffloadSent), float64(stats.DatagramsWritten))
		r.OffloadReceivedPct = ratio(100*float64(stats.OffloadReceived), float64(stats.DatagramsRead))
	}
}

// exitCode is 1 if anything went wrong in the measurement, else 0.
func (rep *report) exitCode() int {
	if slices.ContainsFunc(rep.Rows, func(r *row) bool { return len(r.Problems) > 0 }) {
		return 1
	}
	return 0
}

func writeJSON(w io.Writer, rep *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// addStats adds s to sum, field by field, whatever counts Stats has.
func addStats(sum, s *batchconn.Stats) {
	dst, src := reflect.ValueOf(sum).Elem(), reflect.ValueOf(s).Elem()
	for i := range dst.NumField() {
		if f := dst.Field(i); f.Kind() == reflect.Uint64 && f.CanSet() {
			f.SetUint(f.Uint() + src.Field(i).Uint())
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Sorted(slices.Values(xs))
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

func ratioOf(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	return ratio(*a, *b)
}

func ptr[T any](v T) *T { return &v }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
)

// report is a whole run's results: what -json prints, every key in
// snake_case, and what the table and the chart show.
type report struct {
	GoVersion  string   `json:"go_version"`
	Platform   string   `json:"platform"`
	GOMAXPROCS int      `json:"gomaxprocs"`
	CPUs       int      `json:"cpus"`
	LoadAvg    *float64 `json:"load_average,omitempty"` // over the minute before the run
	Target     string   `json:"target,omitempty"`       // the -listen server measured against; loopback if empty
	Duration   string   `json:"duration"`               // of one run
	Rounds     int      `json:"rounds"`
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
	// the rest were dropped, on loopback by the kernel (checkSent).
	Sent       uint64   `json:"sent,omitempty"`
	Arrived    uint64   `json:"arrived,omitempty"`
	Dropped    *uint64  `json:"dropped,omitempty"`
	DroppedPct *float64 `json:"dropped_pct,omitempty"`

	// The batchconn modes: how often the kernel refused offload, which
	// the socket then went on without: those rows measured less of it.
	OffloadFallbacks uint64 `json:"offload_fallbacks,omitempty"`

	Problems []string `json:"problems,omitempty"`

	kind    kind
	samples []sample
}

func newReport(opts options) *report {
	rep := &report{
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUs:       runtime.NumCPU(),
		LoadAvg:    loadAvg(),
		Duration:   opts.duration.String(),
		Rounds:     opts.rounds,
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
				r.P50VsPlain = ratio(r.P50us, base.P50us)
				r.P99VsPlain = ratio(r.P99us, base.P99us)
			} else {
				r.PerSecVsPlain = ratio(&r.PerSec, &base.PerSec)
			}
			r.CPUVsPlain = ratio(r.CPUus, base.CPUus)
			r.BytesVsPlain = ratio(r.BytesPerUnit, base.BytesPerUnit)
		}
	}
}

func (r *row) summarize() {
	// med is the median of f over the samples where it is known (ok).
	med := func(f func(s sample) (v float64, ok bool)) *float64 {
		var vs []float64
		for _, s := range r.samples {
			if v, ok := f(s); ok {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			return nil
		}
		return ptr(median(vs))
	}
	_, cpuKnown := processCPU()
	r.PerSec = *med(func(s sample) (float64, bool) { return s.rate(), true })
	r.MBPerSec = r.PerSec * float64(r.Size) / 1e6
	r.AllocsPerUnit = *med(func(s sample) (float64, bool) { return s.allocs, true })
	r.CPUus = med(func(s sample) (float64, bool) {
		return micros(s.cpu) / float64(s.count), cpuKnown && s.count > 0 && r.kind != kindAllocs
	})
	if r.kind == kindLatency {
		r.P50us = med(func(s sample) (float64, bool) { return micros(s.p50), s.count > 0 })
		r.P99us = med(func(s sample) (float64, bool) { return micros(s.p99), s.count > 0 })
	}
	if r.kind == kindFresh || r.kind == kindIdle {
		r.BytesPerUnit = med(func(s sample) (float64, bool) { return s.bytes, true })
	}
	arrivals := true
	for _, s := range r.samples {
		r.RoundsPerSec = append(r.RoundsPerSec, s.rate())
		r.SentOnly = r.SentOnly || s.sentOnly
		r.Sent, r.Arrived, arrivals = r.Sent+s.offered, r.Arrived+s.arrived, arrivals && s.arrivals
		if r.kind == kindIdle {
			r.Conns = s.count
		}
		if s.stats != nil {
			r.OffloadFallbacks += s.stats.OffloadFallbacks
		}
	}
	if arrivals && r.Sent > 0 && r.Arrived <= r.Sent {
		r.Dropped = ptr(r.Sent - r.Arrived)
		r.DroppedPct = ptr(100 * float64(*r.Dropped) / float64(r.Sent))
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

// ratio returns *a / *b, or nil where either is nil or b is 0.
func ratio(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	return ptr(*a / *b)
}

func ptr[T any](v T) *T { return &v }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

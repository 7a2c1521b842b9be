package main

import (
	"fmt"
	"math"
)

// barSpec is one of the bars of the project's performance issue: a figure
// of batchconn's, over plain's in the same run or on its own, and the
// target it must reach.
type barSpec struct {
	bar      int
	scenario string
	op       string // allocs: the call
	figure   string
	target   float64
	atMost   bool                  // the target is a ceiling; otherwise a floor
	ratio    func(r *row) *float64 // the ratio compared; nil: allocations per datagram
	vsPlain  bool                  // allocations: the target is plain's figure
}

var barSpecs = []barSpec{
	{bar: 1, scenario: "send", figure: "datagrams/s, batchconn / plain", target: 3, ratio: rateRatio},
	{bar: 2, scenario: "send16", figure: "datagrams/s, batchconn / plain", target: 3, ratio: rateRatio},
	{bar: 3, scenario: "recv", figure: "datagrams/s, batchconn / plain", target: 2.5, ratio: rateRatio},
	{bar: 4, scenario: "echo", figure: "responses/s, batchconn / plain", target: 2, ratio: rateRatio},
	{bar: 5, scenario: "pingpong", figure: "p50 round trip, batchconn / plain", target: 1.05, atMost: true, ratio: p50Ratio},
	{bar: 5, scenario: "pingpong", figure: "p99 round trip, batchconn / plain", target: 1.25, atMost: true, ratio: p99Ratio},
	{bar: 6, scenario: "lone", figure: "p50 one-way delay, batchconn / plain", target: 1.05, atMost: true, ratio: p50Ratio},
	{bar: 7, scenario: "allocs", op: "WriteTo", figure: "allocs per datagram, batchconn", atMost: true},
	{bar: 7, scenario: "allocs", op: "WriteToUDPAddrPort", figure: "allocs per datagram, batchconn", atMost: true},
	{bar: 7, scenario: "allocs", op: "ReadFromUDPAddrPort", figure: "allocs per datagram, batchconn", atMost: true},
	{bar: 7, scenario: "allocs", op: "ReadFrom", figure: "allocs per datagram, batchconn (vs plain)", atMost: true, vsPlain: true},
}

func rateRatio(r *row) *float64 { return r.Ratio }
func p50Ratio(r *row) *float64  { return r.Ratio }
func p99Ratio(r *row) *float64  { return r.RatioP99 }

// barResult is a bar checked against this run's medians.
type barResult struct {
	Bar      int     `json:"bar"`
	Scenario string  `json:"scenario"`
	Op       string  `json:"op,omitempty"`
	Size     int     `json:"size"`
	Figure   string  `json:"figure"`
	Unit     string  `json:"unit"` // "ratio" (batchconn / plain) or "allocs" (per datagram)
	Target   float64 `json:"target"`
	AtMost   bool    `json:"at_most"` // the target is a ceiling, not a floor
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"` // at the two decimals shown
}

// checkBars checks every bar the report's rows measure, once per size.
func checkBars(rep *report) []*barResult {
	var bars []*barResult
	for _, spec := range barSpecs {
		for _, r := range rep.Rows {
			if r.Mode != modeBatch || r.Scenario != spec.scenario || r.Op != spec.op {
				continue
			}
			if plain := rep.row(r.Scenario, r.Op, r.Size, modePlain); plain != nil {
				if b := spec.check(r, plain); b != nil {
					bars = append(bars, b)
				}
			}
		}
	}
	return bars
}

// check compares batchconn's row with plain's; nil if it lacks the figure.
func (spec barSpec) check(batch, plain *row) *barResult {
	b := &barResult{Bar: spec.bar, Scenario: spec.scenario, Op: spec.op, Size: batch.Size,
		Figure: spec.figure, Target: spec.target, AtMost: spec.atMost}
	if spec.ratio != nil {
		v := spec.ratio(batch)
		if v == nil {
			return nil
		}
		b.Unit, b.Measured = "ratio", *v
	} else {
		b.Unit, b.Measured = "allocs", batch.AllocsPerDatagram
		if spec.vsPlain {
			b.Target = plain.AllocsPerDatagram
		}
	}
	m, t := hundredths(b.Measured), hundredths(b.Target)
	b.Met = m >= t
	if b.AtMost {
		b.Met = m <= t
	}
	return b
}

// hundredths rounds v to the two decimals the table shows.
func hundredths(v float64) int64 { return int64(math.Round(v * 100)) }

// subject names what the bar measures: scenario and size, or the call.
func (b *barResult) subject() string {
	if b.Op != "" {
		return b.Op
	}
	return fmt.Sprintf("%s %d B", b.Scenario, b.Size)
}

// value formats v in the bar's unit.
func (b *barResult) value(v float64) string {
	if b.Unit == "ratio" {
		return fmt.Sprintf("%.2fx", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func (b *barResult) target() string {
	if b.AtMost {
		return "<= " + b.value(b.Target)
	}
	return ">= " + b.value(b.Target)
}

func (b *barResult) measured() string { return b.value(b.Measured) }

func (b *barResult) result() string {
	if b.Met {
		return "PASS"
	}
	return "MISS"
}

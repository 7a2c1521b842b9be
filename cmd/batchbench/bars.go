package main

import (
	"fmt"
	"math"
	"strings"
)

// The project's own targets ("bars"), from its issues, checked against a
// run's medians with -targets only: they are the developers' goals, not
// what a user weighs, and a target missed does not change the exit
// status.

// The sets of bars, each from an issue of the project's.
const (
	// setPerf: the performance issue's bars, numbered 1 to 7, for
	// batching as such. Its throughput bars (1 to 4) are checked on
	// nooffload, batchconn without segmentation offload: the issue
	// measures sending without GSO, and receiving ordinary datagrams. Its
	// delay and allocation bars (5 to 7) on batchconn as New makes it,
	// offload on.
	setPerf = "performance"
	// setOffload: the offload issue's bars, G1 to G4, for batchconn with
	// UDP GSO and GRO on (its defaults).
	setOffload = "offload"
	// setCost: the bars of the issue "a conn costs nothing until it
	// carries traffic", C1 to C3: a socket per query at plain's speed,
	// idle conns at plain's memory.
	setCost = "cost"
	// setFanout: the fan-out issue's bar, F1, for batchconn with
	// Config.GroupByDestination: datagrams sent to many peers in turn
	// carried by GSO.
	setFanout = "fanout"
)

// barSpec is one bar: a figure of one mode's, over another mode's in the
// same run or on its own, and the target it must reach.
type barSpec struct {
	bar      string // "1" to "7", "G1" to "G4", "C1" to "C3", "F1"
	set      string // setPerf, setOffload, setCost or setFanout
	scenario string
	size     int    // the one payload size it is checked at; 0: each size run
	op       string // allocs: the call
	figure   string
	mode     mode // whose figure
	versus   mode // the mode it is divided by; for allocs with vsVersus, whose figure is the target
	target   float64
	atMost   bool                  // the target is a ceiling; otherwise a floor
	strict   bool                  // the figure must beat the target, not just reach it
	metric   func(r *row) *float64 // the figure divided; nil: an amount, allocations or bytes
	bytes    bool                  // the amount is the row's bytes, not its allocations per datagram
	vsVersus bool                  // an amount: the target is versus's figure, plus slack
	slack    float64

	// ceiling is the mode whose figure, over versus's, is what the bar's
	// figure can reach in this harness (raw, for bars 1 to 3); none if
	// empty.
	ceiling mode
}

var barSpecs = []barSpec{
	{bar: "1", set: setPerf, scenario: "send", figure: "sent/s, nooffload / plain", mode: modeNoOffload, versus: modePlain, target: 3, metric: sentRate, ceiling: modeRaw},
	{bar: "2", set: setPerf, scenario: "send16", figure: "sent/s, nooffload / plain", mode: modeNoOffload, versus: modePlain, target: 3, metric: sentRate, ceiling: modeRaw},
	{bar: "3", set: setPerf, scenario: "recv", figure: "datagrams/s, nooffload / plain", mode: modeNoOffload, versus: modePlain, target: 2.5, metric: rate, ceiling: modeRaw},
	{bar: "4", set: setPerf, scenario: "echo", figure: "responses/s, nooffload / plain", mode: modeNoOffload, versus: modePlain, target: 2, metric: rate},
	{bar: "5", set: setPerf, scenario: "pingpong", figure: "p50 round trip, batchconn / plain", mode: modeBatch, versus: modePlain, target: 1.05, atMost: true, metric: p50},
	{bar: "5", set: setPerf, scenario: "pingpong", figure: "p99 round trip, batchconn / plain", mode: modeBatch, versus: modePlain, target: 1.25, atMost: true, metric: p99},
	{bar: "6", set: setPerf, scenario: "lone", figure: "p50 one-way delay, batchconn / plain", mode: modeBatch, versus: modePlain, target: 1.05, atMost: true, metric: p50},
	{bar: "7", set: setPerf, scenario: "allocs", op: "WriteTo", figure: "allocs per datagram, batchconn", mode: modeBatch, atMost: true},
	{bar: "7", set: setPerf, scenario: "allocs", op: "WriteToUDPAddrPort", figure: "allocs per datagram, batchconn", mode: modeBatch, atMost: true},
	{bar: "7", set: setPerf, scenario: "allocs", op: "ReadFromUDPAddrPort", figure: "allocs per datagram, batchconn", mode: modeBatch, atMost: true},
	{bar: "7", set: setPerf, scenario: "allocs", op: "ReadFrom", figure: "allocs per datagram, batchconn (vs plain)", mode: modeBatch, versus: modePlain, atMost: true, vsVersus: true},

	{bar: "G1", set: setOffload, scenario: "send", size: 1200, figure: "sent/s, batchconn / plain", mode: modeBatch, versus: modePlain, target: 8, metric: sentRate},
	{bar: "G2", set: setOffload, scenario: "send", size: 64, figure: "sent/s, batchconn / plain", mode: modeBatch, versus: modePlain, target: 8, metric: sentRate},
	{bar: "G3", set: setOffload, scenario: "recvgso", figure: "datagrams/s, batchconn / plain", mode: modeBatch, versus: modePlain, target: 8, metric: rate, ceiling: modeRawGRO},
	{bar: "G4", set: setOffload, scenario: "echo", figure: "responses/s, batchconn / nooffload", mode: modeBatch, versus: modeNoOffload, target: 1, strict: true, metric: rate},

	{bar: "C1", set: setCost, scenario: "fresh", figure: "queries/s, batchconn / plain", mode: modeBatch, versus: modePlain, target: 0.9, metric: rate},
	{bar: "C2", set: setCost, scenario: "fresh", figure: "bytes allocated a query, plain + 2 KiB", mode: modeBatch, versus: modePlain, atMost: true, bytes: true, vsVersus: true, slack: 2048},
	{bar: "C3", set: setCost, scenario: "idle", figure: "heap held a conn, plain + 2 KiB", mode: modeBatch, versus: modePlain, atMost: true, bytes: true, vsVersus: true, slack: 2048},

	{bar: "F1", set: setFanout, scenario: "fanout", size: fanoutSize, figure: "sent/s, grouped / plain", mode: modeGrouped, versus: modePlain, target: 6, metric: sentRate},
}

// The figures bars divide. The send bars were set on the sender's rate,
// what its kernel accepted (with -target, all that is known).
func rate(r *row) *float64 { return &r.PerSec }
func sentRate(r *row) *float64 {
	if r.SentOnly {
		return &r.PerSec
	}
	return r.SentPerSec
}
func p50(r *row) *float64 { return r.P50us }
func p99(r *row) *float64 { return r.P99us }

// barResult is a bar checked against this run's medians.
type barResult struct {
	Bar      string  `json:"bar"`
	Set      string  `json:"set"` // "performance", "offload", "cost" or "fanout"
	Scenario string  `json:"scenario"`
	Op       string  `json:"op,omitempty"`
	Size     int     `json:"size"`
	Figure   string  `json:"figure"`
	Mode     mode    `json:"mode"`             // whose figure
	Versus   mode    `json:"versus,omitempty"` // the divisor's mode, or whose allocations are the target
	Unit     string  `json:"unit"`             // "ratio" (mode / versus), "allocs" (per datagram) or "bytes"
	Target   float64 `json:"target"`
	AtMost   bool    `json:"at_most"`          // the target is a ceiling, not a floor
	Strict   bool    `json:"strict,omitempty"` // the figure must beat the target, not just reach it
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"` // at the two decimals shown

	// Bars 1 to 3 and G3, where this run measured their ceiling (raw;
	// rawgro for G3): the ceiling's figure over versus's (raw / plain),
	// whether that meets the target (if not, the bar is out of reach in
	// this harness, whatever batchconn does), and the share of the
	// ceiling the bar's mode reached (nooffload / raw).
	Ceiling      mode     `json:"ceiling_mode,omitempty"`
	CeilingRatio *float64 `json:"ceiling_ratio,omitempty"`
	CeilingMet   *bool    `json:"ceiling_met,omitempty"`
	OfCeiling    *float64 `json:"share_of_ceiling,omitempty"`
}

// checkBars checks every bar the report's rows measure, once per size.
func checkBars(rep *report) []*barResult {
	var bars []*barResult
	for _, spec := range barSpecs {
		for _, r := range rep.Rows {
			if r.Mode != spec.mode || r.Scenario != spec.scenario || r.Op != spec.op ||
				(spec.size != 0 && r.Size != spec.size) {
				continue
			}
			var base *row
			if spec.versus != "" {
				if base = rep.row(r.Scenario, r.Op, r.Size, spec.versus); base == nil {
					continue
				}
			}
			b := spec.check(r, base)
			if b == nil {
				continue
			}
			if spec.ceiling != "" {
				if c := rep.row(r.Scenario, r.Op, r.Size, spec.ceiling); c != nil {
					spec.withCeiling(b, r, c, base)
				}
			}
			bars = append(bars, b)
		}
	}
	return bars
}

// check compares the mode's row with versus's (nil if the bar has none);
// nil if they lack the figure.
func (spec barSpec) check(r, versus *row) *barResult {
	b := &barResult{Bar: spec.bar, Set: spec.set, Scenario: spec.scenario, Op: spec.op, Size: r.Size,
		Figure: spec.figure, Mode: spec.mode, Versus: spec.versus, Target: spec.target, AtMost: spec.atMost, Strict: spec.strict}
	if spec.metric != nil {
		a, v := spec.metric(r), spec.metric(versus)
		if a == nil || v == nil || *v == 0 {
			return nil
		}
		b.Unit, b.Measured = "ratio", *a / *v
	} else {
		amount := func(r *row) *float64 { return &r.AllocsPerUnit }
		b.Unit = "allocs"
		if spec.bytes {
			amount, b.Unit = (*row).bytes, "bytes"
		}
		a := amount(r)
		if a == nil {
			return nil
		}
		b.Measured = *a
		if spec.vsVersus {
			v := amount(versus)
			if v == nil {
				return nil
			}
			b.Target = *v + spec.slack
		}
	}
	b.Met = meets(b.Measured, b.Target, b.AtMost, b.Strict)
	return b
}

// meets reports whether figure meets target at the two decimals shown.
func meets(figure, target float64, atMost, strict bool) bool {
	m, t := hundredths(figure), hundredths(target)
	switch {
	case atMost && strict:
		return m < t
	case atMost:
		return m <= t
	case strict:
		return m > t
	}
	return m >= t
}

// withCeiling adds to b the ceiling's figure, from c, its row, over
// versus's, and the share of it that r's figure reached.
func (spec barSpec) withCeiling(b *barResult, r, c, versus *row) {
	a, cv, v := spec.metric(r), spec.metric(c), spec.metric(versus)
	if a == nil || cv == nil || v == nil || *cv == 0 || *v == 0 {
		return
	}
	b.Ceiling, b.CeilingRatio, b.OfCeiling = spec.ceiling, ptr(*cv / *v), ptr(*a / *cv)
	b.CeilingMet = ptr(meets(*b.CeilingRatio, b.Target, b.AtMost, b.Strict))
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
	switch b.Unit {
	case "ratio":
		return fmt.Sprintf("%.2fx", v)
	case "bytes":
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func (b *barResult) target() string {
	op := ">="
	switch {
	case b.AtMost && b.Strict:
		op = "<"
	case b.AtMost:
		op = "<="
	case b.Strict:
		op = ">"
	}
	return op + " " + b.value(b.Target)
}

func (b *barResult) measured() string { return b.value(b.Measured) }

func (b *barResult) result() string {
	if b.Met {
		return "PASS"
	}
	return "MISS"
}

// ceilingLine is the line under a bar with a ceiling, its columns those
// of the bar's: the ceiling's figure under the bar's, and in RESULT's
// place the share of it the bar's mode reached and, where the ceiling too
// misses the target, that it does.
func (b *barResult) ceilingLine() (subject, figure, measured, result string) {
	result = fmt.Sprintf("%s at %.0f%% of %s", b.Mode, 100*(*b.OfCeiling), b.Ceiling)
	if !*b.CeilingMet {
		result += "; " + string(b.Ceiling) + " misses the target too"
	}
	unit, _, _ := strings.Cut(b.Figure, ",") // the bar's own: sent/s, datagrams/s
	return "  " + string(b.Ceiling) + " ceiling", fmt.Sprintf("%s, %s / %s", unit, b.Ceiling, b.Versus),
		b.value(*b.CeilingRatio), result
}

// barSets are the sets in the order shown, with the heading of each and
// a line to follow it.
var barSets = []struct{ set, title, note string }{
	{setPerf, "BARS (performance issue; 1-4: nooffload, 5-7: batchconn)", ""},
	{setOffload, "OFFLOAD BARS (offload issue; batchconn, offload on)",
		"pingpong and lone with offload on: bars 5 and 6 above, measured on batchconn"},
	{setCost, "COST BARS (a conn costs nothing until it carries traffic; batchconn)", ""},
	{setFanout, "FANOUT BARS (fan-out issue; grouped: batchconn with GroupByDestination)", ""},
}

// inSet returns the bars of set, in order.
func inSet(bars []*barResult, set string) []*barResult {
	var out []*barResult
	for _, b := range bars {
		if b.Set == set {
			out = append(out, b)
		}
	}
	return out
}

// countMet is how many of bars meet their target.
func countMet(bars []*barResult) int {
	n := 0
	for _, b := range bars {
		if b.Met {
			n++
		}
	}
	return n
}

// writeBars shows, with -targets, each bar's target, the figure measured
// and whether it meets it, a section for each set.
func writeBars(b *strings.Builder, rep *report) {
	const f = "%-3s %-19s %-41s %9s %9s  %s\n"
	b.WriteString("\nTARGETS: the project's own goals from its issues (-targets), not what a user weighs;\n" +
		"a target missed does not change the exit status\n")
	for _, set := range barSets {
		bars := inSet(rep.Targets, set.set)
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

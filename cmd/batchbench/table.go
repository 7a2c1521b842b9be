package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// legend is what it takes to read the blocks; the package doc says more.
const legend = `
VS PLAIN: the figure over plain's in this run: for rates higher is better, for CPU, delay and memory lower.
Modes: batchconn = New(conn, nil); strict = StrictOrder; nooffload = NoOffload; xnet = a loop over x/net's
ReadBatch/WriteBatch; raw = sendmmsg/recvmmsg; rawgso, rawgro = raw with UDP GSO, GRO. More: go doc ./cmd/batchbench.
`

// writeTable writes a block per scenario, each mode's figures beside
// plain's, then the legend and what went wrong.
func writeTable(w io.Writer, rep *report) error {
	var b strings.Builder
	writeHeader(&b, rep)
	for _, sc := range allScenarios {
		rows := slices.DeleteFunc(slices.Clone(rep.Rows), func(r *row) bool { return r.Scenario != sc.name })
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s: %s\n", sc.name, sc.about)
		writeBlock(&b, columnsFor(rows), rows)
	}
	var problems []string
	for _, r := range rep.Rows {
		for _, p := range r.Problems {
			problems = append(problems, strings.Join(strings.Fields(fmt.Sprintf("%s %s %d B %s: %s", r.Scenario, r.Op, r.Size, r.Mode, p)), " "))
		}
	}
	b.WriteString(legend)
	if len(problems) > 0 {
		b.WriteString("\nPROBLEMS (the measurement went wrong; the exit status is 1):\n  " + strings.Join(problems, "\n  ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHeader says what was compared, where and how, and how busy the
// machine was: other programs' load makes the figures noisy.
func writeHeader(b *strings.Builder, rep *report) {
	where := "on loopback (127.0.0.1), both ends in this process"
	if rep.Target != "" {
		where = "over the path to " + rep.Target + " (batchbench -listen)"
	}
	fmt.Fprintf(b, "batchbench: plain *net.UDPConn against batchconn and the alternatives, %s\n", where)
	fmt.Fprintf(b, "%s %s, %d CPUs (GOMAXPROCS %d), load average %s before the run (other programs' load makes figures noisy)\n"+
		"each figure the median of %d round(s) of %s, the modes taking turns\n",
		rep.GoVersion, rep.Platform, rep.CPUs, rep.GOMAXPROCS, format(rep.LoadAvg, compact), rep.Rounds, rep.Duration)
}

// column is one column of a block: its heading, its width (negative:
// left-aligned) and its cell for a row. A figure compared with plain's
// has vs, which a VS PLAIN column after it shows and the chart draws.
type column struct {
	head  string
	width int
	cell  func(r *row) string
	vs    func(r *row) *float64
	lower bool // for vs: lower is better
}

// columnsFor are the columns of a scenario's block, rows.
func columnsFor(rows []*row) []column {
	k := rows[0].kind
	abbr := map[string]string{"datagram": "DG", "response": "RESP", "round trip": "RT", "query": "QUERY"}[rows[0].Unit]
	mode := column{head: "MODE", width: -9, cell: func(r *row) string { return string(r.Mode) }}
	cpu := column{"CPU µs/" + abbr, 11, func(r *row) string { return format(r.CPUus, compact) },
		func(r *row) *float64 { return r.CPUVsPlain }, true}
	tail := []column{cpu,
		{head: "ALLOCS/" + abbr, width: 10, cell: func(r *row) string { return fmt.Sprintf("%.2f", r.AllocsPerUnit) }},
		{head: "KERNEL DROPS", width: -18, cell: dropsCell},
	}
	bytesVs := func(r *row) *float64 { return r.BytesVsPlain }
	perSecVs := func(r *row) *float64 { return r.PerSecVsPlain }
	switch k {
	case kindFresh:
		return []column{mode,
			{"QUERIES/S", 10, func(r *row) string { return thousands(r.PerSec) }, perSecVs, false},
			{"ALLOCATED/QUERY", 15, func(r *row) string { return format(r.BytesPerUnit, byteSize) }, bytesVs, true},
			cpu,
		}
	case kindIdle:
		return []column{mode,
			{"HEAP/CONN", 10, func(r *row) string { return format(r.BytesPerUnit, byteSize) }, bytesVs, true},
			{head: "ALL CONNS", width: 10, cell: func(r *row) string { return byteSize(*r.BytesPerUnit * float64(r.Conns)) }},
		}
	case kindLatency:
		return append([]column{mode,
			{"P50 µs", 8, func(r *row) string { return format(r.P50us, compact) }, func(r *row) *float64 { return r.P50VsPlain }, true},
			{"P99 µs", 8, func(r *row) string { return format(r.P99us, compact) }, func(r *row) *float64 { return r.P99VsPlain }, true},
		}, tail...)
	case kindAllocs:
		return []column{{head: "CALL", width: -20, cell: func(r *row) string { return r.Op }}, mode,
			{head: "ALLOCS/DG", width: 10, cell: func(r *row) string { return fmt.Sprintf("%.2f", r.AllocsPerUnit) }}}
	}
	head := map[string]string{"datagram": "DELIVERED/S", "response": "RESPONSES/S"}[rows[0].Unit]
	if slices.ContainsFunc(rows, func(r *row) bool { return r.SentOnly }) {
		head = "SENT/S"
	}
	return append([]column{{head: "SIZE", width: 5, cell: func(r *row) string { return fmt.Sprint(r.Size) }}, mode,
		{head, 12, func(r *row) string { return thousands(r.PerSec) }, perSecVs, false},
		{head: "MB/S", width: 7, cell: func(r *row) string { return fmt.Sprintf("%.1f", r.MBPerSec) }},
	}, tail...)
}

// writeBlock writes a heading line of cols and a line per row.
func writeBlock(b *strings.Builder, cols []column, rows []*row) {
	var all []column
	for _, c := range cols {
		all = append(all, c)
		if c.vs != nil {
			all = append(all, column{head: "VS PLAIN", width: 8, cell: func(r *row) string { return format(c.vs(r), times) }})
		}
	}
	line := func(cell func(c column) string) {
		var parts []string
		for _, c := range all {
			parts = append(parts, fmt.Sprintf("%*s", c.width, cell(c)))
		}
		b.WriteString(strings.TrimRight("  "+strings.Join(parts, "  "), " ") + "\n")
	}
	line(func(c column) string { return c.head })
	for _, r := range rows {
		line(func(c column) string { return c.cell(r) })
	}
}

// dropsCell is how many of the datagrams sent were dropped, and their
// share; "-" where that is not known.
func dropsCell(r *row) string {
	switch {
	case r.Dropped == nil:
		return "-"
	case *r.Dropped == 0:
		return "0"
	}
	return fmt.Sprintf("%s (%.1f%%)", thousands(float64(*r.Dropped)), *r.DroppedPct)
}

// byteSize formats a number of bytes: "360 B", "157.2 KiB", "314.5 MiB".
func byteSize(v float64) string {
	switch a := math.Abs(v); {
	case a < 10<<10:
		return fmt.Sprintf("%.0f B", v)
	case a < 1<<20:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", v/(1<<20))
}

func times(v float64) string { return fmt.Sprintf("%.2fx", v) }

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

// thousands formats v rounded, its digits grouped by threes: "1,234,567".
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", math.Abs(math.Round(v)))
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if math.Round(v) < 0 {
		s = "-" + s
	}
	return s
}

// format formats *v with f, or gives "-" for nil.
func format(v *float64, f func(float64) string) string {
	if v == nil {
		return "-"
	}
	return f(*v)
}

package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// The chart's geometry, in pixels: a block per scenario and size, a bar
// row per mode, and two columns of bars, each figure over plain's.
const (
	svgWidth  = 960
	svgLeft   = 20  // the blocks' names
	modeRight = 140 // where the modes' names end
	barMax    = 230 // the longest bar of a block's column
	barRow    = 18
	barHeight = 12
	blockHead = 24 // a block's title line
	blockGap  = 12
	chartTop  = 70 // below the title and the run's description
)

// columnX is where each column's bars start.
var columnX = [2]int{150, 570}

var modeColors = map[mode]string{
	modePlain:     "#9e9e9e",
	modeBatch:     "#1565c0",
	modeStrict:    "#00897b",
	modeNoOffload: "#64b5f6",
	modeXnet:      "#ef6c00",
	modeRaw:       "#6d4c41",
	modeRawGSO:    "#8d6e63",
	modeRawGRO:    "#a1887f",
}

// chartColumns are the figures a block of rows charts: the first two of
// its table's compared with plain's; none for allocs, whose counts are no
// ratios (plain's may be 0).
func chartColumns(rows []*row) []column {
	cols := slices.DeleteFunc(columnsFor(rows), func(c column) bool { return c.vs == nil })
	return cols[:min(len(cols), 2)]
}

// chartBlocks are rep's rows a block per scenario and size, in the order
// they ran: those with something to chart and plain's row to compare.
func chartBlocks(rep *report) [][]*row {
	var blocks [][]*row
	for _, r := range rep.Rows {
		if r.kind == kindAllocs || rep.row(r.Scenario, r.Op, r.Size, modePlain) == nil {
			continue
		}
		if n := len(blocks); n > 0 && blocks[n-1][0].Scenario == r.Scenario && blocks[n-1][0].Size == r.Size {
			blocks[n-1] = append(blocks[n-1], r)
		} else {
			blocks = append(blocks, []*row{r})
		}
	}
	return blocks
}

// chartCaption says in two lines how to read the chart.
var chartCaption = [2]string{
	"Each bar is a mode's figure over plain *net.UDPConn's in the same run; the dashed line is plain (1x).",
	"Each block and column has its own scale. CPU: the whole process's, both ends of the traffic. Modes, scenarios: go doc ./cmd/batchbench",
}

func writeSVGFile(name string, rep *report) error {
	var b strings.Builder
	writeSVG(&b, rep)
	return os.WriteFile(name, []byte(b.String()), 0o644)
}

// writeSVG draws a block of bars per scenario and size, each block and
// column on a scale of its own, so that a ratio of 1.2 reads as well
// beside plain as one of 30 does.
func writeSVG(w io.Writer, rep *report) {
	blocks := chartBlocks(rep)
	height := chartTop + 60
	for _, b := range blocks {
		height += blockHead + len(b)*barRow + blockGap
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %[1]d %[2]d" font-family="sans-serif" font-size="12">`+"\n", svgWidth, height)
	fmt.Fprintln(w, `<rect width="100%" height="100%" fill="white"/>`)
	where := "loopback"
	if rep.Target != "" {
		where = "the path to " + rep.Target
	}
	text(w, svgLeft, 28, "start", 18, "bold", "#000", "batchconn and the alternatives against plain *net.UDPConn")
	sub := fmt.Sprintf("%s; %s %s, %d CPUs, load average %s; each figure the median of %d round(s) of %s, the modes taking turns",
		where, rep.GoVersion, rep.Platform, rep.CPUs, format(rep.LoadAvg, compact), rep.Rounds, rep.Duration)
	text(w, svgLeft, 50, "start", 12, "normal", "#444", sub)
	y := chartTop
	for _, b := range blocks {
		y = drawBlock(w, b, y)
	}
	for i, line := range chartCaption {
		text(w, svgLeft, y+20+16*i, "start", 12, "normal", "#222", line)
	}
	fmt.Fprintln(w, "</svg>")
}

// drawBlock draws one scenario and size's rows from y down and returns
// where the next block starts.
func drawBlock(w io.Writer, rows []*row, y int) int {
	cols := chartColumns(rows)
	text(w, svgLeft, y+16, "start", 13, "bold", "#000", fmt.Sprintf("%s %d B", rows[0].Scenario, rows[0].Size))
	for i, c := range cols {
		better := "higher"
		if c.lower {
			better = "lower"
		}
		text(w, columnX[i], y+16, "start", 11, "normal", "#555", c.head+", × plain ("+better+" is better)")
	}
	top := y + blockHead
	for i, c := range cols {
		scale := barMax / blockEnd(rows, c)
		for j, r := range rows {
			drawBar(w, r, c, columnX[i], top+j*barRow, scale)
		}
		one := columnX[i] + int(math.Round(scale))
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000" stroke-dasharray="4 3"/>`+"\n", one, top-2, one, top+len(rows)*barRow)
	}
	for j, r := range rows {
		text(w, modeRight, top+j*barRow+barRow/2+4, "end", 12, "normal", "#000", string(r.Mode))
	}
	return top + len(rows)*barRow + blockGap
}

// blockEnd is the ratio the longest bar of a block's column stands for:
// the largest, or plain's 1.
func blockEnd(rows []*row, c column) float64 {
	end := 1.0
	for _, r := range rows {
		if v := c.vs(r); v != nil {
			end = max(end, *v)
		}
	}
	return end
}

// drawBar draws r's bar of column c at x, in the bar row at y, with its
// ratio and its figure beside it.
func drawBar(w io.Writer, r *row, c column, x, y int, scale float64) {
	mid := y + barRow/2
	v := c.vs(r)
	if v == nil { // not measured here
		return
	}
	width := max(int(math.Round(*v*scale)), 1)
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x, mid-barHeight/2, width, barHeight, modeColors[r.Mode])
	// Beside the bar, or past plain's dashed line where it stops short.
	text(w, x+max(width, int(math.Round(scale)))+6, mid+4, "start", 11, "normal", "#000", times(*v)+"  "+c.cell(r))
}

func text(w io.Writer, x, y int, anchor string, size int, weight, color, s string) {
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="%s" font-size="%d" font-weight="%s" fill="%s">%s</text>`+"\n",
		x, y, anchor, size, weight, color, html.EscapeString(s))
}

package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
)

// The chart's geometry, in pixels.
const (
	svgWidth   = 940
	labelRight = 250 // where the bars' names end
	plotLeft   = 262 // where the bars start: 0
	plotRight  = 660 // the axis's end
	rowHeight  = 28
	barHeight  = 16
	panelGap   = 34 // above a panel: its title
	axisHeight = 30 // below a panel: its axis
)

const (
	colorMet    = "#2e7d32"
	colorMissed = "#c62828"
	colorTarget = "#111111"
)

// setGap is the room above a set of bars: its heading.
const setGap = 40

// panel is one group of bars of one set sharing a unit and a direction.
type panel struct {
	title string
	bars  []*barResult
}

// panels groups one set's bars: throughput ratios, latency ratios,
// allocations.
func panels(bars []*barResult) []panel {
	kinds := []struct{ kind, better string }{
		{"throughput", "higher is better"},
		{"latency", "lower is better"},
		{"heap allocations per datagram", "lower is better"},
	}
	groups := make([][]*barResult, len(kinds))
	for _, b := range bars {
		i := 0
		switch {
		case b.Unit != "ratio":
			i = 2
		case b.AtMost:
			i = 1
		}
		groups[i] = append(groups[i], b)
	}
	var out []panel
	for i, g := range groups {
		if len(g) > 0 {
			title := fmt.Sprintf("%s %s, %s: %s, %s", barsWord(g), barRange(g), kinds[i].kind, whose(g), kinds[i].better)
			out = append(out, panel{title: title, bars: g})
		}
	}
	return out
}

// barsWord is "Bar" or "Bars", as the bars are one or more.
func barsWord(bars []*barResult) string {
	if bars[0].Bar == bars[len(bars)-1].Bar {
		return "Bar"
	}
	return "Bars"
}

// barRange names the bars, in order: "1-4", "7".
func barRange(bars []*barResult) string {
	first, last := bars[0].Bar, bars[len(bars)-1].Bar
	if first == last {
		return first
	}
	return first + "-" + last
}

// whose says what the bars' figures are: "nooffload / plain", or per
// bar where they differ ("G1-G3 batchconn / plain, G4 batchconn / nooffload").
func whose(bars []*barResult) string {
	var pairs []string
	byPair := map[string][]*barResult{}
	for _, b := range bars {
		pair := string(b.Mode)
		if b.Unit == "ratio" {
			pair += " / " + string(b.Versus)
		}
		if byPair[pair] == nil {
			pairs = append(pairs, pair)
		}
		byPair[pair] = append(byPair[pair], b)
	}
	if len(pairs) == 1 {
		return pairs[0]
	}
	parts := make([]string, len(pairs))
	for i, pair := range pairs {
		parts[i] = barRange(byPair[pair]) + " " + pair
	}
	return strings.Join(parts, "; ")
}

// writeSVGFile writes the bar chart of rep's bars to the file name.
func writeSVGFile(name string, rep *report) error {
	var b strings.Builder
	writeSVG(&b, rep)
	return os.WriteFile(name, []byte(b.String()), 0o644)
}

// writeSVG draws each bar's measured figure as a horizontal bar, green
// where it meets its target and red where it does not, with the target as
// a black line across it: the performance issue's bars, then the offload
// issue's, each set under a heading of its own.
func writeSVG(w io.Writer, rep *report) {
	type setPanels struct {
		title string
		bars  []*barResult
		ps    []panel
	}
	var sets []setPanels
	height := 96 + 30
	for _, set := range barSets {
		bars := inSet(rep.Targets, set.set)
		if len(bars) == 0 {
			continue
		}
		sp := setPanels{title: svgSetTitles[set.set], bars: bars, ps: panels(bars)}
		height += setGap
		for _, p := range sp.ps {
			height += panelGap + len(p.bars)*rowHeight + axisHeight
		}
		sets = append(sets, sp)
	}
	where := "loopback"
	if rep.Target != "" {
		where = rep.Target
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	text(w, 20, 30, "start", 18, "bold", "#000", "batchconn vs plain *net.UDPConn: the performance bars")
	text(w, 20, 52, "start", 12, "normal", "#444", fmt.Sprintf("%s, %s %s, GOMAXPROCS %d; the median of %d run(s) of %s per mode, modes interleaved",
		where, rep.GoVersion, rep.Platform, rep.GOMAXPROCS, rep.Rounds, rep.Duration))
	text(w, 20, 72, "start", 12, "normal", "#444",
		"batchconn: offload (UDP GSO/GRO) on, the default; nooffload: batchconn with Config{NoOffload: true}")
	y := 96
	for _, sp := range sets {
		text(w, 20, y+24, "start", 16, "bold", "#000",
			fmt.Sprintf("%s: %d of %d met", sp.title, countMet(sp.bars), len(sp.bars)))
		y += setGap
		for _, p := range sp.ps {
			y = p.draw(w, y)
		}
	}
	drawKey(w, y+10)
	fmt.Fprintln(w, "</svg>")
}

// svgSetTitles head the sets in the chart.
var svgSetTitles = map[string]string{
	setPerf:    "Performance issue, bars 1-7",
	setOffload: "Offload issue, bars G1-G4 (batchconn with offload on)",
}

// draw draws the panel from y down and returns where it ends.
func (p panel) draw(w io.Writer, y int) int {
	text(w, 20, y+20, "start", 14, "bold", "#000", p.title)
	y += panelGap
	top := y
	bottom := y + len(p.bars)*rowHeight
	step, end := axis(p.bars)
	scale := float64(plotRight-plotLeft) / end
	for tick := 0.0; tick <= end+step/2; tick += step {
		x := plotLeft + int(math.Round(tick*scale))
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/>`+"\n", x, top, x, bottom)
		text(w, x, bottom+16, "middle", 11, "normal", "#555", trimFloat(tick))
	}
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`+"\n", plotLeft, bottom, plotRight, bottom)
	for i, b := range p.bars {
		drawBar(w, b, top+i*rowHeight, scale)
	}
	return bottom + axisHeight
}

// drawBar draws one bar in the row starting at y.
func drawBar(w io.Writer, b *barResult, y int, scale float64) {
	color := colorMissed
	if b.Met {
		color = colorMet
	}
	mid := y + rowHeight/2
	text(w, labelRight, mid+4, "end", 13, "normal", "#000", fmt.Sprintf("%s · %s", b.Bar, b.label()))
	barEnd := min(plotLeft+int(math.Round(b.Measured*scale)), plotRight+12)
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n",
		plotLeft, mid-barHeight/2, barEnd-plotLeft, barHeight, color)
	if barEnd > plotRight { // off the axis: cut, with a break mark
		for _, dx := range []int{-4, 2} {
			fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="white" stroke-width="2"/>`+"\n",
				plotRight+dx-3, mid+barHeight/2+1, plotRight+dx+3, mid-barHeight/2-1)
		}
	}
	tx := plotLeft + int(math.Round(b.Target*scale))
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n",
		tx, mid-barHeight/2-4, tx, mid+barHeight/2+4, colorTarget)
	text(w, max(barEnd, tx)+8, mid+4, "start", 13, "bold", color,
		fmt.Sprintf("%s %s (target %s)", b.measured(), b.result(), b.target()))
}

// label names the bar in the chart.
func (b *barResult) label() string {
	switch {
	case b.Op != "":
		return b.Op
	case strings.HasPrefix(b.Figure, "p50"):
		return fmt.Sprintf("%s p50", b.Scenario)
	case strings.HasPrefix(b.Figure, "p99"):
		return fmt.Sprintf("%s p99", b.Scenario)
	}
	return b.subject()
}

// drawKey explains the colors and the line.
func drawKey(w io.Writer, y int) {
	x := 20
	for _, k := range []struct{ color, label string }{{colorMet, "target met"}, {colorMissed, "target missed"}} {
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="14" height="14" fill="%s"/>`+"\n", x, y, k.color)
		text(w, x+20, y+12, "start", 12, "normal", "#000", k.label)
		x += 130
	}
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", x+7, y-2, x+7, y+16, colorTarget)
	text(w, x+20, y+12, "start", 12, "normal", "#000", "target")
}

// axis chooses the tick step and the axis's end for the bars, in round
// steps: room for every target and for every figure up to three times the
// largest target. A figure beyond is drawn cut short, its value beside it.
func axis(bars []*barResult) (step, end float64) {
	figures, targets := 0.0, 0.0
	for _, b := range bars {
		figures, targets = max(figures, b.Measured), max(targets, b.Target)
	}
	if targets > 0 {
		figures = min(figures, 3*targets)
	}
	top := max(figures, targets, 1) * 1.05
	step = niceStep(top / 5)
	return step, math.Ceil(top/step) * step
}

// niceStep is the least of 1, 2, 2.5 and 5 times a power of ten that is
// at least x.
func niceStep(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func text(w io.Writer, x, y int, anchor string, size int, weight, color, s string) {
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="%s" font-size="%d" font-weight="%s" fill="%s">%s</text>`+"\n",
		x, y, anchor, size, weight, color, html.EscapeString(s))
}

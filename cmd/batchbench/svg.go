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
	svgWidth    = 960
	groupLeft   = 20  // the groups' names
	modeRight   = 250 // where the modes' names end
	plotLeft    = 262 // where the bars start: 0
	plotRight   = 700 // the axis's end
	barRow      = 18  // a mode's bar
	barHeight   = 12
	groupGap    = 10 // between two groups
	panelTitle  = 40 // above a panel: its title
	axisHeight  = 30 // below a panel: its axis
	captionLine = 16
	captionWrap = 140 // characters a caption line
)

// modeColors fill each mode's bars; the ceilings, raw and recvgso's
// rawgro, are drawn as outlines (ceiling).
var modeColors = map[mode]string{
	modePlain:     "#9e9e9e",
	modeBatch:     "#1565c0",
	modeGrouped:   "#00897b",
	modeNoOffload: "#64b5f6",
	modeXnet:      "#ef6c00",
	modeRaw:       "none",
	modeRawGRO:    "none",
}

// ceiling reports whether m is a ceiling, drawn as an outline: what the
// batch calls alone reach, without offload (raw) or with GRO (rawgro).
func (m mode) ceiling() bool { return m == modeRaw || m == modeRawGRO }

// chartPanel is one figure of the rows against plain's, a group of bars
// per scenario and size.
type chartPanel struct {
	title  string
	groups [][]*row
	ratio  func(r *row) *float64 // the bar: the figure over plain's
	label  func(r *row) string   // beside the bar
}

// chartPanels are the panels rep has rows for: what is delivered, at
// what CPU cost, with what delays, with what memory.
func chartPanels(rep *report) []chartPanel {
	rated := func(r *row) bool { return r.kind == kindRate || r.kind == kindFresh }
	ps := []chartPanel{
		{title: "Delivered per second (fresh: queries), times plain's: higher is better",
			groups: groupRows(rep, rated),
			ratio:  func(r *row) *float64 { return r.PerSecVsPlain },
			label:  func(r *row) string { return format(r.PerSecVsPlain, times) + "  " + thousands(r.PerSec) + "/s" }},
		{title: "CPU time per datagram delivered (per response, per query), times plain's: lower is better",
			groups: groupRows(rep, func(r *row) bool { return rated(r) && r.CPUVsPlain != nil }),
			ratio:  func(r *row) *float64 { return r.CPUVsPlain },
			label:  func(r *row) string { return format(r.CPUVsPlain, times) + "  " + format(r.CPUus, compact) + " µs" }},
		{title: "Median delay (pingpong: round trip; lone: one way), times plain's: lower is better",
			groups: groupRows(rep, func(r *row) bool { return r.kind == kindLatency }),
			ratio:  func(r *row) *float64 { return r.P50VsPlain },
			label:  func(r *row) string { return format(r.P50VsPlain, times) + "  " + format(r.P50us, compact) + " µs" }},
		{title: "Memory (fresh: bytes allocated per query; idle: heap held per conn), times plain's: lower is better",
			groups: groupRows(rep, func(r *row) bool { return r.kind == kindFresh || r.kind == kindIdle }),
			ratio:  func(r *row) *float64 { return r.BytesVsPlain },
			label:  func(r *row) string { return format(r.BytesVsPlain, times) + "  " + format(r.bytes(), byteSize) }},
	}
	var out []chartPanel
	for _, p := range ps {
		if len(p.groups) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// groupRows gathers the rows that keep, a group per scenario and size,
// in the order they ran; only groups that have plain's row, which the
// ratios need.
func groupRows(rep *report, keep func(r *row) bool) [][]*row {
	var groups [][]*row
	index := map[string]int{}
	for _, r := range rep.Rows {
		if !keep(r) || rep.row(r.Scenario, r.Op, r.Size, modePlain) == nil {
			continue
		}
		key := fmt.Sprintf("%s/%d", r.Scenario, r.Size)
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

// writeSVGFile writes the chart of rep to the file name.
func writeSVGFile(name string, rep *report) error {
	var b strings.Builder
	writeSVG(&b, rep)
	return os.WriteFile(name, []byte(b.String()), 0o644)
}

// writeSVG draws, for each panel, every mode's figure over plain's as a
// horizontal bar, a group per scenario and size, plain's own bar at 1
// (the dashed line), and under the panels a caption that says what the
// chart shows and why a figure sits where it does.
func writeSVG(w io.Writer, rep *report) {
	ps := chartPanels(rep)
	caption := wrapWords(chartCaption(rep), captionWrap)
	key := keyLines(rep)
	below := keyLine * max(len(key)-1, 0) // the key's lines after its first
	head := 80 + below
	if busyWarning(rep.Machine) != "" {
		head += 20
	}
	height := head + 30 + len(caption)*captionLine + 20
	for _, p := range ps {
		height += p.height()
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	where := "loopback"
	if rep.Target != "" {
		where = "the path to " + rep.Target
	}
	text(w, groupLeft, 30, "start", 18, "bold", "#000", "batchconn against plain *net.UDPConn and the alternatives")
	text(w, groupLeft, 52, "start", 12, "normal", "#444", fmt.Sprintf("%s; %s %s, %d CPUs; the median of %d round(s) of %s per mode, the modes taking turns",
		where, rep.GoVersion, rep.Platform, rep.Machine.CPUs, rep.Rounds, rep.Duration))
	drawKey(w, key, 72)
	if busyWarning(rep.Machine) != "" {
		text(w, groupLeft, 96+below, "start", 12, "bold", "#c62828",
			"This machine was busy during the run (see the text report): the figures are noisy.")
	}
	y := head
	for _, p := range ps {
		y = p.draw(w, y)
	}
	y += 10
	for _, line := range caption {
		y += captionLine
		text(w, groupLeft, y, "start", 12, "normal", "#222", line)
	}
	fmt.Fprintln(w, "</svg>")
}

// chartCaption says what the chart shows, including why a figure sits
// under its ceiling.
func chartCaption(rep *report) string {
	c := "What this shows: each bar is a mode's figure over plain *net.UDPConn's in the same run; plain is 1 (the dashed line). " +
		"Delivered counts what reached the receiving code, not what the sender's kernel accepted: a sender faster than its " +
		"receiver gains nothing past the receiver's pace (the text report shows the kernel's drops). " +
		"CPU time is the whole process's, both ends of the traffic, per datagram delivered."
	if hasMode(rep, modeRaw) {
		c += " raw (the outlined bar) is the same loop calling sendmmsg/recvmmsg directly, 64 datagrams a call, no offload, nothing " +
			"else: the batch system calls alone, what batching without offload can reach in this loop on this machine. nooffload " +
			"(batchconn, batching alone) and xnet (the loop written by hand with golang.org/x/net's ReadBatch/WriteBatch) sit under " +
			"it by what their own code costs per datagram: batchconn's queue, ring and lock; x/net's messages and the address it " +
			"allocates for each datagram read. Where one comes out above raw, the run's noise or the receiver's pace decided it " +
			"(in send, the plain receiver caps what any sender delivers). batchconn with offload can pass raw: UDP GSO and GRO " +
			"carry up to 64 datagrams through the kernel as one."
	}
	if hasMode(rep, modeRawGRO) {
		c += " In recvgso, rawgro (outlined too) is raw's loop with UDP GRO on the socket, each 64 KiB buffer split into its " +
			"datagrams in place: what the kernel's GRO delivers here with nothing in between, the ceiling for batchconn, which " +
			"turns GRO on. batchconn sits under it by what its ring and ReadFrom cost per datagram. Where the two are level or " +
			"batchconn comes out above, the feeder set the pace: one GSO sender can leave a receiver this fast idle part of the " +
			"time, and both then deliver what it sends, up to the run's noise."
	}
	if hasMode(rep, modeGrouped) {
		c += " grouped is batchconn with Config.GroupByDestination: each destination's queued datagrams leave together, so that " +
			"GSO carries datagrams sent to many peers in turn (fanout) as runs, where batchconn's defaults, which keep WriteTo order " +
			"across destinations, find runs of one datagram. It is off by default because a receiver reached at two addresses " +
			"could see datagrams sent to them change order. fanout's 16 receivers read through batchconn, as batching peers do, in " +
			"every mode, so that the figure is the sender's: receivers paying a system call a datagram would take most of this machine."
	}
	if hasMode(rep, modeXnet) && !hasMode(rep, modeRaw) {
		c += " xnet is the loop written by hand with golang.org/x/net's ReadBatch/WriteBatch, 64 datagrams a call."
	}
	return c
}

func (p chartPanel) height() int {
	rows := 0
	for _, g := range p.groups {
		rows += len(g)
	}
	return panelTitle + rows*barRow + len(p.groups)*groupGap + axisHeight
}

// draw draws the panel from y down and returns where it ends.
func (p chartPanel) draw(w io.Writer, y int) int {
	text(w, groupLeft, y+24, "start", 14, "bold", "#000", p.title)
	top := y + panelTitle
	bottom := y + p.height() - axisHeight
	step, end := p.axis()
	scale := float64(plotRight-plotLeft) / end
	for tick := 0.0; tick <= end+step/2; tick += step {
		x := plotLeft + int(math.Round(tick*scale))
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#e0e0e0"/>`+"\n", x, top, x, bottom)
		text(w, x, bottom+16, "middle", 11, "normal", "#555", trimFloat(tick)+"x")
	}
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`+"\n", plotLeft, bottom, plotRight, bottom)
	row := top
	for _, g := range p.groups {
		text(w, groupLeft, row+barRow/2+4, "start", 12, "bold", "#000", fmt.Sprintf("%s %d B", g[0].Scenario, g[0].Size))
		for _, r := range g {
			p.drawBar(w, r, row, scale)
			row += barRow
		}
		row += groupGap
	}
	one := plotLeft + int(math.Round(scale))
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000" stroke-dasharray="4 3"/>`+"\n", one, top-4, one, bottom)
	return bottom + axisHeight
}

// drawBar draws r's bar in the row starting at y.
func (p chartPanel) drawBar(w io.Writer, r *row, y int, scale float64) {
	mid := y + barRow/2
	text(w, modeRight, mid+4, "end", 12, "normal", "#000", string(r.Mode))
	v := p.ratio(r)
	if v == nil {
		text(w, plotLeft+4, mid+4, "start", 12, "normal", "#777", "not measured")
		return
	}
	end := plotLeft + int(math.Round(*v*scale))
	stroke := ""
	if r.Mode.ceiling() {
		stroke = ` stroke="#212121" stroke-width="1.5"`
	}
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"%s/>`+"\n",
		plotLeft, mid-barHeight/2, max(end-plotLeft, 1), barHeight, modeColors[r.Mode], stroke)
	// Beside the bar, or beyond plain's dashed line where the bar stops
	// short of it.
	one := plotLeft + int(math.Round(scale))
	text(w, max(end, one)+6, mid+4, "start", 12, "normal", "#000", p.label(r))
}

// axis chooses the tick step and the axis's end: room for every bar and
// for plain's 1.
func (p chartPanel) axis() (step, end float64) {
	top := 1.0
	for _, g := range p.groups {
		for _, r := range g {
			if v := p.ratio(r); v != nil {
				top = max(top, *v)
			}
		}
	}
	top *= 1.05
	step = niceStep(top / 5)
	return step, math.Ceil(top/step) * step
}

// keyLine is the height of a line of the chart's key.
const keyLine = 20

// keyLines lays out the key: the modes rep has, in the order the rounds
// run them, as many to a line as fit across the chart.
func keyLines(rep *report) [][]mode {
	var lines [][]mode
	x := svgWidth // no line yet
	for _, m := range []mode{modePlain, modeBatch, modeGrouped, modeNoOffload, modeXnet, modeRaw, modeRawGRO} {
		if !hasMode(rep, m) {
			continue
		}
		if x+keyWidth(m) > svgWidth-groupLeft {
			lines = append(lines, nil)
			x = groupLeft
		}
		lines[len(lines)-1] = append(lines[len(lines)-1], m)
		x += keyWidth(m)
	}
	return lines
}

// keyWidth is the room m takes in the key: its swatch and its label, at
// about 7 pixels a character.
func keyWidth(m mode) int { return 30 + 7*len(keyLabels[m]) }

// drawKey names the modes' colors, the first of its lines at y.
func drawKey(w io.Writer, lines [][]mode, y int) {
	for _, line := range lines {
		x := groupLeft
		for _, m := range line {
			stroke := ""
			if m.ceiling() {
				stroke = ` stroke="#212121" stroke-width="1.5"`
			}
			fmt.Fprintf(w, `<rect x="%d" y="%d" width="14" height="12" fill="%s"%s/>`+"\n", x, y-10, modeColors[m], stroke)
			text(w, x+20, y, "start", 12, "normal", "#000", keyLabels[m])
			x += keyWidth(m)
		}
		y += keyLine
	}
}

// keyLabels name the modes in the chart's key.
var keyLabels = map[mode]string{
	modePlain:     "plain *net.UDPConn",
	modeBatch:     "batchconn (GSO/GRO on)",
	modeGrouped:   "grouped (GroupByDestination)",
	modeNoOffload: "nooffload (batching alone)",
	modeXnet:      "xnet (x/net by hand)",
	modeRaw:       "raw (batch calls alone)",
	modeRawGRO:    "rawgro (batch calls with GRO)",
}

// wrapWords cuts s into lines of at most width characters, at spaces.
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
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

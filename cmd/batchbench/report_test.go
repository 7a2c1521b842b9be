package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchconn/batchconn"
)

// testReport is a report as run would make it, from made-up samples.
func testReport() *report {
	rep := newReport(options{duration: time.Second, rounds: 1})
	rep.CPUs, rep.LoadAvg = 2, ptr(0.9)
	sc := func(name string) scenario {
		return allScenarios[slices.IndexFunc(allScenarios, func(s scenario) bool { return s.name == name })]
	}
	add := func(name, op string, m mode, s sample) {
		s.elapsed = time.Second
		size := requestSize
		if sc(name).fixedSize > 0 {
			size = sc(name).fixedSize
		}
		rep.add(job{sc(name), size, op}, m, 1, s)
	}
	// send: what the sender's kernel took, and what arrived.
	sent := func(sent, arrived uint64, cpu time.Duration) sample {
		return sample{count: arrived, sendTime: time.Second, offered: sent, arrived: arrived,
			arrivals: true, drops: sent - arrived, dropsKnown: true, cpu: cpu}
	}
	add("send", "", modePlain, sent(100, 100, 700*time.Microsecond))
	s := sent(800, 200, 200*time.Microsecond)
	s.stats = &batchconn.Stats{OffloadFallbacks: 2}
	add("send", "", modeBatch, s)
	add("send", "", modeNoOffload, sent(300, 150, 600*time.Microsecond))
	add("send", "", modeXnet, sent(250, 250, time.Millisecond))
	add("send", "", modeRaw, sent(400, 400, time.Millisecond))
	add("recvgso", "", modePlain, sample{count: 100})
	add("recvgso", "", modeBatch, sample{count: 790})
	add("recvgso", "", modeRawGRO, sample{count: 820})
	add("echo", "", modePlain, sample{count: 100})
	add("echo", "", modeBatch, sample{count: 200})
	add("echo", "", modeNoOffload, sample{count: 200})
	add("lone", "", modePlain, sample{count: 1, p50: 100, p99: 200})
	add("lone", "", modeBatch, sample{count: 1, p50: 105, p99: 900})
	add("allocs", "ReadFrom", modePlain, sample{count: 1, allocs: 2})
	add("allocs", "ReadFrom", modeBatch, sample{count: 1, allocs: 2.004})
	add("allocs", "WriteTo", modePlain, sample{count: 1})
	add("allocs", "WriteTo", modeBatch, sample{count: 1, allocs: 1.0 / 64})
	add("fresh", "", modePlain, sample{count: 1000, bytes: 360, cpu: 60 * time.Millisecond})
	add("fresh", "", modeBatch, sample{count: 900, bytes: 2409, cpu: 90 * time.Millisecond})
	add("idle", "", modePlain, sample{count: 2000, bytes: 300})
	add("idle", "", modeBatch, sample{count: 2000, bytes: 2348})
	add("fanout", "", modePlain, sent(100, 100, time.Millisecond))
	add("fanout", "", modeBatch, sent(220, 200, time.Millisecond))
	add("fanout", "", modeStrict, sent(600, 300, 300*time.Microsecond))
	rep.summarize()
	return rep
}

// TestReportIsForUsers: the report shows what each mode delivers, at
// what CPU cost, against plain, and where the kernel dropped.
func TestReportIsForUsers(t *testing.T) {
	rep := testReport()
	table := tableOf(rep)
	for _, want := range []string{
		"send: one goroutine writes",
		"DELIVERED/S", "CPU µs/DG", "KERNEL DROPS", "RESPONSES/S",
		"VS PLAIN: the figure over plain's", "xnet = a loop over", "rawgso, rawgro = raw with UDP GSO, GRO",
		"fanout: 1200 B datagrams round-robin to 16 receivers", "strict = StrictOrder",
		"allocs: heap objects",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	// send 64 B batchconn: 200 delivered of 800 sent, 2.00x plain's 100,
	// 1 µs of CPU a datagram, 0.14x plain's 7 µs.
	for _, c := range []struct {
		block string
		mode  mode
		want  string
	}{
		{"send:", modePlain, "64 plain 100 1.00x 0.0 7.00 1.00x 0.00 0"},
		{"send:", modeBatch, "64 batchconn 200 2.00x 0.0 1.00 0.14x 0.00 600 (75.0%)"},
		{"send:", modeXnet, "64 xnet 250 2.50x 0.0 4.00 0.57x 0.00 0"},
		{"recvgso:", modeRawGRO, "64 rawgro 820 8.20x 0.1 0.00 - 0.00 -"},
		{"allocs:", modeBatch, "ReadFrom batchconn 2.00"},
		{"fresh:", modePlain, "plain 1,000 1.00x 360 B 1.00x 60.0 1.00x"},
		{"fresh:", modeBatch, "batchconn 900 0.90x 2409 B 6.69x 100 1.67x"},
		{"idle:", modeBatch, "batchconn 2348 B 7.83x 4.5 MiB"},
		// fanout strict: 300 delivered of 600 sent, 3.00x plain's 100,
		// 1 µs of CPU a datagram, 0.10x plain's 10 µs.
		{"fanout:", modeStrict, "1200 strict 300 3.00x 0.4 1.00 0.10x 0.00 300 (50.0%)"},
	} {
		if got := tableLine(table, c.block, c.mode); got != c.want {
			t.Errorf("%s %s line is %q, want %q", c.block, c.mode, got, c.want)
		}
	}
	if code := rep.exitCode(); code != 0 {
		t.Errorf("exit status %d with no problems", code)
	}
	rep.Rows[0].Problems = []string{"round 1: something broke"}
	if code := rep.exitCode(); code != 1 {
		t.Errorf("exit status %d with a problem", code)
	}
}

// TestJSON: every key is snake_case, and the figures are there.
func TestJSON(t *testing.T) {
	rep := testReport()
	var js strings.Builder
	if err := writeJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal([]byte(js.String()), &v); err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	for _, k := range regexp.MustCompile(`"([^"]+)":`).FindAllStringSubmatch(js.String(), -1) {
		if !key.MatchString(k[1]) {
			t.Errorf("JSON key %q is not snake_case", k[1])
		}
	}
	for _, want := range []string{`"mode": "raw"`, `"per_sec": 200`, `"cpu_us_per_unit": 1`,
		`"dropped": 600`, `"offload_fallbacks": 2`,
		`"load_average": 0.9`, `"mode": "strict"`,
		`"mode": "rawgro"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("the JSON lacks %s:\n%s", want, js.String())
		}
	}
}

// TestSVG: the chart is well-formed, has a bar for each row of each
// block's columns, a caption of two lines, and each block and column on a
// scale of its own: the longest bar of each is barMax pixels wide.
func TestSVG(t *testing.T) {
	rep := testReport()
	var svg strings.Builder
	writeSVG(&svg, rep)
	var widths []int // the bars' (the background's is 100%)
	for d := xml.NewDecoder(strings.NewReader(svg.String())); ; {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("the SVG is not well-formed: %v\n%s", err, svg.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if w, err := strconv.Atoi(a.Value); a.Name.Local == "width" && err == nil {
					widths = append(widths, w)
				}
			}
		}
	}
	bars, columns := 0, 0
	for _, b := range chartBlocks(rep) {
		for _, c := range chartColumns(b) {
			n := len(slices.DeleteFunc(slices.Clone(b), func(r *row) bool { return c.vs(r) == nil }))
			bars, columns = bars+n, columns+min(n, 1)
		}
	}
	longest := len(slices.DeleteFunc(slices.Clone(widths), func(w int) bool { return w != barMax }))
	if len(widths) != bars || slices.Max(widths) != barMax || longest < columns {
		t.Errorf("%d bars, %d of them %d pixels wide, the widest %d; want %d bars, at least %d of the widest", len(widths), longest, barMax, slices.Max(widths), bars, columns)
	}
	for _, want := range []string{"send 64 B", "recvgso 64 B", "fresh 40 B", "idle 40 B", "DELIVERED/S, × plain (higher is better)",
		"CPU µs/RESP", "P50 µs", "HEAP/CONN", chartCaption[0], chartCaption[1]} {
		if !strings.Contains(svg.String(), html.EscapeString(want)) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
	if slices.ContainsFunc(chartBlocks(rep), func(b []*row) bool { return b[0].Scenario == "allocs" }) {
		t.Error("allocs, whose counts are no ratios, is charted")
	}
}

func TestLoadAvg(t *testing.T) {
	if load, ok := parseLoadAvg("1.52 0.58 0.59 1/467 12345\n"); !ok || load != 1.52 {
		t.Errorf("parseLoadAvg = %v, %v", load, ok)
	}
	if table := tableOf(testReport()); !strings.Contains(table, "2 CPUs (GOMAXPROCS") || !strings.Contains(table, "load average 0.90 before the run") {
		t.Errorf("the header lacks the CPUs or the load:\n%s", table)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -12345: "-12,345"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func tableOf(rep *report) string {
	var b strings.Builder
	writeTable(&b, rep) // a strings.Builder takes every write
	return b.String()
}

// tableLine is the line of mode m in the block whose heading starts with
// block, its fields separated by one space.
func tableLine(table, block string, m mode) string {
	_, rest, _ := strings.Cut(table, "\n"+block)
	rest, _, _ = strings.Cut(rest, "\n\n")
	for line := range strings.Lines(rest) {
		if f := strings.Fields(line); len(f) > 1 && (f[0] == string(m) || f[1] == string(m)) {
			return strings.Join(f, " ")
		}
	}
	return ""
}

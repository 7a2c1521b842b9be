package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// The machine is too busy for steady figures when its load average before
// the run is above busyLoad per CPU (other programs want CPU time), or
// when the hypervisor stole more than busySteal of the CPU time during
// the run (the virtual CPUs waited for real ones). Linux tells; elsewhere
// only the CPU count is known.
const (
	busyLoad  = 0.5
	busySteal = 0.02
)

type machine struct {
	CPUs     int      `json:"cpus"`
	LoadAvg  *float64 `json:"load_average,omitempty"` // over the minute before the run
	StealPct *float64 `json:"steal_pct,omitempty"`    // of the CPU time during the run
	Busy     bool     `json:"busy"`
}

// watch notes the load now, and the CPU time counters that end compares.
func watch() (*machine, cpuTimes) {
	m := &machine{CPUs: runtime.NumCPU()}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			if load, err := strconv.ParseFloat(f[0], 64); err == nil {
				m.LoadAvg = &load
			}
		}
	}
	t, _ := readCPUTimes()
	return m, t
}

// end notes the share of CPU time stolen since start.
func (m *machine) end(start cpuTimes) {
	if now, ok := readCPUTimes(); ok && start.total > 0 && now.total > start.total {
		m.StealPct = ptr(100 * float64(now.steal-start.steal) / float64(now.total-start.total))
	}
	m.Busy = m.loadBusy() || m.stealBusy()
}

func (m *machine) loadBusy() bool { return m.LoadAvg != nil && *m.LoadAvg > busyLoad*float64(m.CPUs) }

func (m *machine) stealBusy() bool { return m.StealPct != nil && *m.StealPct > 100*busySteal }

// busyWarning is the report's warning that other programs took CPU time
// from the run, or "".
func busyWarning(m *machine) string {
	if m == nil || !m.Busy {
		return ""
	}
	var why []string
	if m.loadBusy() {
		why = append(why, fmt.Sprintf("load average %.2f on %d CPUs before the run", *m.LoadAvg, m.CPUs))
	}
	if m.stealBusy() {
		why = append(why, fmt.Sprintf("%.1f%% of CPU time stolen by the hypervisor during it", *m.StealPct))
	}
	return "WARNING: this machine is busy (" + strings.Join(why, "; ") + ").\n" +
		"  Other programs took CPU time from the benchmark, so its figures will be noisy: compare\n" +
		"  rows of this run only, and rerun on a quiet machine before drawing conclusions.\n"
}

// cpuTimes are the machine's CPU time counters, all CPUs together, in
// clock ticks: the time stolen, and all the time counted.
type cpuTimes struct{ steal, total uint64 }

func readCPUTimes() (cpuTimes, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	return parseCPUTimes(string(data))
}

// parseCPUTimes reads /proc/stat's first line, "cpu user nice system idle
// iowait irq softirq steal guest guest_nice": total is the sum of the
// first eight (guest time is counted in user time already).
func parseCPUTimes(s string) (cpuTimes, bool) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, false
	}
	var t cpuTimes
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuTimes{}, false
		}
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t, true
}

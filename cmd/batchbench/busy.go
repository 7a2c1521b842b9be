package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// What makes the machine too busy for steady figures: a load average,
// before the run, above busyLoad per CPU (other programs wanted CPU time),
// or more than busySteal of the CPU time stolen by the hypervisor during
// the run (the virtual CPUs waited for real ones).
const (
	busyLoad  = 0.5
	busySteal = 0.02
)

// machine is what the report tells of the machine's other load, from
// Linux's /proc; elsewhere only the CPU count is known.
type machine struct {
	CPUs     int      `json:"cpus"`
	LoadAvg  *float64 `json:"load_average,omitempty"` // over the last minute, before the run
	StealPct *float64 `json:"steal_pct,omitempty"`    // of the CPU time during the run
	Busy     bool     `json:"busy"`                   // either is above its limit: the figures will be noisy
}

// watch starts watching the machine: its load now, and the CPU time
// counters that end compares.
func watch() (*machine, cpuTimes) {
	m := &machine{CPUs: runtime.NumCPU()}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if load, ok := parseLoadAvg(string(data)); ok {
			m.LoadAvg = &load
		}
	}
	t, _ := readCPUTimes()
	return m, t
}

// end notes the share of CPU time stolen since start and decides whether
// the machine was busy.
func (m *machine) end(start cpuTimes) {
	if now, ok := readCPUTimes(); ok && start.total > 0 && now.total > start.total {
		m.StealPct = ptr(100 * float64(now.steal-start.steal) / float64(now.total-start.total))
	}
	m.Busy = m.loadBusy() || (m.StealPct != nil && *m.StealPct > 100*busySteal)
}

// loadBusy reports whether the load average before the run says the
// machine is busy.
func (m *machine) loadBusy() bool {
	return m.LoadAvg != nil && *m.LoadAvg > busyLoad*float64(m.CPUs)
}

// parseLoadAvg reads the one-minute load average from /proc/loadavg's
// contents ("0.52 0.58 0.59 1/467 12345").
func parseLoadAvg(s string) (float64, bool) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, false
	}
	load, err := strconv.ParseFloat(f[0], 64)
	return load, err == nil
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

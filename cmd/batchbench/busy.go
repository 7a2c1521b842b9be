package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// busyLoad is the load average per CPU above which other programs want
// enough CPU time to make the figures noisy.
const busyLoad = 0.5

// machine is what the report tells of the machine's other load, from
// Linux's /proc/loadavg; elsewhere only the CPU count is known.
type machine struct {
	CPUs    int      `json:"cpus"`
	LoadAvg *float64 `json:"load_average,omitempty"` // over the minute before the run
	Busy    bool     `json:"busy"`
}

func watch() *machine {
	m := &machine{CPUs: runtime.NumCPU()}
	data, _ := os.ReadFile("/proc/loadavg")
	if load, ok := parseLoadAvg(string(data)); ok {
		m.LoadAvg, m.Busy = &load, load > busyLoad*float64(m.CPUs)
	}
	return m
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

// busyWarning is the report's warning that other programs wanted CPU
// time, or "".
func busyWarning(m *machine) string {
	if m == nil || !m.Busy {
		return ""
	}
	return fmt.Sprintf("WARNING: this machine is busy (load average %.2f on %d CPUs before the run).\n", *m.LoadAvg, m.CPUs) +
		"  Other programs took CPU time from the benchmark, so its figures will be noisy: compare\n" +
		"  rows of this run only, and rerun on a quiet machine before drawing conclusions.\n"
}

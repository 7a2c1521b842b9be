package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// busyLoad is the load average per CPU above which other programs want
// enough CPU time to make the figures noisy.
const busyLoad = 0.5

// loadAvg is the one-minute load average Linux's /proc/loadavg gives;
// nil elsewhere.
func loadAvg() *float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	if load, ok := parseLoadAvg(string(data)); ok {
		return &load
	}
	return nil
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
// time before the run, or "".
func busyWarning(rep *report) string {
	if rep.LoadAvg == nil || *rep.LoadAvg <= busyLoad*float64(rep.CPUs) {
		return ""
	}
	return fmt.Sprintf("WARNING: this machine is busy (load average %.2f on %d CPUs before the run): other programs\n"+
		"  take CPU time from the benchmark, so its figures are noisy; compare rows of this run only.\n", *rep.LoadAvg, rep.CPUs)
}

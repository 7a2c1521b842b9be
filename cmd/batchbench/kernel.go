package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// udpQueues sums what Linux's /proc/net/udp tells of the IPv4 sockets
// bound to ports: the bytes queued to be read, and the datagrams dropped
// at their full queues; ok is false where unknown (a port not found).
func udpQueues(ports ...int) (queued, drops uint64, ok bool) {
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, 0, false
	}
	found := 0
	// sl local_address rem_address st tx_queue:rx_queue ... drops
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		for _, port := range ports {
			if len(f) < 13 || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				continue
			}
			_, rxq, _ := strings.Cut(f[4], ":")
			q, qerr := strconv.ParseUint(rxq, 16, 64)
			d, derr := strconv.ParseUint(f[len(f)-1], 10, 64)
			if qerr == nil && derr == nil {
				queued, drops, found = queued+q, drops+d, found+1
			}
		}
	}
	return queued, drops, found == len(ports)
}

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

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// udpSocket reads, from Linux's /proc/net/udp, the bytes queued for
// reading on the IPv4 UDP socket bound to port and the datagrams the
// kernel dropped at its queue so far. ok is false where that is unknown.
func udpSocket(port int) (queued, drops uint64, ok bool) {
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, 0, false
	}
	// sl local_address rem_address st tx_queue:rx_queue ... drops
	suffix := fmt.Sprintf(":%04X", port)
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		_, rxq, found := strings.Cut(f[4], ":")
		q, qerr := strconv.ParseUint(rxq, 16, 64)
		d, derr := strconv.ParseUint(f[len(f)-1], 10, 64)
		return q, d, found && qerr == nil && derr == nil
	}
	return 0, 0, false
}

// rmemMax returns net.core.rmem_max, the most SetReadBuffer can get, or 0
// where that is unknown.
func rmemMax() int {
	data, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}
